/* libFuzzer harness for marshalling a response body into sora's values: the input is decoded
 * with the module's private cjson instance (sora_json_try_decode), then converted by
 * sora_marshal as each kind of result (video, list page, deleted, character) with a fake
 * client value, and the values are read the way a program reads them (fields, tostring,
 * to_table, pairs, the page's videos; each of them first somewhere, as a Video's field is
 * shaped by the read that comes first). Links the module's objects, not the .so.
 * Build and run: make fuzz. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lualib.h>

#include "../csrc/sora.h"

/* Reads a marshalled value as a program would; kind is "video", "page" or "record". */
static const char READER[] =
    "local value, kind, order = ...\n"
    "local function read_video(v, first)\n"
    "  if first == 1 then tostring(v)\n" /* a field is shaped by the read that comes first */
    "  elseif first == 2 then v:to_table()\n"
    "  elseif first == 3 then for k, x in pairs(v) do local _ = k, x end end\n"
    "  local _ = v.id, v.status, v.progress, v.model, v.seconds, v.size, v.error,\n"
    "    v.created_at, v.completed_at, v.expires_at, v.remixed_from_video_id, v.unknown\n"
    "  tostring(v)\n"
    "  local t = v:to_table()\n"
    "  for k, x in pairs(v) do local _ = k, x end\n"
    "  for k in pairs(t) do local _ = v[k] end\n"
    "  local _ = v == v, v:_poll_after(), v:_client()\n"
    "  if type(v.error) == 'table' then for k, x in pairs(v.error) do local _ = k, x end end\n"
    "end\n"
    "if kind == 'video' then read_video(value, order)\n"
    "elseif kind == 'page' then\n"
    "  for i, v in ipairs(value.data) do read_video(v, (order + i) % 4) end\n"
    "  local _ = value.has_more, value.first_id, value.last_id\n"
    "else for k, x in pairs(value) do local _ = k, x end end\n";

static lua_State *L;
static int reader_ref;

static void setup(void) {
  L = luaL_newstate();
  if (L == NULL) abort();
  luaL_openlibs(L);
  lua_pushcfunction(L, luaopen_sora_core); /* json, metatables, as `require` would */
  lua_pushliteral(L, "sora.core");
  if (lua_pcall(L, 1, 1, 0) != 0) {
    fprintf(stderr, "luaopen_sora_core: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, READER, sizeof READER - 1, "=reader") != 0) abort();
  reader_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void run(const uint8_t *data, size_t size, sora_result kind, const char *reader_kind) {
  int top = lua_gettop(L), value, client;
  lua_newtable(L); /* the fake client */
  client = lua_gettop(L);
  if (!sora_json_try_decode(L, (const char *)data, size)) {
    if (lua_type(L, -1) != LUA_TSTRING) abort(); /* the message */
    lua_settop(L, top);
    return;
  }
  value = lua_gettop(L);
  if (sora_marshal(L, kind, value, client, (long)(size % 5000) - 1)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, reader_ref);
    lua_pushvalue(L, -2);
    lua_pushstring(L, reader_kind);
    lua_pushinteger(L, (lua_Integer)(size % 4)); /* which read comes first */
    if (lua_pcall(L, 3, 0, 0) != 0) {
      /* reading a value sora returned must never raise */
      fprintf(stderr, "reading a %s raised: %s\n", reader_kind, lua_tostring(L, -1));
      abort();
    }
  } else if (lua_type(L, -1) != LUA_TSTRING) {
    abort(); /* a refusal is a message */
  }
  lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned long runs;
  if (L == NULL) setup();
  run(data, size, SORA_RESULT_VIDEO, "video");
  run(data, size, SORA_RESULT_PAGE, "page");
  run(data, size, SORA_RESULT_DELETED, "record");
  run(data, size, SORA_RESULT_CHARACTER, "record");
  if (lua_gettop(L) != 0) abort();
  if (++runs % 256 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
