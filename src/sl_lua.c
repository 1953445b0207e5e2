/* sl_lua.c -- user functions in Lua (LuaJIT): one sandboxed Lua state per op and thread, an
 * instruction budget per call and a memory limit per state, and the op functions that turn
 * records into Lua tables and what the script returns back into records. */
#include "sl_lua.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

/* The count hook runs every LUA_HOOK_EVERY VM instructions. */
#define LUA_HOOK_EVERY 1000

const char *const sl__lua_allow_names[] = {"io", "os", "require", "debug", "bytecode", NULL};

/* One Lua state: of one op, used by one thread. */
typedef struct lua_vm {
    lua_State *L;  /* NULL after a reset: made again on the next call */
    sl_lua_fn *fn; /* its op */
    size_t mem;    /* bytes the state holds (lua_vm_alloc) */
    int64_t steps; /* instructions counted in the current call */
    bool over;     /* the current call exceeded its budget */
    int fnref;     /* the user function, in the registry */
    int noheaders; /* the shared, read-only, empty headers table */
    int nullref;   /* json.null */
} lua_vm;

struct sl_lua_fn {
    uint32_t id; /* index in each thread's table of states */
    sl_lua_kind kind;
    char *code;
    char *chunkname;
    char *function;
    char *label;
    int first_line;
    unsigned allow;
    int64_t max_instructions;
    size_t max_memory;
    bool emits;         /* update_state: returns records to emit after the state */
    pthread_mutex_t mu; /* guards vms (taken when a thread makes its state) */
    lua_vm **vms;
    size_t nvms;
};

static atomic_uint lua_next_id;

/* This thread's states, by op id; the states belong to their op (freed by its destroy), the
 * array to the thread (freed at its exit). */
static _Thread_local lua_vm **tl_vms;
static _Thread_local size_t tl_cap;
static pthread_key_t lua_tl_key;
static pthread_once_t lua_tl_once = PTHREAD_ONCE_INIT;

static void lua_tl_free(void *p)
{
    free(p);
}

static void lua_tl_init(void)
{
    (void)pthread_key_create(&lua_tl_key, lua_tl_free);
}

/* ==== The state: allocator, hook, sandbox ==== */

/* lua_Alloc that keeps the state within fn->max_memory (LuaJIT raises "not enough memory"). */
static void *lua_vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lua_vm *vm = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        vm->mem -= old;
        return NULL;
    }
    size_t limit = vm->fn->max_memory;
    if (limit && nsize > old && vm->mem + (nsize - old) > limit) {
        return NULL;
    }
    void *q = realloc(ptr, nsize);
    if (q) {
        vm->mem = vm->mem - old + nsize;
    }
    return q;
}

static lua_vm *lua_vm_of(lua_State *L)
{
    void *ud;
    (void)lua_getallocf(L, &ud);
    return ud;
}

/* Stops a call that has used its budget; raised again and again if the script catches it. */
static void lua_count_hook(lua_State *L, lua_Debug *ar)
{
    lua_vm *vm = lua_vm_of(L);
    vm->steps += LUA_HOOK_EVERY;
    if (vm->steps > vm->fn->max_instructions) {
        /* from now on at every instruction: a pcall in the script cannot keep it going */
        vm->over = true;
        lua_sethook(L, lua_count_hook, LUA_MASKCOUNT, 1);
        char msg[200];
        int line = lua_getinfo(L, "Sl", ar) ? ar->currentline : -1;
        snprintf(msg, sizeof(msg),
                 "%s:%d: instruction budget of %" PRId64 " exceeded (a runaway loop?)",
                 line > 0 ? ar->short_src : vm->fn->chunkname, line, vm->fn->max_instructions);
        lua_pushstring(L, msg);
        lua_error(L);
    }
}

/* print: to stderr (stdout may carry the pipeline's output), prefixed with the op. */
static int lua_print(lua_State *L)
{
    lua_vm *vm = lua_vm_of(L);
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        if (i > 1) {
            luaL_addchar(&b, '\t');
        }
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    fprintf(stderr, "lua %s: %s\n", vm->fn->label, lua_tostring(L, -1));
    return 0;
}

