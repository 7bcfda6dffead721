/* Where the body of a successful content response goes: a string, or a temporary file
 * `<target>.sora-XXXXXX` renamed into place only when whole. (A Lua sink is run by the engine,
 * which asks sora_download_accept first: a destination never calls back into the engine.)
 *
 * A download cut short is resumed with a Range request. Every answer must add up: a 206 only
 * to a request that asked for a range, starting where we stopped, its Content-Range agreeing
 * with its body and with the first answer's length. A 200 to a resume is the whole body again:
 * it restarts a string or a file, but not a sink, which cannot take back what it was given. */
#define _GNU_SOURCE /* mkostemp, renameat2 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sora.h"

/* The temporary file beside the target: mkostemp fills in the X's. */
#define TEMP_SUFFIX ".sora-XXXXXX"

/* A file is written 16 KiB at a time, each write at a multiple of 16 KiB of the file. libcurl
 * hands a body over in pieces of at most 16 KiB, the first one short (after the headers), which
 * stdio (a 4 KiB buffer) passed on as two write(2)s, 4 and 12 KiB: 131,000 per GiB, and pieces
 * of page-cache folios. Gathered into whole 16 KiB writes they are half as many and each fills
 * one folio: 1 GiB to a file took 0.52 s instead of 0.9 (docs/performance.md). Larger writes
 * make larger folios, which on a VM that hands free memory back to its host (virtio-balloon
 * free page reporting) often come from pages the host must fault in again: 128 KiB writes took
 * 0.2 s or 1.2 s per GiB, by the run. The pieces are gathered in the transfer's content buffer
 * (a string download's body, unused for a file); the stream itself is unbuffered. */
#define FILE_WRITE_BYTES ((size_t)16 << 10)

static int set_io_error(sora_transfer *t, int err) {
  t->io_errno = err ? err : EIO;
  return 0;
}

/* Marks the answer as one that cannot be kept; returns 0. */
static int set_invalid(sora_transfer *t, const char *why) {
  t->invalid = why;
  t->bad_range = 1; /* no retry: the server would answer the same */
  return 0;
}

const char *sora_download_error(const sora_transfer *t) {
  return t->not_regular ? "not a regular file" : strerror(t->io_errno);
}

/* Empties the destination (a new body starts from byte 0). A file with nothing written to it
 * yet (its bytes, if any, still gathered) is left alone: truncating a fresh file makes ext4
 * flush it whole at close (auto_da_alloc), which would stall the host at the end of every
 * download. */
static int restart(sora_transfer *t) {
  int written = t->received > (curl_off_t)t->content.len;
  t->received = 0;
  sora_buffer_clear(&t->content);
  if (t->file && written && (ftruncate(fileno(t->file), 0) != 0 || fseek(t->file, 0, SEEK_SET) != 0))
    return set_io_error(t, errno);
  return 1;
}

/* Writes the gathered bytes to the file. */
static int write_gathered(sora_transfer *t) {
  size_t len = t->content.len;
  t->content.len = 0;
  if (len > 0 && fwrite(t->content.data, 1, len, t->file) != len) return set_io_error(t, errno);
  return 1;
}

/* Adds a piece of the body to the file's gathered bytes, writing them out each time they
 * reach FILE_WRITE_BYTES, so that every write starts at a multiple of it. */
static int gather(sora_transfer *t, const char *data, size_t len) {
  while (len > 0) {
    size_t room = FILE_WRITE_BYTES - t->content.len;
    size_t part = len < room ? len : room;
    if (!sora_buffer_append(&t->content, data, part)) return set_io_error(t, ENOMEM);
    if (t->content.len == FILE_WRITE_BYTES && !write_gathered(t)) return 0;
    data += part;
    len -= part;
  }
  return 1;
}

int sora_download_begin_attempt(sora_transfer *t) {
  CURL *easy = t->handle->easy;
  t->resume_from = t->received;
  t->checked_start = 0;
  if (t->resume_from > 0) {
    char range[32];
    snprintf(range, sizeof range, "%lld-", (long long)t->resume_from);
    return curl_easy_setopt(easy, CURLOPT_RANGE, range) == CURLE_OK || set_io_error(t, ENOMEM);
  }
  curl_easy_setopt(easy, CURLOPT_RANGE, (void *)NULL);
  t->expected_total = -1;
  return restart(t);
}

/* The total a 206 claims, or the first answer's length when its Content-Range says "*". */
static curl_off_t partial_total(const sora_transfer *t) {
  return t->range_total >= 0 ? t->range_total : t->expected_total;
}

