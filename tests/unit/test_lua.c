/* test_lua.c -- user functions in Lua (src/sl_lua.c, sl_lua_json.c, sl_cfg_lua.c): each op
 * form through the engine (sl__context_step with a scripted source), the limits (a runaway
 * loop, unbounded memory), errors, the sandbox, json, and the YAML forms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_config.h"
#include "sl_engine.h"
#include "sl_lua.h"
#include "support.h"

#define T0 1000000

/* ==== Helpers ==== */

/* A Lua function of kind from code (an expression), as an op on line 10 of t.yaml would be. */
static sl_lua_fn *lfn_limits(sl_lua_kind kind, const char *code, int64_t instructions,
                             size_t memory, unsigned allow)
{
    char err[512];
    sl_lua_conf conf = {.code = code,
                        .chunkname = "t.yaml",
                        .first_line = 10,
                        .label = "op at t.yaml:10",
                        .allow = allow,
                        .max_instructions = instructions,
                        .max_memory = memory};
    sl_lua_fn *fn = sl__lua_fn_new(kind, &conf, err, sizeof(err));
    if (!fn) {
        fprintf(stderr, "\n    lua: %s\n", err);
    }
    return fn;
}

static sl_lua_fn *lfn(sl_lua_kind kind, const char *code)
{
    return lfn_limits(kind, code, SL_LUA_DEFAULT_INSTRUCTIONS, SL_LUA_DEFAULT_MEMORY, 0);
}

/* Runs the lines through fn as an op of its kind for one batch: the output's text (sorted,
 * support.c's format) into out, the number of failed records returned. */
static size_t run_lines(sl_lua_fn *fn, const char *const *lines, char *out, size_t size)
{
    sl_context *ctx = ts_context(1000, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "in", &src);
    switch (sl__lua_fn_kind(fn)) {
    case SL_LUA_MAP: s = sl_stream_map(s, sl__lua_map, fn); break;
    case SL_LUA_FILTER: s = sl_stream_filter(s, sl__lua_filter, fn); break;
    case SL_LUA_FLAT_MAP: s = sl_stream_flat_map(s, sl__lua_flat_map, fn); break;
    case SL_LUA_KEY: s = sl_stream_key_by(s, sl__lua_key, fn); break;
    case SL_LUA_VALUE: s = sl_stream_map_values(s, sl__lua_value, fn); break;
    default: CU_FAIL_FATAL("run_lines: not a per-record kind");
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    static ts_out o;
    CU_ASSERT_EQUAL_FATAL(ts_collect(s, &o), SL_OK);
    ts_feed(src, lines);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, &info), SL_OK);
    size_t n = strlen(o.text) < size ? strlen(o.text) : size - 1;
    memcpy(out, o.text, n);
    out[n] = '\0';
    sl_context_destroy(ctx);
    return info.failed_records;
}

/* The value the map function code returns for the value v (its text, or "ERR"). */
static void map_one(const char *code, const char *v, char *out, size_t size)
{
    sl_lua_fn *fn = lfn(SL_LUA_MAP, code);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    const char *lines[] = {v, NULL};
    if (run_lines(fn, lines, out, size) != 0) {
        snprintf(out, size, "ERR");
    }
    sl__lua_fn_destroy(fn);
}

/* ==== Each form ==== */

