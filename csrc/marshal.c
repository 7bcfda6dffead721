/* Decoded JSON to the values sora returns: Video handles, list pages, deleted results and
 * characters. Unknown fields are kept; JSON null becomes nil; the API's integers become Lua
 * integers (lua-cjson 2.1.0 decodes every number as a float). */
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

/* Requires t[field] to be of Lua type `type` (or absent when optional). */
static int check_type(lua_State *L, int t, const char *what, const char *field, int type,
                      int optional) {
  int actual;
  lua_getfield(L, t, field);
  actual = lua_type(L, -1);
  lua_pop(L, 1);
  if (actual == type || (optional && actual == LUA_TNIL)) return 1;
  return bad_field(L, what, field, type == LUA_TSTRING ? "is not a string"
                                   : type == LUA_TNUMBER ? "is not a number"
                                   : type == LUA_TBOOLEAN ? "is not a boolean" : "is not an object");
}

/* Requires t[field] to be a valid id (or absent when optional). */
static int check_id(lua_State *L, int t, const char *what, const char *field, int optional) {
  int ok;
  lua_getfield(L, t, field);
  ok = is_valid_id(L, -1) || (optional && lua_isnil(L, -1));
  lua_pop(L, 1);
  return ok || bad_field(L, what, field, "is not a valid id (a non-empty string without CR or LF)");
}

/* Requires t to be an object; pushes a message and returns 0 otherwise. */
static int check_object(lua_State *L, int t, const char *what) {
  if (lua_istable(L, t)) return 1;
  lua_pushfstring(L, "expected a %s object, got a JSON %s", what, luaL_typename(L, t));
  return 0;
}

/* A Video's fields of known meaning have the type the API gives them; others are kept as
 * they come. Nulls are already dropped. */
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
  i = lua_isnil(L, -1) || lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER;
  lua_pop(L, 1);
  if (!i) return bad_field(L, "video", "seconds", "is not a string");
  if (!check_type(L, v, "video", "error", LUA_TTABLE, 1)) return 0;
  lua_getfield(L, v, "error");
  /* a JSON array decodes to a table too: one with elements is no object */
  if (lua_istable(L, -1) && sora_rawlen(L, -1) > 0) {
    lua_pop(L, 1);
    return bad_field(L, "video", "error", "is not an object");
  }
  i = lua_isnil(L, -1) || (check_type(L, lua_gettop(L), "video's error", "code", LUA_TSTRING, 1) &&
                           check_type(L, lua_gettop(L), "video's error", "message", LUA_TSTRING, 1));
  if (!i) lua_remove(L, -2); /* the error table, under the message */
  else lua_pop(L, 1);
  return i;
}

/* The fields of a Video sora knows, each with what normalizing does to it. */
enum { FIELD_ID, FIELD_STATUS, FIELD_TEXT, FIELD_INTEGER, FIELD_SECONDS, FIELD_ERROR };

static const struct {
  const char *name;
  int kind;
} video_fields[] = {
    {"id", FIELD_ID}, {"status", FIELD_STATUS}, {"object", FIELD_TEXT}, {"model", FIELD_TEXT},
    {"size", FIELD_TEXT}, {"prompt", FIELD_TEXT}, {"remixed_from_video_id", FIELD_TEXT},
    {"progress", FIELD_INTEGER}, {"created_at", FIELD_INTEGER}, {"completed_at", FIELD_INTEGER},
    {"expires_at", FIELD_INTEGER}, {"seconds", FIELD_SECONDS}, {"error", FIELD_ERROR},
    {NULL, 0}};

/* The names of video_fields as Lua strings, in order, kept in the registry under the address
 * of video_fields: a name taken from there is not hashed again (lua_getfield hashes its C
 * string on every call in LuaJIT and 5.1). */
void sora_open_marshal(lua_State *L) {
  int i;
  lua_newtable(L);
  for (i = 0; video_fields[i].name; i++) {
    lua_pushstring(L, video_fields[i].name);
    lua_rawseti(L, -2, i + 1);
  }
  sora_rawsetp(L, LUA_REGISTRYINDEX, video_fields);
}

/* A field being normalized: where the video and the names are, and its video_fields entry. */
typedef struct {
  int video, names, i;
} known_field;

/* video[the field's name] = the value on top (popped). */
static void replace_value(lua_State *L, const known_field *f) {
  lua_rawgeti(L, f->names, f->i + 1);
  lua_insert(L, -2);
  lua_rawset(L, f->video);
}

/* Normalizes a known field, its value on top (popped): a null goes, an integral number the
 * API sends as an integer becomes one, a number of seconds becomes its text. Returns 1 when
 * the field is as check_video wants it, 0 when check_video must look (a wrong type, a
 * required field missing, an error object). */
