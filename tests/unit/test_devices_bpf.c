/* Unit tests for src/container/devices_bpf.c.
 *
 * The generated programs are run through a small interpreter (below) that
 * knows only the instructions devices_bpf emits and checks what the verifier
 * would: registers read before they are written, jumps out of the program,
 * context loads out of bounds, an exit without r0. The last tests attach
 * programs to a real cgroup2 directory and check open() in a child moved
 * into it; they skip unless run as root on a host with cgroup2 and bpf(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "container/devices_bpf.h"

#define R BPF_DEVCG_ACC_READ
#define W BPF_DEVCG_ACC_WRITE
#define M BPF_DEVCG_ACC_MKNOD
#define CHR BPF_DEVCG_DEV_CHAR
#define BLK BPF_DEVCG_DEV_BLOCK

#define RULE(al, t, maj, min, acc) \
	{ .allow = (al), .type = (t), .major = (maj), .minor = (min), .access = (char *)(acc) }
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ interpreter */

/* Runs prog on the context; returns r0, or fails the test. */
static uint64_t run(const struct bpf_insn *prog, size_t len, uint32_t type, uint32_t major, uint32_t minor,
		    uint32_t access)
{
	struct bpf_cgroup_dev_ctx ctx = { .access_type = (access << 16) | type, .major = major, .minor = minor };
	uint64_t reg[11] = { 0 };
	bool init[11] = { false };
	reg[1] = 0; /* r1 = the context: offsets into ctx */
	init[1] = true;
	bool r1_is_ctx = true;
	size_t pc = 0;
	for (size_t steps = 0; steps < 100000; steps++) {
		if (pc >= len)
			fail_msg("pc %zu runs off the end of the program (%zu instructions)", pc, len);
		const struct bpf_insn *in = &prog[pc];
		uint8_t cls = BPF_CLASS(in->code), op = BPF_OP(in->code), src = BPF_SRC(in->code);
		uint8_t d = in->dst_reg, s = in->src_reg;
		if (d > 10 || s > 10)
			fail_msg("pc %zu: bad register", pc);
		switch (cls) {
		case BPF_LDX: {
			if (BPF_MODE(in->code) != BPF_MEM || BPF_SIZE(in->code) != BPF_W)
				fail_msg("pc %zu: unexpected load 0x%02x", pc, in->code);
			if (!init[s] || s != 1 || !r1_is_ctx)
				fail_msg("pc %zu: load from a register that is not the context", pc);
			int64_t off = (int64_t)reg[s] + in->off;
			if (off < 0 || off + 4 > (int64_t)sizeof(ctx) || off % 4)
				fail_msg("pc %zu: context load at offset %" PRId64, pc, off);
			uint32_t v;
			memcpy(&v, (const char *)&ctx + off, 4);
			reg[d] = v;
			init[d] = true;
			if (d == 1)
				r1_is_ctx = false;
			pc++;
			break;
		}
		case BPF_ALU:
		case BPF_ALU64: {
			uint64_t b;
			if (src == BPF_X) {
				if (!init[s])
					fail_msg("pc %zu: r%u read before written", pc, s);
				b = reg[s];
			} else {
				b = (uint64_t)(int64_t)in->imm;
			}
			if (op != BPF_MOV && !init[d])
				fail_msg("pc %zu: r%u read before written", pc, d);
			uint64_t a = reg[d];
			if (cls == BPF_ALU) {
				a = (uint32_t)a;
				b = (uint32_t)b;
			}
			switch (op) {
			case BPF_MOV: a = b; break;
			case BPF_AND: a &= b; break;
			case BPF_RSH:
				if (b >= (cls == BPF_ALU ? 32u : 64u))
					fail_msg("pc %zu: shift by %" PRIu64, pc, b);
				a >>= b;
				break;
			default: fail_msg("pc %zu: unexpected alu op 0x%02x", pc, in->code);
			}
			reg[d] = cls == BPF_ALU ? (uint32_t)a : a;
			init[d] = true;
			if (d == 1)
				r1_is_ctx = false;
			pc++;
			break;
		}
		case BPF_JMP: {
			if (op == BPF_EXIT) {
				if (!init[0])
					fail_msg("pc %zu: exit without r0", pc);
				return reg[0];
			}
			if (!init[d] || (src == BPF_X && !init[s]))
				fail_msg("pc %zu: jump on a register read before written", pc);
			uint64_t a = reg[d], b = src == BPF_X ? reg[s] : (uint64_t)(int64_t)in->imm;
			bool taken = false;
			switch (op) {
			case BPF_JA: taken = true; break;
			case BPF_JEQ: taken = a == b; break;
			case BPF_JNE: taken = a != b; break;
			default: fail_msg("pc %zu: unexpected jump 0x%02x", pc, in->code);
			}
			if (in->off < 0)
				fail_msg("pc %zu: backward jump", pc);
			pc += 1 + (taken ? (size_t)in->off : 0);
			break;
		}
		default:
			fail_msg("pc %zu: unexpected instruction class 0x%02x", pc, in->code);
		}
	}
	fail_msg("the program does not terminate");
	return 0;
}

