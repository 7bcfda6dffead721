/* One request from start to result: its easy handle's per-request options, the callbacks
 * that receive headers and body, retries, and the Lua values it ends with.
 *
 * Callbacks never raise (no longjmp through libcurl): a Lua callback runs under lua_pcall,
 * its error is kept in the transfer's user value, the transfer is aborted, and the error is
 * raised again once libcurl has returned. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "headers.h"
#include "retry.h"
#include "sora.h"

/* An error body is only read for its message; the rest is dropped. */
#define MAX_ERROR_BODY (1024 * 1024)

double sora_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int is_success(long status) { return status >= 200 && status < 300; }

/* ---- the user value: what a transfer keeps alive ------------------------------------ */
/* fields: client (the client userdata), body (the JSON text curl points into), sink and
 * progress (functions), raise (an error raised by a callback), result, err */

static void push_field(lua_State *L, int transfer_idx, const char *name) {
  sora_getuservalue(L, transfer_idx);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}

static void set_field(lua_State *L, int transfer_idx, const char *name) {
  transfer_idx = sora_absindex(L, transfer_idx);
  sora_getuservalue(L, transfer_idx);
  lua_insert(L, -2);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* Pushes the userdata of a transfer in flight, from the client's anchor table. */
static void push_transfer(lua_State *L, sora_transfer *t) {
  lua_pushlightuserdata(L, t);
  lua_rawget(L, LUA_REGISTRYINDEX);
}

static void anchor(lua_State *L, sora_transfer *t, int transfer_idx) {
  lua_pushvalue(L, transfer_idx);
  sora_rawsetp(L, LUA_REGISTRYINDEX, t);
}

static void unanchor(lua_State *L, sora_transfer *t) {
  lua_pushnil(L);
  sora_rawsetp(L, LUA_REGISTRYINDEX, t);
}

/* ---- callbacks --------------------------------------------------------------------- */

/* Calls a function of the transfer with the values already pushed above it; on error keeps
 * the error and marks the transfer aborted. Returns 0 on error. */
static int call_back(sora_transfer *t, const char *name, int nargs) {
  lua_State *L = t->client->L;
  int base = lua_gettop(L) - nargs, ok;
  push_transfer(L, t);
  push_field(L, -1, name);
  lua_remove(L, -2);
  lua_insert(L, base + 1);
  ok = lua_pcall(L, nargs, 0, 0) == 0;
  if (!ok) {
    push_transfer(L, t);
    lua_insert(L, -2);
    set_field(L, -2, "raise");
    lua_pop(L, 1);
    t->aborted = 1;
  }
  return ok;
}

static int report_progress(sora_transfer *t) {
  lua_State *L = t->client->L;
  lua_pushnumber(L, (lua_Number)t->received);
  if (t->content_length >= 0) lua_pushnumber(L, (lua_Number)t->content_length);
  else lua_pushnil(L);
  return call_back(t, "progress", 2);
}

static size_t deliver(sora_transfer *t, const char *data, size_t len) {
  if (!is_success(t->status) || t->sink == SORA_SINK_BUFFER) {
    sora_buffer *b = &t->handle->response;
    size_t room = is_success(t->status) ? len : (b->len < MAX_ERROR_BODY ? MAX_ERROR_BODY - b->len : 0);
    if (!sora_buffer_append(b, data, len < room ? len : room)) {
      t->io_errno = ENOMEM;
      return 0;
    }
  } else if (t->sink == SORA_SINK_FILE) {
    if (fwrite(data, 1, len, t->file) != len) {
      t->io_errno = errno ? errno : EIO;
      return 0;
    }
  } else {
    lua_pushlstring(t->client->L, data, len);
    if (!call_back(t, "sink", 1)) return 0;
  }
  return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  sora_transfer *t = ud;
  size_t len = size * n;
  if (deliver(t, data, len) != len) return 0; /* aborts the transfer */
  t->received += (curl_off_t)len;
  if (t->has_progress && is_success(t->status) && !report_progress(t)) return 0;
  return len;
}

static void copy_value(char *dest, size_t size, const char *value, size_t len) {
  if (len >= size) len = size - 1;
  memcpy(dest, value, len);
  dest[len] = '\0';
}

static void reset_response(sora_transfer *t) {
  t->status = 0;
  t->request_id[0] = t->content_type[0] = '\0';
  t->poll_after_ms = -1;
  t->retry_after_s = -1;
  t->should_retry = -1;
  t->content_length = -1;
  t->received = 0;
  sora_buffer_clear(&t->handle->response);
}

static void keep_header(sora_transfer *t, const char *name, size_t name_len, const char *value,
                        size_t len) {
  if (sora_header_is(name, name_len, "x-request-id"))
    copy_value(t->request_id, sizeof t->request_id, value, len);
  else if (sora_header_is(name, name_len, "content-type"))
    copy_value(t->content_type, sizeof t->content_type, value, len);
  else if (sora_header_is(name, name_len, "content-length"))
    t->content_length = sora_parse_count(value, len);
  else if (sora_header_is(name, name_len, "openai-poll-after-ms"))
    t->poll_after_ms = (long)sora_parse_count(value, len);
  else if (sora_header_is(name, name_len, "x-should-retry"))
    t->should_retry = sora_parse_bool(value, len);
  else if (sora_header_is(name, name_len, "retry-after-ms"))
    t->retry_after_s = sora_parse_retry_after_ms(value, len);
  else if (sora_header_is(name, name_len, "retry-after") && t->retry_after_s < 0)
    t->retry_after_s = sora_parse_retry_after(value, len, time(NULL));
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
  sora_transfer *t = ud;
  size_t len = size * n, name_len, value_len;
  const char *name, *value;
  long status = sora_parse_status_line(line, len);
  if (status >= 0) { /* a new response begins: 100 Continue, a redirect, the final one */
    reset_response(t);
    t->status = status;
  } else if (sora_header_split(line, len, &name, &name_len, &value, &value_len)) {
    keep_header(t, name, name_len, value, value_len);
  }
  return len;
}

/* ---- starting and ending attempts ---------------------------------------------------- */

static void set_method(CURL *easy, sora_transfer *t) {
  const char *method = t->endpoint->method;
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);
  if (t->mime) {
    curl_easy_setopt(easy, CURLOPT_MIMEPOST, t->mime);
  } else if (t->body) {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
  } else {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    if (strcmp(method, "GET") != 0) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
  }
}