/* load/loadstring of the sandbox: text only unless bytecode is allowed, in the sandbox's
 * environment (upvalue 1). */
static int lua_safe_load(lua_State *L)
{
    lua_vm *vm = lua_vm_of(L);
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    if (!s) {
        lua_pushnil(L);
        lua_pushstring(L, "load: only strings can be loaded in the sandbox");
        return 2;
    }
    const char *name = luaL_optstring(L, 2, "=(load)");
    if (len && s[0] == '\033' && !(vm->fn->allow & SL_LUA_ALLOW_BYTECODE)) {
        lua_pushnil(L);
        lua_pushstring(L, "load: precompiled chunks are not allowed (allow: [bytecode])");
        return 2;
    }
    if (luaL_loadbuffer(L, s, len, name) != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setfenv(L, -2);
    return 1;
}

/* Copies the fields names of the table at idx into the table on top (NULL: all fields). */
static void lua_copy_fields(lua_State *L, int idx, const char *const *names)
{
    if (names) {
        for (; *names; names++) {
            lua_getfield(L, idx, *names);
            lua_setfield(L, -2, *names);
        }
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -4);
    }
}

/* Builds the sandbox's environment from the globals luaL_openlibs made; leaves it on top. */
static void lua_make_env(lua_State *L, unsigned allow)
{
    static const char *const base[] = {"assert",       "error",          "ipairs",   "next",
                                       "pairs",        "pcall",          "select",   "tonumber",
                                       "tostring",     "type",           "unpack",   "xpcall",
                                       "rawequal",     "rawget",         "rawset",   "setmetatable",
                                       "getmetatable", "collectgarbage", "_VERSION", NULL};
    static const char *const libs[] = {"string", "table", "math", "bit", "coroutine", NULL};
    static const char *const os_safe[] = {"time", "clock", "date", "difftime", NULL};
    lua_newtable(L);
    int env = lua_gettop(L);
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    int g = lua_gettop(L);
    lua_pushvalue(L, env);
    lua_copy_fields(L, g, base);
    lua_pop(L, 1);
    for (int i = 0; libs[i]; i++) {
        lua_getfield(L, g, libs[i]);
        lua_newtable(L);
        lua_copy_fields(L, lua_gettop(L) - 1, NULL);
        lua_setfield(L, env, libs[i]);
        lua_pop(L, 1);
    }
    lua_getfield(L, g, "os");
    if (allow & SL_LUA_ALLOW_OS) {
        lua_setfield(L, env, "os");
    } else {
        lua_newtable(L);
        lua_copy_fields(L, lua_gettop(L) - 1, os_safe);
        lua_setfield(L, env, "os");
        lua_pop(L, 1);
    }
    static const struct {
        unsigned bit;
        const char *name;
    } opt[] = {{SL_LUA_ALLOW_IO, "io"},
               {SL_LUA_ALLOW_REQUIRE, "require"},
               {SL_LUA_ALLOW_REQUIRE, "package"},
               {SL_LUA_ALLOW_DEBUG, "debug"}};
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
        if (allow & opt[i].bit) {
            lua_getfield(L, g, opt[i].name);
            lua_setfield(L, env, opt[i].name);
        }
    }
    lua_pushvalue(L, env);
    lua_pushcclosure(L, lua_safe_load, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, env, "load");
    lua_setfield(L, env, "loadstring");
    lua_pushcfunction(L, lua_print);
    lua_setfield(L, env, "print");
    sl__lua_json_push(L);
    lua_setfield(L, env, "json");
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_pop(L, 1); /* globals */
}

static int lua_readonly(lua_State *L)
{
    return luaL_error(L, "record headers are read-only");
}

/* Loads fn's code (as an expression: "return " before it) onto the stack: 0, or the status
 * with the error message on top. */
