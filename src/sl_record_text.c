/* sl_record_text.c -- records as text, the way Spark prints an element (sl_record_text.h). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sl_record_text.h"

void sl__record_format_double(double d, char *buf, size_t size)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            return;
        }
    }
}

void sl__record_write_num(FILE *f, const sl_record *r)
{
    if (r->num_type == SL_NUM_INT) {
        fprintf(f, "%" PRId64, r->num.i);
    } else if (r->num_type == SL_NUM_DOUBLE) {
        char num[32];
        sl__record_format_double(r->num.d, num, sizeof(num));
        fputs(num, f);
    }
}

int sl__record_write(FILE *f, const sl_record *r)
{
    bool keyed = r->key_len > 0;
    if (keyed) {
        fputc('(', f);
        fwrite(r->key, 1, r->key_len, f);
        fputc(',', f);
    }
    if (r->num_type == SL_NUM_INT || r->num_type == SL_NUM_DOUBLE) {
        sl__record_write_num(f, r);
    } else if (r->value_len > 0) {
        fwrite(r->value, 1, r->value_len, f);
    }
    if (keyed) {
        fputc(')', f);
    }
    fputc('\n', f);
    return ferror(f) ? -1 : 0;
}