/* map: the record table in, a table (key, value, num) or a string out. */
static void test_map_sets_key_value_and_typed_value(void)
{
    char got[1024];
    map_one("function(r) r.key = r.value:sub(1, 1) r.value = r.value:upper() return r end", "apple",
            got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "a=APPLE");
    map_one("function(r) return r.value .. '!' end", "hi", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "hi!");
    map_one("function(r) return {key = 'k', num = #r.value} end", "four", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "k:4");
    map_one("function(r) return {key = 'k', num = 2.5} end", "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "k:2.5");
    /* false clears: no typed value any more, the value shows */
    map_one("function(r) return {key = 'k', num = false, value = 'v'} end", "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "k=v");
    /* the record's attributes (the scripted source gives none but the time; e2e tests
     * check them) */
    map_one("function(r) return string.format('%s|%s|%s', tostring(r.source), "
            "tostring(r.offset), type(r.timestamp)) end",
            "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "nil|nil|number");
    /* headers is an empty table when there are none, and read-only */
    map_one("function(r) return tostring(next(r.headers)) end", "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "nil");
    map_one("function(r) r.headers.x = 1 return r end", "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "ERR");
}

/* nil, a wrong type and a Lua error reject their record; the others go through. */
static void test_map_errors_reject_only_their_record(void)
{
    sl_lua_fn *fn = lfn(SL_LUA_MAP, "function(r)\n"
                                    "  if r.value == 'nil' then return nil end\n"
                                    "  if r.value == 'bool' then return true end\n"
                                    "  if r.value == 'err' then error('boom') end\n"
                                    "  if r.value == 'idx' then return r.nothing.x end\n"
                                    "  return r\n"
                                    "end");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    static const char *const lines[] = {"a", "nil", "bool", "err", "idx", "b", NULL};
    char got[1024];
    CU_ASSERT_EQUAL(run_lines(fn, lines, got, sizeof(got)), 4);
    CU_ASSERT_STRING_EQUAL(got, "a b");
    sl__lua_fn_destroy(fn);
}

static void test_filter_keeps_true_values(void)
{
    sl_lua_fn *fn = lfn(SL_LUA_FILTER, "function(r) return r.value:find('x') end");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    static const char *const lines[] = {"ax", "b", "xx", "c", NULL};
    char got[1024];
    CU_ASSERT_EQUAL(run_lines(fn, lines, got, sizeof(got)), 0);
    CU_ASSERT_STRING_EQUAL(got, "ax xx");
    sl__lua_fn_destroy(fn);
}

/* flat_map: a list of strings or record tables, one record table, or nil. */
static void test_flat_map_lists_tables_and_nil(void)
{
    sl_lua_fn *fn =
        lfn(SL_LUA_FLAT_MAP, "function(r)\n"
                             "  if r.value == 'none' then return nil end\n"
                             "  if r.value == 'empty' then return {} end\n"
                             "  if r.value == 'one' then return {key = 'o', value = '1'} end\n"
                             "  local out = {}\n"
                             "  for w in r.value:gmatch('%S+') do out[#out + 1] = w end\n"
                             "  out[#out + 1] = {key = 'n', num = #out}\n"
                             "  return out\n"
                             "end");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    static const char *const lines[] = {"a b", "none", "empty", "one", "c", NULL};
    char got[1024];
    CU_ASSERT_EQUAL(run_lines(fn, lines, got, sizeof(got)), 0);
    CU_ASSERT_STRING_EQUAL(got, "a b c n:1 n:2 o=1");
    sl__lua_fn_destroy(fn);
}

static void test_key_and_value_functions(void)
{
    sl_lua_fn *key = lfn(SL_LUA_KEY, "function(r) if r.value ~= 'nokey' then "
                                     "return r.value:sub(1, 1) end end");
    sl_lua_fn *val = lfn(SL_LUA_VALUE, "function(r) return #r.value end");
    CU_ASSERT_PTR_NOT_NULL_FATAL(key);
    CU_ASSERT_PTR_NOT_NULL_FATAL(val);
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "in", &src);
    s = sl_stream_key_by(s, sl__lua_key, key);
    s = sl_stream_map_values(s, sl__lua_value, val);
    s = sl_stream_reduce_by_key(s, sl_reduce_sum, NULL, 2);
    ts_out o;
    CU_ASSERT_EQUAL_FATAL(ts_collect(s, &o), SL_OK);
    static const char *const lines[] = {"apple", "avocado", "banana", "nokey", NULL};
    ts_feed(src, lines);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, &info), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "a:12 b:6");
    CU_ASSERT_EQUAL(info.failed_records, 1); /* nil key */
    sl_context_destroy(ctx);
    sl__lua_fn_destroy(key);
    sl__lua_fn_destroy(val);
}

static void feed_kv(ts_source *src, const char *key, const char *value, int64_t v)
{
    sl_record r = {.key = key, .key_len = (uint32_t)strlen(key)};
    if (value) {
        r.value = value;
        r.value_len = (uint32_t)strlen(value);
    } else {
        sl_record_set_int(&r, v);
    }
    ts_feed_records(src, &r, 1);
}

/* A Lua reducer over typed values (a sum) and over value bytes (the longest string). */
static void test_reduce_by_key_numbers_and_strings(void)
{
    sl_lua_fn *sum = lfn(SL_LUA_REDUCE, "function(a, b) return a + b end");
    sl_lua_fn *longest = lfn(SL_LUA_REDUCE, "function(a, b) if #a > #b or (#a == #b and a > b) "
                                            "then return a end return b end");
    CU_ASSERT_FATAL(sum && longest);
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out o1, o2;
    CU_ASSERT_EQUAL_FATAL(ts_collect(sl_stream_reduce_by_key(in, sl__lua_reduce, sum, 3), &o1),
                          SL_OK);
    feed_kv(src, "a", NULL, 1);
    feed_kv(src, "a", NULL, 2);
    feed_kv(src, "b", NULL, 40);
    feed_kv(src, "a", NULL, 3);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o1.text, "a:6 b:40");
    sl_context_destroy(ctx);

    ctx = ts_context(1000, 2);
    in = ts_source_add(ctx, "in", &src);
    CU_ASSERT_EQUAL_FATAL(ts_collect(sl_stream_reduce(in, sl__lua_reduce, longest), &o2), SL_OK);
    static const char *const lines[] = {"fig", "banana", "kiwi", "cherry", NULL};
    ts_feed(src, lines);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o2.text, "cherry");
    sl_context_destroy(ctx);
    sl__lua_fn_destroy(sum);
    sl__lua_fn_destroy(longest);
}

