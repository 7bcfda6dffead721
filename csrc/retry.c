#include <math.h>

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

double sora_retry_delay(double server_delay, int retries_taken, double jitter) {
  double backoff;
  if (server_delay > SORA_RETRY_AFTER_CAP) return -1;
  if (server_delay > 0) return server_delay;
  backoff = SORA_BACKOFF_INITIAL * pow(2.0, retries_taken);
  if (backoff > SORA_BACKOFF_MAX) backoff = SORA_BACKOFF_MAX;
  return backoff * (1.0 - 0.25 * jitter);
}
