#include <stdlib.h>
#include <string.h>

#include "buffer.h"

/* Returns 0 when there is no memory; the buffer is then unchanged. */
int sora_buffer_reserve(sora_buffer *b, size_t extra) {
  size_t need, cap;
  char *data;
  if (extra > (size_t)-1 - b->len - 1) return 0;
  need = b->len + extra + 1; /* room for a terminating NUL */
  if (need <= b->cap) return 1;
  cap = b->cap ? b->cap : 256;
  while (cap < need) cap = cap > (size_t)-1 / 2 ? need : cap * 2;
  data = realloc(b->data, cap);
  if (data == NULL) return 0;
  b->data = data;
  b->cap = cap;
  return 1;
}

int sora_buffer_append(sora_buffer *b, const void *data, size_t len) {
  if (!sora_buffer_reserve(b, len)) return 0;
  if (len > 0) memcpy(b->data + b->len, data, len);
  b->len += len;
  return 1;
}

int sora_buffer_appendstr(sora_buffer *b, const char *s) {
  return sora_buffer_append(b, s, strlen(s));
}

const char *sora_buffer_cstr(sora_buffer *b) {
  if (!sora_buffer_reserve(b, 0)) return NULL;
  b->data[b->len] = '\0';
  return b->data;
}

void sora_buffer_free(sora_buffer *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