static void set_limits(CURL *easy, sora_transfer *t) {
  sora_client *c = t->client;
  if (t->endpoint->result == SORA_RESULT_CONTENT) {
    /* A large video may take longer than any fixed deadline; what must not pass is a stall. */
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 0L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, (c->stall_timeout_ms + 999) / 1000);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L); /* content may live in storage */
  } else {
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 0L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, 0L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  }
}

/* The temporary file of a download starts empty at every attempt. */
static int rewind_file(sora_transfer *t) {
  if (t->file == NULL) return 1;
  if (fflush(t->file) != 0 || ftruncate(fileno(t->file), 0) != 0 || fseek(t->file, 0, SEEK_SET) != 0) {
    t->io_errno = errno;
    return 0;
  }
  return 1;
}

static void finish(lua_State *L, sora_transfer *t);

void sora_transfer_start(lua_State *L, sora_transfer *t) {
  CURL *easy = t->handle->easy;
  t->attempts++;
  t->aborted = 0;
  t->code = CURLE_OK;
  t->curl_message[0] = t->handle->errbuf[0] = '\0';
  reset_response(t);
  if (!rewind_file(t)) {
    finish(L, t);
    return;
  }
  curl_easy_setopt(easy, CURLOPT_URL, sora_buffer_cstr(&t->handle->url));
  set_method(easy, t);
  set_limits(easy, t);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->client->headers[t->headers]);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)t);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
  if (curl_multi_add_handle(t->client->multi, easy) != CURLM_OK) {
    t->code = CURLE_FAILED_INIT;
    finish(L, t);
    return;
  }
  t->state = SORA_STATE_RUNNING;
}

static int should_retry(sora_transfer *t, double *delay) {
  double jitter = (double)rand() / ((double)RAND_MAX + 1.0);
  if (t->aborted || t->io_errno || t->attempts > t->client->max_retries) return 0;
  if (!sora_retryable(t->code, t->status, t->should_retry)) return 0;
  *delay = sora_retry_delay(t->retry_after_s, t->attempts - 1, jitter);
  return *delay >= 0;
}

