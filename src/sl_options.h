/* sl_options.h -- applying option tables to connector and engine structs. */
#ifndef SL_OPTIONS_H
#define SL_OPTIONS_H

#include "sluice.h"

/* Fills the struct at base from table: defaults first, then the values of o for the keys
 * the table knows (keys it does not know are left to other tables). String values point
 * into o, which must outlive base; an ENUM becomes the int index of its name (-1 without a
 * value or default); numbers are within the table's range. Returns SL_OK or SL_ERR_INVAL with
 * errstr naming the key and the problem. */
int sl__options_apply(const sl_option *table, const sl_options *o, void *base, char *errstr,
                      size_t errsize);

/* True when the table has an option named key. */
int sl__options_has(const sl_option *table, const char *key);

/* The index of the name v in the choices of an ENUM option (what sl__options_apply stores),
 * -1 when it is not one of them. */
int sl__option_enum_index(const sl_option *opt, const char *v);
/* The name of choice index of an ENUM option, copied into buf ("?" when there is none). */
const char *sl__option_enum_name(const sl_option *opt, int index, char *buf, size_t size);

/* Checks one value against one option: type, range, choices. */
int sl__option_check_value(const sl_option *opt, const char *value, char *errstr, size_t errsize);

#endif
