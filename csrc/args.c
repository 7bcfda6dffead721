/* The argument layer: one message shape for every argument check of the C core,
 * "bad argument #N to 'NAME' (...)" at the program's line, and option tables read once into a
 * plain copy, so that no value is used after its anchor is gone (an __index that returns fresh
 * strings and runs the collector cannot free what the core still reads). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sora.h"

/* sora's own Lua modules pass arguments on, so an error is never blamed on them. They are the
 * files under the source prefix this registry field holds ("@lua/sora/"), which sora.args
 * sets as it loads (core._lua_dir): the plugin's and the command's included. One definition,
 * for the core's raises and args.lua's alike (args.fail raises through core._raise). */
#define LUA_DIR_FIELD "sora.lua_dir"

static int is_sora_lua(lua_State *L, const char *source) {
  size_t len;
  const char *dir;
  int own;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_DIR_FIELD);
  dir = lua_tolstring(L, -1, &len);
  own = dir != NULL && len > 0 && strncmp(source, dir, len) == 0;
  lua_pop(L, 1);
  return own;
}

/* core._lua_dir(prefix): where sora's Lua modules live (see LUA_DIR_FIELD). */
int sora_set_lua_dir(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, LUA_DIR_FIELD);
  return 0;
}

/* core._raise(message): raises message at the program's line, as the core's own errors. */
int sora_raise_message(lua_State *L) {
  return sora_raise(L, "%s", luaL_checkstring(L, 1));
}

/* Pushes "file:line:" of the first caller outside sora's own Lua files, so that an argument
 * error points at the program's line, not at the wrapper that passed the argument on. */
static void push_caller_position(lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline <= 0 || is_sora_lua(L, ar.source)) continue;
    lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    return;
  }
  lua_pushliteral(L, "");
}

/* Raises a message formatted as lua_pushfstring does, at the program's line. */
int sora_raise(lua_State *L, const char *fmt, ...) {
  va_list args;
  push_caller_position(L);
  va_start(args, fmt);
  lua_pushvfstring(L, fmt, args);
  va_end(args);
  lua_concat(L, 2); /* position .. message */
  lua_error(L);
  abort(); /* lua_error never returns; lua.h does not say so */
}

/* "bad argument #N to 'NAME' (...)": the one shape of every argument error of the core. */
int sora_bad_argument(lua_State *L, const char *fname, int arg, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  lua_pushvfstring(L, fmt, args);
  va_end(args);
  sora_raise(L, "bad argument #%d to '%s' (%s)", arg, fname, lua_tostring(L, -1));
}

/* Numbered as the public method counts (self is not an argument), however the call came. */
int sora_arg_error(lua_State *L, const sora_endpoint *e, int arg, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  lua_pushvfstring(L, fmt, args);
  va_end(args);
  sora_bad_argument(L, e->name, arg - 1, "%s", lua_tostring(L, -1));
}

/* ---- the nearest known name ----------------------------------------------------------- */

#define NEAREST_MAX_LEN 64 /* option names are far shorter: a longer one is near nothing */
#define NEAREST_MAX_EDITS 2

/* Edits from a to b (insert, delete, replace, swap of two neighbours: the optimal string
 * alignment distance), both at most NEAREST_MAX_LEN bytes; rows of the table in turn. */
static int edit_distance(const char *a, size_t la, const char *b, size_t lb) {
  int rows[3][NEAREST_MAX_LEN + 1];
  size_t i, j;
  for (j = 0; j <= lb; j++) rows[0][j] = (int)j;
  for (i = 1; i <= la; i++) {
    int *row = rows[i % 3], *up = rows[(i - 1) % 3], *up2 = rows[(i + 1) % 3];
    row[0] = (int)i;
    for (j = 1; j <= lb; j++) {
      int cost = a[i - 1] != b[j - 1], best = up[j - 1] + cost;
      if (up[j] + 1 < best) best = up[j] + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && up2[j - 2] + 1 < best)
        best = up2[j - 2] + 1;
      row[j] = best;
    }
  }
  return rows[la % 3][lb];
}

void sora_nearest_init(sora_nearest *n, const char *name) {
  n->name = name;
  n->best = NULL;
  n->distance = NEAREST_MAX_EDITS + 1;
}

void sora_nearest_consider(sora_nearest *n, const char *known) {
  size_t la = strlen(n->name), lb = strlen(known), longer = la > lb ? la : lb;
  int d;
  if (la > NEAREST_MAX_LEN || lb > NEAREST_MAX_LEN) return;
  d = edit_distance(n->name, la, known, lb);
  if (d > NEAREST_MAX_EDITS || (size_t)d * 3 > longer) return;
  if (d < n->distance || (d == n->distance && n->best && strcmp(known, n->best) < 0)) {
    n->best = known;
    n->distance = d;
  }
}