struct built {
	struct bpf_insn *prog;
	size_t len;
};

static struct built build(const struct oci_device_rule *rules, size_t n)
{
	struct built b = { 0 };
	struct gr_error err = { 0 };
	if (devices_bpf_build(rules, n, &b.prog, &b.len, &err) < 0)
		fail_msg("devices_bpf_build: %s", err.msg);
	assert_non_null(b.prog);
	assert_true(b.len >= 8);
	return b;
}

#define ALLOWED(b, type, maj, min, acc) assert_int_equal(run((b).prog, (b).len, type, maj, min, acc), 1)
#define DENIED(b, type, maj, min, acc) assert_int_equal(run((b).prog, (b).len, type, maj, min, acc), 0)

/* ------------------------------------------------------------------ rules */

/* runc's (and `gureum-runtime spec`'s) list: deny all, then the defaults. */
static const struct oci_device_rule runc_default[] = {
	RULE(false, 'a', -1, -1, "rwm"),
	RULE(true, 'c', 1, 3, "rwm"), RULE(true, 'c', 1, 5, "rwm"), RULE(true, 'c', 1, 7, "rwm"),
	RULE(true, 'c', 1, 8, "rwm"), RULE(true, 'c', 1, 9, "rwm"), RULE(true, 'c', 5, 0, "rwm"),
	RULE(true, 'c', 5, 1, "rwm"), RULE(true, 'c', 5, 2, "rwm"), RULE(true, 'c', 136, -1, "rwm"),
};

static void test_runc_default_list(void **state)
{
	(void)state;
	struct built b = build(runc_default, N(runc_default));
	static const int64_t ok[][2] = { { 1, 3 }, { 1, 5 }, { 1, 7 }, { 1, 8 }, { 1, 9 },
					 { 5, 0 }, { 5, 1 }, { 5, 2 }, { 136, 0 }, { 136, 4095 } };
	for (size_t i = 0; i < N(ok); i++) {
		uint32_t maj = (uint32_t)ok[i][0], min = (uint32_t)ok[i][1];
		ALLOWED(b, CHR, maj, min, R);
		ALLOWED(b, CHR, maj, min, W);
		ALLOWED(b, CHR, maj, min, M);
		ALLOWED(b, CHR, maj, min, R | W);
		DENIED(b, BLK, maj, min, R);
	}
	DENIED(b, CHR, 1, 1, R);     /* /dev/mem */
	DENIED(b, CHR, 1, 11, R);    /* /dev/kmsg */
	DENIED(b, CHR, 4, 0, R | W); /* tty0 */
	DENIED(b, CHR, 5, 3, R);
	DENIED(b, CHR, 135, 0, R);
	DENIED(b, BLK, 8, 0, R);
	DENIED(b, BLK, 8, 0, M);
	free(b.prog);
}

static void test_allow_all(void **state)
{
	(void)state;
	const struct oci_device_rule rules[] = { RULE(true, 'a', -1, -1, "rwm") };
	struct built b = build(rules, N(rules));
	assert_int_equal(b.len, 8); /* context loads + "return 1" */
	ALLOWED(b, CHR, 1, 3, R | W);
	ALLOWED(b, BLK, 8, 0, R | W | M);
	ALLOWED(b, CHR, 4095, 1048575, M);
	free(b.prog);

	/* absent type means 'a'; NULL and "" access mean rwm */
	const struct oci_device_rule bare[] = { { .allow = true, .major = -1, .minor = -1 } };
	b = build(bare, N(bare));
	ALLOWED(b, BLK, 8, 0, R | W | M);
	free(b.prog);
}

