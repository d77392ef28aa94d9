#include "rootfs.h"
#include "../common/cleanup.h"
#include "../common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define FD_PATH_MAX 64

static int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = { .flags = flags, .mode = 0, .resolve = resolve };
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static void fd_path(char *buf, int fd)
{
	snprintf(buf, FD_PATH_MAX, "/proc/self/fd/%d", fd);
}

static int resolve_in_root(int rootfd, const char *rel, uint64_t flags)
{
	int fd;
	do
		fd = sys_openat2(rootfd, rel[0] ? rel : ".", flags | O_CLOEXEC,
				 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	while (fd < 0 && errno == EAGAIN);
	return fd;
}

int rootfs_open_in_root(int rootfd, const char *path, bool create, bool is_file, int *out,
			struct gr_error *err)
{
	char rel[PATH_MAX];
	while (*path == '/')
		path++;
	if (snprintf(rel, sizeof(rel), "%s", path) >= (int)sizeof(rel))
		return gr_error_set(err, ENAMETOOLONG, "%s: path too long", path);
	/* Drop trailing slashes. */
	for (size_t n = strlen(rel); n > 0 && rel[n - 1] == '/'; n--)
		rel[n - 1] = '\0';

	int fd = resolve_in_root(rootfd, rel, O_PATH);
	if (fd >= 0 || errno != ENOENT || !create) {
		if (fd < 0)
			return gr_error_sys(err, errno, "/%s", rel);
		*out = fd;
		return 0;
	}
	/* Walk from the root, creating what is missing; every step is resolved
	 * again inside the root so a symlink planted on the way stays contained. */
	gr_autoclose int dirfd = resolve_in_root(rootfd, "", O_PATH | O_DIRECTORY);
	if (dirfd < 0)
		return gr_error_sys(err, errno, "cannot open the root file system");
	char *p = rel;
	while (*p) {
		char *slash = strchr(p, '/');
		bool last = slash == NULL;
		if (slash)
			*slash = '\0';
		if (p[0] == '\0' || strcmp(p, ".") == 0) {
			if (last)
				break;
			p = slash + 1;
			continue;
		}
		if (strcmp(p, "..") == 0)
			return gr_error_set(err, EINVAL, "/%s: \"..\" is not allowed in a destination", path);
		int next = resolve_in_root(dirfd, p, O_PATH);
		if (next < 0 && errno == ENOENT) {
			int r;
			if (last && is_file) {
				int f = openat(dirfd, p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
				r = f < 0 ? -errno : 0;
				if (f >= 0)
					close(f);
			} else {
				r = mkdirat(dirfd, p, 0755) < 0 ? -errno : 0;
			}
			if (r < 0 && r != -EEXIST)
				return gr_error_sys(err, -r, "cannot create /%s inside the container", path);
			next = resolve_in_root(dirfd, p, O_PATH);
		}
		if (next < 0)
			return gr_error_sys(err, errno, "cannot open /%s inside the container", path);
		close(dirfd);
		dirfd = next;
		if (last)
			break;
		*slash = '/';
		p = slash + 1;
	}
	*out = gr_steal_fd(dirfd);
	return 0;
}

/* Flags a remount must keep (those locked by a user namespace). */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
	return f;
}

#define REMOUNT_MASK (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | \
		      MS_RELATIME | MS_STRICTATIME | MS_SYNCHRONOUS | MS_DIRSYNC | MS_MANDLOCK)

struct mount_req {
	const char *dest;            /* container path, for messages */
	const char *source;
	const char *type;
	unsigned long flags, clear_flags, propagation, rec_flags, rec_clear;
	const char *data;
	bool bind, is_file;
};

