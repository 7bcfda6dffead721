/* One request from start to end: its easy handle's per-request options, the callbacks that
 * receive headers and body, redirects, retries and the end. outcome.c turns the end into
 * Lua values; download.c owns the destination of content.
 *
 * Callbacks never raise (no longjmp through libcurl): a Lua callback runs under lua_pcall,
 * its error is kept in the transfer's user value, the transfer is aborted, and the error is
 * raised again once libcurl has returned. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "headers.h"
#include "retry.h"
#include "sora.h"

/* An error body is only read for its message; the rest is dropped. */
#define MAX_ERROR_BODY ((size_t)1024 * 1024)

double sora_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int is_success(long status) { return status >= 200 && status < 300; }

/* What the engine asks of the transfer's client: only through its services (sora.h). */
static const sora_services *services(const sora_transfer *t) { return t->client->services; }

/* ---- what a transfer keeps alive: its slots (sora.h) ------------------------------------ */
/* While it runs, the transfer itself is kept by its client (services: push_transfers), never
 * by the registry. */

/* The client keeps the transfer at transfer_idx alive until it finishes. */
static void anchor(lua_State *L, sora_transfer *t, int transfer_idx) {
  sora_push_slot(L, transfer_idx, SORA_SLOT_CLIENT); /* client */
  services(t)->push_transfers(L, -1);                 /* client, transfers */
  lua_pushvalue(L, transfer_idx);
  sora_rawsetp(L, -2, t);
  lua_pop(L, 2);
  t->anchored = 1;
}

static void unanchor(lua_State *L, sora_transfer *t, int transfer_idx) {
  if (!t->anchored || t->client == NULL) return;
  sora_push_slot(L, transfer_idx, SORA_SLOT_CLIENT); /* client */
  services(t)->push_transfers(L, -1);                 /* client, transfers */
  lua_pushnil(L);
  sora_rawsetp(L, -2, t);
  lua_pop(L, 2);
  t->anchored = 0;
}

/* ---- callbacks --------------------------------------------------------------------- */
/* Run by the client's services: protected, with the client marked as inside a callback. */

int sora_transfer_sink(sora_transfer *t, const char *data, size_t len) {
  sora_callback cb;
  memset(&cb, 0, sizeof cb);
  cb.t = t;
  cb.slot = SORA_SLOT_SINK;
  cb.text = data;
  cb.text_len = len;
  if (services(t)->callback(t->client, &cb)) return 1;
  t->aborted = 1;
  return 0;
}

static int report_progress(sora_transfer *t) {
  sora_callback cb;
  curl_off_t total = sora_download_total(t);
  memset(&cb, 0, sizeof cb);
  cb.t = t;
  cb.slot = SORA_SLOT_PROGRESS;
  cb.received = (lua_Integer)t->received;
  cb.total = total >= 0 ? (lua_Integer)total : -1;
  if (services(t)->callback(t->client, &cb)) return 1;
  t->aborted = 1;
  return 0;
}

/* ---- the response's headers ----------------------------------------------------------- */
/* libcurl frames the body and parses the status line; sora reads the headers it acts on from
 * the lines libcurl hands over, in one pass as they arrive (a lookup per name with
 * curl_easy_header walks every header each time: 4 lookups cost 3,000 instructions a request).
 * Lines after the header block's blank line are trailers, never headers of the response. */

/* curl_easy_nextheader (every header, for with_response and errors) came with libcurl 7.83;
 * before it, the lines of a response that asks for them are kept by hand (build with
 * -DSORA_NO_HEADER_API to test that path) */
#if LIBCURL_VERSION_NUM >= 0x075300 && !defined(SORA_NO_HEADER_API)
#define HAVE_HEADER_API 1
#endif

static void copy_value(char *dest, size_t size, const char *value, size_t len) {
  if (len >= size) len = size - 1;
  memcpy(dest, value, len);
  dest[len] = '\0';
}

/* Forgets what the previous response said: a new one begins (100 Continue, a redirect...). */
static void reset_response(sora_transfer *t) {
  t->status = 0;
  t->headers_read = t->header_block_ended = 0;
  t->request_id[0] = t->content_type[0] = '\0';
  t->poll_after_ms = -1;
  t->retry_after_s = t->retry_after_ms_s = -1;
  t->should_retry = -1;
  t->content_length = -1;
  t->range_start = t->range_end = t->range_total = -1;
  sora_buffer_clear(&t->handle->response);
  t->keep_header_lines = 0;
  sora_buffer_clear(&t->header_lines);
}

