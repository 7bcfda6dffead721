/* sanlua: a minimal Lua 5.4 interpreter ("sanlua script [args]") built with the sanitizers,
 * for `make test-asan`.
 *
 * Debian's lua5.4 is not instrumented, so the alternative is LD_PRELOADing the ASan runtime
 * into it; but the preload is inherited by every child the specs start (sh, mktemp, the
 * emulator), each of which then runs LeakSanitizer at exit. This host links the runtime
 * itself, so only this process is sanitized, and the environment stays clean.
 *
 * The state is closed before exit (every __gc runs), so what the module forgot to free is
 * unreachable and reported by LeakSanitizer, and what it did free is not. lua_close
 * dlcloses the module, yet its frames are still symbolized in the leak report with
 * fast_unwind_on_malloc=0 (checked with a planted leak); pinning the module with
 * RTLD_NODELETE made it worse ("<unknown module>"), so nothing is pinned. */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L;
  int i, status;
  if (argc < 2) {
    fprintf(stderr, "usage: %s script [args]\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) return 1;
  luaL_openlibs(L);
  lua_createtable(L, argc, 1); /* arg[0] is the script, as lua.c does */
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  status = luaL_loadfile(L, argv[1]);
  if (status == LUA_OK) {
    luaL_checkstack(L, argc, "too many arguments");
    for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, 0, 1);
  }
  if (status != LUA_OK) fprintf(stderr, "sanlua: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
