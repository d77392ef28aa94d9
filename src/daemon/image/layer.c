/* The layer engine (layer.h): OCI layer tars <-> overlay-format directories.
 *
 * Unpacking reads the source through two libarchive readers: the outer one
 * only decompresses (format "raw", filters gzip/xz/zstd/bzip2/lzma, all
 * in-process: no external program is ever spawned), so the bytes it reads
 * are the blob (hashed) and the bytes it delivers are the uncompressed tar
 * (hashed: the diff_id); the inner one parses that tar. Each entry is then
 * written by hand, never through archive_write_disk: every parent directory
 * is opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) from a descriptor of the layer
 * directory (or, to create missing parents and name the culprit, walked one
 * O_NOFOLLOW component at a time), and the last component is created in that
 * directory with O_EXCL | O_NOFOLLOW, mkdirat, symlinkat, linkat or mknodat.
 * A symlink stored in the layer is therefore never followed while writing. */
#include "layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"

#define OPAQUE_XATTR "trusted.overlay.opaque"
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define PROGRESS_STEP (4u << 20)
#define COPY_BUF (256u << 10)

/* ---------------------------------------------------------------- helpers */

static int beneath_open(int rootfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	long r = syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
	return r < 0 ? -errno : (int)r;
}

/* A name from an archive, safe to put in a message (and in JSON): bytes
 * outside printable ASCII become \xNN, long names are cut with "...". */
static const char *printable(const char *s, char *out, size_t n)
{
	size_t o = 0;
	if (!s)
		s = "(null)";
	for (; *s && o + 8 < n; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c >= 0x7f || c == '\\' || c == '"')
			o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	if (*s)
		o += (size_t)snprintf(out + o, n - o, "...");
	out[o] = '\0';
	return out;
}

static void hex(const unsigned char *md, unsigned len, char out[LAYER_DIGEST_HEX])
{
	static const char digits[] = "0123456789abcdef";
	for (unsigned i = 0; i < len && i < 32; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[64] = '\0';
}

static void md_final_hex(EVP_MD_CTX *md, char out[LAYER_DIGEST_HEX])
{
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_DigestFinal_ex(md, buf, &len);
	hex(buf, len, out);
}

static void md_freep(EVP_MD_CTX **md) { if (*md) EVP_MD_CTX_free(*md); }
static void archive_write_freep(struct archive **a) { if (*a) archive_write_free(*a); }
static void entry_freep(struct archive_entry **e) { if (*e) archive_entry_free(*e); }

static EVP_MD_CTX *sha256_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		md = NULL;
	}
	return md;
}