static void keep_content_range(sora_transfer *t, const char *value, size_t len) {
  long long start, end, total;
  if (!sora_parse_content_range(value, len, &start, &end, &total)) return;
  t->range_start = start;
  t->range_end = end;
  t->range_total = total;
}

/* Whether the header `name` is the lower-case literal `lower`: lengths first, as most of a
 * response's headers are none of those sora acts on. */
#define NAMED(name, name_len, lower) \
  ((name_len) == sizeof(lower) - 1 && sora_header_is(name, name_len, lower))

/* Whether a header whose name has this length and first letter may be one keep_header acts
 * on (keep the two in step): most lines of a response (Server, Date, Content-Length, ETag...)
 * are then not split at all. */
static int may_keep(const char *name, size_t name_len) {
  int first = name[0] | 0x20; /* ASCII lower case; what is no letter matches nothing here */
  switch (name_len) {
    case 11: return first == 'r';                 /* retry-after */
    case 12: return first == 'x' || first == 'c'; /* x-request-id, content-type */
    case 13: return first == 'c';                 /* content-range */
    case 14: return first == 'x' || first == 'r'; /* x-should-retry, retry-after-ms */
    case 20: return first == 'o';                 /* openai-poll-after-ms */
    default: return 0;
  }
}

/* Texts a server sends may carry the key it was given: redacted before they are cut. */
static void keep_header(sora_transfer *t, const char *name, size_t name_len, const char *value,
                        size_t len) {
  const char *key = t->client->api_key;
  if (NAMED(name, name_len, "x-request-id"))
    sora_copy_redacted(t->request_id, sizeof t->request_id, value, len, key);
  else if (NAMED(name, name_len, "content-type"))
    sora_copy_redacted(t->content_type, sizeof t->content_type, value, len, key);
  else if (NAMED(name, name_len, "content-range"))
    keep_content_range(t, value, len);
  else if (NAMED(name, name_len, "openai-poll-after-ms"))
    t->poll_after_ms = (long)sora_parse_count(value, len);
  else if (NAMED(name, name_len, "x-should-retry"))
    t->should_retry = sora_parse_bool(value, len);
  else if (NAMED(name, name_len, "retry-after-ms"))
    t->retry_after_ms_s = sora_parse_retry_after_ms(value, len);
  else if (NAMED(name, name_len, "retry-after"))
    t->retry_after_s = sora_parse_retry_after(value, len, time(NULL));
}

/* ---- every header, for with_response and error objects (response.c) -------------------- */

#ifdef HAVE_HEADER_API
/* libcurl keeps the last response's headers on the easy handle until its next transfer: read
 * only when asked, nothing is copied while the response arrives. */
void sora_transfer_each_header(lua_State *L, sora_transfer *t, sora_header_fn fn, void *ud) {
  struct curl_header *h = NULL;
  if (t->handle == NULL) return;
  while ((h = curl_easy_nextheader(t->handle->easy, CURLH_HEADER, -1, h)) != NULL)
    fn(L, h->name, strlen(h->name), h->value, strlen(h->value), ud);
}
#else
/* The lines on_header kept, when the response began with a status that asked for them. */
static void keep_line(sora_transfer *t, const char *name, size_t name_len, const char *value,
                      size_t len) {
  sora_buffer *b = &t->header_lines;
  if (!sora_buffer_append(b, name, name_len) || !sora_buffer_append(b, ":", 1) ||
      !sora_buffer_append(b, value, len) || !sora_buffer_append(b, "\n", 1))
    t->keep_header_lines = 0; /* out of memory: what was kept is given, no more */
}

void sora_transfer_each_header(lua_State *L, sora_transfer *t, sora_header_fn fn, void *ud) {
  const char *line = t->header_lines.data, *end = line + t->header_lines.len;
  while (line != NULL && line < end) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    const char *name, *value;
    size_t name_len, value_len;
    if (eol == NULL) break;
    if (sora_header_split(line, (size_t)(eol - line), &name, &name_len, &value, &value_len))
      fn(L, name, name_len, value, value_len, ud);
    line = eol + 1;
  }
}
#endif

