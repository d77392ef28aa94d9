/* The console log: appended, rotated to PATH.1 .. PATH.(files-1) so no
 * file exceeds max_size and at most `files` files exist. */
#include "daemon/supervisor/supervisor.h"
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_current(struct rotlog *l, struct gr_error *err)
{
	l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0)
		return gr_error_sys(err, errno, "cannot open the log %s", l->path);
	struct stat st;
	if (fstat(l->fd, &st) < 0) {
		int e = errno;
		close(l->fd);
		l->fd = -1;
		return gr_error_sys(err, e, "cannot stat the log %s", l->path);
	}
	l->size = (uint64_t)st.st_size;
	return 0;
}

int rotlog_open(struct rotlog *l, const char *path, uint64_t max_size, unsigned files, struct gr_error *err)
{
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	if (snprintf(l->path, sizeof(l->path), "%s", path) >= (int)sizeof(l->path) - 8)
		return gr_error_set(err, ENAMETOOLONG, "log path too long: %s", path);
	l->max_size = max_size ? max_size : SUPERVISOR_LOG_MAX;
	l->files = files ? files : SUPERVISOR_LOG_FILES;
	return open_current(l, err);
}

static int rotate(struct rotlog *l, struct gr_error *err)
{
	char from[PATH_MAX], to[PATH_MAX];
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	if (l->files <= 1) {
		if (unlink(l->path) < 0 && errno != ENOENT)
			return gr_error_sys(err, errno, "cannot remove the log %s", l->path);
	} else {
		for (unsigned i = l->files - 1; i >= 1; i--) {
			if (i == 1)
				snprintf(from, sizeof(from), "%s", l->path);
			else
				snprintf(from, sizeof(from), "%s.%u", l->path, i - 1);
			snprintf(to, sizeof(to), "%s.%u", l->path, i);
			if (rename(from, to) < 0 && errno != ENOENT)
				return gr_error_sys(err, errno, "cannot rotate the log %s to %s", from, to);
		}
	}
	return open_current(l, err);
}

int rotlog_write(struct rotlog *l, const void *buf, size_t n, struct gr_error *err)
{
	const char *p = buf;
	while (n > 0) {
		if (l->fd < 0 || l->size >= l->max_size) {
			int r = rotate(l, err);
			if (r < 0)
				return r;
		}
		size_t room = (size_t)(l->max_size - l->size);
		size_t k = n < room ? n : room;
		int r = gr_write_all(l->fd, p, k);
		if (r < 0)
			return gr_error_sys(err, -r, "cannot write the log %s", l->path);
		l->size += k;
		p += k;
		n -= k;
	}
	return 0;
}

void rotlog_close(struct rotlog *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

size_t log_crlf_filter(const char *in, size_t n, char *out, bool *pending_cr)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (*pending_cr) {
			*pending_cr = false;
			if (in[i] != '\n')
				out[k++] = '\r';
		}
		if (in[i] == '\r')
			*pending_cr = true;
		else
			out[k++] = in[i];
	}
	return k;
}
