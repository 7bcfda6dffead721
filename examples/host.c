/* host: a C program that embeds Lua 5.4 the way a game does, to prove that sora never
 * stalls a frame loop. Every 16.67 ms the loop calls the script's frame(), which calls
 * client:step(0); the generations themselves run as sora tasks inside the script.
 *
 *   build/host [script.lua [package.path [package.cpath]]]
 *
 * Defaults: examples/host.lua, then $SORA_LUA_PATH / $SORA_LUA_CPATH, else the checkout's
 * lua/?.lua;lua/?/init.lua and build/5.4/?.so (these are put before Lua's own paths).
 * The script reads SORA_BASE_URL, SORA_API_KEY and SORA_JOBS (see host.lua); the videos go
 * to $SORA_OUT_DIR, else to a temporary directory removed at the end.
 * $SORA_HOST_SECONDS caps the run (default 120) so that a stuck server cannot hang a test.
 * Prints the figures on stdout; exits 0 when every generation arrived, 1 when one failed,
 * 2 when the script itself broke.
 *
 * SORA_HOST_LOOP=poll runs an event loop instead of the frame loop: a plain poll() over the
 * descriptors sora asks for (client:watch), sleeping until one is ready or sora's timer is due,
 * then client:socket_ready / client:timeout_due. Nothing runs in between (docs/event-loop.md). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define FRAME_NS 16666667L  /* 60 Hz */
#define NS_PER_S 1000000000L
#define HUD_EVERY 30        /* frames between two HUD lines: twice a second */

typedef struct {
  long frames;
  double longest_frame_ms; /* the whole frame's work: Lua frame(), HUD, bookkeeping */
  double longest_step_ms;  /* client:step(0) alone, as the script measured it */
  int show_hud;
} stats;

static double seconds(const struct timespec *t) {
  return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return seconds(&t);
}

/* host.clock() for the script: the same monotonic clock the loop uses, so the step(0)
 * figure and the frame figure are comparable. */
static int host_clock(lua_State *L) {
  lua_pushnumber(L, now());
  return 1;
}

/* Message handler for lua_pcall: keeps the traceback, which is gone once the stack unwinds.
 * Error objects that are not strings (sora.Error tables) go through tostring. */
