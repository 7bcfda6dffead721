/* The client: configuration, the multi handle, a pool of easy handles, and the loop that
 * drives transfers. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sora.h"

#define DEFAULT_BASE_URL "https://api.openai.com/v1"
#define DEFAULT_TIMEOUT_S 600.0
#define DEFAULT_CONNECT_TIMEOUT_S 10.0
#define DEFAULT_STALL_TIMEOUT_S 60.0
#define DEFAULT_MAX_RETRIES 2
/* Bytes of a replaced file's space that one drive gives back (download.c): about 1 ms on ext4. */
#define RELEASE_SLICE ((off_t)8 << 20)
#define MAX_POLL_S 3600.0 /* one poll waits at most this long (huge waits loop) */

/* The open client at index 1 of the method `name`. */
static sora_client *check_open(lua_State *L, const char *name) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  if (c->multi == NULL) sora_raise(L, "calling '%s' on a closed sora.Client", name);
  return c;
}

/* ---- configuration ------------------------------------------------------------------- */

static char *dup_string(lua_State *L, const char *s) {
  size_t size = strlen(s) + 1;
  char *copy = malloc(size);
  if (copy == NULL) sora_raise(L, "sora: out of memory");
  return memcpy(copy, s, size);
}

static const char *const option_names[] = {
    "api_key", "base_url", "organization", "project", "timeout", "connect_timeout",
    "stall_timeout", "deadline", "max_retries", "headers", "log", "tls_verify", "ca_file",
    "proxy", "no_proxy", "proxy_tunnel", "api_key_cmd", "api_key_header", "api_version",
    "reconcile", NULL};

/* Raises "unknown option 'name'" for new, with the nearest option name when one is near. */
static void unknown_option(lua_State *L, const char *name) {
  sora_nearest nearest;
  char hint[96];
  int i;
  sora_nearest_init(&nearest, name);
  for (i = 0; option_names[i]; i++) sora_nearest_consider(&nearest, option_names[i]);
  sora_bad_argument(L, "new", 1, "unknown option '%s'%s", name, sora_did_you_mean(&nearest, hint, sizeof hint));
}

/* Replaces the options at opts with a plain copy of the known ones, each read once (through
 * __index too): every string read later is anchored by the copy until new returns. */
static void read_options(lua_State *L, int opts) {
  int i;
  lua_pushnil(L);
  while (lua_next(L, opts)) { /* name, value */
    if (lua_type(L, -2) != LUA_TSTRING) sora_bad_argument(L, "new", 1, "option names must be strings");
    for (i = 0; option_names[i]; i++) {
      if (strcmp(option_names[i], lua_tostring(L, -2)) == 0) break;
    }
    if (option_names[i] == NULL) unknown_option(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  lua_newtable(L); /* copy */
  for (i = 0; option_names[i]; i++) {
    lua_getfield(L, opts, option_names[i]); /* copy, value */
    lua_setfield(L, -2, option_names[i]);
  }
  lua_replace(L, opts);
}

/* A string option, else the environment variable, else the default (which may be NULL). The
 * string stays valid while the options' copy is on the stack (read_options). */
static const char *string_option(lua_State *L, int opts, const char *name, const char *env,
                                 const char *fallback) {
  const char *value;
  size_t len;
  lua_getfield(L, opts, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      sora_bad_argument(L, "new", 1, "option '%s' must be a string, got %s", name, luaL_typename(L, -1));
    value = lua_tolstring(L, -1, &len);
    /* every use reads it as a C string: a NUL would silently cut a key, a header or a path */
    if (strlen(value) != len) sora_bad_argument(L, "new", 1, "option '%s' contains NUL", name);
    lua_pop(L, 1); /* the copy of the options still holds the string */
    return value;
  }
  lua_pop(L, 1);
  value = env ? getenv(env) : NULL;
  return value && *value ? value : fallback;
}

static double number_option(lua_State *L, int opts, const char *name, double fallback,
                            double min) {
  double value;
  lua_getfield(L, opts, name);
  if (lua_isnil(L, -1)) value = fallback;
  else if (lua_type(L, -1) != LUA_TNUMBER)
    sora_bad_argument(L, "new", 1, "option '%s' must be a number, got %s", name, luaL_typename(L, -1));
  else value = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(value >= min)) {
    char bound[32];
    snprintf(bound, sizeof bound, "%g", min); /* 0 and 0.001, not 0.0 and 0.001000 */
    sora_bad_argument(L, "new", 1, "option '%s' must be >= %s", name, bound);
  }
  /* callers convert to int or to milliseconds in a long: out of range (math.huge) is UB.
   * A billion seconds or retries is forever. */
  return value > 1e9 ? 1e9 : value;
}

/* A header value is text (RFC 9110 5.5): no CR, LF or NUL (a header injected), and no other
 * control character but a tab (servers refuse it, or pass it on to whoever reads logs). */
static void check_header_text(lua_State *L, const char *what, const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\r' || ch == '\n' || ch == '\0')
      sora_bad_argument(L, "new", 1, "%s contains CR, LF or NUL", what);
    if ((ch < 32 && ch != '\t') || ch == 127)
      sora_bad_argument(L, "new", 1, "%s contains a control character (byte %d)", what, (int)ch);
  }
}

/* Appends the line on top of the stack (popped) to a list the client already owns, so a raise
 * never leaks it. */
static void append_line(lua_State *L, struct curl_slist **list) {
  struct curl_slist *grown = curl_slist_append(*list, lua_tostring(L, -1));
  lua_pop(L, 1);
  if (grown == NULL) sora_raise(L, "sora: out of memory");
  *list = grown;
}

static void append_header(lua_State *L, struct curl_slist **list, const char *name,
                          const char *value) {
  lua_pushfstring(L, "%s: %s", name, value);
  append_line(L, list);
}

/* Header names must be HTTP tokens: no separators, no spaces. */
static int is_token(const char *s, size_t len) {
  size_t i;
  if (len == 0) return 0;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch)) return 0;
  }
  return 1;
}

/* Whether a header value is empty once HTTP trims it: libcurl drops "Name: " (its way to
 * remove a header) and sends an empty one only as "Name;". */
static int is_blank(const char *value, size_t len) {
  while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) len--;
  return len == 0;
}

/* Headers sora writes for each request: a client-wide one would break it. Content-Length or
 * Transfer-Encoding frames the body wrong (cut short, or a hang to the timeout: a create that
 * may be billed), Content-Type breaks multipart, and one Idempotency-Key for every call makes
 * each later create a 422 (it is a per-call option). */
static const char *const OWN_HEADERS[] = {"Content-Length", "Transfer-Encoding", "Content-Type",
                                          "Idempotency-Key" /* last: named by the message */, NULL};

static void check_not_own(lua_State *L, const char *name) {
  int i;
  for (i = 0; OWN_HEADERS[i]; i++) {
    if (strcasecmp(name, OWN_HEADERS[i]) == 0)
      sora_bad_argument(L, "new", 1, "header '%s' is sora's to set, per request%s", name,
                        OWN_HEADERS[i + 1] == NULL ? " (the per-call option idempotency_key)" : "");
  }
}

static void add_user_header(lua_State *L, struct curl_slist **list, const char *name,
                            size_t name_len, const char *value, size_t value_len) {
  if (!is_token(name, name_len)) sora_bad_argument(L, "new", 1, "invalid header name '%s'", name);
  check_not_own(L, name);
  check_header_text(L, "a header value", value, value_len);
  if (is_blank(value, value_len)) {
    lua_pushfstring(L, "%s;", name); /* sent as "Name:", empty, as the user asked */
    append_line(L, list);
  } else {
    append_header(L, list, name, value);
  }
}

