/* VM disks (vmdisk.h). */
#include "daemon/image/vmdisk.h"
#include "daemon/image/layer.h"
#include "daemon/supervisor/image.h"
#include "common/cleanup.h"
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/fs.h>
#include <unistd.h>

#define MIB (1ull << 20)
#define PROGRAM_OUTPUT_MAX 2048

static uint64_t round_mib(uint64_t v)
{
	return (v + MIB - 1) / MIB * MIB;
}

/* ---- running e2fsprogs ---- */

static int find_program(const char *name, char *out, size_t n)
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(out, n, "%s/%s", dirs[i], name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/* Runs argv (argv[0] a program name), stdin /dev/null, stdout and stderr
 * collected; *status gets its exit code (-1 when killed). */
static int run_program(char *const argv[], int *status, char *output, size_t output_len, struct gr_error *err)
{
	char path[PATH_MAX];
	if (find_program(argv[0], path, sizeof(path)) < 0)
		return gr_error_set(err, ENOENT, "%s not found (install e2fsprogs)", argv[0]);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, (short)(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
	static char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
	pid_t pid;
	int r = posix_spawn(&pid, path, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[1]);
	if (r != 0) {
		close(p[0]);
		return gr_error_sys(err, r, "cannot run %s", path);
	}
	size_t got = 0;
	char sink[4096];
	for (;;) {
		ssize_t k = got + 1 < output_len ? read(p[0], output + got, output_len - 1 - got) : read(p[0], sink, sizeof(sink));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (got + 1 < output_len)
			got += (size_t)k;
	}
	close(p[0]);
	output[got] = '\0';
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return gr_error_sys(err, errno, "waitpid %s", argv[0]);
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return 0;
}

/* Its output as one line for a message. */
static const char *one_line(char *s)
{
	for (char *c = s; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	size_t n = strlen(s);
	while (n && s[n - 1] == ' ')
		s[--n] = '\0';
	return s;
}

/* ---- size ---- */

static uint64_t walk_bytes, walk_inodes;

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)path;
	(void)type;
	(void)f;
	walk_inodes++;
	/* Data in 4 KiB blocks (ext4's), a directory at least one block. */
	uint64_t sz = S_ISREG(st->st_mode) || S_ISDIR(st->st_mode) || S_ISLNK(st->st_mode) ? (uint64_t)st->st_size : 0;
	if (S_ISLNK(st->st_mode) && sz < 60)
		sz = 0; /* fast symlink: in the inode */
	walk_bytes += (sz + 4095) / 4096 * 4096 + (S_ISDIR(st->st_mode) && sz == 0 ? 4096 : 0);
	return 0;
}

int vmdisk_min_size(const char *dir, uint64_t *out, struct gr_error *err)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* nftw has no context argument */
	pthread_mutex_lock(&mu);
	walk_bytes = walk_inodes = 0;
	int r = nftw(dir, walk_one, 32, FTW_PHYS | FTW_MOUNT);
	uint64_t bytes = walk_bytes, inodes = walk_inodes;
	pthread_mutex_unlock(&mu);
	if (r < 0)
		return gr_error_sys(err, errno, "cannot measure %s", dir);
	/* Inode tables (256 bytes an inode, one per 16 KiB of disk: mkfs's
	 * default ratio, so the disk must also be large enough to have that many
	 * inodes), the journal (up to 64 MiB; 16 MiB below 1 GiB... counted as
	 * 32), 5% reserved blocks, group descriptors and bitmaps (~1%), and 10%
	 * to spare. */
	uint64_t need = bytes + bytes / 10 + bytes / 20 + bytes / 100 + 32 * MIB;
	uint64_t by_inodes = (inodes + inodes / 10 + 64) * 16384;
	uint64_t min = need > by_inodes ? need : by_inodes;
	min += min / 64; /* inode tables */
	*out = round_mib(min < 16 * MIB ? 16 * MIB : min);
	return 0;
}

/* ---- build ---- */

static void size_text(uint64_t bytes, char *out, size_t n)
{
	if (bytes % (1ull << 30) == 0)
		snprintf(out, n, "%lluGiB", (unsigned long long)(bytes >> 30));
	else
		snprintf(out, n, "%lluMiB", (unsigned long long)(bytes >> 20));
}

