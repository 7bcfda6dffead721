/* Shared declarations of the C core, sora.core. */
#ifndef SORA_H
#define SORA_H

#include <stdio.h>
#include <sys/types.h>

#include "libcurl.h"

#include "buffer.h"
#include "compat.h"
#include "retry.h"

#define SORA_VERSION "0.1.0"

/* Metatable names: also what "bad argument" messages call the types. */
#define SORA_CLIENT "sora.Client"
#define SORA_VIDEO "sora.Video"
#define SORA_TRANSFER "sora.Transfer"
#define SORA_ERROR "sora.Error"

/* ---- endpoints (endpoints.c) ---------------------------------------------------------- */

typedef enum sora_result {
  SORA_RESULT_VIDEO,
  SORA_RESULT_PAGE,
  SORA_RESULT_DELETED,
  SORA_RESULT_CHARACTER,
  SORA_RESULT_CONTENT /* bytes: a string, a file or a sink */
} sora_result;

typedef enum sora_field_kind {
  SORA_FIELD_TEXT,      /* a string */
  SORA_FIELD_SECONDS,   /* a string, or an integer sent as a string */
  SORA_FIELD_INTEGER,   /* an integer (query parameters) */
  SORA_FIELD_IMAGE_REF, /* a path, {path}, {data, filename, content_type}, {image_url}, {file_id} */
  SORA_FIELD_VIDEO_REF, /* an id, a path, {id}, {path}, {data, filename, content_type} */
  SORA_FIELD_VIDEO_FILE, /* a path, {path}, {data, filename, content_type} */
  SORA_FIELD_FUNCTION,  /* a Lua function (local options, never sent) */
  SORA_FIELD_NUMBER,    /* a number (local options) */
  SORA_FIELD_BOOLEAN    /* a boolean (local options) */
} sora_field_kind;

typedef struct sora_field {
  const char *name;
  sora_field_kind kind;
  int required;
} sora_field;

typedef enum sora_headers_kind {
  SORA_HEADERS_PLAIN, /* GET and DELETE */
  SORA_HEADERS_JSON,  /* a JSON body */
  SORA_HEADERS_MIME,  /* a multipart body */
  SORA_HEADERS_BINARY, /* Accept: application/binary for content */
  SORA_HEADERS_FOREIGN, /* a redirect to another origin: no credentials, no custom headers */
  SORA_HEADERS_KINDS
} sora_headers_kind;

typedef struct sora_endpoint {
  const char *name;        /* the public method, named in messages */
  const char *method;      /* HTTP method */
  const char *path;        /* after the base URL; "%s" stands for the encoded id */
  const sora_field *body;  /* body fields, or NULL */
  const sora_field *query; /* query fields, or NULL */
  sora_result result;
} sora_endpoint;

/* ---- the client (client.c) -------------------------------------------------------------- */

typedef struct sora_transfer sora_transfer;

/* A reusable easy handle with its buffers: kept between requests so that neither the
 * handle, its connection, nor its memory is created again for each call. */
typedef struct sora_handle {
  CURL *easy;
  sora_buffer url;
  sora_buffer response;
  char errbuf[CURL_ERROR_SIZE];
  struct sora_handle *next_idle;
  /* the engine's (transfer.c): options it sets once per handle, or again only when they change */
  sora_transfer *transfer; /* whose request it carries: its callbacks' data is the handle */
  int prepared;            /* the callbacks are set */
  int origin_set;          /* credentials last set for: 0 none yet, 1 the API's origin, 2 another */
  long stall_s;            /* the stall limit last set, in seconds (0: none, libcurl's default) */
  long timeout_ms;         /* CURLOPT_TIMEOUT_MS last set (0: none, libcurl's default) */
  long fresh;              /* CURLOPT_FRESH_CONNECT last set */
  int plain_get;           /* the method last set is GET without a body */
  const struct curl_slist *header_list; /* CURLOPT_HTTPHEADER last set */
} sora_handle;

/* The base URL taken apart (url.c): what every request URL starts and ends with, and the
 * userinfo, which libcurl gets as options and no URL string ever holds. */