/* The status and the body's length as libcurl framed them; read once the body begins (or the
 * response ends without one). */
static void read_framing(sora_transfer *t) {
  curl_off_t length = -1;
  t->headers_read = 1;
  curl_easy_getinfo(t->handle->easy, CURLINFO_RESPONSE_CODE, &t->status);
  if (curl_easy_getinfo(t->handle->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK)
    t->content_length = length;
}

static int is_status_line(const char *line, size_t len) { return len >= 5 && memcmp(line, "HTTP/", 5) == 0; }

static int is_blank_line(const char *line, size_t len) {
  return (len == 2 && line[0] == '\r' && line[1] == '\n') || (len == 1 && line[0] == '\n');
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
  sora_transfer *t = ((sora_handle *)ud)->transfer;
  size_t len = size * n;
  if (is_status_line(line, len)) {
    reset_response(t);
#ifndef HAVE_HEADER_API /* every line is kept for with_response, and for errors */
    t->keep_header_lines = t->with_response || !is_success(sora_parse_status_line(line, len));
#endif
  } else if (is_blank_line(line, len)) {
    curl_easy_getinfo(t->handle->easy, CURLINFO_RESPONSE_CODE, &t->status);
    t->header_block_ended = 1;
  } else if (!t->header_block_ended) {
    const char *name, *value, *colon = memchr(line, ':', len);
    size_t name_len, value_len;
#ifdef HAVE_HEADER_API
    if (colon == NULL || !may_keep(line, (size_t)(colon - line))) return len;
#else
    if (colon == NULL || (!t->keep_header_lines && !may_keep(line, (size_t)(colon - line)))) return len;
#endif
    if (sora_header_split(line, len, &name, &name_len, &value, &value_len)) {
      keep_header(t, name, name_len, value, value_len);
#ifndef HAVE_HEADER_API
      if (t->keep_header_lines) keep_line(t, name, name_len, value, value_len);
#endif
    }
  }
  return len;
}

/* ---- the response's body ---------------------------------------------------------------- */

/* JSON and error bodies are kept in the handle's buffer; an error body only for its message. */
static size_t keep_body(sora_transfer *t, const char *data, size_t len) {
  sora_buffer *b = &t->handle->response;
  size_t room = is_success(t->status) ? len : (b->len < MAX_ERROR_BODY ? MAX_ERROR_BODY - b->len : 0);
  if (!sora_buffer_append(b, data, len < room ? len : room)) {
    t->io_errno = ENOMEM;
    return 0;
  }
  return len;
}

/* Gives content to its destination; a Lua sink is run here, by the engine, once the
 * destination has accepted the answer. Returns 0 to abort the transfer. */
static int deliver(sora_transfer *t, const char *data, size_t len) {
  if (t->sink != SORA_SINK_FUNCTION) return sora_download_write(t, data, len) == len;
  if (!sora_download_accept(t)) return 0;
  return sora_transfer_sink(t, data, len);
}

/* A drive delivers content for a slice of time only: libcurl reads up to 100 buffers per
 * transfer in one curl_multi_perform, 12.8 MB at 128 KiB, which would hold the host's step(0)
 * for many milliseconds. A transfer whose slice is spent is paused, its chunk kept by libcurl,
 * and the next drive resumes it (client.c resume_paused). */
static int slice_spent(sora_transfer *t) {
  sora_client *c = t->client;
  if (c->slice_end <= 0 || sora_now() < c->slice_end) return 0;
  t->paused = 1;
  c->paused++;
  return 1;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  sora_transfer *t = ((sora_handle *)ud)->transfer;
  size_t len = size * n;
  if (!t->headers_read) read_framing(t);
  if (t->endpoint->result != SORA_RESULT_CONTENT || !is_success(t->status)) return keep_body(t, data, len);
  if (slice_spent(t)) return CURL_WRITEFUNC_PAUSE;
  if (!deliver(t, data, len)) return 0; /* aborts the transfer */
  t->received += (curl_off_t)len;
  if (t->has_progress && !report_progress(t)) return 0;
  return len;
}

/* ---- starting and ending attempts ---------------------------------------------------- */

/* Each option below is set only when it differs from what the handle's previous request set
 * (sora_handle): a retrieve after a retrieve sets its URL and nothing else. */

static void set_method(CURL *easy, sora_transfer *t) {
  const char *method = t->endpoint->method;
  int plain_get = !t->mime && !t->body && strcmp(method, "GET") == 0;
  if (plain_get && t->handle->plain_get) return;
  t->handle->plain_get = plain_get;
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, (void *)NULL);
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

/* Milliseconds this attempt may take: the per-attempt timeout, cut to what is left of the
 * call's deadline. Content has no per-attempt timeout: a large video may take longer than
 * any fixed limit; what must not pass is a stall (CURLOPT_LOW_SPEED_*). */
static long attempt_timeout_ms(const sora_transfer *t) {
  long ms = t->endpoint->result == SORA_RESULT_CONTENT ? 0 : t->timeout_ms;
  if (t->deadline_at > 0) {
    long left = (long)((t->deadline_at - sora_now()) * 1000);
    if (left < 1) left = 1;
    if (ms == 0 || left < ms) ms = left;
  }
  return ms;
}

static void set_limits(CURL *easy, sora_transfer *t) {
  long stall_s = t->endpoint->result == SORA_RESULT_CONTENT ? (t->client->stall_timeout_ms + 999) / 1000 : 0;
  long timeout_ms = attempt_timeout_ms(t);
  if (t->handle->timeout_ms != timeout_ms) {
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    t->handle->timeout_ms = timeout_ms;
  }
  if (t->handle->stall_s == stall_s) return; /* none for every request but downloads */
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, stall_s ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, stall_s);
  t->handle->stall_s = stall_s;
}

