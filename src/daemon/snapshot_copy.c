/* tree_copy (snapshot_copy.h). Each directory is read whole (its names
 * sorted, so copies are deterministic), closed, then its entries copied:
 * the walk holds two descriptors per level of depth. Metadata is applied in
 * the order that keeps it: owner (chown clears set-id bits and file
 * capabilities), then mode, then extended attributes, then timestamps
 * (directories' last, after their contents). */
#include "daemon/snapshot_copy.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define XATTR_LIST_MAX_ 65536
#define XATTR_VALUE_MAX 65536
#define COPY_CHUNK (1 << 30)

/* (dev, ino) of a multiply-linked source -> its copy's path relative to dst. */
struct link_entry {
	dev_t dev;
	ino_t ino;
	char *rel;
};

struct copy {
	int droot;                   /* dst's root */
	struct link_entry *links;    /* open addressing, cap a power of two */
	size_t n_links, cap_links;
	struct tree_copy_stats st;
	struct gr_error *err;
	char *xbuf, *xval;           /* attribute list and value buffers */
};

static size_t link_hash(dev_t dev, ino_t ino, size_t cap)
{
	uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ino * 0xff51afd7ed558ccdull);
	h ^= h >> 29;
	return (size_t)h & (cap - 1);
}

static const char *link_find(const struct copy *c, dev_t dev, ino_t ino)
{
	if (!c->cap_links)
		return NULL;
	for (size_t i = link_hash(dev, ino, c->cap_links);; i = (i + 1) & (c->cap_links - 1)) {
		if (!c->links[i].rel)
			return NULL;
		if (c->links[i].dev == dev && c->links[i].ino == ino)
			return c->links[i].rel;
	}
}