static int traceback(lua_State *L) {
  const char *msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Calls the function below the nargs arguments on the stack with a traceback; on error
 * prints it and returns 0. */
static int call(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs, ok;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  ok = lua_pcall(L, nargs, nresults, base) == LUA_OK;
  if (!ok) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_remove(L, base);
  return ok;
}

/* package[field] = first .. ";" .. package[field]: the checkout comes before the system. */
static void prepend_path(lua_State *L, const char *field, const char *first) {
  lua_getglobal(L, "package");
  lua_pushstring(L, first);
  lua_pushliteral(L, ";");
  lua_getfield(L, -3, field);
  lua_concat(L, 3);
  lua_setfield(L, -2, field);
  lua_pop(L, 1);
}

static const char *arg_or_env(int argc, char **argv, int i, const char *env, const char *def) {
  const char *value = i < argc ? argv[i] : getenv(env);
  return value && *value ? value : def;
}

static long env_long(const char *name, long def) {
  const char *value = getenv(name);
  long n = value ? strtol(value, NULL, 10) : 0;
  return n > 0 ? n : def;
}

struct watched; /* the event loop's state (SORA_HOST_LOOP=poll), below */
static void add_watch_functions(lua_State *L, struct watched *w);

/* Runs the script with a `host` table (with watch_socket and set_timer when w is given, for
 * the event loop); leaves the `game` table it returns on the stack.
 * out_dir is where the videos go; keep says whether they stay there after the run. */
static int load_game(lua_State *L, const char *script, const char *out_dir, int keep,
                     struct watched *w) {
  if (luaL_loadfile(L, script) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    return 0;
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, out_dir);
  lua_setfield(L, -2, "out_dir");
  lua_pushboolean(L, keep);
  lua_setfield(L, -2, "keep");
  lua_pushcfunction(L, host_clock);
  lua_setfield(L, -2, "clock");
  lua_pushinteger(L, FRAME_NS / 1000);
  lua_setfield(L, -2, "frame_us");
  if (w) add_watch_functions(L, w); /* the event loop: the script watches through these */
  if (!call(L, 1, 1)) return 0;
  if (!lua_istable(L, -1)) {
    fprintf(stderr, "host: %s must return a table of functions\n", script);
    return 0;
  }
  return 1;
}

/* Pushes game[name]; the game table is at stack index 1. */
static void get_fn(lua_State *L, const char *name) {
  lua_getfield(L, 1, name);
}

/* Prints the HUD line the script renders, in place, when a person is watching. */
static int draw_hud(lua_State *L) {
  get_fn(L, "hud");
  if (!call(L, 0, 1)) return 0;
  fprintf(stderr, "\r%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
  lua_pop(L, 1);
  return 1;
}

/* One frame's work: game.frame() returns the tasks still running and the seconds its
 * step(0) took. Returns the running count, or -1 when the script broke. */
static int frame(lua_State *L, stats *s) {
  double step_ms;
  int running;
  get_fn(L, "frame");
  if (!call(L, 0, 2)) return -1;
  running = (int)lua_tointeger(L, -2);
  step_ms = lua_tonumber(L, -1) * 1000;
  lua_pop(L, 2);
  if (step_ms > s->longest_step_ms) s->longest_step_ms = step_ms;
  if (s->show_hud && s->frames % HUD_EVERY == 0 && !draw_hud(L)) return -1;
  return running;
}

static void add_ns(struct timespec *t, long ns) {
  t->tv_nsec += ns;
  while (t->tv_nsec >= NS_PER_S) {
    t->tv_nsec -= NS_PER_S;
    t->tv_sec++;
  }
}

/* Sleeps to the next tick. A frame that overran starts the schedule again from now rather
 * than running the missed frames back to back, as a game drops frames instead of bursting. */
static void wait_tick(struct timespec *tick) {
  struct timespec t;
  add_ns(tick, FRAME_NS);
  clock_gettime(CLOCK_MONOTONIC, &t);
  if (seconds(&t) > seconds(tick)) *tick = t;
  else clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, tick, NULL);
}

/* The frame loop: runs until no task is left, the script breaks, or the time cap passes.
 * Returns the tasks still running at the end, or -1. */
static int loop(lua_State *L, stats *s, double cap_s) {
  struct timespec tick;
  double deadline = now() + cap_s;
  int running = 1;
  clock_gettime(CLOCK_MONOTONIC, &tick);
  while (running > 0 && now() < deadline) {
    double start = now(), work_ms;
    running = frame(L, s);
    work_ms = (now() - start) * 1000;
    if (work_ms > s->longest_frame_ms) s->longest_frame_ms = work_ms;
    s->frames++;
    if (running > 0) wait_tick(&tick);
  }
  if (s->show_hud) fputc('\n', stderr);
  return running;
}

/* game.finish(): returns how many videos arrived and how many failed. */
static int finish(lua_State *L, int *arrived, int *failed) {
  get_fn(L, "finish");
  if (!call(L, 0, 2)) return 0;
  *arrived = (int)lua_tointeger(L, -2);
  *failed = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return 1;
}

/* ---- the event loop (SORA_HOST_LOOP=poll) ------------------------------------------------- */

/* What sora asked the host to watch: its descriptors and its one timer. */
typedef struct watched {
  struct pollfd *fds;
  nfds_t count, room;
  double timer_at; /* monotonic seconds, -1 for none */
  long timer_wakeups, socket_wakeups;
} watched;

static watched *watched_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/* host.watch_socket(fd, readable, writable): sora's on_socket; both false: forget fd. */
static int host_watch_socket(lua_State *L) {
  watched *w = watched_of(L);
  int fd = (int)luaL_checkinteger(L, 1);
  short events = (short)((lua_toboolean(L, 2) ? POLLIN : 0) | (lua_toboolean(L, 3) ? POLLOUT : 0));
  nfds_t i;
  for (i = 0; i < w->count && w->fds[i].fd != fd; i++) {}
  if (events == 0) {
    if (i < w->count) w->fds[i] = w->fds[--w->count];
    return 0;
  }
  if (i == w->count) {
    if (w->count == w->room) {
      nfds_t room = w->room ? w->room * 2 : 16;
      struct pollfd *grown = realloc(w->fds, room * sizeof *grown);
      if (grown == NULL) return luaL_error(L, "host: out of memory");
      w->fds = grown;
      w->room = room;
    }
    w->fds[w->count++].fd = fd;
  }
  w->fds[i].events = events;
  return 0;
}

/* host.set_timer(seconds or nil): sora's on_timer, one shot. */
static int host_set_timer(lua_State *L) {
  watched *w = watched_of(L);
  w->timer_at = lua_isnoneornil(L, 1) ? -1 : now() + luaL_checknumber(L, 1);
  return 0;
}

/* Milliseconds poll() may sleep: until the timer, never past the time cap. */
static int poll_timeout_ms(const watched *w, double deadline) {
  double until = w->timer_at >= 0 && w->timer_at < deadline ? w->timer_at : deadline;
  double ms = ceil((until - now()) * 1000);
  return ms > 0 ? (int)ms : 0;
}

/* game[name](...) with the nargs values on the stack; returns the tasks still running it
 * returns, or -1 when the script broke. */
static int call_game(lua_State *L, const char *name, int nargs) {
  int running;
  get_fn(L, name);
  lua_insert(L, -1 - nargs);
  if (!call(L, nargs, 1)) return -1;
  running = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return running;
}

/* Tells the game about each descriptor poll() found ready. The table is copied first: the
 * calls change what sora watches. Returns the tasks still running, or -1. */
static int dispatch_sockets(lua_State *L, watched *w, struct pollfd *ready, nfds_t n, int running) {
  nfds_t i;
  for (i = 0; i < n && running >= 0; i++) {
    short r = ready[i].revents;
    if (r == 0) continue;
    w->socket_wakeups++;
    lua_pushinteger(L, ready[i].fd);
    lua_pushboolean(L, (r & (POLLIN | POLLHUP | POLLERR)) != 0);
    lua_pushboolean(L, (r & (POLLOUT | POLLERR)) != 0);
    running = call_game(L, "socket_ready", 3);
  }
  return running;
}

/* One wait and what it found. Returns the tasks still running, or -1. */
static int poll_once(lua_State *L, watched *w, double deadline, int running) {
  nfds_t n = w->count;
  struct pollfd *ready = n ? malloc(n * sizeof *ready) : NULL;
  if (n && ready == NULL) return -1;
  if (n) memcpy(ready, w->fds, n * sizeof *ready);
  if (poll(ready, n, poll_timeout_ms(w, deadline)) > 0) running = dispatch_sockets(L, w, ready, n, running);
  free(ready);
  if (running >= 0 && w->timer_at >= 0 && now() >= w->timer_at) {
    w->timer_at = -1;
    w->timer_wakeups++;
    running = call_game(L, "timeout_due", 0);
  }
  return running;
}

/* The event loop: sleeps in poll() until sora has something to do. Returns the tasks still
 * running at the end, or -1. */
static int event_loop(lua_State *L, watched *w, double cap_s) {
  double deadline = now() + cap_s;
  int running = call_game(L, "running", 0);
  while (running > 0 && now() < deadline) running = poll_once(L, w, deadline, running);
  return running;
}

static void report(const stats *s, int arrived, int failed) {
  printf("frames %ld\n", s->frames);
  printf("longest_frame_ms %.3f\n", s->longest_frame_ms);
  printf("longest_step_ms %.3f\n", s->longest_step_ms);
  printf("arrived %d\n", arrived);
  printf("failed %d\n", failed);
}

/* host.watch_socket and host.set_timer, sharing w, in the host table on the stack top. */
static void add_watch_functions(lua_State *L, watched *w) {
  lua_pushlightuserdata(L, w);
  lua_pushcclosure(L, host_watch_socket, 1);
  lua_setfield(L, -2, "watch_socket");
  lua_pushlightuserdata(L, w);
  lua_pushcclosure(L, host_set_timer, 1);
  lua_setfield(L, -2, "set_timer");
}

static int run(lua_State *L, const char *script, const char *out_dir, int keep) {
  stats s = {0, 0, 0, 0};
  watched w = {NULL, 0, 0, -1, 0, 0};
  const char *mode = getenv("SORA_HOST_LOOP");
  int polled = mode && strcmp(mode, "poll") == 0;
  int running, arrived = 0, failed = 0;
  double cap_s = (double)env_long("SORA_HOST_SECONDS", 120);
  clock_t cpu = clock();
  s.show_hud = isatty(STDERR_FILENO) && !polled;
  if (!load_game(L, script, out_dir, keep, polled ? &w : NULL)) return 2;
  running = polled ? event_loop(L, &w, cap_s) : loop(L, &s, cap_s);
  cpu = clock() - cpu;
  if (running < 0 || !finish(L, &arrived, &failed)) return 2;
  if (running > 0) fprintf(stderr, "host: %d generations still running at the time cap\n", running);
  if (polled) printf("timer_wakeups %ld\nsocket_wakeups %ld\n", w.timer_wakeups, w.socket_wakeups);
  printf("cpu_ms %.3f\n", (double)cpu * 1000 / CLOCKS_PER_SEC);
  free(w.fds);
  report(&s, arrived, failed);
  return failed == 0 && running == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  char temp[] = "/tmp/sora-host-XXXXXX";
  const char *out_dir = getenv("SORA_OUT_DIR");
  int keep = out_dir && *out_dir, status;
  lua_State *L;
  /* Without a directory from the caller the videos go to a fresh one, removed at the end
   * (the script removes the files it wrote). */
  if (!keep && (out_dir = mkdtemp(temp)) == NULL) {
    perror("host: mkdtemp");
    return 2;
  }
  if ((L = luaL_newstate()) == NULL) {
    fprintf(stderr, "host: cannot create a Lua state\n");
    return 2;
  }
  luaL_openlibs(L);
  prepend_path(L, "path", arg_or_env(argc, argv, 2, "SORA_LUA_PATH", "lua/?.lua;lua/?/init.lua"));
  prepend_path(L, "cpath", arg_or_env(argc, argv, 3, "SORA_LUA_CPATH", "build/5.4/?.so"));
  status = run(L, arg_or_env(argc, argv, 1, "SORA_HOST_SCRIPT", "examples/host.lua"), out_dir, keep);
  lua_close(L);
  if (!keep) rmdir(out_dir);
  return status;
}
