/* libFuzzer harness for the header parsers (csrc/headers.c) and the retry rules
 * (csrc/retry.c): pure functions of their bytes, so every input is also checked against the
 * invariants their callers rely on. Build and run: make fuzz. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../csrc/headers.h"
#include "../csrc/retry.h"

#define NOW ((time_t)1700000000) /* a fixed "now", so a date gives a reproducible delay */

static void check(int ok) {
  if (!ok) abort();
}

/* The whole input is offered to every parser, as a header line and as a value: what a server
 * controls. A few of its bytes also pick the arguments of the retry rules. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* an exact-size heap copy: ASan sees any read past the end */
  char *s = malloc(size ? size : 1);
  const char *name, *value;
  size_t name_len, value_len;
  long status;
  long long n;
  double d, delay;
  int b;
  if (s == NULL) return 0;
  if (size) memcpy(s, data, size);

  status = sora_parse_status_line(s, size);
  check(status == -1 || (status >= 0 && status <= 999));

  if (sora_header_split(s, size, &name, &name_len, &value, &value_len)) {
    check(name == s && name_len > 0 && name_len < size);
    check(value >= s + name_len + 1 && value + value_len <= s + size);
    (void)sora_header_is(name, name_len, "retry-after");
    (void)sora_header_is(name, name_len, "content-range");
    n = sora_parse_count(value, value_len);
    check(n >= -1);
    d = sora_parse_retry_after(value, value_len, NOW);
    check(!isnan(d));
    d = sora_parse_retry_after_ms(value, value_len);
    check(!isnan(d));
    b = sora_parse_bool(value, value_len);
    check(b >= -1 && b <= 1);
  }

  n = sora_parse_count(s, size);
  check(n >= -1 && (n == -1 || size <= 18));
  b = sora_parse_bool(s, size);
  check(b >= -1 && b <= 1);
  {
    long long start = 0, end = 0, total = 0;
    if (sora_parse_content_range(s, size, &start, &end, &total))
      check(start >= 0 && end >= start && (total == -1 || total > end));
  }

  /* retry-after as seconds or a date, then the delay the retry rules derive from it */
  d = sora_parse_retry_after(s, size, NOW);
  check(!isnan(d));
  delay = sora_retry_delay(d, size % 8, (double)(size % 97) / 97.0);
  check(delay == -1 || (delay >= 0 && delay <= SORA_RETRY_AFTER_CAP));
  d = sora_parse_retry_after_ms(s, size);
  delay = sora_retry_delay(d, size ? data[0] % 64 : 0, 0.5);
  check(delay == -1 || (delay >= 0 && delay <= SORA_RETRY_AFTER_CAP));
  if (size >= 3) {
    int code = data[0] % 100, should = (int)(data[1] % 3) - 1;
    long st = (long)data[2] * 4;
    b = sora_retryable((CURLcode)code, st, should);
    check(b == 0 || b == 1);
    /* a create's "maybe sent": the rest of the input as a 5xx body */
    b = sora_maybe_sent((CURLcode)code, st, (long)data[1] - 1, s + 3, size - 3);
    check(b == 0 || b == 1);
    check(!sora_is_api_error(s + 3, size - 3) || memchr(s + 3, '{', size - 3) != NULL);
  }
  free(s);
  return 0;
}