static int normalize_field(lua_State *L, const known_field *f) {
  lua_Integer n;
  int type = lua_type(L, -1), fine;
  if (sora_is_null(L, -1)) {
    lua_pushnil(L);
    replace_value(L, f);
    type = LUA_TNIL;
  }
  switch (video_fields[f->i].kind) {
    case FIELD_ID: fine = is_valid_id(L, -1); break;
    case FIELD_STATUS: fine = type == LUA_TSTRING; break;
    case FIELD_TEXT: fine = type == LUA_TSTRING || type == LUA_TNIL; break;
    case FIELD_INTEGER:
      if (sora_isintegral(L, -1, &n)) {
        lua_pushinteger(L, n);
        replace_value(L, f);
      }
      fine = type == LUA_TNUMBER || type == LUA_TNIL;
      break;
    case FIELD_SECONDS: /* a string on the wire; a server that sends a number gets it read as one */
      if (sora_isintegral(L, -1, &n)) {
        sora_push_integer_text(L, n);
        replace_value(L, f);
      }
      fine = type == LUA_TSTRING || type == LUA_TNUMBER || type == LUA_TNIL;
      break;
    default: /* FIELD_ERROR: an error object is check_video's to vet */
      if (type == LUA_TTABLE) drop_nulls(L, -1);
      fine = type == LUA_TNIL;
  }
  lua_pop(L, 1);
  return fine;
}

/* Normalizes the fields sora knows, each looked up by name, and vets their types; returns 1
 * when check_video has nothing to find (its lookups are then skipped). Fields sora does not
 * know are kept as they came: looking them up is cheaper than walking every field of every
 * listed video, and their nulls are hidden where a handle is read (video.c). */
static int normalize_video(lua_State *L, int video) {
  known_field f;
  int fine = 1;
  f.video = sora_absindex(L, video);
  sora_rawgetp(L, LUA_REGISTRYINDEX, video_fields);
  f.names = lua_gettop(L);
  for (f.i = 0; video_fields[f.i].name; f.i++) {
    lua_rawgeti(L, f.names, f.i + 1);
    lua_rawget(L, f.video);
    fine = normalize_field(L, &f) && fine;
  }
  lua_pop(L, 1);
  return fine;
}

static int marshal_video(lua_State *L, int value, int client, long poll_after_ms) {
  if (!check_object(L, value, "video")) return 0;
  if (!normalize_video(L, value) && !check_video(L, value)) return 0;
  sora_push_video(L, value, client, poll_after_ms);
  return 1;
}

/* A JSON array: keys 1..n and nothing else (cjson gives {} and [] alike: both are empty). */
static int is_array(lua_State *L, int t) {
  size_t n = sora_rawlen(L, t), count = 0;
  lua_Integer k;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (!sora_isintegral(L, -1, &k) || k < 1 || (size_t)k > n) {
      lua_pop(L, 1);
      return 0;
    }
    count++;
  }
  return count == n;
}

/* Every item of data a Video. */
static int marshal_items(lua_State *L, int data, int client) {
  int i, n = (int)sora_rawlen(L, data);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, data, i);
    if (!marshal_video(L, lua_gettop(L), client, -1)) {
      lua_pushfstring(L, "item %d of 'data': %s", i, lua_tostring(L, -1));
      return 0;
    }
    lua_rawseti(L, data, i);
    lua_pop(L, 1);
  }
  return 1;
}

/* {object, data = {Video...}, first_id, last_id, has_more} plus any other fields. */
static int marshal_page(lua_State *L, int value, int client) {
  int data;
  if (!check_object(L, value, "list")) return 0;
  drop_nulls(L, value);
  if (!check_id(L, value, "list", "first_id", 1) || !check_id(L, value, "list", "last_id", 1) ||
      !check_type(L, value, "list", "has_more", LUA_TBOOLEAN, 1))
    return 0;
  lua_getfield(L, value, "data");
  data = lua_gettop(L);
  if (!lua_istable(L, data) || !is_array(L, data)) return bad_field(L, "list", "data", "is not an array");
  if (!marshal_items(L, data, client)) return 0;
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

int sora_marshal(lua_State *L, sora_result kind, int value, int client, long poll_after_ms) {
  value = sora_absindex(L, value);
  client = sora_absindex(L, client);
  switch (kind) {
    case SORA_RESULT_VIDEO: return marshal_video(L, value, client, poll_after_ms);
    case SORA_RESULT_PAGE: return marshal_page(L, value, client);
    case SORA_RESULT_DELETED: return marshal_record(L, value, "deleted video", 0);
    case SORA_RESULT_CHARACTER: return marshal_record(L, value, "character", 1);
    default: lua_pushliteral(L, "no JSON expected"); return 0;
  }
}
