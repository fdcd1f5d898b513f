/* The one file that talks to Lua. Each load gets its own sandbox (Box): a
 * lua_State with a capped allocator, a count hook with a per-call budget,
 * an allow-listed global table and a `run` object that reads and writes
 * the PolicyView of the current call. */
#include "policy.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua_patterns.h"
#include "watchdog.h"

#define HOOK_EVERY 1000             /* instructions between budget checks */
#define MEMORY_SLACK ((size_t)1 << 20)   /* room to raise the memory error */
#define SOURCE_MAX ((size_t)4 << 20)
#define MAX_OVERRIDES 64
/* What one call of a library function that loops in C may take on, so
 * that each ends in a fraction of a second and the watchdog's stop lands
 * at the next instruction (mneme-policy(7) lists them). */
#define SPAN_MAX ((lua_Integer)1 << 20)     /* table.move, concat, insert, remove */
#define SORT_MAX ((lua_Integer)1 << 18)     /* table.sort elements */
#define SORT_BYTES_MAX ((double)(1 << 27))  /* string bytes times log2(n) */
#define PACK_FORMAT_MAX 4096
#define LOAD_MAX ((size_t)1 << 20)

typedef struct Box {
    lua_State *L;
    struct Policy *p;
    Watchdog *dog;                  /* stops a call at its deadline or on stop */
    atomic_int expired;             /* a WatchdogReason once it fired */
    double time_limit;
    pthread_mutex_t co_lock;        /* running, for the watchdog's thread */
    lua_State *running;             /* the coroutine being resumed, or NULL */
    size_t used, cap;
    size_t refused;                 /* size of the last refused request */
    int mem_hit;                    /* refused even after an emergency GC */
    long long spent, budget;
    int in_call, failing;
    char fail_msg[256];
    char fail_where[128];           /* file:line of the first memory overrun */
    int ref_policy, ref_run, ref_layers;
    long call_no, layers_call;
    PolicyView *view;
    PolicyAction *acts;
    int max_acts, n_acts;
    int n_forks;                    /* forks queued in this call */
    char name[64];
    char *source;
    size_t source_len;
} Box;

typedef struct {
    char name[64];
    char value[256];
} Override;

struct Policy {
    Box *box;
    char *path;
    char **dirs;
    int n_dirs;
    unsigned long long seed;
    size_t mem_cap;
    long long budget;
    double time_limit;
    const atomic_int *stop;         /* the run is stopping: end any call */
    Override overrides[MAX_OVERRIDES];
    int n_overrides;
    PolicyView saved;               /* the view as the run filled it */
};

static Box *box_of(lua_State *L)
{
    return *(Box **)lua_getextraspace(L);
}

/* ---- limits: memory and instructions ---------------------------------- */

/* Where the script was when memory ran out, for a memory error that
 * reaches the top before the hook can raise it with a position. Reading
 * the stack allocates nothing. */
static void note_position(Box *b)
{
    lua_Debug ar;
    b->fail_where[0] = 0;
    if (!b->L || !b->in_call)
        return;
    for (int level = 0; lua_getstack(b->L, level, &ar); level++)
        if (lua_getinfo(b->L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(b->fail_where, sizeof b->fail_where, "%s:%d", ar.short_src, ar.currentline);
            return;
        }
}

static void *box_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    Box *b = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        b->used -= old;
        return NULL;
    }
    size_t cap = b->mem_hit || b->failing ? b->cap + MEMORY_SLACK : b->cap;
    if (nsize > old && b->used - old + nsize > cap) {
        /* Lua retries a refused request once after a full collection; a
         * second refusal of the same size is a real overrun. */
        if (b->refused == nsize && !b->mem_hit) {
            b->mem_hit = 1;
            note_position(b);
        }
        b->refused = nsize;
        return NULL;
    }
    void *q = realloc(ptr, nsize);
    if (!q)
        return NULL;
    b->refused = 0;
    b->used = b->used - old + nsize;
    return q;
}

static const char poisoned_key = 'p';

/* A coroutine the hook stopped keeps Lua's hooks switched off, so its
 * __close methods must never run: remember it for coroutine.close/wrap. */
static void poison(lua_State *co)
{
    lua_rawgetp(co, LUA_REGISTRYINDEX, &poisoned_key);
    lua_pushthread(co);
    lua_pushboolean(co, 1);
    lua_rawset(co, -3);
    lua_pop(co, 1);
}

static int is_poisoned(lua_State *L, lua_State *co)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &poisoned_key);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    int yes = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return yes;
}

/* Why the current call must stop now, or NULL. */
static const char *stop_reason(Box *b, char *buf, size_t n)
{
    int expired = atomic_load(&b->expired);
    if (!b->in_call)
        return "policy code ran outside a hook";
    if (expired == WATCHDOG_STOP)
        return "stopped: the run is quitting";
    if (expired == WATCHDOG_DEADLINE) {
        snprintf(buf, n, "time limit exceeded (%.3g s per call): an endless loop or a search too slow?",
                 b->time_limit);
        return buf;
    }
    if (b->mem_hit) {
        snprintf(buf, n, "memory limit exceeded (%zu MiB)", b->cap >> 20);
        return buf;
    }
    if (b->spent > b->budget) {
        snprintf(buf, n, "instruction budget exceeded (%lld per call): an endless loop?", b->budget);
        return buf;
    }
    return NULL;
}

static void box_hook(lua_State *L, lua_Debug *ar);

/* Once a call has overrun, every thread fires the hook at each
 * instruction and raises again, so a pcall in the script cannot swallow
 * the stop: the error reaches the top at the first unprotected
 * instruction. ar: where the script is. */
static void stop_call(lua_State *L, Box *b, lua_Debug *ar, const char *why)
{
    b->failing = 1;
    if (L != b->L)
        poison(L);
    if (ar && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        snprintf(b->fail_msg, sizeof b->fail_msg, "%s:%d: %s", ar->short_src, ar->currentline, why);
    else
        snprintf(b->fail_msg, sizeof b->fail_msg, "%s: %s", ar ? ar->short_src : b->p->path, why);
}

static void raise_stop(lua_State *L, Box *b)
{
    lua_sethook(L, box_hook, LUA_MASKCOUNT, 1);
    if (L != b->L)
        lua_sethook(b->L, box_hook, LUA_MASKCOUNT, 1);
    lua_pushstring(L, b->fail_msg);
    lua_error(L);
}

static void box_hook(lua_State *L, lua_Debug *ar)
{
    Box *b = box_of(L);
    if (!b->failing) {
        char buf[128];
        b->spent += lua_gethookcount(L);
        const char *why = stop_reason(b, buf, sizeof buf);
        if (!why)
            return;
        stop_call(L, b, ar, why);
    }
    raise_stop(L, b);
}

/* The pattern matcher's steps count as instructions; past the budget or
 * the time limit a search stops as a loop would, at the line that called
 * it. */
static void box_charge(lua_State *L, long steps)
{
    Box *b = box_of(L);
    if (!b->failing) {
        char buf[128];
        lua_Debug ar;
        b->spent += steps;
        const char *why = stop_reason(b, buf, sizeof buf);
        if (!why)
            return;
        /* the script's line, past pcall or the like */
        int level = 1, found = 0;
        while (!found && lua_getstack(L, level++, &ar))
            found = lua_getinfo(L, "Sl", &ar) && ar.currentline > 0;
        stop_call(L, b, found ? &ar : NULL, why);
    }
    raise_stop(L, b);
}

/* ---- running protected code -------------------------------------------- */

static int msgh(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING || box_of(L)->failing)
        return 1;
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
        return 1;
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    return 1;
}

