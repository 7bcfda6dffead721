/* File parts of multipart bodies. The API rejects a file part without a filename, and an
 * image part whose type is not a real image type, so both are always set: the type is
 * chosen from the file's bytes, not from its name. */
#include <errno.h>
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

static const char *extension_of(const char *type) {
  if (strcmp(type, "image/png") == 0) return ".png";
  if (strcmp(type, "image/jpeg") == 0) return ".jpg";
  if (strcmp(type, "image/webp") == 0) return ".webp";
  if (strcmp(type, "video/quicktime") == 0) return ".mov";
  if (strcmp(type, "video/webm") == 0) return ".webm";
  if (strcmp(type, "video/mp4") == 0) return ".mp4";
  return "";
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* A file part's source: a path or bytes, and what it is called. */
typedef struct file_source {
  const char *path, *data, *filename, *content_type;
  size_t data_len;
} file_source;

static const char *table_string(lua_State *L, int t, const char *key, size_t *len) {
  const char *s;
  lua_getfield(L, t, key);
  s = lua_tolstring(L, -1, len);
  lua_pop(L, 1); /* the table keeps the string alive */
  return s;
}

static void read_source(lua_State *L, int value, file_source *src) {
  memset(src, 0, sizeof *src);
  if (lua_type(L, value) == LUA_TSTRING) {
    src->path = lua_tostring(L, value);
    return;
  }
  src->path = table_string(L, value, "path", NULL);
  src->data = table_string(L, value, "data", &src->data_len);
  src->filename = table_string(L, value, "filename", NULL);
  src->content_type = table_string(L, value, "content_type", NULL);
}

/* The media type from the first bytes; raises naming the field when the file cannot be read. */
static const char *sniff_source(lua_State *L, const sora_endpoint *e, const sora_field *f,
                                const file_source *src) {
  unsigned char head[16];
  size_t n;
  if (src->data) {
    n = src->data_len < sizeof head ? src->data_len : sizeof head;
    memcpy(head, src->data, n);
  } else {
    FILE *file = fopen(src->path, "rb");
    if (file == NULL)
      sora_arg_error(L, e, 2, "field '%s': cannot open '%s': %s", f->name, src->path, strerror(errno));
    n = fread(head, 1, sizeof head, file);
    fclose(file);
  }
  return sora_sniff_type(head, n);
}

static int type_fits(sora_field_kind kind, const char *type) {
  if (type == NULL) return 0;
  if (kind == SORA_FIELD_IMAGE_REF) return strncmp(type, "image/", 6) == 0;
  return strncmp(type, "video/", 6) == 0;
}

void sora_mime_add_file(lua_State *L, sora_transfer *t, const sora_field *f, int value) {
  file_source src;
  const char *type, *filename;
  curl_mimepart *part;
  CURLcode rc;
  read_source(L, value, &src);
  type = src.content_type ? src.content_type : sniff_source(L, t->endpoint, f, &src);
  if (!type_fits(f->kind, type))
    sora_arg_error(L, t->endpoint, 2, "field '%s': '%s' is not %s", f->name, src.path ? src.path : "data",
               f->kind == SORA_FIELD_IMAGE_REF ? "a JPEG, PNG or WebP image"
                                               : "an MP4, QuickTime or WebM video");
  if (src.filename) filename = src.filename;
  else if (src.path) filename = base_name(src.path);
  else filename = lua_pushfstring(L, "%s%s", f->name, extension_of(type));
  part = curl_mime_addpart(t->mime);
  if (part == NULL) luaL_error(L, "sora: out of memory");
  rc = curl_mime_name(part, f->name);
  /* a path is streamed by libcurl as the body is sent, never read into memory */
  if (rc == CURLE_OK) rc = src.data ? curl_mime_data(part, src.data, src.data_len)
                                    : curl_mime_filedata(part, src.path);
  if (rc == CURLE_OK) rc = curl_mime_filename(part, filename);
  if (rc == CURLE_OK) rc = curl_mime_type(part, type);
  if (rc == CURLE_READ_ERROR)
    sora_arg_error(L, t->endpoint, 2, "field '%s': cannot read '%s'", f->name, src.path);
  if (rc != CURLE_OK) luaL_error(L, "sora: cannot build the multipart body: %s", curl_easy_strerror(rc));
}