/* OPENAI_CUSTOM_HEADERS: newline-separated "Name: value" lines. */
static void add_env_headers(lua_State *L, struct curl_slist **list) {
  const char *text = getenv("OPENAI_CUSTOM_HEADERS");
  while (text && *text) {
    const char *eol = strchr(text, '\n');
    size_t len = eol ? (size_t)(eol - text) : strlen(text);
    const char *colon = memchr(text, ':', len);
    if (colon) {
      const char *v = colon + 1;
      size_t name_len = (size_t)(colon - text), value_len;
      while (*v == ' ' || *v == '\t') v++;
      value_len = len - (size_t)(v - text);
      if (value_len && v[value_len - 1] == '\r') value_len--;
      lua_pushlstring(L, text, name_len); /* name */
      lua_pushlstring(L, v, value_len);   /* name, value */
      add_user_header(L, list, lua_tostring(L, -2), name_len, lua_tostring(L, -1), value_len);
      lua_pop(L, 2);
    }
    text = eol ? eol + 1 : NULL;
  }
}

/* The headers table is walked with lua_next, which keeps each name and value on the stack
 * while they are used. */
static void add_option_headers(lua_State *L, int opts, struct curl_slist **list) {
  lua_getfield(L, opts, "headers"); /* headers */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    sora_bad_argument(L, "new", 1, "option 'headers' must be a table, got %s", luaL_typename(L, -1));
  lua_pushnil(L);
  while (lua_next(L, -2)) { /* headers, name, value */
    size_t name_len, value_len;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      sora_bad_argument(L, "new", 1, "option 'headers' must map names to strings");
    name = lua_tolstring(L, -2, &name_len);
    value = lua_tolstring(L, -1, &value_len);
    add_user_header(L, list, name, name_len, value, value_len);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Whether the list has a header of this name: a user's header replaces sora's own. */
static int has_header(const struct curl_slist *list, const char *name) {
  size_t len = strlen(name);
  for (; list != NULL; list = list->next) {
    if (strncasecmp(list->data, name, len) == 0 && (list->data[len] == ':' || list->data[len] == ';'))
      return 1;
  }
  return 0;
}

/* The User-Agent and the credential, as entries of the prebuilt lists: libcurl formats
 * CURLOPT_USERAGENT and CURLOPT_XOAUTH2_BEARER again for every request. The key goes as
 * "Authorization: Bearer KEY", or raw in the header api_key_header names (Azure's api-key). */
static void append_identity(lua_State *L, const sora_client *c, struct curl_slist **list,
                            const char *key_header) {
  if (!has_header(*list, "User-Agent")) append_header(L, list, "User-Agent", c->user_agent);
  if (key_header != NULL) {
    if (!has_header(*list, key_header)) append_header(L, list, key_header, c->api_key);
    return;
  }
  if (has_header(*list, "Authorization")) return;
  lua_pushfstring(L, "Bearer %s", c->api_key);
  append_header(L, list, "Authorization", lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* api_key_header: a header name, else NULL for Authorization: Bearer. */
static const char *key_header_option(lua_State *L, int opts) {
  const char *name = string_option(L, opts, "api_key_header", NULL, NULL);
  if (name && !is_token(name, strlen(name)))
    sora_bad_argument(L, "new", 1, "option 'api_key_header' must be a header name");
  return name;
}

/* Five prebuilt header lists, so no request builds one. A redirect to another origin gets
 * Accept and User-Agent only. */
static void build_headers(lua_State *L, sora_client *c, int opts) {
  static const char *const accepted[SORA_HEADERS_KINDS] = {
      "application/json", "application/json", "application/json", "application/binary",
      "application/binary"};
  const char *org = string_option(L, opts, "organization", "OPENAI_ORG_ID", NULL);
  const char *project = string_option(L, opts, "project", "OPENAI_PROJECT_ID", NULL);
  const char *key_header = key_header_option(L, opts);
  int kind;
  if (org) check_header_text(L, "option 'organization'", org, strlen(org));
  if (project) check_header_text(L, "option 'project'", project, strlen(project));
  for (kind = 0; kind < SORA_HEADERS_KINDS; kind++) {
    struct curl_slist **list = &c->headers[kind];
    append_header(L, list, "Accept", accepted[kind]);
    if (kind == SORA_HEADERS_FOREIGN) {
      append_header(L, list, "User-Agent", c->user_agent);
      continue;
    }
    if (kind == SORA_HEADERS_JSON) append_header(L, list, "Content-Type", "application/json");
    /* curl waits up to a second for "100 Continue" before a body over 1 MB (JSON or
     * multipart); servers answer without it */
    if (kind == SORA_HEADERS_MIME || kind == SORA_HEADERS_JSON) append_header(L, list, "Expect", "");
    if (org) append_header(L, list, "OpenAI-Organization", org);
    if (project) append_header(L, list, "OpenAI-Project", project);
    add_env_headers(L, list);
    add_option_headers(L, opts, list);
    append_identity(L, c, list, key_header);
  }
}

/* TLS peer and host verification stay on unless turned off by name: tls_verify = false. */
static void configure_tls(lua_State *L, sora_client *c, int opts) {
  const char *ca_file = string_option(L, opts, "ca_file", NULL, NULL);
  lua_getfield(L, opts, "tls_verify");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    sora_bad_argument(L, "new", 1, "option 'tls_verify' must be a boolean, got %s", luaL_typename(L, -1));
  c->tls_verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (ca_file) c->ca_file = dup_string(L, ca_file);
}

static int log_level_named(const char *name) {
  if (strcmp(name, "debug") == 0) return SORA_LOG_DEBUG;
  if (strcmp(name, "info") == 0) return SORA_LOG_INFO;
  return -1;
}

/* log = "info" | "debug" (to stderr) | a callable(line, level), kept in the client's user
 * value (the registry would keep a client its log function refers to alive); else OPENAI_LOG. */
static void configure_log(lua_State *L, sora_client *c, int opts, int client_idx) {
  const char *env = getenv("OPENAI_LOG");
  lua_getfield(L, opts, "log"); /* log */
  if (lua_type(L, -1) != LUA_TSTRING && sora_iscallable(L, -1)) {
    c->log_level = SORA_LOG_DEBUG;
    c->has_log_function = 1;
    sora_getuservalue(L, client_idx); /* log, uv */
    lua_insert(L, -2);                /* uv, log */
    lua_setfield(L, -2, "log");
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    c->log_level = log_level_named(lua_tostring(L, -1));
    if (c->log_level < 0)
      sora_bad_argument(L, "new", 1, "option 'log' must be \"info\", \"debug\" or a function");
  } else if (!lua_isnil(L, -1)) {
    sora_bad_argument(L, "new", 1, "option 'log' must be a string or a function, got %s",
                      luaL_typename(L, -1));
  } else if (env && log_level_named(env) > 0) {
    c->log_level = log_level_named(env);
  }
  lua_pop(L, 1);
}

/* base_url, else OPENAI_BASE_URL, else the API; taken apart by url.c. */
static void configure_base_url(lua_State *L, sora_client *c, int opts) {
  const char *origin = "base_url", *base, *env = getenv("OPENAI_BASE_URL");
  lua_getfield(L, opts, "base_url");
  if (lua_isnil(L, -1) && env && *env) origin = "OPENAI_BASE_URL";
  lua_pop(L, 1);
  base = string_option(L, opts, "base_url", "OPENAI_BASE_URL", DEFAULT_BASE_URL);
  check_header_text(L, origin, base, strlen(base));
  sora_base_url_parse(L, base, origin, &c->base);
}

/* ---- api_key_cmd ---------------------------------------------------------------------- */

#define KEY_LINE_MAX 4096 /* keys are far shorter: a longer first line is not a key */

/* Reads the first line of the command's output into line (NUL-terminated) and drains the rest,
 * so the command never dies of SIGPIPE; returns the line's length, or -1 when it is too long. */
static long read_first_line(FILE *out, char *line) {
  char scratch[512];
  size_t len = 0;
  int ch, ended = 0;
  while ((ch = getc(out)) != EOF && ch != '\n') {
    if (len + 1 >= KEY_LINE_MAX) ended = -1;
    else line[len++] = (char)ch;
  }
  line[len] = '\0';
  while (fread(scratch, 1, sizeof scratch, out) > 0) {
  }
  return ended < 0 ? -1 : (long)len;
}

/* Why the command's exit (pclose's status) is a failure, or NULL when it succeeded. */
static const char *command_failure(int status, char *why, size_t size) {
  if (status == -1) snprintf(why, size, "could not be waited for");
  else if (WIFSIGNALED(status)) snprintf(why, size, "was killed by signal %d", WTERMSIG(status));
  else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    snprintf(why, size, "failed (exit status %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  else return NULL;
  return why;
}

/* Pushes the first line of the command's output, trimmed: run once, through the shell, here.
 * Messages name the option, never the command (it may hold a secret) nor its output. */
static void push_key_from_command(lua_State *L, const char *cmd) {
  char line[KEY_LINE_MAX], why[64];
  const char *start = line, *failure;
  long len;
  FILE *out = popen(cmd, "r");
  if (out == NULL)
    sora_bad_argument(L, "new", 1, "option 'api_key_cmd': cannot run the command: %s", strerror(errno));
  fcntl(fileno(out), F_SETFD, FD_CLOEXEC); /* no later child inherits the key's pipe */
  len = read_first_line(out, line);
  failure = command_failure(pclose(out), why, sizeof why);
  while (len > 0 && strchr(" \t\r", line[len - 1])) line[--len] = '\0';
  while (*start == ' ' || *start == '\t') start++;
  if (failure == NULL && len < 0) failure = "printed a first line too long to be a key";
  if (failure == NULL && *start == '\0') failure = "printed no key";
  lua_pushstring(L, start);
  memset(line, 0, sizeof line);
  if (failure) sora_bad_argument(L, "new", 1, "option 'api_key_cmd': the command %s", failure);
}

/* The key: api_key, else api_key_cmd's output, else OPENAI_API_KEY. The command's key is kept
 * in the options' copy as api_key, which anchors it until new returns. */
static const char *key_option(lua_State *L, int opts) {
  const char *cmd;
  lua_getfield(L, opts, "api_key");
  if (lua_isnil(L, -1) && (cmd = string_option(L, opts, "api_key_cmd", NULL, NULL)) != NULL) {
    push_key_from_command(L, cmd);
    lua_setfield(L, opts, "api_key");
  }
  lua_pop(L, 1);
  return string_option(L, opts, "api_key", "OPENAI_API_KEY", NULL);
}

/* ---- proxies ----------------------------------------------------------------------------- */

static const char *const proxy_schemes[] = {"http", "https", "socks4", "socks4a", "socks5",
                                            "socks5h", NULL};

/* Why the parsed proxy URL cannot be used, or NULL when it can. */
static const char *proxy_unusable(CURLU *u) {
  char *scheme = NULL, *host = NULL;
  const char *why = "must start with http://, https://, socks4://, socks4a://, socks5:// or socks5h://";
  if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK) {
    for (int i = 0; proxy_schemes[i]; i++) {
      if (strcmp(scheme, proxy_schemes[i]) == 0) why = NULL;
    }
  }
  if (why == NULL && (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0'))
    why = "has no host";
  curl_free(scheme);
  curl_free(host);
  return why;
}

/* Takes the proxy URL apart: its userinfo goes to libcurl as options, so no string libcurl
 * could print (its own messages, a log) ever holds the password. */
static const char *split_proxy(CURLU *u, sora_client *c) {
  char *user = NULL, *password = NULL, *url = NULL;
  const char *why = NULL;
  curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
  curl_url_get(u, CURLUPART_PASSWORD, &password, CURLU_URLDECODE);
  curl_url_set(u, CURLUPART_USER, NULL, 0);
  curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
  if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) why = "is not a valid URL";
  c->proxy = url ? strdup(url) : NULL;
  c->proxy_user = user ? strdup(user) : NULL;
  c->proxy_password = password ? strdup(password) : NULL;
  if ((user && !c->proxy_user) || (password && !c->proxy_password)) { /* out of memory */
    free(c->proxy);
    c->proxy = NULL;
  }
  if (password) memset(password, 0, strlen(password));
  curl_free(user);
  curl_free(password);
  curl_free(url);
  return why;
}

/* proxy = "scheme://[user:password@]host[:port]" (a URL without a scheme is http), or false
 * for none at all: the environment's http_proxy, https_proxy, ALL_PROXY are then ignored. */
static void set_proxy_url(lua_State *L, sora_client *c, const char *text) {
  CURLU *u = curl_url();
  const char *why;
  if (u == NULL) luaL_error(L, "sora: out of memory");
  if (curl_url_set(u, CURLUPART_URL, text, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
    why = "is not a valid URL";
  else why = proxy_unusable(u);
  if (why == NULL) why = split_proxy(u, c);
  curl_url_cleanup(u);
  if (why) sora_bad_argument(L, "new", 1, "option 'proxy' %s", why); /* never the text: a password */
  if (c->proxy == NULL) luaL_error(L, "sora: out of memory");
}

static void configure_proxy(lua_State *L, sora_client *c, int opts) {
  const char *no_proxy;
  lua_getfield(L, opts, "proxy");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) c->proxy = dup_string(L, "");
  else if (!lua_isnil(L, -1)) set_proxy_url(L, c, string_option(L, opts, "proxy", NULL, NULL));
  lua_pop(L, 1);
  no_proxy = string_option(L, opts, "no_proxy", NULL, NULL);
  if (no_proxy) c->no_proxy = dup_string(L, no_proxy);
  lua_getfield(L, opts, "proxy_tunnel");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    sora_bad_argument(L, "new", 1, "option 'proxy_tunnel' must be a boolean, got %s", luaL_typename(L, -1));
  c->proxy_tunnel = lua_toboolean(L, -1);
  lua_pop(L, 1);
}

/* api_version, else OPENAI_API_VERSION when the base URL has none: the api-version query
 * parameter every request ends with (Azure OpenAI). */
static void configure_api_version(lua_State *L, sora_client *c, int opts) {
  const char *version;
  int explicit;
  lua_getfield(L, opts, "api_version");
  explicit = !lua_isnil(L, -1);
  lua_pop(L, 1);
  version = string_option(L, opts, "api_version", "OPENAI_API_VERSION", NULL);
  if (version) sora_base_url_set_param(L, &c->base, "api-version", version, explicit);
}

/* reconcile = false: a create whose answer was lost is sent again without looking for the
 * video first. Kept in the client's state table, where lua/sora/reconcile.lua reads it. */
static void configure_reconcile(lua_State *L, int opts, int client_idx) {
  lua_getfield(L, opts, "reconcile");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    sora_bad_argument(L, "new", 1, "option 'reconcile' must be a boolean, got %s", luaL_typename(L, -1));
  sora_getuservalue(L, client_idx); /* reconcile, state */
  lua_pushboolean(L, lua_isnil(L, -2) || lua_toboolean(L, -2));
  lua_setfield(L, -2, "reconcile");
  lua_pop(L, 2);
}

static void configure(lua_State *L, sora_client *c, int opts, int client_idx) {
  const char *key;
  read_options(L, opts);
  key = key_option(L, opts);
  if (key == NULL || *key == '\0')
    sora_bad_argument(L, "new", 1, "no API key: pass api_key or set OPENAI_API_KEY");
  check_header_text(L, "the API key", key, strlen(key));
  c->api_key = dup_string(L, key);
  configure_base_url(L, c, opts);
  configure_api_version(L, c, opts);
  c->timeout_ms = (long)(number_option(L, opts, "timeout", DEFAULT_TIMEOUT_S, 0.001) * 1000);
  c->connect_timeout_ms =
      (long)(number_option(L, opts, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_S, 0.001) * 1000);
  c->stall_timeout_ms =
      (long)(number_option(L, opts, "stall_timeout", DEFAULT_STALL_TIMEOUT_S, 1) * 1000);
  c->deadline_ms = (long)(number_option(L, opts, "deadline", 0, 0) * 1000);
  c->max_retries = (int)number_option(L, opts, "max_retries", DEFAULT_MAX_RETRIES, 0);
  configure_tls(L, c, opts);
  configure_proxy(L, c, opts);
  configure_log(L, c, opts, client_idx);
  configure_reconcile(L, opts, client_idx);
  /* curl_version() would list every library and initialise libldap: the number suffices */
  lua_pushfstring(L, "sora-lua/%s libcurl/%s %s", SORA_VERSION,
                  curl_version_info(CURLVERSION_NOW)->version, LUA_VERSION);
  c->user_agent = dup_string(L, lua_tostring(L, -1));
  lua_pop(L, 1);
  build_headers(L, c, opts);
}

/* ---- the handle pool ----------------------------------------------------------------- */

static size_t ignore_body(char *data, size_t size, size_t n, void *ud) {
  (void)data; (void)ud;
  return size * n;
}

/* Every socket libcurl opens is close-on-exec: a child the host spawns must not keep a
 * connection (a cancelled request's) open. SOCK_CLOEXEC makes it atomic where it exists. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *address) {
  curl_socket_t fd;
  (void)ud; (void)purpose;
#ifdef SOCK_CLOEXEC
  fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd != CURL_SOCKET_BAD || errno != EINVAL) return fd;
#endif
  fd = socket(address->family, address->socktype, address->protocol);
  if (fd != CURL_SOCKET_BAD) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  return fd;
}

/* libcurl before 7.85 has no CURLOPT_PROTOCOLS_STR; a newer header over an older library
 * answers CURLE_UNKNOWN_OPTION. Both fall back to the bitmask options. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
static CURLcode set_protocols_bitmask(CURL *easy) {
  long web = CURLPROTO_HTTP | CURLPROTO_HTTPS;
  CURLcode rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS, web);
  return rc == CURLE_OK ? curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS, web) : rc;
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

static CURLcode set_protocols(CURL *easy) {
#if LIBCURL_VERSION_NUM >= 0x075500 && !defined(SORA_PROTOCOLS_BITMASK)
  CURLcode rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  if (rc == CURLE_OK) rc = curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  if (rc != CURLE_UNKNOWN_OPTION) return rc;
#endif
  return set_protocols_bitmask(easy);
}

/* The options a request's safety depends on; each must take, or the client is not made. */
static CURLcode set_security(CURL *easy, const sora_client *c, const char **what) {
  CURLcode rc;
  *what = "restricting protocols to http and https";
  if ((rc = set_protocols(easy)) != CURLE_OK) return rc;
  /* sora follows redirects itself (transfer.c), so credentials never leave the API's origin */
  *what = "turning redirects off";
  if ((rc = curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK) return rc;
  *what = "setting TLS verification";
  if ((rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L)) != CURLE_OK ||
      (rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L)) != CURLE_OK)
    return rc;
  *what = "setting the CA file";
  if (c->ca_file && (rc = curl_easy_setopt(easy, CURLOPT_CAINFO, c->ca_file)) != CURLE_OK) return rc;
  *what = "opening sockets close-on-exec";
  return curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
}

/* The proxy options, when given (else libcurl reads the environment). */
static CURLcode set_proxy(CURL *easy, const sora_client *c, const char **what) {
  CURLcode rc = CURLE_OK;
  *what = "the proxy";
  if (c->proxy && (rc = curl_easy_setopt(easy, CURLOPT_PROXY, c->proxy)) != CURLE_OK) return rc;
  if (c->proxy_user && (rc = curl_easy_setopt(easy, CURLOPT_PROXYUSERNAME, c->proxy_user)) != CURLE_OK)
    return rc;
  if (c->proxy_password &&
      (rc = curl_easy_setopt(easy, CURLOPT_PROXYPASSWORD, c->proxy_password)) != CURLE_OK)
    return rc;
  *what = "no_proxy";
  if (c->no_proxy && (rc = curl_easy_setopt(easy, CURLOPT_NOPROXY, c->no_proxy)) != CURLE_OK) return rc;
  *what = "proxy_tunnel";
  if (c->proxy_tunnel) rc = curl_easy_setopt(easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
  return rc;
}

/* libcurl negotiates HTTP/2 only over TLS (ALPN); the prefix's scheme is libcurl's, lower case */
static int is_https(const sora_base_url *base) {
  return base->prefix != NULL && strncmp(base->prefix, "https:", 6) == 0;
}

/* libcurl's default receive buffer is 16 KiB: a large download then costs a write callback (a
 * Lua sink call, a write(2)) per 16 KiB. 128 KiB takes the content path to a C loop's speed;
 * the buffer is touched only as far as a response fills it, so small answers cost no more. */
#define RECEIVE_BUFFER_BYTES (128 * 1024L)

/* Options that never change between requests are set once, when the handle is made. Returns
 * NULL, with *why saying what failed, when a security option does not take. */
static CURL *new_easy(sora_client *c, sora_handle *h, const char **why) {
  CURL *easy = curl_easy_init();
  const char *what;
  CURLcode rc;
  *why = "cannot create a libcurl handle";
  if (easy == NULL) return NULL;
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, h->errbuf);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, ignore_body);
  curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER_BYTES);
  /* a burst of requests over TLS waits for the first connection's ALPN answer: on HTTP/2 they
   * then share it (multiplexed) instead of each opening, and handshaking, its own */
  curl_easy_setopt(easy, CURLOPT_PIPEWAIT, is_https(&c->base) ? 1L : 0L);
  rc = set_security(easy, c, &what);
  if (rc == CURLE_OK) rc = set_proxy(easy, c, &what);
  if (rc != CURLE_OK) {
    snprintf(h->errbuf, sizeof h->errbuf, "libcurl refused %s: %s", what, curl_easy_strerror(rc));
    *why = h->errbuf;
    curl_easy_cleanup(easy);
    return NULL;
  }
  return easy;
}

static void free_handle(sora_handle *h) {
  if (h->easy) curl_easy_cleanup(h->easy);
  sora_buffer_free(&h->url);
  sora_buffer_free(&h->response);
  free(h);
}

/* libcurl sizes its connection cache at 4 per easy handle in the multi, and shrinks it as
 * handles leave: when a burst of transfers drains, the connections of the first to end are
 * closed, and the next burst opens (over TLS, handshakes) them again. The pool of handles only
 * grows, to the most transfers ever in flight at once: a cache sized on it keeps a connection
 * for each of them (and for a redirect to storage elsewhere) while they come and go. */
static void size_connection_cache(sora_client *c) {
  c->handles++;
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 4 * c->handles);
}

static sora_handle *acquire_handle(sora_client *c, lua_State *L) {
  sora_handle *h = c->idle;
  const char *why = "out of memory";
  if (h != NULL) {
    c->idle = h->next_idle;
    h->next_idle = NULL;
  } else {
    h = calloc(1, sizeof *h);
    if (h == NULL || (h->easy = new_easy(c, h, &why)) == NULL) {
      lua_pushstring(L, why); /* before the handle (and the message in it) is freed */
      if (h) free_handle(h);
      sora_raise(L, "sora: %s", lua_tostring(L, -1));
    }
    size_connection_cache(c);
  }
  h->errbuf[0] = '\0';
  sora_buffer_clear(&h->url);
  sora_buffer_clear(&h->response);
  return h;
}

/* Large response buffers are not kept: one 10 MB body must not pin 10 MB per handle. */
#define KEEP_BUFFER_BYTES ((size_t)256 * 1024)

static void release_handle(sora_client *c, sora_handle *h) {
  if (h->response.cap > KEEP_BUFFER_BYTES) sora_buffer_free(&h->response);
  h->next_idle = c->idle;
  c->idle = h;
}

/* ---- the multi handle ------------------------------------------------------------------ */

/* The lowest descriptor not open now, from `from` up; -1 when none is found soon. */
static int free_descriptor(int from) {
  int fd;
  for (fd = from; fd < from + 1024; fd++) {
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) return fd;
  }
  return -1;
}

static void set_cloexec_if_socket(int fd) {
  struct stat st;
  int flags;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  flags = fcntl(fd, F_GETFD);
  if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/* curl_multi_init makes a wakeup socket pair (an eventfd in newer versions) that libcurl 7.x
 * leaves inheritable and gives no access to. It takes the lowest free descriptors: the two
 * found free just before are the ones to mark close-on-exec. */
static CURLM *new_multi(void) {
  int first = free_descriptor(0), second = first >= 0 ? free_descriptor(first + 1) : -1;
  CURLM *multi = curl_multi_init();
  if (multi != NULL) {
    set_cloexec_if_socket(first);
    set_cloexec_if_socket(second);
  }
  return multi;
}

/* ---- callbacks ----------------------------------------------------------------------- */

/* Whether the error being handled was raised by a debug hook (lua.c's "interrupted!", a
 * sandbox's instruction limit): 5.3 and 5.4 name a hook's frame; earlier versions cannot tell. */
static int raised_by_hook(lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "n", &ar) && ar.namewhat != NULL && strcmp(ar.namewhat, "hook") == 0)
      return 1;
  }
  return 0;
}

