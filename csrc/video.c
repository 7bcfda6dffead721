/* The Video userdata: a handle whose fields are the API's Video object. Its user value is a
 * record {fields, client, poll_after_ms}; fields keeps every field the server sent. */
#include "sora.h"

enum { RECORD_FIELDS = 1, RECORD_CLIENT = 2, RECORD_POLL_AFTER = 3 };

static void push_record_slot(lua_State *L, int video, int slot) {
  sora_getuservalue(L, video);
  lua_rawgeti(L, -1, slot);
  lua_remove(L, -2);
}

void sora_push_video(lua_State *L, int fields, int client, long poll_after_ms) {
  fields = sora_absindex(L, fields);
  client = sora_absindex(L, client);
  lua_newuserdata(L, 1);
  luaL_getmetatable(L, SORA_VIDEO);
  lua_setmetatable(L, -2);
  lua_createtable(L, 3, 0);
  lua_pushvalue(L, fields);
  lua_rawseti(L, -2, RECORD_FIELDS);
  lua_pushvalue(L, client);
  lua_rawseti(L, -2, RECORD_CLIENT);
  if (poll_after_ms >= 0) {
    lua_pushinteger(L, poll_after_ms);
    lua_rawseti(L, -2, RECORD_POLL_AFTER);
  }
  sora_setuservalue(L, -2);
}

/* Gives `video` the fields (and poll hint) of `fresh`, another handle of the same video. */
static void video_update_from(lua_State *L, int video, int fresh) {
  int slot;
  video = sora_absindex(L, video);
  fresh = sora_absindex(L, fresh);
  sora_getuservalue(L, video);
  for (slot = RECORD_FIELDS; slot <= RECORD_POLL_AFTER; slot++) {
    if (slot == RECORD_CLIENT) continue;
    push_record_slot(L, fresh, slot);
    lua_rawseti(L, -2, slot);
  }
  lua_pop(L, 1);
}

static void check_video(lua_State *L, int i) { luaL_checkudata(L, i, SORA_VIDEO); }

/* video:_update(fresh): used by refresh, which is written in Lua so that it can yield. */
static int video_update(lua_State *L) {
  check_video(L, 1);
  check_video(L, 2);
  video_update_from(L, 1, 2);
  lua_settop(L, 1);
  return 1;
}

static void deep_copy(lua_State *L, int from);

/* Methods first (upvalue 1), then the fields; a table field (error) is given as a copy, so
 * the handle stays read-only. */
static int video_index(lua_State *L) {
  check_video(L, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1)) return 1;
  push_record_slot(L, 1, RECORD_FIELDS);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  if (lua_istable(L, -1)) deep_copy(L, -1);
  return 1;
}

static int video_newindex(lua_State *L) {
  check_video(L, 1);
  return luaL_error(L, "sora.Video fields are read-only (field '%s')", 
                    lua_isstring(L, 2) ? lua_tostring(L, 2) : luaL_typename(L, 2));
}

static void deep_copy(lua_State *L, int from) {
  from = sora_absindex(L, from);
  /* each level holds 3 slots: a deeply nested field (cjson allows 1000 levels) would
   * otherwise write past the Lua stack */
  luaL_checkstack(L, 4, "sora: a field is nested too deeply to copy");
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, from)) {
    lua_pushvalue(L, -2);
    if (lua_istable(L, -2)) deep_copy(L, -2);
    else lua_pushvalue(L, -2);
    lua_rawset(L, -5);
    lua_pop(L, 1);
  }
}

/* A plain table with every field, unknown ones included; changing it changes nothing. */
static int video_to_table(lua_State *L) {
  check_video(L, 1);
  push_record_slot(L, 1, RECORD_FIELDS);
  deep_copy(L, -1);
  return 1;
}

static int video_client(lua_State *L) {
  check_video(L, 1);
  push_record_slot(L, 1, RECORD_CLIENT);
  return 1;
}

/* The server's openai-poll-after-ms from the response that last updated this handle. */
static int video_poll_after(lua_State *L) {
  check_video(L, 1);
  push_record_slot(L, 1, RECORD_POLL_AFTER);
  return 1;
}

static void push_id(lua_State *L, int video) {
  push_record_slot(L, video, RECORD_FIELDS);
  lua_getfield(L, -1, "id");
  lua_remove(L, -2);
}

static int video_eq(lua_State *L) {
  if (!sora_testudata(L, 1, SORA_VIDEO) || !sora_testudata(L, 2, SORA_VIDEO)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  push_id(L, 1);
  push_id(L, 2);
  lua_pushboolean(L, lua_rawequal(L, -1, -2));
  return 1;
}

static int video_tostring(lua_State *L) {
  check_video(L, 1);
  push_record_slot(L, 1, RECORD_FIELDS);
  lua_getfield(L, -1, "id");
  lua_getfield(L, -2, "status");
  lua_getfield(L, -3, "progress");
  lua_pushfstring(L, "sora.Video (%s, %s, %s%%)", lua_isstring(L, -3) ? lua_tostring(L, -3) : "?",
                  lua_isstring(L, -2) ? lua_tostring(L, -2) : "?",
                  lua_isnumber(L, -1) ? lua_tostring(L, -1) : "?");
  return 1;
}

/* pairs(video) walks the fields (Lua 5.2+). */
static int video_pairs(lua_State *L) {
  check_video(L, 1);
  lua_getglobal(L, "next");
  push_record_slot(L, 1, RECORD_FIELDS);
  lua_pushnil(L);
  return 3;
}

static const luaL_Reg video_methods[] = {
    {"to_table", video_to_table}, {"_client", video_client}, {"_poll_after", video_poll_after},
    {"_update", video_update},
    {NULL, NULL}};

/* Leaves the method table on the stack for the endpoints and the Lua layer to extend. */
int sora_open_video(lua_State *L) {
  luaL_newmetatable(L, SORA_VIDEO);
  lua_newtable(L);
  sora_setfuncs(L, video_methods, 0);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, video_index, 1);
  lua_setfield(L, -3, "__index");
  lua_pushcfunction(L, video_newindex);
  lua_setfield(L, -3, "__newindex");
  lua_pushcfunction(L, video_eq);
  lua_setfield(L, -3, "__eq");
  lua_pushcfunction(L, video_tostring);
  lua_setfield(L, -3, "__tostring");
  lua_pushcfunction(L, video_pairs);
  lua_setfield(L, -3, "__pairs");
  lua_pushliteral(L, SORA_VIDEO);
  lua_setfield(L, -3, "__name");
  lua_remove(L, -2);
  return 1;
}
