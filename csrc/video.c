/* The Video userdata: a handle whose fields are the API's Video object. Its block holds the
 * poll hint; its two slots (compat.h) the fields (every field the server sent, as lua-cjson
 * decoded them) and the client. A field is shaped (marshal.c's sora_shape_field: integers,
 * nulls, seconds as text) the first time it is read, and kept so: a listed video that is
 * never read costs its decoding and its handle, nothing more. */
#include "sora.h"

enum { RECORD_FIELDS = 1, RECORD_CLIENT = 2, RECORD_SLOTS = 2 };

typedef struct {
  long poll_after_ms; /* the server's openai-poll-after-ms, or -1 */
} video_block;

static video_block *check_video(lua_State *L, int i) { return luaL_checkudata(L, i, SORA_VIDEO); }

/* A handle of the decoded fields at `fields`, held as they are; meta is the metatable of
 * Videos (the caller has it at hand for a page of them). */
void sora_push_video(lua_State *L, int fields, int client, int meta, long poll_after_ms) {
  video_block *v;
  fields = sora_absindex(L, fields);
  client = sora_absindex(L, client);
  meta = sora_absindex(L, meta);
  v = sora_newuserdata_slots(L, sizeof *v, RECORD_SLOTS);
  v->poll_after_ms = poll_after_ms;
  lua_pushvalue(L, fields);
  sora_set_slot(L, -2, RECORD_FIELDS);
  lua_pushvalue(L, client);
  sora_set_slot(L, -2, RECORD_CLIENT);
  lua_pushvalue(L, meta);
  lua_setmetatable(L, -2);
}

/* Gives `video` the fields (and poll hint) of `fresh`, another handle of the same video. */
static void video_update_from(lua_State *L, int video, int fresh) {
  video_block *to = check_video(L, video), *from = check_video(L, fresh);
  sora_push_slot(L, fresh, RECORD_FIELDS);
  sora_set_slot(L, video, RECORD_FIELDS);
  to->poll_after_ms = from->poll_after_ms;
}

/* video:_update(fresh): used by refresh, which is written in Lua so that it can yield. */
static int video_update(lua_State *L) {
  video_update_from(L, 1, 2);
  lua_settop(L, 1);
  return 1;
}

/* Whether a held value reads as it is held: a string, a boolean, nil or (5.3+) an integer.
 * A null, a float, a table may not. */
static int reads_as_held(lua_State *L, int i) {
  switch (lua_type(L, i)) {
    case LUA_TSTRING: case LUA_TBOOLEAN: case LUA_TNIL: return 1;
#if LUA_VERSION_NUM >= 503
    case LUA_TNUMBER: return lua_isinteger(L, i);
#endif
    default: return 0;
  }
}

/* Shapes the value on top, fields[key] (key at `key`), by its kind (looked up in `known`, the
 * table of sora_push_video_fields) and keeps the shape in fields, so that it is shaped once.
 * Assigning an existing key is allowed while next() walks fields. */
static void shape_held(lua_State *L, int fields, int key, int known) {
  int kind;
  lua_pushvalue(L, key);
  lua_rawget(L, known);
  kind = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  if (sora_shape_field(L, kind)) {
    lua_pushvalue(L, key);
    lua_pushvalue(L, -2);
    lua_rawset(L, fields);
  }
}

static void deep_copy(lua_State *L, int from, int known);

/* Pushes what video[key] reads: the field shaped; a table field (error) given as a copy, so
 * that the handle stays read-only. */
static void push_field(lua_State *L, int fields, int key, int known) {
  lua_pushvalue(L, key);
  lua_rawget(L, fields);
  if (reads_as_held(L, -1)) return;
  shape_held(L, fields, key, known);
  if (lua_istable(L, -1)) {
    deep_copy(L, -1, 0);
    lua_remove(L, -2);
  }
}

/* Methods first (upvalue 1), then the fields (upvalue 3: the known ones). */
static int video_index(lua_State *L) {
  /* the metatable compared with upvalue 2, not looked up by name: this runs for every read */
  int is_video = lua_touserdata(L, 1) != NULL && lua_getmetatable(L, 1) &&
                 lua_rawequal(L, -1, lua_upvalueindex(2));
  if (!is_video) check_video(L, 1); /* raises */
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1)) return 1;
  sora_push_slot(L, 1, RECORD_FIELDS);
  push_field(L, 4, 2, lua_upvalueindex(3));
  return 1;
}

static int video_newindex(lua_State *L) {
  check_video(L, 1);
  return luaL_error(L, "sora.Video fields are read-only (field '%s')", 
                    lua_isstring(L, 2) ? lua_tostring(L, 2) : luaL_typename(L, 2));
}

