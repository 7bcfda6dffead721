/* The limit: what a bare C program does with libcurl and lua-cjson, with no module around it.
 * One easy handle reused for every request, CURLOPT_NOSIGNAL, a 128 KiB receive buffer, the
 * same Authorization header sora sends (built once), and each JSON body decoded by lua-cjson
 * through the Lua C API, as sora's core decodes it. bench/run.lua compares sora with it.
 *
 *   limit retrieve URL N        N sequential GETs of one video, each body decoded
 *   limit list URL              every page of a list (`after` = the page's last_id), each decoded
 *                               and its `data` walked; counts the videos
 *   limit sink URL              a large body handed, chunk by chunk, to a Lua function that
 *                               counts and discards it (as sora hands chunks to a `sink`)
 *   limit file URL PATH         a large body written with stdio to PATH.part, renamed to PATH;
 *                               16 KiB at a time (a stdio buffer of libcurl's piece size), as
 *                               sora writes a file
 *   limit startup               times curl_global_init alone (libcurl's own start, its TLS
 *                               library's): what sora's first client pays for libcurl, not sora
 *
 * With LIMIT_HEADERS=sora in the environment it also sends the Accept and User-Agent headers
 * sora sends (the official SDKs send them too): bench/run.lua counts what libcurl's handling
 * of two more custom headers costs per request.
 *
 * Prints one line: `seconds=S count=N hwm_kb=K` (time from the first request to the last byte;
 * peak resident memory of the process). Exits non-zero when a request or a decode fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define RECEIVE_BUFFER_BYTES (128 * 1024L)

typedef struct body {
  char *data;
  size_t len, cap;
} body;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "limit: %s: %s\n", what, why);
  exit(1);
}

/* Peak resident set of this process, from /proc (kB). */
static long peak_rss_kb(void) {
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  }
  fclose(f);
  return kb;
}

static size_t keep(char *data, size_t size, size_t n, void *ud) {
  body *b = ud;
  size_t len = size * n;
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + len) cap *= 2;
    if ((b->data = realloc(b->data, cap)) == NULL) return 0;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return len;
}

/* The sink: a Lua function (at stack index 2) called with each chunk as a string, as sora
 * calls a `sink`; it counts and discards. */
static size_t to_lua_sink(char *data, size_t size, size_t n, void *ud) {
  lua_State *L = ud;
  lua_pushvalue(L, 2);
  lua_pushlstring(L, data, size * n);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    fprintf(stderr, "limit: sink: %s\n", lua_tostring(L, -1));
    return 0;
  }
  return size * n;
}

static size_t to_file(char *data, size_t size, size_t n, void *ud) {
  return fwrite(data, size, n, ud) * size;
}

static CURL *new_easy(struct curl_slist *headers) {
  CURL *easy = curl_easy_init();
  if (easy == NULL) die("curl_easy_init", "failed");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER_BYTES);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L); /* the bench's self-signed certificate */
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  return easy;
}

static void perform(CURL *easy, const char *url) {
  CURLcode rc;
  long status = 0;
  curl_easy_setopt(easy, CURLOPT_URL, url);
  if ((rc = curl_easy_perform(easy)) != CURLE_OK) die(url, curl_easy_strerror(rc));
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) die(url, "status is not 200");
}

/* Pushes cjson.decode(body); the decoder is at stack index 1. */
static void decode(lua_State *L, const body *b) {
  lua_pushvalue(L, 1);
  lua_pushlstring(L, b->data, b->len);
  if (lua_pcall(L, 1, 1, 0) != 0) die("decode", lua_tostring(L, -1));
}

static long run_retrieve(lua_State *L, CURL *easy, const char *url, long n) {
  body b = {0};
  long i;
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &b);
  for (i = 0; i < n; i++) {
    b.len = 0;
    perform(easy, url);
    decode(L, &b);
    lua_getfield(L, -1, "id");
    if (!lua_isstring(L, -1)) die("retrieve", "no id in the body");
    lua_pop(L, 2);
  }
  free(b.data);
  return n;
}

