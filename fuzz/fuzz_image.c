/* libFuzzer harness for the image header reader (csrc/image.c): the bytes of a file a caller
 * passes as input_reference, read through the same offset reader create uses on a string.
 * Every length in a header comes from the file: ASan sees any read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../csrc/image.h"

typedef struct input {
  const unsigned char *data;
  size_t len;
  size_t reads; /* the reader is called a bounded number of times, whatever the input */
} input;

static void check(int ok) {
  if (!ok) abort();
}

static size_t read_input(void *ctx, unsigned long long offset, unsigned char *buf, size_t n) {
  input *in = ctx;
  in->reads++;
  if (offset >= in->len) return 0;
  if (n > in->len - offset) n = (size_t)(in->len - offset);
  memcpy(buf, in->data + offset, n);
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char *copy = malloc(size ? size : 1); /* exact size: no slack for a bad read */
  input in;
  sora_image_reader r;
  sora_image_size first, again;
  int known;
  if (copy == NULL) return 0;
  if (size) memcpy(copy, data, size);
  in.data = copy;
  in.len = size;
  in.reads = 0;
  r.read = read_input;
  r.ctx = &in;
  known = sora_image_read_size(&r, &first);
  check(in.reads <= 2 * 4096 + 4);
  if (known) {
    check(first.width > 0 && first.height > 0);
    check(first.width <= 0xFFFFFFFFul && first.height <= 0xFFFFFFFFul);
    /* a pure function of the bytes */
    check(sora_image_read_size(&r, &again) == 1);
    check(again.width == first.width && again.height == first.height);
  }
  free(copy);
  return 0;
}
