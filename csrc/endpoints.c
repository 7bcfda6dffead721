/* The ten endpoints of the Videos API as data, and the one function that serves them all:
 * check the arguments, build the URL and body, run the transfer, return its value. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sora.h"

#define F(name, kind, required) {name, SORA_FIELD_##kind, required}
#define END {NULL, SORA_FIELD_TEXT, 0}

static const sora_field create_body[] = {
    F("prompt", TEXT, 1), F("model", TEXT, 0), F("seconds", SECONDS, 0), F("size", TEXT, 0),
    F("input_reference", IMAGE_REF, 0), END};
static const sora_field list_query[] = {
    F("after", TEXT, 0), F("limit", INTEGER, 0), F("order", TEXT, 0), END};
static const sora_field remix_body[] = {F("prompt", TEXT, 1), END};
static const sora_field content_query[] = {F("variant", TEXT, 0), END};
static const sora_field edit_body[] = {F("video", VIDEO_REF, 1), F("prompt", TEXT, 1), END};
static const sora_field extend_body[] = {
    F("video", VIDEO_REF, 1), F("prompt", TEXT, 1), F("seconds", SECONDS, 1), END};
static const sora_field character_body[] = {F("video", VIDEO_FILE, 1), F("name", TEXT, 1), END};

/* Options of download_content that stay on this side of the wire. */
static const sora_field content_local[] = {
    F("path", TEXT, 0), F("sink", FUNCTION, 0), F("on_progress", FUNCTION, 0), END};

static const sora_endpoint endpoints[] = {
    {"create", "POST", "/videos", create_body, NULL, SORA_RESULT_VIDEO},
    {"retrieve", "GET", "/videos/%s", NULL, NULL, SORA_RESULT_VIDEO},
    {"list_page", "GET", "/videos", NULL, list_query, SORA_RESULT_PAGE},
    {"delete", "DELETE", "/videos/%s", NULL, NULL, SORA_RESULT_DELETED},
    {"remix", "POST", "/videos/%s/remix", remix_body, NULL, SORA_RESULT_VIDEO},
    {"download_content", "GET", "/videos/%s/content", NULL, content_query, SORA_RESULT_CONTENT},
    {"edit", "POST", "/videos/edits", edit_body, NULL, SORA_RESULT_VIDEO},
    {"extend", "POST", "/videos/extensions", extend_body, NULL, SORA_RESULT_VIDEO},
    {"create_character", "POST", "/videos/characters", character_body, NULL, SORA_RESULT_CHARACTER},
    {"get_character", "GET", "/videos/characters/%s", NULL, NULL, SORA_RESULT_CHARACTER},
    {NULL, NULL, NULL, NULL, NULL, SORA_RESULT_VIDEO}};

static const sora_endpoint *find_endpoint(const char *name) {
  const sora_endpoint *e;
  for (e = endpoints; e->name; e++) {
    if (strcmp(e->name, name) == 0) return e;
  }
  return NULL;
}

static int has_id(const sora_endpoint *e) { return strstr(e->path, "%s") != NULL; }

/* Ids are checked before any request: a string, not empty, no CR, LF or NUL. */
static const char *check_id(lua_State *L, const sora_endpoint *e, int i, size_t *len) {
  const char *id = lua_type(L, i) == LUA_TSTRING ? lua_tolstring(L, i, len) : NULL;
  size_t k;
  if (id == NULL) sora_arg_error(L, e, i, "string expected, got %s", luaL_typename(L, i));
  if (*len == 0) sora_arg_error(L, e, i, "the id is empty");
  for (k = 0; k < *len; k++) {
    if (id[k] == '\r' || id[k] == '\n' || id[k] == '\0')
      sora_arg_error(L, e, i, "the id contains CR, LF or NUL");
  }
  return id;
}

static void build_url(lua_State *L, sora_transfer *t, const char *id, size_t id_len) {
  sora_buffer *url = &t->handle->url;
  const char *path = t->endpoint->path, *hole = strstr(path, "%s");
  if (!sora_buffer_appendstr(url, t->client->base_url)) luaL_error(L, "sora: out of memory");
  if (hole == NULL) {
    if (!sora_buffer_appendstr(url, path)) luaL_error(L, "sora: out of memory");
    return;
  }
  if (!sora_buffer_append(url, path, (size_t)(hole - path))) luaL_error(L, "sora: out of memory");
  sora_url_append_escaped(L, url, id, id_len);
  if (!sora_buffer_appendstr(url, hole + 2)) luaL_error(L, "sora: out of memory");
}

/* ---- download_content's sinks -------------------------------------------------------- */