/* libcurl keeps the pointer, not a copy: a list at the same address is the list it has. */
static void set_header_list(CURL *easy, sora_handle *h, const struct curl_slist *list) {
  if (h->header_list == list) return;
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
  h->header_list = list;
}

/* The key goes only to the API's own origin: a redirect to storage elsewhere gets neither the
 * key nor the client's headers (a custom header may be a credential too). The key is an entry
 * of the prebuilt header lists (client.c), which the foreign list leaves out. */
static void set_credentials(CURL *easy, sora_transfer *t) {
  sora_client *c = t->client;
  int origin = t->foreign_origin ? 2 : 1;
  if (t->handle->origin_set != origin) { /* the same for every request to the API's origin */
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, t->foreign_origin ? CURLAUTH_NONE : CURLAUTH_BEARER);
    /* the base URL's userinfo, as libcurl uses it; never part of a URL string */
    curl_easy_setopt(easy, CURLOPT_USERNAME, t->foreign_origin ? NULL : c->base.user);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, t->foreign_origin ? NULL : c->base.password);
    t->handle->origin_set = origin;
  }
  set_header_list(easy, t->handle, t->foreign_origin ? c->headers[SORA_HEADERS_FOREIGN]
                                    : t->request_headers ? t->request_headers
                                                         : c->headers[t->headers]);
}

/* The callbacks, the same for every request of a handle, are set on its first; their data is
 * the handle, which says whose request it carries now (h->transfer). */
static void prepare_handle(sora_handle *h) {
  if (h->prepared) return;
  curl_easy_setopt(h->easy, CURLOPT_PRIVATE, (char *)h);
  curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h);
  curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, h);
  h->prepared = 1;
}

static void finish(lua_State *L, sora_transfer *t);

void sora_transfer_start(lua_State *L, sora_transfer *t) {
  CURL *easy = t->handle->easy;
  long fresh;
  t->aborted = 0;
  t->code = CURLE_OK;
  t->curl_message[0] = t->handle->errbuf[0] = '\0';
  t->started_at = sora_now();
  reset_response(t);
  if (t->endpoint->result == SORA_RESULT_CONTENT && !sora_download_begin_attempt(t)) {
    finish(L, t);
    return;
  }
  curl_easy_setopt(easy, CURLOPT_URL, sora_buffer_cstr(&t->handle->url));
  /* libcurl silently sends a request again when a reused connection dies before any answer:
   * each attempt of a create (billed) is one attempt, on a connection of its own, and whether
   * to send it again is decided after looking (sora_maybe_sent, lua/sora/reconcile.lua) */
  fresh = sora_is_create_type(t->endpoint) ? 1L : 0L;
  if (t->handle->fresh != fresh) {
    curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, fresh);
    t->handle->fresh = fresh;
  }
  set_method(easy, t);
  set_limits(easy, t);
  set_credentials(easy, t);
  prepare_handle(t->handle);
  t->handle->transfer = t;
  if (curl_multi_add_handle(t->client->multi, easy) != CURLM_OK) {
    t->code = CURLE_FAILED_INIT;
    finish(L, t);
    return;
  }
  t->state = SORA_STATE_RUNNING;
}