static void test_empty_list_denies(void **state)
{
	(void)state;
	struct built b = build(NULL, 0);
	DENIED(b, CHR, 1, 3, R);
	DENIED(b, BLK, 8, 0, M);
	free(b.prog);
}

static void test_deny_one_after_allow_all(void **state)
{
	(void)state;
	const struct oci_device_rule rules[] = {
		RULE(true, 'a', -1, -1, "rwm"),
		RULE(false, 'c', 1, 3, "rwm"),
	};
	struct built b = build(rules, N(rules));
	DENIED(b, CHR, 1, 3, R);
	DENIED(b, CHR, 1, 3, W);
	DENIED(b, CHR, 1, 3, M);
	ALLOWED(b, CHR, 1, 5, R | W);
	ALLOWED(b, BLK, 1, 3, R); /* a block device 1:3 is another device */
	ALLOWED(b, CHR, 3, 1, R);
	free(b.prog);

	/* allowing it again removes the exception */
	const struct oci_device_rule again[] = {
		RULE(true, 'a', -1, -1, "rwm"),
		RULE(false, 'c', 1, 3, "rwm"),
		RULE(true, 'c', 1, 3, "rwm"),
	};
	b = build(again, N(again));
	assert_int_equal(b.len, 8);
	ALLOWED(b, CHR, 1, 3, R);
	free(b.prog);
}

static void test_access_subsets(void **state)
{
	(void)state;
	/* read only */
	const struct oci_device_rule ro[] = { RULE(false, 'a', -1, -1, "rwm"), RULE(true, 'c', 1, 3, "r") };
	struct built b = build(ro, N(ro));
	ALLOWED(b, CHR, 1, 3, R);
	DENIED(b, CHR, 1, 3, W);
	DENIED(b, CHR, 1, 3, M);
	DENIED(b, CHR, 1, 3, R | W); /* O_RDWR needs both */
	free(b.prog);

	/* access bits given by two rules are merged, as in v1 */
	const struct oci_device_rule merged[] = {
		RULE(false, 'a', -1, -1, "rwm"), RULE(true, 'c', 1, 3, "r"), RULE(true, 'c', 1, 3, "w"),
	};
	b = build(merged, N(merged));
	ALLOWED(b, CHR, 1, 3, R | W);
	DENIED(b, CHR, 1, 3, M);
	free(b.prog);

	/* a later deny takes bits away from an allow */
	const struct oci_device_rule taken[] = {
		RULE(false, 'a', -1, -1, "rwm"), RULE(true, 'c', 1, 3, "rwm"), RULE(false, 'c', 1, 3, "w"),
	};
	b = build(taken, N(taken));
	ALLOWED(b, CHR, 1, 3, R);
	ALLOWED(b, CHR, 1, 3, M);
	DENIED(b, CHR, 1, 3, W);
	DENIED(b, CHR, 1, 3, R | W);
	free(b.prog);

	/* default allow: a partial deny refuses any access that touches it */
	const struct oci_device_rule nowrite[] = { RULE(true, 'a', -1, -1, "rwm"), RULE(false, 'c', 1, 3, "w") };
	b = build(nowrite, N(nowrite));
	ALLOWED(b, CHR, 1, 3, R);
	ALLOWED(b, CHR, 1, 3, M);
	DENIED(b, CHR, 1, 3, W);
	DENIED(b, CHR, 1, 3, R | W);
	ALLOWED(b, CHR, 1, 5, W);
	free(b.prog);

	/* mknod only, on every char device */
	const struct oci_device_rule mk[] = { RULE(false, 'a', -1, -1, "rwm"), RULE(true, 'c', -1, -1, "m") };
	b = build(mk, N(mk));
	ALLOWED(b, CHR, 1, 3, M);
	ALLOWED(b, CHR, 250, 7, M);
	DENIED(b, CHR, 1, 3, R);
	DENIED(b, BLK, 8, 0, M);
	free(b.prog);

	/* "" is rwm, as on v1 */
	const struct oci_device_rule empty[] = { RULE(false, 'a', -1, -1, "rwm"), RULE(true, 'c', 1, 3, "") };
	b = build(empty, N(empty));
	ALLOWED(b, CHR, 1, 3, R | W);
	ALLOWED(b, CHR, 1, 3, M);
	free(b.prog);
}