/* The message handler of callbacks: a message gets the traceback of the user's function; an
 * error object, or what a hook raised, goes on as it is (a program may raise a table and catch
 * it; a host matches its interruption's message). */
int sora_callback_traceback(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING || raised_by_hook(L)) return 1;
  sora_traceback(L, lua_tostring(L, 1));
  return 1;
}

/* Pushes the callable of cb and its arguments; returns how many arguments. */
static int push_call(lua_State *L, sora_callback *cb, int uv) {
  if (cb->t == NULL) { /* the log function */
    lua_getfield(L, uv, "log");
    lua_pushstring(L, cb->text);
    lua_pushstring(L, cb->level);
    return 2;
  }
  lua_getfield(L, uv, "transfers");       /* transfers */
  sora_rawgetp(L, -1, cb->t);             /* transfers, transfer */
  sora_push_slot(L, -1, cb->slot);        /* transfers, transfer, callable */
  lua_replace(L, -3);                     /* callable, transfer */
  lua_pop(L, 1);
  if (cb->text) {                         /* a chunk for the sink */
    lua_pushlstring(L, cb->text, cb->text_len);
    return 1;
  }
  lua_pushinteger(L, cb->received);       /* progress: received, total or nil */
  if (cb->total >= 0) lua_pushinteger(L, cb->total);
  else lua_pushnil(L);
  return 2;
}