static int lua_load_pass(lua_State *L, const sl_lua_fn *fn, bool as_expr)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i < fn->first_line; i++) {
        luaL_addchar(&b, '\n'); /* so that Lua's line numbers are the file's */
    }
    if (as_expr) {
        luaL_addstring(&b, "return ");
    }
    luaL_addstring(&b, fn->code);
    luaL_pushresult(&b);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    lua_pushfstring(L, "=%s", fn->chunkname);
    int st = luaL_loadbuffer(L, text, len, lua_tostring(L, -1));
    lua_remove(L, -2); /* name */
    lua_remove(L, -2); /* text */
    return st;
}

/* Loads fn's code in the environment at env_idx and leaves the chunk on top; a Lua error
 * otherwise. Without a function name the code is a function expression, or else a chunk. */
static void lua_load_code(lua_State *L, const sl_lua_fn *fn, int env_idx)
{
    if (!fn->function) {
        if (lua_load_pass(L, fn, true) == 0) {
            lua_pushvalue(L, env_idx);
            lua_setfenv(L, -2);
            return;
        }
        if (lua_load_pass(L, fn, false) != 0) {
            /* neither: the expression's error when the code reads as one */
            const char *c = fn->code + strspn(fn->code, " \t\r\n");
            if (strncmp(c, "function", 8) == 0) {
                lua_pop(L, 1);
            }
            lua_error(L);
        }
        lua_remove(L, -2); /* the expression's error */
    } else if (lua_load_pass(L, fn, false) != 0) {
        lua_error(L);
    }
    lua_pushvalue(L, env_idx);
    lua_setfenv(L, -2);
}

/* Sets the state up (under lua_cpcall): libraries, sandbox, the user function. */
static int lua_vm_setup(lua_State *L)
{
    lua_vm *vm = lua_touserdata(L, 1);
    sl_lua_fn *fn = vm->fn;
    lua_settop(L, 0);
    luaL_openlibs(L);
    if (fn->max_instructions > 0) {
        /* compiled loops run no hooks: without the JIT the budget holds everywhere */
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    }
    lua_make_env(L, fn->allow);
    int env = lua_gettop(L);
    lua_getfield(L, env, "json");
    lua_getfield(L, -1, "null");
    vm->nullref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    lua_newtable(L); /* no headers */
    lua_newtable(L);
    lua_pushcfunction(L, lua_readonly);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    vm->noheaders = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_load_code(L, fn, env);
    vm->steps = 0;
    lua_call(L, 0, 1);
    if (fn->function) {
        lua_pop(L, 1);
        lua_getfield(L, env, fn->function);
        if (!lua_isfunction(L, -1)) {
            return luaL_error(L, "%s: no function '%s' (it is %s)", fn->chunkname, fn->function,
                              luaL_typename(L, -1));
        }
    } else if (!lua_isfunction(L, -1)) {
        return luaL_error(L,
                          "%s:%d: the code must be a function (function(r) ... end) or return "
                          "one, not %s",
                          fn->chunkname, fn->first_line, luaL_typename(L, -1));
    }
    vm->fnref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Makes vm's Lua state; SL_OK, or an error with the message in err. */
static int lua_vm_open(lua_vm *vm, char *err, size_t errsize)
{
    vm->mem = 0;
    lua_State *L = lua_newstate(lua_vm_alloc, vm);
    if (!L) {
        snprintf(err, errsize, "cannot make a Lua state (out of memory)");
        return SL_ERR_NOMEM;
    }
    if (vm->fn->max_instructions > 0) {
        lua_sethook(L, lua_count_hook, LUA_MASKCOUNT, LUA_HOOK_EVERY);
    }
    int st = lua_cpcall(L, lua_vm_setup, vm);
    if (st != 0) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errsize, "%s", st == LUA_ERRMEM ? "memory limit exceeded" : msg ? msg : "?");
        lua_close(L);
        return SL_ERR_INVAL;
    }
    lua_settop(L, 0);
    vm->L = L;
    return SL_OK;
}

static void lua_vm_reset(lua_vm *vm)
{
    if (vm->L) {
        lua_close(vm->L);
        vm->L = NULL;
    }
}

