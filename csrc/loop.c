/* The host's event loop drives the client: libcurl's socket interface.
 *
 *   client:watch(on_socket, on_timer [, on_unwatch])
 *     on_socket(fd, readable, writable): watch fd for these (both false: stop watching it)
 *     on_timer(seconds): call client:timeout_due() once, that many seconds from now, in place
 *                        of any earlier timer; on_timer(nil): no timer
 *     on_unwatch(): the watch ended (client:unwatch() or close); forget every fd and timer
 *   client:socket_ready(fd, readable, writable) and client:timeout_due(): what the host calls
 *
 * libcurl's own callbacks (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION) only record what
 * it wants in the client's table; sora_loop_flush tells the host the differences at the end of
 * every call that drove the client, outside libcurl, where a Lua callback may run. The host's
 * callbacks run as the other callbacks of the client do: protected, unable to call the client
 * (sora_check_usable refuses), a failure reported on stderr as a log function's is.
 *
 * Once watched, the client runs on curl_multi_socket_action for the rest of its life, after an
 * unwatch too: libcurl's socket state must not be kept by two mechanisms at once. step and the
 * blocking calls keep working on such a client: they poll() the same descriptors themselves
 * (sora_loop_run), and every change they cause reaches the host as well. */
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "sora.h"

#define TIMER_SLACK_S 0.001 /* a host's timer fires on a millisecond: this early is on time */

typedef struct sora_watched {
  curl_socket_t fd;
  int wanted;   /* what libcurl waits for: CURL_POLL_IN, _OUT, _INOUT, or 0 */
  int told;     /* what the host was last told */
  int reopened; /* removed after the host was told: it must stop before watching again (the
                 * number may be a new socket now, which its old watch would never see) */
} sora_watched;

struct sora_loop {
  sora_watched *sockets;
  size_t count, room;
  struct pollfd *polled; /* sora_loop_run's own copy, so that actions may change `sockets` */
  size_t polled_room;
  double curl_due;       /* monotonic seconds libcurl wants its timeouts run at; -1 none */
  double tasks_due;      /* when the task scheduler next has work (client:_tasks_due); -1 none */
  double told_due;       /* the timer the host holds; -1 none */
  int host;              /* a host watches: its callables are in the client's user value */
  int flushing;          /* telling the host now: a nested flush (a finalizer's) leaves it */
  int changed;           /* something was recorded since the flush began */
};

/* ---- what libcurl wants, recorded ----------------------------------------------------- */

static sora_watched *find_socket(sora_loop *loop, curl_socket_t fd) {
  size_t i;
  for (i = 0; i < loop->count; i++) {
    if (loop->sockets[i].fd == fd) return &loop->sockets[i];
  }
  return NULL;
}

static sora_watched *add_socket(sora_loop *loop, curl_socket_t fd) {
  sora_watched *w;
  if (loop->count == loop->room) {
    size_t room = loop->room ? loop->room * 2 : 8;
    sora_watched *grown = realloc(loop->sockets, room * sizeof *grown);
    if (grown == NULL) return NULL;
    loop->sockets = grown;
    loop->room = room;
  }
  w = &loop->sockets[loop->count++];
  memset(w, 0, sizeof *w);
  w->fd = fd;
  return w;
}

/* CURLMOPT_SOCKETFUNCTION: only records; the host hears of it at the next flush. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  sora_loop *loop = userp;
  sora_watched *w = find_socket(loop, fd);
  int wanted = what == CURL_POLL_REMOVE ? 0 : what & CURL_POLL_INOUT;
  (void)easy; (void)socketp;
  if (w == NULL && wanted == 0) return 0;
  if (w == NULL && (w = add_socket(loop, fd)) == NULL) return -1; /* libcurl fails the transfer */
  if (wanted == 0 && w->told) w->reopened = 1;
  w->wanted = wanted;
  loop->changed = 1;
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: likewise. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  sora_loop *loop = userp;
  (void)multi;
  loop->curl_due = timeout_ms < 0 ? -1 : sora_now() + (double)timeout_ms / 1000.0;
  loop->changed = 1;
  return 0;
}

/* ---- libcurl's side: actions ------------------------------------------------------------ */