/* ---- redirects (content only: the video may be served from storage) ----------------- */

#define MAX_REDIRECTS 5

static int is_redirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static char *url_part(const char *url, CURLUPart what) {
  CURLU *u = curl_url();
  char *part = NULL;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK)
    curl_url_get(u, what, &part, what == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0);
  curl_url_cleanup(u);
  return part;
}

static int same_part(const char *a, const char *b, CURLUPart what) {
  char *pa = url_part(a, what), *pb = url_part(b, what);
  int same = pa && pb && strcmp(pa, pb) == 0;
  curl_free(pa);
  curl_free(pb);
  return same;
}

static int same_origin(const char *a, const char *b) {
  return same_part(a, b, CURLUPART_SCHEME) && same_part(a, b, CURLUPART_HOST) &&
         same_part(a, b, CURLUPART_PORT);
}

/* Points the transfer at the Location of a redirect; returns 0 when it must not be followed. */
static int follow_redirect(sora_transfer *t) {
  char *location = NULL;
  sora_buffer *url = &t->handle->url;
  if (t->endpoint->result != SORA_RESULT_CONTENT || !is_redirect(t->status) ||
      t->redirects >= MAX_REDIRECTS)
    return 0;
  curl_easy_getinfo(t->handle->easy, CURLINFO_REDIRECT_URL, &location);
  if (location == NULL || (strncmp(location, "http://", 7) != 0 && strncmp(location, "https://", 8) != 0))
    return 0;
  if (!t->foreign_origin) t->foreign_origin = !same_origin(location, t->client->base.prefix);
  sora_buffer_clear(url);
  if (!sora_buffer_appendstr(url, location)) return 0;
  t->redirects++;
  return 1;
}

/* ---- retries --------------------------------------------------------------------------- */

/* What the server asked to wait, in seconds: retry-after-ms when it parses (in whichever
 * order the headers came), else retry-after; -1 when neither says anything usable. */
double sora_transfer_server_delay(const sora_transfer *t) {
  return t->retry_after_ms_s != -1 ? t->retry_after_ms_s : t->retry_after_s;
}

/* A create whose answer was lost after it left may have made a video: the C core never sends
 * it again by itself; the Lua layer looks for the video first (lua/sora/reconcile.lua). */
static int lost_after_sending(sora_transfer *t) {
  long request_bytes = -1;
  sora_buffer *body = &t->handle->response;
  if (!sora_is_create_type(t->endpoint) || t->aborted || t->cancelled) return 0;
  curl_easy_getinfo(t->handle->easy, CURLINFO_REQUEST_SIZE, &request_bytes);
  return sora_maybe_sent(t->code, t->status, request_bytes, body->data, body->len);
}

static int should_retry(sora_transfer *t, double *delay) {
  double jitter = sora_rng_uniform(&t->client->rng);
  if (t->aborted || t->io_errno || t->bad_range || t->attempts > t->max_retries) return 0;
  if (t->maybe_sent) return 0;
  if (!sora_retryable(t->code, t->status, t->should_retry)) return 0;
  *delay = sora_retry_delay(sora_transfer_server_delay(t), t->attempts - 1, jitter);
  if (*delay < 0) return 0;
  return t->deadline_at <= 0 || sora_now() + *delay < t->deadline_at;
}

/* ---- logging ------------------------------------------------------------------------- */

/* The URL as a log line may show it: without userinfo, query or fragment, so that neither a
 * password nor a presigned redirect's signature is ever printed. NULL when it does not parse. */
static char *loggable_url(const char *url) {
  static const CURLUPart hidden[] = {CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS,
                                     CURLUPART_QUERY, CURLUPART_FRAGMENT};
  CURLU *u = curl_url();
  char *shown = NULL;
  if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) curl_url_set(u, hidden[i], NULL, 0);
    curl_url_get(u, CURLUPART_URL, &shown, 0);
  }
  curl_url_cleanup(u);
  return shown;
}