int vmdisk_build_from_dir(const char *dir, const char *file, uint64_t size, struct gr_error *err)
{
	if (size == 0)
		size = VMDISK_DEFAULT_SIZE;
	if (size > VMDISK_MAX_SIZE)
		return gr_error_set(err, EINVAL, "disk size: at most 16TiB");
	size = round_mib(size);
	uint64_t min;
	int r = vmdisk_min_size(dir, &min, err);
	if (r < 0)
		return r;
	if (size < min) {
		char want[32], have[32];
		size_text(min, want, sizeof(want));
		size_text(size, have, sizeof(have));
		return gr_error_set(err, ENOSPC, "a disk of %s is too small for this image: it needs at least %s", have, want);
	}
	if (access(file, F_OK) == 0)
		return gr_error_set(err, EEXIST, "%s already exists", file);
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", file) >= (int)sizeof(tmp))
		return gr_error_set(err, ENAMETOOLONG, "path too long: %s", file);
	gr_autoclose int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot create %s", tmp);
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)size) < 0) {
		r = gr_error_sys(err, errno, "cannot size %s", tmp);
		unlink(tmp);
		return r;
	}
	char kib[32], out[PROGRAM_OUTPUT_MAX];
	snprintf(kib, sizeof(kib), "%lluk", (unsigned long long)(size / 1024));
	/* 4 KiB blocks whatever the size (mkfs picks 1 KiB for small ones): the
	 * disk may grow a lot later. */
	char *argv[] = { "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "gureum-root", "-d", (char *)dir, tmp, kib, NULL };
	int status;
	if ((r = run_program(argv, &status, out, sizeof(out), err)) < 0 ||
	    (status != 0 && (r = gr_error_set(err, EIO, "mkfs.ext4 -d %s failed (exit %d): %s", dir, status,
					      one_line(out))) < 0) ||
	    (fsync(fd) < 0 && (r = gr_error_sys(err, errno, "fsync %s", tmp)) < 0)) {
		unlink(tmp);
		return r;
	}
	if (rename(tmp, file) < 0) {
		r = gr_error_sys(err, errno, "cannot rename %s to %s", tmp, file);
		unlink(tmp);
		return r;
	}
	return 0;
}

/* ---- the per-image cache ---- */

/* Every temporary entry of the cache has this in its name. */
#define TMP_MARK ".tmp-"

/* STATE/vm/images/FP (out), after checking fp: it becomes a path. */
static int cache_dir(const char *state_dir, const char *fp, char out[PATH_MAX], struct gr_error *err)
{
	if (!image_hex_valid(fp))
		return gr_error_set(err, EINVAL, "\"%s\" is not an image fingerprint (64 hex digits)", fp ? fp : "");
	if (snprintf(out, PATH_MAX, "%s/vm/images/%s", state_dir, fp) >= PATH_MAX - 64)
		return gr_error_set(err, ENAMETOOLONG, "state directory %s: path too long", state_dir);
	return 0;
}

/* Creates STATE/vm (0755, as the initramfs cache makes it), STATE/vm/images
 * and dir (0700: the trees hold the images' files with their owners). */
static int cache_mkdirs(const char *state_dir, const char *dir, struct gr_error *err)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/vm", state_dir);
	int r = gr_mkdir_p(p, 0755, err);
	if (r < 0)
		return r;
	snprintf(p, sizeof(p), "%s/vm/images", state_dir);
	if ((r = gr_mkdir_p(p, 0700, err)) < 0)
		return r;
	return gr_mkdir_p(dir, 0700, err);
}

/* dir's .lock, locked (flock, exclusive; waits): the descriptor, or -errno. */
static int cache_lock(const char *dir, bool wait, struct gr_error *err)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/.lock", dir);
	int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open %s", p);
	while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		int r = errno == EWOULDBLOCK ? -EWOULDBLOCK : gr_error_sys(err, errno, "cannot lock %s", p);
		close(fd);
		return r;
	}
	return fd;
}

/* Removes dir's temporary entries: what a build cut short left (call with
 * dir's lock held: only a builder holding it makes them). */
static int cache_clean_temps(const char *dir, struct gr_error *err)
{
	gr_autoclosedir DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : gr_error_sys(err, errno, "cannot read %s", dir);
	int r = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strstr(e->d_name, TMP_MARK))
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		struct gr_error e2 = { 0 };
		if (gr_rm_rf(p, &e2) < 0 && r == 0) {
			*err = e2;
			r = -e2.code;
		}
	}
	return r;
}