/* Keeps a function option in the transfer's user value under `key`; returns whether set. */
static int keep_function(lua_State *L, int transfer, int opts, const char *name, const char *key) {
  int set;
  lua_getfield(L, opts, name);
  set = !lua_isnil(L, -1);
  sora_getuservalue(L, transfer);
  lua_insert(L, -2);
  lua_setfield(L, -2, key);
  lua_pop(L, 1);
  return set;
}

/* The temporary file beside the target: renamed into place only when the body is whole. */
static int open_temp_file(lua_State *L, sora_transfer *t, const char *path) {
  int fd;
  t->path = strdup(path);
  t->temp_path = malloc(strlen(path) + sizeof ".sora-XXXXXX");
  if (t->path == NULL || t->temp_path == NULL) luaL_error(L, "sora: out of memory");
  strcpy(t->temp_path, path);
  strcat(t->temp_path, ".sora-XXXXXX");
  fd = mkstemp(t->temp_path);
  if (fd < 0) return 0;
  t->file = fdopen(fd, "wb");
  if (t->file == NULL) {
    close(fd);
    remove(t->temp_path);
    return 0;
  }
  return 1;
}

/* Returns 0 (with nil, err pushed) when the target cannot be written at all. */
static int prepare_sink(lua_State *L, sora_transfer *t, int transfer, int opts) {
  const char *path;
  if (lua_isnoneornil(L, opts)) return 1;
  t->has_progress = keep_function(L, transfer, opts, "on_progress", "progress");
  if (keep_function(L, transfer, opts, "sink", "sink")) t->sink = SORA_SINK_FUNCTION;
  lua_getfield(L, opts, "path");
  path = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (path == NULL) return 1;
  if (t->sink == SORA_SINK_FUNCTION) sora_arg_error(L, t->endpoint, opts, "give 'path' or 'sink', not both");
  t->sink = SORA_SINK_FILE;
  if (open_temp_file(L, t, path)) return 1;
  t->io_errno = errno;
  lua_pushnil(L);
  lua_pushfstring(L, "cannot write '%s': %s", path, strerror(errno));
  sora_push_error(L, "io", 0, lua_tostring(L, -1));
  lua_remove(L, -2);
  return 0;
}

/* ---- the one request function ------------------------------------------------------- */

static sora_client *check_self(lua_State *L, const sora_endpoint *e) {
  sora_client *c = sora_testudata(L, 1, SORA_CLIENT);
  if (c == NULL)
    sora_raise(L, "calling '%s' on bad self (sora.Client expected, got %s)", e->name, luaL_typename(L, 1));
  if (c->multi == NULL) sora_raise(L, "calling '%s' on a closed sora.Client", e->name);
  return c;
}

/* Builds and starts a transfer of endpoint e for the call's arguments (self first); pushes
 * it. Returns 0 (with nil, err pushed above it) when it could not start. */
static int start_request(lua_State *L, const sora_endpoint *e) {
  sora_client *c = check_self(L, e);
  const char *id = NULL;
  size_t id_len = 0;
  int params = 2, transfer;
  sora_transfer *t;
  if (has_id(e)) id = check_id(L, e, params++, &id_len);
  if (lua_isnoneornil(L, params) ? e->body && e->body->required : !lua_istable(L, params))
    sora_arg_error(L, e, params, "table expected, got %s", luaL_typename(L, params));
  sora_check_fields(L, e, e->result == SORA_RESULT_CONTENT ? content_local : NULL, params);
  t = sora_transfer_new(L, c, e, 1);
  transfer = lua_gettop(L);
  build_url(L, t, id, id_len);
  sora_encode_query(L, t, params);
  sora_encode_body(L, t, transfer, params);
  if (e->result == SORA_RESULT_CONTENT) {
    t->headers = SORA_HEADERS_BINARY; /* as the official SDKs ask for content */
    if (!prepare_sink(L, t, transfer, params)) return 0;
  }
  sora_transfer_begin(L, transfer);
  return 1;
}

/* client:_start(name, ...): starts the request `name` with the arguments of the public method
 * and returns its transfer (or nil, err); the Lua layer waits for it or yields. */
static int client_start(lua_State *L) {
  const sora_endpoint *e = find_endpoint(luaL_checkstring(L, 2));
  if (e == NULL) return luaL_argerror(L, 2, "unknown endpoint");
  lua_remove(L, 2);
  if (!start_request(L, e)) return 2;
  return 1;
}

/* Adds _start to the client's method table (at the top of the stack) and pushes the list of
 * endpoint names, in the order of the table. */
int sora_open_endpoints(lua_State *L) {
  const sora_endpoint *e;
  int i = 0;
  lua_pushcfunction(L, client_start);
  lua_setfield(L, -2, "_start");
  lua_newtable(L);
  for (e = endpoints; e->name; e++) {
    lua_pushstring(L, e->name);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}
