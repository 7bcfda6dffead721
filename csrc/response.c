/* The raw response beside a value (the per-call option with_response) and on error objects:
 * status, headers, request id, elapsed time. Built only when asked for, or for an error:
 * the default path of a request copies no header it does not act on.
 *
 * Headers are a table of lower-case names; a repeated header's values are joined with ", "
 * in the order they came (RFC 9110, 5.3). Every name and value is redacted as every other
 * text from the server is: a server that echoes the key never puts it in a table. */
#include <ctype.h>
#include <string.h>

#include "sora.h"

#define SORA_HEADERS "sora.Headers"

static void push_lower(lua_State *L, const char *s, size_t len) {
  luaL_Buffer b;
  size_t i;
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) luaL_addchar(&b, (char)tolower((unsigned char)s[i]));
  luaL_pushresult(&b);
}

/* headers[name] for a name in any case: the table holds lower-case names only, so a miss
 * is looked up again in lower case (resp.headers["X-Request-Id"] works as HTTP reads it). */
static int headers_index(lua_State *L) {
  size_t len, i;
  const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
  if (name == NULL) return 0;
  for (i = 0; i < len && !isupper((unsigned char)name[i]); i++) {}
  if (i == len) return 0; /* already lower case: a real miss */
  push_lower(L, name, len);
  lua_rawget(L, 1);
  return 1;
}

/* The metatable of header tables, made the first time one is pushed. */
static void set_headers_meta(lua_State *L) {
  if (luaL_newmetatable(L, SORA_HEADERS)) {
    lua_pushcfunction(L, headers_index);
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
}

/* One header into the table at the top (sora_header_fn): a repeated name is joined. */
static void add_header(lua_State *L, const char *name, size_t name_len, const char *value,
                       size_t value_len, void *ud) {
  const char *key = ud;
  size_t len;
  /* libcurl 7.88 gives an empty value as "\r": trimmed here, whichever path read it */
  while (value_len > 0 && isspace((unsigned char)value[value_len - 1])) value_len--;
  while (value_len > 0 && isspace((unsigned char)value[0])) value++, value_len--;
  name = sora_push_redacted(L, name, name_len, key); /* headers, redacted name */
  len = sora_rawlen(L, -1);
  push_lower(L, name, len);
  lua_remove(L, -2);                            /* headers, name */
  sora_push_redacted(L, value, value_len, key); /* headers, name, value */
  lua_pushvalue(L, -2);
  lua_rawget(L, -4);                            /* headers, name, value, earlier */
  if (lua_isstring(L, -1)) {
    lua_pushliteral(L, ", ");
    lua_pushvalue(L, -3);                       /* ..., earlier, ", ", value */
    lua_concat(L, 3);
    lua_remove(L, -2);                          /* headers, name, joined */
  } else {
    lua_pop(L, 1);
  }
  lua_rawset(L, -3);
}

static void push_headers(lua_State *L, sora_transfer *t) {
  luaL_checkstack(L, 8, "sora: no room on the stack for the headers");
  lua_newtable(L);
  sora_transfer_each_header(L, t, add_header, t->client ? t->client->api_key : NULL);
  set_headers_meta(L);
}

/* Seconds from the first attempt's start to the end of the last: retries, the waits between
 * them and redirects included. */
static double elapsed(const sora_transfer *t) {
  double end = t->finished_at > 0 ? t->finished_at : sora_now();
  return t->called_at > 0 && end > t->called_at ? end - t->called_at : 0;
}

/* { status, headers, request_id, elapsed, attempts } of a call that succeeded. */
void sora_push_response(lua_State *L, sora_transfer *t) {
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, t->status);
  lua_setfield(L, -2, "status");
  push_headers(L, t);
  lua_setfield(L, -2, "headers");
  if (t->request_id[0]) { /* redacted when it was read */
    lua_pushstring(L, t->request_id);
    lua_setfield(L, -2, "request_id");
  }
  lua_pushnumber(L, elapsed(t));
  lua_setfield(L, -2, "elapsed");
  lua_pushinteger(L, t->attempts);
  lua_setfield(L, -2, "attempts");
}

/* An error has its status, request id and attempts already; it gets the elapsed time and,
 * when an HTTP response ended the call, that response's headers. */
void sora_add_response_fields(lua_State *L, sora_transfer *t, int err_idx) {
  err_idx = sora_absindex(L, err_idx);
  lua_pushnumber(L, elapsed(t));
  lua_setfield(L, err_idx, "elapsed");
  if (t->status > 0 && !t->cancelled) {
    push_headers(L, t);
    lua_setfield(L, err_idx, "headers");
  }
}
