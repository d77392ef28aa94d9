/* Unit tests for src/daemon/image/vmdisk.c with the real e2fsprogs: a disk
 * built from a hand-made 2-layer image (a whiteout in the top layer) holds
 * the flattened files (read back with debugfs), is sparse, passes e2fsck,
 * grows (the file system with it) and refuses to shrink; too small a size is
 * refused naming the minimum; nothing is left behind on failure.
 * The per-image cache (STATE/vm/images/FP): a second build neither
 * flattens nor runs mkfs again (the cached tree and disk keep their inodes
 * and mtimes, a layer changed since is not seen) and gives a disk of its
 * own; writes to an instance's disk leave the cache alone; another size is
 * another cached disk; two racing processes both succeed and leave one
 * entry; leftovers of a crash are removed; the check sees the cached tree;
 * vmdisk_cache_remove and vmdisk_cache_sweep. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "daemon/image/vmdisk.h"

#define L1 "1111111111111111111111111111111111111111111111111111111111111111"
#define L2 "2222222222222222222222222222222222222222222222222222222222222222"
#define FP "abababababababababababababababababababababababababababababababab"

struct fx {
	char state[64];
	char disk[128];
};

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void mk(const char *fmt, const char *a)
{
	char p[512];
	snprintf(p, sizeof(p), fmt, a);
	assert_int_equal(gr_mkdir_p(p, 0755, NULL), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->state, sizeof(f->state), "/tmp/test-vmdisk-XXXXXX");
	assert_non_null(mkdtemp(f->state));
	char p[512];
	mk("%s/images/layers/" L1 "/etc", f->state);
	mk("%s/images/layers/" L1 "/usr/share", f->state);
	mk("%s/images/layers/" L2 "/etc", f->state);
	mk("%s/images/" FP, f->state);
	snprintf(p, sizeof(p), "%s/images/layers/" L1 "/etc/os-release", f->state);
	put(p, "ID=test\n");
	snprintf(p, sizeof(p), "%s/images/layers/" L1 "/etc/gone", f->state);
	put(p, "deleted above\n");
	snprintf(p, sizeof(p), "%s/images/layers/" L1 "/usr/share/owned", f->state);
	put(p, "x");
	assert_int_equal(chown(p, 1000, 2000), 0);
	snprintf(p, sizeof(p), "%s/images/layers/" L2 "/etc/hostname", f->state);
	put(p, "vm-test\n");
	snprintf(p, sizeof(p), "%s/images/layers/" L2 "/etc/gone", f->state);
	assert_int_equal(mknod(p, S_IFCHR | 0600, makedev(0, 0)), 0);
	snprintf(p, sizeof(p), "%s/images/" FP "/image.json", f->state);
	put(p, "{\"fingerprint\":\"" FP "\",\"layers\":[\"sha256:" L1 "\",\"" L2 "\"],\"config\":{}}");
	snprintf(f->disk, sizeof(f->disk), "%s/disk.raw", f->state);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	gr_rm_rf(f->state, NULL);
	free(f);
	return 0;
}

/* Runs a command (argv), its stdout into out. */
static int run(char *const argv[], char *out, size_t n)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	size_t got = 0;
	ssize_t k;
	while ((k = read(p[0], out + got, n - 1 - got)) > 0 && got + 1 < n)
		got += (size_t)k;
	out[got] = '\0';
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void debugfs(const char *disk, const char *req, char *out, size_t n)
{
	char *argv[] = { "/usr/sbin/debugfs", "-R", (char *)req, (char *)disk, NULL };
	run(argv, out, n);
}

static int fsck_clean(const char *disk)
{
	char out[4096];
	char *argv[] = { "/usr/sbin/e2fsck", "-f", "-n", (char *)disk, NULL };
	return run(argv, out, sizeof(out));
}

