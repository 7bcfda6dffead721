/* The client: configuration, the multi handle, a pool of easy handles, and the loop that
 * drives transfers. */
#include <stdlib.h>
#include <string.h>

#include "sora.h"

#define DEFAULT_BASE_URL "https://api.openai.com/v1"
#define DEFAULT_TIMEOUT_S 600.0
#define DEFAULT_CONNECT_TIMEOUT_S 10.0
#define DEFAULT_STALL_TIMEOUT_S 60.0
#define DEFAULT_MAX_RETRIES 2
#define MAX_POLL_S 3600.0 /* one poll waits at most this long (huge waits loop) */

sora_client *sora_checkclient(lua_State *L, int i) {
  sora_client *c = luaL_checkudata(L, i, SORA_CLIENT);
  if (c->multi == NULL) luaL_argerror(L, i, "the client is closed");
  return c;
}

/* ---- configuration ------------------------------------------------------------------- */

static char *dup_string(lua_State *L, const char *s) {
  char *copy = malloc(strlen(s) + 1);
  if (copy == NULL) luaL_error(L, "sora: out of memory");
  return strcpy(copy, s);
}

/* A string option, else the environment variable, else the default (which may be NULL). */
static const char *string_option(lua_State *L, int opts, const char *name, const char *env,
                                 const char *fallback) {
  const char *value;
  lua_getfield(L, opts, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bad argument #1 to 'new' (option '%s' must be a string, got %s)", name,
                 luaL_typename(L, -1));
    value = lua_tostring(L, -1);
    lua_pop(L, 1); /* the options table still holds the string */
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
    return luaL_error(L, "bad argument #1 to 'new' (option '%s' must be a number, got %s)", name,
                      luaL_typename(L, -1));
  else value = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(value >= min)) luaL_error(L, "bad argument #1 to 'new' (option '%s' must be >= %g)", name, min);
  /* callers convert to int or to milliseconds in a long: out of range (math.huge) is UB.
   * A billion seconds or retries is forever. */
  return value > 1e9 ? 1e9 : value;
}

static void check_header_text(lua_State *L, const char *what, const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
      luaL_error(L, "bad argument #1 to 'new' (%s contains CR, LF or NUL)", what);
  }
}

/* Appends to a list the client already owns, so a raise never leaks it. */
static void append_header(lua_State *L, struct curl_slist **list, const char *name,
                          const char *value) {
  struct curl_slist *grown;
  lua_pushfstring(L, "%s: %s", name, value);
  grown = curl_slist_append(*list, lua_tostring(L, -1));
  lua_pop(L, 1);
  if (grown == NULL) luaL_error(L, "sora: out of memory");
  *list = grown;
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

static void add_user_header(lua_State *L, struct curl_slist **list, const char *name,
                            size_t name_len, const char *value, size_t value_len) {
  if (!is_token(name, name_len))
    luaL_error(L, "bad argument #1 to 'new' (invalid header name '%s')", name);
  check_header_text(L, "a header value", value, value_len);
  append_header(L, list, name, value);
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
      lua_pushlstring(L, text, name_len);
      lua_pushlstring(L, v, value_len);
      add_user_header(L, list, lua_tostring(L, -2), name_len, lua_tostring(L, -1), value_len);
      lua_pop(L, 2);
    }
    text = eol ? eol + 1 : NULL;
  }
}

static void add_option_headers(lua_State *L, int opts, struct curl_slist **list) {
  lua_getfield(L, opts, "headers");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "bad argument #1 to 'new' (option 'headers' must be a table, got %s)",
               luaL_typename(L, -1));
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t name_len, value_len;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bad argument #1 to 'new' (option 'headers' must map names to strings)");
    name = lua_tolstring(L, -2, &name_len);
    value = lua_tolstring(L, -1, &value_len);
    add_user_header(L, list, name, name_len, value, value_len);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Four prebuilt header lists, so no request builds one. */