/* Walks one decoded page (on top): counts its videos, copies last_id; returns has_more. */
static int walk_page(lua_State *L, long *count, char *last_id, size_t room) {
  int i, n, more;
  lua_getfield(L, -1, "data");               /* page, data */
  n = (int)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);                     /* page, data, video */
    lua_getfield(L, -1, "id");                 /* page, data, video, id */
    if (!lua_isstring(L, -1)) die("list", "a video without an id");
    lua_pop(L, 2);
    (*count)++;
  }
  lua_getfield(L, -2, "has_more");           /* page, data, has_more */
  more = lua_toboolean(L, -1);
  lua_getfield(L, -3, "last_id");            /* page, data, has_more, last_id */
  if (more && !lua_isstring(L, -1)) die("list", "has_more without a last_id");
  if (more) snprintf(last_id, room, "%s", lua_tostring(L, -1));
  lua_pop(L, 4);
  return more;
}

static long run_list(lua_State *L, CURL *easy, const char *url) {
  body b = {0};
  char page_url[2048], last_id[256];
  long count = 0;
  int more = 1;
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &b);
  snprintf(page_url, sizeof page_url, "%s", url);
  while (more) {
    b.len = 0;
    perform(easy, page_url);
    decode(L, &b);
    more = walk_page(L, &count, last_id, sizeof last_id);
    if (more) snprintf(page_url, sizeof page_url, "%s&after=%s", url, last_id);
  }
  free(b.data);
  return count;
}

static long run_sink(lua_State *L, CURL *easy, const char *url) {
  long received;
  if (luaL_dostring(L, "local n = 0 return function(chunk) n = n + #chunk end, function() return n end") != 0)
    die("sink", lua_tostring(L, -1)); /* decoder, sink, count */
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, to_lua_sink);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, L);
  perform(easy, url);
  lua_call(L, 0, 1);
  received = (long)lua_tointeger(L, -1);
  lua_settop(L, 1);
  return received;
}

static long run_file(CURL *easy, const char *url, const char *path) {
  static char buffer[16384];
  char part[4096];
  FILE *f;
  long size;
  snprintf(part, sizeof part, "%s.part", path);
  if ((f = fopen(part, "wb")) == NULL) die(part, "cannot open");
  setvbuf(f, buffer, _IOFBF, sizeof buffer); /* stdio's own is the 4 KiB block size */
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, to_file);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, f);
  perform(easy, url);
  size = ftell(f);
  if (fclose(f) != 0 || rename(part, path) != 0) die(path, "cannot write");
  return size;
}

static lua_State *new_lua(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_dostring(L, "return require('cjson').decode") != 0) die("require cjson", lua_tostring(L, -1));
  return L; /* the decoder at index 1 */
}

/* `startup_ms=T`: curl_global_init in this fresh process (libcurl loaded by the linker, as
 * package.loadlib loads it before sora's part is timed). */
static int run_startup(void) {
  double start = now();
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) die("startup", "curl_global_init failed");
  printf("startup_ms=%.3f\n", (now() - start) * 1000);
  curl_global_cleanup();
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 2 ? argv[1] : "", *url = argc > 2 ? argv[2] : "";
  const char *extra = getenv("LIMIT_HEADERS");
  struct curl_slist *headers = NULL;
  lua_State *L;
  CURL *easy;
  double start;
  long count = 0;
  if (argc == 2 && strcmp(argv[1], "startup") == 0) return run_startup();
  if (extra != NULL && strcmp(extra, "sora") == 0) { /* in sora's order */
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "User-Agent: sora-lua/0.1.0 libcurl/7.88.1 Lua 5.4");
  }
  headers = curl_slist_append(headers, "Authorization: Bearer sk-bench");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  L = new_lua();
  easy = new_easy(headers);
  start = now();
  if (strcmp(mode, "retrieve") == 0 && argc > 3) count = run_retrieve(L, easy, url, atol(argv[3]));
  else if (strcmp(mode, "list") == 0) count = run_list(L, easy, url);
  else if (strcmp(mode, "sink") == 0) count = run_sink(L, easy, url);
  else if (strcmp(mode, "file") == 0 && argc > 3) count = run_file(easy, url, argv[3]);
  else die("usage", "limit retrieve URL N | list URL | sink URL | file URL PATH | startup");
  printf("seconds=%.6f count=%ld hwm_kb=%ld\n", now() - start, count, peak_rss_kb());
  curl_easy_cleanup(easy);
  curl_slist_free_all(headers);
  lua_close(L);
  curl_global_cleanup();
  return 0;
}
