#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__) && defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 25)
#include <sys/random.h>
#define SORA_HAVE_GETRANDOM 1
#endif

#include "retry.h"

int sora_retryable(CURLcode code, long status, int should_retry) {
  switch (code) {
    case CURLE_OK: break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return 1;
    default:
      return 0; /* aborted by a callback, a bad URL, a TLS verification failure... */
  }
  if (status < 400) return 0; /* x-should-retry cannot make a success be sent again */
  if (should_retry != -1) return should_retry;
  return status == 408 || status == 409 || status == 429 || status >= 500;
}

/* A body that says what went wrong in the API's shape, {"error": {...}}: the server looked at
 * the request and refused it, so nothing was made. Only the opening is read: the message is
 * outcome.c's business. */
static int skip_space(const char *s, size_t len, size_t i) {
  while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
  return (int)i;
}

int sora_is_api_error(const char *body, size_t len) {
  static const char key[] = "\"error\"";
  size_t i = (size_t)skip_space(body, len, 0);
  if (i >= len || body[i] != '{') return 0;
  i = (size_t)skip_space(body, len, i + 1);
  if (len - i < sizeof key - 1 || memcmp(body + i, key, sizeof key - 1) != 0) return 0;
  i = (size_t)skip_space(body, len, i + sizeof key - 1);
  if (i >= len || body[i] != ':') return 0;
  i = (size_t)skip_space(body, len, i + 1);
  return i < len && body[i] == '{';
}

int sora_maybe_sent(CURLcode code, long status, long request_bytes, const char *body, size_t len) {
  switch (code) {
    case CURLE_OK: break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
      return 0; /* no connection to the server, or no TLS session on it: nothing went out */
    default:
      return request_bytes != 0; /* a reset, a timeout, a cut body after the request left */
  }
  return status >= 500 && !sora_is_api_error(body, len);
}

double sora_retry_delay(double server_delay, int retries_taken, double jitter) {
  double backoff;
  if (server_delay > SORA_RETRY_AFTER_CAP) return -1;
  if (server_delay > 0) return server_delay;
  backoff = SORA_BACKOFF_INITIAL * pow(2.0, retries_taken);
  if (backoff > SORA_BACKOFF_MAX) backoff = SORA_BACKOFF_MAX;
  return backoff * (1.0 - 0.25 * jitter);
}

/* ---- the per-client generator ------------------------------------------------------ */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* splitmix64: spreads one seed word over the four words of state (never all zero). */
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Fills buf from the kernel: getrandom where the C library has it, else /dev/urandom. */
int sora_system_random(void *buf, size_t len) {
#if defined(SORA_HAVE_GETRANDOM)
  if (getrandom(buf, len, 0) == (ssize_t)len) return 1;
#endif
  {
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC), ok;
    if (fd < 0) return 0;
    ok = read(fd, buf, len) == (ssize_t)len;
    close(fd);
    return ok;
  }
}

void sora_rng_seed(sora_rng *rng) {
  uint64_t seed[4];
  int i;
  if (!sora_system_random(seed, sizeof seed)) {
    /* no random source at all: different per process and per client at least */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
    seed[1] = (uint64_t)getpid();
    seed[2] = (uint64_t)(uintptr_t)rng;
    seed[3] = (uint64_t)clock();
  }
  for (i = 0; i < 4; i++) {
    uint64_t x = seed[i];
    rng->s[i] = splitmix64(&x);
  }
}

/* xoshiro256** (Blackman and Vigna), the top 53 bits as a double. */
double sora_rng_uniform(sora_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return (double)(result >> 11) * (1.0 / 9007199254740992.0);
}