/* curl_multi_socket_all is deprecated for hosts that know their sockets; here it is the one
 * call that makes libcurl announce the sockets of transfers started before the watch. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
static void act_on_all(sora_client *c) {
  curl_multi_socket_all(c->multi, &c->running);
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* fd ready for ev_bitmask (CURL_CSELECT_*); CURL_SOCKET_TIMEOUT: the timer fired, and libcurl's
 * timeouts run if they are due; CURL_SOCKET_BAD: every transfer runs once (the first watch). */
void sora_loop_action(sora_client *c, curl_socket_t fd, int ev_bitmask) {
  sora_loop *loop = c->loop;
  if (fd == CURL_SOCKET_BAD) {
    act_on_all(c);
  } else if (fd != CURL_SOCKET_TIMEOUT) {
    curl_multi_socket_action(c->multi, fd, ev_bitmask, &c->running);
  } else if (loop->curl_due >= 0 && loop->curl_due <= sora_now() + TIMER_SLACK_S) {
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &c->running);
  }
}

/* Room for every socket and the wake descriptor (sora_interrupt_arm). */
static int grow_polled(sora_loop *loop) {
  struct pollfd *grown;
  if (loop->polled_room >= loop->count + 1) return 1;
  grown = realloc(loop->polled, (loop->count + 1) * sizeof *grown);
  if (grown == NULL) return 0;
  loop->polled = grown;
  loop->polled_room = loop->count + 1;
  return 1;
}

/* Copies the sockets libcurl waits on into loop->polled; returns how many. */
static nfds_t fill_polled(sora_loop *loop) {
  nfds_t n = 0;
  size_t i;
  if (!grow_polled(loop)) return 0; /* out of memory: the timeouts still run */
  for (i = 0; i < loop->count; i++) {
    const sora_watched *w = &loop->sockets[i];
    if (w->wanted == 0) continue;
    loop->polled[n].fd = w->fd;
    loop->polled[n].events = (short)(((w->wanted & CURL_POLL_IN) ? POLLIN : 0) |
                                     ((w->wanted & CURL_POLL_OUT) ? POLLOUT : 0));
    loop->polled[n].revents = 0;
    n++;
  }
  return n;
}

static int select_bits(short revents) {
  return ((revents & (POLLIN | POLLHUP)) ? CURL_CSELECT_IN : 0) |
         ((revents & POLLOUT) ? CURL_CSELECT_OUT : 0) |
         ((revents & (POLLERR | POLLNVAL)) ? CURL_CSELECT_ERR : 0);
}

/* The client's own wait when step or a blocking call drives a watched client: poll() its
 * sockets (and wake_fd, which ends the wait early) at most timeout_ms and no later than
 * libcurl's timer, act on those ready, then on the timeouts that are due. Returns 0 when it
 * was never watched (curl_multi_perform then). */
int sora_loop_run(sora_client *c, int timeout_ms, int wake_fd) {
  sora_loop *loop = c->loop;
  nfds_t n, i;
  if (loop == NULL) return 0;
  if (loop->curl_due >= 0) {
    double left_ms = ceil((loop->curl_due - sora_now()) * 1000);
    if (left_ms < timeout_ms) timeout_ms = left_ms > 0 ? (int)left_ms : 0;
  }
  n = fill_polled(loop);
  if (wake_fd >= 0 && loop->polled_room > n) { /* last, so the loop below skips it */
    loop->polled[n].fd = wake_fd;
    loop->polled[n].events = POLLIN;
    loop->polled[n].revents = 0;
  }
  if (poll(loop->polled, n + (wake_fd >= 0 && loop->polled_room > n), timeout_ms) > 0) {
    for (i = 0; i < n; i++) {
      if (loop->polled[i].revents)
        sora_loop_action(c, loop->polled[i].fd, select_bits(loop->polled[i].revents));
    }
  }
  sora_loop_action(c, CURL_SOCKET_TIMEOUT, 0);
  return 1;
}

/* A task can go on now (a transfer it awaits ended): the host's next flush asks for the timer
 * at once, whatever drove the client (a blocking call, step, the host itself). */
void sora_loop_task_ready(sora_client *c) {
  if (c->loop != NULL) c->loop->tasks_due = sora_now();
}

/* ---- the host's side: telling it --------------------------------------------------------- */