static int link_add(struct copy *c, dev_t dev, ino_t ino, const char *rel)
{
	if ((c->n_links + 1) * 2 > c->cap_links) {
		size_t cap = c->cap_links ? c->cap_links * 2 : 64;
		struct link_entry *n = calloc(cap, sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (size_t i = 0; i < c->cap_links; i++) {
			if (!c->links[i].rel)
				continue;
			size_t j = link_hash(c->links[i].dev, c->links[i].ino, cap);
			while (n[j].rel)
				j = (j + 1) & (cap - 1);
			n[j] = c->links[i];
		}
		free(c->links);
		c->links = n;
		c->cap_links = cap;
	}
	char *dup = strdup(rel);
	if (!dup)
		return -ENOMEM;
	size_t j = link_hash(dev, ino, c->cap_links);
	while (c->links[j].rel)
		j = (j + 1) & (c->cap_links - 1);
	c->links[j] = (struct link_entry){ dev, ino, dup };
	c->n_links++;
	return 0;
}

/* ---- metadata ---- */

/* A path naming entry `name` of the directory open at dirfd, for the
 * l*xattr calls (the last component is not followed). */
static void proc_path(char *out, size_t n, int dirfd, const char *name)
{
	snprintf(out, n, "/proc/self/fd/%d/%s", dirfd, name);
}

/* Copies every extended attribute: by descriptor (sfd/dfd >= 0), else by
 * the entries' /proc paths (symbolic links, devices). */
static int copy_xattrs(struct copy *c, int sfd, const char *spath, int dfd, const char *dpath, const char *rel)
{
	ssize_t n = sfd >= 0 ? flistxattr(sfd, c->xbuf, XATTR_LIST_MAX_) : llistxattr(spath, c->xbuf, XATTR_LIST_MAX_);
	if (n < 0) {
		if (errno == ENOTSUP)
			return 0;
		return gr_error_sys(c->err, errno, "cannot list the extended attributes of %s", rel);
	}
	for (char *k = c->xbuf; k < c->xbuf + n; k += strlen(k) + 1) {
		ssize_t v = sfd >= 0 ? fgetxattr(sfd, k, c->xval, XATTR_VALUE_MAX)
				     : lgetxattr(spath, k, c->xval, XATTR_VALUE_MAX);
		if (v < 0) {
			if (errno == ENODATA)
				continue; /* removed meanwhile */
			return gr_error_sys(c->err, errno, "cannot read the attribute %s of %s", k, rel);
		}
		int r = dfd >= 0 ? fsetxattr(dfd, k, c->xval, (size_t)v, 0) : lsetxattr(dpath, k, c->xval, (size_t)v, 0);
		if (r < 0)
			return gr_error_sys(c->err, errno, "cannot set the attribute %s on the copy of %s", k, rel);
	}
	return 0;
}

/* Owner, mode, attributes, times of a copy made as dir entry `name`
 * (dfd >= 0: an open descriptor of it, for regular files and directories). */
static int copy_meta(struct copy *c, const struct stat *st, int sdir, const char *name, int sfd, int ddir, int dfd,
		     const char *rel)
{
	char spath[64 + NAME_MAX], dpath[64 + NAME_MAX];
	bool lnk = S_ISLNK(st->st_mode);
	proc_path(spath, sizeof(spath), sdir, name);
	proc_path(dpath, sizeof(dpath), ddir, name);
	int r = dfd >= 0 ? fchown(dfd, st->st_uid, st->st_gid)
			 : fchownat(ddir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return gr_error_sys(c->err, errno, "cannot set the owner of the copy of %s", rel);
	if (!lnk) {
		r = dfd >= 0 ? fchmod(dfd, st->st_mode & 07777) : fchmodat(ddir, name, st->st_mode & 07777, 0);
		if (r < 0)
			return gr_error_sys(c->err, errno, "cannot set the mode of the copy of %s", rel);
	}
	if ((r = copy_xattrs(c, sfd, spath, dfd, dpath, rel)) < 0)
		return r;
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	r = dfd >= 0 ? futimens(dfd, ts) : utimensat(ddir, name, ts, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return gr_error_sys(c->err, errno, "cannot set the times of the copy of %s", rel);
	return 0;
}

/* ---- contents ---- */

static int copy_bytes(int sfd, int dfd, off_t from, off_t to)
{
	while (from < to) {
		size_t len = (size_t)(to - from) > COPY_CHUNK ? COPY_CHUNK : (size_t)(to - from);
		off_t in = from, out = from;
		ssize_t n = copy_file_range(sfd, &in, dfd, &out, len, 0);
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
			char buf[1 << 16];
			n = pread(sfd, buf, len < sizeof(buf) ? len : sizeof(buf), from);
			if (n > 0 && pwrite(dfd, buf, (size_t)n, from) != n)
				return -errno ? -errno : -EIO;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA; /* shrank meanwhile */
		from += n;
	}
	return 0;
}

/* The data extents only (SEEK_DATA/SEEK_HOLE), so a sparse file stays sparse. */
static int copy_file_data(struct copy *c, int sfd, int dfd, off_t size, const char *rel)
{
	if (ioctl(dfd, FICLONE, sfd) == 0) {
		c->st.reflinked++;
		return 0;
	}
	off_t pos = 0;
	int r = 0;
	while (pos < size) {
		off_t data = lseek(sfd, pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break; /* only a hole is left */
			if (errno != EINVAL && errno != EOPNOTSUPP) {
				r = -errno;
				break;
			}
			data = pos; /* no SEEK_DATA here: all of it */
			r = copy_bytes(sfd, dfd, pos, size);
			pos = size;
			break;
		}
		off_t hole = lseek(sfd, data, SEEK_HOLE);
		if (hole < 0 || hole > size)
			hole = size;
		if ((r = copy_bytes(sfd, dfd, data, hole)) < 0)
			break;
		pos = hole;
	}
	if (r == 0 && ftruncate(dfd, size) < 0)
		r = -errno;
	if (r < 0)
		return gr_error_sys(c->err, -r, "cannot copy the contents of %s", rel);
	return 0;
}

static int copy_dir(struct copy *c, int sdir, int ddir, const char *rel, unsigned depth);

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in the directory open at fd (sorted; gr_strv_free). */
static int read_names(int fd, char ***out, const char *rel, struct gr_error *err)
{
	int dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dup < 0)
		return gr_error_sys(err, errno, "cannot open %s", rel);
	DIR *d = fdopendir(dup);
	if (!d) {
		close(dup);
		return gr_error_sys(err, errno, "cannot read %s", rel);
	}
	size_t n = 0, cap = 16;
	char **v = calloc(cap + 1, sizeof(char *));
	struct dirent *e;
	errno = 0;
	while (v && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == cap) {
			char **nv = realloc(v, (cap * 2 + 1) * sizeof(char *));
			if (!nv)
				break;
			v = nv;
			cap *= 2;
		}
		if (!(v[n] = strdup(e->d_name)))
			break;
		v[++n] = NULL;
		errno = 0;
	}
	int e_ = errno;
	closedir(d);
	if (!v || e_) {
		gr_strv_free(v);
		return gr_error_sys(err, e_ ? e_ : ENOMEM, "cannot read %s", rel);
	}
	qsort(v, n, sizeof(char *), name_cmp);
	*out = v;
	return 0;
}

static int copy_entry(struct copy *c, int sdir, int ddir, const char *name, const char *rel, unsigned depth)
{
	struct stat st;
	if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0; /* removed meanwhile (a running container's own files) */
		return gr_error_sys(c->err, errno, "cannot stat %s", rel);
	}
	c->st.entries++;
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		const char *first = link_find(c, st.st_dev, st.st_ino);
		if (first) {
			if (linkat(c->droot, first, ddir, name, 0) < 0)
				return gr_error_sys(c->err, errno, "cannot link %s to %s in the copy", rel, first);
			return 0;
		}
		if (link_add(c, st.st_dev, st.st_ino, rel) < 0)
			return gr_error_set(c->err, ENOMEM, "out of memory");
	}
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR: {
		if (depth >= 1024)
			return gr_error_set(c->err, ELOOP, "%s: directories nested deeper than 1024", rel);
		if (mkdirat(ddir, name, 0700) < 0)
			return gr_error_sys(c->err, errno, "cannot create the copy of %s", rel);
		gr_autoclose int s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		gr_autoclose int d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (s < 0 || d < 0)
			return gr_error_sys(c->err, errno, "cannot open %s", rel);
		int r = copy_dir(c, s, d, rel, depth + 1);
		return r < 0 ? r : copy_meta(c, &st, sdir, name, s, ddir, d, rel);
	}
	case S_IFREG: {
		gr_autoclose int s = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
		if (s < 0)
			return gr_error_sys(c->err, errno, "cannot open %s", rel);
		gr_autoclose int d = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (d < 0)
			return gr_error_sys(c->err, errno, "cannot create the copy of %s", rel);
		int r = copy_file_data(c, s, d, st.st_size, rel);
		if (r < 0)
			return r;
		c->st.bytes += (uint64_t)st.st_size;
		return copy_meta(c, &st, sdir, name, s, ddir, d, rel);
	}
	case S_IFLNK: {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(sdir, name, target, sizeof(target) - 1);
		if (n < 0)
			return gr_error_sys(c->err, errno, "cannot read the link %s", rel);
		target[n] = '\0';
		if (symlinkat(target, ddir, name) < 0)
			return gr_error_sys(c->err, errno, "cannot create the copy of %s", rel);
		return copy_meta(c, &st, sdir, name, -1, ddir, -1, rel);
	}
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		if (mknodat(ddir, name, (st.st_mode & S_IFMT) | 0600, st.st_rdev) < 0)
			return gr_error_sys(c->err, errno, "cannot create the copy of %s (%s)", rel,
					    S_ISCHR(st.st_mode) ? "a character device" : S_ISBLK(st.st_mode) ? "a block device"
					    : S_ISFIFO(st.st_mode) ? "a FIFO" : "a socket");
		return copy_meta(c, &st, sdir, name, -1, ddir, -1, rel);
	default:
		return gr_error_set(c->err, EINVAL, "%s: unknown file type %o", rel, st.st_mode & S_IFMT);
	}
}