typedef struct sora_base_url {
  char *prefix;          /* scheme://host[:port][/path], no userinfo, query or trailing '/' */
  char *query;           /* without '?', NULL for none */
  char *user, *password; /* decoded userinfo, NULL for none */
} sora_base_url;

typedef struct sora_client {
  CURLM *multi;
  const struct sora_services *services; /* what the engine may ask of it (below) */
  sora_handle *idle;              /* free list of handles */
  long handles;                   /* handles made: the most transfers ever in flight at once */
  sora_transfer *transfers;       /* every live transfer, so close can detach them */
  struct curl_slist *headers[SORA_HEADERS_KINDS];
  sora_base_url base;
  char *api_key;
  char *user_agent;
  char *ca_file;                  /* NULL for the system's bundle */
  /* the proxy options; NULL: libcurl reads the environment ("" for proxy = false: none) */
  char *proxy, *proxy_user, *proxy_password, *no_proxy;
  int proxy_tunnel;               /* CONNECT even to http:// targets */
  int tls_verify;
  long timeout_ms, connect_timeout_ms, stall_timeout_ms, deadline_ms;
  int max_retries;
  int log_level;                  /* SORA_LOG_* */
  int has_log_function;           /* the callable is the user value's "log" */
  int running;                    /* transfers inside the multi handle */
  int in_callback;                /* a Lua callback of this client is running: no multi calls */
  int pinned;                     /* C calls using the client now (sora_client_pinned_call) */
  int close_pending;              /* closed while pinned: done when the last pin goes */
  struct sora_released *released; /* replaced files whose space later drives give back */
  sora_rng rng;                   /* retry jitter */
  double slice_end;               /* content after this (sora_now) waits for the next drive */
  int paused;                     /* transfers this drive paused at the end of their slice */
  /* While the client drives its transfers: the state doing it, and where on its stack the
   * callback runner and the client's user value sit (callbacks reach Lua values through them:
   * nothing of the client is anchored in the registry, so a dropped client is collected). */
  lua_State *L;
  int callback_base;              /* runner at callback_base, user value at callback_base + 1 */
  struct sora_loop *loop;         /* libcurl's socket interface (loop.c); NULL until a watch */
  /* Ctrl-C (interrupt.c) during a blocking call (sora_client_blocking_call): armed at its first
   * wait and disarmed when it returns, not around each of its polls */
  struct {
    int shared;                   /* a blocking call is under way: its waits share one arming */
    int armed;                    /* its first wait armed it */
    int fd;                       /* the descriptor sora_interrupt_arm gave */
  } wake;
} sora_client;

enum { SORA_LOG_NONE, SORA_LOG_INFO, SORA_LOG_DEBUG };

/* Calls fn with the stack's values as arguments, protected, the client at client_idx pinned:
 * a close meanwhile (by a finalizer, which may run at any allocation) waits until fn has
 * returned. Returns fn's results; raises what fn raised. */
SORA_HIDDEN int sora_client_pinned_call(lua_State *L, int client_idx, lua_CFunction fn);
/* sora_client_pinned_call for a call that blocks until its transfer is done: Ctrl-C is armed
 * once for all its waits (and disarmed however it ends), not around each poll. */
SORA_HIDDEN int sora_client_blocking_call(lua_State *L, int client_idx, lua_CFunction fn);
/* A Lua callback of a transfer (or the log function) for the client's runner. */
typedef struct sora_callback {
  sora_transfer *t;          /* NULL for the client's log function */
  int slot;                  /* the transfer's callable: SORA_SLOT_SINK or SORA_SLOT_PROGRESS */
  const char *text;          /* the sink's chunk, or the log line; NULL for progress */
  size_t text_len;
  lua_Integer received, total; /* progress; total -1 when unknown */
  const char *level;         /* the log line's level */
} sora_callback;
/* The message handler of every callback (the host's too): a message gets the traceback of the
 * user's function, unless a hook raised it; any other value goes on as it is. */
SORA_HIDDEN int sora_callback_traceback(lua_State *L);
SORA_HIDDEN int sora_open_client(lua_State *L);