/* update_state: a table state (kept as JSON), nil removes the key, a number state. */
static void test_update_state_tables_numbers_and_removal(void)
{
    char dir[128];
    CU_ASSERT_FATAL(ts_tmpdir(dir, sizeof(dir), "lua-state"));
    sl_lua_fn *fn =
        lfn(SL_LUA_UPDATE_STATE, "function(key, values, state)\n"
                                 "  if key == 'n' then return (state or 0) + #values end\n"
                                 "  local s = state or {n = 0}\n"
                                 "  for _, r in ipairs(values) do\n"
                                 "    if r.value == 'stop' then return nil end\n"
                                 "    s.n = s.n + 1\n"
                                 "  end\n"
                                 "  return s\n"
                                 "end");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    char err[256];
    sl_context_conf conf = {
        .name = "lua", .batch_interval_ms = 1000, .workers = 2, .checkpoint_dir = dir};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    sl_stream *st = sl_stream_update_state_by_key(in, sl__lua_update_state, fn, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    ts_out o;
    CU_ASSERT_EQUAL_FATAL(ts_collect(st, &o), SL_OK);
    feed_kv(src, "a", "x", 0);
    feed_kv(src, "a", "y", 0);
    feed_kv(src, "b", "x", 0);
    feed_kv(src, "n", "x", 0);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "a={\"n\":2} b={\"n\":1} n:1");
    feed_kv(src, "a", "z", 0);
    feed_kv(src, "b", "stop", 0);
    feed_kv(src, "n", "x", 0);
    feed_kv(src, "n", "x", 0);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 1000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "a={\"n\":3} n:3");
    sl_context_destroy(ctx);
    sl__lua_fn_destroy(fn);
    ts_rmdir(dir);
}

/* ==== Limits, errors, sandbox ==== */

/* A runaway loop (also one the script wraps in pcall) is stopped by the instruction budget:
 * its record is rejected, the others go through, and the state still serves. */
