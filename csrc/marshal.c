/* Decoded JSON to the values sora returns: Video handles, list pages, deleted results and
 * characters. Unknown fields are kept; JSON null becomes nil; the API's integers become Lua
 * integers (lua-cjson 2.1.0 decodes every number as a float). A Video's fields are vetted
 * here and shaped when they are read (sora_shape_field, called by video.c). */
#include <string.h>

#include "sora.h"

/* JSON null: lua-cjson's cjson.null, a light userdata holding NULL. */
int sora_is_null(lua_State *L, int i) {
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
    if (sora_is_null(L, -1)) {
      lua_pushvalue(L, -2);
      lua_pushnil(L);
      lua_rawset(L, t);
    }
    lua_pop(L, 1);
  }
}

/* ---- the key, wherever the server put it ------------------------------------------- */

/* Replaces t[k] (a string holding the key) by its redacted text; t at `t`, k and v on top. */
static void redact_value(lua_State *L, int t, const char *key) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (!sora_has_key(s, len, key)) return;
  lua_pushvalue(L, -2);
  sora_push_redacted(L, s, len, key);
  lua_rawset(L, t);
}

static void redact_walk(lua_State *L, int t, const char *key);

/* Redacts the value of one entry (key, value on top) and, when the entry's key holds the
 * key, notes it in the table at `moved` (made on first use): next() forbids new keys. */
static void redact_entry(lua_State *L, int t, const char *key, int moved) {
  size_t len;
  const char *k;
  if (lua_type(L, -1) == LUA_TTABLE) redact_walk(L, lua_gettop(L), key);
  else if (lua_type(L, -1) == LUA_TSTRING) redact_value(L, t, key);
  if (lua_type(L, -2) != LUA_TSTRING) return;
  k = lua_tolstring(L, -2, &len);
  if (!sora_has_key(k, len, key)) return;
  if (lua_isnil(L, moved)) {
    lua_newtable(L);
    lua_replace(L, moved);
  }
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  lua_rawset(L, moved);
}

/* Gives each noted entry its redacted key. The value is read from `t` again, not from
 * `moved`: redact_entry may have redacted it in place after noting it. */
static void move_keys(lua_State *L, int t, int moved, const char *key) {
  lua_pushnil(L);
  while (lua_next(L, moved)) { /* old key, value as noted */
    size_t len;
    const char *k = lua_tolstring(L, -2, &len);
    lua_pop(L, 1);
    sora_push_redacted(L, k, len, key); /* old key, new key */
    lua_pushvalue(L, -2);
    lua_rawget(L, t);                   /* old key, new key, value as it is now */
    lua_rawset(L, t);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, t);                   /* old key */
  }
}

/* Every string of a decoded value, keys included, nested tables too (cjson's depth limit
 * bounds the recursion). */
static void redact_walk(lua_State *L, int t, const char *key) {
  int moved;
  luaL_checkstack(L, 8, "sora: a response is nested too deeply");
  lua_pushnil(L); /* the table of keys to move, when one is found */
  moved = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    redact_entry(L, t, key, moved);
    lua_pop(L, 1);
  }
  if (!lua_isnil(L, moved)) move_keys(L, t, moved, key);
  lua_pop(L, 1);
}

void sora_redact_tree(lua_State *L, int value, const char *key) {
  if (key == NULL || strlen(key) < SORA_MIN_REDACTED_KEY || !lua_istable(L, value)) return;
  redact_walk(L, sora_absindex(L, value), key);
}

/* ---- the shape of what the server sent -------------------------------------------------- */

/* Pushes "the <what>'s '<field>' <problem>" and returns 0. */
static int bad_field(lua_State *L, const char *what, const char *field, const char *problem) {
  lua_pushfstring(L, "the %s's '%s' %s", what, field, problem);
  return 0;
}

/* An id sora can send back: a non-empty string without CR, LF or NUL. */
static int is_valid_id(lua_State *L, int i) {
  size_t len, k;
  const char *s;
  if (lua_type(L, i) != LUA_TSTRING) return 0;
  s = lua_tolstring(L, i, &len);
  for (k = 0; k < len; k++) {
    if (s[k] == '\r' || s[k] == '\n' || s[k] == '\0') return 0;
  }
  return len > 0;
}