/* The text of the error value at 1, as tostring gives it (a __tostring of an error object
 * included); a value without one is named by its type. Run protected: __tostring may raise. */
static int error_text(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
    lua_tostring(L, 1);
    return 1;
  }
  if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
  lua_pushfstring(L, "(an error object of type %s)", luaL_typename(L, 1));
  return 1;
}

/* Writes what a log function raised (the value on top, popped) to stderr: the request goes on.
 * printf is never given NULL, whatever was raised. */
static void report_log_error(lua_State *L) {
  lua_pushcfunction(L, error_text);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != 0 || lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "(an error object whose __tostring failed)");
  }
  fprintf(stderr, "sora: the log function failed: %s\n", lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* Keeps what a transfer's callback raised in the transfer's user value, for its result to
 * raise once libcurl has returned; a log function's error goes to stderr. */
static void keep_error(lua_State *L, sora_callback *cb, int uv) {
  if (cb->t == NULL) {
    lua_pushvalue(L, -1);
    report_log_error(L);
    return;
  }
  lua_getfield(L, uv, "transfers"); /* err, transfers */
  sora_rawgetp(L, -1, cb->t);       /* err, transfers, transfer */
  lua_pushvalue(L, -3);
  sora_set_slot(L, -2, SORA_SLOT_RAISE);
  lua_pushboolean(L, 1);            /* error(nil) raises too: the flag says it did */
  sora_set_slot(L, -2, SORA_SLOT_RAISED);
  lua_pop(L, 2);
}

/* The runner, called protected with (the client's user value, the callback): everything that
 * can raise, pushing a chunk included, happens in here, never unprotected under libcurl. */
static int run_callback(lua_State *L) {
  sora_callback *cb = lua_touserdata(L, 2);
  int nargs, ok;
  lua_pushcfunction(L, sora_callback_traceback); /* uv, cb, handler */
  nargs = push_call(L, cb, 1);
  ok = lua_pcall(L, nargs, 0, 3) == 0;
  if (!ok) keep_error(L, cb, 1);
  lua_pushboolean(L, ok);
  return 1;
}

/* The runner itself failed: out of memory, or a hook raised outside the user's function (lua.c's
 * SIGINT hook fires at the runner's call). Anything but out of memory goes on as itself: kept
 * as the transfer's error, and raised by the drive once it has ended (drive_end). Nothing here
 * allocates: the transfer's slots exist, and "transfers" is a string the user value holds. */
static void keep_runner_error(lua_State *L, sora_client *c, sora_callback *cb, int status) {
  int pending = c->callback_base + 3;
  if (status == LUA_ERRMEM) {
    if (cb->t) cb->t->io_errno = ENOMEM;
    return;
  }
  if (cb->t) keep_error(L, cb, c->callback_base + 1);
  if (lua_isnil(L, pending)) lua_replace(L, pending); /* the first one is raised */
  else lua_pop(L, 1);
  lua_pushnil(L); /* in place of the error, popped by the caller */
}

static int run_protected(sora_client *c, sora_callback *cb) {
  lua_State *L = c->L;
  int status, ok;
  if (L == NULL || c->callback_base == 0) return 0; /* not driving: nothing to call from */
  lua_pushvalue(L, c->callback_base);     /* runner (made by drive: pushing it allocates on 5.1) */
  lua_pushvalue(L, c->callback_base + 1); /* runner, uv */
  lua_pushlightuserdata(L, cb);           /* runner, uv, cb */
  c->in_callback++;
  status = lua_pcall(L, 2, 1, 0);
  c->in_callback--;
  ok = status == 0 && lua_toboolean(L, -1);
  if (status != 0) keep_runner_error(L, c, cb, status);
  lua_pop(L, 1); /* the result */
  return ok;
}

/* Lines never hold the key, the userinfo or any header: method, URL, status, attempt and
 * timing. A log function that raises is reported on stderr rather than breaking the loop. */
static void log_line(lua_State *L, sora_client *c, int level, const char *line) {
  sora_callback cb;
  (void)L;
  if (level > c->log_level) return;
  if (!c->has_log_function || c->callback_base == 0) {
    fprintf(stderr, "%s\n", line);
    return;
  }
  memset(&cb, 0, sizeof cb);
  cb.text = line;
  cb.level = level == SORA_LOG_DEBUG ? "debug" : "info";
  run_protected(c, &cb);
}

/* ---- anchoring: the client owns its transfers ---------------------------------------- */

/* Pushes the table of transfers in flight in the client's user value: transfer pointer ->
 * transfer userdata. It is what keeps a running transfer alive, and only while the client
 * is: a dropped client is collected with its transfers, which its __gc aborts. */
static void push_transfers(lua_State *L, int client_idx) {
  client_idx = sora_absindex(L, client_idx);
  sora_getuservalue(L, client_idx); /* uv */
  lua_getfield(L, -1, "transfers"); /* uv, transfers */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "transfers");
  }
  lua_remove(L, -2); /* transfers */
}

