/* Request parameters: checked against the endpoint's field list, then sent as a query
 * string, a JSON body, or (when a file is among them) a multipart body. */
#include <stdarg.h>
#include <string.h>

#include "sora.h"

static const char *const kind_names[] = {
    "a string", "a string or an integer", "an integer", "a path or a table", "an id, a path or a table",
    "a path or a table", "a function", "a number", "a boolean"};

/* True for sora's own Lua modules (lua/sora/NAME.lua): they pass arguments on, so an error is
 * never blamed on them. */
static int is_sora_lua(const char *src) {
  static const char *const modules[] = {"sora/init.lua", "sora/tasks.lua", "sora/args.lua",
                                        "sora/wait.lua", "sora/lists.lua", "sora/batch.lua", NULL};
  size_t len = strlen(src), n;
  int i;
  for (i = 0; modules[i]; i++) {
    n = strlen(modules[i]);
    if (len >= n && strcmp(src + len - n, modules[i]) == 0) return 1;
  }
  return 0;
}

/* Pushes "file:line:" of the first caller outside sora's own Lua files, so that an argument
 * error points at the program's line, not at the wrapper that passed the argument on. */
static void push_caller_position(lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline <= 0 || is_sora_lua(ar.short_src)) continue;
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
  lua_concat(L, 2);
  return lua_error(L);
}

/* "bad argument #N to 'create' (...)": named after the endpoint, numbered as the public method
 * counts (self is not an argument), however the call reached here. */
int sora_arg_error(lua_State *L, const sora_endpoint *e, int arg, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  lua_pushvfstring(L, fmt, args);
  va_end(args);
  return sora_raise(L, "bad argument #%d to '%s' (%s)", arg - 1, e->name, lua_tostring(L, -1));
}

static const sora_field *find_field(const sora_field *fields, const char *name) {
  for (; fields && fields->name; fields++) {
    if (strcmp(fields->name, name) == 0) return fields;
  }
  return NULL;
}

/* The keys a reference table may have, by kind; a table with any other key is a mistake. */
static int ref_key_allowed(sora_field_kind kind, const char *key) {
  static const char *const file_keys[] = {"path", "data", "filename", "content_type", NULL};
  int i;
  for (i = 0; file_keys[i]; i++) {
    if (strcmp(key, file_keys[i]) == 0) return 1;
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

static void check_ref_table(lua_State *L, const sora_endpoint *e, int params, const sora_field *f,
                            int value) {
  int sources = 0;
  lua_pushnil(L);
  while (lua_next(L, value)) {
    if (lua_type(L, -2) != LUA_TSTRING || !ref_key_allowed(f->kind, lua_tostring(L, -2)))
      sora_arg_error(L, e, params, "field '%s' has an unknown key '%s'", f->name,
                  lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2));
    if (lua_type(L, -1) != LUA_TSTRING)
      sora_arg_error(L, e, params, "field '%s.%s' must be a string", f->name, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  sources = has_key(L, value, "path") + has_key(L, value, "data") + has_key(L, value, "image_url") +
            has_key(L, value, "file_id") + has_key(L, value, "id");
  if (sources != 1)
    sora_arg_error(L, e, params, "field '%s' needs exactly one of %s", f->name,
                f->kind == SORA_FIELD_IMAGE_REF ? "path, data, image_url or file_id"
                : f->kind == SORA_FIELD_VIDEO_REF ? "id, path or data" : "path or data");
}

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
      if (type == LUA_TFUNCTION) return;
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
        check_ref_table(L, e, params, f, value);
        return;
      }
  }
  sora_arg_error(L, e, params, "field '%s' must be %s", f->name, kind_names[f->kind]);
}

/* Raises for unknown names, wrong types and missing required fields. */
void sora_check_fields(lua_State *L, const sora_endpoint *e, const sora_field *local, int params) {
  const sora_field *lists[3], *f;
  int i;
  lists[0] = e->body;
  lists[1] = e->query;
  lists[2] = local;
  if (lua_isnoneornil(L, params)) return;
  lua_pushnil(L);
  while (lua_next(L, params)) {
    const char *name;
    if (lua_type(L, -2) != LUA_TSTRING) sora_arg_error(L, e, params, "option names must be strings");
    name = lua_tostring(L, -2);
    for (f = NULL, i = 0; i < 3 && f == NULL; i++) f = find_field(lists[i], name);
    if (f == NULL) sora_arg_error(L, e, params, "unknown option '%s'", name);
    check_value(L, e, params, f, lua_gettop(L));
    lua_pop(L, 1);
  }
  for (i = 0; i < 3; i++) {
    for (f = lists[i]; f && f->name; f++) {
      if (f->required && (lua_isnoneornil(L, params) || !has_key(L, params, f->name)))
        sora_arg_error(L, e, params, "field '%s' is required", f->name);
    }
  }
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

static int wants_multipart(lua_State *L, const sora_endpoint *e, int params) {
  const sora_field *f;
  int file = 0;
  for (f = e->body; f->name && !file; f++) {
    lua_getfield(L, params, f->name);
    file = sora_is_file_value(L, -1, f->kind);
    lua_pop(L, 1);
  }
  return file;
}

/* Pushes the text a scalar field is sent as: seconds always as a string ("8", never 8). */
static void push_text(lua_State *L, int value) {
  lua_Integer n;
  if (lua_type(L, value) != LUA_TSTRING && sora_isintegral(L, value, &n))
    sora_push_integer_text(L, n);
  else
    lua_pushvalue(L, value);
}

/* ---- JSON bodies -------------------------------------------------------------------- */

/* The object form of a reference: {image_url}/{file_id}, or {id} for a video. */
static void push_reference(lua_State *L, const sora_field *f, int value) {
  static const char *const keys[] = {"image_url", "file_id", "id", NULL};
  int i;
  lua_newtable(L);
  if (lua_type(L, value) == LUA_TSTRING) { /* a video id */
    lua_pushvalue(L, value);
    lua_setfield(L, -2, "id");
    return;
  }
  (void)f;
  for (i = 0; keys[i]; i++) {
    lua_getfield(L, value, keys[i]);
    lua_setfield(L, -2, keys[i]);
  }
}

static void encode_json(lua_State *L, sora_transfer *t, int transfer, int params) {
  const sora_field *f;
  size_t len;
  lua_newtable(L);
  for (f = t->endpoint->body; f->name; f++) {
    lua_getfield(L, params, f->name);
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) == LUA_TTABLE || f->kind == SORA_FIELD_VIDEO_REF) push_reference(L, f, lua_gettop(L));
      else push_text(L, lua_gettop(L));
      lua_setfield(L, -3, f->name);
    }
    lua_pop(L, 1);
  }
  sora_json_encode(L, -1);
  t->body = lua_tolstring(L, -1, &len);
  t->body_len = len;
  /* the user value keeps the string alive while curl points into it */
  sora_getuservalue(L, transfer);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "body");
  lua_pop(L, 3);
  t->headers = SORA_HEADERS_JSON;
}

