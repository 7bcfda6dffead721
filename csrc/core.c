/* luaopen_sora_core: the C core of sora. It owns everything that touches bytes, sockets and
 * memory; the Lua module `sora` adds waiting, polling and conveniences on top. */
#include <time.h>

#include "headers.h"
#include "retry.h"
#include "sora.h"

/* The oldest libcurl sora works with: curl_multi_poll came in 7.66.0 (the URL API in 7.62,
 * CURLOPT_PROTOCOLS_STR only in 7.85: client.c falls back to the older options). */
#define SORA_CURL_MINIMUM 0x074200
#define SORA_CURL_MINIMUM_TEXT "7.66.0"
#if LIBCURL_VERSION_NUM < SORA_CURL_MINIMUM
#error "sora needs libcurl 7.66.0 or newer"
#endif

static int core_now(lua_State *L) {
  lua_pushnumber(L, sora_now());
  return 1;
}

/* core._check_output(path): true when a download could write path (the target absent or a
 * regular file, its directory writable), else nil and why not. */
static int core_check_output(lua_State *L) {
  const char *why = sora_download_check(luaL_checkstring(L, 1));
  if (why == NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* core._redact(text, secret): text with every occurrence of secret (8 bytes or more) replaced
 * by "[redacted key]", the one redaction every output uses (the command's, for the key it was
 * given before any client exists). */
static int core_redact(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  sora_push_redacted(L, text, len, luaL_optstring(L, 2, NULL));
  return 1;
}

/* core._retry_delay(header, retries_taken [, jitter]): the delay before the next attempt for a
 * retry-after header value (nil when absent), or nil when the request must not be retried.
 * Exposed for the specs that check the official SDKs' test vectors. */
static int core_retry_delay(lua_State *L) {
  size_t len = 0;
  const char *header = luaL_optlstring(L, 1, NULL, &len);
  int retries = (int)luaL_checkinteger(L, 2);
  double jitter = luaL_optnumber(L, 3, 0), delay;
  delay = sora_retry_delay(header ? sora_parse_retry_after(header, len, time(NULL)) : -1, retries, jitter);
  if (delay < 0) return 0;
  lua_pushnumber(L, delay);
  return 1;
}

/* libcurl's global initialisation (its TLS library's: 0.7 ms) waits for the first client of
 * this Lua state: a program that only verifies webhooks, or a plugin loaded at start-up,
 * never pays it. `done` is an upvalue of client.new, false until then. */
void sora_init_curl(lua_State *L, int done) {
  if (lua_toboolean(L, done)) return;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) luaL_error(L, "sora: libcurl failed to initialise");
  lua_pushboolean(L, 1);
  lua_replace(L, done);
}

SORA_EXPORT int luaopen_sora_core(lua_State *L) {
  curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW); /* needs no initialisation */
  if (curl->version_num < SORA_CURL_MINIMUM) /* built against newer headers than it runs with */
    return luaL_error(L, "sora needs libcurl %s or newer, this is %s", SORA_CURL_MINIMUM_TEXT,
                      curl->version);
  sora_open_json(L);
  sora_open_marshal(L);
  sora_open_transfer(L);
  lua_newtable(L);                 /* M */
  sora_open_error(L);              /* M, error, is_error */
  lua_setfield(L, -3, "is_error"); /* M, error */
  lua_setfield(L, -2, "error");    /* M */
  sora_open_video(L);              /* M, Video */
  sora_open_client(L);             /* M, Video, Client, new */
  lua_setfield(L, -4, "new");      /* M, Video, Client */
  sora_open_endpoints(L);          /* M, Video, Client, endpoints */
  lua_setfield(L, -4, "endpoints");
  lua_setfield(L, -3, "Client");   /* M, Video */
  lua_setfield(L, -2, "Video");    /* M */
  sora_open_webhooks(L);           /* M, webhooks */
  lua_setfield(L, -2, "webhooks");
  lua_pushcfunction(L, core_retry_delay);
  lua_setfield(L, -2, "_retry_delay");
  lua_pushcfunction(L, core_check_output);
  lua_setfield(L, -2, "_check_output");
  lua_pushcfunction(L, core_redact);
  lua_setfield(L, -2, "_redact");
  lua_pushcfunction(L, sora_set_lua_dir);
  lua_setfield(L, -2, "_lua_dir");
  lua_pushcfunction(L, sora_raise_message);
  lua_setfield(L, -2, "_raise");
  sora_open_journal(L);
  lua_pushcfunction(L, sora_push_random_key);
  lua_setfield(L, -2, "_random_key");
  lua_pushcfunction(L, core_now);
  lua_setfield(L, -2, "now");
  lua_pushliteral(L, SORA_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushstring(L, curl->version);
  lua_setfield(L, -2, "curl_version");
  return 1;
}