/* Calls the host's callable user value[field] with the nargs values on the stack, protected
 * and marked as a callback of the client; pops them. Never raises. */
static void call_host(lua_State *L, sora_client *c, int client_idx, const char *field, int nargs) {
  int base = lua_gettop(L) - nargs; /* args at base + 1 ... */
  lua_pushcfunction(L, sora_callback_traceback);
  sora_getuservalue(L, client_idx);
  lua_getfield(L, -1, field);       /* args, handler, uv, fn */
  lua_remove(L, -2);                /* args, handler, fn */
  if (lua_isnil(L, -1)) {           /* an optional one (on_unwatch) not given */
    lua_settop(L, base);
    return;
  }
  lua_insert(L, base + 1);          /* fn, args, handler */
  lua_insert(L, base + 1);          /* handler, fn, args */
  c->in_callback++;
  if (lua_pcall(L, nargs, 0, base + 1) != 0) {
    const char *why = lua_tostring(L, -1);
    fprintf(stderr, "sora: the event loop's %s callback failed: %s\n", field,
            why ? why : luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  c->in_callback--;
  lua_pop(L, 1); /* handler */
}

static void tell_socket(lua_State *L, sora_client *c, int client_idx, curl_socket_t fd, int what) {
  lua_pushinteger(L, (lua_Integer)fd);
  lua_pushboolean(L, what & CURL_POLL_IN);
  lua_pushboolean(L, what & CURL_POLL_OUT);
  call_host(L, c, client_idx, "loop_socket", 3);
}

/* Tells the host every socket whose wanted events differ from what it was told. The entries
 * are read by index each time: a finalizer run by the callback may record a change (and move
 * the array). Sockets nobody waits on any more are dropped afterwards. */
static void tell_sockets(lua_State *L, sora_client *c, int client_idx) {
  sora_loop *loop = c->loop;
  size_t i, kept = 0;
  for (i = 0; i < loop->count; i++) {
    curl_socket_t fd = loop->sockets[i].fd;
    if (loop->sockets[i].reopened) {
      loop->sockets[i].reopened = 0;
      loop->sockets[i].told = 0;
      tell_socket(L, c, client_idx, fd, 0);
    }
    if (loop->sockets[i].wanted != loop->sockets[i].told) {
      int wanted = loop->sockets[i].wanted;
      loop->sockets[i].told = wanted;
      tell_socket(L, c, client_idx, fd, wanted);
    }
  }
  for (i = 0; i < loop->count; i++) {
    if (loop->sockets[i].wanted || loop->sockets[i].told || loop->sockets[i].reopened)
      loop->sockets[kept++] = loop->sockets[i];
  }
  loop->count = kept;
}

/* The earliest of libcurl's timer, the task scheduler's and the retries'; -1 when none. */
static double next_due(const sora_client *c) {
  const sora_loop *loop = c->loop;
  const sora_transfer *t;
  double due = loop->curl_due;
  /* a download paused when its slice was spent has data waiting in libcurl, which no socket
   * will announce: the host comes back at once, and that drive resumes it */
  if (c->paused > 0) return sora_now();
  if (loop->tasks_due >= 0 && (due < 0 || loop->tasks_due < due)) due = loop->tasks_due;
  for (t = c->transfers; t != NULL; t = t->next) {
    if (t->state == SORA_STATE_RETRY_WAIT && (due < 0 || t->retry_at < due)) due = t->retry_at;
  }
  return due;
}

/* The host's timer is set again only when the due time moved: libcurl resets its timer to the
 * same deadline often, and each needless change would be a call into the host. */
static void tell_timer(lua_State *L, sora_client *c, int client_idx) {
  sora_loop *loop = c->loop;
  double due = next_due(c);
  if (due < 0) {
    if (loop->told_due < 0) return;
    loop->told_due = -1;
    lua_pushnil(L);
  } else {
    if (loop->told_due >= 0 && fabs(due - loop->told_due) < TIMER_SLACK_S) return;
    loop->told_due = due;
    double now = sora_now();
    lua_pushnumber(L, due > now ? due - now : 0);
  }
  call_host(L, c, client_idx, "loop_timer", 1);
}

void sora_loop_flush(lua_State *L, int client_idx) {
  sora_client *c = lua_touserdata(L, client_idx);
  sora_loop *loop = c->loop;
  int rounds;
  if (loop == NULL || !loop->host || loop->flushing || c->in_callback || c->L != NULL) return;
  client_idx = sora_absindex(L, client_idx);
  luaL_checkstack(L, 8, "sora: no room on the stack for the event loop's callbacks");
  loop->flushing = 1;
  for (rounds = 0; rounds < 3; rounds++) { /* again if a finalizer changed something meanwhile */
    loop->changed = 0;
    tell_sockets(L, c, client_idx);
    tell_timer(L, c, client_idx);
    /* the host's callbacks (and finalizers they run) may have set it through libcurl */
    /* cppcheck-suppress knownConditionTrueFalse */
    if (!loop->changed) break;
  }
  loop->flushing = 0;
}

/* Tells the host to stop watching everything, then that the watch ended. */
static void end_watch(lua_State *L, sora_client *c, int client_idx) {
  sora_loop *loop = c->loop;
  size_t i;
  if (!loop->host) return;
  loop->flushing = 1; /* what the callbacks cause is told to the next host, if any */
  for (i = 0; i < loop->count; i++) {
    curl_socket_t fd = loop->sockets[i].fd;
    int told = loop->sockets[i].told || loop->sockets[i].reopened;
    loop->sockets[i].told = loop->sockets[i].reopened = 0;
    if (told) tell_socket(L, c, client_idx, fd, 0);
  }
  if (loop->told_due >= 0) {
    loop->told_due = -1;
    lua_pushnil(L);
    call_host(L, c, client_idx, "loop_timer", 1);
  }
  call_host(L, c, client_idx, "loop_unwatch", 0);
  loop->host = 0;
  loop->flushing = 0;
  sora_getuservalue(L, client_idx);
  lua_pushnil(L);
  lua_setfield(L, -2, "loop_socket");
  lua_pushnil(L);
  lua_setfield(L, -2, "loop_timer");
  lua_pushnil(L);
  lua_setfield(L, -2, "loop_unwatch");
  lua_pop(L, 1);
}

/* The client closes: the host is told, libcurl stops calling into the table, which goes. */
void sora_loop_close(lua_State *L, sora_client *c, int client_idx) {
  sora_loop *loop = c->loop;
  if (loop == NULL) return;
  luaL_checkstack(L, 8, "sora: no room on the stack for the event loop's callbacks");
  end_watch(L, c, client_idx);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, (curl_socket_callback)NULL);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, (curl_multi_timer_callback)NULL);
  c->loop = NULL;
  free(loop->sockets);
  free(loop->polled);
  free(loop);
}