/* A 206: only to a resume, from where we stopped, to the end of the same whole body. */
static int check_partial(sora_transfer *t) {
  curl_off_t total = partial_total(t);
  if (t->resume_from == 0) return set_invalid(t, "a 206 partial answer to a request for the whole body");
  if (t->range_start < 0) return set_invalid(t, "a 206 partial answer without a valid Content-Range");
  if (t->range_start != t->resume_from) {
    t->bad_range = 1; /* outcome.c says where it broke off */
    return 0;
  }
  if (t->expected_total >= 0 && t->range_total >= 0 && t->range_total != t->expected_total)
    return set_invalid(t, "the resumed answer's Content-Range total differs from the first answer's length");
  if (total >= 0 && t->range_end + 1 != total)
    return set_invalid(t, "the resumed answer's Content-Range does not reach the end of the body");
  if (t->content_length >= 0 && t->content_length != t->range_end - t->range_start + 1)
    return set_invalid(t, "the resumed answer's Content-Range disagrees with its Content-Length");
  t->expected_total = total;
  return 1;
}

/* Once per attempt, when the answer's headers are in (at its first bytes, or at its end when
 * it has none): returns 0 when the answer cannot be part of the body. */
int sora_download_accept(sora_transfer *t) {
  if (t->checked_start) return t->invalid == NULL && !t->bad_range;
  t->checked_start = 1;
  if (t->status == 206) return check_partial(t);
  if (t->resume_from > 0) {
    if (t->sink == SORA_SINK_FUNCTION) {
      t->bad_range = 1; /* the sink already has the first bytes */
      return 0;
    }
    t->resume_from = 0;
    if (!restart(t)) return 0;
  }
  t->expected_total = t->content_length;
  return 1;
}

/* Writes to a string or a file; a sink's chunks are given by the engine. */
size_t sora_download_write(sora_transfer *t, const char *data, size_t len) {
  if (!sora_download_accept(t)) return 0;
  if (t->sink == SORA_SINK_FILE) {
    if (!gather(t, data, len)) return 0;
  } else if (t->sink == SORA_SINK_STRING) {
    if (!sora_buffer_append(&t->content, data, len)) return set_io_error(t, ENOMEM);
  }
  return len;
}

/* The size the whole body will have, or -1 when the server did not say. */
curl_off_t sora_download_total(const sora_transfer *t) { return t->expected_total; }

/* Whether everything announced arrived: the whole length, and a 206's body exactly the range
 * it claimed. libcurl has already framed the body (a short one is CURLE_PARTIAL_FILE). */
int sora_download_whole(sora_transfer *t) {
  if (!sora_download_accept(t)) return 0;
  if (t->status == 206 && t->received - t->resume_from != t->range_end - t->range_start + 1)
    return set_invalid(t, "the resumed answer's body disagrees with its Content-Range");
  return t->expected_total < 0 || t->received == t->expected_total;
}

/* The directory holding path (malloc'd), or NULL when out of memory. */
static char *directory_of(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
}

/* fsync of the directory holding path: the rename itself survives a crash. */
int sora_sync_directory(const char *path) {
  char *dir = directory_of(path);
  int fd, ok;
  if (dir == NULL) return 0;
  fd = open(dir, O_RDONLY | O_CLOEXEC);
  free(dir);
  if (fd < 0) return 0;
  ok = fsync(fd) == 0;
  close(fd);
  return ok;
}

/* Writes what is still gathered and, for a durable download, syncs the file. */
static int complete_file(sora_transfer *t) {
  if (!write_gathered(t)) return 0;
  if (t->durable && fsync(fileno(t->file)) != 0) return set_io_error(t, errno);
  return 1;
}

/* Closes the temporary file (completed first when it is kept) and lets go of the gathering
 * buffer. Returns 0, the error kept, when a file to keep failed. */
static int close_file(sora_transfer *t, int keep) {
  int ok = !keep || complete_file(t);
  if (fclose(t->file) != 0 && keep && ok) ok = set_io_error(t, errno);
  t->file = NULL;
  sora_buffer_free(&t->content);
  return ok;
}

/* ---- replacing a file: what this path assumes, each checked where it acts ---------------
 * 1. Bytes go only to sora's own temporary file: made by mkostemp (O_EXCL, a random name beside
 *    the target), the only file written, gathered into or truncated (restart) until the end.
 * 2. The target is a regular file or absent (target_mode, at open). The exchange swaps the name
 *    path alone: every other name of the old file (a hard link) and every descriptor open on it
 *    keeps it as it was. Whatever the exchange took out of place is checked: a directory or a
 *    device put there since the open is put back (move_into_place).
 * 3. ext4 frees a file's blocks in the unlink (or the last close) that ends it: 25-35 ms for a
 *    300 MB video, a stalled step. So the replaced file is unlinked at once (its name is gone:
 *    nothing is left behind if the process dies) but kept open, and the client's next drives
 *    truncate it a slice at a time (RELEASE_SLICE in client.c), then close it. Truncating
 *    changes the file for whoever else reaches it, so it is done only when no one else can: no
 *    name left after the unlink (st_nlink 0) and no other open descriptor, in this process or
 *    any other (a write lease is granted only then; without leases, or when the lease is
 *    refused, the file is closed at once and the kernel frees it when its last user lets go).
 * 4. Downloaded bytes take the replaced file's permission bits, never its setuid, setgid or
 *    sticky bit (target_mode): those belonged to the old program, not to a server's bytes.
 * 5. The temporary file is reached through the directory it was made in (dir_fd), never again
 *    by its path: a directory moved away during the download (another put in its place) still
 *    gives it up, moved to the path named, or removed, so nothing is left behind anywhere. */

