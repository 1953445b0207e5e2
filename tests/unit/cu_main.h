/* cu_main.h -- shared by the CUnit test programs. */
#ifndef CU_MAIN_H
#define CU_MAIN_H

#include <CUnit/CUnit.h>

/* Defined by each test file: adds its suites and tests to the CUnit registry. */
void sl_test_register(void);

/* Adds a suite with the given tests, NULL-terminated {name, fn} pairs. */
#define SL_SUITE(name, ...)                                                                        \
    do {                                                                                           \
        CU_pSuite s_ = CU_add_suite(name, NULL, NULL);                                             \
        CU_TestInfo t_[] = {__VA_ARGS__, CU_TEST_INFO_NULL};                                       \
        for (CU_TestInfo *i_ = t_; i_->pName; i_++) {                                              \
            CU_add_test(s_, i_->pName, i_->pTestFunc);                                             \
        }                                                                                          \
    } while (0)

#endif
