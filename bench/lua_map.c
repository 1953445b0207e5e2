/* lua_map.c -- records per second of one worker through a Lua map (src/sl_lua.c) against
 * the built-in ops, calling the op functions directly (no engine, no batches): the cost of
 * the record table, the call and the result, with the instruction budget (the JIT off) and
 * without it (the JIT on), and of json.decode against the built-in ops' jansson.
 *
 *   lua_map [N]      N records per row (default 1000000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_engine.h"
#include "sl_lua.h"
#include "sl_yamlops.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_push(sl_emitter *e, const sl_record *r)
{
    (void)e;
    (void)r;
    return SL_OK;
}

/* Runs fn(in, out, e, opaque) n times; prints and returns records/s. */
static double run(const char *name, sl_map_fn fn, void *opaque, const char *value, long n)
{
    sl_arena arena;
    sl__arena_init(&arena, 1 << 20);
    sl_emitter e = {.push = bench_push, .arena = &arena};
    sl_record_meta meta = {.source = "in", .topic = "t", .partition = 0, .offset = 0};
    sl_record in = {.value = value, .value_len = (uint32_t)strlen(value), .meta = &meta};
    long failed = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        sl_record out = in;
        meta.offset = i;
        if (fn(&in, &out, &e, opaque) != SL_OK) {
            failed++;
        }
        if ((i & 4095) == 4095) {
            sl__arena_free(&arena);
            sl__arena_init(&arena, 1 << 20);
        }
    }
    double dt = now_s() - t0;
    sl__arena_free(&arena);
    printf("%-44s %12.0f records/s%s\n", name, (double)n / dt, failed ? " (failures!)" : "");
    return (double)n / dt;
}

static sl_lua_fn *lua(const char *code, int64_t instructions)
{
    char err[512];
    sl_lua_conf conf = {.code = code,
                        .chunkname = "bench",
                        .label = "bench",
                        .max_instructions = instructions,
                        .max_memory = SL_LUA_DEFAULT_MEMORY};
    sl_lua_fn *fn = sl__lua_fn_new(SL_LUA_MAP, &conf, err, sizeof(err));
    if (!fn) {
        fprintf(stderr, "lua: %s\n", err);
        exit(1);
    }
    return fn;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    char err[256];
    static const char text[] = "The quick brown fox jumps over the lazy dog";
    static const char json[] = "{\"user\": \"alice\", \"amount\": 42.5, \"tags\": [\"a\", \"b\"], "
                               "\"meta\": {\"ip\": \"10.0.0.1\", \"ok\": true}}";
    sl_yamlop *upper = sl__yamlops_transform_new("upper", err, sizeof(err));
    sl_yamlop *key = sl__yamlops_key_from_new(SL_YOP_ON_JSON, "user", err, sizeof(err));
    static const char up[] = "function(r) r.value = r.value:upper() return r end";
    static const char dec[] = "function(r) local t = json.decode(r.value) "
                              "r.key = t.user r.num = t.amount return r end";
    static const char rt[] = "function(r) local t = json.decode(r.value) t.seen = true "
                             "return json.encode(t) end";
    static const char id[] = "function(r) return r end";
    sl_lua_fn *fns[] = {lua(id, SL_LUA_DEFAULT_INSTRUCTIONS),
                        lua(up, SL_LUA_DEFAULT_INSTRUCTIONS),
                        lua(up, 0),
                        lua(dec, SL_LUA_DEFAULT_INSTRUCTIONS),
                        lua(dec, 0),
                        lua(rt, SL_LUA_DEFAULT_INSTRUCTIONS)};
    printf("one thread, %ld records per row\n", n);
    run("built-in map: upper", sl__yamlops_map, upper, text, n);
    run("lua identity (budget, JIT off)", sl__lua_map, fns[0], text, n);
    run("lua upper (budget, JIT off)", sl__lua_map, fns[1], text, n);
    run("lua upper (instructions: 0, JIT on)", sl__lua_map, fns[2], text, n);
    run("built-in key: {json: user} (jansson)", sl__yamlops_map, key, json, n);
    run("lua json.decode, key+num (budget)", sl__lua_map, fns[3], json, n);
    run("lua json.decode, key+num (JIT on)", sl__lua_map, fns[4], json, n);
    run("lua json.decode+encode (budget)", sl__lua_map, fns[5], json, n);
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        sl__lua_fn_destroy(fns[i]);
    }
    sl__yamlops_destroy(upper);
    sl__yamlops_destroy(key);
    return 0;
}