/* The line of an attempt, formatted into buf (snprintf's contract: the length it needs). */
static int format_attempt(char *buf, size_t size, const sora_transfer *t, const char *url,
                          int ms, const char *what) {
  if (t->code != CURLE_OK)
    return snprintf(buf, size, "sora: %s %s -> %s (attempt %d, %d ms)%s", t->endpoint->method, url,
                    curl_easy_strerror(t->code), t->attempts, ms, what);
  return snprintf(buf, size, "sora: %s %s -> %d (attempt %d, %d ms, %s)%s", t->endpoint->method, url,
                  (int)t->status, t->attempts, ms, t->request_id[0] ? t->request_id : "no request id",
                  what);
}

/* The line is made in C memory, not on the Lua stack: the engine is in the middle of this
 * transfer, and a Lua allocation here could run a finalizer that closes the client or cancels
 * the transfer under it (only the log function itself runs Lua, as a callback, where both
 * are refused). A Location may echo the key: redacted. */
static void log_attempt(lua_State *L, sora_transfer *t, int level, const char *what) {
  char *url = loggable_url(sora_buffer_cstr(&t->handle->url));
  const char *shown = url ? url : "(a URL that does not parse)";
  int ms = (int)((sora_now() - t->started_at) * 1000);
  int len = format_attempt(NULL, 0, t, shown, ms, what);
  size_t room = len < 0 ? 0 : (size_t)len + 1;
  /* each key of >= SORA_MIN_REDACTED_KEY bytes becomes SORA_REDACTED */
  size_t redacted_room = room + (room / SORA_MIN_REDACTED_KEY + 1) * sizeof SORA_REDACTED;
  char *line = room ? malloc(room) : NULL, *redacted = line ? malloc(redacted_room) : NULL;
  if (redacted != NULL) {
    format_attempt(line, room, t, shown, ms, what);
    sora_copy_redacted(redacted, redacted_room, line, room - 1, t->client->api_key);
    services(t)->log(L, t->client, level, redacted);
  }
  free(redacted);
  free(line);
  curl_free(url);
}

void sora_transfer_completed(lua_State *L, sora_transfer *t, CURLcode code) {
  double delay;
  curl_multi_remove_handle(t->client->multi, t->handle->easy);
  t->code = code;
  if (code != CURLE_OK) copy_value(t->curl_message, sizeof t->curl_message, t->handle->errbuf,
                                   strlen(t->handle->errbuf));
  else curl_easy_getinfo(t->handle->easy, CURLINFO_RESPONSE_CODE, &t->status);
  if (t->status == 416 && t->resume_from > 0) t->bad_range = 1; /* nothing there to resume */
  if (t->client->log_level >= SORA_LOG_DEBUG) log_attempt(L, t, SORA_LOG_DEBUG, "");
  if (code == CURLE_OK && follow_redirect(t)) {
    sora_transfer_start(L, t);
    return;
  }
  t->maybe_sent = lost_after_sending(t);
  if (should_retry(t, &delay)) {
    if (t->client->log_level >= SORA_LOG_INFO) {
      char what[48];
      snprintf(what, sizeof what, ", retrying in %d ms", (int)(delay * 1000));
      log_attempt(L, t, SORA_LOG_INFO, what);
    }
    t->attempts++;
    t->state = SORA_STATE_RETRY_WAIT;
    t->retry_at = sora_now() + delay;
    return;
  }
  finish(L, t);
}

/* ---- the end of a transfer ---------------------------------------------------------- */

/* A download is kept only when it is whole: a success status, no error, every byte announced,
 * and answers that add up (download.c checks a 206 against the first answer and its body). */
static int download_complete(sora_transfer *t) {
  if (t->code == CURLE_OK && !t->cancelled && !t->headers_read) read_framing(t); /* no body came */
  return t->code == CURLE_OK && !t->aborted && !t->io_errno && !t->cancelled &&
         is_success(t->status) && sora_download_whole(t);
}

static void free_mime(sora_transfer *t) {
  if (t->mime == NULL) return;
  curl_easy_setopt(t->handle->easy, CURLOPT_MIMEPOST, (void *)NULL);
  t->handle->plain_get = 0; /* libcurl's method is a POST again (set_method) */
  curl_mime_free(t->mime);
  t->mime = NULL;
}

