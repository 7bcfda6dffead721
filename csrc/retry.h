/* When to try a request again, and after how long: the rules all official SDKs share. */
#ifndef SORA_RETRY_H
#define SORA_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "libcurl.h"

#include "compat.h"

/* Longest server-requested delay that is honoured; above it the request is not retried. */
#define SORA_RETRY_AFTER_CAP 120.0
#define SORA_BACKOFF_INITIAL 0.5
#define SORA_BACKOFF_MAX 8.0

/* Whether a failed attempt may be retried: a transport error (code) or an HTTP status, with
 * the server's x-should-retry (-1 when absent) overriding the status rule. */
SORA_HIDDEN int sora_retryable(CURLcode code, long status, int should_retry);
/* Whether the server may have acted on a request whose answer was lost ("maybe sent"): a
 * transport error other than a failure to resolve, connect or complete the TLS handshake,
 * once request_bytes (CURLINFO_REQUEST_SIZE; -1 unknown) left; or a 5xx whose body does not
 * say, in the API's error shape, what went wrong. A create that may have been made is never
 * sent again blindly: lua/sora/reconcile.lua looks for it first. */
SORA_HIDDEN int sora_maybe_sent(CURLcode code, long status, long request_bytes, const char *body,
                                size_t len);
/* Whether a body opens as the API's errors do: {"error": {. */
SORA_HIDDEN int sora_is_api_error(const char *body, size_t len);
/* Seconds to wait before the next attempt; -1 means do not retry (the server asked for
 * longer than the cap). server_delay is the parsed retry-after(-ms), or -1. jitter in [0,1). */
SORA_HIDDEN double sora_retry_delay(double server_delay, int retries_taken, double jitter);

/* Jitter comes from a generator per client (xoshiro256**), seeded from the system's random
 * source: rand() is never seeded, so every process would retry at the same moments. */
typedef struct sora_rng {
  uint64_t s[4];
} sora_rng;

SORA_HIDDEN void sora_rng_seed(sora_rng *rng);
/* Fills buf with len bytes from the kernel (getrandom, else /dev/urandom); 0 on failure. */
SORA_HIDDEN int sora_system_random(void *buf, size_t len);
SORA_HIDDEN double sora_rng_uniform(sora_rng *rng); /* in [0, 1) */

#endif
