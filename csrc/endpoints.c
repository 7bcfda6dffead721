/* The ten endpoints of the Videos API as data, and the one function that serves them all:
 * check the arguments, build the URL and body, run the transfer, return its value. */
#include <errno.h>
#include <math.h>
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

/* Options that stay on this side of the wire: every call may set its own retries and time
 * limits and ask for the HTTP response beside the value; download_content also says where
 * the bytes go. */
#define REQUEST_OPTIONS F("max_retries", INTEGER, 0), F("timeout", NUMBER, 0), F("deadline", NUMBER, 0), \
                        F("with_response", BOOLEAN, 0)
static const sora_field request_local[] = {REQUEST_OPTIONS, END};
/* create-type calls (POST): the key sent on every attempt, and whether a lost answer is looked
 * for before sending again (both read by lua/sora/reconcile.lua; the key by idempotency.c) */
#define CREATE_OPTIONS F("idempotency_key", TEXT, 0), F("reconcile", BOOLEAN, 0)
static const sora_field create_local[] = {CREATE_OPTIONS, REQUEST_OPTIONS, END};
static const sora_field content_local[] = {
    F("path", TEXT, 0), F("sink", FUNCTION, 0), F("on_progress", FUNCTION, 0), F("durable", BOOLEAN, 0),
    REQUEST_OPTIONS, END};
/* create checks a file input_reference's size before sending it (reference.c) unless told not */
static const sora_field reference_local[] = {F("check_reference", BOOLEAN, 0), CREATE_OPTIONS,
                                             REQUEST_OPTIONS, END};

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

/* The endpoint's image reference field (create's input_reference), or NULL. */
static const sora_field *image_reference(const sora_endpoint *e) {
  const sora_field *f;
  for (f = e->body; f && f->name; f++) {
    if (f->kind == SORA_FIELD_IMAGE_REF) return f;
  }
  return NULL;
}

/* The options of endpoint e that stay on this side of the wire. */
static const sora_field *local_options(const sora_endpoint *e) {
  if (e->result == SORA_RESULT_CONTENT) return content_local;
  if (image_reference(e)) return reference_local;
  return sora_is_create_type(e) ? create_local : request_local;
}

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

/* ---- download_content's sinks -------------------------------------------------------- */

/* Keeps a callable option in the transfer's slot `slot`; returns whether set. */
static int keep_callable(lua_State *L, int transfer, int opts, const char *name, int slot) {
  int set;
  lua_getfield(L, opts, name); /* callable */
  set = !lua_isnil(L, -1);
  sora_set_slot(L, transfer, slot);
  return set;
}

/* Returns 0 (with nil, err pushed) when the target cannot be written at all. */
static int prepare_sink(lua_State *L, sora_transfer *t, int transfer, int opts) {
  const char *path;
  t->has_progress = keep_callable(L, transfer, opts, "on_progress", SORA_SLOT_PROGRESS);
  if (keep_callable(L, transfer, opts, "sink", SORA_SLOT_SINK)) t->sink = SORA_SINK_FUNCTION;
  lua_getfield(L, opts, "path");
  path = lua_tostring(L, -1);
  lua_pop(L, 1); /* the options' copy (sora_read_options) still holds the string */
  if (path == NULL) return 1;
  if (t->sink == SORA_SINK_FUNCTION) sora_arg_error(L, t->endpoint, opts, "give 'path' or 'sink', not both");
  lua_getfield(L, opts, "durable");
  t->durable = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (sora_download_open(t, path)) return 1;
  lua_pushnil(L);
  lua_pushfstring(L, "cannot write '%s': %s", path, sora_download_error(t)); /* nil, message */
  sora_push_error(L, "io", 0, lua_tostring(L, -1));                         /* nil, message, err */
  lua_remove(L, -2);
  return 0;
}

/* max_retries, timeout and deadline of this call, over the client's; with_response. */
static void apply_request_options(lua_State *L, sora_transfer *t, int params) {
  lua_getfield(L, params, "max_retries");
  /* clamped before the conversions: out of range (math.huge, 2^40) is UB or wraps */
  if (!lua_isnil(L, -1)) t->max_retries = (int)fmin(fmax(lua_tonumber(L, -1), -1), 1e9);
  lua_getfield(L, params, "timeout"); /* max_retries, timeout */
  if (!lua_isnil(L, -1))
    t->timeout_ms = lua_tonumber(L, -1) > 0 ? (long)(fmin(lua_tonumber(L, -1), 1e9) * 1000) : 0;
  lua_getfield(L, params, "deadline"); /* max_retries, timeout, deadline */
  if (!lua_isnil(L, -1)) {
    double deadline = lua_tonumber(L, -1);
    if (!(deadline > 0)) sora_arg_error(L, t->endpoint, params, "field 'deadline' must be positive");
    t->deadline_at = sora_now() + fmin(deadline, 1e9);
  }
  lua_getfield(L, params, "with_response"); /* ..., with_response */
  t->with_response = lua_toboolean(L, -1);
  lua_pop(L, 4);
  if (t->max_retries < 0) sora_arg_error(L, t->endpoint, params, "field 'max_retries' must not be negative");
  if (t->timeout_ms <= 0) sora_arg_error(L, t->endpoint, params, "field 'timeout' must be positive");
}

/* ---- the one request function ------------------------------------------------------- */

/* The client at index 1 of a call of endpoint e, checked against the client's metatable, the
 * upvalue of _start, _call and _check (a look-up by name in the registry costs 300
 * instructions a call). */
