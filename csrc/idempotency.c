/* Idempotency keys of create-type requests (every POST: create, remix, edit, extend,
 * create_character). Each call carries one key, the same on every attempt, as the IETF httpapi
 * draft's Idempotency-Key header: a server that honours it answers a repeated request with
 * the first answer and makes nothing again; a server that ignores it (OpenAI's API) is no
 * worse off. lua/sora/reconcile.lua draws the key and decides whether to send again. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sora.h"

#define KEY_BYTES 16                /* 128 bits from the kernel */
#define KEY_TEXT (2 * KEY_BYTES + 1) /* as hex digits, NUL-ended */
#define MAX_KEY_LEN 255              /* as gateways bound it */
#define HEADER_NAME "Idempotency-Key"

int sora_is_create_type(const sora_endpoint *e) { return strcmp(e->method, "POST") == 0; }

/* 32 lower-case hex digits of fresh kernel randomness into out; 0 when the kernel gives none.
 * No generator in between: a key must never repeat across processes or forks. */
static int random_key(char out[KEY_TEXT]) {
  unsigned char bytes[KEY_BYTES];
  if (!sora_system_random(bytes, sizeof bytes)) return 0;
  sora_hex_encode(bytes, sizeof bytes, out);
  out[KEY_TEXT - 1] = '\0';
  return 1;
}

/* core._random_key(): a fresh key (reconcile.new_key). */
int sora_push_random_key(lua_State *L) {
  char key[KEY_TEXT];
  if (!random_key(key)) return luaL_error(L, "sora: the system gave no random bytes for an idempotency key");
  lua_pushstring(L, key);
  return 1;
}

/* A key is sent as the draft's sf-string, "KEY": printable ASCII without '"' or '\', which
 * would need escaping, and short enough for any gateway. */
static const char *key_problem(const char *key, size_t len) {
  size_t i;
  if (len == 0) return "is empty";
  if (len > MAX_KEY_LEN) return "is longer than 255 characters";
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)key[i];
    if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
      return "must be printable ASCII without '\"' or '\\'";
  }
  return NULL;
}

/* The client's header list of this request's kind with the key added, unless the client's own
 * headers already name one (a request carries one Idempotency-Key at most). */
static int build_list(sora_transfer *t, const char *line) {
  const struct curl_slist *from = t->client->headers[t->headers];
  struct curl_slist *list = NULL, *grown;
  int has_key = 0;
  for (; from != NULL; from = from->next) {
    if (strncasecmp(from->data, HEADER_NAME ":", sizeof HEADER_NAME) == 0) has_key = 1;
    if ((grown = curl_slist_append(list, from->data)) == NULL) goto fail;
    list = grown;
  }
  if (!has_key) {
    if ((grown = curl_slist_append(list, line)) == NULL) goto fail;
    list = grown;
  }
  t->request_headers = list;
  return 1;
fail:
  curl_slist_free_all(list);
  return 0;
}

/* Gives transfer t its key: the call's option idempotency_key (in the checked copy at params),
 * else a fresh one. Called once the body is encoded (its kind picks the client's list). */
void sora_set_idempotency_key(lua_State *L, sora_transfer *t, int params) {
  char fresh[KEY_TEXT];
  const char *key, *problem;
  size_t len;
  lua_getfield(L, params, "idempotency_key");
  key = lua_tolstring(L, -1, &len);
  if (key == NULL) {
    if (!random_key(fresh)) luaL_error(L, "sora: the system gave no random bytes for an idempotency key");
    key = fresh;
    len = strlen(fresh);
  } else if ((problem = key_problem(key, len)) != NULL) {
    sora_arg_error(L, t->endpoint, params, "field 'idempotency_key' %s", problem);
  }
  memcpy(t->idempotency_key, key, len + 1); /* len <= MAX_KEY_LEN: it fits */
  lua_pushfstring(L, HEADER_NAME ": \"%s\"", key);
  if (!build_list(t, lua_tostring(L, -1))) luaL_error(L, "sora: out of memory");
  lua_pop(L, 2);
}