static void test_build_read_grow(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, NULL, NULL, &err), 0);
	struct stat st;
	assert_int_equal(stat(f->disk, &st), 0);
	assert_int_equal(st.st_size, 64ll << 20);
	assert_true((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size / 2); /* sparse */
	char out[4096];
	debugfs(f->disk, "cat /etc/hostname", out, sizeof(out));
	assert_string_equal(out, "vm-test\n");
	debugfs(f->disk, "cat /etc/os-release", out, sizeof(out));
	assert_string_equal(out, "ID=test\n");
	debugfs(f->disk, "stat /usr/share/owned", out, sizeof(out));
	assert_non_null(strstr(out, "User:  1000"));
	assert_non_null(strstr(out, "Group:  2000"));
	debugfs(f->disk, "ls /etc", out, sizeof(out));
	assert_null(strstr(out, "gone")); /* the whiteout applied, not copied */
	assert_int_equal(fsck_clean(f->disk), 0);
	/* No temporary rootfs or file left next to it. */
	char p[512];
	snprintf(p, sizeof(p), "find %s -name '*tmp-*' -o -name '*rootfs-*' | grep -q .", f->state);
	assert_int_not_equal(system(p), 0); /* no temporary anywhere (the cache included) */

	/* Grow: the file and the file system. */
	assert_int_equal(vmdisk_grow(f->disk, 128ull << 20, &err), 0);
	assert_int_equal(stat(f->disk, &st), 0);
	assert_int_equal(st.st_size, 128ll << 20);
	debugfs(f->disk, "stats", out, sizeof(out));
	assert_non_null(strstr(out, "Block count:              32768")); /* 128 MiB of 4 KiB blocks */
	assert_int_equal(fsck_clean(f->disk), 0);
	debugfs(f->disk, "cat /etc/hostname", out, sizeof(out));
	assert_string_equal(out, "vm-test\n");
	/* The same size: nothing to do. Shrinking: refused. */
	assert_int_equal(vmdisk_grow(f->disk, 128ull << 20, &err), 0);
	assert_int_equal(vmdisk_grow(f->disk, 64ull << 20, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cannot shrink"));
	/* The disk exists: refused. */
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, NULL, NULL, &err), -EEXIST);
}

static void test_errors(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	/* Too small: the minimum is named, nothing is left. */
	char big[512];
	snprintf(big, sizeof(big), "%s/images/layers/" L1 "/big", f->state);
	gr_autoclose int fd = open(big, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	char buf[1 << 16] = { 1 };
	for (int i = 0; i < 640; i++) /* 40 MiB of real data */
		assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 32ull << 20, NULL, NULL, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "too small"));
	assert_non_null(strstr(err.msg, "needs at least"));
	assert_int_equal(access(f->disk, F_OK), -1);
	uint64_t min = 0;
	assert_int_equal(vmdisk_min_size(big, &min, &err), 0); /* a file counts too */
	/* A missing image, a missing layer. */
	assert_int_equal(vmdisk_build(f->state, "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", f->disk, 0, NULL, NULL, &err), -ENOENT);
	char l2[512];
	snprintf(l2, sizeof(l2), "%s/images/layers/" L2, f->state);
	assert_int_equal(gr_rm_rf(l2, NULL), 0);
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 0, NULL, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "missing"));
	/* Grow of what is not a disk. */
	assert_int_equal(vmdisk_grow(f->state, 1ull << 30, &err), -EINVAL);
	assert_int_equal(vmdisk_grow("/nonexistent/disk", 1ull << 30, &err), -ENOENT);
}

/* The check sees the flattened tree (the whiteout applied); its refusal
 * is the build's error, and nothing is left behind. */
static int check_hostname(int root, void *ctx, struct gr_error *err)
{
	int *calls = ctx;
	(*calls)++;
	char buf[64] = { 0 };
	gr_autoclose int fd = gr_open_in_root(root, "/etc/hostname", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0)
		return gr_error_set(err, EIO, "no hostname");
	struct stat st;
	if (fstatat(root, "etc/gone", &st, AT_SYMLINK_NOFOLLOW) == 0)
		return gr_error_set(err, EIO, "the whiteout was not applied");
	return strcmp(buf, "vm-test\n") == 0 ? gr_error_set(err, EINVAL, "refused: %s", "no init") : 0;
}

static void test_check_refuses(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	int calls = 0;
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, check_hostname, &calls, &err), -EINVAL);
	assert_int_equal(calls, 1);
	assert_non_null(strstr(err.msg, "refused: no init"));
	assert_int_equal(access(f->disk, F_OK), -1);
	char p[512];
	snprintf(p, sizeof(p), "find %s -name '*tmp-*' -o -name '*rootfs-*' | grep -q .", f->state);
	assert_int_not_equal(system(p), 0); /* no temporary anywhere (the cache included) */
}

