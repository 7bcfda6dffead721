/* luaopen_sora_core: the C core of sora. It owns everything that touches bytes, sockets and
 * memory; the Lua module `sora` adds waiting, polling and conveniences on top. */
#include <time.h>

#include "headers.h"
#include "retry.h"
#include "sora.h"

static int core_now(lua_State *L) {
  lua_pushnumber(L, sora_now());
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

SORA_EXPORT int luaopen_sora_core(lua_State *L) {
  curl_version_info_data *curl;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return luaL_error(L, "sora: libcurl failed to initialise");
  curl = curl_version_info(CURLVERSION_NOW);
  sora_open_json(L);
  sora_open_transfer(L);
  lua_newtable(L); /* the module */
  sora_open_error(L);
  lua_setfield(L, -3, "is_error");
  lua_setfield(L, -2, "error");
  sora_open_video(L);
  sora_open_client(L); /* methods, new */
  lua_setfield(L, -4, "new");
  sora_open_endpoints(L);
  lua_setfield(L, -4, "endpoints");
  lua_setfield(L, -3, "Client");
  lua_setfield(L, -2, "Video");
  lua_pushcfunction(L, core_retry_delay);
  lua_setfield(L, -2, "_retry_delay");
  lua_pushcfunction(L, core_now);
  lua_setfield(L, -2, "now");
  lua_pushliteral(L, SORA_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushstring(L, curl->version);
  lua_setfield(L, -2, "curl_version");
  return 1;
}
