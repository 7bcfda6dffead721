/* URLs: the base URL taken apart once by libcurl's URL API, and each request's URL built from
 * it: prefix, the endpoint's path with the escaped id, the endpoint's query, then the base
 * URL's own query. Userinfo never enters a URL string (it would be printed in log lines). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sora.h"

/* Percent-encodes all but letters, digits, '-', '_' and '~': an id can never reach another
 * path ('/', '?', '#', '.' are all encoded). */
void sora_url_append_escaped(lua_State *L, sora_buffer *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i;
  if (!sora_buffer_reserve(b, n * 3)) sora_raise(L, "sora: out of memory");
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '_' || ch == '~') {
      b->data[b->len++] = (char)ch;
    } else {
      b->data[b->len++] = '%';
      b->data[b->len++] = hex[ch >> 4];
      b->data[b->len++] = hex[ch & 15];
    }
  }
}

static void append(lua_State *L, sora_buffer *b, const char *s, size_t n) {
  if (!sora_buffer_append(b, s, n)) sora_raise(L, "sora: out of memory");
}

static void append_path(lua_State *L, sora_buffer *url, const char *path, const char *id,
                        size_t id_len) {
  const char *hole = strstr(path, "%s");
  if (hole == NULL) {
    append(L, url, path, strlen(path));
    return;
  }
  append(L, url, path, (size_t)(hole - path));
  sora_url_append_escaped(L, url, id, id_len);
  append(L, url, hole + 2, strlen(hole + 2));
}

/* The endpoint's query fields from the checked options at params; returns the separator the
 * next parameter needs. */
static char append_query(lua_State *L, sora_buffer *url, const sora_endpoint *e, int params) {
  const sora_field *f;
  char separator = '?';
  for (f = e->query; f && f->name; f++) {
    lua_getfield(L, params, f->name); /* value */
    if (!lua_isnil(L, -1)) {
      sora_push_text(L, lua_gettop(L)); /* value, text */
      size_t len;
      const char *text = lua_tolstring(L, -1, &len);
      append(L, url, &separator, 1);
      append(L, url, f->name, strlen(f->name));
      append(L, url, "=", 1);
      sora_url_append_escaped(L, url, text, len);
      separator = '&';
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  return separator;
}

/* ---- a parameter of the base URL's query --------------------------------------------- */

/* Adds the query's parameters but `name`'s to b; returns whether `name` was among them. */
static int add_others(luaL_Buffer *b, const char *query, const char *name) {
  size_t name_len = strlen(name);
  int found = 0;
  while (query && *query) {
    const char *end = strchr(query, '&');
    size_t len = end ? (size_t)(end - query) : strlen(query);
    if (strncmp(query, name, name_len) == 0 && (len == name_len || query[name_len] == '=')) {
      found = 1;
    } else if (len > 0) {
      luaL_addlstring(b, query, len);
      luaL_addchar(b, '&');
    }
    query = end ? end + 1 : NULL;
  }
  return found;
}

static void add_escaped(luaL_Buffer *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '_' || ch == '~' || ch == '.') {
      luaL_addchar(b, (char)ch);
    } else {
      luaL_addchar(b, '%');
      luaL_addchar(b, hex[ch >> 4]);
      luaL_addchar(b, hex[ch & 15]);
    }
  }
}

void sora_base_url_set_param(lua_State *L, sora_base_url *base, const char *name,
                             const char *value, int replace) {
  luaL_Buffer b;
  char *query;
  luaL_buffinit(L, &b);
  if (add_others(&b, base->query, name) && !replace) {
    luaL_pushresult(&b);
    lua_pop(L, 1);
    return;
  }
  luaL_addstring(&b, name);
  luaL_addchar(&b, '=');
  add_escaped(&b, value);
  luaL_pushresult(&b);
  query = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  if (query == NULL) luaL_error(L, "sora: out of memory");
  free(base->query);
  base->query = query;
}

void sora_url_build(lua_State *L, sora_transfer *t, const char *id, size_t id_len, int params) {
  const sora_base_url *base = &t->client->base;
  sora_buffer *url = &t->handle->url;
  char separator;
  params = sora_absindex(L, params);
  append(L, url, base->prefix, strlen(base->prefix));
  append_path(L, url, t->endpoint->path, id, id_len);
  separator = append_query(L, url, t->endpoint, params);
  if (base->query) { /* e.g. ?api-version=...: kept at the end of every URL */
    append(L, url, &separator, 1);
    append(L, url, base->query, strlen(base->query));
  }
}

/* ---- the base URL ------------------------------------------------------------------- */

static char *part(CURLU *u, CURLUPart what, unsigned flags, CURLUcode *rc) {
  char *value = NULL;
  *rc = curl_url_get(u, what, &value, flags);
  return *rc == CURLUE_OK ? value : NULL;
}

