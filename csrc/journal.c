/* What a batch's journal (lua/sora/journal.lua) needs from C: a line appended and on the disk
 * before the step it records goes ahead, the SHA-256 of a downloaded file, and a Video handle
 * made again from the fields a journal recorded. lua/sora/batch.lua decides what to record.
 *
 *   core._append_durable(path, line) -> true, or nil and why (line written whole, then fsync)
 *   core._sha256_file(path)          -> the hex digest and the size, or nil and why
 *   core._sha256(bytes)              -> the hex digest of a string
 *   core._video(client, fields)      -> a Video of client from an API Video object's fields,
 *                                       or nil and what is wrong with them
 *   core._remove_temporaries(path)   -> how many `<path>.sora-XXXXXX` files it removed: what
 *                                       downloads to path killed before their rename left */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sora.h"

#define HASH_CHUNK 65536

static int push_failure(lua_State *L, const char *path, int code) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", path, strerror(code));
  return 2;
}

/* Writes all of bytes to fd (a write may take part of them, a signal may interrupt it). */
static int write_all(int fd, const char *bytes, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, bytes, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 0;
    bytes += n;
    len -= (size_t)n;
  }
  return 1;
}

/* One open, one write, one fsync per record: a record is on the disk when this returns, and a
 * process killed in between leaves at most a torn last line, which the reader ignores. */
static int core_append_durable(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *line = luaL_checklstring(L, 2, &len);
  struct stat st;
  int created = stat(path, &st) != 0, fd, ok, code;
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return push_failure(L, path, errno);
  ok = write_all(fd, line, len) && fsync(fd) == 0;
  code = errno;
  close(fd);
  if (!ok) return push_failure(L, path, code);
  if (created && !sora_sync_directory(path)) return push_failure(L, path, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* 2n lower-case hex digits of bytes into out (no terminating NUL). */
void sora_hex_encode(const unsigned char *bytes, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
}

static void push_hex(lua_State *L, const unsigned char *digest, unsigned int len) {
  char hex[2 * EVP_MAX_MD_SIZE];
  sora_hex_encode(digest, len, hex);
  lua_pushlstring(L, hex, 2 * (size_t)len);
}

/* Hashes fd to its end into ctx; the byte count in *size. 0 with errno on a read error. */
static int hash_fd(EVP_MD_CTX *ctx, int fd, lua_Integer *size) {
  unsigned char buffer[HASH_CHUNK];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 0;
    if (n == 0) return 1;
    if (EVP_DigestUpdate(ctx, buffer, (size_t)n) != 1) return errno = EIO, 0;
    *size += n;
  }
}

static int core_sha256_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  lua_Integer size = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC), ok, code;
  EVP_MD_CTX *ctx;
  if (fd < 0) return push_failure(L, path, errno);
  ctx = EVP_MD_CTX_new();
  ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && hash_fd(ctx, fd, &size) &&
       EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1;
  code = ok ? 0 : (errno ? errno : EIO);
  EVP_MD_CTX_free(ctx);
  close(fd);
  if (!ok) return push_failure(L, path, code);
  push_hex(L, digest, digest_len);
  lua_pushinteger(L, size);
  return 2;
}

static int core_sha256(lua_State *L) {
  size_t len;
  const char *bytes = luaL_checklstring(L, 1, &len);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_Digest(bytes, len, digest, &digest_len, EVP_sha256(), NULL) != 1)
    return luaL_error(L, "sora: SHA-256 failed in libcrypto");
  push_hex(L, digest, digest_len);
  return 1;
}

/* The fields are checked and normalised as an answer's would be (marshal.c), in place. */
static int core_video(lua_State *L) {
  luaL_checkudata(L, 1, SORA_CLIENT);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (sora_marshal(L, SORA_RESULT_VIDEO, 2, 1, -1)) return 1;
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* True when name is base followed by ".sora-" and six letters or digits (download.c's
 * TEMP_SUFFIX as mkostemp fills it). */
static int is_temporary_of(const char *name, const char *base) {
  size_t len = strlen(base), i;
  if (strncmp(name, base, len) != 0 || strncmp(name + len, ".sora-", 6) != 0) return 0;
  name += len + 6;
  for (i = 0; i < 6; i++)
    if (!isalnum((unsigned char)name[i])) return 0;
  return name[6] == '\0';
}

/* Only the caller knows that no download to path is running (a batch owns its outputs): the
 * temporaries are removed on its word. */
static int core_remove_temporaries(lua_State *L) {
  const char *path = luaL_checkstring(L, 1), *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  lua_Integer removed = 0;
  struct dirent *entry;
  DIR *d;
  if (dir == NULL) return luaL_error(L, "sora: out of memory");
  d = opendir(dir);
  while (d && *base && (entry = readdir(d)) != NULL) {
    char full[4096];
    if (!is_temporary_of(entry->d_name, base)) continue;
    if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, entry->d_name) >= sizeof full) continue;
    if (unlink(full) == 0) removed++;
  }
  if (d) closedir(d);
  free(dir);
  lua_pushinteger(L, removed);
  return 1;
}

void sora_open_journal(lua_State *L) {
  static const luaL_Reg functions[] = {
      {"_append_durable", core_append_durable}, {"_sha256_file", core_sha256_file},
      {"_sha256", core_sha256}, {"_video", core_video},
      {"_remove_temporaries", core_remove_temporaries}, {NULL, NULL}};
  const luaL_Reg *f;
  for (f = functions; f->name; f++) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, -2, f->name);
  }
}
