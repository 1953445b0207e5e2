/* cu_main.h -- shared by the CUnit test programs. */
#ifndef CU_MAIN_H
#define CU_MAIN_H

#include <CUnit/CUnit.h>

/* Defined by each test file: adds its suites and tests to the CUnit registry. */
void sl_test_register(void);

/* A test in SL_SUITE: the function test_NAME, registered as NAME (libuv's TEST_ENTRY). The
 * name is written once, at the function, and says what the test proves. */
#define SL_TEST(name)                                                                              \
    {                                                                                              \
#name, test_##name                                                                         \
    }

/* Adds a suite with the given tests (SL_TEST entries). Name a suite for the module it
 * tests: test_<module>.c holds the suites of src/sl_<module>.c or of a connector. */
#define SL_SUITE(name, ...)                                                                        \
    do {                                                                                           \
        CU_pSuite s_ = CU_add_suite(name, NULL, NULL);                                             \
        CU_TestInfo t_[] = {__VA_ARGS__, CU_TEST_INFO_NULL};                                       \
        for (CU_TestInfo *i_ = t_; i_->pName; i_++) {                                              \
            CU_add_test(s_, i_->pName, i_->pTestFunc);                                             \
        }                                                                                          \
    } while (0)

#endif