static void test_block_char_and_wildcards(void **state)
{
	(void)state;
	const struct oci_device_rule rules[] = {
		RULE(false, 'a', -1, -1, "rwm"),
		RULE(true, 'b', 8, -1, "rw"),   /* every sd disk, no mknod */
		RULE(true, 'c', -1, 3, "rwm"),  /* any major, minor 3 */
		RULE(true, 'b', 7, 0, "r"),
	};
	struct built b = build(rules, N(rules));
	ALLOWED(b, BLK, 8, 0, R);
	ALLOWED(b, BLK, 8, 16, R | W);
	DENIED(b, BLK, 8, 0, M);
	DENIED(b, CHR, 8, 0, R);
	ALLOWED(b, CHR, 1, 3, R | W);
	ALLOWED(b, CHR, 77, 3, M);
	DENIED(b, CHR, 77, 4, R);
	DENIED(b, BLK, 1, 3, R);
	ALLOWED(b, BLK, 7, 0, R);
	DENIED(b, BLK, 7, 0, W);
	DENIED(b, BLK, 7, 1, R);
	free(b.prog);

	/* 'a' rules reset: the rules before the last one no longer count */
	const struct oci_device_rule reset[] = {
		RULE(false, 'a', -1, -1, "rwm"), RULE(true, 'c', 1, 3, "rwm"),
		RULE(true, 'a', -1, -1, "rwm"), RULE(false, 'c', 1, 5, "rwm"),
		RULE(false, 'a', 1, 9, "r"),  /* 'a' with numbers and access still resets all */
		RULE(true, 'c', 1, 7, "rwm"),
	};
	b = build(reset, N(reset));
	DENIED(b, CHR, 1, 3, R);
	DENIED(b, CHR, 1, 5, R);
	DENIED(b, CHR, 1, 9, W);
	ALLOWED(b, CHR, 1, 7, R | W);
	free(b.prog);

	/* a wildcard deny in an allow-all list; its own bits can be taken back */
	const struct oci_device_rule bl[] = {
		RULE(true, 'a', -1, -1, "rwm"), RULE(false, 'b', -1, -1, "rwm"), RULE(true, 'b', -1, -1, "r"),
	};
	b = build(bl, N(bl));
	ALLOWED(b, BLK, 8, 0, R);
	DENIED(b, BLK, 8, 0, W);
	DENIED(b, BLK, 8, 0, M);
	ALLOWED(b, CHR, 8, 0, R | W | M);
	free(b.prog);
}

static void test_devices_beyond_int32_never_match(void **state)
{
	(void)state;
	const struct oci_device_rule rules[] = {
		RULE(false, 'a', -1, -1, "rwm"), RULE(true, 'c', 4294967295LL, 0, "rwm"), RULE(true, 'c', 1, 3, "rwm"),
	};
	struct built b = build(rules, N(rules));
	DENIED(b, CHR, 4294967295u, 0, R);
	DENIED(b, CHR, 2147483648u, 0, R);
	ALLOWED(b, CHR, 1, 3, R);
	free(b.prog);
}

static void expect_error(const struct oci_device_rule *rules, size_t n, int code, const char *msg)
{
	struct gr_error err = { 0 };
	struct bpf_insn *prog = (struct bpf_insn *)&err; /* must be reset */
	size_t len = 99;
	assert_int_equal(devices_bpf_build(rules, n, &prog, &len, &err), -code);
	assert_null(prog);
	assert_int_equal(len, 0);
	assert_int_equal(err.code, code);
	assert_string_equal(err.msg, msg);
}