/* An e2fsck that dies (here of SIGXFSZ: no file may be written) is a
 * failure, not a clean file system to resize. */
static void test_grow_fsck_killed(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, NULL, NULL, &err), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = { 0, 0 };
		setrlimit(RLIMIT_FSIZE, &rl);
		int r = vmdisk_grow(f->disk, 128ull << 20, &err);
		_exit(r == -EIO && strstr(err.msg, "e2fsck") ? 0 : 1);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	struct stat sb;
	assert_int_equal(stat(f->disk, &sb), 0);
	assert_int_equal(sb.st_size, 64ll << 20);
}

/* ---- the cache ---- */

static void cache_path(struct fx *f, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/vm/images/" FP "%s%s", f->state, name[0] ? "/" : "", name);
}

static void stat_ok(const char *path, struct stat *st)
{
	if (stat(path, st) != 0)
		fail_msg("stat %s: %s", path, strerror(errno));
}

/* The names in dir, sorted, separated by spaces ("" when none). */
static void names(const char *dir, char *out, size_t n)
{
	struct dirent **v;
	int k = scandir(dir, &v, NULL, alphasort);
	out[0] = '\0';
	for (int i = 0; i < k; i++) {
		if (strcmp(v[i]->d_name, ".") != 0 && strcmp(v[i]->d_name, "..") != 0)
			snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? " " : "", v[i]->d_name);
		free(v[i]);
	}
	if (k >= 0)
		free(v);
}

static void test_cache_reuse(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, NULL, NULL, &err), 0);
	char cdisk[512], croot[512], cdir[512], list[1024], p[512];
	cache_path(f, "disk-67108864.img", cdisk, sizeof(cdisk));
	cache_path(f, "rootfs", croot, sizeof(croot));
	cache_path(f, "", cdir, sizeof(cdir));
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img rootfs");
	struct stat d1, r1, i1, d2, r2, i2;
	stat_ok(cdisk, &d1);
	stat_ok(croot, &r1);
	stat_ok(f->disk, &i1);
	assert_int_equal(d1.st_mode & 07777, 0400);
	assert_int_equal(i1.st_mode & 07777, 0600);
	/* A layer changed behind the store's back: a second build that
	 * flattened again would show it. */
	snprintf(p, sizeof(p), "%s/images/layers/" L2 "/etc/hostname", f->state);
	put(p, "changed\n");
	char second[512];
	snprintf(second, sizeof(second), "%s/second.raw", f->state);
	assert_int_equal(vmdisk_build(f->state, FP, second, 64ull << 20, NULL, NULL, &err), 0);
	stat_ok(cdisk, &d2);
	stat_ok(croot, &r2);
	stat_ok(second, &i2);
	/* Neither flattened nor made again. */
	assert_true(d1.st_ino == d2.st_ino);
	assert_true(d1.st_mtim.tv_sec == d2.st_mtim.tv_sec && d1.st_mtim.tv_nsec == d2.st_mtim.tv_nsec);
	assert_true(r1.st_ino == r2.st_ino);
	assert_true(r1.st_mtim.tv_sec == r2.st_mtim.tv_sec && r1.st_mtim.tv_nsec == r2.st_mtim.tv_nsec);
	/* Two disks of their own, the cached one's content. */
	assert_true(i2.st_ino != d1.st_ino && i2.st_ino != i1.st_ino && i1.st_ino != d1.st_ino);
	assert_int_equal(i2.st_nlink, 1);
	assert_int_equal(i2.st_size, 64ll << 20);
	assert_true((uint64_t)i2.st_blocks * 512 < (uint64_t)i2.st_size / 2); /* still sparse */
	char out[4096];
	debugfs(second, "cat /etc/hostname", out, sizeof(out));
	assert_string_equal(out, "vm-test\n");
	debugfs(second, "stat /usr/share/owned", out, sizeof(out));
	assert_non_null(strstr(out, "User:  1000"));
	assert_int_equal(fsck_clean(second), 0);
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img rootfs");
	/* No temporaries next to the instances' disks. */
	snprintf(p, sizeof(p), "ls %s | grep -c -e tmp- > /dev/null", f->state);
	assert_int_not_equal(system(p), 0);
}