/* Whether the unlinked file open at fd is seen by no one else: no name, no other descriptor. */
static int seen_only_here(int fd, const struct stat *st) {
  if (st->st_nlink != 0 || !S_ISREG(st->st_mode)) return 0; /* a hard link still names it */
#ifdef F_SETLEASE
  if (fcntl(fd, F_SETLEASE, F_WRLCK) != 0) return 0; /* open elsewhere (EAGAIN), or no leases */
  fcntl(fd, F_SETLEASE, F_UNLCK);
  return 1;
#else
  (void)fd;
  return 0; /* no way to know who else has it open */
#endif
}

/* Unlinks the old file, now at the temporary name; its space is released later when it is
 * large and only ours. */
static void release_later(sora_transfer *t) {
  struct stat st;
  sora_released *r;
  int fd = openat(t->dir_fd, t->temp_name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  unlinkat(t->dir_fd, t->temp_name, 0);
  if (fd < 0) return; /* unlink freed it already */
  r = NULL;
  if (t->client && fstat(fd, &st) == 0 && st.st_size > 0 && seen_only_here(fd, &st)) r = malloc(sizeof *r);
  if (r == NULL) {
    close(fd);
    return;
  }
  r->fd = fd;
  r->size = st.st_size;
  r->next = t->client->released;
  t->client->released = r;
}

void sora_download_release(sora_released **list, off_t slice) {
  while (*list != NULL) {
    sora_released *r = *list;
    off_t left = slice < 0 || r->size <= slice ? 0 : r->size - slice;
    if (left > 0 && ftruncate(r->fd, left) == 0) {
      r->size = left;
      return;
    }
    close(r->fd); /* the last slice, or all that is left when truncating failed */
    *list = r->next;
    free(r);
    if (slice >= 0) return;
  }
}

/* Moves the temporary file over the target. An existing target is exchanged with it in one
 * atomic step and the old file then released: ext4 writes a whole file out, synchronously,
 * when a plain rename replaces another file (auto_da_alloc), which stalled the host's step for
 * 180 ms at the end of a 300 MB download. A durable download has synced already. */
static int move_into_place(sora_transfer *t) {
#ifdef RENAME_EXCHANGE
  if (!t->durable && renameat2(t->dir_fd, t->temp_name, AT_FDCWD, t->path, RENAME_EXCHANGE) == 0) {
    struct stat old; /* now at the temporary name */
    if (fstatat(t->dir_fd, t->temp_name, &old, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(old.st_mode) &&
        !S_ISLNK(old.st_mode)) {
      renameat2(t->dir_fd, t->temp_name, AT_FDCWD, t->path, RENAME_EXCHANGE); /* put it back */
      t->not_regular = 1;
      errno = EINVAL;
      return 0;
    }
    release_later(t);
    return 1;
  }
  /* no target yet (ENOENT), or a system without the exchange: a plain rename */
#endif
  return renameat(t->dir_fd, t->temp_name, AT_FDCWD, t->path) == 0;
}

/* Closes the temporary file and moves it into place when keep is set, else removes it. */
void sora_download_close(sora_transfer *t, int keep) {
  if (t->file == NULL) return;
  if (!close_file(t, keep)) keep = 0;
  if (keep && !move_into_place(t)) {
    set_io_error(t, errno);
    keep = 0;
  }
  if (keep && t->durable && !sora_sync_directory(t->path)) set_io_error(t, errno); /* in place, not durable */
  if (!keep) unlinkat(t->dir_fd, t->temp_name, 0);
  close(t->dir_fd);
  t->dir_fd = -1;
}

/* Opens the directory path is in (dir_fd) and points temp_name at temp_path's last part. */
static int open_directory(sora_transfer *t, const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = directory_of(path);
  if (dir == NULL) return set_io_error(t, ENOMEM);
  t->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (t->dir_fd < 0) return set_io_error(t, errno);
  t->temp_name = t->temp_path + (slash ? (size_t)(slash - path) + 1 : 0);
  return 1;
}

static mode_t current_umask(void) {
  mode_t mask = umask(0);
  umask(mask);
  return mask;
}

/* The mode the file gets: a replaced file keeps its permissions (0600 stays 0600) but not its
 * setuid, setgid or sticky bit (4755 becomes 0755), a new one a file's usual mode. Returns 0
 * for a target that is not a regular file (a device, a FIFO, a socket: renaming over it would
 * replace /dev/null itself when run as root). */
static int target_mode(sora_transfer *t, const char *path, mode_t *mode) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno != ENOENT) return set_io_error(t, errno);
    *mode = 0666 & ~current_umask();
    return 1;
  }
  if (S_ISDIR(st.st_mode)) return set_io_error(t, EISDIR);
  if (!S_ISREG(st.st_mode)) {
    t->not_regular = 1;
    return set_io_error(t, EINVAL);
  }
  *mode = st.st_mode & 0777;
  return 1;
}