/* The watchdog's thread, at the deadline or on stop: the count hook fires
 * at the next instruction of whichever thread runs (lua_sethook may be
 * called from another thread or a signal handler for this). */
static void box_fire(void *ctx, WatchdogReason why)
{
    Box *b = ctx;
    atomic_store(&b->expired, why);
    pthread_mutex_lock(&b->co_lock);
    if (b->running)
        lua_sethook(b->running, box_hook, LUA_MASKCOUNT, 1);
    lua_sethook(b->L, box_hook, LUA_MASKCOUNT, 1);
    pthread_mutex_unlock(&b->co_lock);
}

/* Runs f(ctx) under the budget; every API call that may allocate goes
 * through here, since an unprotected error would abort the process. */
static int box_run(Box *b, lua_CFunction f, void *ctx, MnError *e)
{
    lua_State *L = b->L;
    atomic_store(&b->expired, 0);
    b->running = NULL;
    b->in_call = 1;
    b->failing = 0;
    b->mem_hit = 0;
    b->refused = 0;
    b->fail_where[0] = 0;
    b->spent = 0;
    b->call_no++;
    lua_sethook(L, box_hook, LUA_MASKCOUNT, HOOK_EVERY);
    int base = lua_gettop(L);
    lua_pushcfunction(L, msgh);
    lua_pushcfunction(L, f);
    lua_pushlightuserdata(L, ctx);
    watchdog_arm(b->dog, b->time_limit);
    int st = lua_pcall(L, 1, 0, base + 1);
    watchdog_disarm(b->dog);
    int rc = 0;
    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (b->failing)
            mn_fail(e, "%s", b->fail_msg);
        else if (st == LUA_ERRMEM || b->mem_hit)
            mn_fail(e, "%s: memory limit exceeded (%zu MiB)", b->fail_where[0] ? b->fail_where : b->p->path,
                    b->cap >> 20);
        else
            mn_fail(e, "%s", msg ? msg : "unknown error");
        rc = -1;
    }
    lua_settop(L, base);
    b->in_call = 0;
    b->view = NULL;
    b->acts = NULL;
    if (rc < 0) {
        b->failing = 0;
        b->mem_hit = 0;
        lua_sethook(L, box_hook, LUA_MASKCOUNT, HOOK_EVERY);
        lua_gc(L, LUA_GCCOLLECT);   /* the runaway's garbage, before the next call */
    }
    return rc;
}

/* ---- the sandbox ------------------------------------------------------- */

/* The library function a safe_* wrapper guards. Called directly on the
 * same stack rather than through lua_call, so its argument errors still
 * name the script's line; none of those functions use upvalues. */
static lua_CFunction original(lua_State *L)
{
    return lua_tocfunction(L, lua_upvalueindex(1));
}

/* The compiler runs in C: a chunk is bounded, and a reader function's
 * pieces are gathered (each call of it under the budget) first. */
static int safe_load(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TFUNCTION) {
        luaL_Buffer buf;
        size_t total = 0;
        luaL_buffinit(L, &buf);
        for (;;) {
            lua_pushvalue(L, 1);
            lua_call(L, 0, 1);
            size_t len;
            const char *piece = lua_tolstring(L, -1, &len);
            if (lua_isnil(L, -1) || (piece && len == 0)) {
                lua_pop(L, 1);
                break;
            }
            if (!piece || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "load: the reader function must return a string");
            if ((total += len) > LOAD_MAX)
                return luaL_error(L, "load: a chunk may have at most %d bytes", (int)LOAD_MAX);
            luaL_addvalue(&buf);
        }
        luaL_pushresult(&buf);
        lua_replace(L, 1);
    } else if (lua_type(L, 1) == LUA_TSTRING && lua_rawlen(L, 1) > LOAD_MAX)
        return luaL_error(L, "load: a chunk may have at most %d bytes", (int)LOAD_MAX);
    int with_env = lua_gettop(L) >= 4;
    lua_settop(L, with_env ? 4 : 2);
    lua_pushliteral(L, "t");        /* never binary chunks */
    if (with_env)
        lua_replace(L, 3);
    return original(L)(L);
}

/* Library functions that loop in C run no instructions, so the count
 * hook cannot stop them: their work is bounded first, and charged to the
 * budget as instructions (one an element, or 64 bytes), so that a loop
 * of such calls runs out of budget as any loop does. */
static int safe_rep(lua_State *L)
{
    size_t l, lsep = 0;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    if ((double)n * (double)(l + lsep) > (double)box_of(L)->cap)
        return luaL_error(L, "string.rep: result larger than the memory limit");
    box_charge(L, (long)((double)n * (double)(l + lsep) / 64));
    return original(L)(L);
}

static int check_span(lua_State *L, const char *fn, lua_Integer from, lua_Integer to)
{
    if (to >= from && (lua_Unsigned)to - (lua_Unsigned)from >= (lua_Unsigned)SPAN_MAX)
        return luaL_error(L, "%s: range too large (at most %d elements a call)", fn, (int)SPAN_MAX);
    if (to >= from)
        box_charge(L, (long)(to - from + 1));
    return 0;
}

static int safe_move(lua_State *L)
{
    check_span(L, "table.move", luaL_checkinteger(L, 2), luaL_checkinteger(L, 3));
    return original(L)(L);
}

/* The length as the library function takes it (__len included); 0 for a
 * value that is no table, which the function itself then refuses. */
static lua_Integer table_len(lua_State *L, int arg)
{
    return lua_type(L, arg) == LUA_TTABLE ? luaL_len(L, arg) : 0;
}