/* ---- Lua methods --------------------------------------------------------------------------- */

static sora_client *check_client(lua_State *L, const char *method) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  sora_check_usable(L, c, method);
  return c;
}

static void check_callable(lua_State *L, int arg, const char *what, int optional) {
  if (optional && lua_isnoneornil(L, arg)) return;
  if (!sora_iscallable(L, arg))
    sora_bad_argument(L, "watch", arg - 1, "%s must be a function or a callable, got %s", what,
                      luaL_typename(L, arg));
}

/* The first watch switches libcurl to its socket interface and runs every transfer once, so
 * that those already in flight announce their sockets. */
static void start_loop(lua_State *L, sora_client *c) {
  sora_loop *loop = calloc(1, sizeof *loop);
  if (loop == NULL) sora_raise(L, "sora: out of memory");
  loop->curl_due = loop->tasks_due = loop->told_due = -1;
  c->loop = loop;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, loop);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, loop);
}

/* client:watch(on_socket, on_timer [, on_unwatch]) */
static int client_watch(lua_State *L) {
  sora_client *c = check_client(L, "watch");
  size_t i;
  int first;
  check_callable(L, 2, "on_socket", 0);
  check_callable(L, 3, "on_timer", 0);
  check_callable(L, 4, "on_unwatch", 1);
  if (c->loop && c->loop->host)
    sora_raise(L, "calling 'watch' on a sora.Client that a loop already watches (unwatch it first)");
  lua_settop(L, 4);
  sora_getuservalue(L, 1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "loop_socket");
  lua_pushvalue(L, 3);
  lua_setfield(L, -2, "loop_timer");
  lua_pushvalue(L, 4);
  lua_setfield(L, -2, "loop_unwatch");
  lua_pop(L, 1);
  first = c->loop == NULL;
  if (first) start_loop(L, c);
  for (i = 0; i < c->loop->count; i++) c->loop->sockets[i].told = c->loop->sockets[i].reopened = 0;
  c->loop->host = 1;
  c->loop->told_due = -1;
  /* tasks spawned before the watch (C does not see them) run at the first timeout_due, which
   * then sets the scheduler's real due time */
  c->loop->tasks_due = sora_now();
  if (first) sora_client_act(L, 1, CURL_SOCKET_BAD, 0); /* flushes: the host hears of everything */
  else sora_loop_flush(L, 1);
  return 0;
}

