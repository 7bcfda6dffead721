/* When to try a request again, and after how long: the rules all official SDKs share. */
#ifndef SORA_RETRY_H
#define SORA_RETRY_H

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
/* Seconds to wait before the next attempt; -1 means do not retry (the server asked for
 * longer than the cap). server_delay is the parsed retry-after(-ms), or -1. jitter in [0,1). */
SORA_HIDDEN double sora_retry_delay(double server_delay, int retries_taken, double jitter);

/* Jitter comes from a generator per client (xoshiro256**), seeded from the system's random
 * source: rand() is never seeded, so every process would retry at the same moments. */
typedef struct sora_rng {
  uint64_t s[4];
} sora_rng;

SORA_HIDDEN void sora_rng_seed(sora_rng *rng);
SORA_HIDDEN double sora_rng_uniform(sora_rng *rng); /* in [0, 1) */

#endif