/* A task awaits this finished transfer (transfer:_notify()): append it to the queue `finished`
 * in the client's user value (the table client:_state() returns), which the task scheduler
 * drains in step, so that a step looks only at the transfers that ended, not at every task.
 * Only flagged transfers are queued: a program that never calls step never grows the queue. */
static void notify_waiter(lua_State *L, sora_client *c, sora_transfer *t, int uv_idx,
                          int transfer_idx) {
  if (!t->notify) return;
  t->notify = 0;
  sora_loop_task_ready(c); /* whatever drove it, a watching host comes back to run the task */
  lua_getfield(L, uv_idx, "finished"); /* queue */
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, uv_idx, "finished");
  }
  lua_pushvalue(L, transfer_idx);      /* queue, transfer */
  lua_rawseti(L, -2, (int)sora_rawlen(L, -2) + 1);
  lua_pop(L, 1);
}

/* Lets go of the transfers that have finished: their owners hold them now, if anyone does.
 * The table is walked rather than the client's list: a transfer whose result was read is no
 * longer in the list. The user value (uv_idx) gets the ones a task awaits (notify_waiter). */
static void release_finished(lua_State *L, sora_client *c, int uv_idx, int transfers_idx) {
  lua_pushnil(L);
  while (lua_next(L, transfers_idx)) { /* key, transfer */
    sora_transfer *t = lua_touserdata(L, -1);
    if (t->state == SORA_STATE_DONE) notify_waiter(L, c, t, uv_idx, lua_gettop(L));
    lua_pop(L, 1);
    if (t->state != SORA_STATE_DONE) continue;
    t->anchored = 0;
    lua_pushvalue(L, -1);
    lua_pushnil(L);                    /* key, key, nil */
    lua_rawset(L, transfers_idx);      /* clearing a field while walking is allowed */
  }
}

