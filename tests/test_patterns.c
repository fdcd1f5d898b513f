/* The sandbox's string.find, match, gmatch and gsub against Lua's own on
 * a corpus of subjects, patterns, start positions and replacements: the
 * same results and the same errors. Then the charge: a pathological
 * pattern is stopped by it, and the steps it reports grow with the work. */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua_patterns.h"
#include "tap.h"

static long charged;
static long stop_after;             /* > 0: raise once this much is charged */

static void charge(lua_State *L, long steps)
{
    charged += steps;
    if (stop_after > 0 && charged > stop_after)
        luaL_error(L, "stopped after %d steps", (int)stop_after);
}

/* Compares string.X(...) and P.X(...) for each case; returns the number
 * of cases and the first difference. */
static const char *const corpus =
    "local subjects = { '', 'hello world', 'aaa', '  key = value  ', 'THE (quick) [brown] fox 123',\n"
    "  'a,b,,c', 'x=1, y=22', 'a\\0b\\0c', 'f(a(b)c)d', 'layer.12.attention', 'ab%cd', '$^', 'a.b-c' }\n"
    "local patterns = { '.', '%a+', '(%a+)', '()', '(h)(e)', '^h', 'o$', '%s*(.-)%s*$', '[%a_][%w_]*',\n"
    "  '[^,]*', '%f[%w]%w+', '%b()', '(%w+)=(%w+)', '(a*(.)%w(%s*))', '%d+', '[a-c]+', '[]]', '[^]]',\n"
    "  '%', '[a', '(()', '%1', '(a)%1', '%f', '%fx', '%bx', 'a-b', 'a?', '.-', '(.-)%s', '[%]]', '%%',\n"
    "  '^(%a+)%.(%d+)', '%.', '[%-]', '%z', '%S+', '%u%l*', '%x+', '%p', '%c', '%g+', '%W', '()a()',\n"
    "  'a+$', '(x*)', '$', '^$', '^', 'a*', '[a-]', '[-a]', '[a-%%]', '((a)(b))', '%$%^', 'a\\0b',\n"
    "  '[%z]', '(', ')', '%0', 'b*c?', '[^%s]+', '%w-%.', '%b[]', '(%d)(%d?)', '%f[%a]', 'o(r?)l' }\n"
    "local inits = { false, 1, 3, -2, 0, 100, -100 }\n"
    "local repls = { '%1-%0', '%%', '%2', '%', 'x', 5, { hello = 'HI', a = false, x = 1 },\n"
    "  function(a) return a:upper() end, function() return false end, function() return {} end, true }\n"
    "local unname\n"
    "local function run(f, ...) return unname(table.pack(pcall(f, ...))) end\n"
    "local function same(a, b)\n"
    "  if a.n ~= b.n then return false end\n"
    "  for i = 1, a.n do\n"
    "    if type(a[i]) ~= type(b[i]) or math.type(a[i]) ~= math.type(b[i]) then return false end\n"
    "    if type(a[i]) ~= 'function' and a[i] ~= b[i] then return false end\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "function unname(r)  -- a pcall'd function has no name of its own\n"
    "  if not r[1] and type(r[2]) == 'string' then r[2] = r[2]:gsub(\"to '[^']*'\", \"to '?'\") end\n"
    "  return r\n"
    "end\n"
    "local function show(r) local t = {} for i = 1, r.n do t[i] = tostring(r[i]) end return table.concat(t, ' ') end\n"
    "local function all(it) local t = {} for a, b, c in it do t[#t + 1] = tostring(a) .. '|' .. tostring(b) .. '|' .. tostring(c) end return table.concat(t, ';') end\n"
    "local n, diff = 0, nil\n"
    "local function cmp(what, a, b)\n"
    "  n = n + 1\n"
    "  if not diff and not same(a, b) then diff = what .. ': lua ' .. show(a) .. ' / ours ' .. show(b) end\n"
    "end\n"
    "for _, s in ipairs(subjects) do for _, p in ipairs(patterns) do\n"
    "  local q = string.format('%q %q', s, p)\n"
    "  for _, i in ipairs(inits) do\n"
    "    local init = i or nil\n"
    "    cmp('find ' .. q, run(string.find, s, p, init), run(P.find, s, p, init))\n"
    "    cmp('find plain ' .. q, run(string.find, s, p, init, true), run(P.find, s, p, init, true))\n"
    "    cmp('match ' .. q, run(string.match, s, p, init), run(P.match, s, p, init))\n"
    "    cmp('gmatch ' .. q, run(function() return all(string.gmatch(s, p, init)) end),\n"
    "        run(function() return all(P.gmatch(s, p, init)) end))\n"
    "  end\n"
    "  for _, r in ipairs(repls) do for _, m in ipairs({ false, 0, 1, 2 }) do\n"
    "    local max = m or nil\n"
    "    cmp('gsub ' .. q .. ' ' .. tostring(r) .. ' ' .. tostring(max), run(string.gsub, s, p, r, max),\n"
    "        run(P.gsub, s, p, r, max))\n"
    "  end end\n"
    "end end\n"
    "cmp('method', run(function() return ('k=v'):match('(%w)=(%w)') end), run(P.match, 'k=v', '(%w)=(%w)'))\n"
    "cmp('args', run(string.find), run(P.find))\n"
    "cmp('gsub arg 3', run(string.gsub, 'a', 'a'), run(P.gsub, 'a', 'a'))\n"
    "local many = string.rep('(a)', 33)\n"
    "cmp('too many captures', run(string.find, string.rep('a', 40), many), run(P.find, string.rep('a', 40), many))\n"
    "local deep = string.rep('a?', 300) .. string.rep('a', 3)\n"
    "cmp('too complex', run(string.match, 'aaa', deep), run(P.match, 'aaa', deep))\n"
    "return n, diff\n";