const char *sora_did_you_mean(const sora_nearest *n, char *buf, size_t size) {
  if (n->best == NULL) return "";
  snprintf(buf, size, " (did you mean '%s'?)", n->best);
  return buf;
}

/* Every entry point that touches the multi handle asks this first: from inside a callback,
 * libcurl is running on that handle (curl_multi_perform is not reentrant) or the core is
 * walking its transfers. */
int sora_check_usable(lua_State *L, sora_client *c, const char *call) {
  if (c->multi == NULL || c->close_pending) /* pending: closed as soon as a C call returns */
    sora_raise(L, "calling '%s' on a closed sora.Client", call);
  if (c->in_callback)
    sora_raise(L, "calling '%s' from inside a callback (sink, on_progress or log) of the same "
                  "sora.Client is not allowed", call);
  return 1;
}

/* ---- fields of an endpoint's options ---------------------------------------------- */

static const char *kind_name(sora_field_kind kind) {
  switch (kind) {
    case SORA_FIELD_TEXT: return "a string";
    case SORA_FIELD_SECONDS: return "a string or an integer";
    case SORA_FIELD_INTEGER: return "an integer";
    case SORA_FIELD_VIDEO_REF: return "an id, a path or a table";
    case SORA_FIELD_FUNCTION: return "a function or a callable";
    case SORA_FIELD_NUMBER: return "a number";
    case SORA_FIELD_BOOLEAN: return "a boolean";
    default: return "a path or a table";
  }
}

static const sora_field *find_field(const sora_field *fields, const char *name) {
  for (; fields && fields->name; fields++) {
    if (strcmp(fields->name, name) == 0) return fields;
  }
  return NULL;
}

static const char *const ref_keys[] = {"path", "data", "filename", "content_type", "image_url",
                                       "file_id", "id", NULL};

/* The keys a reference table may have, by kind; a table with any other key is a mistake. */
static int ref_key_allowed(sora_field_kind kind, const char *key) {
  int i;
  for (i = 0; i < 4; i++) { /* the file keys */
    if (strcmp(key, ref_keys[i]) == 0) return 1;
  }
  if (kind == SORA_FIELD_IMAGE_REF) return strcmp(key, "image_url") == 0 || strcmp(key, "file_id") == 0;
  if (kind == SORA_FIELD_VIDEO_REF) return strcmp(key, "id") == 0;
  return 0;
}

static int has_key(lua_State *L, int t, const char *key) {
  int present;
  lua_getfield(L, t, key);
  present = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return present;
}

/* Raises for a raw key of the reference table at value that its kind does not allow. */
static void check_ref_keys(lua_State *L, const sora_endpoint *e, int params, const sora_field *f,
                           int value) {
  lua_pushnil(L);
  while (lua_next(L, value)) { /* key, value */
    if (lua_type(L, -2) != LUA_TSTRING || !ref_key_allowed(f->kind, lua_tostring(L, -2)))
      sora_arg_error(L, e, params, "field '%s' has an unknown key '%s'", f->name,
                     lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2));
    lua_pop(L, 1);
  }
}

/* Replaces the reference table at value with a plain copy of its known keys (read once, through
 * __index too), each a string, exactly one of them a source. */
static void copy_ref_table(lua_State *L, const sora_endpoint *e, int params, const sora_field *f,
                           int value) {
  int i, copy, sources;
  check_ref_keys(L, e, params, f, value);
  lua_newtable(L);
  copy = lua_gettop(L);
  for (i = 0; ref_keys[i]; i++) {
    if (!ref_key_allowed(f->kind, ref_keys[i])) continue;
    lua_getfield(L, value, ref_keys[i]); /* copy, t[key] */
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
      sora_arg_error(L, e, params, "field '%s.%s' must be a string", f->name, ref_keys[i]);
    lua_setfield(L, copy, ref_keys[i]);
  }
  sources = has_key(L, copy, "path") + has_key(L, copy, "data") + has_key(L, copy, "image_url") +
            has_key(L, copy, "file_id") + has_key(L, copy, "id");
  if (sources != 1)
    sora_arg_error(L, e, params, "field '%s' needs exactly one of %s", f->name,
                   f->kind == SORA_FIELD_IMAGE_REF ? "path, data, image_url or file_id"
                   : f->kind == SORA_FIELD_VIDEO_REF ? "id, path or data" : "path or data");
  lua_replace(L, value);
}