/* ---- driving transfers --------------------------------------------------------------- */

/* Returns how many transfers ended. */
static int collect_completed(lua_State *L, sora_client *c) {
  CURLMsg *msg;
  int queued, ended = 0;
  while ((msg = curl_multi_info_read(c->multi, &queued)) != NULL) {
    sora_handle *h = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&h);
    sora_transfer_completed(L, h->transfer, msg->data.result);
    ended++;
  }
  return ended;
}

/* Starts the transfers whose retry time has come; returns seconds until the next one
 * (or `limit` when none waits). */
static double wake_retries(lua_State *L, sora_client *c, double limit) {
  double now = sora_now(), next = limit;
  sora_transfer *t, *following;
  for (t = c->transfers; t != NULL; t = following) {
    following = t->next;
    if (t->state != SORA_STATE_RETRY_WAIT) continue;
    if (t->retry_at <= now) sora_transfer_start(L, t);
    else if (t->retry_at - now < next) next = t->retry_at - now;
  }
  return next;
}

/* A watched client runs on libcurl's socket interface (loop.c), never on curl_multi_perform. */
static int perform(lua_State *L, sora_client *c) {
  if (!sora_loop_run(c, 0, -1)) curl_multi_perform(c->multi, &c->running);
  return collect_completed(L, c);
}

static int count_pending(const sora_client *c) {
  const sora_transfer *t;
  int pending = 0;
  for (t = c->transfers; t != NULL; t = t->next) {
    if (t->state == SORA_STATE_RUNNING || t->state == SORA_STATE_RETRY_WAIT) pending++;
  }
  return pending;
}

/* The shortest slice of a drive for content (transfer.c, slice_spent): what keeps step(0)
 * short while a large download runs. A drive that may wait longer (a blocking call, a step
 * with a timeout) gets that long: its caller has nothing else to do meanwhile, and a download
 * then runs as fast as libcurl reads, without a pause and resume every 0.1 ms. */
#define CONTENT_SLICE_S 0.0001

/* Resumes the transfers the previous drive paused and opens this drive's slice. Resuming
 * hands libcurl's kept chunk to the destination at once; when that fails (a sink raised, a
 * write failed), the transfer ends here, as libcurl would have ended it. */
static void resume_paused(lua_State *L, sora_client *c, double wait_s) {
  sora_transfer *t, *following;
  c->slice_end = sora_now() + (wait_s > CONTENT_SLICE_S ? wait_s : CONTENT_SLICE_S);
  c->paused = 0;
  for (t = c->transfers; t != NULL; t = following) {
    CURLcode rc;
    following = t->next;
    if (!t->paused) continue;
    t->paused = 0;
    if (t->state != SORA_STATE_RUNNING) continue;
    rc = curl_easy_pause(t->handle->easy, CURLPAUSE_CONT);
    if (rc != CURLE_OK) sora_transfer_completed(L, t, rc);
  }
}

/* Readies the client for its transfers' callbacks while it is driven, and resumes what the
 * previous drive paused; returns the stack top that drive_end gives back. */
static int drive_begin(lua_State *L, sora_client *c, int client_idx, double wait_s) {
  int top = lua_gettop(L);
  luaL_checkstack(L, 12, "sora: no room on the stack for callbacks");
  lua_pushcfunction(L, run_callback); /* runner */
  sora_getuservalue(L, client_idx);   /* runner, uv */
  push_transfers(L, client_idx);     /* runner, uv, transfers */
  lua_pushnil(L);                     /* runner, uv, transfers, what drive_end raises */
  c->L = L;
  c->callback_base = top + 1;
  resume_paused(L, c, wait_s);
  return top;
}

/* Lets go of the finished transfers (queuing those a task awaits) and tells a watching host
 * what changed; then raises what a hook raised around a callback (keep_runner_error). Returns
 * the number of transfers in flight or waiting to retry. */
