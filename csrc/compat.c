#include <math.h>
#include <stdio.h>

#include "compat.h"

#if LUA_VERSION_NUM == 501
void sora_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

void *sora_testudata(lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  luaL_getmetatable(L, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}

void sora_rawsetp(lua_State *L, int i, const void *p) {
  i = sora_absindex(L, i);
  lua_pushlightuserdata(L, (void *)p);
  lua_insert(L, -2);
  lua_rawset(L, i);
}

void sora_rawgetp(lua_State *L, int i, const void *p) {
  i = sora_absindex(L, i);
  lua_pushlightuserdata(L, (void *)p);
  lua_rawget(L, i);
}

/* 5.1 has no luaL_traceback (LuaJIT has, but one build serves both): debug.traceback, from
 * level 2, past the message handler that calls it. */
void sora_traceback(lua_State *L, const char *msg) {
  lua_getfield(L, LUA_GLOBALSINDEX, "debug");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "traceback"); /* debug, traceback */
    lua_remove(L, -2);
    if (lua_isfunction(L, -1)) {
      lua_pushstring(L, msg);
      lua_pushinteger(L, 2);
      lua_call(L, 2, 1);
      return;
    }
  }
  lua_pop(L, 1);
  lua_pushstring(L, msg);
}
#endif

#if LUA_VERSION_NUM >= 504
void *sora_newuserdata_slots(lua_State *L, size_t size, int slots) {
  return lua_newuserdatauv(L, size, slots);
}
#else
void *sora_newuserdata_slots(lua_State *L, size_t size, int slots) {
  void *p = lua_newuserdata(L, size);
  lua_createtable(L, slots, 0);
  sora_setuservalue(L, -2);
  return p;
}

void sora_push_slot(lua_State *L, int i, int n) {
  sora_getuservalue(L, i);
  lua_rawgeti(L, -1, n);
  lua_remove(L, -2);
}

void sora_set_slot(lua_State *L, int i, int n) {
  i = sora_absindex(L, i);
  sora_getuservalue(L, i); /* value, slots */
  lua_insert(L, -2);
  lua_rawseti(L, -2, n);
  lua_pop(L, 1);
}
#endif

#if LUA_VERSION_NUM < 503
int sora_rawget(lua_State *L, int i) {
  lua_rawget(L, i);
  return lua_type(L, -1);
}
#endif

int sora_isintegral(lua_State *L, int i, lua_Integer *out) {
  lua_Number n;
  if (lua_type(L, i) != LUA_TNUMBER) return 0;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, i)) {
    *out = lua_tointeger(L, i);
    return 1;
  }
#endif
  n = lua_tonumber(L, i);
  /* 2^63 bounds: beyond them the cast is undefined behaviour. */
  if (n != floor(n) || n < -9223372036854775808.0 || n >= 9223372036854775808.0) return 0;
  *out = (lua_Integer)n;
  return 1;
}

void sora_push_integer_text(lua_State *L, lua_Integer n) {
  char text[32];
  snprintf(text, sizeof text, "%lld", (long long)n);
  lua_pushstring(L, text);
}

int sora_iscallable(lua_State *L, int i) {
  int callable;
  if (lua_type(L, i) == LUA_TFUNCTION) return 1;
  if (!luaL_getmetafield(L, i, "__call")) return 0; /* pushes nothing when absent */
  callable = lua_type(L, -1) == LUA_TFUNCTION;
  lua_pop(L, 1);
  return callable;
}