static void test_errors(void **state)
{
	(void)state;
	const struct oci_device_rule type[] = { RULE(true, 'a', -1, -1, "rwm"), RULE(true, 'x', 1, 3, "rwm") };
	expect_error(type, N(type), EINVAL,
		     "linux.resources.devices[1].type: invalid device type 'x' (expected a, b or c)");
	const struct oci_device_rule access[] = { RULE(true, 'c', 1, 3, "rwx") };
	expect_error(access, N(access), EINVAL,
		     "linux.resources.devices[0].access: invalid access \"rwx\" (expected a subset of \"rwm\")");
	const struct oci_device_rule major[] = { RULE(true, 'c', -2, 3, "rwm") };
	expect_error(major, N(major), EINVAL,
		     "linux.resources.devices[0].major: invalid device number -2 (expected 0 to 4294967295, "
		     "or absent for any)");
	const struct oci_device_rule minor[] = { RULE(true, 'c', 1, 4294967296LL, "rwm") };
	expect_error(minor, N(minor), EINVAL,
		     "linux.resources.devices[0].minor: invalid device number 4294967296 (expected 0 to 4294967295, "
		     "or absent for any)");

	/* holes in a wildcard: v1 ignores them silently, runc and we refuse */
	const struct oci_device_rule hole[] = {
		RULE(false, 'a', -1, -1, "rwm"), RULE(true, 'c', -1, -1, "rwm"), RULE(false, 'c', 1, 3, "w"),
	};
	expect_error(hole, N(hole), EINVAL,
		     "linux.resources.devices[2]: the deny rule \"c 1:3 w\" would punch a hole in the earlier "
		     "wildcard rule \"c *:* rwm\", which the devices cgroup does not support; narrow the wildcard "
		     "rule instead");
	const struct oci_device_rule hole2[] = {
		RULE(true, 'a', -1, -1, "rwm"), RULE(false, 'c', 1, -1, "rw"), RULE(true, 'c', 1, 3, "r"),
	};
	expect_error(hole2, N(hole2), EINVAL,
		     "linux.resources.devices[2]: the allow rule \"c 1:3 r\" would punch a hole in the earlier "
		     "wildcard rule \"c 1:* rw\", which the devices cgroup does not support; narrow the wildcard "
		     "rule instead");
	/* no overlap in access, or another type: fine */
	const struct oci_device_rule nohole[] = {
		RULE(true, 'a', -1, -1, "rwm"), RULE(false, 'c', 1, -1, "w"), RULE(true, 'c', 1, 3, "r"),
		RULE(true, 'b', 1, 3, "rwm"),
	};
	struct built b = build(nohole, N(nohole));
	DENIED(b, CHR, 1, 3, W);
	ALLOWED(b, CHR, 1, 3, R);
	free(b.prog);
}

/* ---------------------------------------------------------- real kernel */

struct kfix {
	char dir[PATH_MAX];
	int fd;
};

static int sys_bpf(int cmd, union bpf_attr *a)
{
	long r = syscall(SYS_bpf, cmd, a, sizeof(*a));
	return r < 0 ? -errno : (int)r;
}

