/* Error objects: tables with the sora.Error metatable, so they print as one line and can be
 * raised by iterators (as io.lines raises) and still be inspected by a pcall. */
#include <string.h>

#include "sora.h"

/* ---- the client's key, wherever a server echoes it ----------------------------------- */

static int redacts(const char *key) { return key && strlen(key) >= SORA_MIN_REDACTED_KEY; }

int sora_has_key(const char *s, size_t len, const char *key) {
  size_t key_len;
  const char *p, *end = s + len;
  if (!redacts(key)) return 0;
  key_len = strlen(key);
  if (len < key_len) return 0;
  /* memchr looks for the second byte: keys begin "sk-", and an 's' is everywhere in JSON, a
   * 'k' seldom (a page of 100 videos: 1,204 's', no 'k'; 44,000 instructions -> 4,600) */
  for (p = s + 1; (size_t)(end - p) >= key_len - 1; p++) {
    p = memchr(p, key[1], (size_t)(end - p) - (key_len - 1) + 1);
    if (p == NULL) return 0;
    if (p[-1] == key[0] && memcmp(p - 1, key, key_len) == 0) return 1;
  }
  return 0;
}

/* Copies value into dest (cut to size - 1 bytes, NUL-terminated) with every occurrence of the
 * key replaced first, so that the cut never leaves a piece of the key. No Lua, no allocation:
 * callable from inside a libcurl callback. */
void sora_copy_redacted(char *dest, size_t size, const char *value, size_t len, const char *key) {
  size_t out = 0, key_len = redacts(key) ? strlen(key) : 0;
  const char *end = value + len;
  if (!sora_has_key(value, len, key)) { /* the usual text: one memchr, then a plain copy */
    if (len > size - 1) len = size - 1;
    memcpy(dest, value, len);
    dest[len] = '\0';
    return;
  }
  while (value < end && out + 1 < size) {
    if (key_len && (size_t)(end - value) >= key_len && memcmp(value, key, key_len) == 0) {
      size_t n = strlen(SORA_REDACTED);
      if (n > size - 1 - out) n = size - 1 - out;
      memcpy(dest + out, SORA_REDACTED, n);
      out += n;
      value += key_len;
    } else {
      dest[out++] = *value++;
    }
  }
  dest[out] = '\0';
}