/* A temporary file no child process inherits. */
static int make_temp(char *template) {
#if defined(__GLIBC__) || defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__)
  return mkostemp(template, O_CLOEXEC);
#else
  int fd = mkstemp(template);
  if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
#endif
}

/* The temporary file beside the target: renamed into place only when the body is whole. */
int sora_download_open(sora_transfer *t, const char *path) {
  int fd;
  mode_t mode;
  size_t path_len = strlen(path);
  t->path = strdup(path);
  t->temp_path = malloc(path_len + sizeof TEMP_SUFFIX);
  if (t->path == NULL || t->temp_path == NULL) return set_io_error(t, ENOMEM);
  if (!target_mode(t, path, &mode)) return 0;
  /* the gathering buffer (gather), whole at once */
  if (!sora_buffer_reserve(&t->content, FILE_WRITE_BYTES)) return set_io_error(t, ENOMEM);
  memcpy(t->temp_path, path, path_len);
  memcpy(t->temp_path + path_len, TEMP_SUFFIX, sizeof TEMP_SUFFIX); /* with its NUL */
  if (!open_directory(t, path)) return 0;
  fd = make_temp(t->temp_path);
  if (fd >= 0) {
    fchmod(fd, mode); /* mkstemp makes 0600 */
    t->file = fdopen(fd, "wb");
  }
  if (t->file == NULL) {
    int err = errno;
    if (fd >= 0) {
      close(fd);
      unlinkat(t->dir_fd, t->temp_name, 0);
    }
    close(t->dir_fd);
    t->dir_fd = -1;
    return set_io_error(t, err);
  }
  setvbuf(t->file, NULL, _IONBF, 0); /* gather writes whole 16 KiB; stdio would copy again */
  t->sink = SORA_SINK_FILE;
  return 1;
}

/* Whether the directory that holds file_path's file exists (cutting file_path there): an
 * ENOENT from a create in a directory that exists (Linux's /proc) is no missing directory. */
static int parent_exists(char *file_path) {
  struct stat st;
  char *slash = strrchr(file_path, '/');
  if (slash == NULL) return 1; /* the current directory */
  slash[slash == file_path ? 1 : 0] = '\0';
  return stat(file_path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whether a download could be written to path, checked before anything is paid for (generate
 * creates a video first): the target is absent or a regular file, and a temporary file can be
 * made beside it, which is what a download does first. Trying is the only honest test: access(2)
 * says yes to root on a read-only file system and knows nothing of ACLs. Returns NULL when it
 * can, else why not (a static string, or strerror's). */
const char *sora_download_check(const char *path) {
  struct stat st;
  size_t path_len = strlen(path);
  char *temp_path;
  int fd, err;
  if (path_len == 0) return "empty path";
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return "is a directory";
    if (!S_ISREG(st.st_mode)) return "is not a regular file";
  } else if (errno != ENOENT) {
    return errno == ENOTDIR ? "a directory in the path is a file" : strerror(errno);
  }
  temp_path = malloc(path_len + sizeof TEMP_SUFFIX);
  if (temp_path == NULL) return strerror(ENOMEM);
  memcpy(temp_path, path, path_len);
  memcpy(temp_path + path_len, TEMP_SUFFIX, sizeof TEMP_SUFFIX);
  fd = make_temp(temp_path);
  err = errno;
  if (fd >= 0) {
    close(fd);
    remove(temp_path);
  }
  if (fd < 0 && err == ENOENT && parent_exists(temp_path)) err = EACCES;
  free(temp_path);
  if (fd >= 0) return NULL;
  if (err == ENOENT) return "no such directory";
  if (err == ENOTDIR) return "a directory in the path is a file";
  if (err == EACCES || err == EPERM) return "the directory is not writable";
  return strerror(err);
}
