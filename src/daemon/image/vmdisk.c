/* VM disks (vmdisk.h). */
#include "daemon/image/vmdisk.h"
#include "daemon/image/layer.h"
#include "daemon/supervisor/image.h"
#include "common/cleanup.h"
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

int vmdisk_build(const char *state_dir, const char *fingerprint, const char *file, uint64_t size,
		 vmdisk_check_fn check, void *check_ctx, struct gr_error *err)
{
	_cleanup_(image_layers_free) struct image_layers img = { 0 };
	int r = image_layers_load(state_dir, fingerprint, &img, err);
	if (r < 0)
		return r;
	gr_autofree char **dirs = calloc(img.n, sizeof(char *));
	gr_autofree char *paths = malloc(img.n * PATH_MAX);
	if (!dirs || !paths)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < img.n; i++) {
		dirs[i] = paths + i * PATH_MAX;
		snprintf(dirs[i], PATH_MAX, "%s/%s", img.layers_dir, img.hex[i]);
	}
	char work[PATH_MAX], root[PATH_MAX + 16];
	if (snprintf(work, sizeof(work), "%s.rootfs-XXXXXX", file) >= (int)sizeof(work))
		return gr_error_set(err, ENAMETOOLONG, "path too long: %s", file);
	if (!mkdtemp(work))
		return gr_error_sys(err, errno, "cannot create %s", work);
	snprintf(root, sizeof(root), "%s/rootfs", work);
	r = layer_flatten((const char *const *)dirs, img.n, root, err);
	if (r == 0 && check) {
		int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		r = fd < 0 ? gr_error_sys(err, errno, "cannot open %s", root) : check(fd, check_ctx, err);
		if (fd >= 0)
			close(fd);
	}
	if (r == 0)
		r = vmdisk_build_from_dir(root, file, size, err);
	struct gr_error rerr = { 0 };
	if (gr_rm_rf(work, &rerr) < 0 && r == 0) {
		*err = rerr;
		r = -rerr.code;
	}
	return r < 0 ? gr_error_prefix(err, "image %.12s", fingerprint) : 0;
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