/* ---- multipart bodies ---------------------------------------------------------------- */

static void add_text_part(lua_State *L, sora_transfer *t, const char *name, int value) {
  curl_mimepart *part = curl_mime_addpart(t->mime);
  size_t len;
  const char *text;
  push_text(L, value);
  text = lua_tolstring(L, -1, &len);
  if (part == NULL || curl_mime_name(part, name) != CURLE_OK ||
      curl_mime_data(part, text, len) != CURLE_OK)
    luaL_error(L, "sora: out of memory");
  lua_pop(L, 1);
}

/* An object reference in multipart is flattened with brackets: input_reference[image_url]. */
static void add_reference_parts(lua_State *L, sora_transfer *t, const sora_field *f, int value) {
  int ref;
  push_reference(L, f, value);
  ref = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, ref)) {
    lua_pushfstring(L, "%s[%s]", f->name, lua_tostring(L, -2));
    add_text_part(L, t, lua_tostring(L, -1), lua_gettop(L) - 1);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

static void encode_multipart(lua_State *L, sora_transfer *t, int params) {
  const sora_field *f;
  t->mime = curl_mime_init(t->handle->easy);
  if (t->mime == NULL) luaL_error(L, "sora: out of memory");
  for (f = t->endpoint->body; f->name; f++) {
    int value;
    lua_getfield(L, params, f->name);
    value = lua_gettop(L);
    if (lua_isnil(L, value)) { /* absent */
    } else if (sora_is_file_value(L, value, f->kind)) {
      sora_mime_add_file(L, t, f, value);
    } else if (lua_type(L, value) == LUA_TTABLE || f->kind == SORA_FIELD_VIDEO_REF) {
      add_reference_parts(L, t, f, value);
    } else {
      add_text_part(L, t, f->name, value);
    }
    lua_settop(L, value - 1);
  }
  t->headers = SORA_HEADERS_MIME;
}

void sora_encode_body(lua_State *L, sora_transfer *t, int transfer, int params) {
  if (t->endpoint->body == NULL) return;
  transfer = sora_absindex(L, transfer);
  params = sora_absindex(L, params);
  if (wants_multipart(L, t->endpoint, params)) encode_multipart(L, t, params);
  else encode_json(L, t, transfer, params);
}

/* ---- URLs ---------------------------------------------------------------------------- */

/* Percent-encodes all but letters, digits, '-', '_' and '~': an id can never reach another
 * path ('/', '?', '#', '.' are all encoded). */
void sora_url_append_escaped(lua_State *L, sora_buffer *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i;
  if (!sora_buffer_reserve(b, n * 3)) luaL_error(L, "sora: out of memory");
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '_' || ch == '~') {
      b->data[b->len++] = (char)ch;
    } else {
      b->data[b->len++] = '%';
      b->data[b->len++] = hex[ch >> 4];
      b->data[b->len++] = hex[ch & 15];
    }
  }
}

void sora_encode_query(lua_State *L, sora_transfer *t, int params) {
  const sora_field *f;
  sora_buffer *url = &t->handle->url;
  char separator = '?';
  if (t->endpoint->query == NULL || lua_isnoneornil(L, params)) return;
  for (f = t->endpoint->query; f->name; f++) {
    size_t len;
    const char *text;
    lua_getfield(L, params, f->name);
    if (!lua_isnil(L, -1)) {
      push_text(L, lua_gettop(L));
      text = lua_tolstring(L, -1, &len);
      if (!sora_buffer_append(url, &separator, 1) || !sora_buffer_appendstr(url, f->name) ||
          !sora_buffer_append(url, "=", 1))
        luaL_error(L, "sora: out of memory");
      sora_url_append_escaped(L, url, text, len);
      separator = '&';
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}
