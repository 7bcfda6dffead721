/* Where the body of a successful content response goes: a string, a temporary file renamed
 * into place only when whole, or a Lua function. A download cut short is resumed with a
 * Range request; a server that answers the whole body again (200) restarts a string or a
 * file, but not a function, which cannot take back what it was given. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "headers.h"
#include "sora.h"

static int set_io_error(sora_transfer *t, int err) {
  t->io_errno = err ? err : EIO;
  return 0;
}

/* Empties the destination (a new body starts from byte 0). */
static int restart(sora_transfer *t) {
  t->received = 0;
  sora_buffer_clear(&t->content);
  if (t->file && (fflush(t->file) != 0 || ftruncate(fileno(t->file), 0) != 0 ||
                  fseek(t->file, 0, SEEK_SET) != 0))
    return set_io_error(t, errno);
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
  curl_easy_setopt(easy, CURLOPT_RANGE, NULL);
  return restart(t);
}

/* At the first bytes of a resumed attempt: a 206 must start where we stopped; a 200 is the
 * whole body again. Returns 0 to abort the transfer. */
static int check_start(sora_transfer *t) {
  t->checked_start = 1;
  if (t->resume_from == 0) return 1;
  if (t->status == 206) {
    if (t->range_start == t->resume_from) return 1;
    t->bad_range = 1;
    return 0;
  }
  if (t->sink == SORA_SINK_FUNCTION) {
    t->bad_range = 1; /* the sink already has the first bytes */
    return 0;
  }
  t->resume_from = 0;
  return restart(t);
}

size_t sora_download_write(sora_transfer *t, const char *data, size_t len) {
  if (!t->checked_start && !check_start(t)) return 0;
  switch (t->sink) {
    case SORA_SINK_FILE:
      if (fwrite(data, 1, len, t->file) != len) return set_io_error(t, errno);
      break;
    case SORA_SINK_FUNCTION:
      if (!sora_transfer_sink(t, data, len)) return 0;
      break;
    default:
      if (!sora_buffer_append(&t->content, data, len)) return set_io_error(t, ENOMEM);
  }
  return len;
}

/* The size the whole body will have, or -1 when the server did not say. */
curl_off_t sora_download_total(const sora_transfer *t) {
  if (t->content_length < 0) return -1;
  return t->status == 206 ? t->resume_from + t->content_length : t->content_length;
}

int sora_download_whole(const sora_transfer *t) {
  curl_off_t total = sora_download_total(t);
  return total < 0 || t->received == total;
}

/* Closes the temporary file and moves it into place when keep is set, else removes it. */
void sora_download_close(sora_transfer *t, int keep) {
  if (t->file == NULL) return;
  if (fclose(t->file) != 0 && keep) {
    set_io_error(t, errno);
    keep = 0;
  }
  t->file = NULL;
  if (keep && rename(t->temp_path, t->path) != 0) {
    set_io_error(t, errno);
    keep = 0;
  }
  if (!keep) remove(t->temp_path);
}

static mode_t current_umask(void) {
  mode_t mask = umask(0);
  umask(mask);
  return mask;
}

/* The temporary file beside the target: renamed into place only when the body is whole. */
int sora_download_open(sora_transfer *t, const char *path) {
  int fd;
  t->path = strdup(path);
  t->temp_path = malloc(strlen(path) + sizeof ".sora-XXXXXX");
  if (t->path == NULL || t->temp_path == NULL) return set_io_error(t, ENOMEM);
  strcpy(t->temp_path, path);
  strcat(t->temp_path, ".sora-XXXXXX");
  fd = mkstemp(t->temp_path);
  if (fd < 0) return set_io_error(t, errno);
  fchmod(fd, 0666 & ~current_umask()); /* mkstemp makes 0600; the file gets a file's usual mode */
  t->file = fdopen(fd, "wb");
  if (t->file == NULL) {
    int err = errno;
    close(fd);
    remove(t->temp_path);
    return set_io_error(t, err);
  }
  t->sink = SORA_SINK_FILE;
  return 1;
}