/* Absent: nil, or JSON null where a handle leaves nulls as they came. */
static int is_absent(lua_State *L, int i) { return lua_isnil(L, i) || sora_is_null(L, i); }

/* Requires t[field] to be of Lua type `type` (or absent when optional). */
static int check_type(lua_State *L, int t, const char *what, const char *field, int type,
                      int optional) {
  int actual, absent;
  lua_getfield(L, t, field);
  actual = lua_type(L, -1);
  absent = is_absent(L, -1);
  lua_pop(L, 1);
  if (actual == type || (optional && absent)) return 1;
  return bad_field(L, what, field, type == LUA_TSTRING ? "is not a string"
                                   : type == LUA_TNUMBER ? "is not a number"
                                   : type == LUA_TBOOLEAN ? "is not a boolean" : "is not an object");
}

/* Requires t[field] to be a valid id (or absent when optional). */
static int check_id(lua_State *L, int t, const char *what, const char *field, int optional) {
  int ok;
  lua_getfield(L, t, field);
  ok = is_valid_id(L, -1) || (optional && is_absent(L, -1));
  lua_pop(L, 1);
  return ok || bad_field(L, what, field, "is not a valid id (a non-empty string without CR or LF)");
}

/* Requires t to be an object; pushes a message and returns 0 otherwise. */
static int check_object(lua_State *L, int t, const char *what) {
  if (lua_istable(L, t)) return 1;
  /* cjson's null is a light userdata: named as JSON names it */
  lua_pushfstring(L, "expected a %s object, got a JSON %s", what,
                  lua_islightuserdata(L, t) ? "null" : luaL_typename(L, t));
  return 0;
}

/* Names the first field of a Video whose type is not the API's (the slow path of vet_video:
 * only a response that fails the vetting gets here). Nulls read as absent. */
static int check_video(lua_State *L, int v) {
  static const char *const texts[] = {"object", "model", "size", "prompt", "remixed_from_video_id", NULL};
  static const char *const numbers[] = {"progress", "created_at", "completed_at", "expires_at", NULL};
  int i;
  if (!check_id(L, v, "video", "id", 0) || !check_type(L, v, "video", "status", LUA_TSTRING, 0)) return 0;
  for (i = 0; texts[i]; i++) {
    if (!check_type(L, v, "video", texts[i], LUA_TSTRING, 1)) return 0;
  }
  for (i = 0; numbers[i]; i++) {
    if (!check_type(L, v, "video", numbers[i], LUA_TNUMBER, 1)) return 0;
  }
  lua_getfield(L, v, "seconds");
  i = is_absent(L, -1) || lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER;
  lua_pop(L, 1);
  if (!i) return bad_field(L, "video", "seconds", "is not a string");
  if (!check_type(L, v, "video", "error", LUA_TTABLE, 1)) return 0;
  lua_getfield(L, v, "error");
  /* a JSON array decodes to a table too: one with elements is no object */
  if (lua_istable(L, -1) && sora_rawlen(L, -1) > 0) {
    lua_pop(L, 1);
    return bad_field(L, "video", "error", "is not an object");
  }
  i = !lua_istable(L, -1) || (check_type(L, lua_gettop(L), "video's error", "code", LUA_TSTRING, 1) &&
                              check_type(L, lua_gettop(L), "video's error", "message", LUA_TSTRING, 1));
  if (!i) lua_remove(L, -2); /* the error table, under the message */
  else lua_pop(L, 1);
  return i;
}

/* The fields of a Video sora knows, each with the shape a program reads it in (kinds from 1:
 * 0 is a field sora does not know). */
enum { FIELD_ID = 1, FIELD_STATUS, FIELD_TEXT, FIELD_INTEGER, FIELD_SECONDS, FIELD_ERROR };

static const struct {
  const char *name;
  int kind;
} video_fields[] = {
    {"id", FIELD_ID}, {"status", FIELD_STATUS}, {"object", FIELD_TEXT}, {"model", FIELD_TEXT},
    {"size", FIELD_TEXT}, {"prompt", FIELD_TEXT}, {"remixed_from_video_id", FIELD_TEXT},
    {"progress", FIELD_INTEGER}, {"created_at", FIELD_INTEGER}, {"completed_at", FIELD_INTEGER},
    {"expires_at", FIELD_INTEGER}, {"seconds", FIELD_SECONDS}, {"error", FIELD_ERROR}};