static int safe_concat(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 3, 1);
    lua_Integer j = lua_isnoneornil(L, 4) ? table_len(L, 1) : luaL_checkinteger(L, 4);
    check_span(L, "table.concat", i, j);
    return original(L)(L);
}

/* insert and remove at a position shift the elements from there up. */
static void check_shift(lua_State *L, const char *fn)
{
    int is_int;
    lua_Integer pos = lua_tointegerx(L, 2, &is_int);
    if (is_int)
        check_span(L, fn, pos, table_len(L, 1));
}

static int safe_insert(lua_State *L)
{
    if (lua_gettop(L) >= 3)
        check_shift(L, "table.insert");
    return original(L)(L);
}

static int safe_remove(lua_State *L)
{
    if (lua_gettop(L) >= 2)
        check_shift(L, "table.remove");
    return original(L)(L);
}

/* Comparisons of strings cost their length: the bytes a sort may compare
 * are bounded too (elements the table holds itself). */
static int safe_sort(lua_State *L)
{
    lua_Integer n = table_len(L, 1);
    if (n > SORT_MAX)
        return luaL_error(L, "table.sort: at most %d elements a call", (int)SORT_MAX);
    double bytes = 0;
    if (lua_type(L, 1) == LUA_TTABLE)
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, 1, i) == LUA_TSTRING)
                bytes += (double)lua_rawlen(L, -1);
            lua_pop(L, 1);
        }
    if (bytes * log2((double)n + 1) > SORT_BYTES_MAX)
        return luaL_error(L, "table.sort: too many string bytes to compare (%d in %d elements)",
                          (int)fmin(bytes, INT_MAX), (int)n);
    box_charge(L, (long)(((double)n + bytes / 64) * log2((double)n + 2)));
    return original(L)(L);
}

/* pack formats are read item by item in C */
static int safe_pack_format(lua_State *L)
{
    size_t lf;
    luaL_checklstring(L, 1, &lf);
    if (lf > PACK_FORMAT_MAX)
        return luaL_error(L, "string.pack formats may have at most %d characters", PACK_FORMAT_MAX);
    return original(L)(L);
}

/* The coroutine being resumed is where the watchdog's stop must land. */
static int safe_resume(lua_State *L)
{
    Box *b = box_of(L);
    lua_State *co = lua_tothread(L, 1);
    if (!co)
        return original(L)(L);
    int n = lua_gettop(L);
    lua_pushcfunction(L, original(L));
    lua_insert(L, 1);
    pthread_mutex_lock(&b->co_lock);
    lua_State *prev = b->running;
    b->running = co;
    pthread_mutex_unlock(&b->co_lock);
    int st = lua_pcall(L, n, LUA_MULTRET, 0);
    pthread_mutex_lock(&b->co_lock);
    b->running = prev;
    pthread_mutex_unlock(&b->co_lock);
    if (atomic_load(&b->expired))
        lua_sethook(L, box_hook, LUA_MASKCOUNT, 1);
    if (st != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

/* Lua runs an error handler, and finalizers and __close methods on some
 * paths, with hooks off, so a loop there could never be stopped: the
 * handler runs after the unwinding instead, and metatables may not carry
 * __gc or __close (policies have no resources to release). */
static int safe_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_checkstack(L, n + 2, "xpcall");
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    for (int i = 3; i <= n; i++)
        lua_pushvalue(L, i);
    if (lua_pcall(L, n - 2, LUA_MULTRET, 0) == LUA_OK)
        return lua_gettop(L) - n;
    if (box_of(L)->failing)
        return lua_error(L);        /* the stop is not the script's to handle */
    lua_pushvalue(L, 2);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

static int safe_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        static const char *const banned[] = { "__gc", "__close", NULL };
        for (int i = 0; banned[i]; i++) {
            lua_pushstring(L, banned[i]);
            if (lua_rawget(L, 2) != LUA_TNIL)
                return luaL_error(L, "%s metamethods are not allowed in a policy", banned[i]);
            lua_pop(L, 1);
        }
    }
    return original(L)(L);
}

static int safe_coclose(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    if (co && is_poisoned(L, co)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "the coroutine was stopped by the policy's limits");
        return 2;
    }
    return original(L)(L);
}

/* coroutine.wrap's function, as the library's but closing the
 * coroutine's variables through safe_coclose. Upvalues: the coroutine,
 * coroutine.resume, the library's coroutine.close. */
static int wrap_call(lua_State *L)
{
    int n = lua_gettop(L);
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    luaL_checkstack(L, 3, "coroutine.wrap");
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_rotate(L, 1, 2);
    lua_call(L, n + 1, LUA_MULTRET);
    if (lua_toboolean(L, 1))
        return lua_gettop(L) - 1;
    lua_settop(L, 2);
    int st = lua_status(co);
    if (st != LUA_OK && st != LUA_YIELD) {
        lua_pushvalue(L, lua_upvalueindex(3));
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_call(L, 1, 2);          /* close its variables; their error wins */
        if (!lua_toboolean(L, -2))
            lua_replace(L, 2);
        lua_settop(L, 2);
    }
    if (lua_type(L, 2) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int safe_cowrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_getglobal(L, LUA_COLIBNAME);
    lua_getfield(L, -1, "resume");
    lua_pushvalue(L, lua_upvalueindex(1));      /* the guarded close */
    lua_remove(L, -3);
    lua_pushcclosure(L, wrap_call, 3);
    return 1;
}

static int safe_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") && strcmp(opt, "collect") && strcmp(opt, "step"))
        return luaL_error(L, "collectgarbage('%s') is not allowed in a policy", opt);
    return original(L)(L);
}

static int queue_action(lua_State *L, PolicyActionKind kind, const char *text, const char *overrides);

/* print goes to the run's log: the terminal belongs to the UI. */
static int sandbox_print(lua_State *L)
{
    luaL_Buffer buf;
    int n = lua_gettop(L);
    luaL_buffinit(L, &buf);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&buf, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&buf);
    }
    luaL_pushresult(&buf);
    if (box_of(L)->view)
        return queue_action(L, POLICY_LOG, lua_tostring(L, -1), "");
    return 0;
}

static int valid_module_name(const char *s)
{
    if (!*s || *s == '.')
        return 0;
    for (const char *c = s; *c; c++) {
        int okc = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                  *c == '_' || *c == '-' || *c == '.';
        if (!okc || (c[0] == '.' && c[1] == '.'))
            return 0;
    }
    return s[strlen(s) - 1] != '.';
}

/* The only searcher besides package.preload: text files under the search
 * folders, whatever the script does to package.path. */