/* What the engine (transfer.c) may ask of its client, and nothing else of client.c: the engine
 * never depends on how the client is built, and the client is the only one that calls down
 * into the engine's insides. client.c fills it; a client's `services` points at it. */
typedef struct sora_services {
  /* a handle from the pool, or a new one (raises when libcurl cannot make one safely); back */
  sora_handle *(*acquire)(sora_client *c, lua_State *L);
  void (*release)(sora_client *c, sora_handle *h);
  /* runs a Lua callback protected, the client marked as inside a callback (sora_check_usable
   * refuses it then); never raises; 1 when the callable succeeded */
  int (*callback)(sora_client *c, sora_callback *cb);
  /* a log line at a level (SORA_LOG_*): to the log function, else stderr */
  void (*log)(lua_State *L, sora_client *c, int level, const char *line);
  /* pushes the table that keeps the client's running transfers alive (pointer -> transfer) */
  void (*push_transfers)(lua_State *L, int client_idx);
  /* one turn of the client's loop, waiting at most wait_s (the caller checked it is usable) */
  int (*drive)(lua_State *L, int client_idx, double wait_s);
  int (*pinned_call)(lua_State *L, int client_idx, lua_CFunction fn);
  /* a watching host hears of what changed (loop.c sora_loop_flush) */
  void (*tell_host)(lua_State *L, int client_idx);
} sora_services;

/* ---- the host's event loop (loop.c) ------------------------------------------------------ */

/* Once client:watch has been called the client runs on libcurl's socket interface for the rest
 * of its life: libcurl's socket and timer functions only record what changed, and
 * sora_loop_flush tells the host, outside libcurl, at the end of each call that drove it. */
typedef struct sora_loop sora_loop;
/* The client's own turn on a watched client (step, blocking calls): poll()s its sockets (and
 * wake_fd, unless -1) at most timeout_ms, acts on them and the due timeouts. Returns 0 when it was never watched (it runs
 * on curl_multi_perform then). */
SORA_HIDDEN int sora_loop_run(sora_client *c, int timeout_ms, int wake_fd);
SORA_HIDDEN void sora_loop_action(sora_client *c, curl_socket_t fd, int ev_bitmask);
SORA_HIDDEN void sora_loop_flush(lua_State *L, int client_idx);
/* A transfer a task awaits has ended (client.c queues it): the host is asked to come back now. */
SORA_HIDDEN void sora_loop_task_ready(sora_client *c);
SORA_HIDDEN void sora_loop_close(lua_State *L, sora_client *c, int client_idx);
/* One socket action (client.c) on the client at client_idx, then what a turn of the loop does
 * after it: finished transfers collected, awaiting tasks queued, the host told. */
SORA_HIDDEN int sora_client_act(lua_State *L, int client_idx, curl_socket_t fd, int ev_bitmask);
SORA_HIDDEN void sora_open_loop(lua_State *L, int methods_idx);

/* ---- Ctrl-C during a wait (interrupt.c) ------------------------------------------------ */

/* Around a wait that may block: arm returns a descriptor the wait polls too (readable once a
 * SIGINT came), or -1 when the host has no SIGINT handler of its own; disarm takes it back. */
SORA_HIDDEN int sora_interrupt_arm(void);
SORA_HIDDEN void sora_interrupt_disarm(int fd);
/* After a wait on an armed descriptor that stays armed: reads what a SIGINT wrote, if one
 * came, so that the next wait blocks again. */
SORA_HIDDEN void sora_interrupt_drain(int fd);
/* Between two waits of a C loop that blocks: lets a hook a signal handler set (lua.c's, which
 * raises "interrupted!") run, by a call, as it would at the program's next call. May raise. */
SORA_HIDDEN void sora_interrupt_point(lua_State *L);

/* ---- transfers (transfer.c) ------------------------------------------------------------- */

typedef enum sora_sink_kind {
  SORA_SINK_STRING, /* the body is kept in memory and returned */
  SORA_SINK_FILE,   /* streamed to a temporary file, renamed into place on success */
  SORA_SINK_FUNCTION /* each chunk is given to a Lua function */
} sora_sink_kind;

