/* Unit tests for src/daemon/image/vmdisk.c with the real e2fsprogs: a disk
 * built from a hand-made 2-layer image (a whiteout in the top layer) holds
 * the flattened files (read back with debugfs), is sparse, passes e2fsck,
 * grows (the file system with it) and refuses to shrink; too small a size is
 * refused naming the minimum; nothing is left behind on failure. */
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
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
	snprintf(p, sizeof(p), "ls %s | grep -c -e rootfs- -e tmp- > /dev/null", f->state);
	assert_int_not_equal(system(p), 0);

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
	snprintf(p, sizeof(p), "ls %s | grep -c -e rootfs- -e tmp- > /dev/null", f->state);
	assert_int_not_equal(system(p), 0);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