/* This thread's state for fn, made on first use; NULL (with a reject reason) on failure. */
static lua_vm *lua_vm_get(sl_lua_fn *fn)
{
    if (fn->id < tl_cap && tl_vms[fn->id] && tl_vms[fn->id]->L) {
        return tl_vms[fn->id];
    }
    if (fn->id >= tl_cap) {
        size_t cap = tl_cap ? tl_cap : 8;
        while (cap <= fn->id) {
            cap *= 2;
        }
        lua_vm **v = realloc(tl_vms, cap * sizeof(*v));
        if (!v) {
            sl_reject_reason("out of memory");
            return NULL;
        }
        memset(v + tl_cap, 0, (cap - tl_cap) * sizeof(*v));
        pthread_once(&lua_tl_once, lua_tl_init);
        (void)pthread_setspecific(lua_tl_key, v);
        tl_vms = v;
        tl_cap = cap;
    }
    lua_vm *vm = tl_vms[fn->id];
    if (!vm) {
        vm = calloc(1, sizeof(*vm));
        pthread_mutex_lock(&fn->mu);
        lua_vm **v = vm ? realloc(fn->vms, (fn->nvms + 1) * sizeof(*v)) : NULL;
        if (v) {
            fn->vms = v;
            fn->vms[fn->nvms++] = vm;
        }
        pthread_mutex_unlock(&fn->mu);
        if (!v) {
            free(vm);
            sl_reject_reason("out of memory");
            return NULL;
        }
        vm->fn = fn;
        tl_vms[fn->id] = vm;
    }
    char err[160];
    if (lua_vm_open(vm, err, sizeof(err)) != SL_OK) {
        sl_reject_reason("lua %s: %s", fn->label, err);
        return NULL;
    }
    return vm;
}

/* ==== The function ==== */

static char *lua_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

sl_lua_fn *sl__lua_fn_new(sl_lua_kind kind, const sl_lua_conf *conf, char *errstr, size_t errsize)
{
    sl_lua_fn *fn = calloc(1, sizeof(*fn));
    if (!fn) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    fn->id = atomic_fetch_add(&lua_next_id, 1);
    fn->kind = kind;
    fn->code = lua_strdup(conf->code);
    fn->chunkname = lua_strdup(conf->chunkname);
    fn->function = lua_strdup(conf->function);
    fn->label = lua_strdup(conf->label);
    fn->first_line = conf->first_line > 0 ? conf->first_line : 1;
    fn->allow = conf->allow;
    fn->max_instructions = conf->max_instructions;
    fn->max_memory = conf->max_memory;
    pthread_mutex_init(&fn->mu, NULL);
    if (!fn->code || !fn->chunkname || !fn->label || (conf->function && !fn->function)) {
        snprintf(errstr, errsize, "out of memory");
        sl__lua_fn_destroy(fn);
        return NULL;
    }
    /* compile (and run the chunk) once now, so that errors show when the pipeline loads */
    lua_vm vm = {.fn = fn};
    if (lua_vm_open(&vm, errstr, errsize) != SL_OK) {
        sl__lua_fn_destroy(fn);
        return NULL;
    }
    lua_vm_reset(&vm);
    return fn;
}

sl_lua_kind sl__lua_fn_kind(const sl_lua_fn *fn)
{
    return fn->kind;
}

void sl__lua_fn_set_emits(sl_lua_fn *fn, bool emits)
{
    fn->emits = emits;
}

bool sl__lua_fn_emits(const sl_lua_fn *fn)
{
    return fn->emits;
}

void sl__lua_fn_destroy(sl_lua_fn *fn)
{
    if (!fn) {
        return;
    }
    for (size_t i = 0; i < fn->nvms; i++) {
        lua_vm_reset(fn->vms[i]);
        free(fn->vms[i]);
    }
    free(fn->vms);
    pthread_mutex_destroy(&fn->mu);
    free(fn->code);
    free(fn->chunkname);
    free(fn->function);
    free(fn->label);
    free(fn);
}

/* ==== Records to Lua and back ==== */

static void lua_set_str(lua_State *L, const char *name, const char *s, size_t len)
{
    if (s) {
        lua_pushlstring(L, s, len);
        lua_setfield(L, -2, name);
    }
}

