/* File parts of multipart bodies. The API rejects a file part without a filename, and an
 * image part whose type is not a real image type, so both are always set: the type is
 * chosen from the file's bytes (media.c), not from its name.
 *
 * A path is opened once (never blocking on a FIFO, never inherited by a child), checked to be
 * a regular file on that descriptor, sniffed and streamed from it: nothing can swap the file
 * between a check and the read. Texts that become part headers (filename, content_type) cannot
 * carry CR, LF or NUL. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sora.h"

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* A file part's source: a path or bytes, and what it is called. Each string stays anchored on
 * the Lua stack while it is used (a proxy table's __index may return a string nothing else
 * holds, and run the collector). */
typedef struct file_source {
  const char *path, *data, *filename, *content_type;
  size_t path_len, data_len, filename_len, content_type_len;
} file_source;

/* Pushes t[key] and returns it as a string, or NULL when it is nil (or not text). */
static const char *push_table_string(lua_State *L, int t, const char *key, size_t *len) {
  lua_getfield(L, t, key);
  *len = 0;
  return lua_isnil(L, -1) ? NULL : lua_tolstring(L, -1, len);
}

/* Fills src; leaves the strings it points to on the stack. */
static void read_source(lua_State *L, int value, file_source *src) {
  memset(src, 0, sizeof *src);
  if (lua_type(L, value) == LUA_TSTRING) {
    src->path = lua_tolstring(L, value, &src->path_len);
    return;
  }
  src->path = push_table_string(L, value, "path", &src->path_len);
  src->data = push_table_string(L, value, "data", &src->data_len);
  src->filename = push_table_string(L, value, "filename", &src->filename_len);
  src->content_type = push_table_string(L, value, "content_type", &src->content_type_len);
}

static int has_line_break(const char *s, size_t len) {
  return memchr(s, '\r', len) || memchr(s, '\n', len) || memchr(s, '\0', len);
}

/* Raises for what cannot be sent safely: no source, a path with NUL (open would read another
 * file), a filename or content type that would inject part headers. */
static void check_source(lua_State *L, const sora_endpoint *e, const sora_field *f,
                         const file_source *src) {
  const char *name = src->filename ? src->filename : src->path ? base_name(src->path) : NULL;
  size_t name_len = src->filename ? src->filename_len : name ? strlen(name) : 0;
  if (src->path == NULL && src->data == NULL)
    sora_arg_error(L, e, 2, "field '%s' needs a path or data string", f->name);
  if (src->path && memchr(src->path, '\0', src->path_len))
    sora_arg_error(L, e, 2, "field '%s': the path contains NUL", f->name);
  if (name && has_line_break(name, name_len))
    sora_arg_error(L, e, 2, "field '%s': the filename contains CR, LF or NUL", f->name);
  if (src->content_type && has_line_break(src->content_type, src->content_type_len))
    sora_arg_error(L, e, 2, "field '%s': the content_type contains CR, LF or NUL", f->name);
}

/* Opens a path to upload: raises unless it names a regular file (a FIFO would block the host
 * for ever; a directory would be sent as an empty file). Returns the descriptor. */
static int open_regular(lua_State *L, const sora_endpoint *e, const sora_field *f, const char *path,
                        curl_off_t *size) {
  struct stat st;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) sora_arg_error(L, e, 2, "field '%s': cannot open '%s': %s", f->name, path, strerror(errno));
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    sora_arg_error(L, e, 2, "field '%s': '%s' is not a regular file", f->name, path);
  }
  *size = (curl_off_t)st.st_size;
  return fd;
}

/* The media type from the first bytes of the data or of the open file. */
static const char *sniff(const file_source *src, int fd) {
  unsigned char head[16];
  ssize_t n;
  if (src->data) {
    n = (ssize_t)(src->data_len < sizeof head ? src->data_len : sizeof head);
    memcpy(head, src->data, (size_t)n);
  } else {
    n = pread(fd, head, sizeof head, 0);
  }
  return n > 0 ? sora_sniff_type(head, (size_t)n) : NULL;
}

static int type_fits(sora_field_kind kind, const char *type) {
  if (type == NULL) return 0;
  if (kind == SORA_FIELD_IMAGE_REF) return strncmp(type, "image/", 6) == 0;
  return strncmp(type, "video/", 6) == 0;
}

/* ---- streaming a file from its descriptor (libcurl calls these as the body is sent) ---- */

static int fd_of(void *arg) { return (int)(intptr_t)arg; }

static size_t read_file(char *buffer, size_t size, size_t n, void *arg) {
  ssize_t got;
  do {
    got = read(fd_of(arg), buffer, size * n);
  } while (got < 0 && errno == EINTR);
  return got < 0 ? CURL_READFUNC_ABORT : (size_t)got;
}

/* A retry sends the body again from its start. */
static int seek_file(void *arg, curl_off_t offset, int origin) {
  return lseek(fd_of(arg), (off_t)offset, origin) == (off_t)-1 ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
}

static void close_file(void *arg) { close(fd_of(arg)); }

/* Gives the part its content: the data (copied by libcurl) or the descriptor, which the part
 * then owns and closes when the body is freed. */
static CURLcode set_content(curl_mimepart *part, const file_source *src, int fd, curl_off_t size) {
  if (src->data) return curl_mime_data(part, src->data, src->data_len);
  return curl_mime_data_cb(part, size, read_file, seek_file, close_file, (void *)(intptr_t)fd);
}

static void add_part(lua_State *L, sora_transfer *t, const sora_field *f, const file_source *src,
                     int fd, curl_off_t size, const char *type, const char *filename) {
  curl_mimepart *part = curl_mime_addpart(t->mime);
  CURLcode rc;
  if (part == NULL) {
    if (fd >= 0) close(fd);
    sora_raise(L, "sora: out of memory");
  }
  rc = set_content(part, src, fd, size); /* from here on the part owns fd */
  if (rc == CURLE_OK) rc = curl_mime_name(part, f->name);
  if (rc == CURLE_OK) rc = curl_mime_filename(part, filename);
  if (rc == CURLE_OK) rc = curl_mime_type(part, type);
  if (rc != CURLE_OK) sora_raise(L, "sora: cannot build the multipart body: %s", curl_easy_strerror(rc));
}

void sora_mime_add_file(lua_State *L, sora_transfer *t, const sora_field *f, int value) {
  int top = lua_gettop(L), fd = -1;
  curl_off_t size = 0;
  file_source src;
  const char *type, *filename;
  value = sora_absindex(L, value);
  read_source(L, value, &src);
  check_source(L, t->endpoint, f, &src);
  if (src.data == NULL) fd = open_regular(L, t->endpoint, f, src.path, &size);
  type = src.content_type ? src.content_type : sniff(&src, fd);
  if (!type_fits(f->kind, type)) {
    if (fd >= 0) close(fd);
    sora_arg_error(L, t->endpoint, 2, "field '%s': '%s' is not %s", f->name, src.path ? src.path : "data",
                   f->kind == SORA_FIELD_IMAGE_REF ? "a JPEG, PNG or WebP image"
                                                   : "an MP4, QuickTime or WebM video");
  }
  if (src.filename) filename = src.filename;
  else if (src.path) filename = base_name(src.path);
  else filename = lua_pushfstring(L, "%s%s", f->name, sora_media_extension(type));
  add_part(L, t, f, &src, fd, size, type, filename);
  lua_settop(L, top);
}