void sora_transfer_completed(lua_State *L, sora_transfer *t, CURLcode code) {
  double delay;
  curl_multi_remove_handle(t->client->multi, t->handle->easy);
  t->code = code;
  if (code != CURLE_OK) copy_value(t->curl_message, sizeof t->curl_message, t->handle->errbuf,
                                   strlen(t->handle->errbuf));
  else curl_easy_getinfo(t->handle->easy, CURLINFO_RESPONSE_CODE, &t->status);
  if (should_retry(t, &delay)) {
    t->state = SORA_STATE_RETRY_WAIT;
    t->retry_at = sora_now() + delay;
    return;
  }
  finish(L, t);
}

/* ---- the end of a transfer ---------------------------------------------------------- */

static void close_file(sora_transfer *t, int keep) {
  if (t->file == NULL) return;
  if (fclose(t->file) != 0 && keep) {
    t->io_errno = errno;
    keep = 0;
  }
  t->file = NULL;
  if (keep && rename(t->temp_path, t->path) != 0) {
    t->io_errno = errno;
    keep = 0;
  }
  if (!keep) remove(t->temp_path);
}

/* A download is kept only when it is whole: a success status, no error, and every byte that
 * Content-Length announced. */
static int download_complete(sora_transfer *t) {
  return t->code == CURLE_OK && !t->aborted && !t->io_errno && is_success(t->status) &&
         (t->content_length < 0 || t->received == t->content_length);
}

static void free_mime(sora_transfer *t) {
  if (t->mime == NULL) return;
  curl_easy_setopt(t->handle->easy, CURLOPT_MIMEPOST, NULL);
  curl_mime_free(t->mime);
  t->mime = NULL;
}

static void finish(lua_State *L, sora_transfer *t) {
  close_file(t, download_complete(t));
  free_mime(t);
  t->state = SORA_STATE_DONE;
  unanchor(L, t);
}

static void unlink_transfer(sora_transfer *t) {
  sora_client *c = t->client;
  if (c == NULL) return;
  if (t->handle) sora_client_release(c, t->handle);
  t->handle = NULL;
  if (t->prev) t->prev->next = t->next;
  else c->transfers = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  t->client = NULL;
}

/* The client is closing (or the transfer is cancelled): abort whatever is in flight. */
void sora_transfer_abort(lua_State *L, sora_transfer *t) {
  if (t->state == SORA_STATE_RUNNING) curl_multi_remove_handle(t->client->multi, t->handle->easy);
  if (t->state != SORA_STATE_DONE) {
    t->cancelled = 1;
    t->code = CURLE_ABORTED_BY_CALLBACK;
    finish(L, t);
  }
}

void sora_transfer_detach(lua_State *L, sora_transfer *t) {
  sora_transfer_abort(L, t);
  unlink_transfer(t);
}

/* ---- results ------------------------------------------------------------------------ */

static void push_failure(lua_State *L, sora_transfer *t, const char *kind, const char *message) {
  sora_push_error(L, kind, t->status, message);
  if (t->request_id[0]) {
    lua_pushstring(L, t->request_id);
    lua_setfield(L, -2, "request_id");
  }
  lua_pushinteger(L, t->attempts);
  lua_setfield(L, -2, "attempts");
}

static void push_transport_error(lua_State *L, sora_transfer *t) {
  const char *detail = t->curl_message[0] ? t->curl_message : curl_easy_strerror(t->code);
  int timed_out = t->code == CURLE_OPERATION_TIMEDOUT;
  lua_pushfstring(L, "%s %s: %s", t->endpoint->method, t->endpoint->name, detail);
  push_failure(L, t, timed_out ? "timeout" : "connection", lua_tostring(L, -1));
  lua_remove(L, -2);
  t->status = 0;
  lua_pushnil(L);
  lua_setfield(L, -2, "status");
}

static void push_io_error(lua_State *L, sora_transfer *t) {
  lua_pushfstring(L, "cannot write '%s': %s", t->path ? t->path : "response", strerror(t->io_errno));
  push_failure(L, t, "io", lua_tostring(L, -1));
  lua_remove(L, -2);
}

/* A printable excerpt of a body that is not the JSON we wanted. */
static void push_excerpt(lua_State *L, const char *body, size_t len) {
  luaL_Buffer b;
  size_t i;
  if (len > 120) len = 120;
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)body[i];
    luaL_addchar(&b, ch >= 32 && ch < 127 ? (char)ch : ' ');
  }
  luaL_pushresult(&b);
}