static void lua_set_num(lua_State *L, const char *name, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, name);
}

/* Pushes the record table of r. */
static void lua_push_record(lua_vm *vm, const sl_record *r)
{
    lua_State *L = vm->L;
    lua_createtable(L, 0, 10);
    lua_set_str(L, "key", r->key, r->key_len);
    lua_set_str(L, "value", r->value, r->value_len);
    if (r->num_type == SL_NUM_INT) {
        lua_set_num(L, "num", (double)r->num.i);
    } else if (r->num_type == SL_NUM_DOUBLE) {
        lua_set_num(L, "num", r->num.d);
    }
    lua_set_num(L, "timestamp", (double)r->ts);
    const sl_record_meta *m = r->meta;
    if (m) {
        lua_set_str(L, "source", m->source, m->source ? strlen(m->source) : 0);
        lua_set_str(L, "topic", m->topic, m->topic ? strlen(m->topic) : 0);
        if (m->partition >= 0) {
            lua_set_num(L, "partition", m->partition);
        }
        if (m->offset >= 0) {
            lua_set_num(L, "offset", (double)m->offset);
        }
    }
    if (m && m->nheaders) {
        lua_createtable(L, 0, (int)m->nheaders);
        for (uint32_t i = 0; i < m->nheaders; i++) {
            const sl_header *h = &m->headers[i];
            if (h->value) {
                lua_pushlstring(L, h->value, h->value_len);
                lua_setfield(L, -2, h->name);
            }
        }
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->noheaders);
    }
    lua_setfield(L, -2, "headers");
}

/* The typed value of a Lua number: an integer when it is one. */
static void lua_num_to_record(sl_record *r, double d)
{
    if (d >= -9.0e18 && d <= 9.0e18 && d == (double)(int64_t)d) {
        sl_record_set_int(r, (int64_t)d);
    } else {
        sl_record_set_double(r, d);
    }
}

/* Copies the string or number at idx into batch memory. SL_OK, SL_ERR_RECORD (wrong type,
 * reason set) or SL_ERR_NOMEM. */
static int lua_to_bytes(lua_vm *vm, int idx, const char *what, sl_emitter *e, const char **s,
                        uint32_t *len)
{
    lua_State *L = vm->L;
    int t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) {
        sl_reject_reason("lua %s: %s is a %s, not a string", vm->fn->label, what,
                         lua_typename(L, t));
        return SL_ERR_RECORD;
    }
    size_t n;
    const char *p = lua_tolstring(L, idx, &n);
    if (n > UINT32_MAX) {
        sl_reject_reason("lua %s: %s is too long", vm->fn->label, what);
        return SL_ERR_RECORD;
    }
    if (!(*s = sl_emitter_copy(e, p, n))) {
        return SL_ERR_NOMEM;
    }
    *len = (uint32_t)n;
    return SL_OK;
}

/* Sets the fields of out that the record table at idx has: key, value, num, timestamp (nil
 * keeps out's, false clears key, value and num). */
static int lua_table_to_record(lua_vm *vm, int idx, sl_record *out, sl_emitter *e)
{
    lua_State *L = vm->L;
    int rc = SL_OK;
    static const char *const bytes[] = {"key", "value"};
    for (int i = 0; i < 2 && rc == SL_OK; i++) {
        lua_getfield(L, idx, bytes[i]);
        const char **s = i ? &out->value : &out->key;
        uint32_t *len = i ? &out->value_len : &out->key_len;
        if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
            *s = NULL;
            *len = 0;
        } else if (!lua_isnil(L, -1)) {
            rc = lua_to_bytes(vm, -1, bytes[i], e, s, len);
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "num");
    if (lua_type(L, -1) == LUA_TNUMBER) {
        lua_num_to_record(out, lua_tonumber(L, -1));
    } else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
        out->num_type = SL_NUM_NONE;
    } else if (!lua_isnil(L, -1) && rc == SL_OK) {
        sl_reject_reason("lua %s: num is a %s, not a number", vm->fn->label, luaL_typename(L, -1));
        rc = SL_ERR_RECORD;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "timestamp");
    double ts = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    if (ts >= 0 && ts < 9.0e18) { /* ms since the epoch; NaN and the absurd are left out */
        out->ts = (int64_t)ts;
    }
    lua_pop(L, 1);
    return rc;
}