static int search_dirs(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    Policy *p = box_of(L)->p;
    if (!valid_module_name(name)) {
        lua_pushfstring(L, "\n\tmodule name '%s' is not letters, digits, '_', '-' and dots", name);
        return 1;
    }
    char rel[256];
    if (snprintf(rel, sizeof rel, "%s", name) >= (int)sizeof rel) {
        lua_pushliteral(L, "\n\tmodule name too long");
        return 1;
    }
    for (char *c = rel; *c; c++)
        if (*c == '.')
            *c = '/';
    luaL_Buffer tried;
    luaL_buffinit(L, &tried);
    for (int i = 0; i < p->n_dirs; i++) {
        const char *path = lua_pushfstring(L, "%s/%s.lua", p->dirs[i], rel);
        FILE *f = fopen(path, "r");
        if (f) {
            fclose(f);
            if (luaL_loadfilex(L, path, "t") != LUA_OK)
                return lua_error(L);
            lua_pushstring(L, path);
            return 2;
        }
        lua_pop(L, 1);
        lua_pushfstring(L, "\n\tno file '%s/%s.lua'", p->dirs[i], rel);
        luaL_addvalue(&tried);
    }
    luaL_pushresult(&tried);
    return 1;
}

static void open_lib(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_requiref(L, name, open, 1);
    lua_pop(L, 1);
}

static void drop_fields(lua_State *L, const char *table, const char *const *names)
{
    lua_getglobal(L, table);
    for (; *names; names++) {
        lua_pushnil(L);
        lua_setfield(L, -2, *names);
    }
    lua_pop(L, 1);
}

/* Replaces t[name] with f, which gets the original as its upvalue. */
static void wrap_field(lua_State *L, const char *table, const char *name, lua_CFunction f)
{
    if (table)
        lua_getglobal(L, table);
    else
        lua_pushglobaltable(L);
    lua_getfield(L, -1, name);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static void sandbox_package(lua_State *L)
{
    static const char *const drop[] = { "loadlib", "searchpath", "cpath", NULL };
    drop_fields(L, "package", drop);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_createtable(L, 2, 0);
    lua_rawgeti(L, -2, 1);          /* the package.preload searcher */
    lua_rawseti(L, -2, 1);
    lua_pushcfunction(L, search_dirs);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -3, "searchers");
    lua_pop(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    Policy *p = box_of(L)->p;
    for (int i = 0; i < p->n_dirs; i++) {
        lua_pushfstring(L, "%s%s/?.lua", i ? ";" : "", p->dirs[i]);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_setfield(L, -2, "path");    /* informative only: search_dirs ignores it */
    lua_pop(L, 1);
}

static void sandbox_os(lua_State *L)
{
    luaL_requiref(L, "os", luaopen_os, 0);
    lua_createtable(L, 0, 2);
    lua_getfield(L, -2, "clock");
    lua_setfield(L, -2, "clock");
    lua_getfield(L, -2, "time");
    lua_setfield(L, -2, "time");
    lua_setglobal(L, "os");
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getglobal(L, "os");
    lua_setfield(L, -2, "os");
    lua_pop(L, 1);
}

static void seed_random(lua_State *L, unsigned long long seed)
{
    lua_getglobal(L, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, (lua_Integer)seed);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
}

static int sandbox_init(lua_State *L)
{
    static const char *const drop_base[] = { "dofile", "loadfile", "warn", NULL };
    static const char *const drop_string[] = { "dump", NULL };
    Policy *p = box_of(L)->p;
    open_lib(L, LUA_GNAME, luaopen_base);
    open_lib(L, LUA_LOADLIBNAME, luaopen_package);
    open_lib(L, LUA_COLIBNAME, luaopen_coroutine);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
    sandbox_os(L);
    drop_fields(L, LUA_GNAME, drop_base);
    drop_fields(L, LUA_STRLIBNAME, drop_string);
    wrap_field(L, NULL, "load", safe_load);
    wrap_field(L, NULL, "collectgarbage", safe_collectgarbage);
    wrap_field(L, NULL, "xpcall", safe_xpcall);
    wrap_field(L, NULL, "setmetatable", safe_setmetatable);
    wrap_field(L, LUA_COLIBNAME, "close", safe_coclose);
    wrap_field(L, LUA_COLIBNAME, "resume", safe_resume);
    lua_getglobal(L, LUA_COLIBNAME);
    lua_getfield(L, -1, "close");
    lua_pushcclosure(L, safe_cowrap, 1);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &poisoned_key);
    wrap_field(L, LUA_STRLIBNAME, "rep", safe_rep);
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_patterns_register(L, -1, box_charge);
    lua_pop(L, 1);
    wrap_field(L, LUA_STRLIBNAME, "pack", safe_pack_format);
    wrap_field(L, LUA_STRLIBNAME, "unpack", safe_pack_format);
    wrap_field(L, LUA_STRLIBNAME, "packsize", safe_pack_format);
    wrap_field(L, LUA_TABLIBNAME, "move", safe_move);
    wrap_field(L, LUA_TABLIBNAME, "concat", safe_concat);
    wrap_field(L, LUA_TABLIBNAME, "insert", safe_insert);
    wrap_field(L, LUA_TABLIBNAME, "remove", safe_remove);
    wrap_field(L, LUA_TABLIBNAME, "sort", safe_sort);
    lua_pushcfunction(L, sandbox_print);
    lua_setglobal(L, "print");
    sandbox_package(L);
    seed_random(L, p->seed);
    return 0;
}

/* ---- views: run and its layers ----------------------------------------- */

static PolicyView *view_of(lua_State *L)
{
    PolicyView *v = box_of(L)->view;
    if (!v)
        luaL_error(L, "run is only available inside a hook");
    return v;
}

static int field_error(lua_State *L, const char *obj, const char *key)
{
    return luaL_error(L, "%s has no field '%s'", obj, key);
}

static double check_rate(lua_State *L, const char *what)
{
    if (lua_type(L, 3) != LUA_TNUMBER)
        luaL_error(L, "%s must be a number (got %s)", what, luaL_typename(L, 3));
    double x = lua_tonumber(L, 3);
    if (!isfinite(x) || x < 0)
        luaL_error(L, "%s must be a finite number >= 0 (got %f)", what, x);
    return x;
}

static const char *layer_kind(const char *name)
{
    if (!strcmp(name, "embeddings"))
        return "embeddings";
    if (!strncmp(name, "layer.", 6))
        return "block";
    if (!strcmp(name, "pooler"))
        return "pooler";
    return "head";
}

static int check_layer(lua_State *L, PolicyView **v)
{
    int *ix = luaL_checkudata(L, 1, "mneme.layer");
    *v = view_of(L);
    if (*ix >= (*v)->n_layers)
        luaL_error(L, "layer %d no longer exists", *ix + 1);
    return *ix;
}

static int layer_index(lua_State *L)
{
    PolicyView *v;
    int i = check_layer(L, &v);
    const PolicyLayer *l = &v->layers[i];
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "name"))
        lua_pushstring(L, l->name);
    else if (!strcmp(k, "index"))
        lua_pushinteger(L, i + 1);
    else if (!strcmp(k, "frozen"))
        lua_pushboolean(L, l->frozen);
    else if (!strcmp(k, "lr_scale"))
        lua_pushnumber(L, l->lr_scale);
    else if (!strcmp(k, "trainable_params"))
        lua_pushinteger(L, l->trainable_params);
    else if (!strcmp(k, "drift"))
        lua_pushnumber(L, l->drift);
    else if (!strcmp(k, "kind"))
        lua_pushstring(L, layer_kind(l->name));
    else if (!strcmp(k, "block")) {
        if (strncmp(l->name, "layer.", 6))
            lua_pushnil(L);
        else
            lua_pushinteger(L, strtol(l->name + 6, NULL, 10));
    } else
        return field_error(L, "layer", k);
    return 1;
}