/* Pushes s with every occurrence of the key replaced; returns the pushed string. */
const char *sora_push_redacted(lua_State *L, const char *s, size_t len, const char *key) {
  luaL_Buffer b;
  size_t key_len;
  const char *end = s + len;
  if (!sora_has_key(s, len, key)) {
    lua_pushlstring(L, s, len);
    return lua_tostring(L, -1);
  }
  key_len = strlen(key);
  luaL_buffinit(L, &b);
  while (s < end) {
    if ((size_t)(end - s) >= key_len && memcmp(s, key, key_len) == 0) {
      luaL_addstring(&b, SORA_REDACTED);
      s += key_len;
    } else {
      luaL_addchar(&b, *s++);
    }
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* ---- libcurl's codes, by name ------------------------------------------------------------ */

/* CURLcode values are part of libcurl's ABI: the name of code n is names[n]. */
static const char *const curl_code_names[] = {
    "OK", "UNSUPPORTED_PROTOCOL", "FAILED_INIT", "URL_MALFORMAT", "NOT_BUILT_IN",
    "COULDNT_RESOLVE_PROXY", "COULDNT_RESOLVE_HOST", "COULDNT_CONNECT", "WEIRD_SERVER_REPLY",
    "REMOTE_ACCESS_DENIED", "FTP_ACCEPT_FAILED", "FTP_WEIRD_PASS_REPLY", "FTP_ACCEPT_TIMEOUT",
    "FTP_WEIRD_PASV_REPLY", "FTP_WEIRD_227_FORMAT", "FTP_CANT_GET_HOST", "HTTP2",
    "FTP_COULDNT_SET_TYPE", "PARTIAL_FILE", "FTP_COULDNT_RETR_FILE", "OBSOLETE20", "QUOTE_ERROR",
    "HTTP_RETURNED_ERROR", "WRITE_ERROR", "OBSOLETE24", "UPLOAD_FAILED", "READ_ERROR",
    "OUT_OF_MEMORY", "OPERATION_TIMEDOUT", "OBSOLETE29", "FTP_PORT_FAILED", "FTP_COULDNT_USE_REST",
    "OBSOLETE32", "RANGE_ERROR", "HTTP_POST_ERROR", "SSL_CONNECT_ERROR", "BAD_DOWNLOAD_RESUME",
    "FILE_COULDNT_READ_FILE", "LDAP_CANNOT_BIND", "LDAP_SEARCH_FAILED", "OBSOLETE40",
    "FUNCTION_NOT_FOUND", "ABORTED_BY_CALLBACK", "BAD_FUNCTION_ARGUMENT", "OBSOLETE44",
    "INTERFACE_FAILED", "OBSOLETE46", "TOO_MANY_REDIRECTS", "UNKNOWN_OPTION",
    "SETOPT_OPTION_SYNTAX", "OBSOLETE50", "OBSOLETE51", "GOT_NOTHING", "SSL_ENGINE_NOTFOUND",
    "SSL_ENGINE_SETFAILED", "SEND_ERROR", "RECV_ERROR", "OBSOLETE57", "SSL_CERTPROBLEM",
    "SSL_CIPHER", "PEER_FAILED_VERIFICATION", "BAD_CONTENT_ENCODING", "OBSOLETE62",
    "FILESIZE_EXCEEDED", "USE_SSL_FAILED", "SEND_FAIL_REWIND", "SSL_ENGINE_INITFAILED",
    "LOGIN_DENIED", "TFTP_NOTFOUND", "TFTP_PERM", "REMOTE_DISK_FULL", "TFTP_ILLEGAL",
    "TFTP_UNKNOWNID", "REMOTE_FILE_EXISTS", "TFTP_NOSUCHUSER", "OBSOLETE75", "OBSOLETE76",
    "SSL_CACERT_BADFILE", "REMOTE_FILE_NOT_FOUND", "SSH", "SSL_SHUTDOWN_FAILED", "AGAIN",
    "SSL_CRL_BADFILE", "SSL_ISSUER_ERROR", "FTP_PRET_FAILED", "RTSP_CSEQ_ERROR",
    "RTSP_SESSION_ERROR", "FTP_BAD_FILE_LIST", "CHUNK_FAILED", "NO_CONNECTION_AVAILABLE",
    "SSL_PINNEDPUBKEYNOTMATCH", "SSL_INVALIDCERTSTATUS", "HTTP2_STREAM", "RECURSIVE_API_CALL",
    "AUTH_ERROR", "HTTP3", "QUIC_CONNECT_ERROR", "PROXY", "SSL_CLIENTCERT", "UNRECOVERABLE_POLL"};

void sora_push_curl_code(lua_State *L, CURLcode code) {
  size_t n = sizeof curl_code_names / sizeof curl_code_names[0];
  if ((size_t)code < n) lua_pushstring(L, curl_code_names[code]);
  else lua_pushfstring(L, "CURLE_%d", (int)code); /* a code newer than this table */
}

/* ---- error objects ------------------------------------------------------------------- */

const char *sora_error_kind(long status) {
  switch (status) {
    case 400: return "bad_request";
    case 401: return "authentication";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 409: return "conflict";
    case 422: return "unprocessable_entity";
    case 429: return "rate_limit";
    default: return status >= 500 ? "internal_server" : "api_status";
  }
}

void sora_push_error(lua_State *L, const char *kind, long status, const char *message) {
  lua_createtable(L, 0, 8);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  if (status > 0) {
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
  }
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  luaL_getmetatable(L, SORA_ERROR);
  lua_setmetatable(L, -2);
}

/* Replaces the string on top by a copy whose line breaks are spaces: a server's message may
 * hold them, and tostring(err) is one line (a log line of the host's, never two). */
static void one_line(lua_State *L) {
  size_t len, i;
  const char *s = lua_tolstring(L, -1, &len);
  luaL_Buffer b;
  if (strpbrk(s, "\r\n") == NULL && strlen(s) == len) return;
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) luaL_addchar(&b, s[i] == '\r' || s[i] == '\n' ? ' ' : s[i]);
  luaL_pushresult(&b);
  lua_remove(L, -2);
}

/* "sora: not_found (404): No video found [code=video_not_found request_id=req_1]" */
static int error_tostring(lua_State *L) {
  static const char *const details[] = {"code", "param", "request_id", "attempts", NULL};
  int i, pieces = 1, bracket = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "kind");
  lua_pushfstring(L, "sora: %s", lua_isstring(L, 2) ? lua_tostring(L, 2) : "error");
  lua_replace(L, 2);
  lua_getfield(L, 1, "status");
  if (lua_isnumber(L, -1)) {
    lua_pushfstring(L, " (%d)", (int)lua_tointeger(L, -1));
    lua_remove(L, -2);
    pieces++;
  } else {
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "message");
  if (lua_isstring(L, -1)) {
    lua_pushliteral(L, ": ");
    lua_insert(L, -2);
    pieces += 2;
  } else {
    lua_pop(L, 1);
  }
  for (i = 0; details[i]; i++) {
    lua_getfield(L, 1, details[i]);
    if (lua_isstring(L, -1)) {
      lua_pushfstring(L, "%s%s=%s", bracket ? " " : " [", details[i], lua_tostring(L, -1));
      lua_remove(L, -2);
      pieces++;
      bracket = 1;
    } else {
      lua_pop(L, 1);
    }
  }
  if (bracket) lua_pushliteral(L, "]"), pieces++;
  lua_concat(L, pieces);
  one_line(L);
  return 1;
}

/* core.error{kind = ..., message = ..., ...}: an error object made by the Lua layer. */
static int error_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "kind");
  luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "field 'kind' must be a string");
  lua_pop(L, 1);
  lua_settop(L, 1);
  luaL_getmetatable(L, SORA_ERROR);
  lua_setmetatable(L, 1);
  return 1;
}

static int error_is(lua_State *L) {
  int is = 0;
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, SORA_ERROR);
    is = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, is);
  return 1;
}

/* Pushes the constructor and the predicate. */
int sora_open_error(lua_State *L) {
  luaL_newmetatable(L, SORA_ERROR);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, SORA_ERROR);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_pushcfunction(L, error_new);
  lua_pushcfunction(L, error_is);
  return 2;
}