/* The API's {"error": {message, type, param, code}}, or a message made from the status. */
static void push_http_error(lua_State *L, sora_transfer *t) {
  sora_buffer *body = &t->handle->response;
  int top = lua_gettop(L);
  const char *kind = sora_error_kind(t->status);
  if (sora_json_try_decode(L, body->data ? body->data : "", body->len) && lua_istable(L, -1)) {
    lua_getfield(L, -1, "error");
    if (lua_istable(L, -1)) {
      const char *fields[] = {"type", "param", "code", NULL};
      int i, detail = lua_gettop(L);
      lua_getfield(L, detail, "message");
      push_failure(L, t, kind, lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no message)");
      for (i = 0; fields[i]; i++) {
        lua_getfield(L, detail, fields[i]);
        if (lua_type(L, -1) == LUA_TSTRING) lua_setfield(L, -2, fields[i]);
        else lua_pop(L, 1);
      }
      lua_replace(L, top + 1);
      lua_settop(L, top + 1);
      return;
    }
  }
  lua_settop(L, top);
  push_excerpt(L, body->data ? body->data : "", body->len);
  lua_pushfstring(L, "HTTP %d from %s%s%s", (int)t->status, t->endpoint->name,
                  body->len ? ": " : "", lua_tostring(L, -1));
  push_failure(L, t, kind, lua_tostring(L, -1));
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

static void push_invalid(lua_State *L, sora_transfer *t, const char *why) {
  lua_pushfstring(L, "invalid response to %s (%s): %s", t->endpoint->name,
                  t->content_type[0] ? t->content_type : "no content type", why);
  push_failure(L, t, "invalid_response", lua_tostring(L, -1));
  lua_remove(L, -2);
}

/* Pushes the value of a successful response, or an error object; returns 1 for a value. */
static int push_success(lua_State *L, sora_transfer *t, int transfer_idx) {
  sora_buffer *body = &t->handle->response;
  if (t->endpoint->result == SORA_RESULT_CONTENT) {
    if (t->sink == SORA_SINK_BUFFER) lua_pushlstring(L, body->data ? body->data : "", body->len);
    else lua_pushboolean(L, 1);
    return 1;
  }
  if (!sora_json_try_decode(L, body->data ? body->data : "", body->len)) {
    lua_pushfstring(L, "malformed JSON (%s)", lua_tostring(L, -1));
    push_invalid(L, t, lua_tostring(L, -1));
    lua_replace(L, -3);
    lua_pop(L, 1);
    return 0;
  }
  push_field(L, transfer_idx, "client");
  if (!sora_marshal(L, t->endpoint->result, -2, -1, t->poll_after_ms)) {
    push_invalid(L, t, lua_tostring(L, -1));
    lua_replace(L, -4);
    lua_pop(L, 2);
    return 0;
  }
  lua_replace(L, -3);
  lua_pop(L, 1);
  return 1;
}

static void push_outcome(lua_State *L, sora_transfer *t, int transfer_idx) {
  if (t->cancelled) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s was aborted: the transfer was cancelled or its client closed", t->endpoint->name);
    push_failure(L, t, "aborted", lua_tostring(L, -1));
    lua_remove(L, -2);
  } else if (t->io_errno) {
    lua_pushnil(L);
    push_io_error(L, t);
  } else if (t->code != CURLE_OK) {
    lua_pushnil(L);
    push_transport_error(L, t);
  } else if (!is_success(t->status)) {
    lua_pushnil(L);
    push_http_error(L, t);
  } else if (t->content_length >= 0 && t->received != t->content_length) {
    lua_pushnil(L);
    push_invalid(L, t, "the body is shorter than its Content-Length");
  } else if (push_success(L, t, transfer_idx)) {
    lua_pushnil(L);
  } else {
    lua_pushnil(L);
    lua_insert(L, -2);
  }
}

/* Converts the response once, keeps the values in the user value, and gives the handle back.
 * Pushes value, err (one of them nil); raises what a callback raised. */