static void finish(lua_State *L, sora_transfer *t) {
  sora_download_close(t, download_complete(t));
  free_mime(t);
  if (t->endpoint->result == SORA_RESULT_CONTENT) /* only a download sets a Range (download.c) */
    curl_easy_setopt(t->handle->easy, CURLOPT_RANGE, (void *)NULL);
  if (t->body) { /* the body may be collected */
    curl_easy_setopt(t->handle->easy, CURLOPT_POSTFIELDS, (void *)NULL);
    t->handle->plain_get = 0; /* that makes libcurl's method a POST, even for a dry run's
                               * request that was never sent (set_method) */
  }
  t->finished_at = sora_now();
  t->state = SORA_STATE_DONE;
  t->paused = 0;
  (void)L; /* the client lets go of it at the end of its drive (client.c) or right away */
}

void sora_transfer_unlink(sora_transfer *t) {
  sora_client *c = t->client;
  if (c == NULL) return;
  if (t->handle) c->services->release(c, t->handle);
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
  t->cancelled = 1; /* its handle (and an unread response in it) goes back with the client */
  sora_transfer_unlink(t);
}

/* ---- creation and the Lua methods --------------------------------------------------- */

sora_transfer *sora_transfer_new(lua_State *L, sora_client *c, const sora_endpoint *e,
                                 int client_idx) {
  sora_transfer *t;
  client_idx = sora_absindex(L, client_idx);
  t = sora_newuserdata_slots(L, sizeof *t, SORA_TRANSFER_SLOTS);
  memset(t, 0, sizeof *t);
  t->endpoint = e;
  t->sink = SORA_SINK_STRING;
  t->max_retries = c->max_retries;
  t->timeout_ms = c->timeout_ms;
  t->deadline_at = c->deadline_ms > 0 ? sora_now() + (double)c->deadline_ms / 1000.0 : 0;
  t->headers = SORA_HEADERS_PLAIN;
  luaL_getmetatable(L, SORA_TRANSFER);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, client_idx);
  sora_set_slot(L, -2, SORA_SLOT_CLIENT);
  t->handle = c->services->acquire(c, L);
  t->client = c;
  t->next = c->transfers;
  if (c->transfers) c->transfers->prev = t;
  c->transfers = t;
  reset_response(t);
  return t;
}

void sora_transfer_begin(lua_State *L, int transfer_idx) {
  sora_transfer *t = lua_touserdata(L, transfer_idx); /* made by sora_transfer_new: no check */
  transfer_idx = sora_absindex(L, transfer_idx);
  anchor(L, t, transfer_idx);
  t->attempts = 1;
  t->called_at = sora_now();
  sora_transfer_start(L, t);
  if (t->state == SORA_STATE_DONE) unanchor(L, t, transfer_idx); /* it could not start */
  if (t->client && t->client->loop) { /* a watching host learns of the new timer (loop.c) */
    sora_push_slot(L, transfer_idx, SORA_SLOT_CLIENT);
    services(t)->tell_host(L, -1);
    lua_pop(L, 1);
  }
}

/* The transfer's client, pushed, when `call` may drive it now; raises otherwise. */
static sora_client *push_usable_client(lua_State *L, sora_transfer *t, int transfer_idx,
                                       const char *call) {
  sora_push_slot(L, transfer_idx, SORA_SLOT_CLIENT);
  sora_check_usable(L, t->client, call);
  return t->client;
}

/* Blocks, driving every transfer of the client, until t (at transfer_idx) is done. */
static void drive_until_done(lua_State *L, sora_transfer *t, int transfer_idx) {
  transfer_idx = sora_absindex(L, transfer_idx);
  if (t->client) { /* refused from a callback even when done: the same call, the same rule */
    push_usable_client(L, t, transfer_idx, "wait");
    lua_pop(L, 1);
  }
  while (t->state != SORA_STATE_DONE && t->client != NULL) { /* a detached one is done */
    double wait = 1.0;
    if (t->state == SORA_STATE_RETRY_WAIT) wait = t->retry_at - sora_now();
    push_usable_client(L, t, transfer_idx, "wait"); /* client */
    services(t)->drive(L, -1, wait > 0 ? wait : 0);
    lua_pop(L, 1);
    sora_interrupt_point(L); /* Ctrl-C under lua.c raises here (interrupt.c) */
  }
}

