/* An image's pixel size from its header (image.c): no Lua, no libcurl, so a fuzzer can drive
 * it alone. */
#ifndef SORA_IMAGE_H
#define SORA_IMAGE_H

#include <stddef.h>

#include "compat.h"

/* Bytes at an offset: a file read with pread, or a string in memory. Returns how many were
 * copied into buf (fewer than n at the end, or on an error). */
typedef struct sora_image_reader {
  size_t (*read)(void *ctx, unsigned long long offset, unsigned char *buf, size_t n);
  void *ctx;
} sora_image_reader;

typedef struct sora_image_size {
  unsigned long width, height;
} sora_image_size;

/* 1 with the size of a PNG, JPEG or WebP image; 0 for another format or a header that cannot
 * be read (truncated, malformed, a zero dimension). */
SORA_HIDDEN int sora_image_read_size(const sora_image_reader *r, sora_image_size *size);

#endif