static void build_headers(lua_State *L, sora_client *c, int opts) {
  static const char *const accept[SORA_HEADERS_KINDS] = {
      "application/json", "application/json", "application/json", "application/binary",
      "application/binary"};
  const char *org = string_option(L, opts, "organization", "OPENAI_ORG_ID", NULL);
  const char *project = string_option(L, opts, "project", "OPENAI_PROJECT_ID", NULL);
  int kind;
  if (org) check_header_text(L, "option 'organization'", org, strlen(org));
  if (project) check_header_text(L, "option 'project'", project, strlen(project));
  for (kind = 0; kind < SORA_HEADERS_KINDS; kind++) {
    struct curl_slist **list = &c->headers[kind];
    append_header(L, list, "Accept", accept[kind]);
    if (kind == SORA_HEADERS_FOREIGN) continue;
    if (kind == SORA_HEADERS_JSON) append_header(L, list, "Content-Type", "application/json");
    /* curl waits up to a second for "100 Continue" before a large body; servers answer anyway. */
    if (kind == SORA_HEADERS_MIME) append_header(L, list, "Expect", "");
    if (org) append_header(L, list, "OpenAI-Organization", org);
    if (project) append_header(L, list, "OpenAI-Project", project);
    add_env_headers(L, list);
    add_option_headers(L, opts, list);
  }
}

static const char *const option_names[] = {
    "api_key", "base_url", "organization", "project", "timeout", "connect_timeout",
    "stall_timeout", "deadline", "max_retries", "headers", "log", "tls_verify", "ca_file", NULL};

static void check_option_names(lua_State *L, int opts) {
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    int i;
    if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 1, "option names must be strings");
    for (i = 0; option_names[i]; i++) {
      if (strcmp(option_names[i], lua_tostring(L, -2)) == 0) break;
    }
    if (option_names[i] == NULL)
      luaL_error(L, "bad argument #1 to 'new' (unknown option '%s')", lua_tostring(L, -2));
    lua_pop(L, 1);
  }
}

/* TLS peer and host verification stay on unless turned off by name: tls_verify = false. */
static void configure_tls(lua_State *L, sora_client *c, int opts) {
  const char *ca_file = string_option(L, opts, "ca_file", NULL, NULL);
  lua_getfield(L, opts, "tls_verify");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    luaL_error(L, "bad argument #1 to 'new' (option 'tls_verify' must be a boolean, got %s)",
               luaL_typename(L, -1));
  c->tls_verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (ca_file) c->ca_file = dup_string(L, ca_file);
}

static int log_level_named(const char *name) {
  if (strcmp(name, "debug") == 0) return SORA_LOG_DEBUG;
  if (strcmp(name, "info") == 0) return SORA_LOG_INFO;
  return -1;
}

/* log = "info" | "debug" (to stderr) | function(line, level); else OPENAI_LOG. */
static void configure_log(lua_State *L, sora_client *c, int opts) {
  const char *env = getenv("OPENAI_LOG");
  c->log_ref = LUA_NOREF;
  lua_getfield(L, opts, "log");
  if (lua_isfunction(L, -1)) {
    c->log_level = SORA_LOG_DEBUG;
    c->log_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return;
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    c->log_level = log_level_named(lua_tostring(L, -1));
    if (c->log_level < 0)
      luaL_error(L, "bad argument #1 to 'new' (option 'log' must be \"info\", \"debug\" or a function)");
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "bad argument #1 to 'new' (option 'log' must be a string or a function, got %s)",
               luaL_typename(L, -1));
  } else if (env && log_level_named(env) > 0) {
    c->log_level = log_level_named(env);
  }
  lua_pop(L, 1);
}

/* Lines never hold the key or any header: method, URL, status, attempt and timing. A log
 * function that raises is reported on stderr rather than breaking the transfer loop. */