static int drive_end(lua_State *L, sora_client *c, int client_idx, int top) {
  c->L = NULL;
  c->callback_base = 0;
  c->slice_end = 0;
  sora_download_release(&c->released, RELEASE_SLICE);
  release_finished(L, c, top + 2, top + 3);
  lua_replace(L, top + 1); /* what to raise, or nil */
  lua_settop(L, top + 1);
  sora_loop_flush(L, client_idx);
  if (!lua_isnil(L, top + 1)) lua_error(L);
  lua_settop(L, top);
  return count_pending(c);
}

/* Waits at most timeout_ms for the client's sockets, or less: Ctrl-C ends the wait where the
 * host handles SIGINT (interrupt.c), and the caller's loop lets the host's hook act on it. */
static void wait_for_activity(sora_client *c, int timeout_ms) {
  int shared = c->wake.shared, wake_fd;
  if (shared && !c->wake.armed) { /* the blocking call's first wait: armed until it returns */
    c->wake.fd = sora_interrupt_arm();
    c->wake.armed = 1;
  }
  wake_fd = shared ? c->wake.fd : sora_interrupt_arm();
  if (!sora_loop_run(c, timeout_ms, wake_fd)) {
    struct curl_waitfd wake = {wake_fd, CURL_WAIT_POLLIN, 0};
    curl_multi_poll(c->multi, &wake, wake_fd >= 0 ? 1 : 0, timeout_ms, NULL);
  }
  if (shared) sora_interrupt_drain(wake_fd);
  else sora_interrupt_disarm(wake_fd);
}

/* One turn of the loop: run what can run and, unless a transfer just ended, wait at most
 * wait_s seconds for activity. Returns the number of transfers in flight or waiting to retry.
 * The caller has checked that the client may be driven (sora_check_usable). */
static int drive(lua_State *L, int client_idx, double wait_s) {
  sora_client *c = lua_touserdata(L, client_idx);
  int top;
  double idle;
  client_idx = sora_absindex(L, client_idx);
  top = drive_begin(L, c, client_idx, wait_s);
  idle = perform(L, c) ? 0 : wake_retries(L, c, wait_s);
  if (idle > 0 && c->paused == 0) { /* a paused transfer has more to give at once */
    int timeout_ms = (int)((idle < MAX_POLL_S ? idle : MAX_POLL_S) * 1000 + 0.999);
    wait_for_activity(c, timeout_ms);
    perform(L, c);
    wake_retries(L, c, 0);
  }
  return drive_end(L, c, client_idx, top);
}

/* What a watching host reported (loop.c): one action on fd (CURL_SOCKET_TIMEOUT: the timer
 * fired), then the same collection as a turn of the loop. */
int sora_client_act(lua_State *L, int client_idx, curl_socket_t fd, int ev_bitmask) {
  sora_client *c = lua_touserdata(L, client_idx);
  int top;
  client_idx = sora_absindex(L, client_idx);
  top = drive_begin(L, c, client_idx, 0); /* a host's loop may not wait: content in slices */
  sora_loop_action(c, fd, ev_bitmask);
  collect_completed(L, c);
  wake_retries(L, c, 0);
  return drive_end(L, c, client_idx, top);
}

/* ---- Lua methods --------------------------------------------------------------------- */

/* The client of a public method (named for the message) that may use its multi handle now. */
static sora_client *check_usable(lua_State *L, const char *method) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  sora_check_usable(L, c, method);
  return c;
}

/* Frees everything; the client at client_idx. Also its __gc, so nothing here raises. */
static void close_client(lua_State *L, sora_client *c, int client_idx) {
  sora_handle *h;
  int kind;
  if (c->multi == NULL) return;
  c->close_pending = 0;
  sora_loop_close(L, c, client_idx); /* a watching host is told first: nothing is left to watch */
  while (c->transfers != NULL) sora_transfer_detach(L, c->transfers);
  sora_download_release(&c->released, -1); /* what replaced files still hold, at once */
  while ((h = c->idle) != NULL) {
    c->idle = h->next_idle;
    free_handle(h);
  }
  curl_multi_cleanup(c->multi);
  c->multi = NULL;
  for (kind = 0; kind < SORA_HEADERS_KINDS; kind++) {
    curl_slist_free_all(c->headers[kind]);
    c->headers[kind] = NULL;
  }
  sora_base_url_free(&c->base);
  free(c->user_agent);
  free(c->ca_file);
  if (c->proxy_password) memset(c->proxy_password, 0, strlen(c->proxy_password));
  free(c->proxy);
  free(c->proxy_user);
  free(c->proxy_password);
  free(c->no_proxy);
  c->proxy = c->proxy_user = c->proxy_password = c->no_proxy = NULL;
  if (c->api_key) memset(c->api_key, 0, strlen(c->api_key));
  free(c->api_key);
  c->user_agent = c->ca_file = c->api_key = NULL;
  sora_getuservalue(L, client_idx); /* uv: what anchored transfers and the log function */
  lua_pushnil(L);
  lua_setfield(L, -2, "transfers");
  lua_pushnil(L);
  lua_setfield(L, -2, "log");
  lua_pop(L, 1);
  c->has_log_function = 0;
}

/* Runs fn pinned and protected; leaves the client at 1 and fn's results (or its error) above
 * it, and returns the status of the call. */
static int pinned_pcall(lua_State *L, sora_client *c, int client_idx, lua_CFunction fn) {
  int nargs = lua_gettop(L), status;
  lua_pushvalue(L, client_idx);
  lua_insert(L, 1);         /* client, args... */
  c->pinned++; /* before fn is pushed: on 5.1 and LuaJIT that allocates a closure, and a
                * finalizer run there could close the client under the call (were that
                * allocation to fail, the client would stay pinned, never freed: out of memory) */
  lua_pushcfunction(L, fn);
  lua_insert(L, 2);         /* client, fn, args... */
  status = lua_pcall(L, nargs, LUA_MULTRET, 0);
  c->pinned--;
  return status;
}

/* Closes the client if that waited for the last pin; raises fn's error, or returns fn's
 * results, above the client. */
static int end_pinned(lua_State *L, sora_client *c, int status) {
  if (c->pinned == 0 && c->close_pending) close_client(L, c, 1);
  if (status != 0) lua_error(L);
  return lua_gettop(L) - 1;
}

int sora_client_pinned_call(lua_State *L, int client_idx, lua_CFunction fn) {
  sora_client *c = lua_touserdata(L, client_idx);
  return end_pinned(L, c, pinned_pcall(L, c, client_idx, fn));
}

int sora_client_blocking_call(lua_State *L, int client_idx, lua_CFunction fn) {
  sora_client *c = lua_touserdata(L, client_idx);
  int status, outer_shared = c->wake.shared, outer_armed = c->wake.armed, outer_fd = c->wake.fd;
  c->wake.shared = 1; /* a blocking call in a finalizer meanwhile nests: its own arming */
  c->wake.armed = 0;
  status = pinned_pcall(L, c, client_idx, fn);
  if (c->wake.armed) sora_interrupt_disarm(c->wake.fd);
  c->wake.shared = outer_shared;
  c->wake.armed = outer_armed;
  c->wake.fd = outer_fd;
  return end_pinned(L, c, status);
}

/* close, __gc and __close are one idempotent function. It is refused from inside a callback
 * of the client, where it would free the handles libcurl is using, and then nothing has
 * changed. (A finalizer never meets that case: the client is on the driving stack.) */
