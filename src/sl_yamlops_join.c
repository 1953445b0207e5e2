/* sl_yamlops_join.c -- the join op's output: {"left": ..., "right": ...} when both sides are
 * JSON objects, "(left,right)" otherwise.
 *
 * Nesting both sides keeps every field of each unambiguous (a field both have, such as an id
 * or a timestamp, is not lost as in a merge), which is what a Flink SQL user gets from
 * SELECT l.*, r.* under table aliases and a Kafka Streams user from a ValueJoiner building a
 * pair; a missing right of a left join is null, as in both. The sides' bytes are copied as
 * they came (no re-serialization: numbers and key order are theirs). */
#include <string.h>

#include <jansson.h>

#include "sl_engine.h"
#include "sl_yamlops.h"

/* True when r's value is one JSON object (leading and trailing blanks allowed). */
static bool is_json_object(const sl_record *r)
{
    const char *v = r->value;
    size_t n = r->value_len;
    while (n && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\n' || v[n - 1] == '\r')) {
        n--;
    }
    if (!v || n < 2 || v[0] != '{' || v[n - 1] != '}') {
        return false;
    }
    json_t *root = json_loadb(v, n, 0, NULL);
    bool ok = root && json_is_object(root);
    json_decref(root);
    return ok;
}

int sl__yamlops_join(const sl_record *l, const sl_record *r, sl_record *out, sl_emitter *e,
                     void *opaque)
{
    (void)opaque;
    if (!is_json_object(l) || (r && !is_json_object(r))) {
        return sl__join_text(l, r, out, e);
    }
    static const char a[] = "{\"left\":", b[] = ",\"right\":", c[] = "}";
    size_t rn = r ? r->value_len : 4;
    size_t n = sizeof(a) - 1 + l->value_len + sizeof(b) - 1 + rn + sizeof(c) - 1;
    if (n > UINT32_MAX) {
        sl_reject_reason("the joined value is over 4 GiB");
        return SL_ERR_RECORD;
    }
    char *v = sl_emitter_alloc(e, n);
    if (!v) {
        return SL_ERR_NOMEM;
    }
    char *p = v;
    memcpy(p, a, sizeof(a) - 1);
    p += sizeof(a) - 1;
    memcpy(p, l->value, l->value_len);
    p += l->value_len;
    memcpy(p, b, sizeof(b) - 1);
    p += sizeof(b) - 1;
    memcpy(p, r ? r->value : "null", rn);
    p += rn;
    memcpy(p, c, sizeof(c) - 1);
    out->value = v;
    out->value_len = (uint32_t)n;
    return SL_OK;
}