/* client:unwatch(): the host is told to stop everything; idempotent. */
static int client_unwatch(lua_State *L) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  if (c->multi == NULL || c->loop == NULL || !c->loop->host) return 0;
  sora_check_usable(L, c, "unwatch");
  end_watch(L, c, 1);
  return 0;
}

static sora_client *check_watched(lua_State *L, const char *method) {
  sora_client *c = check_client(L, method);
  if (c->loop == NULL || !c->loop->host)
    sora_raise(L, "calling '%s' on a sora.Client that no loop watches (client:watch)", method);
  return c;
}

/* client:_socket_action(fd, readable, writable): the Lua layer's socket_ready adds the tasks. */
static int client_socket_action(lua_State *L) {
  lua_Integer fd;
  int bits = 0;
  check_watched(L, "socket_ready");
  if (!sora_isintegral(L, 2, &fd) || fd < 0 || fd > 0x7fffffff)
    sora_bad_argument(L, "socket_ready", 1, "descriptor expected, got %s", luaL_typename(L, 2));
  if (lua_toboolean(L, 3)) bits |= CURL_CSELECT_IN;
  if (lua_toboolean(L, 4)) bits |= CURL_CSELECT_OUT;
  sora_client_act(L, 1, (curl_socket_t)fd, bits); /* neither flag: libcurl looks itself */
  return 0;
}

/* client:_timeout_action(): the host's timer fired (the Lua layer's timeout_due). */
static int client_timeout_action(lua_State *L) {
  sora_client *c = check_watched(L, "timeout_due");
  c->loop->told_due = -1; /* the host's timer is spent */
  sora_client_act(L, 1, CURL_SOCKET_TIMEOUT, 0);
  return 0;
}

/* client:_tasks_due(seconds or nil): when the task scheduler next has work. Quietly nothing on
 * a client no loop watches, or a closed one: spawn calls it whatever the client. */
static int client_tasks_due(lua_State *L) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  if (c->multi == NULL || c->loop == NULL) return 0;
  c->loop->tasks_due = lua_isnoneornil(L, 2) ? -1 : sora_now() + luaL_checknumber(L, 2);
  sora_loop_flush(L, 1);
  return 0;
}

/* client:_usable(call [, open_only]): raises as the C calls do unless `call` may run now: the
 * client is open and (unless open_only) no callback of it is running. The task scheduler
 * checks this before it resumes any task: a refused call changes nothing. */
static int client_usable(lua_State *L) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  const char *call = luaL_checkstring(L, 2);
  if (lua_toboolean(L, 3)) {
    if (c->multi == NULL || c->close_pending)
      sora_raise(L, "calling '%s' on a closed sora.Client", call);
  } else {
    sora_check_usable(L, c, call);
  }
  return 0;
}

/* client:watching(): true while a host's loop watches the client. */
static int client_watching(lua_State *L) {
  sora_client *c = luaL_checkudata(L, 1, SORA_CLIENT);
  lua_pushboolean(L, c->multi != NULL && c->loop != NULL && c->loop->host);
  return 1;
}

static const luaL_Reg loop_methods[] = {
    {"watch", client_watch}, {"unwatch", client_unwatch}, {"watching", client_watching},
    {"_socket_action", client_socket_action}, {"_timeout_action", client_timeout_action},
    {"_tasks_due", client_tasks_due}, {"_usable", client_usable}, {NULL, NULL}};

void sora_open_loop(lua_State *L, int methods_idx) {
  const luaL_Reg *r;
  methods_idx = sora_absindex(L, methods_idx);
  for (r = loop_methods; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, methods_idx, r->name);
  }
}