typedef enum sora_state {
  SORA_STATE_NEW,
  SORA_STATE_RUNNING,
  SORA_STATE_RETRY_WAIT,
  SORA_STATE_DONE
} sora_state;

struct sora_transfer {
  sora_client *client;             /* NULL once the client is closed */
  sora_handle *handle;             /* NULL when not holding one */
  const sora_endpoint *endpoint;
  sora_transfer *prev, *next;      /* in client->transfers */
  curl_mime *mime;
  const char *body;                /* JSON body, anchored in the user value */
  size_t body_len;
  sora_headers_kind headers;
  sora_state state;
  int attempts;
  int max_retries;
  long timeout_ms;                 /* per attempt */
  double deadline_at;              /* monotonic seconds for the whole call, 0 for none */
  double retry_at;                 /* monotonic seconds */
  double started_at;               /* of the current attempt */
  int redirects;
  int foreign_origin;              /* redirected away from the API's origin */
  /* outcome of the last attempt */
  CURLcode code;
  long status;
  int aborted;                     /* a callback raised */
  int cancelled;                   /* cancelled, or its client closed */
  int anchored;                    /* in its client's user value: kept alive while it runs */
  int notify;                      /* a task awaits it: queued when it ends (transfer:_notify) */
  int paused;                      /* its content slice was spent: the next drive resumes it */
  char curl_message[CURL_ERROR_SIZE];
  /* response headers worth keeping */
  char request_id[96];
  char content_type[96];
  long poll_after_ms;              /* -1 when absent */
  double retry_after_s;            /* retry-after, -1 when absent or unusable */
  double retry_after_ms_s;         /* retry-after-ms in seconds, preferred; -1 likewise */
  int should_retry;                /* -1 absent, 0 false, 1 true */
  curl_off_t content_length;       /* -1 when unknown */
  /* where the body goes */
  sora_sink_kind sink;
  int has_progress;
  FILE *file;
  char *path, *temp_path;
  int dir_fd;                      /* the directory the temporary file was made in (with file) */
  const char *temp_name;           /* temp_path's last component, in dir_fd */
  sora_buffer content;             /* the body of a SORA_SINK_STRING download */
  curl_off_t received;             /* bytes delivered to the destination, across attempts */
  curl_off_t resume_from;          /* the Range start of this attempt, 0 for none */
  curl_off_t range_start;          /* from Content-Range, -1 when absent */
  int checked_start;               /* the first bytes of this attempt have been checked */
  int bad_range;                   /* the server could not resume where we stopped */
  int io_errno;
  /* the integrity of responses and files (download.c) */
  int headers_read;                /* this response's headers have been read */
  int header_block_ended;          /* its blank line came: what follows are trailers */
  curl_off_t range_end, range_total; /* from Content-Range, -1 when absent ("*" total too) */
  curl_off_t expected_total;       /* the whole body's size, from the first answer; -1 unknown */
  const char *invalid;             /* why the answer cannot be kept (static text), or NULL */
  int not_regular;                 /* the target exists and is not a regular file */
  int durable;                     /* fsync the file before the rename, the directory after */
  /* the raw response (response.c), asked for by the per-call option with_response */
  int with_response;
  /* create-type requests (idempotency.c): the client's headers and the call's Idempotency-Key;
   * the last attempt's answer was lost after the request left (sora_maybe_sent) */
  struct curl_slist *request_headers;
  char idempotency_key[256];
  int maybe_sent;
  double called_at, finished_at;   /* monotonic: the first attempt's start, the call's end */
  int keep_header_lines;           /* without curl_easy_header: this response's lines are kept */
  sora_buffer header_lines;        /* then "name:value\n" each, for with_response or an error */
};

SORA_HIDDEN sora_transfer *sora_transfer_new(lua_State *L, sora_client *c,
                                             const sora_endpoint *e, int client_idx);
/* transfer_idx holds a transfer that sora_transfer_new made: it is not checked again. */
SORA_HIDDEN void sora_transfer_begin(lua_State *L, int transfer_idx);
/* What a transfer keeps alive, in its numbered slots (sora_push_slot, sora_set_slot): the
 * client, the JSON text curl points into, the sink and on_progress callables, what a callback
 * raised (nil included) and that it did, and the outcome: result, err and that it is known. */