/* Same bytes at off in both files? */
static bool same_at(const char *a, const char *b, off_t off, size_t len)
{
	char x[4096], y[4096];
	gr_autoclose int fa = open(a, O_RDONLY);
	gr_autoclose int fb = open(b, O_RDONLY);
	assert_true(fa >= 0 && fb >= 0 && len <= sizeof(x));
	assert_int_equal(pread(fa, x, len, off), (ssize_t)len);
	assert_int_equal(pread(fb, y, len, off), (ssize_t)len);
	return memcmp(x, y, len) == 0;
}

static void test_cache_independent(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, NULL, NULL, &err), 0);
	char cdisk[512];
	cache_path(f, "disk-67108864.img", cdisk, sizeof(cdisk));
	/* The superblock (data in the cache), a hole in the middle, the end. */
	const off_t offs[] = { 1024, 40ll << 20, (64ll << 20) - 4096 };
	for (size_t i = 0; i < 3; i++)
		assert_true(same_at(f->disk, cdisk, offs[i], 4096));
	struct stat before, after;
	stat_ok(cdisk, &before);
	gr_autoclose int fd = open(f->disk, O_WRONLY);
	assert_true(fd >= 0);
	char junk[4096];
	memset(junk, 0x5a, sizeof(junk));
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(pwrite(fd, junk, sizeof(junk), offs[i]), (ssize_t)sizeof(junk));
	assert_int_equal(fsync(fd), 0);
	for (size_t i = 0; i < 3; i++)
		assert_false(same_at(f->disk, cdisk, offs[i], 4096));
	stat_ok(cdisk, &after);
	assert_true(before.st_blocks == after.st_blocks);
	assert_true(before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
	assert_int_equal(fsck_clean(cdisk), 0);
	/* The next instance gets the pristine disk. */
	char next[512], out[4096];
	snprintf(next, sizeof(next), "%s/next.raw", f->state);
	assert_int_equal(vmdisk_build(f->state, FP, next, 64ull << 20, NULL, NULL, &err), 0);
	assert_int_equal(fsck_clean(next), 0);
	debugfs(next, "cat /etc/os-release", out, sizeof(out));
	assert_string_equal(out, "ID=test\n");
}

static void test_cache_sizes(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	char second[512], cdir[512], croot[512], list[1024];
	snprintf(second, sizeof(second), "%s/second.raw", f->state);
	cache_path(f, "", cdir, sizeof(cdir));
	cache_path(f, "rootfs", croot, sizeof(croot));
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, NULL, NULL, &err), 0);
	struct stat r1, r2, st;
	stat_ok(croot, &r1);
	/* Rounded up to a MiB: 80 MiB. */
	assert_int_equal(vmdisk_build(f->state, FP, second, (80ull << 20) - 5, NULL, NULL, &err), 0);
	stat_ok(croot, &r2);
	assert_true(r1.st_ino == r2.st_ino);
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img disk-83886080.img rootfs");
	stat_ok(second, &st);
	assert_int_equal(st.st_size, 80ll << 20);
	char out[4096];
	debugfs(second, "stats", out, sizeof(out));
	assert_non_null(strstr(out, "Block count:              20480")); /* 80 MiB of 4 KiB blocks */
	assert_int_equal(fsck_clean(second), 0);
	stat_ok(f->disk, &st);
	assert_int_equal(st.st_size, 64ll << 20);
	/* Too small for the cached tree: refused, nothing new cached. */
	char small[512];
	snprintf(small, sizeof(small), "%s/small.raw", f->state);
	assert_int_equal(vmdisk_build(f->state, FP, small, 1ull << 20, NULL, NULL, &err), -ENOSPC);
	assert_int_equal(access(small, F_OK), -1);
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img disk-83886080.img rootfs");
}

/* Two processes build the same image's disk at once (released together
 * through a pipe): both succeed, one cache entry is left, nothing else. */