static int copy_dir(struct copy *c, int sdir, int ddir, const char *rel, unsigned depth)
{
	gr_autostrv char **names = NULL;
	int r = read_names(sdir, &names, rel, c->err);
	if (r < 0)
		return r;
	for (char **n = names; *n; n++) {
		gr_autofree char *sub = NULL;
		if (asprintf(&sub, "%s%s%s", rel[0] && strcmp(rel, ".") ? rel : "", rel[0] && strcmp(rel, ".") ? "/" : "",
			     *n) < 0)
			return gr_error_set(c->err, ENOMEM, "out of memory");
		if ((r = copy_entry(c, sdir, ddir, *n, sub, depth)) < 0)
			return r;
	}
	return 0;
}

int tree_copy(const char *src, const char *dst, struct tree_copy_stats *stats, struct gr_error *err)
{
	struct copy c = { .droot = -1, .err = err };
	gr_autoclose int sfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return gr_error_sys(err, errno, "cannot open %s", src);
	struct stat st;
	if (fstat(sfd, &st) < 0)
		return gr_error_sys(err, errno, "cannot stat %s", src);
	if (mkdir(dst, 0700) < 0)
		return gr_error_sys(err, errno, "cannot create %s", dst);
	int r;
	c.droot = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	c.xbuf = malloc(XATTR_LIST_MAX_);
	c.xval = malloc(XATTR_VALUE_MAX);
	if (c.droot < 0) {
		r = gr_error_sys(err, errno, "cannot open %s", dst);
	} else if (!c.xbuf || !c.xval) {
		r = gr_error_set(err, ENOMEM, "out of memory");
	} else {
		c.st.entries = 1;
		r = copy_dir(&c, sfd, c.droot, ".", 1);
		/* The root's own metadata, as for any directory: fd-based. */
		char dpath[64];
		snprintf(dpath, sizeof(dpath), "/proc/self/fd/%d", c.droot);
		if (r == 0 && (fchown(c.droot, st.st_uid, st.st_gid) < 0 || fchmod(c.droot, st.st_mode & 07777) < 0))
			r = gr_error_sys(err, errno, "cannot set the owner and mode of %s", dst);
		if (r == 0)
			r = copy_xattrs(&c, sfd, NULL, c.droot, dpath, ".");
		struct timespec ts[2] = { st.st_atim, st.st_mtim };
		if (r == 0 && futimens(c.droot, ts) < 0)
			r = gr_error_sys(err, errno, "cannot set the times of %s", dst);
	}
	if (r < 0) {
		gr_error_prefix(err, "copying %s to %s", src, dst);
		(void)gr_rm_rf(dst, NULL);
	} else if (stats) {
		*stats = c.st;
	}
	if (c.droot >= 0)
		close(c.droot);
	for (size_t i = 0; i < c.cap_links; i++)
		free(c.links[i].rel);
	free(c.links);
	free(c.xbuf);
	free(c.xval);
	return r;
}
