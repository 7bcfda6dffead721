#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libcurl.h"

#include "headers.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int sora_header_split(const char *line, size_t len, const char **name, size_t *name_len,
                      const char **value, size_t *value_len) {
  const char *colon = memchr(line, ':', len);
  const char *v, *end = line + len;
  if (colon == NULL || colon == line) return 0;
  v = colon + 1;
  while (v < end && is_space(*v)) v++;
  while (end > v && is_space(end[-1])) end--;
  *name = line;
  *name_len = (size_t)(colon - line);
  *value = v;
  *value_len = (size_t)(end - v);
  return 1;
}

int sora_header_is(const char *name, size_t len, const char *lower) {
  size_t i;
  for (i = 0; i < len; i++) {
    if (lower[i] == '\0' || tolower((unsigned char)name[i]) != lower[i]) return 0;
  }
  return lower[len] == '\0';
}

long sora_parse_status_line(const char *line, size_t len) {
  size_t i = 5;
  long status = 0;
  int digits = 0;
  if (len < 12 || memcmp(line, "HTTP/", 5) != 0) return -1;
  while (i < len && line[i] != ' ') i++;
  while (i < len && line[i] == ' ') i++;
  for (; i < len && digits < 3 && isdigit((unsigned char)line[i]); i++, digits++)
    status = status * 10 + (line[i] - '0');
  return digits == 3 ? status : -1;
}

long long sora_parse_count(const char *s, size_t len) {
  long long n = 0;
  size_t i;
  if (len == 0 || len > 18) return -1; /* 18 digits cannot overflow */
  for (i = 0; i < len; i++) {
    if (!isdigit((unsigned char)s[i])) return -1;
    n = n * 10 + (s[i] - '0');
  }
  return n;
}

/* A decimal number such as "20" or "1.5"; -1 for anything else (inf, nan, garbage). */
static double parse_decimal(const char *s, size_t len) {
  char text[32];
  char *end;
  double d;
  size_t i;
  if (len == 0 || len >= sizeof text) return -1;
  for (i = 0; i < len; i++) {
    if (!isdigit((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '+') return -1;
  }
  memcpy(text, s, len);
  text[len] = '\0';
  d = strtod(text, &end);
  if (*end != '\0' || !isfinite(d)) return -1;
  return d;
}

double sora_parse_retry_after(const char *s, size_t len, time_t now) {
  char text[64];
  time_t when;
  double d = parse_decimal(s, len);
  if (d != -1 || len == 0) return d;
  if (len >= sizeof text) return -1;
  memcpy(text, s, len);
  text[len] = '\0';
  when = curl_getdate(text, NULL); /* an HTTP date */
  if (when == -1) return -1;
  return difftime(when, now);
}

double sora_parse_retry_after_ms(const char *s, size_t len) {
  double ms = parse_decimal(s, len);
  return ms == -1 ? -1 : ms / 1000.0;
}

/* Reads digits up to `stop`; returns the position after them, or NULL. */
static const char *read_number(const char *s, const char *end, char stop, long long *out) {
  const char *digits = s;
  while (s < end && *s != stop) s++;
  *out = sora_parse_count(digits, (size_t)(s - digits));
  return *out < 0 ? NULL : s;
}

int sora_parse_content_range(const char *s, size_t len, long long *start, long long *end,
                             long long *total) {
  const char *p = s + 6, *stop = s + len;
  if (len < 6 || !sora_header_is(s, 6, "bytes ")) return 0;
  if ((p = read_number(p, stop, '-', start)) == NULL || p == stop) return 0;
  if ((p = read_number(p + 1, stop, '/', end)) == NULL || p == stop || *end < *start) return 0;
  p++;
  if (stop - p == 1 && *p == '*') *total = -1;
  else if (read_number(p, stop, '\0', total) == NULL || *total <= *end) return 0;
  return 1;
}

int sora_parse_bool(const char *s, size_t len) {
  if (sora_header_is(s, len, "true")) return 1;
  if (sora_header_is(s, len, "false")) return 0;
  return -1;
}