static int layer_newindex(lua_State *L)
{
    PolicyView *v;
    int i = check_layer(L, &v);
    PolicyLayer *l = &v->layers[i];
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "frozen")) {
        if (lua_type(L, 3) != LUA_TBOOLEAN)
            return luaL_error(L, "%s.frozen must be a boolean (got %s)", l->name, luaL_typename(L, 3));
        l->frozen = lua_toboolean(L, 3);
    } else if (!strcmp(k, "lr_scale")) {
        char what[64];
        snprintf(what, sizeof what, "%s.lr_scale", l->name);
        l->lr_scale = check_rate(L, what);
    } else if (!strcmp(k, "name") || !strcmp(k, "index") || !strcmp(k, "trainable_params") ||
               !strcmp(k, "drift") || !strcmp(k, "kind") || !strcmp(k, "block"))
        return luaL_error(L, "%s.%s is read-only", l->name, k);
    else
        return field_error(L, "layer", k);
    return 0;
}

static int layer_tostring(lua_State *L)
{
    PolicyView *v;
    int i = check_layer(L, &v);
    lua_pushfstring(L, "layer %s", v->layers[i].name);
    return 1;
}

/* The proxies are made once per state and reused, so a script may keep a
 * layer across calls and compare layers by identity. */
static void push_layer_proxy(lua_State *L, Box *b, int i)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->ref_layers);
    if (lua_rawgeti(L, -1, i + 1) == LUA_TNIL) {
        lua_pop(L, 1);
        int *ix = lua_newuserdatauv(L, sizeof *ix, 0);
        *ix = i;
        luaL_setmetatable(L, "mneme.layer");
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, i + 1);
    }
    lua_remove(L, -2);
}

/* A fresh array per call (so a script that edits it only edits its own
 * copy), cached within the call in the run's uservalue. */
static void push_layers(lua_State *L, Box *b, const PolicyView *v)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->ref_run);
    if (b->layers_call == b->call_no) {
        lua_getiuservalue(L, -1, 1);
        lua_remove(L, -2);
        return;
    }
    lua_createtable(L, v->n_layers, 0);
    for (int i = 0; i < v->n_layers; i++) {
        push_layer_proxy(L, b, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, -3, 1);
    lua_remove(L, -2);
    b->layers_call = b->call_no;
}

static void push_score(lua_State *L, const PolicyScore *s, const char *key)
{
    if (!s->has)
        return;
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, s->acc);
    lua_setfield(L, -2, "acc");
    lua_pushnumber(L, s->loss);
    lua_setfield(L, -2, "loss");
    lua_setfield(L, -2, key);
}

static void push_metrics(lua_State *L, const PolicyMetrics *m)
{
    if (!m->has) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, m->step);
    lua_setfield(L, -2, "step");
    push_score(L, &m->new_task, "new");
    push_score(L, &m->original, "original");
}

static int run_method(lua_State *L);

static const char *const run_methods[] = { "log", "pause", "checkpoint", "fork", "stop", "layer", NULL };

static int push_run_field(lua_State *L, Box *b, const PolicyView *v, const char *k)
{
    if (!strcmp(k, "step"))
        lua_pushinteger(L, v->step);
    else if (!strcmp(k, "total_steps"))
        lua_pushinteger(L, v->total_steps);
    else if (!strcmp(k, "warmup_steps"))
        lua_pushinteger(L, v->warmup_steps);
    else if (!strcmp(k, "epoch"))
        lua_pushnumber(L, v->epoch);
    else if (!strcmp(k, "phase"))
        lua_pushstring(L, v->phase);
    else if (!strcmp(k, "base_lr"))
        lua_pushnumber(L, v->base_lr);
    else if (!strcmp(k, "lr"))
        lua_pushnumber(L, v->lr);
    else if (!strcmp(k, "ewc_lambda"))
        lua_pushnumber(L, v->ewc_lambda);
    else if (!strcmp(k, "metrics"))
        push_metrics(L, &v->metrics);
    else if (!strcmp(k, "baseline"))
        push_metrics(L, &v->baseline);
    else if (!strcmp(k, "best"))
        push_metrics(L, &v->best);
    else if (!strcmp(k, "crossover_step")) {
        if (v->crossover_step < 0)
            lua_pushnil(L);
        else
            lua_pushinteger(L, v->crossover_step);
    } else if (!strcmp(k, "params")) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, b->ref_policy);
        lua_getfield(L, -1, "params");
        lua_remove(L, -2);
    } else if (!strcmp(k, "layers"))
        push_layers(L, b, v);
    else
        return 0;
    return 1;
}

static int run_index(lua_State *L)
{
    Box *b = box_of(L);
    const char *k = luaL_checkstring(L, 2);
    for (int i = 0; run_methods[i]; i++)
        if (!strcmp(k, run_methods[i])) {
            lua_pushstring(L, k);
            lua_pushcclosure(L, run_method, 1);
            return 1;
        }
    if (!push_run_field(L, b, view_of(L), k))
        return field_error(L, "run", k);
    return 1;
}

static int run_newindex(lua_State *L)
{
    PolicyView *v = view_of(L);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "lr"))
        v->lr = check_rate(L, "run.lr");
    else if (!strcmp(k, "ewc_lambda"))
        v->ewc_lambda = check_rate(L, "run.ewc_lambda");
    else {
        lua_settop(L, 2);
        if (push_run_field(L, box_of(L), v, k))
            return luaL_error(L, "run.%s is read-only", k);
        return field_error(L, "run", k);
    }
    return 0;
}

/* ---- actions ----------------------------------------------------------- */