/* Whether the text has an authority after "scheme://": libcurl reads "http:///v1" and
 * "http:/v1" as the host "v1", which is never what was meant. */
static int has_authority(const char *text) {
  const char *slashes = strstr(text, "://");
  return slashes && slashes[3] != '\0' && slashes[3] != '/' && slashes[3] != '?' && slashes[3] != '#';
}

/* Why the parsed URL (of text) cannot work, or NULL when it can. */
static const char *unusable(CURLU *u, const char *text) {
  CURLUcode rc;
  char *scheme = part(u, CURLUPART_SCHEME, 0, &rc), *host, *fragment;
  int web = scheme && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
  curl_free(scheme);
  if (!web) return "must start with http:// or https://";
  host = part(u, CURLUPART_HOST, 0, &rc);
  web = host && *host && has_authority(text);
  curl_free(host);
  if (!web) return "has no host";
  fragment = part(u, CURLUPART_FRAGMENT, 0, &rc);
  curl_free(fragment);
  if (fragment) return "has a fragment (#...), which a request cannot carry";
  return NULL;
}

static char *dup_or_null(const char *s, int *oom) {
  char *copy;
  if (s == NULL) return NULL;
  copy = strdup(s);
  if (copy == NULL) *oom = 1;
  return copy;
}

/* Fills base from a parsed URL: userinfo and query apart, the rest as the prefix. */
static int split(CURLU *u, sora_base_url *base) {
  CURLUcode rc;
  char *user = part(u, CURLUPART_USER, CURLU_URLDECODE, &rc);
  char *password = part(u, CURLUPART_PASSWORD, CURLU_URLDECODE, &rc);
  char *query = part(u, CURLUPART_QUERY, 0, &rc), *prefix;
  int oom = 0;
  curl_url_set(u, CURLUPART_USER, NULL, 0);
  curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
  curl_url_set(u, CURLUPART_QUERY, NULL, 0);
  prefix = part(u, CURLUPART_URL, 0, &rc);
  base->prefix = dup_or_null(prefix, &oom);
  base->user = dup_or_null(user, &oom);
  base->password = dup_or_null(password, &oom);
  base->query = query && *query ? dup_or_null(query, &oom) : NULL;
  curl_free(user);
  curl_free(password);
  curl_free(query);
  curl_free(prefix);
  if (base->prefix == NULL) return 0;
  /* request paths start with '/': "https://host/v1/" and ".../v1" are one base */
  prefix = base->prefix + strlen(base->prefix);
  while (prefix > base->prefix && prefix[-1] == '/') *--prefix = '\0';
  return !oom;
}

void sora_base_url_free(sora_base_url *base) {
  if (base->password) memset(base->password, 0, strlen(base->password));
  free(base->prefix);
  free(base->query);
  free(base->user);
  free(base->password);
  memset(base, 0, sizeof *base);
}

/* For a text with no "scheme://" ("api.openai.com/v1"): " (did you mean 'https://host/v1'?)"
 * into buf, from the host and port libcurl finds when https is assumed (never the userinfo,
 * which may hold a password), or "". */
static const char *scheme_hint(const char *text, char *buf, size_t size) {
  CURLU *u;
  char *host = NULL, *port = NULL;
  buf[0] = '\0';
  if (strstr(text, "://") != NULL) return buf;
  u = curl_url();
  if (u && curl_url_set(u, CURLUPART_URL, text, CURLU_DEFAULT_SCHEME) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && *host) {
    int len;
    curl_url_get(u, CURLUPART_PORT, &port, 0); /* only a port the text names */
    len = snprintf(buf, size, " (did you mean 'https://%s%s%s/v1'?)", host, port ? ":" : "",
                   port ? port : "");
    if (len < 0 || (size_t)len >= size) buf[0] = '\0'; /* a cut hint would mislead */
  }
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return buf;
}

void sora_base_url_parse(lua_State *L, const char *text, const char *origin, sora_base_url *base) {
  CURLU *u = curl_url();
  const char *why = NULL;
  int ok;
  if (u == NULL) sora_raise(L, "sora: out of memory");
  if (curl_url_set(u, CURLUPART_URL, text, 0) != CURLUE_OK) why = "is not a valid URL";
  else why = unusable(u, text);
  ok = why == NULL && split(u, base);
  curl_url_cleanup(u);
  if (why) { /* the text itself is never quoted: it may hold a password */
    char hint[320];
    sora_bad_argument(L, "new", 1, "%s %s%s", origin, why, scheme_hint(text, hint, sizeof hint));
  }
  if (!ok) sora_raise(L, "sora: out of memory");
}
