/* The cryptography of webhooks (Standard Webhooks, as OpenAI signs them): HMAC-SHA256, base64
 * and a constant-time comparison, all from OpenSSL's libcrypto (which Debian's libcurl already
 * links). lua/sora/webhooks.lua reads the headers and decides; nothing here knows about HTTP.
 *
 *   core.webhooks.hmac_sha256(key, message)  -> the 32-byte MAC
 *   core.webhooks.base64_encode(bytes)       -> padded base64 text
 *   core.webhooks.base64_decode(text)        -> the bytes, or nil when text is not base64
 *   core.webhooks.equal(a, b)                -> true when a == b, in time independent of
 *                                               where they differ
 *   core.webhooks.random(n)                  -> n bytes from the CSPRNG (message ids) */
#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "sora.h"

#define MAX_RANDOM_BYTES 256

/* libcrypto's base64 and HMAC key lengths are ints: longer strings are refused, not cut */
#define MAX_BYTES (INT_MAX / 4 * 3 - 3)

/* The bytes of argument `arg`, a string; anything else is a programming mistake. */
static const char *check_bytes(lua_State *L, int arg, const char *fname, size_t *len) {
  const char *bytes;
  if (lua_type(L, arg) != LUA_TSTRING)
    sora_bad_argument(L, fname, arg, "string expected, got %s", luaL_typename(L, arg));
  bytes = lua_tolstring(L, arg, len);
  if (*len > (size_t)MAX_BYTES) sora_bad_argument(L, fname, arg, "string too long");
  return bytes;
}

static int webhooks_hmac_sha256(lua_State *L) {
  size_t key_len, message_len;
  const char *key = check_bytes(L, 1, "hmac_sha256", &key_len);
  const char *message = check_bytes(L, 2, "hmac_sha256", &message_len);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  /* an empty key is still a valid pointer: HMAC() treats NULL as "reuse the last key" */
  if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)message, message_len, mac,
           &mac_len) == NULL)
    return luaL_error(L, "sora: HMAC-SHA256 failed in libcrypto");
  lua_pushlstring(L, (const char *)mac, mac_len);
  return 1;
}

static int webhooks_base64_encode(lua_State *L) {
  size_t len;
  const char *bytes = check_bytes(L, 1, "base64_encode", &len);
  /* 4 characters per 3 bytes, padded, and EVP_EncodeBlock's NUL; the scratch space is a
   * userdata, so that an error in between frees it */
  unsigned char *out = (unsigned char *)lua_newuserdata(L, 4 * ((len + 2) / 3) + 1);
  int written = EVP_EncodeBlock(out, (const unsigned char *)bytes, (int)len);
  lua_pushlstring(L, (const char *)out, (size_t)written);
  return 1;
}

static int is_base64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

/* How many '=' text lacks to be whole groups of four (0..2), or -1 when text is not base64
 * in the standard alphabet. EVP_DecodeBlock itself skips blanks at the ends and takes whole
 * groups only; a signature check accepts exactly the alphabet, padded or not (secrets are
 * sometimes written without their padding). */
static int missing_padding(const char *text, size_t len) {
  size_t data_len = len, i;
  while (data_len > 0 && text[data_len - 1] == '=') data_len--;
  if (len - data_len > 2 || data_len % 4 == 1) return -1; /* one character is never a byte */
  for (i = 0; i < data_len; i++)
    if (!is_base64_char((unsigned char)text[i])) return -1;
  if (len == data_len) return (int)((4 - data_len % 4) % 4);
  return len % 4 == 0 ? 0 : -1; /* padded, so padded to a whole group */
}

static int webhooks_base64_decode(lua_State *L) {
  size_t len, padded_len, padding;
  const char *text = check_bytes(L, 1, "base64_decode", &len);
  int missing = missing_padding(text, len), decoded;
  unsigned char *padded, *out;
  if (missing < 0) return 0;
  padded_len = len + (size_t)missing;
  padded = (unsigned char *)lua_newuserdata(L, padded_len + 1);
  memcpy(padded, text, len);
  memset(padded + len, '=', (size_t)missing);
  out = (unsigned char *)lua_newuserdata(L, 3 * (padded_len / 4) + 1);
  decoded = EVP_DecodeBlock(out, padded, (int)padded_len);
  if (decoded < 0) return 0;
  /* EVP_DecodeBlock counts each '=' as a zero byte: they are not part of the data */
  padding = 0;
  while (padding < padded_len && padded[padded_len - 1 - padding] == '=') padding++;
  lua_pushlstring(L, (const char *)out, (size_t)decoded - padding);
  return 1;
}

static int webhooks_equal(lua_State *L) {
  size_t a_len, b_len;
  const char *a = check_bytes(L, 1, "equal", &a_len);
  const char *b = check_bytes(L, 2, "equal", &b_len);
  /* the lengths are public (a MAC's length is fixed); only the contents are compared in
   * constant time */
  lua_pushboolean(L, a_len == b_len && CRYPTO_memcmp(a, b, a_len) == 0);
  return 1;
}

static int webhooks_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  unsigned char bytes[MAX_RANDOM_BYTES];
  if (n < 1 || n > MAX_RANDOM_BYTES)
    sora_bad_argument(L, "random", 1, "a count in 1..%d expected", MAX_RANDOM_BYTES);
  if (RAND_bytes(bytes, (int)n) != 1) return luaL_error(L, "sora: libcrypto's RAND_bytes failed");
  lua_pushlstring(L, (const char *)bytes, (size_t)n);
  return 1;
}

/* Pushes the table of the functions above. */
int sora_open_webhooks(lua_State *L) {
  static const luaL_Reg functions[] = {
      {"hmac_sha256", webhooks_hmac_sha256}, {"base64_encode", webhooks_base64_encode},
      {"base64_decode", webhooks_base64_decode}, {"equal", webhooks_equal},
      {"random", webhooks_random}, {NULL, NULL}};
  lua_newtable(L);
  sora_setfuncs(L, functions, 0);
  return 1;
}