#define FIELD_COUNT ((int)(sizeof video_fields / sizeof video_fields[0]))

/* One table for the known fields, kept in the registry under the address of video_fields:
 * [i] = the name of video_fields[i - 1], as a Lua string (looked up without hashing a C string
 * again, which lua_getfield does on every call in LuaJIT and 5.1), and [name] = its kind. */
void sora_open_marshal(lua_State *L) {
  int i;
  lua_newtable(L);
  for (i = 0; i < FIELD_COUNT; i++) {
    lua_pushstring(L, video_fields[i].name);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, i + 1);
    lua_pushinteger(L, video_fields[i].kind);
    lua_rawset(L, -3);
  }
  sora_rawsetp(L, LUA_REGISTRYINDEX, video_fields);
}

void sora_push_video_fields(lua_State *L) { sora_rawgetp(L, LUA_REGISTRYINDEX, video_fields); }

/* Whether the value on top, of Lua type `type`, is what the API gives for a field of this
 * kind; a table for the error is check_video's to vet. */
static int is_vetted(lua_State *L, int type, int kind) {
  int absent = type == LUA_TNIL || (type == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL);
  switch (kind) {
    case FIELD_ID: return is_valid_id(L, -1);
    case FIELD_STATUS: return type == LUA_TSTRING;
    case FIELD_TEXT: return type == LUA_TSTRING || absent;
    case FIELD_INTEGER: return type == LUA_TNUMBER || absent;
    case FIELD_SECONDS: return type == LUA_TSTRING || type == LUA_TNUMBER || absent;
    default: return absent;
  }
}

/* What making Videos needs at hand, pushed once per result (a page holds 100 of them): the
 * client, the known fields (sora_push_video_fields), the metatable, the poll hint. */
typedef struct {
  int client, known, meta;
  int names; /* the names of video_fields, from index names + 1 on: pushed, not looked up */
  long poll_after_ms;
} video_context;

/* Vets the types of the fields sora knows, each looked up by name, changing nothing (a field
 * is shaped when it is read: video.c); returns 1 when check_video has nothing to find. Fields
 * sora does not know are not looked at. The values stay on the stack until the end, one pop
 * for all (push_video_context made room). */
static int vet_video(lua_State *L, int video, const video_context *c) {
  int i, fine = 1, top = lua_gettop(L);
  for (i = 0; i < FIELD_COUNT && fine; i++) {
    lua_pushvalue(L, c->names + i + 1);
    fine = is_vetted(L, sora_rawget(L, video), video_fields[i].kind);
  }
  lua_settop(L, top);
  return fine;
}

/* Replaces the value on top, a Video's field of this kind (0: unknown), by what a program
 * reads: a null becomes nil, an integral number the API sends as an integer becomes one, a
 * number of seconds becomes its text; an error object loses its nulls, in place. Returns 1
 * when the shaped value should replace the one the handle holds, so that it is shaped once. */
int sora_shape_field(lua_State *L, int kind) {
  lua_Integer n;
  if (sora_is_null(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return 1;
  }
  if (kind == FIELD_INTEGER && lua_type(L, -1) == LUA_TNUMBER) {
#if LUA_VERSION_NUM >= 503 /* before 5.3, a number is its own shape */
    if (!lua_isinteger(L, -1) && sora_isintegral(L, -1, &n)) {
      lua_pop(L, 1);
      lua_pushinteger(L, n);
      return 1;
    }
#endif
  } else if (kind == FIELD_SECONDS && sora_isintegral(L, -1, &n)) {
    /* a string on the wire; a server that sends a number gets it read as one */
    lua_pop(L, 1);
    sora_push_integer_text(L, n);
    return 1;
  } else if (kind == FIELD_ERROR && lua_istable(L, -1)) {
    drop_nulls(L, -1);
  }
  return 0;
}

static int marshal_video(lua_State *L, int value, const video_context *c) {
  if (!check_object(L, value, "video")) return 0;
  if (!vet_video(L, value, c) && !check_video(L, value)) return 0;
  sora_push_video(L, value, c->client, c->meta, c->poll_after_ms);
  return 1;
}

/* A JSON array: lua-cjson decodes one to keys 1..n, an object to string keys, never a mix
 * (and redaction renames string keys only): the first key says which. An empty table is
 * both, as cjson gives {} and [] alike. */
static int is_array(lua_State *L, int t) {
  int number_key;
  lua_pushnil(L);
  if (!lua_next(L, t)) return 1;
  number_key = lua_type(L, -2) == LUA_TNUMBER;
  lua_pop(L, 2);
  return number_key;
}

/* Every item of data a Video. */
static int marshal_items(lua_State *L, int data, const video_context *c) {
  int i, n = (int)sora_rawlen(L, data);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, data, i);
    if (!marshal_video(L, lua_gettop(L), c)) {
      lua_pushfstring(L, "item %d of 'data': %s", i, lua_tostring(L, -1));
      return 0;
    }
    lua_rawseti(L, data, i);
    lua_pop(L, 1);
  }
  return 1;
}

