/* Media types from a file's first bytes (the API rejects an image part whose type is not a
 * real image type, and the name of a file says nothing reliable), and their extensions. */
#include <string.h>

#include "sora.h"

const char *sora_sniff_type(const unsigned char *b, size_t n) {
  if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return "image/png";
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "image/jpeg";
  if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) return "image/webp";
  if (n >= 12 && memcmp(b + 4, "ftyp", 4) == 0)
    return memcmp(b + 8, "qt  ", 4) == 0 ? "video/quicktime" : "video/mp4";
  if (n >= 4 && memcmp(b, "\x1a\x45\xdf\xa3", 4) == 0) return "video/webm";
  return NULL;
}

const char *sora_media_extension(const char *type) {
  if (strcmp(type, "image/png") == 0) return ".png";
  if (strcmp(type, "image/jpeg") == 0) return ".jpg";
  if (strcmp(type, "image/webp") == 0) return ".webp";
  if (strcmp(type, "video/quicktime") == 0) return ".mov";
  if (strcmp(type, "video/webm") == 0) return ".webm";
  if (strcmp(type, "video/mp4") == 0) return ".mp4";
  return "";
}
