/* Ctrl-C during a wait inside the C core.
 *
 * lua.c (and luajit.c, and so the `sora` command) handles SIGINT by setting a debug hook that
 * raises "interrupted!" at the next Lua call or instruction. A blocking call waits in C, in
 * poll() through libcurl, where no Lua runs: the hook would fire only once the call returns,
 * after libcurl's timeout. So, around each wait that may block (a blocking call arms once, at
 * its first wait, and disarms when it returns: client.c's sora_client_blocking_call):
 *
 *   - where the host has a SIGINT handler of its own (a function: not SIG_IGN, not SIG_DFL,
 *     which ends the process anyway), sora's handler stands in front of it: it writes a byte
 *     to a pipe that every wait also polls, then calls the host's handler exactly as the kernel
 *     would have. The host's handler is put back after the wait, unless it replaced itself
 *     meanwhile (lua.c's does: a second Ctrl-C then kills the process), which sora leaves be;
 *   - between two waits, the C loops that block (transfer:wait, sleeps) call
 *     sora_interrupt_point, which calls a no-op C function when the thread has a call hook:
 *     the hook lua.c's handler set raises "interrupted!" there, as it would at the program's
 *     next call. (lua.c sets it on the main thread only: a blocking call made in another
 *     coroutine runs to its end, and the program is interrupted back on the main thread.)
 *
 * The handler only writes(2) and calls the previous handler (async-signal-safe). The install
 * is counted and locked, so threads waiting at once install it once and the last restores it;
 * the pipe is made once, close-on-exec, and kept for the life of the process. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "sora.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int waits;               /* waits under way with sora's handler installed */
static struct sigaction previous; /* the host's handler, while sora's stands in front */
static int wake_pipe[2] = {-1, -1};
static volatile sig_atomic_t signalled; /* a byte may be in the pipe: read it before a wait */

static void on_sigint(int sig, siginfo_t *info, void *context) {
  int saved_errno = errno;
  signalled = 1; /* before the write: a drain that clears it reads that byte too */
  if (wake_pipe[1] >= 0) {
    ssize_t written = write(wake_pipe[1], "!", 1); /* full pipe: a wake is pending anyway */
    (void)written;
  }
  if (previous.sa_flags & SA_SIGINFO) previous.sa_sigaction(sig, info, context);
  else previous.sa_handler(sig);
  errno = saved_errno;
}

static int is_ours(const struct sigaction *action) {
  return (action->sa_flags & SA_SIGINFO) && action->sa_sigaction == on_sigint;
}

static int set_flags(int fd, int fd_flag, int fl_flag) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | fd_flag) != 0) return 0;
  flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | fl_flag) == 0;
}

static int open_wake_pipe(void) {
  int fds[2];
  if (wake_pipe[0] >= 0) return 1;
  if (pipe(fds) != 0) return 0;
  if (!set_flags(fds[0], FD_CLOEXEC, O_NONBLOCK) || !set_flags(fds[1], FD_CLOEXEC, O_NONBLOCK)) {
    close(fds[0]);
    close(fds[1]);
    return 0;
  }
  wake_pipe[0] = fds[0];
  wake_pipe[1] = fds[1];
  return 1;
}

/* Puts sora's handler in front of the host's when the host has one; returns 1 when it did. */
static int install(void) {
  struct sigaction current, ours;
  if (sigaction(SIGINT, NULL, &current) != 0 || is_ours(&current)) return 0;
  if (!(current.sa_flags & SA_SIGINFO) &&
      (current.sa_handler == SIG_IGN || current.sa_handler == SIG_DFL))
    return 0;
  if (!open_wake_pipe()) return 0;
  previous = current;
  memset(&ours, 0, sizeof ours);
  ours.sa_sigaction = on_sigint;
  ours.sa_mask = current.sa_mask;
  ours.sa_flags = current.sa_flags | SA_SIGINFO; /* SA_RESETHAND too: one shot, as the host's */
  if (sigaction(SIGINT, &ours, NULL) != 0) return 0;
  return 1;
}

int sora_interrupt_arm(void) {
  int fd = -1;
  pthread_mutex_lock(&lock);
  if (waits > 0 || install()) {
    waits++;
    fd = wake_pipe[0];
  }
  pthread_mutex_unlock(&lock);
  return fd;
}

/* Empties the pipe when a SIGINT wrote to it: a read(2) per wait only after a Ctrl-C. Called
 * with the lock held. */
static void drain(void) {
  char buf[64];
  if (!signalled) return;
  signalled = 0;
  while (read(wake_pipe[0], buf, sizeof buf) > 0) {
  }
}

void sora_interrupt_drain(int fd) {
  if (fd < 0 || !signalled) return;
  pthread_mutex_lock(&lock);
  drain();
  pthread_mutex_unlock(&lock);
}

void sora_interrupt_disarm(int fd) {
  struct sigaction current;
  if (fd < 0) return;
  pthread_mutex_lock(&lock);
  drain();
  if (--waits == 0 && sigaction(SIGINT, NULL, &current) == 0 && is_ours(&current))
    sigaction(SIGINT, &previous, NULL);
  pthread_mutex_unlock(&lock);
}

static int no_op(lua_State *L) {
  (void)L;
  return 0;
}

void sora_interrupt_point(lua_State *L) {
  if (lua_gethook(L) == NULL || !(lua_gethookmask(L) & LUA_MASKCALL)) return;
  lua_pushcfunction(L, no_op);
  lua_call(L, 0, 0);
}