/* Mounts one entry at DEST inside the tree at rootfd. */
static int mount_one(int rootfd, const struct mount_req *m, bool userns, struct gr_error *err)
{
	gr_autoclose int tfd = -1;
	int r = rootfs_open_in_root(rootfd, m->dest, true, m->is_file, &tfd, err);
	if (r < 0)
		return gr_error_prefix(err, "mount %s", m->dest);
	char target[FD_PATH_MAX];
	fd_path(target, tfd);

	unsigned long flags = m->flags & ~(unsigned long)(MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE);
	if (m->bind) {
		if (mount(m->source, target, NULL, MS_BIND | (flags & MS_REC), NULL) < 0)
			return gr_error_sys(err, errno, "cannot bind mount %s on %s", m->source, m->dest);
	} else {
		r = mount(m->source ? m->source : m->type, target, m->type, flags & ~(unsigned long)MS_REMOUNT,
			  m->data);
		if (r < 0 && errno == EPERM && userns && m->type && strcmp(m->type, "sysfs") == 0) {
			/* sysfs cannot be mounted from a user namespace without its
			 * own network namespace: bind the host's, as runc does. */
			r = mount("/sys", target, NULL, MS_BIND | MS_REC, NULL);
			if (r == 0)
				flags |= MS_BIND;
		}
		if (r < 0)
			return gr_error_sys(err, errno, "cannot mount %s (type %s) on %s",
					    m->source ? m->source : "none", m->type ? m->type : "none", m->dest);
	}
	/* Flags that a bind mount (or a file system mount with MS_BIND fallback)
	 * only takes on a remount. */
	bool need_remount = m->bind ? (flags & REMOUNT_MASK) != 0 : (flags & MS_BIND) && (flags & REMOUNT_MASK);
	gr_autoclose int mfd = -1;
	if (need_remount || m->propagation || m->rec_flags || m->rec_clear) {
		r = rootfs_open_in_root(rootfd, m->dest, false, false, &mfd, err);
		if (r < 0)
			return gr_error_prefix(err, "mount %s", m->dest);
		fd_path(target, mfd);
	}
	if (need_remount) {
		unsigned long rf = MS_BIND | MS_REMOUNT | (flags & REMOUNT_MASK) | locked_flags(target);
		if (m->clear_flags & MS_NOSUID) rf &= ~(unsigned long)MS_NOSUID;
		if (mount(NULL, target, NULL, rf, NULL) < 0)
			return gr_error_sys(err, errno, "cannot remount %s with its options", m->dest);
	}
	if (m->rec_flags || m->rec_clear) {
		struct mount_attr attr = { .attr_set = m->rec_flags, .attr_clr = m->rec_clear };
		if (m->rec_flags & MOUNT_ATTR__ATIME)
			attr.attr_clr |= MOUNT_ATTR__ATIME;
		if (syscall(SYS_mount_setattr, mfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
			return gr_error_sys(err, errno, "cannot set recursive attributes on %s", m->dest);
	}
	if (m->propagation && mount(NULL, target, NULL, m->propagation, NULL) < 0)
		return gr_error_sys(err, errno, "cannot set propagation of %s", m->dest);
	return 0;
}

static int bind_or_mount_cgroup(int rootfd, const char *dest, const char *fstype, const char *opts,
				const char *host_dir, unsigned long flags, bool try_fs, bool userns,
				struct gr_error *err)
{
	struct mount_req req = { .dest = dest, .type = fstype, .source = fstype, .data = opts,
				 .flags = flags };
	struct gr_error tmp = { 0 };
	if (try_fs && mount_one(rootfd, &req, userns, &tmp) == 0)
		return 0;
	if (access(host_dir, F_OK) < 0)
		return 0; /* this hierarchy has no cgroup for us: leave the directory empty */
	struct mount_req bind = { .dest = dest, .source = host_dir, .bind = true,
				  .flags = (flags & REMOUNT_MASK) | MS_REC };
	return mount_one(rootfd, &bind, userns, err);
}

/* A "cgroup" mount: cgroup2 on v2 hosts; on v1 and hybrid hosts a tmpfs with
 * one directory per hierarchy (and symlinks for co-mounted controllers). With
 * a cgroup namespace the file systems are mounted (the container sees its own
 * cgroup as the root); otherwise, or when that is refused, the container's
 * cgroup directories are bind mounted. */
static int mount_cgroup(const struct rootfs_ctx *ctx, int rootfd, const struct oci_mount *om,
			struct gr_error *err)
{
	const struct cgroup_layout *l = ctx->cg_layout;
	unsigned long flags = om->flags | MS_NOSUID | MS_NODEV | MS_NOEXEC;
	char host[PATH_MAX], dest[PATH_MAX];
	const char *cg = ctx->cg_path ? ctx->cg_path : "/";
	if (!l) {
		struct mount_req req = { .dest = om->destination, .type = "tmpfs", .source = "tmpfs",
					 .flags = flags, .data = "mode=755" };
		return mount_one(rootfd, &req, ctx->userns, err);
	}
	if (l->mode == CGROUP_MODE_V2) {
		snprintf(host, sizeof(host), "%s%s", l->unified_mount, cg);
		return bind_or_mount_cgroup(rootfd, om->destination, "cgroup2", NULL, host, flags,
					    ctx->cgroupns, ctx->userns, err);
	}
	struct mount_req tmpfs = { .dest = om->destination, .type = "tmpfs", .source = "tmpfs",
				   .flags = (flags & ~(unsigned long)MS_RDONLY), .data = "mode=755" };
	int r = mount_one(rootfd, &tmpfs, ctx->userns, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < l->n_v1; i++) {
		const struct cgroup_v1_hierarchy *h = &l->v1[i];
		const char *name = strrchr(h->mount, '/');
		name = name ? name + 1 : h->mount;
		char opts[256] = "";
		for (char **c = h->controllers; c && *c; c++) {
			size_t n = strlen(opts);
			snprintf(opts + n, sizeof(opts) - n, "%s%s", n ? "," : "", *c);
		}
		snprintf(dest, sizeof(dest), "%s/%s", om->destination, name);
		snprintf(host, sizeof(host), "%s%s", h->mount, cg);
		r = bind_or_mount_cgroup(rootfd, dest, "cgroup", opts, host, flags, ctx->cgroupns,
					 ctx->userns, err);
		if (r < 0)
			return r;
		/* "cpu" and "cpuacct" -> "cpu,cpuacct" */
		if (h->controllers && h->controllers[0] && h->controllers[1]) {
			gr_autoclose int dfd = -1;
			if (rootfs_open_in_root(rootfd, om->destination, false, false, &dfd, err) < 0)
				return r;
			char dpath[FD_PATH_MAX];
			fd_path(dpath, dfd);
			gr_autoclose int real = open(dpath, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
			for (char **c = h->controllers; real >= 0 && *c; c++)
				if (strchr(*c, '=') == NULL && strcmp(*c, name) != 0)
					(void)symlinkat(name, real, *c);
		}
	}
	if (l->unified_mount) {
		snprintf(dest, sizeof(dest), "%s/unified", om->destination);
		snprintf(host, sizeof(host), "%s%s", l->unified_mount, cg);
		/* Not joined (nothing asked for it): a cgroup2 mount would show the
		 * host's whole unified tree, so bind the container's empty cgroup. */
		r = bind_or_mount_cgroup(rootfd, dest, "cgroup2", NULL, host, flags,
					 ctx->cgroupns && ctx->unified_joined, ctx->userns, err);
		if (r < 0)
			return r;
	}
	if (om->flags & MS_RDONLY) {
		gr_autoclose int fd = -1;
		if (rootfs_open_in_root(rootfd, om->destination, false, false, &fd, err) < 0)
			return -err->code;
		char target[FD_PATH_MAX];
		fd_path(target, fd);
		if (mount(NULL, target, NULL, MS_REMOUNT | MS_RDONLY | (flags & REMOUNT_MASK), "mode=755") < 0)
			return gr_error_sys(err, errno, "cannot make %s read-only", om->destination);
	}
	return 0;
}

struct default_device {
	const char *path;
	unsigned int major, minor;
};

static const struct default_device default_devices[] = {
	{ "/dev/null", 1, 3 },   { "/dev/zero", 1, 5 },    { "/dev/full", 1, 7 },
	{ "/dev/random", 1, 8 }, { "/dev/urandom", 1, 9 }, { "/dev/tty", 5, 0 },
};

static int create_device(int rootfd, const char *path, char type, unsigned int major, unsigned int minor,
			 mode_t mode, uid_t uid, gid_t gid, bool bind, struct gr_error *err)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", path);
	char *slash = strrchr(parent, '/');
	const char *name = slash ? slash + 1 : parent;
	if (slash)
		*slash = '\0';
	if (!*name)
		return gr_error_set(err, EINVAL, "device path %s has no file name", path);
	gr_autoclose int pfd = -1;
	int r = rootfs_open_in_root(rootfd, parent[0] ? parent : "/", true, false, &pfd, err);
	if (r < 0)
		return gr_error_prefix(err, "device %s", path);
	char ppath[FD_PATH_MAX];
	fd_path(ppath, pfd);
	gr_autoclose int dirfd = open(ppath, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dirfd < 0)
		return gr_error_sys(err, errno, "cannot open the directory of device %s", path);
	(void)unlinkat(dirfd, name, 0);
	mode_t kind = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;
	if (!bind || kind == S_IFIFO) {
		if (mknodat(dirfd, name, kind | (mode & 07777), makedev(major, minor)) < 0) {
			if (errno != EPERM || kind == S_IFIFO)
				return gr_error_sys(err, errno, "cannot create device %s", path);
			bind = true;
		} else {
			if (fchmodat(dirfd, name, mode & 07777, 0) < 0 ||
			    fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
				return gr_error_sys(err, errno, "cannot set owner and mode of device %s", path);
			return 0;
		}
	}
	/* In a user namespace device nodes cannot be made: bind the host's. */
	int f = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (f < 0)
		return gr_error_sys(err, errno, "cannot create %s", path);
	close(f);
	char host[PATH_MAX];
	snprintf(host, sizeof(host), "%s", path);
	struct stat st;
	if (stat(host, &st) < 0 || (st.st_rdev != makedev(major, minor)))
		return gr_error_set(err, ENODEV, "cannot create device %s (%u:%u): mknod is not allowed here "
				    "and the host has no such device to bind", path, major, minor);
	struct mount_req req = { .dest = path, .source = host, .bind = true, .is_file = true };
	return mount_one(rootfd, &req, true, err);
}

static bool config_has_device(const struct oci_config *c, const char *path)
{
	for (size_t i = 0; i < c->linux_.n_devices; i++)
		if (strcmp(c->linux_.devices[i].path, path) == 0)
			return true;
	return false;
}


static int setup_dev(const struct rootfs_ctx *ctx, int rootfd, struct gr_error *err)
{
	const struct oci_config *c = ctx->cfg;
	for (size_t i = 0; i < sizeof(default_devices) / sizeof(default_devices[0]); i++) {
		const struct default_device *d = &default_devices[i];
		if (config_has_device(c, d->path))
			continue;
		int r = create_device(rootfd, d->path, 'c', d->major, d->minor, 0666, 0, 0, ctx->userns, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < c->linux_.n_devices; i++) {
		const struct oci_device *d = &c->linux_.devices[i];
		int r = create_device(rootfd, d->path, d->type == 'u' ? 'c' : d->type, (unsigned)d->major,
				      (unsigned)d->minor, d->file_mode.set ? d->file_mode.v : 0666,
				      d->uid.set ? d->uid.v : 0, d->gid.set ? d->gid.v : 0, ctx->userns, err);
		if (r < 0)
			return gr_error_prefix(err, "linux.devices[%zu]", i);
	}
	gr_autoclose int devfd = -1;
	int r = rootfs_open_in_root(rootfd, "/dev", true, false, &devfd, err);
	if (r < 0)
		return r;
	char p[FD_PATH_MAX];
	fd_path(p, devfd);
	gr_autoclose int dfd = open(p, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dfd < 0)
		return gr_error_sys(err, errno, "cannot open /dev in the container");
	static const char *const links[][2] = {
		{ "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlinkat(links[i][1], dfd, links[i][0]) < 0 && errno != EEXIST)
			return gr_error_sys(err, errno, "cannot create /dev/%s", links[i][0]);
	if (access("/proc/kcore", F_OK) == 0)
		(void)symlinkat("/proc/kcore", dfd, "core");
	/* /dev/ptmx: the container's devpts instance when it has one. */
	struct stat st;
	if (fstatat(dfd, "pts/ptmx", &st, 0) == 0) {
		(void)unlinkat(dfd, "ptmx", 0);
		if (symlinkat("pts/ptmx", dfd, "ptmx") < 0)
			return gr_error_sys(err, errno, "cannot create /dev/ptmx");
	}
	return 0;
}

int rootfs_prepare(const struct rootfs_ctx *ctx, struct gr_error *err)
{
	const struct oci_config *c = ctx->cfg;
	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return gr_error_sys(err, errno, "cannot make the mount namespace a slave of the host");
	if (mount(ctx->rootfs, ctx->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		return gr_error_sys(err, errno, "cannot bind mount the rootfs %s", ctx->rootfs);
	if (mount(NULL, ctx->rootfs, NULL, MS_PRIVATE, NULL) < 0)
		return gr_error_sys(err, errno, "cannot make the rootfs mount private");
	gr_autoclose int rootfd = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return gr_error_sys(err, errno, "cannot open the rootfs %s", ctx->rootfs);
	bool cgroup_ready_done = false;
	for (size_t i = 0; i < c->n_mounts; i++) {
		const struct oci_mount *om = &c->mounts[i];
		int r;
		if (om->type && (strcmp(om->type, "cgroup") == 0 || strcmp(om->type, "cgroup2") == 0)) {
			if (!cgroup_ready_done && ctx->cgroup_ready &&
			    (r = ctx->cgroup_ready(ctx->cgroup_ready_data, err)) < 0)
				return r;
			cgroup_ready_done = true;
			r = mount_cgroup(ctx, rootfd, om, err);
		} else {
			struct mount_req req = {
				.dest = om->destination, .source = om->source, .type = om->type,
				.flags = om->flags, .clear_flags = om->clear_flags,
				.propagation = om->propagation, .rec_flags = om->rec_flags,
				.rec_clear = om->rec_clear, .data = om->data, .bind = om->bind,
			};
			if (om->bind) {
				struct stat st;
				if (!om->source)
					return gr_error_set(err, EINVAL, "mounts[%zu]: a bind mount needs a source", i);
				if (stat(om->source, &st) < 0)
					return gr_error_sys(err, errno, "mounts[%zu]: bind source %s", i, om->source);
				req.is_file = !S_ISDIR(st.st_mode);
			}
			r = mount_one(rootfd, &req, ctx->userns, err);
		}
		if (r < 0)
			return gr_error_prefix(err, "mounts[%zu]", i);
	}
	int r = setup_dev(ctx, rootfd, err);
	if (r == 0 && !cgroup_ready_done && ctx->cgroup_ready)
		r = ctx->cgroup_ready(ctx->cgroup_ready_data, err);
	return r;
}

int rootfs_pivot(const char *rootfs, bool no_pivot, struct gr_error *err)
{
	if (no_pivot) {
		if (chdir(rootfs) < 0)
			return gr_error_sys(err, errno, "cannot enter the rootfs %s", rootfs);
		if (mount(rootfs, "/", NULL, MS_MOVE, NULL) < 0)
			return gr_error_sys(err, errno, "cannot move the rootfs to /");
		if (chroot(".") < 0)
			return gr_error_sys(err, errno, "chroot into the rootfs");
		if (chdir("/") < 0)
			return gr_error_sys(err, errno, "chdir /");
		return 0;
	}
	gr_autoclose int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	gr_autoclose int newroot = open(rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (oldroot < 0 || newroot < 0)
		return gr_error_sys(err, errno, "cannot open / or the rootfs %s", rootfs);
	if (fchdir(newroot) < 0)
		return gr_error_sys(err, errno, "cannot enter the rootfs %s", rootfs);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return gr_error_sys(err, errno, "pivot_root into %s (try --no-pivot on a ramfs root)", rootfs);
	if (fchdir(oldroot) < 0)
		return gr_error_sys(err, errno, "cannot enter the old root");
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return gr_error_sys(err, errno, "cannot make the old root a slave");
	if (umount2(".", MNT_DETACH) < 0)
		return gr_error_sys(err, errno, "cannot detach the old root");
	if (chdir("/") < 0)
		return gr_error_sys(err, errno, "chdir /");
	return 0;
}

static int remount_readonly(const char *path, bool must_exist, struct gr_error *err)
{
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
		if (errno == ENOENT && !must_exist)
			return 0;
		return gr_error_sys(err, errno, "readonlyPaths: cannot bind %s", path);
	}
	unsigned long f = MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(path);
	if (mount(NULL, path, NULL, f, NULL) < 0)
		return gr_error_sys(err, errno, "readonlyPaths: cannot make %s read-only", path);
	return 0;
}

/* Files are masked by binding the container's /dev/null over them, through
 * a descriptor checked to really be the null device (1:3): a /dev/null
 * replaced by a symlink or another file must not be what gets bound. */
static int mask_path(const char *path, int null_fd, struct gr_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : gr_error_sys(err, errno, "maskedPaths: %s", path);
	if (S_ISDIR(st.st_mode)) {
		if (mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0,mode=0555") < 0)
			return gr_error_sys(err, errno, "maskedPaths: cannot mask directory %s", path);
		return 0;
	}
	char src[FD_PATH_MAX];
	fd_path(src, null_fd);
	if (mount(src, path, NULL, MS_BIND, NULL) < 0)
		return gr_error_sys(err, errno, "maskedPaths: cannot mask %s", path);
	return 0;
}

static int open_dev_null(int *out, struct gr_error *err)
{
	int fd = open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return gr_error_sys(err, e, "maskedPaths: cannot open the container's /dev/null");
	}
	if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
		close(fd);
		return gr_error_set(err, EPERM, "maskedPaths: the container's /dev/null is not the null device");
	}
	*out = fd;
	return 0;
}

static int write_sysctl(const char *key, const char *value, struct gr_error *err)
{
	char path[PATH_MAX] = "/proc/sys/";
	size_t n = strlen(path);
	if (strstr(key, "..") || strchr(key, '\0') == key)
		return gr_error_set(err, EINVAL, "linux.sysctl: invalid key \"%s\"", key);
	for (const char *k = key; *k && n < sizeof(path) - 1; k++)
		path[n++] = *k == '.' ? '/' : *k;
	path[n] = '\0';
	int r = gr_write_knob(path, value, err);
	if (r < 0)
		return gr_error_prefix(err, "linux.sysctl[\"%s\"]", key);
	return 0;
}

int rootfs_finish(const struct oci_config *c, int console_slave, struct gr_error *err)
{
	if (console_slave >= 0) {
		int f = open("/dev/console", O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (f >= 0)
			close(f);
		char src[FD_PATH_MAX];
		fd_path(src, console_slave);
		if (f >= 0 && mount(src, "/dev/console", NULL, MS_BIND, NULL) < 0)
			return gr_error_sys(err, errno, "cannot bind the console to /dev/console");
	}
	for (size_t i = 0; i < c->linux_.n_sysctl; i++) {
		int r = write_sysctl(c->linux_.sysctl[i].key, c->linux_.sysctl[i].value, err);
		if (r < 0)
			return r;
	}
	if (c->linux_.masked_paths && c->linux_.masked_paths[0]) {
		gr_autoclose int null_fd = -1;
		int r = open_dev_null(&null_fd, err);
		if (r < 0)
			return r;
		for (char **p = c->linux_.masked_paths; *p; p++)
			if ((r = mask_path(*p, null_fd, err)) < 0)
				return r;
	}
	for (char **p = c->linux_.readonly_paths; p && *p; p++) {
		int r = remount_readonly(*p, false, err);
		if (r < 0)
			return r;
	}
	if (c->root_readonly) {
		unsigned long f = MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags("/");
		if (mount(NULL, "/", NULL, f, NULL) < 0)
			return gr_error_sys(err, errno, "root.readonly: cannot make / read-only");
	}
	if (c->linux_.rootfs_propagation_flags &&
	    mount(NULL, "/", NULL, c->linux_.rootfs_propagation_flags, NULL) < 0)
		return gr_error_sys(err, errno, "linux.rootfsPropagation: cannot set \"%s\" on /",
				    c->linux_.rootfs_propagation);
	return 0;
}
