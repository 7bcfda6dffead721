/* Lua 5.1 / LuaJIT / 5.2 / 5.3 / 5.4 differences, in one place.
 * The module is built once per ABI (5.1 headers for Lua 5.1 and LuaJIT), so these shims are
 * chosen at compile time. Names are prefixed so they never clash with LuaJIT's own exports. */
#ifndef SORA_COMPAT_H
#define SORA_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

/* Only luaopen_sora_core is exported; everything else stays inside the shared object. */
#if defined(__GNUC__)
#define SORA_HIDDEN __attribute__((visibility("hidden")))
#define SORA_EXPORT __attribute__((visibility("default")))
#else
#define SORA_HIDDEN
#define SORA_EXPORT
#endif

/* Raising helpers never return: said so, analyzers and compilers follow the control flow. */
#if defined(__GNUC__)
#define SORA_NORETURN __attribute__((noreturn))
#else
#define SORA_NORETURN
#endif

#if LUA_VERSION_NUM == 501
#define sora_absindex(L, i) \
  ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)
#define sora_rawlen(L, i) lua_objlen(L, i)
/* On 5.1 a userdata's environment table plays the part of the user value. */
#define sora_getuservalue(L, i) lua_getfenv(L, i)
#define sora_setuservalue(L, i) lua_setfenv(L, i)
SORA_HIDDEN void sora_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
SORA_HIDDEN void *sora_testudata(lua_State *L, int i, const char *tname);
SORA_HIDDEN void sora_rawsetp(lua_State *L, int i, const void *p);
SORA_HIDDEN void sora_rawgetp(lua_State *L, int i, const void *p);
/* msg and a traceback from the function that raised (called from a message handler) */
SORA_HIDDEN void sora_traceback(lua_State *L, const char *msg);
#else
#define sora_absindex(L, i) lua_absindex(L, i)
#define sora_rawlen(L, i) lua_rawlen(L, i)
#define sora_getuservalue(L, i) ((void)lua_getuservalue(L, i))
#define sora_setuservalue(L, i) lua_setuservalue(L, i)
#define sora_setfuncs(L, l, n) luaL_setfuncs(L, l, n)
#define sora_testudata(L, i, t) luaL_testudata(L, i, t)
#define sora_rawsetp(L, i, p) lua_rawsetp(L, i, p)
#define sora_rawgetp(L, i, p) ((void)lua_rawgetp(L, i, p))
#define sora_traceback(L, msg) luaL_traceback(L, L, msg, 1)
#endif

/* A userdata with `slots` numbered values it keeps alive (1..slots): on 5.4 its own user
 * values, before 5.4 a table in its one user value. Numbered, not named: a transfer or a video
 * reads and writes them on every request and every listed video. */
SORA_HIDDEN void *sora_newuserdata_slots(lua_State *L, size_t size, int slots);
#if LUA_VERSION_NUM >= 504
#define sora_push_slot(L, i, n) ((void)lua_getiuservalue(L, i, n))
#define sora_set_slot(L, i, n) ((void)lua_setiuservalue(L, i, n))
#else
SORA_HIDDEN void sora_push_slot(lua_State *L, int i, int n);
SORA_HIDDEN void sora_set_slot(lua_State *L, int i, int n); /* slot n = the value on top (popped) */
#endif

/* lua_rawget, giving the type of the value it pushes (5.3+ does; 5.1 and 5.2 give nothing). */
#if LUA_VERSION_NUM >= 503
#define sora_rawget(L, i) lua_rawget(L, i)
#else
SORA_HIDDEN int sora_rawget(lua_State *L, int i);
#endif

/* True when the number at index i has an exact integer value that fits lua_Integer. */
SORA_HIDDEN int sora_isintegral(lua_State *L, int i, lua_Integer *out);

/* True for what can be called: a function, or a value whose metatable has __call (luv's
 * luv_is_callable): a table or userdata is accepted wherever a function is. */
SORA_HIDDEN int sora_iscallable(lua_State *L, int i);

/* Pushes the decimal text of n (lua_pushfstring's %d stops at int). */
SORA_HIDDEN void sora_push_integer_text(lua_State *L, lua_Integer n);

#endif