static void test_cache_race(void **state)
{
	struct fx *f = *state;
	int go[2];
	assert_int_equal(pipe(go), 0);
	pid_t pids[2];
	for (int i = 0; i < 2; i++) {
		assert_true((pids[i] = fork()) >= 0);
		if (pids[i] == 0) {
			close(go[1]);
			char c, disk[512];
			(void)!read(go[0], &c, 1); /* EOF: go */
			snprintf(disk, sizeof(disk), "%s/racer-%d.raw", f->state, i);
			struct gr_error err = { 0 };
			_exit(vmdisk_build(f->state, FP, disk, 64ull << 20, NULL, NULL, &err) == 0 ? 0 : 1);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < 2; i++) {
		int st;
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	char top[512], cdir[512], list[1024];
	snprintf(top, sizeof(top), "%s/vm/images", f->state);
	names(top, list, sizeof(list));
	assert_string_equal(list, FP);
	cache_path(f, "", cdir, sizeof(cdir));
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img rootfs");
	for (int i = 0; i < 2; i++) {
		char disk[512], out[4096];
		snprintf(disk, sizeof(disk), "%s/racer-%d.raw", f->state, i);
		assert_int_equal(fsck_clean(disk), 0);
		debugfs(disk, "cat /etc/hostname", out, sizeof(out));
		assert_string_equal(out, "vm-test\n");
	}
}

/* What a crash in the middle of a build or a removal leaves: removed by
 * the next build that makes something, or by the sweep at start-up. */
static void leave_crumbs(struct fx *f)
{
	char p[512];
	cache_path(f, ".tmp-AbCdEf/rootfs/etc", p, sizeof(p));
	assert_int_equal(gr_mkdir_p(p, 0755, NULL), 0);
	cache_path(f, "disk-67108864.img.tmp-XyZ123", p, sizeof(p));
	put(p, "half a disk");
}

static void test_cache_crumbs(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	char cdir[512], top[512], list[1024], p[512], second[512];
	cache_path(f, "", cdir, sizeof(cdir));
	snprintf(top, sizeof(top), "%s/vm/images", f->state);
	snprintf(second, sizeof(second), "%s/second.raw", f->state);
	assert_int_equal(gr_mkdir_p(cdir, 0700, NULL), 0);
	leave_crumbs(f);
	/* A crash while the tree was made: the build makes it and cleans up. */
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, NULL, NULL, &err), 0);
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img rootfs");
	/* A crash while another size was made: that size's build cleans up. */
	leave_crumbs(f);
	assert_int_equal(vmdisk_build(f->state, FP, second, 72ull << 20, NULL, NULL, &err), 0);
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img disk-75497472.img rootfs");
	/* The sweep: crumbs in the image's cache, a removal cut short, the
	 * cache of an image no longer in the store; what is whole stays. */
	leave_crumbs(f);
	snprintf(p, sizeof(p), "%s/.tmp-QwErTy/" FP "/rootfs", top);
	assert_int_equal(gr_mkdir_p(p, 0700, NULL), 0);
	snprintf(p, sizeof(p), "%s/cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd/rootfs", top);
	assert_int_equal(gr_mkdir_p(p, 0700, NULL), 0);
	snprintf(p, sizeof(p), "%s/not-a-cache", top);
	put(p, "kept: not ours to judge");
	assert_int_equal(vmdisk_cache_sweep(f->state, &err), 0);
	names(top, list, sizeof(list));
	assert_string_equal(list, FP " not-a-cache");
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img disk-75497472.img rootfs");
	/* A build in progress (its lock held; flock locks belong to the open
	 * file, so this one conflicts with the sweep's) keeps its temporaries. */
	leave_crumbs(f);
	cache_path(f, ".lock", p, sizeof(p));
	gr_autoclose int lock = open(p, O_RDWR);
	assert_true(lock >= 0);
	assert_int_equal(flock(lock, LOCK_EX), 0);
	assert_int_equal(vmdisk_cache_sweep(f->state, &err), 0);
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock .tmp-AbCdEf disk-67108864.img disk-67108864.img.tmp-XyZ123 disk-75497472.img rootfs");
	assert_int_equal(flock(lock, LOCK_UN), 0);
	assert_int_equal(vmdisk_cache_sweep(f->state, &err), 0);
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img disk-75497472.img rootfs");
	/* Nothing to sweep. */
	char empty[512];
	snprintf(empty, sizeof(empty), "%s/nothing", f->state);
	assert_int_equal(vmdisk_cache_sweep(empty, &err), 0);
}

