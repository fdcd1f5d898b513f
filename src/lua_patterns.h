/* string.find, match, gmatch and gsub with the semantics of Lua 5.4's
 * library, on a matcher that can be stopped. Lua's own matcher
 * backtracks in C, where no count hook reaches it, in time exponential in
 * a pattern's repetitions; this one calls charge(L, steps) every few
 * thousand steps, and charge raises an error to stop it (the sandbox
 * counts the steps against a policy's budget and its time limit). */
#ifndef MNEME_LUA_PATTERNS_H
#define MNEME_LUA_PATTERNS_H

#include <lua.h>

typedef void (*LuaPatternCharge)(lua_State *L, long steps);

/* Sets find, match, gmatch and gsub in the table at index t. */
void lua_patterns_register(lua_State *L, int t, LuaPatternCharge charge);

#endif
