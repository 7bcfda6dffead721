/* Error objects: tables with the sora.Error metatable, so they print as one line and can be
 * raised by iterators (as io.lines raises) and still be inspected by a pcall. */
#include "sora.h"

const char *sora_error_kind(long status) {
  switch (status) {
    case 400: return "bad_request";
    case 401: return "authentication";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 409: return "conflict";
    case 422: return "unprocessable_entity";
    case 429: return "rate_limit";
    default: return status >= 500 ? "internal_server" : "api_status";
  }
}

void sora_push_error(lua_State *L, const char *kind, long status, const char *message) {
  lua_createtable(L, 0, 8);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  if (status > 0) {
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
  }
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  luaL_getmetatable(L, SORA_ERROR);
  lua_setmetatable(L, -2);
}

/* "sora: not_found (404): No video found [code=video_not_found request_id=req_1]" */
static int error_tostring(lua_State *L) {
  static const char *const details[] = {"code", "param", "request_id", "attempts", NULL};
  int i, pieces = 1, bracket = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "kind");
  lua_pushfstring(L, "sora: %s", lua_isstring(L, 2) ? lua_tostring(L, 2) : "error");
  lua_replace(L, 2);
  lua_getfield(L, 1, "status");
  if (lua_isnumber(L, -1)) {
    lua_pushfstring(L, " (%d)", (int)lua_tointeger(L, -1));
    lua_remove(L, -2);
    pieces++;
  } else {
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "message");
  if (lua_isstring(L, -1)) {
    lua_pushliteral(L, ": ");
    lua_insert(L, -2);
    pieces += 2;
  } else {
    lua_pop(L, 1);
  }
  for (i = 0; details[i]; i++) {
    lua_getfield(L, 1, details[i]);
    if (lua_isstring(L, -1)) {
      lua_pushfstring(L, "%s%s=%s", bracket ? " " : " [", details[i], lua_tostring(L, -1));
      lua_remove(L, -2);
      pieces++;
      bracket = 1;
    } else {
      lua_pop(L, 1);
    }
  }
  if (bracket) lua_pushliteral(L, "]"), pieces++;
  lua_concat(L, pieces);
  return 1;
}

/* core.error{kind = ..., message = ..., ...}: an error object made by the Lua layer. */
static int error_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "kind");
  luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "field 'kind' must be a string");
  lua_pop(L, 1);
  lua_settop(L, 1);
  luaL_getmetatable(L, SORA_ERROR);
  lua_setmetatable(L, 1);
  return 1;
}

static int error_is(lua_State *L) {
  int is = 0;
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, SORA_ERROR);
    is = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, is);
  return 1;
}

/* Pushes the constructor and the predicate. */
int sora_open_error(lua_State *L) {
  luaL_newmetatable(L, SORA_ERROR);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, SORA_ERROR);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_pushcfunction(L, error_new);
  lua_pushcfunction(L, error_is);
  return 2;
}