static sora_client *check_self(lua_State *L, const sora_endpoint *e) {
  sora_client *c = lua_touserdata(L, 1);
  int is_client = c != NULL && lua_getmetatable(L, 1);
  if (is_client) {
    is_client = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
  }
  if (!is_client)
    sora_raise(L, "calling '%s' on bad self (sora.Client expected, got %s)", e->name, luaL_typename(L, 1));
  sora_check_usable(L, c, e->name);
  return c;
}

/* Builds and starts a transfer of endpoint e for the call's arguments (self first); pushes
 * it. Returns 0 (with nil, err pushed above it) when it could not start. With `dry_run`, the
 * request is built (every argument checked, files opened, the body encoded) and let go of
 * instead of started: nothing is sent. */
static int start_request(lua_State *L, const sora_endpoint *e, int dry_run) {
  sora_client *c = lua_touserdata(L, 1); /* a client: call_pinned checked it */
  const char *id = NULL;
  size_t id_len = 0;
  int params = 2, transfer, given;
  sora_transfer *t;
  sora_check_usable(L, c, e->name); /* a finalizer may have closed it before it was pinned */
  if (has_id(e)) id = check_id(L, e, params++, &id_len);
  given = !lua_isnoneornil(L, params);
  if (!given ? e->body && e->body->required : !lua_istable(L, params))
    sora_arg_error(L, e, params, "table expected, got %s", luaL_typename(L, params));
  lua_settop(L, params); /* self, [id,] options */
  /* from here on, params is a plain copy that anchors every value until the call returns */
  sora_read_options(L, e, local_options(e), params);
  sora_check_usable(L, c, e->name); /* an __index of the options may have closed the client */
  t = sora_transfer_new(L, c, e, 1);
  transfer = lua_gettop(L);
  if (given) apply_request_options(L, t, params); /* else the client's, from sora_transfer_new */
  sora_url_build(L, t, id, id_len, params);
  sora_encode_body(L, t, transfer, params); /* raises first for a bad file or field */
  if (sora_is_create_type(e)) sora_set_idempotency_key(L, t, params);
  if (image_reference(e) && !sora_reference_fits(L, image_reference(e), params)) {
    sora_transfer_detach(L, t); /* the body freed, never sent: nil, err is the answer */
    return 0;
  }
  if (e->result == SORA_RESULT_CONTENT) {
    t->headers = SORA_HEADERS_BINARY; /* as the official SDKs ask for content */
    if (!prepare_sink(L, t, transfer, params)) return 0;
  }
  if (dry_run) sora_transfer_detach(L, t); /* as its __gc would: the body freed, never sent */
  else sora_transfer_begin(L, transfer);
  return 1;
}

/* (self, endpoint, ...): start_request, called pinned by client_start. */
static int start_pinned(lua_State *L) {
  const sora_endpoint *e = lua_touserdata(L, 2);
  lua_remove(L, 2);
  return start_request(L, e, 0) ? 1 : 2;
}

/* (self, endpoint, ...): start_request, then the transfer waited for and its result, in one
 * pinned call: what start_pinned, transfer:wait() and its pinned result do in three. */
static int call_blocking_pinned(lua_State *L) {
  const sora_endpoint *e = lua_touserdata(L, 2);
  lua_remove(L, 2);
  if (!start_request(L, e, 0)) return 2;
  return sora_transfer_wait_result(L, lua_gettop(L));
}

/* (self, endpoint, ...): start_request as a dry run, called pinned by client_check. */
static int check_pinned(lua_State *L) {
  const sora_endpoint *e = lua_touserdata(L, 2);
  lua_remove(L, 2);
  start_request(L, e, 1);
  return 0;
}

/* (self, name, ...): runs fn(self, endpoint, ...) with the client pinned: a finalizer that an
 * allocation of the request runs cannot close it under the request (the close is done when
 * fn has returned). */
static int call_pinned(lua_State *L, lua_CFunction fn) {
  const sora_endpoint *e = find_endpoint(luaL_checkstring(L, 2));
  if (e == NULL) return luaL_argerror(L, 2, "unknown endpoint");
  check_self(L, e);
  lua_pushlightuserdata(L, (void *)e);
  lua_replace(L, 2); /* self, endpoint, ... */
  if (fn == call_blocking_pinned) return sora_client_blocking_call(L, 1, fn);
  return sora_client_pinned_call(L, 1, fn);
}

/* client:_start(name, ...): starts the request `name` with the arguments of the public method
 * and returns its transfer (or nil, err); the Lua layer waits for it or yields. */
static int client_start(lua_State *L) { return call_pinned(L, start_pinned); }

/* client:_call(name, ...): on the main thread, where no task can run, the call of the public
 * method `name` from start to end: its value, err. Elsewhere false, and nothing is done: the
 * Lua layer starts the request and awaits it, which yields inside a task. */
static int client_call(lua_State *L) {
  if (!lua_pushthread(L)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pop(L, 1);
  return call_pinned(L, call_blocking_pinned);
}

/* client:_check(name, ...): raises what client:_start(name, ...) would raise for these
 * arguments, and sends nothing (a batch checks every job before its first request). */
static int client_check(lua_State *L) { return call_pinned(L, check_pinned); }

/* Adds _start to the client's method table (at the top of the stack) and pushes the list of
 * endpoint names, in the order of the table. */
int sora_open_endpoints(lua_State *L) {
  const sora_endpoint *e;
  int i = 0;
  static const luaL_Reg calls[] = {
      {"_start", client_start}, {"_call", client_call}, {"_check", client_check}, {NULL, NULL}};
  luaL_getmetatable(L, SORA_CLIENT); /* methods, meta: the upvalue check_self compares with */
  sora_setfuncs(L, calls, 1);
  lua_newtable(L);
  for (e = endpoints; e->name; e++) {
    lua_pushstring(L, e->name);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}
