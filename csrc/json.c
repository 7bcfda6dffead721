/* JSON through lua-cjson. sora uses a private instance (cjson.new()), so nothing a program
 * configures on its own cjson changes what sora sends or reads. Its functions are kept in
 * the registry under these keys. */
#include "sora.h"

#define JSON_DECODE "sora.json.decode"
#define JSON_ENCODE "sora.json.encode"

/* A body that is not JSON is the server's fault and gives 0; running out of memory is not
 * about the body, and is raised as it is (lua-cjson's json_protect_conversion does the same). */
int sora_json_try_decode(lua_State *L, const char *s, size_t n) {
  int status;
  lua_getfield(L, LUA_REGISTRYINDEX, JSON_DECODE);
  lua_pushlstring(L, s, n);
  status = lua_pcall(L, 1, 1, 0);
  if (status == LUA_ERRMEM) lua_error(L);
  return status == 0;
}

void sora_json_encode(lua_State *L, int i) {
  i = sora_absindex(L, i);
  lua_getfield(L, LUA_REGISTRYINDEX, JSON_ENCODE);
  lua_pushvalue(L, i);
  lua_call(L, 1, 1);
}

int sora_open_json(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1); /* the private instance */
  lua_getfield(L, -1, "decode");
  lua_setfield(L, LUA_REGISTRYINDEX, JSON_DECODE);
  lua_getfield(L, -1, "encode");
  lua_setfield(L, LUA_REGISTRYINDEX, JSON_ENCODE);
  lua_pop(L, 2);
  return 0;
}