/* ==== Calls ==== */

/* Calls the function (pushed with its nargs arguments) for nres results. SL_OK, or
 * SL_ERR_RECORD with the reason set (and the stack emptied). */
static int lua_vm_call(lua_vm *vm, int nargs, int nres)
{
    lua_State *L = vm->L;
    vm->steps = 0;
    if (vm->over) {
        lua_sethook(L, lua_count_hook, LUA_MASKCOUNT, LUA_HOOK_EVERY);
        vm->over = false;
    }
    int st = lua_pcall(L, nargs, nres, 0);
    if (st == 0 && !vm->over) {
        return SL_OK;
    }
    if (st == LUA_ERRMEM) {
        sl_reject_reason("lua %s: memory limit of %zu bytes exceeded", vm->fn->label,
                         vm->fn->max_memory);
        lua_vm_reset(vm); /* a fresh state for the next record */
        return SL_ERR_RECORD;
    }
    if (st == 0) { /* the script caught the budget's error */
        sl_reject_reason("lua %s: instruction budget of %" PRId64 " exceeded", vm->fn->label,
                         vm->fn->max_instructions);
    } else {
        const char *msg = lua_tostring(L, -1);
        sl_reject_reason("lua error: %s", msg ? msg : "(error object is not a string)");
    }
    lua_settop(L, 0);
    return SL_ERR_RECORD;
}

/* Pushes fn's function; NULL (reason set) when this thread's state cannot be made. */
static lua_vm *lua_begin(void *opaque)
{
    lua_vm *vm = lua_vm_get(opaque);
    if (vm) {
        lua_rawgeti(vm->L, LUA_REGISTRYINDEX, vm->fnref);
    }
    return vm;
}

static int lua_end(lua_vm *vm, int rc)
{
    if (vm->L) {
        lua_settop(vm->L, 0);
    }
    return rc;
}

/* Calls f (opaque) on the record table of in, for one result; *vmp is the thread's state.
 * A failure has rejected the record and ended the call. */
static int lua_call_record(void *opaque, const sl_record *in, lua_vm **vmp)
{
    lua_vm *vm = lua_begin(opaque);
    if (!vm) {
        return SL_ERR_RECORD;
    }
    *vmp = vm;
    lua_push_record(vm, in);
    return lua_vm_call(vm, 1, 1);
}

int sl__lua_map(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    lua_vm *vm;
    int rc = lua_call_record(opaque, in, &vm);
    if (rc != SL_OK) {
        return rc;
    }
    switch (lua_type(vm->L, -1)) {
    case LUA_TTABLE: rc = lua_table_to_record(vm, -1, out, e); break;
    case LUA_TSTRING:
        rc = lua_to_bytes(vm, -1, "the result", e, &out->value, &out->value_len);
        break;
    default:
        sl_reject_reason("lua %s returned %s, not a record table", vm->fn->label,
                         luaL_typename(vm->L, -1));
        rc = SL_ERR_RECORD;
    }
    return lua_end(vm, rc);
}

int sl__lua_filter(const sl_record *in, void *opaque)
{
    lua_vm *vm;
    int rc = lua_call_record(opaque, in, &vm);
    return rc != SL_OK ? rc : lua_end(vm, lua_toboolean(vm->L, -1) ? 1 : 0);
}

/* Emits the record of the Lua value at idx (a record table or a string: the value). */
static int lua_emit_one(lua_vm *vm, int idx, const sl_record *in, sl_emitter *e)
{
    sl_record out = *in;
    int rc;
    if (lua_type(vm->L, idx) == LUA_TTABLE) {
        rc = lua_table_to_record(vm, idx, &out, e);
    } else {
        rc = lua_to_bytes(vm, idx, "an item of the result", e, &out.value, &out.value_len);
    }
    return rc == SL_OK ? sl_emit(e, &out) : rc;
}

