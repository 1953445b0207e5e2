/* sl_options.h -- applying option tables to connector and engine structs. */
#ifndef SL_OPTIONS_H
#define SL_OPTIONS_H

#include "sluice.h"

/* Fills the struct at base from table: defaults first, then the values of o for the keys
 * the table knows (keys it does not know are left to other tables). String values point
 * into o, which must outlive base. Returns SL_OK or SL_ERR_INVAL with errstr naming the
 * key and the problem. */
int sl__options_apply(const sl_option *table, const sl_options *o, void *base, char *errstr,
                      size_t errsize);

/* True when the table has an option named key. */
int sl__options_has(const sl_option *table, const char *key);

/* Checks one value against one option: type, range, choices. */
int sl__option_check_value(const sl_option *opt, const char *value, char *errstr, size_t errsize);

#endif