static void test_corpus(lua_State *L)
{
    lua_newtable(L);
    lua_patterns_register(L, -1, charge);
    lua_setglobal(L, "P");
    if (luaL_dostring(L, corpus) != LUA_OK) {
        ok(0, "the corpus runs: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    long n = (long)lua_tointeger(L, -2);
    const char *diff = lua_tostring(L, -1);
    ok(n > 20000 && !diff, "%ld calls give the results and errors of Lua's own functions%s%s", n,
       diff ? ": " : "", diff ? diff : "");
    lua_pop(L, 2);
}

static void test_charge(lua_State *L)
{
    charged = 0;
    stop_after = 0;
    int rc = luaL_dostring(L, "return P.find(string.rep('a', 200), '(a*)(a*)b')");
    long cubic = charged;
    charged = 0;
    rc |= luaL_dostring(L, "return P.find(string.rep('a', 100), '(a*)(a*)b')");
    long smaller = charged;
    ok(rc == LUA_OK && cubic > 1000000 && cubic > 6 * smaller,
       "the steps charged grow with the work (%ld for 200 bytes, %ld for 100)", cubic, smaller);
    lua_settop(L, 0);
    charged = 0;
    stop_after = 100000;
    rc = luaL_dostring(L, "return P.find(string.rep('a', 40), string.rep('a?', 40) .. string.rep('a', 40))");
    ok(rc != LUA_OK && strstr(lua_tostring(L, -1), "stopped after") && charged < 200000,
       "an exponential pattern is stopped by the charge (%ld steps): %s", charged, lua_tostring(L, -1));
    lua_settop(L, 0);
    charged = 0;
    rc = luaL_dostring(L, "local s = string.rep('a', 1 << 20) return P.find(s, s:sub(1, 1 << 19) .. 'b', 1, true)");
    ok(rc != LUA_OK && strstr(lua_tostring(L, -1), "stopped after") && charged < 2000000,
       "so is a plain search that compares too much (%ld steps)", charged);
    lua_settop(L, 0);
    stop_after = 0;
    charged = 0;
    rc = luaL_dostring(L, "local t = {} for w in P.gmatch(string.rep('word ', 1000), '%a+') do t[#t + 1] = w end "
                          "return #t");
    ok(rc == LUA_OK && lua_tointeger(L, -1) == 1000 && charged < 100000,
       "an ordinary search costs little (%ld steps for 1000 words)", charged);
    lua_settop(L, 0);
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    test_corpus(L);
    test_charge(L);
    lua_close(L);
    return tap_done();
}