static void test_runaway_loop_is_stopped(void)
{
    sl_lua_fn *fn = lfn_limits(SL_LUA_MAP,
                               "function(r)\n"
                               "  if r.value == 'loop' then while true do end end\n"
                               "  if r.value == 'caught' then\n"
                               "    while true do pcall(function() while true do end end) end\n"
                               "  end\n"
                               "  return r\n"
                               "end",
                               100000, SL_LUA_DEFAULT_MEMORY, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    static const char *const lines[] = {"a", "loop", "b", "caught", "c", NULL};
    char got[1024];
    CU_ASSERT_EQUAL(run_lines(fn, lines, got, sizeof(got)), 2);
    CU_ASSERT_STRING_EQUAL(got, "a b c");
    sl__lua_fn_destroy(fn);
}

/* A script that allocates without bound hits the memory limit: its record is rejected, the
 * state is made again, the next records go through (no instruction budget: the JIT is on). */
static void test_unbounded_memory_is_stopped(void)
{
    sl_lua_fn *fn = lfn_limits(SL_LUA_MAP,
                               "function(r)\n"
                               "  if r.value == 'big' then\n"
                               "    local t = {}\n"
                               "    for i = 1, 1e9 do t[i] = string.rep('x', 100) .. i end\n"
                               "  end\n"
                               "  return r\n"
                               "end",
                               0, 8u << 20, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    static const char *const lines[] = {"a", "big", "b", "big", "c", NULL};
    char got[1024];
    CU_ASSERT_EQUAL(run_lines(fn, lines, got, sizeof(got)), 2);
    CU_ASSERT_STRING_EQUAL(got, "a b c");
    sl__lua_fn_destroy(fn);
}

/* io, os.execute, require, loadfile, dofile, getfenv, debug, ffi and bytecode are out of
 * reach unless allowed. */
static void test_sandbox_denies_io_os_require(void)
{
    char got[1024];
    map_one("function(r) return table.concat({tostring(io), tostring(os.execute), "
            "tostring(require), tostring(loadfile), tostring(dofile), tostring(getfenv), "
            "tostring(debug), tostring(package), tostring(jit), tostring(os.time ~= nil)}, ',') "
            "end",
            "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "nil,nil,nil,nil,nil,nil,nil,nil,nil,true");
    map_one("function(r) local f, e = load(string.dump(function() return 1 end)) "
            "return tostring(f) .. ' ' .. tostring(e) end",
            "x", got, sizeof(got));
    CU_ASSERT(strstr(got, "nil load: precompiled chunks are not allowed") == got);
    /* text chunks load, in the sandbox */
    map_one("function(r) return load('return tostring(io) .. 7')() end", "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "nil7");
    /* globals a script sets stay in its own environment */
    map_one("function(r) x = (x or 0) + 1 return tostring(_G.x) end", "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "1");
    /* allowed */
    sl_lua_fn *fn = lfn_limits(SL_LUA_MAP,
                               "function(r) return type(io) .. type(os.execute) .. "
                               "type(require) end",
                               1000000, SL_LUA_DEFAULT_MEMORY,
                               SL_LUA_ALLOW_IO | SL_LUA_ALLOW_OS | SL_LUA_ALLOW_REQUIRE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fn);
    static const char *const lines[] = {"x", NULL};
    CU_ASSERT_EQUAL(run_lines(fn, lines, got, sizeof(got)), 0);
    CU_ASSERT_STRING_EQUAL(got, "tablefunctionfunction");
    sl__lua_fn_destroy(fn);
}

/* Syntax errors, code that is not a function and a missing function name fail at compile
 * time with the chunk's name and line (the YAML file's line for inline code). */
static void test_compile_errors_name_file_and_line(void)
{
    char err[512];
    sl_lua_conf conf = {.code = "function(r)\n  return r +\nend",
                        .chunkname = "t.yaml",
                        .first_line = 12,
                        .label = "map at t.yaml:11",
                        .max_instructions = 1000};
    CU_ASSERT_PTR_NULL(sl__lua_fn_new(SL_LUA_MAP, &conf, err, sizeof(err)));
    CU_ASSERT(strncmp(err, "t.yaml:14:", 10) == 0);
    conf.code = "42";
    CU_ASSERT_PTR_NULL(sl__lua_fn_new(SL_LUA_MAP, &conf, err, sizeof(err)));
    CU_ASSERT(strstr(err, "must be a function") != NULL);
    conf.code = "function other(r) return r end";
    conf.function = "shape";
    CU_ASSERT_PTR_NULL(sl__lua_fn_new(SL_LUA_MAP, &conf, err, sizeof(err)));
    CU_ASSERT(strstr(err, "no function 'shape'") != NULL);
    conf.function = "other";
    sl_lua_fn *fn = sl__lua_fn_new(SL_LUA_MAP, &conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(fn);
    sl__lua_fn_destroy(fn);
    /* a chunk that returns a function is accepted too */
    conf.function = NULL;
    conf.code = "local n = 1\nreturn function(r) return r end";
    fn = sl__lua_fn_new(SL_LUA_MAP, &conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(fn);
    sl__lua_fn_destroy(fn);
}

/* ==== json ==== */

static void test_json_decode_and_encode(void)
{
    char got[1024];
    map_one("function(r) local t = assert(json.decode(r.value)) "
            "return table.concat({t.a.b[2], tostring(t.n), t.s, tostring(t.z == json.null), "
            "tostring(t.t), #t.a.b}, '|') end",
            "{\"a\": {\"b\": [1, 2.5]}, \"n\": -3e2, \"s\": \"\\u00e9\\ud83d\\ude00\\n\", "
            "\"z\": null, \"t\": true}",
            got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "2.5|-300|\xc3\xa9\xf0\x9f\x98\x80\n|true|true|2");
    map_one("function(r) return json.encode({1, 'a\"\\n', true, json.null, {x = {}}, 0.5}) end",
            "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "[1,\"a\\\"\\n\",true,null,{\"x\":{}},0.5]");
    map_one("function(r) local t, e = json.decode(r.value) return tostring(t) .. ' ' .. e end",
            "{\"a\": 1,}", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "nil json.decode: expected a string key");
    map_one("function(r) local t = {} t.t = t return json.encode(t) end", "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "ERR");
    map_one("function(r) return tostring(json.decode('[1, 2] x')) end", "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "nil");
}

/* json numbers: decoding without strtod gives strtod's double, and encoding gives the fewest
 * digits that read back as the same double (not 17 digits: 244.85, not 244.84999999999999). */
static void test_json_numbers_exact_and_shortest(void)
{
    char got[1024];
    map_one("function(r) return json.encode({244.85, 0.1, -0.05, 1958.8, 1e-7, 123456789.125, "
            "0.1 + 0.2, 1e21, -7, 2^53, 1/3, -0.0, 5e-324}) end",
            "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "[244.85,0.1,-0.05,1958.8,0.0000001,123456789.125,"
                                "0.30000000000000004,1e+21,-7,9007199254740992,"
                                "0.3333333333333333,0,4.94065645841247e-324]");
    map_one("function(r) local bad = {} "
            "for _, s in ipairs({'244.85', '-0.05', '0', '-0', '12345678901234567', '1.5e3', "
            "'0.1', '123456789012345.6', '999999999999999', '9999999999999999', '00.5', "
            "'0.000000000000001', '-1234.5678e-2'}) do "
            "  if json.decode(s) ~= tonumber(s) or 1 / json.decode(s) ~= 1 / tonumber(s) then "
            "    bad[#bad + 1] = s end end "
            "return table.concat(bad, ' ') .. '|' .. "
            "tostring(json.decode('-')) .. tostring(json.decode('1.5.5')) end",
            "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "|nilnil");
    /* round trips of random doubles of every scale, and of prices (two decimals) */
    map_one("function(r) local bad = 0 "
            "for i = 1, 20000 do "
            "  local x = (math.random() - 0.5) * 10 ^ math.random(-12, 20) "
            "  if i % 2 == 0 then x = math.floor(x * 100) / 100 end "
            "  local e = json.encode(x) "
            "  if json.decode(e) ~= x or #e > 24 then bad = bad + 1 end "
            "end return tostring(bad) end",
            "x", got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "0");
}

/* Tables are made the size the last one at their depth had: shapes that change from one
 * text to the next still decode whole (more entries, fewer, none, arrays for objects). */
static void test_json_decode_tables_of_changing_shapes(void)
{
    char got[1024];
    map_one(
        "function(r) "
        "local function canon(v) "
        "  if type(v) ~= 'table' then return tostring(v) end "
        "  local ks = {} for k in pairs(v) do ks[#ks + 1] = k end "
        "  table.sort(ks, function(x, y) return tostring(x) < tostring(y) end) "
        "  local out = {} "
        "  for _, k in ipairs(ks) do out[#out + 1] = tostring(k) .. '=' .. canon(v[k]) end "
        "  return '{' .. table.concat(out, ',') .. '}' end "
        "local texts = {'{\"a\":1,\"b\":{\"c\":[1,2,3]},\"d\":4}', '{}', "
        "'{\"b\":{\"c\":{\"x\":1}}}', '[{\"q\":1},[5,6,7,8,9],[]]', "
        "'{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6}'} "
        "local out = {} "
        "for round = 1, 2 do for _, t in ipairs(texts) do "
        "  out[#out + 1] = canon(json.decode(t)) .. ';' .. #json.encode(json.decode(t)) end end "
        "return table.concat(out, ' ') end",
        "x", got, sizeof(got));
    const char *once = "{a=1,b={c={1=1,2=2,3=3}},d=4};31 {};2 {b={c={x=1}}};19 "
                       "{1={q=1},2={1=5,2=6,3=7,4=8,5=9},3={}};24 "
                       "{a=1,b=2,c=3,d=4,e=5,f=6};37";
    char want[1024];
    snprintf(want, sizeof(want), "%s %s", once, once);
    CU_ASSERT_STRING_EQUAL(got, want);
}

/* ==== YAML ==== */

static int load_yaml_op(const char *op, char *err, size_t errsize)
{
    char y[2048];
    snprintf(y, sizeof(y),
             "app:\n"                 /* 1 */
             "  batch_interval: 1s\n" /* 2 */
             "  checkpoint_dir: /tmp/sluice-lua-unit-never-made\n"
             "sources:\n"
             "  - {name: lines, type: tcp, port: 9999}\n" /* 5 */
             "streams:\n"
             "  - name: s\n"
             "    from: lines\n"
             "    ops:\n" /* 9 */
             "      - %s\n"
             "sinks:\n  - {name: out, type: stdout, from: s}\n",
             op);
    sl_config *cfg = NULL;
    char desc[4096];
    err[0] = '\0';
    int rc = ts_config_load(y, &cfg, desc, sizeof(desc), err, errsize);
    sl__config_destroy(cfg);
    return rc;
}

/* The YAML forms load (the old forms of the same ops too), and a syntax error in inline code
 * names the YAML file and the line of the error in it. */
static void test_yaml_forms_and_errors(void)
{
    static const char *const good[] = {
        "map: {lua: \"function(r) return r end\"}",
        "map: lower",
        "filter: {lua: \"function(r) return true end\"}",
        "filter: {json: level, equals: error}",
        "flat_map: {lua: \"function(r) return {r} end\"}",
        "key: {lua: \"function(r) return r.value end\"}",
        "key: {json: user}",
        "value: {lua: \"function(r) return 1 end\", instructions: 0, memory_mb: 16}",
        "value: 1",
        "reduce_by_key: {lua: \"function(a, b) return a + b end\", partitions: 3}",
        "reduce_by_key: sum",
        "reduce: {lua: \"function(a, b) return a + b end\"}",
        "reduce_by_key_and_window: {fn: {lua: \"function(a, b) return a + b end\"}, length: 3s}",
        "update_state: {lua: \"function(k, v, s) return s end\", partitions: 2}",
        "map: {lua: \"function(r) return r end\", allow: [io, os]}",
    };
    char err[1024];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int rc = load_yaml_op(good[i], err, sizeof(err));
        if (rc != SL_OK) {
            fprintf(stderr, "\n    %s: %s\n", good[i], err);
        }
        CU_ASSERT_EQUAL(rc, SL_OK);
    }
    static const struct {
        const char *op;
        const char *words;
    } bad[] = {
        {"map: {lua: \"function(r) return r +\"}",
         "t.yaml:10:20: error: lua: t.yaml:10: unexpected symbol"},
        {"map:\n          lua: |\n            function(r)\n              local x = = 1\n"
         "            end",
         "lua: t.yaml:13: unexpected symbol near '='"},
        {"map: {lua_file: no/such.lua}", "cannot read 'no/such.lua'"},
        {"map: {lua: \"function(r) return r end\", allow: [net]}", "lua allow"},
        {"map: {lua: \"x\", lua_file: y}", "not both"},
        {"flat_map: lower", "takes {lua: CODE}"},
        {"update_state: {lua: \"function(k, v, s) return s end\", ttl: 3}", "unknown key 'ttl'"},
        {"reduce_by_key_and_window: {fn: {lua: \"function(a, b) return a end\"}, length: 3s, "
         "inverse: true}",
         "a Lua function has no inverse"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = load_yaml_op(bad[i].op, err, sizeof(err));
        bool ok = rc == SL_ERR_INVAL && strstr(err, bad[i].words);
        if (!ok) {
            fprintf(stderr, "\n    %s: got '%s'\n", bad[i].op, err);
        }
        CU_ASSERT(ok);
    }
}

#ifdef SLUICE_WITH_KAFKA
/* A Lua op whose script reads headers turns them on for the kafka source feeding it; one
 * that does not leaves the source alone. */
static void test_yaml_lua_headers_turn_on_kafka_headers(void)
{
    static const char *const ops[] = {"map: {lua: \"function(r) return r.headers.h end\"}",
                                      "map: {lua: \"function(r) return r end\"}"};
    static const char *const want[] = {"true", "unset"};
    for (int i = 0; i < 2; i++) {
        char yaml[1024], err[1024];
        snprintf(yaml, sizeof(yaml),
                 "app: {batch_interval: 1s}\n"
                 "sources:\n"
                 "  - {name: a, type: kafka, brokers: embedded, topics: [ta]}\n"
                 "streams:\n"
                 "  - {name: s, from: a, ops: [{%s}]}\n"
                 "sinks:\n"
                 "  - {name: o, type: stdout, from: s}\n",
                 ops[i]);
        sl_config *cfg = NULL;
        int rc = sl__config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err, sizeof(err));
        if (rc != SL_OK) {
            fprintf(stderr, "\n    %s\n", err);
        }
        CU_ASSERT_EQUAL_FATAL(rc, SL_OK);
        sl_context *ctx = sl__config_build(cfg, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
        const char *h = sl_options_get(ctx->sources->opts, "headers");
        CU_ASSERT_STRING_EQUAL(h ? h : "unset", want[i]);
        sl_context_destroy(ctx);
        sl__config_destroy(cfg);
    }
}
#endif

void sl_test_register(void)
{
    SL_SUITE("lua_ops", SL_TEST(map_sets_key_value_and_typed_value),
             SL_TEST(map_errors_reject_only_their_record), SL_TEST(filter_keeps_true_values),
             SL_TEST(flat_map_lists_tables_and_nil), SL_TEST(key_and_value_functions),
             SL_TEST(reduce_by_key_numbers_and_strings),
             SL_TEST(update_state_tables_numbers_and_removal));
    SL_SUITE("lua_limits", SL_TEST(runaway_loop_is_stopped), SL_TEST(unbounded_memory_is_stopped),
             SL_TEST(sandbox_denies_io_os_require), SL_TEST(compile_errors_name_file_and_line));
    SL_SUITE("lua_json", SL_TEST(json_decode_and_encode), SL_TEST(json_numbers_exact_and_shortest),
             SL_TEST(json_decode_tables_of_changing_shapes));
#ifdef SLUICE_WITH_KAFKA
    SL_SUITE("lua_yaml", SL_TEST(yaml_forms_and_errors),
             SL_TEST(yaml_lua_headers_turn_on_kafka_headers));
#else
    SL_SUITE("lua_yaml", SL_TEST(yaml_forms_and_errors));
#endif
}
