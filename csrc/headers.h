/* Parsers for the response headers sora acts on. Pure functions of their text: no Lua, no
 * libcurl state, so they can be fuzzed on their own. */
#ifndef SORA_HEADERS_H
#define SORA_HEADERS_H

#include <stddef.h>
#include <time.h>

#include "compat.h"

/* Splits "Name: value\r\n" into a name and a trimmed value; 0 when it is not such a line. */
SORA_HIDDEN int sora_header_split(const char *line, size_t len, const char **name, size_t *name_len,
                                  const char **value, size_t *value_len);
/* Case-insensitive comparison of a header name of known length with a lower-case name. */
SORA_HIDDEN int sora_header_is(const char *name, size_t len, const char *lower);
/* The status code of "HTTP/1.1 200 OK"; -1 when the line is not a status line. */
SORA_HIDDEN long sora_parse_status_line(const char *line, size_t len);
/* A non-negative decimal integer, or -1. */
SORA_HIDDEN long long sora_parse_count(const char *s, size_t len);
/* Seconds to wait from a retry-after value (seconds or an HTTP date, relative to now), or
 * -1 when it says nothing usable. */
SORA_HIDDEN double sora_parse_retry_after(const char *s, size_t len, time_t now);
/* Seconds from a retry-after-ms value, or -1. */
SORA_HIDDEN double sora_parse_retry_after_ms(const char *s, size_t len);
/* "bytes START-END/TOTAL" (TOTAL may be "*", given as -1); 0 when it is not that form. */
SORA_HIDDEN int sora_parse_content_range(const char *s, size_t len, long long *start, long long *end,
                                         long long *total);
/* 1 for "true", 0 for "false", -1 for anything else. */
SORA_HIDDEN int sora_parse_bool(const char *s, size_t len);

#endif
