/* sl_test_int.h -- internals of the test files' parser shared by sl_test_file.c and
 * sl_test_yaml.c (the YAML front end's parser state and helpers, sl_cfg.h). */
#ifndef SL_TEST_INT_H
#define SL_TEST_INT_H

#include "sl_cfg.h"
#include "sl_test.h"

sl_tloc sl__tloc_of(const yaml_node_t *n);
/* A time: an integer (ms since the epoch), an RFC 3339 time or a duration after start (a
 * negative one before it). */
int sl__tparse_time(cfg_parser *p, yaml_node_t *n, const char *what, int64_t start, int64_t *out);
/* Any YAML node as JSON, plain scalars typed as YAML reads them (new reference; NULL when out
 * of memory). */
json_t *sl__tyaml_json(cfg_parser *p, yaml_node_t *n);
/* The items of a list node; an error naming what when it is not a list. */
int sl__tlist_items(cfg_parser *p, yaml_node_t *n, const char *what, yaml_node_item_t **items,
                    size_t *count);
/* Appends to tc the records sink is expected to write over listed batches first..last: a
 * list of records, or ~ (not checked). */
int sl__tparse_group(cfg_parser *p, yaml_node_t *list, sl_tcase *tc, size_t sink, size_t first,
                     size_t last, const char *what);

#endif /* SL_TEST_INT_H */
