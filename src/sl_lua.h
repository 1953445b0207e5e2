/* sl_lua.h -- user functions written in Lua (LuaJIT) for the YAML ops: map, filter, flat_map,
 * key, value, reducers and update_state. One Lua state per op and worker thread, sandboxed,
 * with an instruction budget per call and a memory limit per state. */
#ifndef SL_LUA_H
#define SL_LUA_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

/* What the function computes; it decides the Lua signature and how its result is read. */
typedef enum sl_lua_kind {
    SL_LUA_MAP,          /* function(r) -> record table, string (the value) */
    SL_LUA_FILTER,       /* function(r) -> truthy keeps */
    SL_LUA_FLAT_MAP,     /* function(r) -> list of records (tables or strings), or nil */
    SL_LUA_KEY,          /* function(r) -> the key (string or number) */
    SL_LUA_VALUE,        /* function(r) -> number (typed value) or string (value bytes) */
    SL_LUA_REDUCE,       /* function(a, b) -> a and b combined */
    SL_LUA_UPDATE_STATE, /* function(key, values, state) -> the new state, nil removes */
} sl_lua_kind;

/* What a sandboxed script may reach besides the safe base (sl_lua_allow_names). */
#define SL_LUA_ALLOW_IO       0x1u  /* the io library */
#define SL_LUA_ALLOW_OS       0x2u  /* all of os (the safe part: time, clock, date, difftime) */
#define SL_LUA_ALLOW_REQUIRE  0x4u  /* require and package (and so ffi) */
#define SL_LUA_ALLOW_DEBUG    0x8u  /* the debug library */
#define SL_LUA_ALLOW_BYTECODE 0x10u /* load/loadstring of precompiled chunks */

#define SL_LUA_DEFAULT_INSTRUCTIONS 10000000
#define SL_LUA_DEFAULT_MEMORY       (64u << 20)

/* How to build a function. Strings are copied by sl__lua_fn_new. */
typedef struct sl_lua_conf {
    const char *code;      /* the Lua text */
    const char *chunkname; /* what error messages call it: a file, or the YAML file */
    int first_line;        /* the line of chunkname where code starts (1 for a file) */
    /* NULL: code is a function expression ("function(r) ... end") or a chunk that returns a
     * function; else code is a chunk that defines the global function of that name. */
    const char *function;
    const char *label;        /* for reject reasons: "map at pipeline.yaml:12" */
    unsigned allow;           /* SL_LUA_ALLOW_* */
    int64_t max_instructions; /* per call; 0: no budget (and the JIT on) */
    size_t max_memory;        /* per Lua state, bytes; 0: no limit */
} sl_lua_conf;

typedef struct sl_lua_fn sl_lua_fn;

/* Compiles conf's code once (syntax errors and a result that is not a function fail here, in
 * errstr as "CHUNKNAME:LINE: message") and returns the function, or NULL. Thread: any. */
sl_lua_fn *sl__lua_fn_new(sl_lua_kind kind, const sl_lua_conf *conf, char *errstr, size_t errsize);
/* Closes every Lua state made for f. Only when no thread runs f any more. Accepts NULL. */
void sl__lua_fn_destroy(sl_lua_fn *f);

/* What f computes. */
sl_lua_kind sl__lua_fn_kind(const sl_lua_fn *f);
/* An update_state function that emits: it returns the new state and the records to emit (a
 * list, one record table, a string or nil), and its node's output is those records. */
void sl__lua_fn_set_emits(sl_lua_fn *f, bool emits);
bool sl__lua_fn_emits(const sl_lua_fn *f);

/* The op functions; opaque is the sl_lua_fn. They run on any thread, several at once (one
 * Lua state per thread), and reject a record with a reason (sl_reject_reason) when the script
 * fails, exceeds its budget or its memory. */
int sl__lua_map(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque);
int sl__lua_filter(const sl_record *in, void *opaque);
int sl__lua_flat_map(const sl_record *in, sl_emitter *e, void *opaque);
int sl__lua_key(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque);
int sl__lua_value(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque);
int sl__lua_reduce(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque);
int sl__lua_update_state(const char *key, uint32_t key_len, const sl_record *values, size_t n,
                         sl_state *state, sl_emitter *e, void *opaque);

/* The names allowed in allow: lists, NULL-terminated, in SL_LUA_ALLOW_* bit order. */
extern const char *const sl__lua_allow_names[];

/* ==== json for scripts (sl_lua_json.c) ==== */

struct lua_State;
/* Pushes the json table (decode, encode, null) onto L's stack. */
void sl__lua_json_push(struct lua_State *L);
/* Encodes the value at idx as JSON onto the stack (a string), or raises a Lua error. */
void sl__lua_json_encode_at(struct lua_State *L, int idx);
/* Decodes s[0..len) onto the stack; false (nothing pushed) and *err when s is not JSON. */
int sl__lua_json_decode_to(struct lua_State *L, const char *s, size_t len, const char **err);

#endif /* SL_LUA_H */
