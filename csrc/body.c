/* Request bodies: the checked options (args.c) sent as a JSON body or, when a file is among
 * them, as a multipart body (file parts: multipart.c). */
#include <string.h>

#include "sora.h"

static int wants_multipart(lua_State *L, const sora_endpoint *e, int params) {
  const sora_field *f;
  int file = 0;
  for (f = e->body; f->name && !file; f++) {
    lua_getfield(L, params, f->name); /* value */
    file = sora_is_file_value(L, -1, f->kind);
    lua_pop(L, 1);
  }
  return file;
}

/* Pushes the text a scalar field is sent as: seconds always as a string ("8", never 8). */
void sora_push_text(lua_State *L, int value) {
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
  lua_newtable(L); /* object */
  for (f = t->endpoint->body; f->name; f++) {
    lua_getfield(L, params, f->name); /* object, value */
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) == LUA_TTABLE || f->kind == SORA_FIELD_VIDEO_REF) push_reference(L, f, lua_gettop(L));
      else sora_push_text(L, lua_gettop(L));
      lua_setfield(L, -3, f->name); /* object, value */
    }
    lua_pop(L, 1);
  }
  sora_json_encode(L, -1); /* object, text */
  t->body = lua_tolstring(L, -1, &len);
  t->body_len = len;
  /* the transfer keeps the string alive while curl points into it */
  sora_set_slot(L, transfer, SORA_SLOT_BODY); /* object */
  lua_pop(L, 1);
  /* as for multipart, no "Expect: 100-continue": curl would wait a second before a body
   * over 1 MB for an answer servers do not send (the JSON header list has "Expect:") */
  t->headers = SORA_HEADERS_JSON;
}

/* ---- multipart bodies ---------------------------------------------------------------- */

static void add_text_part(lua_State *L, sora_transfer *t, const char *name, int value) {
  curl_mimepart *part = curl_mime_addpart(t->mime);
  size_t len;
  const char *text;
  sora_push_text(L, value);
  text = lua_tolstring(L, -1, &len);
  if (part == NULL || curl_mime_name(part, name) != CURLE_OK ||
      curl_mime_data(part, text, len) != CURLE_OK)
    sora_raise(L, "sora: out of memory");
  lua_pop(L, 1);
}

/* An object reference in multipart is flattened with brackets: input_reference[image_url]. */
static void add_reference_parts(lua_State *L, sora_transfer *t, const sora_field *f, int value) {
  int ref;
  push_reference(L, f, value);
  ref = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, ref)) { /* ref, key, value */
    lua_pushfstring(L, "%s[%s]", f->name, lua_tostring(L, -2)); /* ref, key, value, name */
    add_text_part(L, t, lua_tostring(L, -1), lua_gettop(L) - 1);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

static void encode_multipart(lua_State *L, sora_transfer *t, int params) {
  const sora_field *f;
  t->mime = curl_mime_init(t->handle->easy);
  if (t->mime == NULL) sora_raise(L, "sora: out of memory");
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
