/* Decoded JSON to the values sora returns: Video handles, list pages, deleted results and
 * characters. Unknown fields are kept; JSON null becomes nil; the API's integers become Lua
 * integers (lua-cjson 2.1.0 decodes every number as a float). */
#include "sora.h"

static int is_null(lua_State *L, int i) {
  return lua_type(L, i) == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == NULL;
}

static void integer_field(lua_State *L, int t, const char *name) {
  lua_Integer n;
  lua_getfield(L, t, name);
  if (sora_isintegral(L, -1, &n)) {
    lua_pushinteger(L, n);
    lua_setfield(L, t, name);
  }
  lua_pop(L, 1);
}

/* JSON null -> nil, for every field of t (assigning nil during next() is allowed). */
static void drop_nulls(lua_State *L, int t) {
  t = sora_absindex(L, t);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (is_null(L, -1)) {
      lua_pushvalue(L, -2);
      lua_pushnil(L);
      lua_rawset(L, t);
    }
    lua_pop(L, 1);
  }
}

/* Requires t to be an object with a string id; pushes a message and returns 0 otherwise. */
static int check_object(lua_State *L, int t, const char *what) {
  int ok;
  if (!lua_istable(L, t)) {
    lua_pushfstring(L, "expected a %s object, got a JSON %s", what, luaL_typename(L, t));
    return 0;
  }
  lua_getfield(L, t, "id");
  ok = lua_type(L, -1) == LUA_TSTRING;
  lua_pop(L, 1);
  if (!ok) lua_pushfstring(L, "the %s object has no string 'id'", what);
  return ok;
}

void sora_normalize_video(lua_State *L, int fields) {
  lua_Integer n;
  fields = sora_absindex(L, fields);
  drop_nulls(L, fields);
  integer_field(L, fields, "progress");
  integer_field(L, fields, "created_at");
  integer_field(L, fields, "completed_at");
  integer_field(L, fields, "expires_at");
  /* seconds is a string on the wire; a server that sends a number gets it read as one */
  lua_getfield(L, fields, "seconds");
  if (sora_isintegral(L, -1, &n)) {
    sora_push_integer_text(L, n);
    lua_setfield(L, fields, "seconds");
  }
  lua_pop(L, 1);
  lua_getfield(L, fields, "error");
  if (lua_istable(L, -1)) drop_nulls(L, -1);
  lua_pop(L, 1);
}

static int marshal_video(lua_State *L, int value, int client, long poll_after_ms) {
  if (!check_object(L, value, "video")) return 0;
  sora_normalize_video(L, value);
  sora_push_video(L, value, client, poll_after_ms);
  return 1;
}

/* {object, data = {Video...}, first_id, last_id, has_more} plus any other fields. */
static int marshal_page(lua_State *L, int value, int client) {
  int data, i, n;
  if (!lua_istable(L, value)) {
    lua_pushfstring(L, "expected a list object, got a JSON %s", luaL_typename(L, value));
    return 0;
  }
  drop_nulls(L, value);
  lua_getfield(L, value, "data");
  data = lua_gettop(L);
  if (!lua_istable(L, data)) {
    lua_pushliteral(L, "the list object has no 'data' array");
    return 0;
  }
  n = (int)sora_rawlen(L, data);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, data, i);
    if (!marshal_video(L, lua_gettop(L), client, -1)) return 0;
    lua_rawseti(L, data, i);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, value, "has_more");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
    lua_pushliteral(L, "the list object's 'has_more' is not a boolean");
    return 0;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, value);
  return 1;
}

static int marshal_record(lua_State *L, int value, const char *what) {
  if (!check_object(L, value, what)) return 0;
  drop_nulls(L, value);
  integer_field(L, value, "created_at");
  lua_pushvalue(L, value);
  return 1;
}

int sora_marshal(lua_State *L, sora_result kind, int value, int client, long poll_after_ms) {
  value = sora_absindex(L, value);
  client = sora_absindex(L, client);
  switch (kind) {
    case SORA_RESULT_VIDEO: return marshal_video(L, value, client, poll_after_ms);
    case SORA_RESULT_PAGE: return marshal_page(L, value, client);
    case SORA_RESULT_DELETED: return marshal_record(L, value, "deleted video");
    case SORA_RESULT_CHARACTER: return marshal_record(L, value, "character");
    default: lua_pushliteral(L, "no JSON expected"); return 0;
  }
}
