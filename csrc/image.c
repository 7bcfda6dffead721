/* An image's pixel size from its header: PNG's IHDR, JPEG's start-of-frame segment, WebP's
 * VP8, VP8L or VP8X chunk. Only the header is read, through a reader that fetches bytes at an
 * offset, so a JPEG's large metadata segments are skipped, never read. Every length comes from
 * the file and is checked before use: a truncated or hostile header answers "unknown". */
#include <string.h>

#include "image.h"

#define JPEG_MAX_SEGMENTS 4096 /* real files have a few dozen before the frame */

static unsigned long be16(const unsigned char *b) { return (unsigned long)b[0] << 8 | b[1]; }
static unsigned long le16(const unsigned char *b) { return (unsigned long)b[1] << 8 | b[0]; }
static unsigned long le24(const unsigned char *b) { return (unsigned long)b[2] << 16 | le16(b); }
static unsigned long be32(const unsigned char *b) { return be16(b) << 16 | be16(b + 2); }

/* Whether n bytes at offset could be read into buf. */
static int read_exactly(const sora_image_reader *r, unsigned long long offset, unsigned char *buf,
                        size_t n) {
  return r->read(r->ctx, offset, buf, n) == n;
}

static int found(sora_image_size *size, unsigned long width, unsigned long height) {
  if (width == 0 || height == 0) return 0;
  size->width = width;
  size->height = height;
  return 1;
}

static int png_size(const sora_image_reader *r, sora_image_size *size) {
  unsigned char h[24];
  if (!read_exactly(r, 0, h, sizeof h) || memcmp(h + 12, "IHDR", 4) != 0) return 0;
  return found(size, be32(h + 16), be32(h + 20));
}

/* WebP: the first chunk after "RIFF....WEBP" says which bitstream follows. */
static int webp_size(const sora_image_reader *r, sora_image_size *size) {
  unsigned char h[30];
  size_t got = r->read(r->ctx, 0, h, sizeof h);
  if (got >= 30 && memcmp(h + 12, "VP8 ", 4) == 0) { /* lossy: after the start code 9d 01 2a */
    if (memcmp(h + 23, "\x9d\x01\x2a", 3) != 0) return 0;
    return found(size, le16(h + 26) & 0x3fff, le16(h + 28) & 0x3fff);
  }
  if (got >= 25 && memcmp(h + 12, "VP8L", 4) == 0) { /* lossless: 14-bit sizes minus one */
    if (h[20] != 0x2f) return 0;
    unsigned long bits = le24(h + 21) | (unsigned long)h[24] << 24;
    return found(size, (bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1);
  }
  if (got >= 30 && memcmp(h + 12, "VP8X", 4) == 0) /* extended: the canvas, 24-bit minus one */
    return found(size, le24(h + 24) + 1, le24(h + 27) + 1);
  return 0;
}

/* Start-of-frame markers: C0..CF but DHT (C4), JPG (C8) and DAC (CC). */
static int is_sof(unsigned char marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

/* Markers that stand alone, without a length: TEM and the restart markers RST0..7. */
static int is_standalone(unsigned char marker) {
  return marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7);
}

/* Walks the segments from after SOI to the first frame header; gives up at the scan (SOS),
 * the end (EOI), a byte that is not a marker, or too many segments. */
static int jpeg_size(const sora_image_reader *r, sora_image_size *size) {
  unsigned long long at = 2;
  unsigned char m[2], frame[7];
  int segments;
  for (segments = 0; segments < JPEG_MAX_SEGMENTS; segments++) {
    if (!read_exactly(r, at, m, 2) || m[0] != 0xFF) return 0;
    if (m[1] == 0xFF) { /* a fill byte before the marker */
      at += 1;
      continue;
    }
    if (is_standalone(m[1])) {
      at += 2;
      continue;
    }
    if (m[1] == 0xD8 || m[1] == 0xD9 || m[1] == 0xDA) return 0;
    /* length (2, counting itself), then for a frame: precision, height, width */
    if (!read_exactly(r, at + 2, frame, is_sof(m[1]) ? 7 : 2) || be16(frame) < 2) return 0;
    if (is_sof(m[1])) return be16(frame) >= 7 && found(size, be16(frame + 5), be16(frame + 3));
    at += 2 + be16(frame);
  }
  return 0;
}

int sora_image_read_size(const sora_image_reader *r, sora_image_size *size) {
  unsigned char magic[12];
  size_t got = r->read(r->ctx, 0, magic, sizeof magic);
  if (got >= 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0) return png_size(r, size);
  if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) return jpeg_size(r, size);
  if (got >= 12 && memcmp(magic, "RIFF", 4) == 0 && memcmp(magic + 8, "WEBP", 4) == 0)
    return webp_size(r, size);
  return 0;
}