static int result_pinned(lua_State *L) { return sora_transfer_result(L, 2); }

int sora_transfer_wait_result(lua_State *L, int transfer_idx) {
  drive_until_done(L, lua_touserdata(L, transfer_idx), transfer_idx);
  return sora_transfer_take_result(L, transfer_idx); /* nothing else holds the transfer */
}

/* The result of t, the transfer at index 1, its client (if any) pinned while the response is
 * turned into Lua values: a finalizer run by an allocation there cannot free the handle that
 * holds the response. */
static int pinned_result(lua_State *L, sora_transfer *t) {
  if (t->client == NULL) return sora_transfer_result(L, 1);
  lua_settop(L, 1);
  sora_push_slot(L, 1, SORA_SLOT_CLIENT); /* transfer, client */
  lua_insert(L, 1);                       /* client, transfer */
  return services(t)->pinned_call(L, 1, result_pinned);
}

/* __gc runs for every transfer: the metatable is its upvalue, not looked up by name. */
static int transfer_gc(lua_State *L) {
  sora_transfer *t = lua_touserdata(L, 1);
  int is_transfer = t != NULL && lua_getmetatable(L, 1) && lua_rawequal(L, -1, lua_upvalueindex(1));
  if (!is_transfer) return luaL_argerror(L, 1, "sora.Transfer expected");
  if (t->client) sora_transfer_detach(L, t);
  sora_buffer_free(&t->content);
  sora_buffer_free(&t->header_lines);
  curl_slist_free_all(t->request_headers);
  t->request_headers = NULL;
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

static int transfer_result(lua_State *L) {
  return pinned_result(L, luaL_checkudata(L, 1, SORA_TRANSFER));
}

static int transfer_wait(lua_State *L) {
  sora_transfer *t = luaL_checkudata(L, 1, SORA_TRANSFER); /* checked once: 380 instructions */
  drive_until_done(L, t, 1);
  return pinned_result(L, t);
}

static int transfer_cancel(lua_State *L) {
  sora_transfer *t = luaL_checkudata(L, 1, SORA_TRANSFER);
  if (t->client == NULL) return 0;
  push_usable_client(L, t, 1, "cancel"); /* transfer, client */
  sora_transfer_abort(L, t);
  unanchor(L, t, 1);
  services(t)->tell_host(L, 2); /* a watching host stops watching its socket (loop.c) */
  return 0;
}

/* transfer:_notify(): a task awaits this transfer; when it ends, the client queues it for the
 * scheduler (notify_waiter in client.c). */
static int transfer_notify(lua_State *L) {
  sora_transfer *t = luaL_checkudata(L, 1, SORA_TRANSFER);
  if (t->state != SORA_STATE_DONE) t->notify = 1;
  return 0;
}

/* transfer:_resend_budget(): what a create's next attempt may use, for reconcile.lua, which
 * sends it again after looking: its idempotency key, the retries left of the call's
 * max_retries, the seconds left of its deadline (nil for none). */
static int transfer_resend_budget(lua_State *L) {
  sora_transfer *t = luaL_checkudata(L, 1, SORA_TRANSFER);
  lua_pushstring(L, t->idempotency_key);
  lua_pushinteger(L, t->max_retries - (t->attempts - 1));
  if (t->deadline_at > 0) lua_pushnumber(L, t->deadline_at - sora_now());
  else lua_pushnil(L);
  return 3;
}

static int transfer_tostring(lua_State *L) {
  sora_transfer *t = luaL_checkudata(L, 1, SORA_TRANSFER);
  static const char *const states[] = {"new", "running", "waiting to retry", "done"};
  lua_pushfstring(L, "sora.Transfer (%s, %s)", t->endpoint->name, states[t->state]);
  return 1;
}

static const luaL_Reg transfer_methods[] = {
    {"done", transfer_done}, {"result", transfer_result}, {"wait", transfer_wait},
    {"cancel", transfer_cancel}, {"_notify", transfer_notify},
    {"_resend_budget", transfer_resend_budget}, {NULL, NULL}};

int sora_open_transfer(lua_State *L) {
  luaL_newmetatable(L, SORA_TRANSFER);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, transfer_gc, 1);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, transfer_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_newtable(L);
  sora_setfuncs(L, transfer_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  return 0;
}