enum {
  SORA_SLOT_CLIENT = 1, SORA_SLOT_BODY, SORA_SLOT_SINK, SORA_SLOT_PROGRESS, SORA_SLOT_RAISE,
  SORA_SLOT_RAISED, SORA_SLOT_RESULT, SORA_SLOT_ERR, SORA_SLOT_DONE,
  SORA_TRANSFER_SLOTS = SORA_SLOT_DONE
};
/* Gives a chunk of content to the transfer's sink; 0 when it raised (the transfer aborts). */
SORA_HIDDEN int sora_transfer_sink(sora_transfer *t, const char *data, size_t len);
SORA_HIDDEN void sora_transfer_unlink(sora_transfer *t);
SORA_HIDDEN double sora_transfer_server_delay(const sora_transfer *t);
SORA_HIDDEN void sora_transfer_start(lua_State *L, sora_transfer *t);
SORA_HIDDEN void sora_transfer_completed(lua_State *L, sora_transfer *t, CURLcode code);
SORA_HIDDEN void sora_transfer_abort(lua_State *L, sora_transfer *t);
SORA_HIDDEN void sora_transfer_detach(lua_State *L, sora_transfer *t);
/* transfer_idx holds a transfer its caller has checked (luaL_checkudata). */
SORA_HIDDEN int sora_transfer_result(lua_State *L, int transfer_idx);
/* sora_transfer_result for a transfer nothing else can reach, whose result is read once: the
 * values are not kept in its slots. */
SORA_HIDDEN int sora_transfer_take_result(lua_State *L, int transfer_idx);
/* transfer:wait() for a transfer sora_transfer_new made, its client pinned by the caller:
 * drives the client until it is done, then pushes its result (value, err). */
SORA_HIDDEN int sora_transfer_wait_result(lua_State *L, int transfer_idx);
/* Calls fn for each header of the final response, in the order they came (no trailers, no
 * 1xx, no proxy CONNECT, never the request's own); fn may raise. */
typedef void (*sora_header_fn)(lua_State *L, const char *name, size_t name_len,
                               const char *value, size_t value_len, void *ud);
SORA_HIDDEN void sora_transfer_each_header(lua_State *L, sora_transfer *t, sora_header_fn fn, void *ud);
SORA_HIDDEN int sora_open_transfer(lua_State *L);
SORA_HIDDEN double sora_now(void);

/* ---- content destinations (download.c) ------------------------------------------------ */

/* The engine (transfer.c) drives a destination through these and nothing else: a destination
 * never calls the engine (a Lua sink is run by the engine itself, after sora_download_accept). */
SORA_HIDDEN int sora_download_open(sora_transfer *t, const char *path);
SORA_HIDDEN const char *sora_download_error(const sora_transfer *t); /* why open or a write failed */
SORA_HIDDEN int sora_download_begin_attempt(sora_transfer *t);
SORA_HIDDEN int sora_download_accept(sora_transfer *t);
SORA_HIDDEN size_t sora_download_write(sora_transfer *t, const char *data, size_t len);
SORA_HIDDEN curl_off_t sora_download_total(const sora_transfer *t);
SORA_HIDDEN int sora_download_whole(sora_transfer *t);
SORA_HIDDEN void sora_download_close(sora_transfer *t, int keep);
SORA_HIDDEN const char *sora_download_check(const char *path); /* NULL: a download could write it */
/* fsync of the directory holding path (download.c): a new name survives a crash; 0 on failure */
SORA_HIDDEN int sora_sync_directory(const char *path);
/* A replaced file, unlinked but still open, whose blocks are given back a slice at a time. */
typedef struct sora_released {
  int fd;
  off_t size;
  struct sora_released *next;
} sora_released;
/* Gives back at most `slice` bytes of the replaced files' space (all of it when slice < 0). */
SORA_HIDDEN void sora_download_release(sora_released **list, off_t slice);

/* ---- arguments (args.c) ------------------------------------------------------------- */