/* {object, data = {Video...}, first_id, last_id, has_more} plus any other fields. */
static int marshal_page(lua_State *L, int value, const video_context *c) {
  int data;
  if (!check_object(L, value, "list")) return 0;
  drop_nulls(L, value);
  if (!check_id(L, value, "list", "first_id", 1) || !check_id(L, value, "list", "last_id", 1) ||
      !check_type(L, value, "list", "has_more", LUA_TBOOLEAN, 1))
    return 0;
  lua_getfield(L, value, "data");
  data = lua_gettop(L);
  if (!lua_istable(L, data) || !is_array(L, data)) return bad_field(L, "list", "data", "is not an array");
  if (!marshal_items(L, data, c)) return 0;
  lua_pop(L, 1);
  lua_pushvalue(L, value);
  return 1;
}

/* A deleted result or a character: an id (a character's may be null), a created_at. */
static int marshal_record(lua_State *L, int value, const char *what, int id_optional) {
  if (!check_object(L, value, what)) return 0;
  drop_nulls(L, value);
  if (!check_id(L, value, what, "id", id_optional)) return 0;
  if (!check_type(L, value, what, "created_at", LUA_TNUMBER, 1)) return 0;
  integer_field(L, value, "created_at");
  lua_pushvalue(L, value);
  return 1;
}

/* Pushes the context of the Videos of a result. */
static void push_video_context(lua_State *L, video_context *c, int client, long poll_after_ms) {
  int i;
  c->client = client;
  c->poll_after_ms = poll_after_ms;
  sora_push_video_fields(L);
  c->known = lua_gettop(L);
  luaL_getmetatable(L, SORA_VIDEO);
  c->meta = lua_gettop(L);
  /* the names, vet_video's values, and an item and its handle above them (marshal_items) */
  luaL_checkstack(L, 2 * FIELD_COUNT + 4, "sora: no stack for a video's fields");
  c->names = lua_gettop(L);
  for (i = 1; i <= FIELD_COUNT; i++) lua_rawgeti(L, c->known, i);
}

/* The result (or the message) ends on top, over the context of a Video or a page. */
static int marshal_videos(lua_State *L, sora_result kind, int value, int client, long poll_after_ms) {
  video_context c;
  int ok;
  /* a listed video's poll hint is unknown: the page's answer is not the video's */
  push_video_context(L, &c, client, kind == SORA_RESULT_VIDEO ? poll_after_ms : -1);
  ok = kind == SORA_RESULT_VIDEO ? marshal_video(L, value, &c) : marshal_page(L, value, &c);
  lua_replace(L, c.known);
  lua_settop(L, c.known);
  return ok;
}

int sora_marshal(lua_State *L, sora_result kind, int value, int client, long poll_after_ms) {
  value = sora_absindex(L, value);
  client = sora_absindex(L, client);
  switch (kind) {
    case SORA_RESULT_VIDEO: case SORA_RESULT_PAGE: return marshal_videos(L, kind, value, client, poll_after_ms);
    case SORA_RESULT_DELETED: return marshal_record(L, value, "deleted video", 0);
    case SORA_RESULT_CHARACTER: return marshal_record(L, value, "character", 1);
    default: lua_pushliteral(L, "no JSON expected"); return 0;
  }
}