static void test_cache_remove(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	char cdir[512], top[512], list[1024], second[512];
	cache_path(f, "", cdir, sizeof(cdir));
	snprintf(top, sizeof(top), "%s/vm/images", f->state);
	snprintf(second, sizeof(second), "%s/second.raw", f->state);
	/* None yet: fine. */
	assert_int_equal(vmdisk_cache_remove(f->state, FP, &err), 0);
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, NULL, NULL, &err), 0);
	assert_int_equal(access(cdir, F_OK), 0);
	assert_int_equal(vmdisk_cache_remove(f->state, FP, &err), 0);
	names(top, list, sizeof(list));
	assert_string_equal(list, "");
	/* The instance's disk does not depend on it. */
	assert_int_equal(fsck_clean(f->disk), 0);
	char out[4096];
	debugfs(f->disk, "cat /etc/hostname", out, sizeof(out));
	assert_string_equal(out, "vm-test\n");
	/* Built again at the next use. */
	assert_int_equal(vmdisk_build(f->state, FP, second, 64ull << 20, NULL, NULL, &err), 0);
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock disk-67108864.img rootfs");
	/* Not a fingerprint: refused (it would be a path). */
	assert_int_equal(vmdisk_cache_remove(f->state, "../../etc", &err), -EINVAL);
	assert_int_equal(vmdisk_build(f->state, "../x", second, 0, NULL, NULL, &err), -EINVAL);
}

/* The check is handed the cached tree itself, every time; a refusal
 * builds no disk (the tree stays cached). */
struct seen {
	int calls;
	dev_t dev;
	ino_t ino;
	bool refuse;
};

static int check_seen(int root, void *ctx, struct gr_error *err)
{
	struct seen *s = ctx;
	struct stat st;
	assert_int_equal(fstat(root, &st), 0);
	s->calls++;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	gr_autoclose int fd = gr_open_in_root(root, "/etc/hostname", O_RDONLY);
	if (fd < 0)
		return gr_error_set(err, EIO, "no hostname");
	return s->refuse ? gr_error_set(err, EPERM, "refused") : 0;
}

static void test_cache_check(void **state)
{
	struct fx *f = *state;
	struct gr_error err = { 0 };
	char croot[512], cdir[512], list[1024], second[512];
	cache_path(f, "rootfs", croot, sizeof(croot));
	cache_path(f, "", cdir, sizeof(cdir));
	snprintf(second, sizeof(second), "%s/second.raw", f->state);
	struct seen s = { .refuse = true };
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, check_seen, &s, &err), -EPERM);
	assert_int_equal(access(f->disk, F_OK), -1);
	names(cdir, list, sizeof(list));
	assert_string_equal(list, ".lock rootfs"); /* no disk: checked first */
	struct stat st;
	stat_ok(croot, &st);
	assert_int_equal(s.calls, 1);
	assert_true(s.dev == st.st_dev && s.ino == st.st_ino);
	s.refuse = false;
	assert_int_equal(vmdisk_build(f->state, FP, f->disk, 64ull << 20, check_seen, &s, &err), 0);
	assert_int_equal(vmdisk_build(f->state, FP, second, 64ull << 20, check_seen, &s, &err), 0);
	assert_int_equal(s.calls, 3);
	assert_true(s.dev == st.st_dev && s.ino == st.st_ino);
	s.refuse = true;
	char third[512];
	snprintf(third, sizeof(third), "%s/third.raw", f->state);
	assert_int_equal(vmdisk_build(f->state, FP, third, 64ull << 20, check_seen, &s, &err), -EPERM);
	assert_int_equal(s.calls, 4);
	assert_int_equal(access(third, F_OK), -1);
}

int main(void)
{
	if (geteuid() != 0 || access("/usr/sbin/mkfs.ext4", X_OK) != 0) {
		printf("skipped: needs root and e2fsprogs\n");
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_build_read_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grow_fsck_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_independent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_crumbs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_check, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