static const char *cgroup2_root(void)
{
	static const char *const candidates[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
	for (size_t i = 0; i < N(candidates); i++) {
		struct statfs s;
		if (statfs(candidates[i], &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC)
			return candidates[i];
	}
	return NULL;
}

static int kfix_setup(void **state)
{
	struct kfix *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->fd = -1;
	*state = f;
	const char *root = geteuid() == 0 ? cgroup2_root() : NULL;
	if (!root)
		return 0;
	snprintf(f->dir, sizeof(f->dir), "%s/gureum-bpf-test-%d", root, (int)getpid());
	if (mkdir(f->dir, 0755) < 0 && errno != EEXIST) {
		f->dir[0] = '\0';
		return 0;
	}
	f->fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return 0;
}

static int kfix_teardown(void **state)
{
	struct kfix *f = *state;
	if (f->fd >= 0)
		close(f->fd);
	if (f->dir[0]) {
		/* the cgroup lingers a moment after its last process is reaped */
		for (int i = 0; i < 200 && rmdir(f->dir) < 0 && errno == EBUSY; i++)
			nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
		if (access(f->dir, F_OK) == 0)
			fprintf(stderr, "warning: could not remove %s\n", f->dir);
	}
	free(f);
	return 0;
}

static void kfix_need(struct kfix *f)
{
	if (geteuid() != 0) {
		print_message("skipped: needs root\n");
		skip();
	}
	if (!cgroup2_root()) {
		print_message("skipped: no cgroup2 file system at /sys/fs/cgroup or /sys/fs/cgroup/unified\n");
		skip();
	}
	if (f->fd < 0) {
		print_message("skipped: cannot create a test cgroup under %s\n", cgroup2_root());
		skip();
	}
}

/* Attaches a program built from rules; skips when bpf() is not allowed here. */
static void attach_rules(struct kfix *f, const struct oci_device_rule *rules, size_t n)
{
	struct built b = build(rules, n);
	struct gr_error err = { 0 };
	int r = devices_bpf_attach(f->fd, b.prog, b.len, &err);
	free(b.prog);
	if (r == -EPERM || r == -ENOSYS) {
		print_message("skipped: %s\n", err.msg);
		skip();
	}
	if (r < 0)
		fail_msg("devices_bpf_attach: %s", err.msg);
}

/* Device filters attached to the test cgroup: all, and ours. */
static void count_attached(struct kfix *f, unsigned *all, unsigned *ours)
{
	uint32_t ids[64];
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.query.target_fd = (uint32_t)f->fd;
	a.query.attach_type = BPF_CGROUP_DEVICE;
	a.query.prog_ids = (uint64_t)(uintptr_t)ids;
	a.query.prog_cnt = 64;
	assert_int_equal(sys_bpf(BPF_PROG_QUERY, &a), 0);
	*all = a.query.prog_cnt;
	*ours = 0;
	for (unsigned i = 0; i < *all; i++) {
		memset(&a, 0, sizeof(a));
		a.prog_id = ids[i];
		gr_autoclose int fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
		assert_true(fd >= 0);
		struct bpf_prog_info info;
		memset(&info, 0, sizeof(info));
		memset(&a, 0, sizeof(a));
		a.info.bpf_fd = (uint32_t)fd;
		a.info.info_len = sizeof(info);
		a.info.info = (uint64_t)(uintptr_t)&info;
		assert_int_equal(sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a), 0);
		if (strcmp(info.name, DEVICES_BPF_PROG_NAME) == 0)
			(*ours)++;
	}
}

/* open(path, flags) in a child moved into the test cgroup: 0 or an errno. */
static int open_in_cgroup(struct kfix *f, const char *path, int flags)
{
	char procs[PATH_MAX + 16];
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", f->dir);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		int res = 0;
		int cfd = open(procs, O_WRONLY | O_CLOEXEC);
		if (cfd < 0 || write(cfd, "0", 1) != 1) {
			res = -1000 - errno; /* could not enter the cgroup */
		} else {
			int fd = open(path, flags | O_CLOEXEC);
			res = fd < 0 ? errno : 0;
		}
		if (write(pfd[1], &res, sizeof(res)) != sizeof(res))
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	int res = -1;
	ssize_t got = read(pfd[0], &res, sizeof(res));
	close(pfd[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(got, sizeof(res));
	if (res <= -1000)
		fail_msg("the child could not enter %s: %s", f->dir, strerror(-res - 1000));
	return res;
}

static void test_kernel_filter_and_update(void **state)
{
	struct kfix *f = *state;
	kfix_need(f);

	/* allow everything but /dev/null */
	const struct oci_device_rule no_null[] = { RULE(true, 'a', -1, -1, "rwm"), RULE(false, 'c', 1, 3, "rwm") };
	attach_rules(f, no_null, N(no_null));
	unsigned all, ours;
	count_attached(f, &all, &ours);
	assert_int_equal(all, 1);
	assert_int_equal(ours, 1);
	assert_int_equal(open_in_cgroup(f, "/dev/null", O_RDONLY), EPERM);
	assert_int_equal(open_in_cgroup(f, "/dev/null", O_WRONLY), EPERM);
	assert_int_equal(open_in_cgroup(f, "/dev/zero", O_RDONLY), 0);
	assert_int_equal(open_in_cgroup(f, "/dev/zero", O_RDWR), 0);

	/* replaced by one that only refuses writing /dev/null */
	const struct oci_device_rule no_write[] = { RULE(true, 'a', -1, -1, "rwm"), RULE(false, 'c', 1, 3, "w") };
	attach_rules(f, no_write, N(no_write));
	count_attached(f, &all, &ours);
	assert_int_equal(all, 1);
	assert_int_equal(open_in_cgroup(f, "/dev/null", O_RDONLY), 0);
	assert_int_equal(open_in_cgroup(f, "/dev/null", O_WRONLY), EPERM);
	assert_int_equal(open_in_cgroup(f, "/dev/null", O_RDWR), EPERM);

	/* runc's list: the defaults only */
	attach_rules(f, runc_default, N(runc_default));
	count_attached(f, &all, &ours);
	assert_int_equal(all, 1);
	assert_int_equal(open_in_cgroup(f, "/dev/null", O_RDWR), 0);
	assert_int_equal(open_in_cgroup(f, "/dev/urandom", O_RDONLY), 0);
	assert_int_equal(open_in_cgroup(f, "/dev/kmsg", O_RDONLY), EPERM);

	/* and finally everything */
	const struct oci_device_rule all_ok[] = { RULE(true, 'a', -1, -1, "rwm") };
	attach_rules(f, all_ok, N(all_ok));
	count_attached(f, &all, &ours);
	assert_int_equal(all, 1);
	assert_int_equal(ours, 1);
	assert_int_equal(open_in_cgroup(f, "/dev/null", O_RDWR), 0);
	assert_int_equal(open_in_cgroup(f, "/dev/kmsg", O_RDONLY), 0);
}

static void test_kernel_foreign_filter_kept(void **state)
{
	struct kfix *f = *state;
	kfix_need(f);
	/* someone else's filter (another name): deny /dev/zero */
	const struct oci_device_rule no_zero[] = { RULE(true, 'a', -1, -1, "rwm"), RULE(false, 'c', 1, 5, "rwm") };
	struct built b = build(no_zero, N(no_zero));
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insns = (uint64_t)(uintptr_t)b.prog;
	a.insn_cnt = (uint32_t)b.len;
	a.license = (uint64_t)(uintptr_t)"Apache-2.0";
	snprintf(a.prog_name, sizeof(a.prog_name), "someone_else");
	gr_autoclose int pfd = sys_bpf(BPF_PROG_LOAD, &a);
	free(b.prog);
	if (pfd == -EPERM || pfd == -ENOSYS) {
		print_message("skipped: bpf(BPF_PROG_LOAD): %s\n", strerror(-pfd));
		skip();
	}
	assert_true(pfd >= 0);
	memset(&a, 0, sizeof(a));
	a.target_fd = (uint32_t)f->fd;
	a.attach_bpf_fd = (uint32_t)pfd;
	a.attach_type = BPF_CGROUP_DEVICE;
	a.attach_flags = BPF_F_ALLOW_MULTI;
	assert_int_equal(sys_bpf(BPF_PROG_ATTACH, &a), 0);

	const struct oci_device_rule no_null[] = { RULE(true, 'a', -1, -1, "rwm"), RULE(false, 'c', 1, 3, "rwm") };
	attach_rules(f, no_null, N(no_null));
	attach_rules(f, no_null, N(no_null));
	unsigned all, ours;
	count_attached(f, &all, &ours);
	assert_int_equal(all, 2);
	assert_int_equal(ours, 1);
	/* both filters apply */
	assert_int_equal(open_in_cgroup(f, "/dev/null", O_RDONLY), EPERM);
	assert_int_equal(open_in_cgroup(f, "/dev/zero", O_RDONLY), EPERM);
	assert_int_equal(open_in_cgroup(f, "/dev/full", O_RDONLY), 0);
}

static void test_kernel_verifier_log(void **state)
{
	struct kfix *f = *state;
	kfix_need(f);
	/* exit without setting r0 */
	const struct bpf_insn bad[] = { { .code = BPF_JMP | BPF_EXIT } };
	struct gr_error err = { 0 };
	int r = devices_bpf_attach(f->fd, bad, 1, &err);
	if (r == -EPERM || r == -ENOSYS) {
		print_message("skipped: %s\n", err.msg);
		skip();
	}
	assert_int_equal(r, -EACCES);
	print_message("%s\n", err.msg);
	assert_non_null(strstr(err.msg, "linux.resources.devices: cannot load the eBPF device filter (1 instructions)"));
	assert_non_null(strstr(err.msg, "; verifier: "));
	assert_non_null(strstr(err.msg, "R0"));
	unsigned all, ours;
	count_attached(f, &all, &ours);
	assert_int_equal(all, 0);

	/* not a cgroup */
	gr_autoclose int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct built b = build(runc_default, N(runc_default));
	r = devices_bpf_attach(devnull, b.prog, b.len, &err);
	free(b.prog);
	assert_true(r < 0);
	assert_non_null(strstr(err.msg, "linux.resources.devices: "));
	print_message("%s\n", err.msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runc_default_list),
		cmocka_unit_test(test_allow_all),
		cmocka_unit_test(test_empty_list_denies),
		cmocka_unit_test(test_deny_one_after_allow_all),
		cmocka_unit_test(test_access_subsets),
		cmocka_unit_test(test_block_char_and_wildcards),
		cmocka_unit_test(test_devices_beyond_int32_never_match),
		cmocka_unit_test(test_errors),
		cmocka_unit_test_setup_teardown(test_kernel_filter_and_update, kfix_setup, kfix_teardown),
		cmocka_unit_test_setup_teardown(test_kernel_foreign_filter_kept, kfix_setup, kfix_teardown),
		cmocka_unit_test_setup_teardown(test_kernel_verifier_log, kfix_setup, kfix_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