/* The flattened tree dir/rootfs: there already, or made under dir's lock
 * in dir/.tmp-XXXXXX/rootfs and renamed into place. */
static int cache_rootfs(const struct image_layers *img, const char *dir, const char *root, struct gr_error *err)
{
	struct stat st;
	if (lstat(root, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	gr_autoclose int lock = cache_lock(dir, true, err);
	if (lock < 0)
		return lock;
	if (lstat(root, &st) == 0 && S_ISDIR(st.st_mode))
		return 0; /* made by another build meanwhile */
	struct gr_error ignored = { 0 };
	(void)cache_clean_temps(dir, &ignored); /* unique names: a leftover never stands in the way */
	gr_autofree char **dirs = calloc(img->n ? img->n : 1, sizeof(char *));
	gr_autofree char *paths = malloc((img->n ? img->n : 1) * PATH_MAX);
	if (!dirs || !paths)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < img->n; i++) {
		dirs[i] = paths + i * PATH_MAX;
		snprintf(dirs[i], PATH_MAX, "%s/%s", img->layers_dir, img->hex[i]);
	}
	char work[PATH_MAX], tree[PATH_MAX + 16];
	snprintf(work, sizeof(work), "%s/" TMP_MARK "XXXXXX", dir);
	if (!mkdtemp(work))
		return gr_error_sys(err, errno, "cannot create %s", work);
	snprintf(tree, sizeof(tree), "%s/rootfs", work);
	int r = layer_flatten((const char *const *)dirs, img->n, tree, err);
	/* Kept for good, so on disk before its name says it is whole (layer_flatten
	 * syncs nothing): one syncfs per image. */
	gr_autoclose int wfd = r == 0 ? open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (r == 0 && (wfd < 0 || syncfs(wfd) < 0))
		r = gr_error_sys(err, errno, "cannot sync %s", work);
	if (r == 0 && rename(tree, root) < 0)
		r = gr_error_sys(err, errno, "cannot rename %s to %s", tree, root);
	(void)gr_rm_rf(work, NULL); /* left over: removed by the next build */
	return r;
}

/* The disk of size bytes made from root: dir/disk-SIZE.img there already,
 * or built under dir's lock (vmdisk_build_from_dir: a temporary name, then
 * renamed) and made read-only. */
static int cache_disk(const char *dir, const char *root, uint64_t size, char disk[PATH_MAX], struct gr_error *err)
{
	snprintf(disk, PATH_MAX, "%s/disk-%llu.img", dir, (unsigned long long)size);
	struct stat st;
	if (lstat(disk, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	gr_autoclose int lock = cache_lock(dir, true, err);
	if (lock < 0)
		return lock;
	if (lstat(disk, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	struct gr_error ignored = { 0 };
	(void)cache_clean_temps(dir, &ignored);
	int r = vmdisk_build_from_dir(root, disk, size, err);
	if (r < 0)
		return r;
	(void)chmod(disk, 0400); /* never written: clones are */
	return 0;
}

/* Copies bytes [from, to) of in to out at the same offsets:
 * copy_file_range, else (another file system, no support) pread/pwrite. */
static int copy_range(int in, int out, off_t from, off_t to)
{
	char *buf = NULL;
	int r = 0;
	while (from < to && r == 0) {
		size_t len = (size_t)(to - from) > (1u << 30) ? (1u << 30) : (size_t)(to - from);
		off_t io = from, oo = from;
		ssize_t n = -1;
		if (!buf) {
			n = copy_file_range(in, &io, out, &oo, len, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) &&
			    !(buf = malloc(1u << 20))) {
				r = -ENOMEM;
				break;
			}
		}
		if (buf) {
			n = pread(in, buf, len < (1u << 20) ? len : (1u << 20), from);
			for (ssize_t w = 0, k; n > 0 && w < n; w += k)
				if ((k = pwrite(out, buf + w, (size_t)(n - w), from + w)) <= 0) {
					n = k < 0 ? -1 : (errno = EIO, -1);
					break;
				}
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = n == 0 ? -ENODATA : -errno; /* 0: in shrank meanwhile */
		else
			from += n;
	}
	free(buf);
	return r;
}

/* Copies in (size bytes) to out: its data extents only (SEEK_DATA,
 * SEEK_HOLE), so holes stay holes (out must be empty). */
static int copy_sparse(int in, int out, off_t size)
{
	for (off_t pos = 0; pos < size;) {
		off_t data = lseek(in, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* a hole to the end */
		if (data < 0)
			return errno == EINVAL || errno == EOPNOTSUPP ? copy_range(in, out, pos, size) : -errno;
		off_t hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0 || hole > size)
			hole = size;
		int r = copy_range(in, out, data, hole);
		if (r < 0)
			return r;
		pos = hole;
	}
	return ftruncate(out, size) < 0 ? -errno : 0;
}

/* file (must not exist), a copy of the disk src independent of it: a
 * reflink (FICLONE) where the file system has them, else a sparse copy;
 * made as file.tmp-XXXXXX, synced, renamed into place. */
static int clone_disk(const char *src, const char *file, struct gr_error *err)
{
	gr_autoclose int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0)
		return gr_error_sys(err, errno, "cannot open %s", src);
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s" TMP_MARK "XXXXXX", file) >= (int)sizeof(tmp))
		return gr_error_set(err, ENAMETOOLONG, "path too long: %s", file);
	gr_autoclose int out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0)
		return gr_error_sys(err, errno, "cannot create %s", tmp);
	int r = 0;
	if (fchmod(out, 0600) < 0)
		r = gr_error_sys(err, errno, "cannot set the mode of %s", tmp);
	else if (ioctl(out, FICLONE, in) < 0 && (r = copy_sparse(in, out, st.st_size)) < 0)
		r = gr_error_sys(err, -r, "cannot copy %s to %s", src, tmp);
	if (r == 0 && fsync(out) < 0)
		r = gr_error_sys(err, errno, "fsync %s", tmp);
	if (r == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, file, RENAME_NOREPLACE) < 0)
		r = errno == EEXIST ? gr_error_set(err, EEXIST, "%s already exists", file)
				    : gr_error_sys(err, errno, "cannot rename %s to %s", tmp, file);
	if (r < 0)
		unlink(tmp);
	return r;
}

int vmdisk_build(const char *state_dir, const char *fingerprint, const char *file, uint64_t size,
		 vmdisk_check_fn check, void *check_ctx, struct gr_error *err)
{
	if (size == 0)
		size = VMDISK_DEFAULT_SIZE;
	if (size > VMDISK_MAX_SIZE)
		return gr_error_set(err, EINVAL, "disk size: at most 16TiB");
	size = round_mib(size);
	char dir[PATH_MAX], root[PATH_MAX + 8], disk[PATH_MAX];
	int r = cache_dir(state_dir, fingerprint, dir, err);
	if (r < 0)
		return r;
	if (access(file, F_OK) == 0)
		return gr_error_set(err, EEXIST, "%s already exists", file);
	/* The image is still whole in the store, cached or not. */
	_cleanup_(image_layers_free) struct image_layers img = { 0 };
	if ((r = image_layers_load(state_dir, fingerprint, &img, err)) < 0)
		return r;
	snprintf(root, sizeof(root), "%s/rootfs", dir);
	if ((r = cache_mkdirs(state_dir, dir, err)) < 0 || (r = cache_rootfs(&img, dir, root, err)) < 0)
		return gr_error_prefix(err, "image %.12s", fingerprint);
	if (check) {
		int fd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = fd < 0 ? gr_error_sys(err, errno, "cannot open %s", root) : check(fd, check_ctx, err);
		if (fd >= 0)
			close(fd);
	}
	if (r < 0 || (r = cache_disk(dir, root, size, disk, err)) < 0 || (r = clone_disk(disk, file, err)) < 0)
		return gr_error_prefix(err, "image %.12s", fingerprint);
	return 0;
}

int vmdisk_cache_remove(const char *state_dir, const char *fingerprint, struct gr_error *err)
{
	char dir[PATH_MAX], aside[PATH_MAX], moved[PATH_MAX + 80];
	int r = cache_dir(state_dir, fingerprint, dir, err);
	if (r < 0)
		return r;
	struct stat st;
	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? 0 : gr_error_sys(err, errno, "cannot stat %s", dir);
	/* Renamed aside first: a build never sees half a cache. */
	snprintf(aside, sizeof(aside), "%s/vm/images/" TMP_MARK "XXXXXX", state_dir);
	if (!mkdtemp(aside))
		return gr_error_sys(err, errno, "cannot create %s", aside);
	snprintf(moved, sizeof(moved), "%s/%s", aside, fingerprint);
	if (rename(dir, moved) < 0) {
		r = errno == ENOENT ? 0 : gr_error_sys(err, errno, "cannot move %s aside", dir);
		rmdir(aside);
		return r;
	}
	return gr_rm_rf(aside, err);
}

int vmdisk_cache_sweep(const char *state_dir, struct gr_error *err)
{
	char top[PATH_MAX];
	if (snprintf(top, sizeof(top), "%s/vm/images", state_dir) >= (int)sizeof(top) - 80)
		return gr_error_set(err, ENAMETOOLONG, "state directory %s: path too long", state_dir);
	gr_autoclosedir DIR *d = opendir(top);
	if (!d)
		return errno == ENOENT ? 0 : gr_error_sys(err, errno, "cannot read %s", top);
	int r = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct gr_error e2 = { 0 };
		int k = 0;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", top, e->d_name);
		if (strstr(e->d_name, TMP_MARK)) {
			k = gr_rm_rf(p, &e2); /* a removal cut short */
		} else if (image_hex_valid(e->d_name)) {
			char json[PATH_MAX + 80];
			snprintf(json, sizeof(json), "%s/images/%s/image.json", state_dir, e->d_name);
			if (access(json, F_OK) < 0 && errno == ENOENT) {
				k = vmdisk_cache_remove(state_dir, e->d_name, &e2); /* its image is gone */
			} else {
				int lock = cache_lock(p, false, &e2);
				if (lock >= 0) {
					k = cache_clean_temps(p, &e2);
					close(lock);
				} else if (lock != -EWOULDBLOCK) {
					k = lock; /* EWOULDBLOCK: being built, its temps are in use */
				}
			}
		}
		if (k < 0 && r == 0) {
			*err = e2;
			r = k;
		}
	}
	return r;
}

int vmdisk_grow(const char *file, uint64_t new_size, struct gr_error *err)
{
	struct stat st;
	if (stat(file, &st) < 0)
		return gr_error_sys(err, errno, "cannot stat %s", file);
	if (!S_ISREG(st.st_mode))
		return gr_error_set(err, EINVAL, "%s is not a disk file", file);
	if (new_size > VMDISK_MAX_SIZE)
		return gr_error_set(err, EINVAL, "disk size: at most 16TiB");
	new_size = round_mib(new_size);
	if (new_size == (uint64_t)st.st_size)
		return 0;
	if (new_size < (uint64_t)st.st_size) {
		char want[32], have[32];
		size_text(new_size, want, sizeof(want));
		size_text((uint64_t)st.st_size, have, sizeof(have));
		return gr_error_set(err, EINVAL, "a disk cannot shrink (%s is %s, %s asked)", file, have, want);
	}
	char out[PROGRAM_OUTPUT_MAX], kib[32];
	int status, r;
	/* -f: resize2fs wants a checked file system; -p: fix only what is safe. */
	char *fsck[] = { "e2fsck", "-f", "-p", (char *)file, NULL };
	if ((r = run_program(fsck, &status, out, sizeof(out), err)) < 0)
		return r;
	if (status < 0 || status > 1) /* -1: killed */
		return gr_error_set(err, EIO, "e2fsck %s found errors it cannot fix alone (exit %d): %s", file, status,
				    one_line(out));
	if (truncate(file, (off_t)new_size) < 0)
		return gr_error_sys(err, errno, "cannot grow %s", file);
	snprintf(kib, sizeof(kib), "%lluK", (unsigned long long)(new_size / 1024));
	char *resize[] = { "resize2fs", (char *)file, kib, NULL };
	if ((r = run_program(resize, &status, out, sizeof(out), err)) < 0)
		return r;
	if (status != 0) {
		/* The file system is as it was: the file goes back to its size. */
		(void)truncate(file, st.st_size);
		return gr_error_set(err, EIO, "resize2fs %s failed (exit %d): %s", file, status, one_line(out));
	}
	return 0;
}