int sora_transfer_result(lua_State *L, int transfer_idx) {
  sora_transfer *t = luaL_checkudata(L, transfer_idx, SORA_TRANSFER);
  transfer_idx = sora_absindex(L, transfer_idx);
  if (t->state != SORA_STATE_DONE) return luaL_error(L, "sora: the transfer has not finished");
  push_field(L, transfer_idx, "raise");
  if (!lua_isnil(L, -1)) {
    unlink_transfer(t);
    return lua_error(L);
  }
  lua_pop(L, 1);
  push_field(L, transfer_idx, "done");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    push_outcome(L, t, transfer_idx);
    unlink_transfer(t);
    lua_pushvalue(L, -1);
    set_field(L, transfer_idx, "err");
    lua_pushvalue(L, -2);
    set_field(L, transfer_idx, "result");
    lua_pushboolean(L, 1);
    set_field(L, transfer_idx, "done");
    return 2;
  }
  lua_pop(L, 1);
  push_field(L, transfer_idx, "result");
  push_field(L, transfer_idx, "err");
  return 2;
}

/* ---- creation and the Lua methods --------------------------------------------------- */

sora_transfer *sora_transfer_new(lua_State *L, sora_client *c, const sora_endpoint *e,
                                 int client_idx) {
  sora_transfer *t;
  client_idx = sora_absindex(L, client_idx);
  t = lua_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  t->endpoint = e;
  t->sink = SORA_SINK_BUFFER;
  t->headers = SORA_HEADERS_PLAIN;
  luaL_getmetatable(L, SORA_TRANSFER);
  lua_setmetatable(L, -2);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, client_idx);
  lua_setfield(L, -2, "client");
  sora_setuservalue(L, -2);
  t->handle = sora_client_acquire(c);
  if (t->handle == NULL) luaL_error(L, "sora: cannot create a libcurl handle");
  t->client = c;
  t->next = c->transfers;
  if (c->transfers) c->transfers->prev = t;
  c->transfers = t;
  reset_response(t);
  return t;
}

void sora_transfer_begin(lua_State *L, int transfer_idx) {
  sora_transfer *t = luaL_checkudata(L, transfer_idx, SORA_TRANSFER);
  anchor(L, t, sora_absindex(L, transfer_idx));
  sora_transfer_start(L, t);
}

/* Blocks, driving every transfer of the client, until this one is done. */
int sora_transfer_wait(lua_State *L, int transfer_idx) {
  sora_transfer *t = luaL_checkudata(L, transfer_idx, SORA_TRANSFER);
  while (t->state != SORA_STATE_DONE) {
    double wait = 1.0;
    if (t->state == SORA_STATE_RETRY_WAIT) wait = t->retry_at - sora_now();
    sora_client_drive(L, t->client, wait > 0 ? wait : 0);
  }
  return sora_transfer_result(L, transfer_idx);
}

static int transfer_gc(lua_State *L) {
  sora_transfer *t = luaL_checkudata(L, 1, SORA_TRANSFER);
  if (t->client) sora_transfer_detach(L, t);
  free(t->path);
  free(t->temp_path);
  t->path = t->temp_path = NULL;
  return 0;
}

static int transfer_done(lua_State *L) {
  sora_transfer *t = luaL_checkudata(L, 1, SORA_TRANSFER);
  lua_pushboolean(L, t->state == SORA_STATE_DONE);
  return 1;
}

static int transfer_result(lua_State *L) { return sora_transfer_result(L, 1); }

static int transfer_wait(lua_State *L) { return sora_transfer_wait(L, 1); }

static int transfer_cancel(lua_State *L) {
  sora_transfer *t = luaL_checkudata(L, 1, SORA_TRANSFER);
  if (t->client && t->client->performing)
    return luaL_error(L, "sora: cannot cancel a transfer from inside a callback");
  if (t->client) sora_transfer_abort(L, t);
  return 0;
}

static int transfer_tostring(lua_State *L) {
  sora_transfer *t = luaL_checkudata(L, 1, SORA_TRANSFER);
  static const char *const states[] = {"new", "running", "waiting to retry", "done"};
  lua_pushfstring(L, "sora.Transfer (%s, %s)", t->endpoint->name, states[t->state]);
  return 1;
}

static const luaL_Reg transfer_methods[] = {
    {"done", transfer_done}, {"result", transfer_result}, {"wait", transfer_wait},
    {"cancel", transfer_cancel}, {NULL, NULL}};

int sora_open_transfer(lua_State *L) {
  luaL_newmetatable(L, SORA_TRANSFER);
  lua_pushcfunction(L, transfer_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, transfer_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L);
  sora_setfuncs(L, transfer_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  return 0;
}