static PolicyAction *push_action(lua_State *L, PolicyActionKind kind, const char *text, const char *overrides)
{
    Box *b = box_of(L);
    if (!b->view)
        luaL_error(L, "actions are only available inside a hook");
    if (!b->acts || b->n_acts >= b->max_acts)
        luaL_error(L, "too many actions in one call (at most %d)", b->max_acts);
    PolicyAction *a = &b->acts[b->n_acts++];
    a->kind = kind;
    snprintf(a->text, sizeof a->text, "%s", text);
    snprintf(a->overrides, sizeof a->overrides, "%s", overrides);
    a->refused[0] = 0;
    return a;
}

static int queue_action(lua_State *L, PolicyActionKind kind, const char *text, const char *overrides)
{
    push_action(L, kind, text, overrides);
    return 0;
}

/* run:fork returns true, or nil and why when the branch could not run
 * beside the others: the policy can react, and the refusal is still
 * recorded and shown (the action carries it). */
static int queue_fork(lua_State *L, const char *name, const char *overrides)
{
    Box *b = box_of(L);
    const PolicyView *v = view_of(L);
    PolicyAction *a = push_action(L, POLICY_FORK, name, overrides);
    if (v->branch_limit > 0 && v->open_branches + b->n_forks >= v->branch_limit) {
        snprintf(a->refused, sizeof a->refused, "at most %d branches can be open at once, "
                 "the run included", v->branch_limit);
        lua_pushnil(L);
        lua_pushfstring(L, "fork %s refused: %s", name, a->refused);
        return 2;
    }
    b->n_forks++;
    lua_pushboolean(L, 1);
    return 1;
}

static const char *check_tag(lua_State *L, int arg, const char *what)
{
    const char *s = luaL_optstring(L, arg, "");
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            luaL_error(L, "%s '%s' may only have letters, digits, '.', '_' and '-'", what, s);
    if (strlen(s) >= sizeof ((PolicyAction *)0)->text)
        luaL_error(L, "%s is too long", what);
    return s;
}

static int cmp_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fork overrides as sorted "key=value" lines, so the record is stable. */
static void fork_overrides(lua_State *L, int arg, char *out, size_t n)
{
    const char *lines[64];
    int count = 0;
    out[0] = 0;
    if (lua_isnoneornil(L, arg))
        return;
    luaL_checktype(L, arg, LUA_TTABLE);
    luaL_checkstack(L, 70, "fork overrides");
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        int t = lua_type(L, -1);
        if (lua_type(L, -2) != LUA_TSTRING || (t != LUA_TNUMBER && t != LUA_TBOOLEAN && t != LUA_TSTRING))
            luaL_error(L, "fork overrides: expected key = number, boolean or string");
        if (count == 64)
            luaL_error(L, "fork overrides: too many");
        const char *v = luaL_tolstring(L, -1, NULL);
        /* key value text -> line key: the line stays on the stack, safe from the collector */
        lines[count++] = lua_pushfstring(L, "%s=%s\n", lua_tostring(L, -3), v);
        lua_replace(L, -3);
        lua_pop(L, 1);
        lua_insert(L, -2);
    }
    qsort(lines, (size_t)count, sizeof *lines, cmp_strings);
    size_t len = 0;
    for (int i = 0; i < count; i++) {
        size_t l = strlen(lines[i]);
        if (len + l >= n)
            luaL_error(L, "fork overrides are too long (at most %d bytes)", (int)n - 1);
        memcpy(out + len, lines[i], l + 1);
        len += l;
    }
}

static int run_method(lua_State *L)
{
    const char *m = lua_tostring(L, lua_upvalueindex(1));
    if (!luaL_testudata(L, 1, "mneme.run"))
        return luaL_error(L, "call it as run:%s(...), with a colon", m);
    Box *b = box_of(L);
    if (!strcmp(m, "log"))
        return queue_action(L, POLICY_LOG, luaL_tolstring(L, 2, NULL), "");
    if (!strcmp(m, "pause"))
        return queue_action(L, POLICY_PAUSE, luaL_optstring(L, 2, ""), "");
    if (!strcmp(m, "stop"))
        return queue_action(L, POLICY_STOP, luaL_optstring(L, 2, ""), "");
    if (!strcmp(m, "checkpoint"))
        return queue_action(L, POLICY_CHECKPOINT, check_tag(L, 2, "checkpoint tag"), "");
    if (!strcmp(m, "fork")) {
        char ov[sizeof ((PolicyAction *)0)->overrides];
        const char *name = check_tag(L, 2, "fork name");
        if (!*name)
            return luaL_error(L, "run:fork needs a name");
        fork_overrides(L, 3, ov, sizeof ov);
        return queue_fork(L, name, ov);
    }
    /* layer(name) */
    const char *name = luaL_checkstring(L, 2);
    PolicyView *v = view_of(L);
    for (int i = 0; i < v->n_layers; i++)
        if (!strcmp(v->layers[i].name, name)) {
            push_layer_proxy(L, b, i);
            return 1;
        }
    lua_pushnil(L);
    return 1;
}

static void make_metatables(lua_State *L)
{
    static const luaL_Reg run_mt[] = { { "__index", run_index }, { "__newindex", run_newindex }, { NULL, NULL } };
    static const luaL_Reg layer_mt[] = {
        { "__index", layer_index }, { "__newindex", layer_newindex }, { "__tostring", layer_tostring }, { NULL, NULL }
    };
    luaL_newmetatable(L, "mneme.run");
    luaL_setfuncs(L, run_mt, 0);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    luaL_newmetatable(L, "mneme.layer");
    luaL_setfuncs(L, layer_mt, 0);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

/* ---- loading ----------------------------------------------------------- */

static const char *const hooks[] = { "setup", "on_step", "on_eval", "on_checkpoint", "on_diverge",
                                     NULL };

static int is_hook(const char *k)
{
    for (int i = 0; hooks[i]; i++)
        if (!strcmp(k, hooks[i]))
            return 1;
    return 0;
}

static void default_name(Box *b, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".lua"))
        n -= 4;
    if (n >= sizeof b->name)
        n = sizeof b->name - 1;
    memcpy(b->name, base, n);
    b->name[n] = 0;
}

/* Checks the table the file returned: hooks are functions, an on_*
 * that is not a hook is a typo, params hold numbers, booleans, strings. */