/* Checks the value at index value (the top) for field f; a reference table becomes its copy. */
static void check_value(lua_State *L, const sora_endpoint *e, int params, const sora_field *f,
                        int value) {
  int type = lua_type(L, value);
  lua_Integer n;
  switch (f->kind) {
    case SORA_FIELD_TEXT:
      if (type == LUA_TSTRING) return;
      break;
    case SORA_FIELD_SECONDS:
      if (type == LUA_TSTRING || sora_isintegral(L, value, &n)) return;
      break;
    case SORA_FIELD_INTEGER:
      if (sora_isintegral(L, value, &n)) return;
      break;
    case SORA_FIELD_FUNCTION:
      if (sora_iscallable(L, value)) return;
      break;
    case SORA_FIELD_NUMBER:
      if (type == LUA_TNUMBER) return;
      break;
    case SORA_FIELD_BOOLEAN:
      if (type == LUA_TBOOLEAN) return;
      break;
    default:
      if (type == LUA_TSTRING) return;
      if (type == LUA_TTABLE) {
        copy_ref_table(L, e, params, f, value);
        return;
      }
  }
  sora_arg_error(L, e, params, "field '%s' must be %s, got %s", f->name, kind_name(f->kind),
                 luaL_typename(L, value));
}

/* Raises "unknown option 'name'", with the nearest name of the lists when one is near. */
static void unknown_option(lua_State *L, const sora_endpoint *e, const sora_field *const *lists,
                           int params, const char *name) {
  sora_nearest nearest;
  char hint[NEAREST_MAX_LEN + 32];
  const sora_field *f;
  int i;
  sora_nearest_init(&nearest, name);
  for (i = 0; i < 3; i++) {
    for (f = lists[i]; f && f->name; f++) sora_nearest_consider(&nearest, f->name);
  }
  sora_arg_error(L, e, params, "unknown option '%s'%s", name,
                 sora_did_you_mean(&nearest, hint, sizeof hint));
}

/* Raises for a raw key of the options table that no list names. */
static void check_names(lua_State *L, const sora_endpoint *e, const sora_field *const *lists,
                        int params) {
  lua_pushnil(L);
  while (lua_next(L, params)) { /* name, value */
    const sora_field *f = NULL;
    int i;
    if (lua_type(L, -2) != LUA_TSTRING) sora_arg_error(L, e, params, "option names must be strings");
    for (i = 0; i < 3 && f == NULL; i++) f = find_field(lists[i], lua_tostring(L, -2));
    if (f == NULL) unknown_option(L, e, lists, params, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
}

/* Raises for the first required field of one list: the call gave no options at all. */
static void require_none(lua_State *L, const sora_endpoint *e, const sora_field *f, int params) {
  for (; f && f->name; f++) {
    if (f->required) sora_arg_error(L, e, params, "field '%s' is required", f->name);
  }
}

/* Copies, checks and requires each field of one list from the table at params into copy;
 * messages name argument params. */
static void copy_fields(lua_State *L, const sora_endpoint *e, const sora_field *f, int params,
                        int copy) {
  for (; f && f->name; f++) {
    lua_getfield(L, params, f->name); /* copy ... value */
    if (lua_isnil(L, -1)) {
      if (f->required) sora_arg_error(L, e, params, "field '%s' is required", f->name);
      lua_pop(L, 1);
      continue;
    }
    check_value(L, e, params, f, lua_gettop(L));
    lua_setfield(L, copy, f->name);
  }
}

/* Pushes the one empty table that stands for "no options" in every call given none: made once
 * per Lua state, so that such a call (client:retrieve(id)) allocates nothing for its options.
 * Nothing writes to an options copy, so it stays empty. */
static void push_no_options(lua_State *L) {
  static const char key = 0;
  sora_rawgetp(L, LUA_REGISTRYINDEX, &key);
  if (lua_istable(L, -1)) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  sora_rawsetp(L, LUA_REGISTRYINDEX, &key);
}

void sora_read_options(lua_State *L, const sora_endpoint *e, const sora_field *local, int params) {
  const sora_field *lists[3];
  int copy, i;
  lists[0] = e->body;
  lists[1] = e->query;
  lists[2] = local;
  params = sora_absindex(L, params);
  if (lua_isnoneornil(L, params)) { /* nothing given (client:retrieve(id)): an empty copy */
    for (i = 0; i < 3; i++) require_none(L, e, lists[i], params);
    push_no_options(L);
    lua_replace(L, params);
    return;
  }
  check_names(L, e, lists, params);
  lua_newtable(L);
  copy = lua_gettop(L);
  for (i = 0; i < 3; i++) copy_fields(L, e, lists[i], params, copy);
  lua_replace(L, params); /* the copy takes the place of the caller's table */
}

/* ---- which values are files --------------------------------------------------------- */

/* A string names a file for image and file fields; for a video reference only when it looks
 * like a path (ids have neither '/' nor '.'). */
int sora_is_file_value(lua_State *L, int i, sora_field_kind kind) {
  if (kind == SORA_FIELD_IMAGE_REF || kind == SORA_FIELD_VIDEO_FILE || kind == SORA_FIELD_VIDEO_REF) {
    if (lua_type(L, i) == LUA_TSTRING) {
      const char *s = lua_tostring(L, i);
      return kind != SORA_FIELD_VIDEO_REF || strchr(s, '/') || strchr(s, '.');
    }
    if (lua_type(L, i) == LUA_TTABLE) return has_key(L, i, "path") || has_key(L, i, "data");
  }
  return 0;
}
