#include "fs.h"
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int gr_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t gr_read_all(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int gr_read_file(const char *path, char **out, size_t *len, struct gr_error *err)
{
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open %s", path);
	size_t cap = 4096, used = 0;
	gr_autofree char *buf = malloc(cap);
	if (!buf)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (;;) {
		if (used + 1 >= cap) {
			if (cap > (64u << 20))
				return gr_error_set(err, EFBIG, "%s: file larger than 64 MiB", path);
			char *n = realloc(buf, cap * 2);
			if (!n)
				return gr_error_set(err, ENOMEM, "out of memory");
			buf = n;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + used, cap - used - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return gr_error_sys(err, errno, "cannot read %s", path);
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	if (len)
		*len = used;
	*out = gr_steal_ptr(buf);
	return 0;
}

int gr_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, struct gr_error *err)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return gr_error_set(err, ENAMETOOLONG, "path too long: %s", path);
	/* O_EXCL|O_NOFOLLOW: a symlink planted at the temporary name (the
	 * --pid-file may be in a shared directory) is never followed. */
	gr_autoclose int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 && errno == EEXIST && unlink(tmp) == 0) /* left by a process that died */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot create %s", tmp);
	int r = gr_write_all(fd, data, len);
	if (r < 0) {
		unlink(tmp);
		return gr_error_sys(err, -r, "cannot write %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		r = errno;
		unlink(tmp);
		return gr_error_sys(err, r, "cannot rename %s to %s", tmp, path);
	}
	return 0;
}

int gr_write_file_new(const char *path, const void *data, size_t len, mode_t mode, struct gr_error *err)
{
	gr_autoclose int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot create %s", path);
	int r = gr_write_all(fd, data, len);
	if (r < 0)
		return gr_error_sys(err, -r, "cannot write %s", path);
	return 0;
}

int gr_write_knob_at(int dirfd, const char *name, const char *value, struct gr_error *err)
{
	gr_autoclose int fd = openat(dirfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open %s", name);
	size_t len = strlen(value);
	ssize_t n;
	do
		n = write(fd, value, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return gr_error_sys(err, errno, "cannot write \"%s\" to %s", value, name);
	if ((size_t)n != len)
		return gr_error_set(err, EIO, "short write of \"%s\" to %s", value, name);
	return 0;
}

int gr_write_knob(const char *path, const char *value, struct gr_error *err)
{
	return gr_write_knob_at(AT_FDCWD, path, value, err);
}

static int mkdir_p(char *buf, mode_t mode)
{
	/* Fast path: the parent usually exists (one syscall instead of one per
	 * component, which matters for cgroup trees created at every start). */
	if (mkdir(buf, mode) == 0)
		return 0;
	if (errno == EEXIST) {
		struct stat st;
		if (stat(buf, &st) < 0)
			return -errno;
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	}
	if (errno != ENOENT)
		return -errno;
	char *slash = strrchr(buf, '/');
	if (!slash || slash == buf)
		return -ENOENT;
	*slash = '\0';
	int r = mkdir_p(buf, mode);
	*slash = '/';
	if (r < 0)
		return r;
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int gr_mkdir_p(const char *path, mode_t mode, struct gr_error *err)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return gr_error_set(err, ENAMETOOLONG, "path too long: %s", path);
	for (size_t n = strlen(buf); n > 1 && buf[n - 1] == '/'; n--)
		buf[n - 1] = '\0';
	int r = mkdir_p(buf, mode);
	if (r == -ENOTDIR)
		return gr_error_set(err, ENOTDIR, "%s exists and is not a directory", path);
	if (r < 0)
		return gr_error_sys(err, -r, "cannot create directory %s", path);
	return 0;
}

static int rm_rf_at(int dirfd, const char *name, dev_t dev, int depth)
{
	if (depth > 256)
		return -ELOOP;
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (st.st_dev != dev)
		return -EXDEV; /* a mount point: never descend into another file system */
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int r = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		int q = rm_rf_at(fd, e->d_name, dev, depth + 1);
		if (q < 0 && r == 0)
			r = q;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int gr_rm_rf(const char *path, struct gr_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : gr_error_sys(err, errno, "cannot stat %s", path);
	int r = rm_rf_at(AT_FDCWD, path, st.st_dev, 0);
	if (r < 0)
		return gr_error_sys(err, -r, "cannot remove %s", path);
	return 0;
}

/* Fields after the command name, which is in parentheses and may hold spaces. */
static int read_stat_fields(pid_t pid, char *buf, size_t n, char **after)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t len = gr_read_all(fd, buf, n - 1);
	if (len < 0)
		return (int)len;
	buf[len] = '\0';
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EINVAL;
	*after = p + 2;
	return 0;
}

int gr_proc_stat_fields(pid_t pid, int first, int count, uint64_t *out)
{
	char buf[1024], *p;
	if (first < 4 || count < 1)
		return -EINVAL;
	int r = read_stat_fields(pid, buf, sizeof(buf), &p);
	if (r < 0)
		return r;
	/* p is at field 3 (state). */
	for (int field = 3; field < first + count - 1; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EINVAL;
		p++;
		if (field + 1 >= first)
			out[field + 1 - first] = strtoull(p, NULL, 10);
	}
	return 0;
}

int gr_proc_start_time(pid_t pid, uint64_t *out, struct gr_error *err)
{
	int r = gr_proc_stat_fields(pid, 22, 1, out);
	if (r == -EINVAL)
		return gr_error_set(err, EINVAL, "/proc/%d/stat: too few fields", (int)pid);
	return r < 0 ? gr_error_sys(err, -r, "cannot read /proc/%d/stat", (int)pid) : 0;
}

char gr_proc_state(pid_t pid)
{
	char buf[1024], *p;
	if (read_stat_fields(pid, buf, sizeof(buf), &p) < 0)
		return 0;
	return *p;
}

int gr_parse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int gr_parse_i64(const char *s, int64_t *out)
{
	if (!s || !*s)
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int gr_open_in_root(int root, const char *path, int flags)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC),
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd;
	do
		fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
	while (fd < 0 && (errno == EINTR || errno == EAGAIN));
	return fd < 0 ? -errno : fd;
}