static int client_close(lua_State *L) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  if (c->multi == NULL || c->close_pending) return 0;
  sora_check_usable(L, c, "close");
  if (c->pinned) c->close_pending = 1; /* a C call is using it: closed when that returns */
  else close_client(L, c, 1);
  return 0;
}

/* Seconds to wait, argument 2 of the method `public_name` (its #1): a number >= 0, not NaN. */
static double check_seconds(lua_State *L, const char *public_name, double fallback) {
  double seconds;
  if (lua_isnoneornil(L, 2)) return fallback;
  if (lua_type(L, 2) != LUA_TNUMBER)
    sora_bad_argument(L, public_name, 1, "non-negative number expected, got %s", luaL_typename(L, 2));
  seconds = lua_tonumber(L, 2);
  if (!(seconds >= 0)) {
    lua_pushvalue(L, 2); /* a copy: lua_tostring converts in place */
    sora_bad_argument(L, public_name, 1, "non-negative number expected, got %s", lua_tostring(L, -1));
  }
  return seconds;
}

/* client:_drive(seconds): one turn of the loop; the Lua layer's step adds the tasks. */
static int client_drive(lua_State *L) {
  double wait_s;
  check_usable(L, "step");
  wait_s = check_seconds(L, "step", 0);
  lua_pushinteger(L, drive(L, 1, wait_s));
  return 1;
}

/* client:_sleep(seconds [, call]): waits while still driving the client's transfers. `call`
 * is the public call that sleeps (a wait between polls), so that a refusal names it. */
static int client_sleep(lua_State *L) {
  double until, left;
  const char *call = luaL_optstring(L, 3, "sleep");
  check_usable(L, call);
  if (lua_isnoneornil(L, 2)) sora_bad_argument(L, "sleep", 1, "non-negative number expected, got no value");
  until = sora_now() + check_seconds(L, "sleep", 0);
  while ((left = until - sora_now()) > 0) {
    check_usable(L, call); /* a log function may have closed it (it raised then) */
    drive(L, 1, left);
    sora_interrupt_point(L); /* Ctrl-C under lua.c raises here */
  }
  return 0;
}

/* The base URL as shown: never the userinfo. */
static void push_shown_url(lua_State *L, const sora_client *c) {
  if (c->base.query) lua_pushfstring(L, "%s?%s", c->base.prefix, c->base.query);
  else lua_pushstring(L, c->base.prefix);
}

static int is_closed(const sora_client *c) {
  return c->multi == NULL || c->close_pending || c->base.prefix == NULL;
}

/* tostring and base_url read the client's URL while pushing strings, and a push may run the
 * collector and a finalizer that closes the client: they run pinned (its close waits), and
 * look at the client only once pinned. */
static int tostring_pinned(lua_State *L) {
  sora_client *c = lua_touserdata(L, 1);
  if (is_closed(c)) {
    lua_pushliteral(L, "sora.Client (closed)");
    return 1;
  }
  lua_pushliteral(L, "sora.Client (");
  push_shown_url(L, c);
  lua_pushliteral(L, ")");
  lua_concat(L, 3);
  return 1;
}

static int client_tostring(lua_State *L) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  if (is_closed(c)) {
    lua_pushliteral(L, "sora.Client (closed)");
    return 1;
  }
  lua_settop(L, 1);
  return sora_client_pinned_call(L, 1, tostring_pinned);
}

/* client:_state(): a table the Lua layer keeps per client (its tasks). */
static int client_state(lua_State *L) {
  luaL_checkudata(L, 1, SORA_CLIENT);
  sora_getuservalue(L, 1);
  return 1;
}

static int base_url_pinned(lua_State *L) {
  sora_client *c = lua_touserdata(L, 1);
  if (is_closed(c)) sora_raise(L, "calling 'base_url' on a closed sora.Client");
  push_shown_url(L, c);
  return 1;
}

static int client_base_url(lua_State *L) {
  check_open(L, "base_url");
  lua_settop(L, 1);
  return sora_client_pinned_call(L, 1, base_url_pinned);
}

/* client:_jitter(): the next number in [0, 1) of the client's retry jitter, for the specs. */
static int client_jitter(lua_State *L) {
  lua_pushnumber(L, sora_rng_uniform(&check_open(L, "_jitter")->rng));
  return 1;
}

static const sora_services client_services = {acquire_handle, release_handle, run_protected, log_line,
                                              push_transfers, drive, sora_client_pinned_call,
                                              sora_loop_flush};
/* client:_log(level, line): a line of the Lua layer ("info" or "debug"), where the core's own
 * lines go (the log function, else stderr); a raising log function is reported on stderr. */
static int client_log(lua_State *L) {
  sora_client *c = check_open(L, "_log");
  int level = log_level_named(luaL_checkstring(L, 2));
  luaL_checkstring(L, 3);
  if (level <= 0 || level > c->log_level) return 0;
  if (!c->has_log_function) {
    fprintf(stderr, "%s\n", lua_tostring(L, 3));
    return 0;
  }
  sora_getuservalue(L, 1);
  lua_getfield(L, -1, "log");
  lua_pushvalue(L, 3);
  lua_pushstring(L, level == SORA_LOG_DEBUG ? "debug" : "info");
  if (lua_pcall(L, 2, 0, 0) != 0) report_log_error(L);
  return 0;
}

static int client_new(lua_State *L) {
  sora_client *c;
  sora_handle *first;
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  if (!lua_istable(L, 1)) sora_bad_argument(L, "new", 1, "table expected, got %s", luaL_typename(L, 1));
  lua_settop(L, 1);
  sora_init_curl(L, lua_upvalueindex(1));
  c = lua_newuserdata(L, sizeof *c); /* opts, client */
  memset(c, 0, sizeof *c);
  c->services = &client_services;
  luaL_getmetatable(L, SORA_CLIENT);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  sora_setuservalue(L, -2);
  c->multi = new_multi();
  if (c->multi == NULL) return luaL_error(L, "sora: cannot create a libcurl multi handle");
  sora_rng_seed(&c->rng);
  configure(L, c, 1, 2); /* a raise here leaves a client that __gc frees */
  /* one handle now: a security option libcurl refuses fails here, not at the first request */
  first = acquire_handle(c, L);
  release_handle(c, first);
  return 1;
}

static const luaL_Reg client_methods[] = {
    {"close", client_close}, {"_drive", client_drive}, {"_sleep", client_sleep},
    {"base_url", client_base_url}, {"_state", client_state}, {"_jitter", client_jitter},
    {"_log", client_log}, {NULL, NULL}};

static const luaL_Reg client_meta[] = {
    {"__gc", client_close}, {"__tostring", client_tostring},
#if LUA_VERSION_NUM >= 504
    {"__close", client_close},
#endif
    {NULL, NULL}};

/* Leaves the method table on the stack: the endpoints and the Lua layer add to it. */
int sora_open_client(lua_State *L) {
  luaL_newmetatable(L, SORA_CLIENT);
  sora_setfuncs(L, client_meta, 0);
  lua_newtable(L);                  /* meta, methods */
  sora_setfuncs(L, client_methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_pushliteral(L, SORA_CLIENT);
  lua_setfield(L, -3, "__name");
  lua_remove(L, -2);                /* methods */
  sora_open_loop(L, -1);            /* watch, unwatch, ... (loop.c) */
  lua_pushboolean(L, 0);            /* libcurl not initialised yet (core.c sora_init_curl) */
  lua_pushcclosure(L, client_new, 1); /* methods, new */
  return 2;
}
