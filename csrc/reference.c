/* create's local check of a file input_reference: the API rejects an image whose pixel size is
 * not the requested size, after the upload (and the request) is paid for. The image's header
 * is read here first; a mismatch is answered as the API would, and nothing is sent. What cannot
 * be read (another format, a truncated header, a file that will not open) is left to the
 * upload, which reports its own errors, and to the server. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "sora.h"

#define DEFAULT_SIZE "720x1280" /* the API's, when create is given none */

typedef struct memory_source {
  const unsigned char *data;
  size_t len;
} memory_source;

static size_t read_memory(void *ctx, unsigned long long offset, unsigned char *buf, size_t n) {
  const memory_source *m = ctx;
  if (offset >= m->len) return 0;
  if (n > m->len - offset) n = (size_t)(m->len - offset);
  memcpy(buf, m->data + offset, n);
  return n;
}

static size_t read_fd(void *ctx, unsigned long long offset, unsigned char *buf, size_t n) {
  int fd = *(const int *)ctx;
  ssize_t got;
  do {
    got = pread(fd, buf, n, (off_t)offset);
  } while (got < 0 && errno == EINTR);
  return got < 0 ? 0 : (size_t)got;
}

/* The size of the image at path; 0 when it is not a regular file that opens (a FIFO would
 * block) or has no readable header. */
static int file_size(const char *path, sora_image_size *size) {
  sora_image_reader r;
  struct stat st;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), known = 0;
  if (fd < 0) return 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    r.read = read_fd;
    r.ctx = &fd;
    known = sora_image_read_size(&r, size);
  }
  close(fd);
  return known;
}

static int data_size(const char *data, size_t len, sora_image_size *size) {
  memory_source m;
  sora_image_reader r;
  m.data = (const unsigned char *)data;
  m.len = len;
  r.read = read_memory;
  r.ctx = &m;
  return sora_image_read_size(&r, size);
}

/* The size of the file reference at value (a path, {path = ...} or {data = ...}). */
static int reference_size(lua_State *L, int value, sora_image_size *size) {
  const char *text;
  size_t len;
  int known;
  if (lua_type(L, value) == LUA_TSTRING) return file_size(lua_tostring(L, value), size);
  lua_getfield(L, value, "data");
  if (lua_type(L, -1) == LUA_TSTRING) {
    text = lua_tolstring(L, -1, &len);
    known = data_size(text, len, size);
  } else {
    lua_getfield(L, value, "path");
    text = lua_tolstring(L, -1, &len);
    known = text && strlen(text) == len && file_size(text, size);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return known;
}

/* The requested size as WIDTHxHEIGHT; 0 for a text of another shape (the server judges it). */
static int requested_size(const char *text, sora_image_size *size) {
  char *end;
  if (*text < '0' || *text > '9') return 0;
  size->width = strtoul(text, &end, 10);
  if (*end != 'x' || end[1] < '0' || end[1] > '9') return 0;
  size->height = strtoul(end + 1, &end, 10);
  return *end == '\0';
}

/* Pushes nil and the error the API answers, status 400 included (its kind says so, and a
 * program tells it from the server's by nothing but the missing request id: none was made). */
static void push_mismatch(lua_State *L, const sora_image_size *image, const char *size_text) {
  char dims[48];
  snprintf(dims, sizeof dims, "%lux%lu", image->width, image->height);
  lua_pushnil(L);
  lua_pushfstring(L, "Inpaint image must match the requested width and height: input_reference "
                     "is %s, but size is %s.", dims, size_text);
  sora_push_error(L, "bad_request", 400, lua_tostring(L, -1)); /* nil, message, err */
  lua_remove(L, -2);
  lua_pushliteral(L, "input_reference");
  lua_setfield(L, -2, "param");
  lua_pushliteral(L, "invalid_value");
  lua_setfield(L, -2, "code");
  lua_pushliteral(L, "invalid_request_error");
  lua_setfield(L, -2, "type");
}

/* The size text stays valid after the pops: the options' copy at params holds it. */
int sora_reference_fits(lua_State *L, const sora_field *f, int params) {
  sora_image_size image, wanted;
  const char *size_text;
  int fits = 1;
  params = sora_absindex(L, params);
  lua_getfield(L, params, "check_reference"); /* check */
  lua_getfield(L, params, "size");            /* check, size */
  lua_getfield(L, params, f->name);           /* check, size, reference */
  size_text = lua_isnil(L, -2) ? DEFAULT_SIZE : lua_tostring(L, -2);
  if ((lua_isnil(L, -3) || lua_toboolean(L, -3)) && size_text &&
      sora_is_file_value(L, -1, f->kind) && requested_size(size_text, &wanted) &&
      reference_size(L, lua_gettop(L), &image))
    fits = image.width == wanted.width && image.height == wanted.height;
  lua_pop(L, 3);
  if (!fits) push_mismatch(L, &image, size_text);
  return fits;
}