/* Pushes a copy of the table at `from`, nested tables copied too. With `known` (the index of
 * sora_push_video_fields' table), from is a Video's fields: each is shaped, and their JSON
 * nulls are left out; nested ones are kept (cjson.null), as they came: in an array a null is
 * a position, and a hole there would end ipairs and break cjson.encode. */
static void deep_copy(lua_State *L, int from, int known) {
  from = sora_absindex(L, from);
  /* each level holds 3 slots: a deeply nested field (cjson allows 1000 levels) would
   * otherwise write past the Lua stack */
  luaL_checkstack(L, 4, "sora: a field is nested too deeply to copy");
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, from)) {
    if (known && !reads_as_held(L, -1)) shape_held(L, from, lua_gettop(L) - 1, known);
    if (lua_isnil(L, -1)) { /* a null of the fields, shaped */
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -2);
    if (lua_istable(L, -2)) deep_copy(L, -2, 0);
    else lua_pushvalue(L, -2);
    lua_rawset(L, -5);
    lua_pop(L, 1);
  }
}

/* A plain table with every field, unknown ones included; changing it changes nothing. */
static int video_to_table(lua_State *L) {
  check_video(L, 1);
  sora_push_slot(L, 1, RECORD_FIELDS);
  sora_push_video_fields(L);
  deep_copy(L, 2, 3);
  return 1;
}

static int video_client(lua_State *L) {
  check_video(L, 1);
  sora_push_slot(L, 1, RECORD_CLIENT);
  return 1;
}

/* The server's openai-poll-after-ms from the response that last updated this handle. */
static int video_poll_after(lua_State *L) {
  long poll_after_ms = check_video(L, 1)->poll_after_ms;
  if (poll_after_ms < 0) lua_pushnil(L);
  else lua_pushinteger(L, poll_after_ms);
  return 1;
}

static void push_id(lua_State *L, int video) {
  sora_push_slot(L, video, RECORD_FIELDS);
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
  sora_push_slot(L, 1, RECORD_FIELDS); /* 2 */
  sora_push_video_fields(L);           /* 3 */
  lua_pushliteral(L, "id");
  lua_pushliteral(L, "status");
  lua_pushliteral(L, "progress");      /* 4, 5, 6: the keys */
  push_field(L, 2, 4, 3);
  push_field(L, 2, 5, 3);
  push_field(L, 2, 6, 3);
  lua_pushfstring(L, "sora.Video (%s, %s, %s%%)", lua_isstring(L, -3) ? lua_tostring(L, -3) : "?",
                  lua_isstring(L, -2) ? lua_tostring(L, -2) : "?",
                  lua_isnumber(L, -1) ? lua_tostring(L, -1) : "?");
  return 1;
}

/* next over a Video's fields (upvalue 1: the known ones), each shaped and JSON nulls left
 * out; a table field given as a copy, as video.field gives it, so the handle stays
 * read-only. */
static int fields_next(lua_State *L) {
  lua_settop(L, 2);
  while (lua_next(L, 1)) {
    if (!reads_as_held(L, -1)) shape_held(L, 1, 2, lua_upvalueindex(1));
    if (lua_istable(L, -1)) {
      deep_copy(L, -1, 0); /* key, value, copy */
      lua_replace(L, -2);
    }
    if (!lua_isnil(L, -1)) return 2; /* key, value */
    lua_pop(L, 1);
  }
  return 0;
}

/* pairs(video) walks the fields (Lua 5.2+); upvalue 1 is fields_next. */
static int video_pairs(lua_State *L) {
  check_video(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  sora_push_slot(L, 1, RECORD_FIELDS);
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
  lua_pushvalue(L, -3);
  sora_push_video_fields(L);
  lua_pushcclosure(L, video_index, 3); /* the methods, the metatable, the known fields */
  lua_setfield(L, -3, "__index");
  lua_pushcfunction(L, video_newindex);
  lua_setfield(L, -3, "__newindex");
  lua_pushcfunction(L, video_eq);
  lua_setfield(L, -3, "__eq");
  lua_pushcfunction(L, video_tostring);
  lua_setfield(L, -3, "__tostring");
  sora_push_video_fields(L);
  lua_pushcclosure(L, fields_next, 1);
  lua_pushcclosure(L, video_pairs, 1);
  lua_setfield(L, -3, "__pairs");
  lua_pushliteral(L, SORA_VIDEO);
  lua_setfield(L, -3, "__name");
  lua_remove(L, -2);
  return 1;
}
