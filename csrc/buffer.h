/* A growable byte buffer that is cleared, not freed, between uses. */
#ifndef SORA_BUFFER_H
#define SORA_BUFFER_H

#include <stddef.h>

#include "compat.h"

typedef struct sora_buffer {
  char *data;
  size_t len, cap;
} sora_buffer;

SORA_HIDDEN int sora_buffer_reserve(sora_buffer *b, size_t extra);
SORA_HIDDEN int sora_buffer_append(sora_buffer *b, const void *data, size_t len);
SORA_HIDDEN int sora_buffer_appendstr(sora_buffer *b, const char *s);
SORA_HIDDEN const char *sora_buffer_cstr(sora_buffer *b); /* NUL-terminated view */
SORA_HIDDEN void sora_buffer_free(sora_buffer *b);
#define sora_buffer_clear(b) ((b)->len = 0)

#endif