/* Every C argument check raises "bad argument #N to 'NAME' (...)" at the program's line. */
SORA_HIDDEN SORA_NORETURN int sora_raise(lua_State *L, const char *fmt, ...);
SORA_HIDDEN int sora_set_lua_dir(lua_State *L);    /* core._lua_dir */
SORA_HIDDEN int sora_raise_message(lua_State *L);  /* core._raise */
SORA_HIDDEN SORA_NORETURN int sora_bad_argument(lua_State *L, const char *fname, int arg,
                                                const char *fmt, ...);
/* The same for an endpoint, its arguments numbered as the public method counts them. */
SORA_HIDDEN SORA_NORETURN int sora_arg_error(lua_State *L, const sora_endpoint *e, int arg,
                                             const char *fmt, ...);
/* The known name nearest to a misspelt one, for "unknown option 'promt' (did you mean
 * 'prompt'?)": consider each known name, then sora_did_you_mean formats the hint. Near means
 * at most two edits (insert, delete, replace, swap two neighbours), and at most a third of the
 * longer name; ties go to the name first in byte order. lua/sora/args.lua has the same rule. */
typedef struct sora_nearest {
  const char *name;      /* the misspelt name */
  const char *best;      /* the nearest known name so far, or NULL */
  int distance;
} sora_nearest;
SORA_HIDDEN void sora_nearest_init(sora_nearest *n, const char *name);
SORA_HIDDEN void sora_nearest_consider(sora_nearest *n, const char *known);
/* " (did you mean 'x'?)" into buf, or "" when no known name is near. */
SORA_HIDDEN const char *sora_did_you_mean(const sora_nearest *n, char *buf, size_t size);
/* Raises unless `call` may run now: the client is open and no callback of it is running. */
SORA_HIDDEN int sora_check_usable(lua_State *L, sora_client *c, const char *call);
/* Replaces the options at params (a table or nil) with a plain copy of the fields the
 * endpoint and `local` know, each read once and checked; raises for unknown names, wrong
 * types, missing required fields. Later reads use the copy, which anchors every value. */
SORA_HIDDEN void sora_read_options(lua_State *L, const sora_endpoint *e, const sora_field *local,
                                   int params);
SORA_HIDDEN int sora_is_file_value(lua_State *L, int i, sora_field_kind kind);

/* ---- URLs (url.c) ------------------------------------------------------------------ */

/* Parses base_url (origin names where it came from, for the message); raises for what cannot
 * work: no host, a fragment, a scheme other than http and https. */
SORA_HIDDEN void sora_base_url_parse(lua_State *L, const char *text, const char *origin,
                                     sora_base_url *base);
SORA_HIDDEN void sora_base_url_free(sora_base_url *base);
/* Adds name=value (escaped) to the query every request ends with; an existing parameter of
 * that name is replaced when `replace`, else kept (and value ignored). */
SORA_HIDDEN void sora_base_url_set_param(lua_State *L, sora_base_url *base, const char *name,
                                         const char *value, int replace);
SORA_HIDDEN void sora_url_build(lua_State *L, sora_transfer *t, const char *id, size_t id_len,
                                int params);
SORA_HIDDEN void sora_url_append_escaped(lua_State *L, sora_buffer *b, const char *s, size_t n);

/* ---- request bodies (body.c, multipart.c) ----------------------------------------------- */

SORA_HIDDEN void sora_encode_body(lua_State *L, sora_transfer *t, int transfer_idx, int params_idx);
SORA_HIDDEN void sora_push_text(lua_State *L, int value);
SORA_HIDDEN void sora_mime_add_file(lua_State *L, sora_transfer *t, const sora_field *f, int value_idx);
SORA_HIDDEN const char *sora_sniff_type(const unsigned char *bytes, size_t n); /* media.c */
SORA_HIDDEN const char *sora_media_extension(const char *type);
/* create's local check (reference.c): 1 when the file reference f in the options at params
 * fits the requested size or cannot be judged (or check_reference = false); else 0 with nil
 * and the API's bad_request error pushed. */
SORA_HIDDEN int sora_reference_fits(lua_State *L, const sora_field *f, int params);