/* "sha256:<hex>" or "<hex>" -> pointer to the 64 hex digits, or NULL. */
static const char *digest_hex_of(const char *s)
{
	if (!strncmp(s, "sha256:", 7))
		s += 7;
	if (strlen(s) != 64)
		return NULL;
	for (int i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return NULL;
	return s;
}

/* Removes NAME in dirfd whatever it is (a directory with its contents),
 * never following symlinks; ENOENT is success. */
static int remove_at(int pdir, const char *name)
{
	struct stat st;
	if (fstatat(pdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(pdir, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	int fd = openat(pdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return -e;
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = remove_at(dirfd(d), de->d_name);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r == 0 && unlinkat(pdir, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

/* Removes every entry inside the directory fd (not the directory). */
static int clear_dir(int fd)
{
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return -errno;
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		int e = errno;
		close(dup_fd);
		return -e;
	}
	rewinddir(d);
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = remove_at(fd, de->d_name);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

/* user.* (but user.overlay.*: overlay's metadata when mounted with
 * userxattr) and security.capability. */
static bool xattr_allowed(const char *name)
{
	return (!strncmp(name, "user.", 5) && strncmp(name, "user.overlay.", 13)) ||
	       !strcmp(name, "security.capability");
}

static bool is_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static bool is_opaque(int dirfd)
{
	char v[4];
	ssize_t n = fgetxattr(dirfd, OPAQUE_XATTR, v, sizeof(v));
	return n == 1 && v[0] == 'y';
}

/* Copies the allowed xattrs (user.*, security.capability) between two fds of
 * regular files or directories. */
static int copy_xattrs(int src, int dst)
{
	char names[16384];
	ssize_t n = flistxattr(src, names, sizeof(names));
	if (n < 0)
		return errno == ENOTSUP ? 0 : -errno;
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		if (!xattr_allowed(p))
			continue;
		char val[65536];
		ssize_t vn = fgetxattr(src, p, val, sizeof(val));
		if (vn < 0)
			return -errno;
		if (fsetxattr(dst, p, val, (size_t)vn, 0) < 0)
			return -errno;
	}
	return 0;
}

/* Directory mtimes are applied once everything is written (writing into a
 * directory changes its mtime). Paths are relative to the root and
 * re-resolved beneath it: one replaced since by a non-directory is skipped. */
struct dir_time {
	char *path;
	struct timespec ts[2];
};

struct dir_times {
	struct dir_time *v;
	size_t n, cap;
};

static int dir_times_add(struct dir_times *dt, const char *path, const struct timespec ts[2])
{
	if (dt->n == dt->cap) {
		size_t cap = dt->cap ? dt->cap * 2 : 256;
		struct dir_time *v = realloc(dt->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		dt->v = v;
		dt->cap = cap;
	}
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	dt->v[dt->n].path = p;
	dt->v[dt->n].ts[0] = ts[0];
	dt->v[dt->n].ts[1] = ts[1];
	dt->n++;
	return 0;
}

static void dir_times_apply(struct dir_times *dt, int rootfd)
{
	for (size_t i = 0; i < dt->n; i++) {
		int fd = beneath_open(rootfd, dt->v[i].path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		if (fd >= 0) {
			futimens(fd, dt->v[i].ts);
			close(fd);
		}
	}
}

static void dir_times_free(struct dir_times *dt)
{
	for (size_t i = 0; i < dt->n; i++)
		free(dt->v[i].path);
	free(dt->v);
	dt->v = NULL;
	dt->n = dt->cap = 0;
}

/* Hard links seen in one tree: (dev, ino) -> the first path. */
struct link_seen {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct links {
	struct link_seen *v;
	size_t n, cap;
};

static const char *links_find(const struct links *l, dev_t dev, ino_t ino)
{
	for (size_t i = l->n; i-- > 0;)
		if (l->v[i].dev == dev && l->v[i].ino == ino)
			return l->v[i].path;
	return NULL;
}

static int links_add(struct links *l, dev_t dev, ino_t ino, const char *path)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct link_seen *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	l->v[l->n++] = (struct link_seen){ .dev = dev, .ino = ino, .path = p };
	return 0;
}

static void links_free(struct links *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* ------------------------------------------------------------ unpacking */

struct unpack {
	const char *name;
	uint64_t max_bytes, max_entries, max_path;
	enum layer_devices devices;
	layer_progress_fn progress;
	void *progress_ctx;

	layer_read_fn read;
	void *read_ctx;
	int read_errno;           /* the source's own error, kept apart from libarchive's */
	EVP_MD_CTX *blob_md, *diff_md;
	unsigned char *inbuf;
	struct archive *outer, *inner;
	bool outer_eof;
	bool limit_hit;
	bool uncompressed;        /* the tar is the blob: hashed once */
	char cause[160];          /* why a callback failed (libarchive may report it otherwise) */

	int rootfd;
	struct dir_times dirs;
	struct layer_result *res;
	uint64_t next_progress;
	struct gr_error *err;
	const char *entry;        /* the raw name of the entry being applied */
	char shown[320];          /* printable(entry) */
};

#define INBUF 65536

static ssize_t outer_read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct unpack *u = ctx;
	ssize_t n;
	do
		n = u->read(u->read_ctx, u->inbuf, INBUF);
	while (n == -EINTR);
	if (n < 0) {
		u->read_errno = (int)-n;
		snprintf(u->cause, sizeof(u->cause), "read error: %s", strerror((int)-n));
		archive_set_error(a, (int)-n, "%s", u->cause);
		return -1;
	}
	EVP_DigestUpdate(u->blob_md, u->inbuf, (size_t)n);
	u->res->blob_size += (uint64_t)n;
	*buf = u->inbuf;
	return n;
}

/* The uncompressed tar is bounded by the file data limit plus room for
 * headers (64 KiB per entry so far, 16 MiB more): data of skipped entries
 * (whiteouts, hard links) cannot inflate without bound. */
static uint64_t tar_limit(const struct unpack *u)
{
	return u->max_bytes + (u->res->entries + 1) * 65536 + (16u << 20);
}

static ssize_t inner_read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct unpack *u = ctx;
	if (u->outer_eof)
		return 0;
	size_t size = 0;
	la_int64_t off;
	int r = archive_read_data_block(u->outer, buf, &size, &off);
	if (r == ARCHIVE_EOF) {
		u->outer_eof = true;
		return 0;
	}
	if (r < ARCHIVE_WARN) {
		archive_set_error(a, archive_errno(u->outer) ? archive_errno(u->outer) : EIO, "%s",
		                  archive_error_string(u->outer) ? archive_error_string(u->outer) : "read error");
		return -1;
	}
	if (!u->uncompressed)
		EVP_DigestUpdate(u->diff_md, *buf, size);
	u->res->tar_size += size;
	if (u->res->tar_size > tar_limit(u)) {
		u->limit_hit = true;
		snprintf(u->cause, sizeof(u->cause), "the uncompressed layer is over %llu bytes",
		         (unsigned long long)tar_limit(u));
		archive_set_error(a, EFBIG, "%s", u->cause);
		return -1;
	}
	return (ssize_t)size;
}

static int progress(struct unpack *u, bool force)
{
	if (!u->progress)
		return 0;
	if (!force && u->res->content_size < u->next_progress)
		return 0;
	u->next_progress = u->res->content_size + PROGRESS_STEP;
	if (u->progress(u->progress_ctx, u->res->blob_size, u->res->content_size))
		return gr_error_set(u->err, ECANCELED, "%s: cancelled", u->name);
	return 0;
}

/* An error about the current entry: "NAME: entry PATH: what". */
static int entry_error(struct unpack *u, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int entry_error(struct unpack *u, int code, const char *fmt, ...)
{
	char what[GR_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return gr_error_set(u->err, code, "%s: entry %s: %s", u->name, u->shown, what);
}

/* Sanitizes an archive path into out: a leading '/' is dropped (absolute
 * paths are taken relative to the layer, as tar does), empty and "."
 * components are dropped, ".." is refused, components are at most NAME_MAX
 * and the whole at most max_path bytes. "" is the layer's root. */
static int sanitize(struct unpack *u, const char *in, char *out, size_t outsz, const char *what)
{
	size_t o = 0;
	unsigned depth = 0;
	const char *p = in;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if (len == 1 && p[0] == '.') {
			p = end;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return entry_error(u, EPERM, "%s has a '..' component (refused: it would leave the layer)", what);
		if (len > NAME_MAX)
			return entry_error(u, ENAMETOOLONG, "%s has a component of %zu bytes (the limit is %d)",
			                   what, len, NAME_MAX);
		if (o + (o ? 1 : 0) + len >= outsz || o + (o ? 1 : 0) + len > u->max_path)
			return entry_error(u, ENAMETOOLONG, "%s is longer than %llu bytes", what,
			                   (unsigned long long)u->max_path);
		if (++depth > LAYER_MAX_DEPTH)
			return entry_error(u, ELOOP, "%s is nested more than %u directories deep", what, LAYER_MAX_DEPTH);
		if (o)
			out[o++] = '/';
		memcpy(out + o, p, len);
		o += len;
		p = end;
	}
	out[o] = '\0';
	return 0;
}

/* Opens the directory that holds path's last component (beneath the root,
 * creating missing directories 0755), and points *leaf at that component.
 * A symlink or a non-directory on the way is an error naming it. */
static int open_parent(struct unpack *u, char *path, const char **leaf, bool create)
{
	char *slash = strrchr(path, '/');
	if (!slash) {
		*leaf = path;
		int fd = fcntl(u->rootfd, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? gr_error_sys(u->err, errno, "%s: dup", u->name) : fd;
	}
	*slash = '\0';
	*leaf = slash + 1;
	int fd = beneath_open(u->rootfd, path, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		*slash = '/';
		return fd;
	}
	/* Walk it one component at a time: creates what is missing and names
	 * what is in the way. */
	int cur = fcntl(u->rootfd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0) {
		*slash = '/';
		return gr_error_sys(u->err, errno, "%s: dup", u->name);
	}
	char *comp = path;
	int r = 0;
	for (;;) {
		char *next = strchr(comp, '/');
		if (next)
			*next = '\0';
		int nfd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
				r = entry_error(u, errno, "cannot create directory %s: %s", path, strerror(errno));
			else
				nfd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0 && r == 0) {
			int e = errno;
			char shown[320];
			printable(path, shown, sizeof(shown));
			struct stat st;
			if (e == ELOOP || e == ENOTDIR) {
				bool link = fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
				r = entry_error(u, link ? ELOOP : ENOTDIR, "%s is %s in the layer (refusing to write through it)",
				                shown, link ? "a symbolic link" : "not a directory");
			} else if (e == ENOENT) {
				r = entry_error(u, ENOENT, "%s does not exist in the layer", shown);
			} else {
				r = entry_error(u, e, "cannot open %s: %s", shown, strerror(e));
			}
		}
		if (next)
			*next = '/';
		close(cur);
		if (r < 0) {
			*slash = '/';
			return r;
		}
		cur = nfd;
		if (!next)
			break;
		comp = next + 1;
	}
	*slash = '/';
	return cur;
}

/* Makes room for a new entry at pfd/leaf: a directory stays when the new
 * entry is one too (*kept); anything else there is removed. */
static int clear_leaf(struct unpack *u, int pfd, const char *leaf, bool new_is_dir, bool *kept)
{
	*kept = false;
	struct stat st;
	if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return entry_error(u, errno, "cannot stat: %s", strerror(errno));
	}
	if (S_ISDIR(st.st_mode) && new_is_dir) {
		*kept = true;
		return 0;
	}
	int r = remove_at(pfd, leaf);
	if (r < 0)
		return entry_error(u, -r, "cannot replace what an earlier entry made: %s", strerror(-r));
	return 0;
}

static int entry_ids(struct unpack *u, struct archive_entry *e, uid_t *uid, gid_t *gid)
{
	la_int64_t a = archive_entry_uid(e), b = archive_entry_gid(e);
	if (a < 0 || a >= (la_int64_t)UINT32_MAX || b < 0 || b >= (la_int64_t)UINT32_MAX)
		return entry_error(u, ERANGE, "owner %lld:%lld is out of range", (long long)a, (long long)b);
	*uid = (uid_t)a;
	*gid = (gid_t)b;
	return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
	ts[0].tv_sec = ts[1].tv_sec = archive_entry_mtime_is_set(e) ? archive_entry_mtime(e) : 0;
	ts[0].tv_nsec = ts[1].tv_nsec = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
	if (ts[0].tv_nsec < 0 || ts[0].tv_nsec > 999999999)
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
}

/* xattrs from the archive: trusted.* refused (overlay metadata must come
 * from the whiteout conversion only), user.* and security.capability set
 * when fd >= 0 (files and directories), everything else dropped. */
static int entry_xattrs(struct unpack *u, struct archive_entry *e, int fd)
{
	const char *name;
	const void *value;
	size_t size;
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		char shown[160];
		if (!name)
			continue;
		if (!strncmp(name, "trusted.", 8))
			return entry_error(u, EPERM, "xattr %s refused (trusted.* would forge overlay metadata)",
			                   printable(name, shown, sizeof(shown)));
		if (fd < 0 || !xattr_allowed(name)) {
			u->res->skipped++;
			continue;
		}
		if (fsetxattr(fd, name, value, size, 0) < 0)
			return entry_error(u, errno, "cannot set xattr %s: %s",
			                   printable(name, shown, sizeof(shown)), strerror(errno));
	}
	return 0;
}

/* Ownership, mode (after chown, which clears set-id bits), xattrs (after
 * chown: it clears security.capability), mtime: for an fd of a file or dir. */
static int set_meta_fd(struct unpack *u, struct archive_entry *e, int fd, bool times)
{
	uid_t uid;
	gid_t gid;
	int r = entry_ids(u, e, &uid, &gid);
	if (r < 0)
		return r;
	if (fchown(fd, uid, gid) < 0)
		return entry_error(u, errno, "chown %u:%u: %s", uid, gid, strerror(errno));
	if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
		return entry_error(u, errno, "chmod: %s", strerror(errno));
	r = entry_xattrs(u, e, fd);
	if (r < 0)
		return r;
	if (times) {
		struct timespec ts[2];
		entry_times(e, ts);
		if (futimens(fd, ts) < 0)
			return entry_error(u, errno, "cannot set its mtime: %s", strerror(errno));
	}
	return 0;
}

/* The same by name for what cannot be opened (symlinks, devices, fifos). */
static int set_meta_at(struct unpack *u, struct archive_entry *e, int pfd, const char *leaf, bool chmod_too)
{
	uid_t uid;
	gid_t gid;
	int r = entry_ids(u, e, &uid, &gid);
	if (r < 0)
		return r;
	if (fchownat(pfd, leaf, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return entry_error(u, errno, "chown %u:%u: %s", uid, gid, strerror(errno));
	/* fchmodat follows symlinks: only for the device or fifo just made. */
	if (chmod_too && fchmodat(pfd, leaf, archive_entry_perm(e) & 07777, 0) < 0)
		return entry_error(u, errno, "chmod: %s", strerror(errno));
	r = entry_xattrs(u, e, -1);
	if (r < 0)
		return r;
	struct timespec ts[2];
	entry_times(e, ts);
	if (utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return entry_error(u, errno, "cannot set its mtime: %s", strerror(errno));
	return 0;
}

static int archive_failure(struct unpack *u, struct archive *a, const char *what)
{
	if (u->err->code == ECANCELED)
		return -ECANCELED;
	int code = u->read_errno ? u->read_errno : archive_errno(a);
	const char *msg = archive_error_string(a) ? archive_error_string(a) : "unknown error";
	if (u->cause[0])
		msg = u->cause;
	if (u->limit_hit)
		code = EFBIG;
	if (code <= 0 || code == -1)
		code = EIO;
	if (u->entry && strcasestr(msg, "truncated"))
		return entry_error(u, EIO, "truncated entry: %s", msg);
	if (u->entry)
		return entry_error(u, code, "%s: %s", what, msg);
	return gr_error_set(u->err, code, "%s: %s: %s", u->name, what, msg);
}

static int write_data(struct unpack *u, struct archive_entry *e, int fd)
{
	uint64_t end = 0;
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(u->inner, &buf, &size, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			if (u->err->code)
				return -u->err->code;
			const char *msg = u->cause[0] ? u->cause : archive_error_string(u->inner);
			if (u->limit_hit)
				return entry_error(u, EFBIG, "%s", msg ? msg : "over the limit");
			if (u->read_errno)
				return entry_error(u, u->read_errno, "cannot read the layer: %s", msg ? msg : "");
			return entry_error(u, EIO, "truncated entry: %s", msg ? msg : "read error");
		}
		if (off < 0)
			return entry_error(u, EINVAL, "negative data offset");
		if (u->res->content_size + size > u->max_bytes)
			return entry_error(u, EFBIG, "the layer's files are over the limit of %llu bytes",
			                   (unsigned long long)u->max_bytes);
		const char *p = buf;
		uint64_t pos = (uint64_t)off;
		size_t left = size;
		while (left) {
			ssize_t w = pwrite(fd, p, left, (off_t)pos);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return entry_error(u, errno, "write: %s", strerror(errno));
			}
			p += w;
			pos += (uint64_t)w;
			left -= (size_t)w;
		}
		if (pos > end)
			end = pos;
		u->res->content_size += size;
		r = progress(u, false);
		if (r < 0)
			return r;
	}
	/* Sparse files: a trailing hole. */
	la_int64_t want = archive_entry_size(e);
	if (want > 0 && (uint64_t)want > end && ftruncate(fd, want) < 0)
		return entry_error(u, errno, "ftruncate: %s", strerror(errno));
	return 0;
}

static int apply_whiteout(struct unpack *u, struct archive_entry *e, int pfd, const char *leaf)
{
	if (!strcmp(leaf, WH_OPAQUE)) {
		if (fsetxattr(pfd, OPAQUE_XATTR, "y", 1, 0) < 0)
			return entry_error(u, errno, "cannot mark the directory opaque: %s", strerror(errno));
		u->res->opaques++;
		return 0;
	}
	const char *name = leaf + strlen(WH_PREFIX);
	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return entry_error(u, EINVAL, "a whiteout without a valid name");
	struct stat st;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0; /* this layer has NAME: it hides the lower ones already */
	if (errno != ENOENT)
		return entry_error(u, errno, "cannot stat: %s", strerror(errno));
	if (mknodat(pfd, name, S_IFCHR | (archive_entry_perm(e) & 0777), makedev(0, 0)) < 0)
		return entry_error(u, errno, "cannot create the whiteout: %s", strerror(errno));
	u->res->whiteouts++;
	/* The whiteout's own xattrs are meaningless: only trusted.* is checked. */
	return set_meta_at(u, e, pfd, name, false);
}

static int apply_hardlink(struct unpack *u, struct archive_entry *e, const char *path, int pfd, const char *leaf)
{
	char target[PATH_MAX];
	const char *raw = archive_entry_hardlink(e);
	int r = sanitize(u, raw, target, sizeof(target), "the hard link's target");
	if (r < 0)
		return r;
	char shown[320];
	printable(raw, shown, sizeof(shown));
	if (!*target || !strcmp(target, path))
		return entry_error(u, EINVAL, "hard link to %s: not a file of this layer", shown);
	char *slash = strrchr(target, '/');
	const char *tleaf = target;
	gr_autoclose int tpfd = -1;
	if (slash) {
		*slash = '\0';
		tleaf = slash + 1;
		tpfd = beneath_open(u->rootfd, target, O_PATH | O_DIRECTORY);
	} else {
		tpfd = fcntl(u->rootfd, F_DUPFD_CLOEXEC, 0);
	}
	struct stat st;
	if (tpfd < 0 || fstatat(tpfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return entry_error(u, ENOENT, "hard link to %s: the target is not a file of this layer%s", shown,
		                   tpfd == -ELOOP || tpfd == -EXDEV ? " (its path goes through a symbolic link)" : "");
	if (S_ISDIR(st.st_mode))
		return entry_error(u, EPERM, "hard link to %s: the target is a directory", shown);
	bool kept;
	r = clear_leaf(u, pfd, leaf, false, &kept);
	if (r < 0)
		return r;
	if (linkat(tpfd, tleaf, pfd, leaf, 0) < 0)
		return entry_error(u, errno, "hard link to %s: %s", shown, strerror(errno));
	return 0;
}

static int apply_entry(struct unpack *u, struct archive_entry *e)
{
	char path[PATH_MAX];
	int r = sanitize(u, u->entry, path, sizeof(path), "the path");
	if (r < 0)
		return r;
	mode_t type = archive_entry_filetype(e);
	bool hardlink = archive_entry_hardlink(e) != NULL;
	la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
	if (size < 0)
		return entry_error(u, EINVAL, "negative size");
	if (type == AE_IFREG && !hardlink && (uint64_t)size > u->max_bytes - u->res->content_size)
		return entry_error(u, EFBIG, "%lld bytes: over the limit of %llu bytes for a layer's files",
		                   (long long)size, (unsigned long long)u->max_bytes);

	if (!*path) { /* the root itself ("./") */
		if (hardlink || type != AE_IFDIR)
			return entry_error(u, EINVAL, "the layer's root must be a directory");
		r = set_meta_fd(u, e, u->rootfd, false);
		if (r < 0)
			return r;
		struct timespec ts[2];
		entry_times(e, ts);
		return dir_times_add(&u->dirs, "", ts) < 0 ? gr_error_set(u->err, ENOMEM, "out of memory") : 0;
	}

	const char *leaf;
	gr_autoclose int pfd = open_parent(u, path, &leaf, true);
	if (pfd < 0)
		return pfd;

	if (!strncmp(leaf, WH_PREFIX, strlen(WH_PREFIX)))
		return apply_whiteout(u, e, pfd, leaf);
	if (hardlink)
		return apply_hardlink(u, e, path, pfd, leaf);

	bool kept = false;
	switch (type) {
	case AE_IFDIR: {
		r = clear_leaf(u, pfd, leaf, true, &kept);
		if (r < 0)
			return r;
		if (!kept && mkdirat(pfd, leaf, 0700) < 0)
			return entry_error(u, errno, "mkdir: %s", strerror(errno));
		gr_autoclose int fd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return entry_error(u, errno, "cannot open the directory: %s", strerror(errno));
		r = set_meta_fd(u, e, fd, false);
		if (r < 0)
			return r;
		struct timespec ts[2];
		entry_times(e, ts);
		return dir_times_add(&u->dirs, path, ts) < 0 ? gr_error_set(u->err, ENOMEM, "out of memory") : 0;
	}
	case AE_IFREG: {
		r = clear_leaf(u, pfd, leaf, false, &kept);
		if (r < 0)
			return r;
		gr_autoclose int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return entry_error(u, errno, "cannot create: %s", strerror(errno));
		r = write_data(u, e, fd);
		if (r < 0)
			return r;
		return set_meta_fd(u, e, fd, true);
	}
	case AE_IFLNK: {
		const char *target = archive_entry_symlink(e);
		if (!target || !*target)
			return entry_error(u, EINVAL, "a symbolic link without a target");
		if (strlen(target) >= PATH_MAX)
			return entry_error(u, ENAMETOOLONG, "the symbolic link's target is too long");
		r = clear_leaf(u, pfd, leaf, false, &kept);
		if (r < 0)
			return r;
		/* Stored as is: it is resolved inside the container's root, and
		 * never followed here. */
		if (symlinkat(target, pfd, leaf) < 0)
			return entry_error(u, errno, "symlink: %s", strerror(errno));
		return set_meta_at(u, e, pfd, leaf, false);
	}
	case AE_IFCHR:
	case AE_IFBLK:
		if (u->devices == LAYER_DEVICES_SKIP) {
			u->res->skipped++;
			return 0;
		}
		if (u->devices != LAYER_DEVICES_CREATE)
			return entry_error(u, EPERM, "%s device %u:%u refused (images may not carry device nodes)",
			                   type == AE_IFCHR ? "character" : "block",
			                   (unsigned)archive_entry_rdevmajor(e), (unsigned)archive_entry_rdevminor(e));
		/* fallthrough */
	case AE_IFIFO:
		r = clear_leaf(u, pfd, leaf, false, &kept);
		if (r < 0)
			return r;
		if (mknodat(pfd, leaf, type | (archive_entry_perm(e) & 0777),
		            type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e))) < 0)
			return entry_error(u, errno, "mknod: %s", strerror(errno));
		return set_meta_at(u, e, pfd, leaf, true);
	default:
		return entry_error(u, EINVAL, "unsupported entry type 0%o", (unsigned)type);
	}
}

static int unpack_run(struct unpack *u, const struct layer_opts *o)
{
	u->blob_md = sha256_new();
	u->diff_md = sha256_new();
	u->inbuf = malloc(INBUF);
	u->outer = archive_read_new();
	u->inner = archive_read_new();
	if (!u->blob_md || !u->diff_md || !u->inbuf || !u->outer || !u->inner)
		return gr_error_set(u->err, ENOMEM, "%s: out of memory", u->name);

	/* In-process decompressors only (support_filter_all would also accept
	 * formats libarchive decodes by spawning a program). */
	archive_read_support_filter_gzip(u->outer);
	archive_read_support_filter_xz(u->outer);
	archive_read_support_filter_zstd(u->outer);
	archive_read_support_filter_bzip2(u->outer);
	archive_read_support_filter_lzma(u->outer);
	archive_read_support_format_raw(u->outer);
	int r = archive_read_open(u->outer, u, NULL, outer_read_cb, NULL);
	struct archive_entry *e = NULL;
	if (r == ARCHIVE_OK)
		r = archive_read_next_header(u->outer, &e);
	if ((r == ARCHIVE_EOF || r < ARCHIVE_WARN) && u->res->blob_size == 0 && !u->read_errno)
		return gr_error_set(u->err, EINVAL, "%s: empty file: not a layer", u->name);
	if (r < ARCHIVE_WARN)
		return archive_failure(u, u->outer, "cannot read the layer");
	const char *filter = archive_filter_count(u->outer) > 1 ? archive_filter_name(u->outer, 0) : "none";
	snprintf(u->res->compression, sizeof(u->res->compression), "%s", filter ? filter : "none");
	u->uncompressed = archive_filter_count(u->outer) <= 1;

	archive_read_support_format_tar(u->inner);
	if (archive_read_open(u->inner, u, NULL, inner_read_cb, NULL) != ARCHIVE_OK)
		return archive_failure(u, u->inner, "not a tar archive");
	char last[320] = "";
	for (;;) {
		u->entry = NULL;
		r = archive_read_next_header(u->inner, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			if (u->read_errno || u->limit_hit)
				return archive_failure(u, u->inner, "cannot read the layer");
			const char *msg = archive_error_string(u->inner);
			if (u->res->entries == 0)
				return gr_error_set(u->err, EINVAL, "%s: not a valid tar archive: %s", u->name, msg ? msg : "");
			return gr_error_set(u->err, EIO, "%s: damaged or truncated archive after entry %s: %s",
			                    u->name, last, msg ? msg : "");
		}
		if (u->res->entries >= u->max_entries)
			return gr_error_set(u->err, EFBIG, "%s: more than %llu entries", u->name,
			                    (unsigned long long)u->max_entries);
		u->entry = archive_entry_pathname(e);
		if (!u->entry)
			u->entry = archive_entry_pathname_utf8(e);
		printable(u->entry, u->shown, sizeof(u->shown));
		if (!u->entry || !*u->entry)
			return gr_error_set(u->err, EINVAL, "%s: an entry without a name after %s", u->name, last);
		r = apply_entry(u, e);
		if (r < 0)
			return r;
		u->res->entries++;
		snprintf(last, sizeof(last), "%s", u->shown);
		r = progress(u, false);
		if (r < 0)
			return r;
	}
	u->entry = NULL;
	/* Everything after the end-of-archive blocks is part of the tar's and
	 * the blob's digests: read both streams to their ends. */
	while (!u->outer_eof) {
		const void *buf;
		if (inner_read_cb(u->inner, u, &buf) < 0)
			return archive_failure(u, u->inner, "cannot read the end of the layer");
	}
	for (;;) {
		ssize_t n = u->read(u->read_ctx, u->inbuf, INBUF);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return gr_error_sys(u->err, (int)-n, "%s: read error", u->name);
		if (n == 0)
			break;
		EVP_DigestUpdate(u->blob_md, u->inbuf, (size_t)n);
		u->res->blob_size += (uint64_t)n;
	}
	dir_times_apply(&u->dirs, u->rootfd);
	md_final_hex(u->blob_md, u->res->blob);
	if (u->uncompressed)
		memcpy(u->res->diff_id, u->res->blob, sizeof(u->res->diff_id));
	else
		md_final_hex(u->diff_md, u->res->diff_id);
	if (u->uncompressed && u->res->tar_size != u->res->blob_size)
		return gr_error_set(u->err, EIO, "%s: read %llu bytes but the tar has %llu", u->name,
		                    (unsigned long long)u->res->blob_size, (unsigned long long)u->res->tar_size);

	if (o && o->expect_blob) {
		const char *want = digest_hex_of(o->expect_blob);
		if (!want || strcmp(want, u->res->blob))
			return gr_error_set(u->err, EBADMSG, "%s: digest mismatch: expected %s, got sha256:%s",
			                    u->name, o->expect_blob, u->res->blob);
	}
	if (o && o->expect_diff_id) {
		const char *want = digest_hex_of(o->expect_diff_id);
		if (!want || strcmp(want, u->res->diff_id))
			return gr_error_set(u->err, EBADMSG, "%s: diff_id mismatch: expected %s, got sha256:%s",
			                    u->name, o->expect_diff_id, u->res->diff_id);
	}
	return progress(u, true);
}

int layer_unpack(layer_read_fn read, void *read_ctx, const char *dest_dir,
                 const struct layer_opts *opts, struct layer_result *res, struct gr_error *err)
{
	struct layer_result local;
	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	struct gr_error local_err = { 0 };
	if (!err)
		err = &local_err;
	gr_error_clear(err);
	struct unpack u = {
		.name = opts && opts->name ? opts->name : "layer",
		.max_bytes = opts && opts->max_bytes ? opts->max_bytes : LAYER_DEFAULT_MAX_BYTES,
		.max_entries = opts && opts->max_entries ? opts->max_entries : LAYER_DEFAULT_MAX_ENTRIES,
		.max_path = opts && opts->max_path ? opts->max_path : LAYER_DEFAULT_MAX_PATH,
		.devices = opts ? opts->devices : LAYER_DEVICES_REFUSE,
		.progress = opts ? opts->progress : NULL,
		.progress_ctx = opts ? opts->progress_ctx : NULL,
		.read = read,
		.read_ctx = read_ctx,
		.rootfd = -1,
		.res = res,
		.err = err,
	};
	if (u.max_path >= PATH_MAX)
		u.max_path = PATH_MAX - 1;
	if (!read || !dest_dir || !*dest_dir)
		return gr_error_set(err, EINVAL, "layer_unpack: no source or destination");
	if (mkdir(dest_dir, 0755) < 0)
		return gr_error_sys(err, errno, "%s: cannot create %s", u.name, dest_dir);
	int r;
	u.rootfd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (u.rootfd < 0)
		r = gr_error_sys(err, errno, "%s: cannot open %s", u.name, dest_dir);
	else
		r = unpack_run(&u, opts);
	if (u.inner)
		archive_read_free(u.inner);
	if (u.outer)
		archive_read_free(u.outer);
	md_freep(&u.blob_md);
	md_freep(&u.diff_md);
	free(u.inbuf);
	dir_times_free(&u.dirs);
	if (u.rootfd >= 0)
		close(u.rootfd);
	if (r < 0) {
		struct gr_error ignored = { 0 };
		gr_rm_rf(dest_dir, &ignored);
		/* Everything the caller reads from res must describe a result. */
		res->diff_id[0] = res->blob[0] = '\0';
	}
	return r;
}

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
	ssize_t n = read(*(int *)ctx, buf, len);
	return n < 0 ? -errno : n;
}

int layer_unpack_fd(int fd, const char *dest_dir, const struct layer_opts *opts,
                    struct layer_result *res, struct gr_error *err)
{
	return layer_unpack(fd_read, &fd, dest_dir, opts, res, err);
}

/* ------------------------------------------------------------ flattening */

struct flat {
	int rootfd;               /* dest_dir */
	struct dir_times dirs;
	struct links links;       /* this layer's hard links: first dest path */
	char *buf;
	const char *layer;        /* for messages */
	struct gr_error *err;
};

static int flat_err(struct flat *f, int code, const char *rel, const char *what)
{
	char shown[320];
	return gr_error_set(f->err, code, "flatten %s: %s: %s: %s", f->layer, printable(*rel ? rel : ".", shown, sizeof(shown)),
	                    what, strerror(code));
}

static int copy_data(struct flat *f, int in, int out)
{
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return -errno;
		break;
	}
	for (;;) {
		ssize_t n = read(in, f->buf, COPY_BUF);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (gr_write_all(out, f->buf, (size_t)n) < 0)
			return -errno;
	}
}

static int flat_meta_at(int dfd, const char *name, const struct stat *st, bool chmod_too)
{
	if (fchownat(dfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (chmod_too && fchmodat(dfd, name, st->st_mode & 07777, 0) < 0)
		return -errno;
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

static int flat_meta_fd(int sfd, int dfd, const struct stat *st, bool times)
{
	if (fchown(dfd, st->st_uid, st->st_gid) < 0 || fchmod(dfd, st->st_mode & 07777) < 0)
		return -errno;
	int r = copy_xattrs(sfd, dfd);
	if (r < 0)
		return r;
	if (times) {
		struct timespec ts[2] = { st->st_atim, st->st_mtim };
		if (futimens(dfd, ts) < 0)
			return -errno;
	}
	return 0;
}

static int flatten_dir(struct flat *f, int sfd, int dfd, const char *rel, unsigned depth);
static int flatten_leaf(struct flat *f, int sfd, int dfd, const char *name, const char *rel,
                        const struct stat *st, bool exists);

static int flatten_one(struct flat *f, int sfd, int dfd, const char *name, const char *rel, unsigned depth)
{
	struct stat st;
	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return flat_err(f, errno, rel, "stat");
	if (is_whiteout(&st)) {
		int r = remove_at(dfd, name);
		return r < 0 ? flat_err(f, -r, rel, "cannot apply the whiteout") : 0;
	}
	struct stat dst;
	bool exists = fstatat(dfd, name, &dst, AT_SYMLINK_NOFOLLOW) == 0;
	if (S_ISDIR(st.st_mode)) {
		gr_autoclose int s = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (s < 0)
			return flat_err(f, errno, rel, "open");
		if (exists && !S_ISDIR(dst.st_mode)) {
			if (unlinkat(dfd, name, 0) < 0)
				return flat_err(f, errno, rel, "unlink");
			exists = false;
		}
		if (!exists && mkdirat(dfd, name, 0700) < 0)
			return flat_err(f, errno, rel, "mkdir");
		gr_autoclose int d = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (d < 0)
			return flat_err(f, errno, rel, "open");
		int r;
		if (exists && is_opaque(s) && (r = clear_dir(d)) < 0)
			return flat_err(f, -r, rel, "cannot clear the opaque directory");
		if ((r = flat_meta_fd(s, d, &st, false)) < 0)
			return flat_err(f, -r, rel, "metadata");
		struct timespec ts[2] = { st.st_atim, st.st_mtim };
		if (dir_times_add(&f->dirs, rel, ts) < 0)
			return gr_error_set(f->err, ENOMEM, "out of memory");
		return flatten_dir(f, s, d, rel, depth + 1);
	}
	return flatten_leaf(f, sfd, dfd, name, rel, &st, exists);
}

/* Not inlined: its buffers stay off the recursion's frames. */
static __attribute__((noinline)) int flatten_leaf(struct flat *f, int sfd, int dfd, const char *name,
                                                  const char *rel, const struct stat *stp, bool exists)
{
	const struct stat st = *stp;
	if (exists) {
		int r = remove_at(dfd, name);
		if (r < 0)
			return flat_err(f, -r, rel, "cannot replace");
	}
	int r = 0;
	if (S_ISREG(st.st_mode)) {
		if (st.st_nlink > 1) {
			const char *first = links_find(&f->links, st.st_dev, st.st_ino);
			if (first) {
				char parent[PATH_MAX];
				snprintf(parent, sizeof(parent), "%s", first);
				char *slash = strrchr(parent, '/');
				const char *leaf = slash ? slash + 1 : parent;
				if (slash)
					*slash = '\0';
				gr_autoclose int pfd = slash ? beneath_open(f->rootfd, parent, O_PATH | O_DIRECTORY)
				                             : fcntl(f->rootfd, F_DUPFD_CLOEXEC, 0);
				if (pfd >= 0 && linkat(pfd, leaf, dfd, name, 0) == 0)
					return 0;
				/* else (replaced since by an upper entry of this layer?): copy */
			}
		}
		gr_autoclose int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (in < 0)
			return flat_err(f, errno, rel, "open");
		gr_autoclose int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (out < 0)
			return flat_err(f, errno, rel, "create");
		if ((r = copy_data(f, in, out)) < 0)
			return flat_err(f, -r, rel, "copy");
		if ((r = flat_meta_fd(in, out, &st, true)) < 0)
			return flat_err(f, -r, rel, "metadata");
		if (st.st_nlink > 1 && links_add(&f->links, st.st_dev, st.st_ino, rel) < 0)
			return gr_error_set(f->err, ENOMEM, "out of memory");
		return 0;
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(sfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return flat_err(f, errno, rel, "readlink");
		target[n] = '\0';
		if (symlinkat(target, dfd, name) < 0)
			return flat_err(f, errno, rel, "symlink");
		r = flat_meta_at(dfd, name, &st, false);
	} else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		if (mknodat(dfd, name, st.st_mode, st.st_rdev) < 0)
			return flat_err(f, errno, rel, "mknod");
		r = flat_meta_at(dfd, name, &st, true);
	} else {
		return 0; /* sockets: nothing to carry */
	}
	return r < 0 ? flat_err(f, -r, rel, "metadata") : 0;
}

static int flatten_dir(struct flat *f, int sfd, int dfd, const char *rel, unsigned depth)
{
	if (depth > LAYER_MAX_DEPTH)
		return flat_err(f, ELOOP, rel, "directories nested too deep");
	int dup_fd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return flat_err(f, errno, rel, "dup");
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return flat_err(f, errno, rel, "opendir");
	}
	int r = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		gr_autofree char *child = NULL;
		if (asprintf(&child, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0) {
			child = NULL;
			r = gr_error_set(f->err, ENOMEM, "out of memory");
			break;
		}
		r = flatten_one(f, sfd, dfd, de->d_name, child, depth);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

int layer_flatten(const char *const *layer_dirs, size_t n, const char *dest_dir, struct gr_error *err)
{
	struct gr_error local_err = { 0 };
	if (!err)
		err = &local_err;
	if (!dest_dir || !*dest_dir || (n && !layer_dirs))
		return gr_error_set(err, EINVAL, "layer_flatten: no layers or destination");
	if (mkdir(dest_dir, 0755) < 0)
		return gr_error_sys(err, errno, "flatten: cannot create %s", dest_dir);
	struct flat f = { .err = err };
	int r = 0;
	f.rootfd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	f.buf = malloc(COPY_BUF);
	if (f.rootfd < 0)
		r = gr_error_sys(err, errno, "flatten: cannot open %s", dest_dir);
	else if (!f.buf)
		r = gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < n; i++) {
		f.layer = layer_dirs[i];
		gr_autoclose int s = open(layer_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct stat st;
		if (s < 0 || fstat(s, &st) < 0) {
			r = gr_error_sys(err, errno, "flatten: cannot open the layer %s", layer_dirs[i]);
			break;
		}
		if (is_opaque(s) && (r = clear_dir(f.rootfd)) < 0) {
			r = flat_err(&f, -r, "", "cannot clear for the opaque root");
			break;
		}
		if ((r = flat_meta_fd(s, f.rootfd, &st, false)) < 0) {
			r = flat_err(&f, -r, "", "metadata");
			break;
		}
		struct timespec ts[2] = { st.st_atim, st.st_mtim };
		if (dir_times_add(&f.dirs, "", ts) < 0) {
			r = gr_error_set(err, ENOMEM, "out of memory");
			break;
		}
		r = flatten_dir(&f, s, f.rootfd, "", 1);
		links_free(&f.links);
	}
	if (r == 0)
		dir_times_apply(&f.dirs, f.rootfd);
	links_free(&f.links);
	dir_times_free(&f.dirs);
	free(f.buf);
	if (f.rootfd >= 0)
		close(f.rootfd);
	if (r < 0) {
		struct gr_error ignored = { 0 };
		gr_rm_rf(dest_dir, &ignored);
	}
	return r;
}

/* ------------------------------------------------------------ writing */

struct wtar {
	struct archive *a;
	int out_fd;
	int write_errno;
	EVP_MD_CTX *md;
	uint64_t size;
	struct links links;
	char *buf;
	struct gr_error *err;
};

static la_ssize_t wtar_write_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct wtar *w = ctx;
	if (gr_write_all(w->out_fd, buf, len) < 0) {
		w->write_errno = errno ? errno : EIO;
		archive_set_error(a, w->write_errno, "write: %s", strerror(w->write_errno));
		return -1;
	}
	EVP_DigestUpdate(w->md, buf, len);
	w->size += len;
	return (la_ssize_t)len;
}

static int wtar_fail(struct wtar *w, const char *rel)
{
	char shown[320];
	int code = w->write_errno ? w->write_errno : archive_errno(w->a) > 0 ? archive_errno(w->a) : EIO;
	return gr_error_set(w->err, code, "layer tar: %s: %s", printable(rel, shown, sizeof(shown)),
	                    archive_error_string(w->a) ? archive_error_string(w->a) : "write error");
}

static int wtar_sys(struct wtar *w, int code, const char *rel, const char *what)
{
	char shown[320];
	return gr_error_set(w->err, code, "layer tar: %s: %s: %s", printable(rel, shown, sizeof(shown)), what,
	                    strerror(code));
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int entry_add_xattrs(struct archive_entry *e, int fd)
{
	char names[16384];
	ssize_t n = flistxattr(fd, names, sizeof(names));
	if (n < 0)
		return errno == ENOTSUP ? 0 : -errno;
	const char *list[256];
	size_t count = 0;
	for (char *p = names; p < names + n && count < 256; p += strlen(p) + 1)
		if (xattr_allowed(p))
			list[count++] = p;
	qsort(list, count, sizeof(list[0]), cmp_names);
	for (size_t i = 0; i < count; i++) {
		char val[65536];
		ssize_t vn = fgetxattr(fd, list[i], val, sizeof(val));
		if (vn < 0)
			return -errno;
		archive_entry_xattr_add_entry(e, list[i], val, (size_t)vn);
	}
	return 0;
}

static void entry_from_stat(struct archive_entry *e, const char *path, const struct stat *st)
{
	archive_entry_set_pathname(e, path);
	archive_entry_set_uid(e, st->st_uid);
	archive_entry_set_gid(e, st->st_gid);
	archive_entry_set_perm(e, st->st_mode & 07777);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

static int wtar_header(struct wtar *w, struct archive_entry *e, const char *rel)
{
	int r = archive_write_header(w->a, e);
	return r < ARCHIVE_WARN ? wtar_fail(w, rel) : 0;
}

static int wtar_dir(struct wtar *w, int dfd, const char *rel, const struct stat *dst, unsigned depth);
static int wtar_leaf(struct wtar *w, int dfd, const char *name, const char *rel, const struct stat *st);

/* A directory's header; not inlined: its buffers stay off the recursion. */
static __attribute__((noinline)) int wtar_dir_header(struct wtar *w, int fd, const char *rel, const struct stat *st)
{
	char path[PATH_MAX + 2];
	snprintf(path, sizeof(path), "%s/", rel);
	_cleanup_(entry_freep) struct archive_entry *e = archive_entry_new();
	if (!e)
		return gr_error_set(w->err, ENOMEM, "out of memory");
	entry_from_stat(e, path, st);
	archive_entry_set_filetype(e, AE_IFDIR);
	int r = entry_add_xattrs(e, fd);
	if (r < 0)
		return wtar_sys(w, -r, rel, "xattrs");
	return wtar_header(w, e, rel);
}

static int wtar_one(struct wtar *w, int dfd, const char *name, const char *rel, unsigned depth)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return wtar_sys(w, errno, rel, "stat");
	if (!S_ISDIR(st.st_mode))
		return wtar_leaf(w, dfd, name, rel, &st);
	if (!strncmp(name, WH_PREFIX, strlen(WH_PREFIX)))
		return wtar_sys(w, EINVAL, rel, "a name starting with .wh. cannot be carried by an OCI layer");
	gr_autoclose int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return wtar_sys(w, errno, rel, "open");
	int r = wtar_dir_header(w, fd, rel, &st);
	if (r < 0)
		return r;
	return wtar_dir(w, fd, rel, &st, depth + 1);
}

static __attribute__((noinline)) int wtar_leaf(struct wtar *w, int dfd, const char *name, const char *rel,
                                               const struct stat *stp)
{
	const struct stat st = *stp;
	/* Sockets cannot be in a tar; device nodes are not carried by images
	 * (layer_unpack refuses them): both left out. */
	if (S_ISSOCK(st.st_mode) || ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && !is_whiteout(&st)))
		return 0;
	char path[PATH_MAX + 2];
	_cleanup_(entry_freep) struct archive_entry *e = archive_entry_new();
	if (!e)
		return gr_error_set(w->err, ENOMEM, "out of memory");
	if (is_whiteout(&st)) {
		const char *slash = strrchr(rel, '/');
		int len = slash ? (int)(slash - rel + 1) : 0;
		snprintf(path, sizeof(path), "%.*s" WH_PREFIX "%s", len, rel, name);
		entry_from_stat(e, path, &st);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, 0);
		return wtar_header(w, e, rel);
	}
	if (!strncmp(name, WH_PREFIX, strlen(WH_PREFIX)))
		return wtar_sys(w, EINVAL, rel, "a name starting with .wh. cannot be carried by an OCI layer");
	int r;
	entry_from_stat(e, rel, &st);
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return wtar_sys(w, errno, rel, "readlink");
		target[n] = '\0';
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, target);
		return wtar_header(w, e, rel);
	}
	if (S_ISFIFO(st.st_mode)) {
		archive_entry_set_filetype(e, AE_IFIFO);
		return wtar_header(w, e, rel);
	}
	/* A regular file; a second name of a hard link refers to the first. */
	archive_entry_set_filetype(e, AE_IFREG);
	if (st.st_nlink > 1) {
		const char *first = links_find(&w->links, st.st_dev, st.st_ino);
		if (first) {
			archive_entry_set_hardlink(e, first);
			archive_entry_set_size(e, 0);
			return wtar_header(w, e, rel);
		}
		if (links_add(&w->links, st.st_dev, st.st_ino, rel) < 0)
			return gr_error_set(w->err, ENOMEM, "out of memory");
	}
	gr_autoclose int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return wtar_sys(w, errno, rel, "open");
	archive_entry_set_size(e, st.st_size);
	if ((r = entry_add_xattrs(e, fd)) < 0)
		return wtar_sys(w, -r, rel, "xattrs");
	if ((r = wtar_header(w, e, rel)) < 0)
		return r;
	off_t left = st.st_size;
	while (left > 0) {
		ssize_t n = read(fd, w->buf, left < (off_t)COPY_BUF ? (size_t)left : COPY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return wtar_sys(w, errno, rel, "read");
		if (n == 0)
			return wtar_sys(w, EIO, rel, "the file shrank while being written");
		if (archive_write_data(w->a, w->buf, (size_t)n) != n)
			return wtar_fail(w, rel);
		left -= n;
	}
	return 0;
}

/* The opaque marker of directory rel: first of its entries, with its
 * owner and mtime. */
static __attribute__((noinline)) int wtar_opaque(struct wtar *w, const char *rel, const struct stat *dst)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s%s" WH_OPAQUE, rel, *rel ? "/" : "");
	_cleanup_(entry_freep) struct archive_entry *e = archive_entry_new();
	if (!e)
		return gr_error_set(w->err, ENOMEM, "out of memory");
	entry_from_stat(e, path, dst);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, 0);
	return wtar_header(w, e, path);
}

/* A directory's entries in the order they are written: by the name they
 * get in the tar (a whiteout NAME sorts as .wh.NAME). */
struct wname {
	char *key;        /* the tar name */
	const char *name; /* the name in the directory (key or key + 4) */
};

static int cmp_wnames(const void *a, const void *b)
{
	return strcmp(((const struct wname *)a)->key, ((const struct wname *)b)->key);
}

static int wtar_dir(struct wtar *w, int dfd, const char *rel, const struct stat *dst, unsigned depth)
{
	if (depth > LAYER_MAX_DEPTH)
		return wtar_sys(w, ELOOP, rel, "directories nested too deep");
	int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return wtar_sys(w, errno, rel, "dup");
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return wtar_sys(w, errno, rel, "opendir");
	}
	struct wname *names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			struct wname *v = realloc(names, cap * sizeof(*v));
			if (!v) {
				r = gr_error_set(w->err, ENOMEM, "out of memory");
				break;
			}
			names = v;
		}
		struct stat st;
		bool wh = (de->d_type == DT_CHR || de->d_type == DT_UNKNOWN) && fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		          is_whiteout(&st);
		if (asprintf(&names[n].key, "%s%s", wh ? WH_PREFIX : "", de->d_name) < 0) {
			r = gr_error_set(w->err, ENOMEM, "out of memory");
			break;
		}
		names[n].name = names[n].key + (wh ? strlen(WH_PREFIX) : 0);
		n++;
	}
	closedir(d);
	if (r == 0 && is_opaque(dfd))
		r = wtar_opaque(w, rel, dst);
	if (r == 0 && n)
		qsort(names, n, sizeof(*names), cmp_wnames);
	for (size_t i = 0; r == 0 && i < n; i++) {
		gr_autofree char *child = NULL;
		if (asprintf(&child, "%s%s%s", rel, *rel ? "/" : "", names[i].name) < 0) {
			child = NULL;
			r = gr_error_set(w->err, ENOMEM, "out of memory");
		} else {
			r = wtar_one(w, dfd, names[i].name, child, depth);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i].key);
	free(names);
	return r;
}

int layer_write_tar(const char *layer_dir, int out_fd, char digest_hex[LAYER_DIGEST_HEX],
                    uint64_t *size, struct gr_error *err)
{
	struct gr_error local_err = { 0 };
	if (!err)
		err = &local_err;
	gr_autoclose int root = open(layer_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return gr_error_sys(err, errno, "layer tar: cannot open %s", layer_dir);
	struct stat st;
	if (fstat(root, &st) < 0)
		return gr_error_sys(err, errno, "layer tar: cannot stat %s", layer_dir);
	_cleanup_(md_freep) EVP_MD_CTX *md = sha256_new();
	_cleanup_(archive_write_freep) struct archive *a = archive_write_new();
	gr_autofree char *buf = malloc(COPY_BUF);
	if (!md || !a || !buf)
		return gr_error_set(err, ENOMEM, "out of memory");
	struct wtar w = { .a = a, .out_fd = out_fd, .md = md, .buf = buf, .err = err };
	/* pax where needed (long names, xattrs, big ids), ustar otherwise; no
	 * padding to 10 KiB records: the tar ends after its two zero blocks. */
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_add_filter_none(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, 10240) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open(a, &w, NULL, wtar_write_cb, NULL) != ARCHIVE_OK)
		return gr_error_set(err, EIO, "layer tar: %s", archive_error_string(a) ? archive_error_string(a) : "setup");
	int r = wtar_dir(&w, root, "", &st, 1);
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = wtar_fail(&w, "(end)");
	links_free(&w.links);
	if (r < 0)
		return r;
	if (digest_hex)
		md_final_hex(md, digest_hex);
	if (size)
		*size = w.size;
	return 0;
}