/* Emits what a function returned at idx, each record starting as a copy of base: nil emits
 * nothing, a string or a record table one record, a list its items. */
static int lua_emit_all(lua_vm *vm, int idx, const sl_record *base, sl_emitter *e)
{
    lua_State *L = vm->L;
    int t = lua_type(L, idx);
    if (t == LUA_TNIL) {
        return SL_OK;
    }
    if (t != LUA_TTABLE) {
        return lua_emit_one(vm, idx, base, e);
    }
    size_t n = lua_objlen(L, idx);
    if (n == 0) {
        /* a record table alone is one record; an empty list none */
        lua_getfield(L, idx, "value");
        lua_getfield(L, idx, "key");
        lua_getfield(L, idx, "num");
        bool one = !lua_isnil(L, -1) || !lua_isnil(L, -2) || !lua_isnil(L, -3);
        lua_pop(L, 3);
        return one ? lua_emit_one(vm, idx, base, e) : SL_OK;
    }
    int rc = SL_OK;
    for (size_t i = 1; i <= n && rc == SL_OK; i++) {
        lua_rawgeti(L, idx, (int)i);
        rc = lua_emit_one(vm, lua_gettop(L), base, e);
        lua_pop(L, 1);
    }
    return rc;
}

int sl__lua_flat_map(const sl_record *in, sl_emitter *e, void *opaque)
{
    lua_vm *vm;
    int rc = lua_call_record(opaque, in, &vm);
    if (rc != SL_OK) {
        return rc;
    }
    return lua_end(vm, lua_emit_all(vm, lua_gettop(vm->L), in, e));
}

int sl__lua_key(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    lua_vm *vm;
    int rc = lua_call_record(opaque, in, &vm);
    if (rc != SL_OK) {
        return rc;
    }
    if (lua_isnil(vm->L, -1)) {
        sl_reject_reason("lua %s returned nil: no key", vm->fn->label);
        return lua_end(vm, SL_ERR_RECORD);
    }
    return lua_end(vm, lua_to_bytes(vm, -1, "the key", e, &out->key, &out->key_len));
}

int sl__lua_value(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    lua_vm *vm;
    int rc = lua_call_record(opaque, in, &vm);
    if (rc != SL_OK) {
        return rc;
    }
    switch (lua_type(vm->L, -1)) {
    case LUA_TNUMBER: lua_num_to_record(out, lua_tonumber(vm->L, -1)); break;
    case LUA_TSTRING:
        rc = lua_to_bytes(vm, -1, "the value", e, &out->value, &out->value_len);
        break;
    case LUA_TTABLE: rc = lua_table_to_record(vm, -1, out, e); break;
    default:
        sl_reject_reason("lua %s returned %s: no value", vm->fn->label, luaL_typename(vm->L, -1));
        rc = SL_ERR_RECORD;
    }
    return lua_end(vm, rc);
}

/* A reducer's operand: the typed value, else the value bytes, else nil. */
static void lua_push_operand(lua_State *L, const sl_record *r)
{
    if (r->num_type == SL_NUM_INT) {
        lua_pushnumber(L, (double)r->num.i);
    } else if (r->num_type == SL_NUM_DOUBLE) {
        lua_pushnumber(L, r->num.d);
    } else if (r->value) {
        lua_pushlstring(L, r->value, r->value_len);
    } else {
        lua_pushnil(L);
    }
}

int sl__lua_reduce(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque)
{
    lua_vm *vm = lua_begin(opaque);
    if (!vm) {
        return SL_ERR_RECORD;
    }
    lua_push_operand(vm->L, acc);
    lua_push_operand(vm->L, r);
    int rc = lua_vm_call(vm, 2, 1);
    if (rc != SL_OK) {
        return rc;
    }
    switch (lua_type(vm->L, -1)) {
    case LUA_TNUMBER:
        lua_num_to_record(acc, lua_tonumber(vm->L, -1));
        acc->value = NULL;
        acc->value_len = 0;
        break;
    case LUA_TSTRING:
        rc = lua_to_bytes(vm, -1, "the result", e, &acc->value, &acc->value_len);
        acc->num_type = SL_NUM_NONE;
        break;
    default:
        sl_reject_reason("lua %s returned %s, not a number or a string", vm->fn->label,
                         luaL_typename(vm->L, -1));
        rc = SL_ERR_RECORD;
    }
    return lua_end(vm, rc);
}