/* ---- values (marshal.c, video.c, error.c, json.c) ---------------------------------------- */

SORA_HIDDEN int sora_json_try_decode(lua_State *L, const char *s, size_t n); /* pushes value or message */
SORA_HIDDEN void sora_json_encode(lua_State *L, int i); /* pushes the JSON text */
SORA_HIDDEN int sora_open_json(lua_State *L);

/* Replaces nothing: pushes the typed value of a decoded response and returns 1, or pushes a
 * message saying what is wrong with it and returns 0. */
SORA_HIDDEN int sora_marshal(lua_State *L, sora_result kind, int value_idx, int client_idx,
                             long poll_after_ms);
SORA_HIDDEN void sora_open_marshal(lua_State *L);
/* The known fields of a Video: [i] = a name, [name] = its kind (0 for a field sora does not
 * know), for sora_shape_field. */
SORA_HIDDEN void sora_push_video_fields(lua_State *L);
SORA_HIDDEN int sora_shape_field(lua_State *L, int kind);
/* JSON null (cjson.null): what a Video handle never gives (video.c). */
SORA_HIDDEN int sora_is_null(lua_State *L, int idx);
SORA_HIDDEN void sora_push_video(lua_State *L, int fields_idx, int client_idx, int meta_idx,
                                 long poll_after_ms);
SORA_HIDDEN int sora_open_video(lua_State *L);
SORA_HIDDEN int sora_open_endpoints(lua_State *L);
/* idempotency keys (idempotency.c): create-type endpoints are the POSTs */
SORA_HIDDEN int sora_is_create_type(const sora_endpoint *e);
SORA_HIDDEN void sora_set_idempotency_key(lua_State *L, sora_transfer *t, int params);
SORA_HIDDEN int sora_push_random_key(lua_State *L); /* core._random_key() */
/* webhooks (webhooks.c): HMAC-SHA256, base64, constant-time equality from libcrypto */
SORA_HIDDEN int sora_open_webhooks(lua_State *L);
/* a batch's journal (journal.c): durable appends, SHA-256 of files, Videos from records;
 * sets core._append_durable, _sha256_file, _sha256, _video on the table on top */
SORA_HIDDEN void sora_open_journal(lua_State *L);
/* 2n lower-case hex digits of n bytes into out, no NUL added (journal.c) */
SORA_HIDDEN void sora_hex_encode(const unsigned char *bytes, size_t n, char *out);

SORA_EXPORT int luaopen_sora_core(lua_State *L);
/* curl_global_init, once per Lua state, before its first client (`done`: a boolean upvalue) */
SORA_HIDDEN void sora_init_curl(lua_State *L, int done);

SORA_HIDDEN void sora_push_error(lua_State *L, const char *kind, long status, const char *message);
/* The raw response (response.c): the table with_response returns beside a value, and the same
 * fields (headers, elapsed) on the error object at err_idx. */
SORA_HIDDEN void sora_push_response(lua_State *L, sora_transfer *t);
SORA_HIDDEN void sora_add_response_fields(lua_State *L, sora_transfer *t, int err_idx);
SORA_HIDDEN void sora_push_curl_code(lua_State *L, CURLcode code); /* "COULDNT_CONNECT" */

/* The client's key, wherever a server echoes it: every string that came from the server is
 * redacted before it is cut, stored or shown. Keys shorter than the minimum are left alone:
 * replacing "k" everywhere would garble every message. */
#define SORA_MIN_REDACTED_KEY 8
#define SORA_REDACTED "[redacted key]"
SORA_HIDDEN int sora_has_key(const char *s, size_t len, const char *key);
SORA_HIDDEN void sora_copy_redacted(char *dest, size_t size, const char *value, size_t len,
                                    const char *key);
SORA_HIDDEN const char *sora_push_redacted(lua_State *L, const char *s, size_t len, const char *key);
SORA_HIDDEN void sora_redact_tree(lua_State *L, int value_idx, const char *key); /* marshal.c */
SORA_HIDDEN const char *sora_error_kind(long status);
SORA_HIDDEN int sora_open_error(lua_State *L);

#endif