static void check_policy_table(lua_State *L, Box *b, const char *path)
{
    if (!lua_istable(L, -1))
        luaL_error(L, "%s: a policy must return a table (got %s)", path, luaL_typename(L, -1));
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (k && is_hook(k) && !lua_isfunction(L, -1))
            luaL_error(L, "%s: %s must be a function (got %s)", path, k, luaL_typename(L, -1));
        if (k && !strncmp(k, "on_", 3) && !is_hook(k))
            luaL_error(L, "%s: unknown hook '%s' (hooks: setup, on_step, on_eval, on_checkpoint, "
                       "on_diverge)", path, k);
        lua_pop(L, 1);
    }
    if (lua_getfield(L, t, "name") == LUA_TSTRING)
        snprintf(b->name, sizeof b->name, "%s", lua_tostring(L, -1));
    else if (!lua_isnil(L, -1))
        luaL_error(L, "%s: name must be a string", path);
    lua_pop(L, 1);
    int pt = lua_getfield(L, t, "params");
    if (pt == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, t, "params");
    } else if (pt != LUA_TTABLE)
        luaL_error(L, "%s: params must be a table", path);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        int vt = lua_type(L, -1);
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "%s: params keys must be names", path);
        if (vt != LUA_TNUMBER && vt != LUA_TBOOLEAN && vt != LUA_TSTRING)
            luaL_error(L, "%s: params.%s must be a number, boolean or string (got %s)", path,
                       lua_tostring(L, -2), luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

typedef struct {
    Box *b;
    const char *path;
} LoadCtx;

static int load_protected(lua_State *L)
{
    LoadCtx *c = lua_touserdata(L, 1);
    Box *b = c->b;
    sandbox_init(L);
    make_metatables(L);
    lua_newtable(L);
    b->ref_layers = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newuserdatauv(L, 1, 1);
    luaL_setmetatable(L, "mneme.run");
    b->ref_run = luaL_ref(L, LUA_REGISTRYINDEX);
    if (b->source_len && b->source[0] == LUA_SIGNATURE[0])
        return luaL_error(L, "%s: a binary chunk; policies must be Lua source text", c->path);
    lua_pushfstring(L, "@%s", c->path);
    if (luaL_loadbufferx(L, b->source, b->source_len, lua_tostring(L, -1), "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    check_policy_table(L, b, c->path);
    b->ref_policy = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int read_source(const char *path, char **out, size_t *len, MnError *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mn_fail(e, "%s: %s", path, strerror(errno));
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || (size_t)size > SOURCE_MAX || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return mn_fail(e, "%s: not a readable file of at most %zu MiB", path, SOURCE_MAX >> 20);
    }
    char *buf = malloc((size_t)size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)size, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return mn_fail(e, "%s: cannot read", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

static void box_free(Box *b)
{
    if (!b)
        return;
    watchdog_close(b->dog);
    if (b->L) {
        b->in_call = 0;             /* finalizers may not run policy code now */
        lua_close(b->L);
    }
    pthread_mutex_destroy(&b->co_lock);
    free(b->source);
    free(b);
}

static int box_open(Policy *p, Box **out, MnError *e)
{
    Box *b = calloc(1, sizeof *b);
    if (!b)
        return mn_fail(e, "out of memory");
    b->p = p;
    b->cap = p->mem_cap;
    b->budget = p->budget;
    b->time_limit = p->time_limit;
    b->ref_policy = b->ref_run = b->ref_layers = LUA_NOREF;
    pthread_mutex_init(&b->co_lock, NULL);
    default_name(b, p->path);
    if (read_source(p->path, &b->source, &b->source_len, e) < 0 ||
        watchdog_open(&b->dog, box_fire, b, e) < 0) {
        box_free(b);
        return -1;
    }
    watchdog_set_stop_flag(b->dog, p->stop);
    b->L = lua_newstate(box_alloc, b);
    if (!b->L) {
        box_free(b);
        return mn_fail(e, "%s: cannot create a Lua state", p->path);
    }
    *(Box **)lua_getextraspace(b->L) = b;
    LoadCtx c = { b, p->path };
    if (box_run(b, load_protected, &c, e) < 0) {
        box_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

/* ---- parameters -------------------------------------------------------- */

typedef struct {
    const char *name, *text;
    char why[200];
} ParamCtx;

static int parse_bool(const char *s, int *v)
{
    static const char *const yes[] = { "true", "yes", "on", "1", NULL }, *const no[] = { "false", "no", "off", "0", NULL };
    for (int i = 0; yes[i]; i++)
        if (!strcmp(s, yes[i]))
            return *v = 1, 0;
    for (int i = 0; no[i]; i++)
        if (!strcmp(s, no[i]))
            return *v = 0, 0;
    return -1;
}

static int set_param_protected(lua_State *L)
{
    ParamCtx *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, box_of(L)->ref_policy);
    lua_getfield(L, -1, "params");
    lua_pushstring(L, c->name);
    int t = lua_rawget(L, -2);
    if (t == LUA_TNUMBER) {
        char *end;
        errno = 0;
        double x = strtod(c->text, &end);
        if (end == c->text || *end || errno || !isfinite(x)) {
            snprintf(c->why, sizeof c->why, "policy.%s: expected a number, got '%s'", c->name, c->text);
            return 0;
        }
        if (x == floor(x) && fabs(x) < 9e15 && lua_isinteger(L, -1))
            lua_pushinteger(L, (lua_Integer)x);
        else
            lua_pushnumber(L, x);
    } else if (t == LUA_TBOOLEAN) {
        int v;
        if (parse_bool(c->text, &v) < 0) {
            snprintf(c->why, sizeof c->why, "policy.%s: expected true or false, got '%s'", c->name, c->text);
            return 0;
        }
        lua_pushboolean(L, v);
    } else if (t == LUA_TSTRING)
        lua_pushstring(L, c->text);
    else {
        snprintf(c->why, sizeof c->why, "policy has no parameter '%s'", c->name);
        return 0;
    }
    lua_setfield(L, -3, c->name);
    return 0;
}

static int set_param(Box *b, const char *name, const char *text, MnError *e)
{
    ParamCtx c = { name, text, "" };
    if (box_run(b, set_param_protected, &c, e) < 0)
        return -1;
    if (c.why[0])
        return mn_fail(e, "%s", c.why);
    return 0;
}

static void remember_override(Policy *p, const char *name, const char *text)
{
    int i = 0;
    while (i < p->n_overrides && strcmp(p->overrides[i].name, name))
        i++;
    if (i == MAX_OVERRIDES)
        return;
    if (i == p->n_overrides)
        p->n_overrides++;
    snprintf(p->overrides[i].name, sizeof p->overrides[i].name, "%s", name);
    snprintf(p->overrides[i].value, sizeof p->overrides[i].value, "%s", text);
}

/* ---- public ------------------------------------------------------------ */

void policy_params_text(const Policy *p, char *out, size_t n)
{
    size_t used = 0;
    if (n == 0)
        return;
    out[0] = 0;
    for (int i = 0; i < p->n_overrides; i++) {
        size_t need = strlen(p->overrides[i].name) + strlen(p->overrides[i].value) + 2;
        if (used + need >= n)
            break;
        used += (size_t)snprintf(out + used, n - used, "%s=%s\n", p->overrides[i].name,
                                 p->overrides[i].value);
    }
}

void policy_params_restore(Policy *p, const char *text)
{
    char line[sizeof p->overrides[0].name + sizeof p->overrides[0].value + 2];
    while (text && *text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        snprintf(line, sizeof line, "%.*s", (int)len, text);
        char *eq = strchr(line, '=');
        if (eq) {
            MnError ignored;
            *eq = 0;
            policy_set_param(p, line, eq + 1, &ignored);
        }
        text = nl ? nl + 1 : text + len;
    }
}

static void free_policy(Policy *p)
{
    for (int i = 0; i < p->n_dirs; i++)
        free(p->dirs[i]);
    free(p->dirs);
    free(p->path);
    free(p);
}

int policy_load(Policy **out, const char *path, const char *const *search_dirs, int n_dirs,
                unsigned long long seed, MnError *e)
{
    Policy *p = calloc(1, sizeof *p);
    if (!p)
        return mn_fail(e, "out of memory");
    p->seed = seed;
    p->mem_cap = POLICY_MEMORY_CAP;
    p->budget = POLICY_INSTRUCTION_BUDGET;
    p->time_limit = POLICY_TIME_LIMIT_S;
    p->path = strdup(path);
    p->dirs = calloc((size_t)(n_dirs > 0 ? n_dirs : 1), sizeof *p->dirs);
    int bad = !p->path || !p->dirs;
    for (int i = 0; !bad && i < n_dirs; i++) {
        p->dirs[i] = strdup(search_dirs[i]);
        bad = !p->dirs[i];
        p->n_dirs += !bad;
    }
    if (bad) {
        free_policy(p);
        return mn_fail(e, "out of memory");
    }
    if (box_open(p, &p->box, e) < 0) {
        free_policy(p);
        return -1;
    }
    *out = p;
    return 0;
}

int policy_reload(Policy *p, MnError *e)
{
    Box *b;
    if (box_open(p, &b, e) < 0)
        return -1;
    /* The user's settings outlive an edit of the file where they still fit. */
    int kept = 0;
    for (int i = 0; i < p->n_overrides; i++) {
        MnError ignored;
        if (set_param(b, p->overrides[i].name, p->overrides[i].value, &ignored) == 0)
            p->overrides[kept++] = p->overrides[i];
    }
    p->n_overrides = kept;
    box_free(p->box);
    p->box = b;
    return 0;
}

typedef struct {
    const char *hook, *arg;
} CallCtx;

static int call_protected(lua_State *L)
{
    CallCtx *c = lua_touserdata(L, 1);
    Box *b = box_of(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->ref_policy);
    if (lua_getfield(L, -1, c->hook) == LUA_TNIL)
        return 0;
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "%s: %s is not a function", b->p->path, c->hook);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->ref_run);
    int n = 1;
    if (!strcmp(c->hook, "on_eval")) {
        push_metrics(L, &b->view->metrics);
        n++;
    } else if (c->arg) {
        lua_pushstring(L, c->arg);
        n++;
    }
    lua_call(L, n, 0);
    return 0;
}

int policy_call(Policy *p, const char *hook, PolicyView *v, const char *arg,
                PolicyAction *acts, int max_acts, int *n_acts, MnError *e)
{
    Box *b = p->box;
    *n_acts = 0;
    if (!is_hook(hook))
        return mn_fail(e, "policy: unknown hook '%s'", hook);
    if (v->n_layers < 0 || v->n_layers > POLICY_MAX_LAYERS)
        return mn_fail(e, "policy: %d layers in the view", v->n_layers);
    p->saved = *v;
    b->view = v;
    b->acts = acts;
    b->max_acts = max_acts;
    b->n_acts = 0;
    b->n_forks = 0;
    CallCtx c = { hook, arg };
    if (box_run(b, call_protected, &c, e) < 0) {
        *v = p->saved;
        return -1;
    }
    *n_acts = b->n_acts;
    return 0;
}

int policy_set_param(Policy *p, const char *name, const char *value_text, MnError *e)
{
    if (set_param(p->box, name, value_text, e) < 0)
        return -1;
    remember_override(p, name, value_text);
    return 0;
}

void policy_set_limits(Policy *p, size_t memory_bytes, long long instructions)
{
    if (memory_bytes)
        p->mem_cap = p->box->cap = memory_bytes;
    if (instructions > 0)
        p->budget = p->box->budget = instructions;
}

void policy_set_time_limit(Policy *p, double seconds)
{
    if (seconds > 0)
        p->time_limit = p->box->time_limit = seconds;
}

void policy_set_stop_flag(Policy *p, const atomic_int *flag)
{
    p->stop = flag;
    watchdog_set_stop_flag(p->box->dog, flag);
}

const char *policy_name(const Policy *p)
{
    return p->box->name;
}

const char *policy_path(const Policy *p)
{
    return p->path;
}

const char *policy_source(const Policy *p, size_t *len)
{
    if (len)
        *len = p->box->source_len;
    return p->box->source;
}

static int add_change(PolicyChange *out, int n, int max, const char *part, const char *field, double from, double to)
{
    if (n >= max)
        return n;
    snprintf(out[n].what, sizeof out[n].what, "%s%s%s", part, *part ? "." : "", field);
    out[n].from = from;
    out[n].to = to;
    return n + 1;
}

int policy_view_changes(const PolicyView *before, const PolicyView *after, PolicyChange *out, int max)
{
    int n = 0;
    if (before->lr != after->lr)
        n = add_change(out, n, max, "", "lr", before->lr, after->lr);
    if (before->ewc_lambda != after->ewc_lambda)
        n = add_change(out, n, max, "", "ewc_lambda", before->ewc_lambda, after->ewc_lambda);
    int nl = before->n_layers < after->n_layers ? before->n_layers : after->n_layers;
    for (int i = 0; i < nl; i++) {
        const PolicyLayer *a = &before->layers[i], *z = &after->layers[i];
        if (!a->frozen != !z->frozen)
            n = add_change(out, n, max, z->name, "frozen", !!a->frozen, !!z->frozen);
        if ((float)a->lr_scale != (float)z->lr_scale)
            n = add_change(out, n, max, z->name, "lr_scale", a->lr_scale, z->lr_scale);
    }
    return n;
}

void policy_free(Policy *p)
{
    if (!p)
        return;
    box_free(p->box);
    free_policy(p);
}