void sora_client_log(lua_State *L, sora_client *c, int level, const char *line) {
  int status;
  if (level > c->log_level) return;
  if (c->log_ref == LUA_NOREF) {
    fprintf(stderr, "%s\n", line);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->log_ref);
  lua_pushstring(L, line);
  lua_pushstring(L, level == SORA_LOG_DEBUG ? "debug" : "info");
  /* as for transfer callbacks: closing the client or a blocking call from here must raise */
  c->performing++;
  status = lua_pcall(L, 2, 0, 0);
  c->performing--;
  if (status != 0) {
    fprintf(stderr, "sora: the log function failed: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

static void configure(lua_State *L, sora_client *c, int opts) {
  const char *base, *key;
  size_t base_len;
  check_option_names(L, opts);
  key = string_option(L, opts, "api_key", "OPENAI_API_KEY", NULL);
  if (key == NULL || *key == '\0')
    luaL_error(L, "sora.new: no API key: pass api_key or set OPENAI_API_KEY");
  check_header_text(L, "the API key", key, strlen(key));
  base = string_option(L, opts, "base_url", "OPENAI_BASE_URL", DEFAULT_BASE_URL);
  base_len = strlen(base);
  while (base_len > 0 && base[base_len - 1] == '/') base_len--; /* paths start with '/' */
  if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
    luaL_error(L, "bad argument #1 to 'new' (base_url must start with http:// or https://, got '%s')", base);
  check_header_text(L, "option 'base_url'", base, base_len);
  c->timeout_ms = (long)(number_option(L, opts, "timeout", DEFAULT_TIMEOUT_S, 0.001) * 1000);
  c->connect_timeout_ms =
      (long)(number_option(L, opts, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_S, 0.001) * 1000);
  c->stall_timeout_ms =
      (long)(number_option(L, opts, "stall_timeout", DEFAULT_STALL_TIMEOUT_S, 1) * 1000);
  c->deadline_ms = (long)(number_option(L, opts, "deadline", 0, 0) * 1000);
  c->max_retries = (int)number_option(L, opts, "max_retries", DEFAULT_MAX_RETRIES, 0);
  configure_tls(L, c, opts);
  configure_log(L, c, opts);
  build_headers(L, c, opts);
  c->api_key = dup_string(L, key);
  c->base_url = dup_string(L, base);
  c->base_url[base_len] = '\0';
  /* curl_version() would list every library and initialise libldap: the number suffices */
  lua_pushfstring(L, "sora-lua/%s libcurl/%s %s", SORA_VERSION,
                  curl_version_info(CURLVERSION_NOW)->version, LUA_VERSION);
  c->user_agent = dup_string(L, lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* ---- the handle pool ----------------------------------------------------------------- */

static size_t ignore_body(char *data, size_t size, size_t n, void *ud) {
  (void)data; (void)ud;
  return size * n;
}

/* Options that never change between requests are set once, when the handle is made. */
static CURL *new_easy(sora_client *c, sora_handle *h) {
  CURL *easy = curl_easy_init();
  if (easy == NULL) return NULL;
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, h->errbuf);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, c->user_agent);
  curl_easy_setopt(easy, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
  curl_easy_setopt(easy, CURLOPT_XOAUTH2_BEARER, c->api_key);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, ignore_body);
  /* sora follows redirects itself (transfer.c), so credentials never leave the API's origin */
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
  if (c->ca_file) curl_easy_setopt(easy, CURLOPT_CAINFO, c->ca_file);
  return easy;
}

sora_handle *sora_client_acquire(sora_client *c) {
  sora_handle *h = c->idle;
  if (h != NULL) {
    c->idle = h->next_idle;
    h->next_idle = NULL;
  } else {
    h = calloc(1, sizeof *h);
    if (h == NULL) return NULL;
    h->easy = new_easy(c, h);
    if (h->easy == NULL) {
      free(h);
      return NULL;
    }
  }
  h->errbuf[0] = '\0';
  sora_buffer_clear(&h->url);
  sora_buffer_clear(&h->response);
  return h;
}

/* Large response buffers are not kept: one 10 MB body must not pin 10 MB per handle. */
#define KEEP_BUFFER_BYTES (256 * 1024)

void sora_client_release(sora_client *c, sora_handle *h) {
  if (h->response.cap > KEEP_BUFFER_BYTES) sora_buffer_free(&h->response);
  h->next_idle = c->idle;
  c->idle = h;
}

static void free_handle(sora_handle *h) {
  curl_easy_cleanup(h->easy);
  sora_buffer_free(&h->url);
  sora_buffer_free(&h->response);
  free(h);
}

/* ---- driving transfers --------------------------------------------------------------- */

/* Returns how many transfers ended. */
static int collect_completed(lua_State *L, sora_client *c) {
  CURLMsg *msg;
  int queued, ended = 0;
  while ((msg = curl_multi_info_read(c->multi, &queued)) != NULL) {
    sora_transfer *t = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    sora_transfer_completed(L, t, msg->data.result);
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

static int perform(lua_State *L, sora_client *c) {
  c->performing = 1;
  curl_multi_perform(c->multi, &c->running);
  c->performing = 0;
  return collect_completed(L, c);
}

/* One turn of the loop: run what can run and, unless a transfer just ended, wait at most
 * wait_s seconds for activity. Returns the number of transfers in flight or waiting to retry. */
int sora_client_drive(lua_State *L, sora_client *c, double wait_s) {
  lua_State *previous = c->L;
  double idle;
  int pending = 0;
  sora_transfer *t;
  if (c->performing)
    luaL_error(L, "sora: a transfer callback cannot make a blocking call on its own client");
  c->L = L;
  idle = perform(L, c) ? 0 : wake_retries(L, c, wait_s);
  if (idle > 0) {
    int timeout_ms = (int)((idle < MAX_POLL_S ? idle : MAX_POLL_S) * 1000 + 0.999);
    curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
    perform(L, c);
    wake_retries(L, c, 0);
  }
  c->L = previous;
  for (t = c->transfers; t != NULL; t = t->next) {
    if (t->state == SORA_STATE_RUNNING || t->state == SORA_STATE_RETRY_WAIT) pending++;
  }
  return pending;
}

/* ---- Lua methods --------------------------------------------------------------------- */

/* The client of a public method (named for the message) that needs it open. */
static sora_client *check_open(lua_State *L, const char *method) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  if (c->multi == NULL) sora_raise(L, "calling '%s' on a closed sora.Client", method);
  return c;
}

static void close_client(lua_State *L, sora_client *c) {
  sora_handle *h;
  int kind;
  if (c->multi == NULL) return;
  if (c->performing) luaL_error(L, "sora: cannot close a client from inside its own callback");
  while (c->transfers != NULL) sora_transfer_detach(L, c->transfers);
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
  free(c->base_url);
  free(c->user_agent);
  free(c->ca_file);
  c->ca_file = NULL;
  if (c->log_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, c->log_ref);
  c->log_ref = LUA_NOREF;
  if (c->api_key) memset(c->api_key, 0, strlen(c->api_key));
  free(c->api_key);
  c->base_url = c->user_agent = c->api_key = NULL;
}

/* close, __gc and __close are one idempotent function. */
static int client_close(lua_State *L) {
  close_client(L, luaL_checkudata(L, 1, SORA_CLIENT));
  return 0;
}

/* client:_drive(seconds): one turn of the loop; the Lua layer's step adds the tasks. */
static int client_drive(lua_State *L) {
  sora_client *c = check_open(L, "step");
  double wait_s = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, wait_s >= 0, 2, "must not be negative");
  lua_pushinteger(L, sora_client_drive(L, c, wait_s));
  return 1;
}

/* client:_sleep(seconds): waits while still driving the client's transfers. */
static int client_sleep(lua_State *L) {
  sora_client *c = check_open(L, "sleep");
  double until = sora_now() + luaL_checknumber(L, 2), left;
  while ((left = until - sora_now()) > 0) sora_client_drive(L, c, left);
  return 0;
}

static int client_tostring(lua_State *L) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  if (c->multi == NULL) lua_pushstring(L, "sora.Client (closed)");
  else lua_pushfstring(L, "sora.Client (%s)", c->base_url);
  return 1;
}

/* client:_state(): a table the Lua layer keeps per client (its tasks). */
static int client_state(lua_State *L) {
  luaL_checkudata(L, 1, SORA_CLIENT);
  sora_getuservalue(L, 1);
  return 1;
}

static int client_base_url(lua_State *L) {
  lua_pushstring(L, sora_checkclient(L, 1)->base_url);
  return 1;
}

static int client_new(lua_State *L) {
  sora_client *c;
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  c = lua_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->log_ref = LUA_NOREF;
  luaL_getmetatable(L, SORA_CLIENT);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  sora_setuservalue(L, -2);
  c->multi = curl_multi_init();
  if (c->multi == NULL) return luaL_error(L, "sora: cannot create a libcurl multi handle");
  configure(L, c, 1); /* a raise here leaves a client that __gc frees */
  return 1;
}

static const luaL_Reg client_methods[] = {
    {"close", client_close}, {"_drive", client_drive}, {"_sleep", client_sleep},
    {"base_url", client_base_url}, {"_state", client_state}, {NULL, NULL}};

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
  lua_newtable(L);
  sora_setfuncs(L, client_methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_pushliteral(L, SORA_CLIENT);
  lua_setfield(L, -3, "__name");
  lua_remove(L, -2);
  lua_pushcfunction(L, client_new);
  return 2; /* methods, new */
}