/* ==== update_state ==== */

/* Pushes a key's state: nil, a number (typed value only), a table (bytes holding a JSON object
 * or array) or a string. */
static void lua_push_state(lua_vm *vm, const sl_state *st)
{
    lua_State *L = vm->L;
    if (!st->exists) {
        lua_pushnil(L);
    } else if (st->len == 0 && st->num_type != SL_NUM_NONE) {
        lua_pushnumber(L, st->num_type == SL_NUM_INT ? (double)st->num.i : st->num.d);
    } else if (st->len && (st->bytes[0] == '{' || st->bytes[0] == '[')) {
        const char *err;
        if (!sl__lua_json_decode_to(L, st->bytes, st->len, &err)) {
            lua_pushlstring(L, st->bytes, st->len);
        }
    } else {
        lua_pushlstring(L, st->bytes ? st->bytes : "", st->len);
    }
}

static int lua_encode_state(lua_State *L)
{
    sl__lua_json_encode_at(L, 1);
    return 1;
}

int sl__lua_update_state(const char *key, uint32_t key_len, const sl_record *values, size_t n,
                         sl_state *state, sl_emitter *e, void *opaque)
{
    lua_vm *vm = lua_begin(opaque);
    if (!vm) {
        return SL_ERR_RECORD;
    }
    lua_State *L = vm->L;
    if (!lua_checkstack(L, 8)) {
        sl_reject_reason("lua %s: Lua stack full", vm->fn->label);
        return lua_end(vm, SL_ERR_RECORD);
    }
    lua_pushlstring(L, key ? key : "", key_len);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_push_record(vm, &values[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_push_state(vm, state);
    int rc = lua_vm_call(vm, 3, vm->fn->emits ? 2 : 1);
    if (rc != SL_OK) {
        return rc;
    }
    if (vm->fn->emits) {
        /* The records to emit, keyed by the state's key unless they say otherwise, at the
         * batch time; the key is copied (the engine's bytes live for the call only). */
        sl_record base = {.ts = sl_emitter_batch_time(e), .key = "", .value = ""};
        if (key_len && !(base.key = sl_emitter_copy(e, key, key_len))) {
            return lua_end(vm, SL_ERR_NOMEM);
        }
        base.key_len = key_len;
        if ((rc = lua_emit_all(vm, lua_gettop(L), &base, e)) != SL_OK) {
            return lua_end(vm, rc);
        }
        lua_pop(L, 1);
    }
    switch (lua_type(L, -1)) {
    case LUA_TNIL: state->exists = false; break;
    case LUA_TNUMBER:
        state->exists = true;
        state->bytes = NULL;
        state->len = 0;
        state->num_type = SL_NUM_NONE;
        {
            sl_record r = {0};
            lua_num_to_record(&r, lua_tonumber(L, -1));
            state->num_type = r.num_type;
            state->num.i = r.num.i;
            if (r.num_type == SL_NUM_DOUBLE) {
                state->num.d = r.num.d;
            }
        }
        break;
    case LUA_TTABLE:
        /* encoded under pcall: a table JSON cannot hold raises an error */
        lua_pushcfunction(L, lua_encode_state);
        lua_insert(L, -2);
        if ((rc = lua_vm_call(vm, 1, 1)) != SL_OK) {
            return rc;
        }
        __attribute__((fallthrough)); /* the JSON text */
    case LUA_TSTRING:
        state->exists = true;
        state->num_type = SL_NUM_NONE;
        rc = lua_to_bytes(vm, -1, "the state", e, &state->bytes, &state->len);
        break;
    default:
        sl_reject_reason("lua %s returned %s, not a state (number, string, table or nil)",
                         vm->fn->label, luaL_typename(L, -1));
        rc = SL_ERR_RECORD;
    }
    return lua_end(vm, rc);
}
