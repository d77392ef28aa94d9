/* Unit tests for src/container/security.h: capability, rlimit and seccomp
 * name tables, masks, filter building, and the real effect of applying each
 * in a forked child (which reports through its exit status). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/security.h"

/* ---- helpers -------------------------------------------------------- */

/* In a child: report the failing line and return non-zero. */
#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "child check failed at %s:%d: %s (errno %d)\n", \
				__FILE__, __LINE__, #cond, errno);                   \
			return 1;                                                    \
		}                                                                    \
	} while (0)

#define CHECK_STR(got, want)                                                         \
	do {                                                                         \
		if (strcmp((got), (want)) != 0) {                                    \
			fprintf(stderr, "child check failed at %s:%d:\n  got  %s\n  want %s\n", \
				__FILE__, __LINE__, (got), (want));                  \
			return 1;                                                    \
		}                                                                    \
	} while (0)

static void run_in_child(int (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		fail_msg("child died with signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int capget_v3(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capget, &hdr, d) < 0)
		return -1;
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	*inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	return 0;
}

static int capset_v3(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
	};
	return (int)syscall(SYS_capset, &hdr, d);
}

/* A NULL-terminated list of the names of the capabilities in mask (static storage). */
static char **names_of(uint64_t mask, char *store[65])
{
	size_t n = 0;
	for (int i = 0; i < 64; i++)
		if ((mask & (UINT64_C(1) << i)) && caps_to_name(i))
			store[n++] = (char *)caps_to_name(i);
	store[n] = NULL;
	return store;
}

#define BIT(c) (UINT64_C(1) << (c))

/* The PFC text of a filter, for looking at what was added. */
static char *filter_pfc(scmp_filter_ctx ctx)
{
	int fd = memfd_create("pfc", 0);
	assert_true(fd >= 0);
	assert_int_equal(seccomp_export_pfc(ctx, fd), 0);
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	return buf;
}

/* ---- capabilities: names and masks ------------------------------------ */

static void test_caps_from_name(void **state)
{
	(void)state;
	assert_int_equal(caps_from_name("CAP_CHOWN"), 0);
	assert_int_equal(caps_from_name("CAP_DAC_OVERRIDE"), 1);
	assert_int_equal(caps_from_name("CAP_NET_RAW"), 13);
	assert_int_equal(caps_from_name("CAP_SYS_ADMIN"), 21);
	assert_int_equal(caps_from_name("CAP_SYS_RESOURCE"), 24);
	assert_int_equal(caps_from_name("CAP_SETFCAP"), 31);
	assert_int_equal(caps_from_name("CAP_MAC_OVERRIDE"), 32);
	assert_int_equal(caps_from_name("CAP_AUDIT_READ"), 37);
	assert_int_equal(caps_from_name("CAP_PERFMON"), 38);
	assert_int_equal(caps_from_name("CAP_BPF"), 39);
	assert_int_equal(caps_from_name("CAP_CHECKPOINT_RESTORE"), 40);
	assert_int_equal(caps_from_name("cap_chown"), -1);
	assert_int_equal(caps_from_name("CHOWN"), -1);
	assert_int_equal(caps_from_name("CAP_FOO"), -1);
	assert_int_equal(caps_from_name(""), -1);
	assert_int_equal(caps_from_name(NULL), -1);
	/* Round trip every number. */
	for (int i = 0; i <= 40; i++) {
		assert_non_null(caps_to_name(i));
		assert_int_equal(caps_from_name(caps_to_name(i)), i);
	}
	assert_null(caps_to_name(41));
	assert_null(caps_to_name(-1));
}

static void test_caps_list_to_mask(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	uint64_t mask = 123;

	char *ok[] = { "CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_BPF", NULL };
	assert_int_equal(caps_list_to_mask(ok, "process.capabilities.bounding", &mask, &err), 0);
	assert_true(mask == (BIT(0) | BIT(5) | BIT(13) | BIT(39)));

	mask = 123;
	assert_int_equal(caps_list_to_mask(NULL, "process.capabilities.bounding", &mask, &err), 0);
	assert_true(mask == 0);

	char *empty[] = { NULL };
	mask = 123;
	assert_int_equal(caps_list_to_mask(empty, "x", &mask, &err), 0);
	assert_true(mask == 0);

	char *dup[] = { "CAP_KILL", "CAP_KILL", NULL };
	assert_int_equal(caps_list_to_mask(dup, "x", &mask, &err), 0);
	assert_true(mask == BIT(5));

	char *bad[] = { "CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_FOO", NULL };
	mask = 7;
	assert_int_equal(caps_list_to_mask(bad, "process.capabilities.bounding", &mask, &err), -EINVAL);
	assert_string_equal(err.msg, "process.capabilities.bounding[3]: unknown capability \"CAP_FOO\"");
	assert_int_equal(err.code, EINVAL);
	assert_true(mask == 7); /* untouched on error */

	char *lower[] = { "cap_chown", NULL };
	assert_int_equal(caps_list_to_mask(lower, "process.capabilities.ambient", &mask, &err), -EINVAL);
	assert_string_equal(err.msg, "process.capabilities.ambient[0]: unknown capability \"cap_chown\"");
}

static void test_caps_last_cap_and_bounding(void **state)
{
	(void)state;
	int last = caps_last_cap();
	assert_true(last >= 36 && last < 64);
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
	if (f) {
		int v;
		assert_int_equal(fscanf(f, "%d", &v), 1);
		fclose(f);
		assert_int_equal(last, v);
	}
	uint64_t bnd = caps_current_bounding();
	for (int i = 0; i <= last; i++)
		assert_int_equal(!!(bnd & BIT(i)), prctl(PR_CAPBSET_READ, i, 0, 0, 0) == 1);
	assert_true((bnd >> (last + 1)) == 0 || last == 63);
}

static void test_caps_apply_bad_name(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	char *good[] = { "CAP_CHOWN", NULL };
	char *bad[] = { "CAP_CHOWN", "CAP_NOPE", NULL };
	struct oci_capabilities c = { .bounding = good, .effective = good, .permitted = good,
				      .inheritable = bad };
	/* Names are checked before anything is changed: safe in the test process. */
	assert_int_equal(caps_apply(&c, &err), -EINVAL);
	assert_string_equal(err.msg, "process.capabilities.inheritable[1]: unknown capability \"CAP_NOPE\"");
}

/* ---- capabilities: real effect ---------------------------------------- */

static int child_caps_drop(void)
{
	uint64_t bnd = caps_current_bounding();
	uint64_t want = bnd & ~(BIT(CAP_NET_RAW) | BIT(CAP_CHOWN));
	char *store[65], *inh_store[65], *amb_store[65];
	char **names = names_of(want, store);
	char **inh = names_of(BIT(CAP_NET_BIND_SERVICE), inh_store);
	/* CAP_KILL is asked for as ambient but is not inheritable: skipped. */
	char **amb = names_of(BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_KILL), amb_store);
	struct oci_capabilities c = { .bounding = names, .effective = names, .permitted = names,
				      .inheritable = inh, .ambient = amb };
	struct gr_error err = { 0 };

	CHECK(bnd & BIT(CAP_NET_RAW)); /* the test needs a privileged start */
	if (caps_apply(&c, &err) < 0) {
		fprintf(stderr, "caps_apply: %s\n", err.msg);
		return 1;
	}
	uint64_t eff, prm, inhs;
	CHECK(capget_v3(&eff, &prm, &inhs) == 0);
	CHECK(eff == want);
	CHECK(prm == want);
	CHECK(inhs == BIT(CAP_NET_BIND_SERVICE));
	CHECK(prctl(PR_CAPBSET_READ, CAP_NET_RAW, 0, 0, 0) == 0);
	CHECK(prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0) == 0);
	CHECK(prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) == 1);
	CHECK(caps_current_bounding() == want);
	CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) == 1);
	CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0) == 0);
	/* Without CAP_CHOWN, chown to another owner fails. */
	char path[] = "/tmp/gr-sec-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	int r = fchown(fd, 12345, 12345);
	int e = errno;
	close(fd);
	unlink(path);
	CHECK(r < 0 && e == EPERM);
	return 0;
}

static void test_caps_apply_drops(void **state)
{
	(void)state;
	if (geteuid() != 0 || !(caps_current_bounding() & BIT(CAP_NET_RAW)) ||
	    !(caps_current_bounding() & BIT(CAP_SETPCAP)))
		skip();
	run_in_child(child_caps_drop);
}

/* A capability missing from the bounding set (as CAP_SYS_RESOURCE is on our
 * hosts) is dropped from the request instead of failing capset. */
static int child_caps_intersect(void)
{
	struct gr_error err = { 0 };
	/* Make sure the bounding set lacks it, whatever the host. */
	if (prctl(PR_CAPBSET_READ, CAP_SYS_RESOURCE, 0, 0, 0) == 1)
		CHECK(prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0) == 0);
	uint64_t all = 0;
	for (int i = 0; i <= caps_last_cap() && i <= 40; i++)
		all |= BIT(i);
	char *store[65];
	char **names = names_of(all, store); /* includes CAP_SYS_RESOURCE */
	struct oci_capabilities c = { .bounding = names, .effective = names, .permitted = names,
				      .inheritable = names, .ambient = names };
	if (caps_apply(&c, &err) < 0) {
		fprintf(stderr, "caps_apply: %s\n", err.msg);
		return 1;
	}
	uint64_t eff, prm, inh;
	CHECK(capget_v3(&eff, &prm, &inh) == 0);
	CHECK(!(prm & BIT(CAP_SYS_RESOURCE)));
	CHECK(!(eff & BIT(CAP_SYS_RESOURCE)));
	CHECK(!(inh & BIT(CAP_SYS_RESOURCE)));
	CHECK(prm & BIT(CAP_SYS_ADMIN));
	CHECK(inh & BIT(CAP_SYS_ADMIN));
	CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_ADMIN, 0, 0) == 1);
	CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_RESOURCE, 0, 0) == 0);
	return 0;
}

static void test_caps_apply_intersects_bounding(void **state)
{
	(void)state;
	if (geteuid() != 0 || !(caps_current_bounding() & BIT(CAP_SETPCAP)))
		skip();
	run_in_child(child_caps_intersect);
}

/* NULL (absent) means no capabilities at all. */
static int child_caps_null(void)
{
	struct gr_error err = { 0 };
	if (caps_apply(NULL, &err) < 0) {
		fprintf(stderr, "caps_apply: %s\n", err.msg);
		return 1;
	}
	uint64_t eff, prm, inh;
	CHECK(capget_v3(&eff, &prm, &inh) == 0);
	CHECK(eff == 0 && prm == 0 && inh == 0);
	CHECK(caps_current_bounding() == 0);
	/* Nothing can be added back. */
	CHECK(capset_v3(BIT(CAP_CHOWN), BIT(CAP_CHOWN), 0) < 0);
	return 0;
}

static void test_caps_apply_null(void **state)
{
	(void)state;
	if (geteuid() != 0 || !(caps_current_bounding() & BIT(CAP_SETPCAP)))
		skip();
	run_in_child(child_caps_null);
}

/* capset refuses to grow the permitted set: a clear error, not a crash. */
static int child_caps_grow(void)
{
	struct gr_error err = { 0 };
	uint64_t eff, prm, inh;
	CHECK(capget_v3(&eff, &prm, &inh) == 0);
	CHECK(capset_v3(BIT(CAP_SETPCAP), BIT(CAP_SETPCAP), 0) == 0);
	char *names[] = { "CAP_SETPCAP", "CAP_CHOWN", NULL };
	struct oci_capabilities c = { .bounding = names, .effective = names, .permitted = names };
	CHECK(caps_apply(&c, &err) == -EPERM);
	CHECK(strstr(err.msg, "process.capabilities: capset (permitted CAP_CHOWN,CAP_SETPCAP) failed") != NULL);
	return 0;
}

static void test_caps_apply_cannot_grow(void **state)
{
	(void)state;
	if (geteuid() != 0 || !(caps_current_bounding() & BIT(CAP_SETPCAP)))
		skip();
	run_in_child(child_caps_grow);
}

/* ---- rlimits ---------------------------------------------------------- */

static void test_rlimit_from_name(void **state)
{
	(void)state;
	static const struct { const char *n; int r; } t[] = {
		{ "RLIMIT_AS", RLIMIT_AS }, { "RLIMIT_CORE", RLIMIT_CORE },
		{ "RLIMIT_CPU", RLIMIT_CPU }, { "RLIMIT_DATA", RLIMIT_DATA },
		{ "RLIMIT_FSIZE", RLIMIT_FSIZE }, { "RLIMIT_LOCKS", RLIMIT_LOCKS },
		{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
		{ "RLIMIT_NICE", RLIMIT_NICE }, { "RLIMIT_NOFILE", RLIMIT_NOFILE },
		{ "RLIMIT_NPROC", RLIMIT_NPROC }, { "RLIMIT_RSS", RLIMIT_RSS },
		{ "RLIMIT_RTPRIO", RLIMIT_RTPRIO }, { "RLIMIT_RTTIME", RLIMIT_RTTIME },
		{ "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING }, { "RLIMIT_STACK", RLIMIT_STACK },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(rlimit_from_name(t[i].n), t[i].r);
	assert_int_equal(rlimit_from_name("RLIMIT_FOO"), -1);
	assert_int_equal(rlimit_from_name("rlimit_nofile"), -1);
	assert_int_equal(rlimit_from_name("NOFILE"), -1);
	assert_int_equal(rlimit_from_name(""), -1);
	assert_int_equal(rlimit_from_name(NULL), -1);
}

static void test_rlimits_soft_above_hard(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct oci_rlimit l[] = {
		{ .resource = RLIMIT_CORE, .type = "RLIMIT_CORE", .soft = 0, .hard = 0 },
		{ .resource = RLIMIT_NOFILE, .type = "RLIMIT_NOFILE", .soft = 200, .hard = 100 },
	};
	struct rlimit before;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &before), 0);
	/* l[0] would change the test process: use only the invalid one here. */
	assert_int_equal(rlimits_apply(&l[1], 1, &err), -EINVAL);
	assert_string_equal(err.msg, "process.rlimits[0] RLIMIT_NOFILE: soft limit 200 is above the hard limit 100");
	struct rlimit after;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &after), 0);
	assert_true(before.rlim_cur == after.rlim_cur && before.rlim_max == after.rlim_max);
	assert_int_equal(rlimits_apply(NULL, 0, &err), 0);
}

static int child_rlimits(void)
{
	struct gr_error err = { 0 };
	struct oci_rlimit l[] = {
		{ .resource = RLIMIT_NOFILE, .type = "RLIMIT_NOFILE", .soft = 100, .hard = 200 },
		{ .resource = RLIMIT_CORE, .type = "RLIMIT_CORE", .soft = 0, .hard = RLIM_INFINITY },
		{ .resource = RLIMIT_NPROC, .type = NULL, .soft = 1000, .hard = 1000 },
	};
	if (rlimits_apply(l, 3, &err) < 0) {
		fprintf(stderr, "rlimits_apply: %s\n", err.msg);
		return 1;
	}
	struct rlimit r;
	CHECK(getrlimit(RLIMIT_NOFILE, &r) == 0);
	CHECK(r.rlim_cur == 100 && r.rlim_max == 200);
	CHECK(getrlimit(RLIMIT_CORE, &r) == 0);
	CHECK(r.rlim_cur == 0);
	CHECK(getrlimit(RLIMIT_NPROC, &r) == 0);
	CHECK(r.rlim_cur == 1000 && r.rlim_max == 1000);

	/* Raising the hard limit needs CAP_SYS_RESOURCE: drop it from the
	 * effective set so the EPERM path is taken on any host. */
	uint64_t eff, prm, inh;
	CHECK(capget_v3(&eff, &prm, &inh) == 0);
	CHECK(capset_v3(eff & ~BIT(CAP_SYS_RESOURCE), prm, inh) == 0);
	struct oci_rlimit up[] = {
		{ .resource = RLIMIT_NOFILE, .type = "RLIMIT_NOFILE", .soft = 300, .hard = 300 },
	};
	CHECK(rlimits_apply(up, 1, &err) == -EPERM);
	CHECK_STR(err.msg, "process.rlimits[0] RLIMIT_NOFILE: cannot set 300/300 (the host's hard limit "
			   "is 200 and raising it needs CAP_SYS_RESOURCE): Operation not permitted");
	struct oci_rlimit inf[] = {
		{ .resource = RLIMIT_NOFILE, .type = "RLIMIT_NOFILE", .soft = 10, .hard = RLIM_INFINITY },
	};
	CHECK(rlimits_apply(inf, 1, &err) == -EPERM);
	/* the kernel checks nr_open first for an infinite NOFILE */
	CHECK(strstr(err.msg, "process.rlimits[0] RLIMIT_NOFILE: cannot set 10/unlimited") == err.msg);
	/* Unchanged after the failure. */
	CHECK(getrlimit(RLIMIT_NOFILE, &r) == 0);
	CHECK(r.rlim_cur == 100 && r.rlim_max == 200);
	/* Lowering still works. */
	struct oci_rlimit down[] = {
		{ .resource = RLIMIT_NOFILE, .type = "RLIMIT_NOFILE", .soft = 50, .hard = 150 },
	};
	CHECK(rlimits_apply(down, 1, &err) == 0);
	CHECK(getrlimit(RLIMIT_NOFILE, &r) == 0);
	CHECK(r.rlim_cur == 50 && r.rlim_max == 150);
	return 0;
}

static void test_rlimits_apply(void **state)
{
	(void)state;
	run_in_child(child_rlimits);
}

/* The host case from the brief: without CAP_SYS_RESOURCE in the bounding set,
 * asking for more than the host's hard limit fails with EPERM and says why. */
static int child_rlimits_host(void)
{
	struct gr_error err = { 0 };
	struct rlimit cur;
	CHECK(getrlimit(RLIMIT_NOFILE, &cur) == 0);
	uint64_t want = (uint64_t)cur.rlim_max * 2;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	unsigned long long nr_open = 0;
	if (f) {
		if (fscanf(f, "%llu", &nr_open) != 1)
			nr_open = 0;
		fclose(f);
	}
	if (nr_open && want > nr_open)
		want = nr_open;
	if (want <= (uint64_t)cur.rlim_max)
		return 0; /* already at the ceiling: nothing to check */
	struct oci_rlimit l[] = {
		{ .resource = RLIMIT_NOFILE, .type = "RLIMIT_NOFILE", .soft = want, .hard = want },
	};
	CHECK(rlimits_apply(l, 1, &err) == -EPERM);
	char expect[512];
	snprintf(expect, sizeof(expect),
		 "process.rlimits[0] RLIMIT_NOFILE: cannot set %llu/%llu (the host's hard limit is %llu "
		 "and raising it needs CAP_SYS_RESOURCE): Operation not permitted",
		 (unsigned long long)want, (unsigned long long)want, (unsigned long long)cur.rlim_max);
	CHECK_STR(err.msg, expect);
	return 0;
}

static void test_rlimits_host_hard_limit(void **state)
{
	(void)state;
	if (prctl(PR_CAPBSET_READ, CAP_SYS_RESOURCE, 0, 0, 0) != 0)
		skip(); /* this host can raise hard limits */
	struct rlimit cur;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &cur), 0);
	if (cur.rlim_max == RLIM_INFINITY)
		skip();
	run_in_child(child_rlimits_host);
}

/* ---- personality ------------------------------------------------------ */

static int child_personality(void)
{
	struct gr_error err = { 0 };
	struct oci_personality p32 = { .domain = "LINUX32" };
	CHECK(personality_apply(&p32, &err) == 0);
	CHECK((personality(0xffffffff) & PER_MASK) == PER_LINUX32);
	struct oci_personality p = { .domain = "LINUX" };
	CHECK(personality_apply(&p, &err) == 0);
	CHECK((personality(0xffffffff) & PER_MASK) == PER_LINUX);
	CHECK(personality_apply(NULL, &err) == 0);
	return 0;
}

static void test_personality(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct oci_personality bad = { .domain = "WINDOWS" };
	assert_int_equal(personality_apply(&bad, &err), -EINVAL);
	assert_string_equal(err.msg, "linux.personality.domain: unknown domain \"WINDOWS\" (expected LINUX or LINUX32)");
	char *flags[] = { "ADDR_NO_RANDOMIZE", NULL };
	struct oci_personality withflags = { .domain = "LINUX", .flags = flags };
	assert_int_equal(personality_apply(&withflags, &err), -EINVAL);
	assert_string_equal(err.msg, "linux.personality.flags[0]: unsupported personality flag "
				     "\"ADDR_NO_RANDOMIZE\" (the runtime spec defines none; remove linux.personality.flags)");
	char *noflags[] = { NULL };
	struct oci_personality emptyflags = { .domain = "BAD", .flags = noflags };
	assert_int_equal(personality_apply(&emptyflags, &err), -EINVAL);
	run_in_child(child_personality);
}

/* ---- seccomp: building ------------------------------------------------ */

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

static void test_seccomp_names(void **state)
{
	(void)state;
	assert_true(in_list(seccomp_action_names, "SCMP_ACT_ERRNO"));
	assert_true(in_list(seccomp_action_names, "SCMP_ACT_KILL_PROCESS"));
	assert_true(in_list(seccomp_action_names, "SCMP_ACT_LOG"));
	assert_false(in_list(seccomp_action_names, "SCMP_ACT_NOTIFY"));
	assert_true(in_list(seccomp_operator_names, "SCMP_CMP_MASKED_EQ"));
	assert_true(in_list(seccomp_operator_names, "SCMP_CMP_NE"));
	assert_true(in_list(seccomp_arch_names, "SCMP_ARCH_X86_64"));
	assert_true(in_list(seccomp_arch_names, "SCMP_ARCH_AARCH64"));
	assert_true(in_list(seccomp_arch_names, "SCMP_ARCH_RISCV64"));
	assert_true(in_list(seccomp_flag_names, "SECCOMP_FILTER_FLAG_TSYNC"));
	assert_true(in_list(seccomp_flag_names, "SECCOMP_FILTER_FLAG_LOG"));
	assert_true(in_list(seccomp_flag_names, "SECCOMP_FILTER_FLAG_SPEC_ALLOW"));
	size_t n = 0;
	while (seccomp_operator_names[n])
		n++;
	assert_int_equal(n, 7);
}

static int build(const struct oci_seccomp *s, struct gr_error *err, char **pfc)
{
	scmp_filter_ctx ctx = NULL;
	int r = seccomp_build(s, &ctx, err);
	if (r < 0) {
		assert_null(ctx);
		return r;
	}
	assert_non_null(ctx);
	if (pfc)
		*pfc = filter_pfc(ctx);
	seccomp_release(ctx);
	return r;
}

static void test_seccomp_build_every_action(void **state)
{
	(void)state;
	/* KILL_PROCESS and LOG need API level 3 (Linux 4.14); valgrind, which
	 * has no seccomp, reports level 1. */
	if (seccomp_api_get() < 3)
		skip();
	struct gr_error err = { 0 };
	static char *acts[] = { "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
				"SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",
				"SCMP_ACT_LOG" };
	for (size_t d = 0; d < sizeof(acts) / sizeof(acts[0]); d++) {
		for (size_t a = 0; a < sizeof(acts) / sizeof(acts[0]); a++) {
			char *names[] = { "getcwd", "mkdirat", NULL };
			struct oci_seccomp_rule rules[] = { { .names = names, .action = acts[a] } };
			struct oci_seccomp s = { .default_action = acts[d], .syscalls = rules, .n_syscalls = 1 };
			char *pfc = NULL;
			int r = build(&s, &err, &pfc);
			if (r < 0)
				fail_msg("default %s, rule %s: %s", acts[d], acts[a], err.msg);
			/* KILL and KILL_THREAD are one action: the rule equals the default. */
			bool same = d == a || (d <= 2 && a <= 2 && d != 1 && a != 1);
			if (same)
				assert_null(strstr(pfc, "getcwd"));
			else
				assert_non_null(strstr(pfc, "getcwd"));
			free(pfc);
		}
	}
	/* errnoRet on ERRNO and TRACE; rule differs from the default only by errno. */
	char *names[] = { "getcwd", NULL };
	struct oci_seccomp_rule rules[] = {
		{ .names = names, .action = "SCMP_ACT_ERRNO", .errno_ret = { true, 38 } },
		{ .names = names, .action = "SCMP_ACT_TRACE", .errno_ret = { true, 7 } },
	};
	struct oci_seccomp s = { .default_action = "SCMP_ACT_ERRNO", .syscalls = rules, .n_syscalls = 1 };
	char *pfc = NULL;
	assert_int_equal(build(&s, &err, &pfc), 0);
	assert_non_null(strstr(pfc, "getcwd"));
	assert_non_null(strstr(pfc, "ERRNO(38)"));
	free(pfc);
	s.syscalls = &rules[1];
	assert_int_equal(build(&s, &err, &pfc), 0);
	assert_non_null(strstr(pfc, "TRACE(7)"));
	free(pfc);
	/* defaultErrnoRet */
	struct oci_seccomp s2 = { .default_action = "SCMP_ACT_ERRNO", .default_errno_ret = { true, 95 } };
	assert_int_equal(build(&s2, &err, &pfc), 0);
	assert_non_null(strstr(pfc, "ERRNO(95)"));
	free(pfc);
}

static void test_seccomp_build_skips(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	char *unknown[] = { "no_such_syscall_at_all", "getcwd", "another_fake", NULL };
	char *eq_default[] = { "mkdirat", NULL };
	struct oci_seccomp_rule rules[] = {
		{ .names = unknown, .action = "SCMP_ACT_ALLOW" },
		/* ERRNO without errnoRet is ERRNO(EPERM), the same as the default. */
		{ .names = eq_default, .action = "SCMP_ACT_ERRNO" },
		{ .names = eq_default, .action = "SCMP_ACT_ERRNO", .errno_ret = { true, EPERM } },
	};
	struct oci_seccomp s = { .default_action = "SCMP_ACT_ERRNO", .syscalls = rules, .n_syscalls = 3 };
	char *pfc = NULL;
	assert_int_equal(build(&s, &err, &pfc), 0);
	assert_non_null(strstr(pfc, "getcwd"));
	assert_null(strstr(pfc, "mkdirat"));
	free(pfc);
	/* A rule with no names at all, and one with an empty list. */
	char *none[] = { NULL };
	struct oci_seccomp_rule r2[] = { { .names = NULL, .action = "SCMP_ACT_ALLOW" },
					 { .names = none, .action = "SCMP_ACT_ALLOW" } };
	struct oci_seccomp s2 = { .default_action = "SCMP_ACT_ERRNO", .syscalls = r2, .n_syscalls = 2 };
	assert_int_equal(build(&s2, &err, NULL), 0);
}

static void test_seccomp_build_args(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	char *names[] = { "personality", NULL };
	for (int op = SC_OP_NE; op <= SC_OP_MASKED_EQ; op++) {
		struct oci_seccomp_arg args[] = { { .index = 0, .value = 0x10, .value_two = 0x10, .op = op } };
		struct oci_seccomp_rule rules[] = {
			{ .names = names, .action = "SCMP_ACT_ERRNO", .args = args, .n_args = 1 } };
		struct oci_seccomp s = { .default_action = "SCMP_ACT_ALLOW", .syscalls = rules, .n_syscalls = 1 };
		char *pfc = NULL;
		if (build(&s, &err, &pfc) < 0)
			fail_msg("op %s: %s", seccomp_operator_names[op], err.msg);
		assert_non_null(strstr(pfc, "personality"));
		free(pfc);
	}
	/* All six indexes in one rule. */
	struct oci_seccomp_arg six[6];
	for (int i = 0; i < 6; i++)
		six[i] = (struct oci_seccomp_arg){ .index = i, .value = i + 1, .op = SC_OP_EQ };
	char *mmap_names[] = { "mmap", NULL };
	struct oci_seccomp_rule rsix[] = {
		{ .names = mmap_names, .action = "SCMP_ACT_ERRNO", .args = six, .n_args = 6 } };
	struct oci_seccomp s6 = { .default_action = "SCMP_ACT_ALLOW", .syscalls = rsix, .n_syscalls = 1 };
	assert_int_equal(build(&s6, &err, NULL), 0);

	/* MASKED_EQ: value is the mask, valueTwo the datum. */
	struct oci_seccomp_arg m[] = { { .index = 2, .value = 0x80000, .value_two = 0x80000, .op = SC_OP_MASKED_EQ } };
	char *dup3_names[] = { "dup3", NULL };
	struct oci_seccomp_rule rm[] = {
		{ .names = dup3_names, .action = "SCMP_ACT_ERRNO", .args = m, .n_args = 1 } };
	struct oci_seccomp sm = { .default_action = "SCMP_ACT_ALLOW", .syscalls = rm, .n_syscalls = 1 };
	char *pfc = NULL;
	assert_int_equal(build(&sm, &err, &pfc), 0);
	assert_non_null(strstr(pfc, "$a2.lo32 & 0x00080000 == 524288"));
	free(pfc);

	/* Two conditions on one index: split into two rules (an OR), as runc does. */
	struct oci_seccomp_arg two[] = {
		{ .index = 0, .value = 1000001, .op = SC_OP_EQ },
		{ .index = 0, .value = 1000002, .op = SC_OP_EQ },
	};
	char *gp[] = { "getpgid", NULL };
	struct oci_seccomp_rule rt[] = { { .names = gp, .action = "SCMP_ACT_ERRNO", .args = two, .n_args = 2 } };
	struct oci_seccomp st = { .default_action = "SCMP_ACT_ALLOW", .syscalls = rt, .n_syscalls = 1 };
	assert_int_equal(build(&st, &err, &pfc), 0);
	assert_non_null(strstr(pfc, "1000001"));
	assert_non_null(strstr(pfc, "1000002"));
	free(pfc);

	/* Bad index and too many conditions. */
	struct oci_seccomp_arg badidx[] = { { .index = 6, .value = 1, .op = SC_OP_EQ } };
	rt[0].args = badidx;
	rt[0].n_args = 1;
	assert_int_equal(build(&st, &err, NULL), -EINVAL);
	assert_string_equal(err.msg, "linux.seccomp.syscalls[0].args[0].index: 6 is out of range (0..5)");
	struct oci_seccomp_arg seven[7] = { { 0 } };
	rt[0].args = seven;
	rt[0].n_args = 7;
	assert_int_equal(build(&st, &err, NULL), -EINVAL);
	assert_string_equal(err.msg, "linux.seccomp.syscalls[0].args: 7 conditions, at most 6 are supported");
}

static void test_seccomp_build_arches_and_flags(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	char *names[] = { "getcwd", "socket", NULL };
	struct oci_seccomp_rule rules[] = { { .names = names, .action = "SCMP_ACT_ERRNO" } };
	struct oci_seccomp s = { .default_action = "SCMP_ACT_ALLOW", .syscalls = rules, .n_syscalls = 1,
				 .architectures = (char **)seccomp_arch_names };
	char *pfc = NULL;
	if (build(&s, &err, &pfc) < 0)
		fail_msg("all arches: %s", err.msg);
	assert_non_null(strstr(pfc, "x86_64"));
	assert_non_null(strstr(pfc, "aarch64"));
	free(pfc);

	/* Big-endian architectures cannot share a filter with a little-endian
	 * native one; they are skipped (their syscalls can never reach this
	 * kernel) rather than failing. */
	char *be[] = { "SCMP_ARCH_S390X", "SCMP_ARCH_PPC64", NULL };
	s.architectures = be;
	assert_int_equal(build(&s, &err, NULL), 0);

	/* The common Docker/podman list; native is present even when not listed. */
	char *arches[] = { "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", NULL };
	s.architectures = arches;
	assert_int_equal(build(&s, &err, &pfc), 0);
	assert_non_null(strstr(pfc, "x86_64"));
	free(pfc);

	char *bad_arch[] = { "SCMP_ARCH_X86_64", "SCMP_ARCH_VAX", NULL };
	s.architectures = bad_arch;
	assert_int_equal(build(&s, &err, NULL), -EINVAL);
	assert_string_equal(err.msg, "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_VAX\"");
	s.architectures = NULL;

	if (seccomp_api_get() >= 4) { /* SPEC_ALLOW needs level 4 */
		s.flags = (char **)seccomp_flag_names;
		if (build(&s, &err, NULL) < 0)
			fail_msg("all flags: %s", err.msg);
	}
	char *bad_flag[] = { "SECCOMP_FILTER_FLAG_FOO", NULL };
	s.flags = bad_flag;
	assert_int_equal(build(&s, &err, NULL), -EINVAL);
	assert_string_equal(err.msg, "linux.seccomp.flags[0]: unknown flag \"SECCOMP_FILTER_FLAG_FOO\"");
}

static void test_seccomp_build_errors(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	char *names[] = { "getcwd", NULL };
	struct oci_seccomp_rule rules[] = {
		{ .names = names, .action = "SCMP_ACT_ERRNO" },
		{ .names = names, .action = "SCMP_ACT_TRAP" },
		{ .names = names, .action = "SCMP_ACT_FOO" },
	};
	struct oci_seccomp s = { .default_action = "SCMP_ACT_ALLOW", .syscalls = rules, .n_syscalls = 3 };
	assert_int_equal(build(&s, &err, NULL), -EINVAL);
	assert_string_equal(err.msg, "linux.seccomp.syscalls[2].action: unknown action \"SCMP_ACT_FOO\"");

	s.default_action = "SCMP_ACT_BAR";
	assert_int_equal(build(&s, &err, NULL), -EINVAL);
	assert_string_equal(err.msg, "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_BAR\"");

	s.default_action = NULL;
	assert_int_equal(build(&s, &err, NULL), -EINVAL);
	assert_string_equal(err.msg, "linux.seccomp.defaultAction: missing action");

	s.default_action = "scmp_act_allow";
	assert_int_equal(build(&s, &err, NULL), -EINVAL);

	s.default_action = "SCMP_ACT_NOTIFY";
	assert_int_equal(build(&s, &err, NULL), -ENOTSUP);
	assert_string_equal(err.msg, "linux.seccomp: SCMP_ACT_NOTIFY needs a listenerPath, "
				     "which gureum-runtime does not support yet");
	s.default_action = "SCMP_ACT_ALLOW";
	rules[2].action = "SCMP_ACT_NOTIFY";
	assert_int_equal(build(&s, &err, NULL), -ENOTSUP);

	/* errnoRet with an action that has no errno. */
	rules[2].action = "SCMP_ACT_KILL";
	rules[2].errno_ret.set = true;
	rules[2].errno_ret.v = 5;
	assert_int_equal(build(&s, &err, NULL), -EINVAL);
	assert_string_equal(err.msg, "linux.seccomp.syscalls[2].action: errnoRet is only valid with "
				     "SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_KILL");
	rules[2].errno_ret.set = false;
	assert_int_equal(build(&s, &err, NULL), 0);

	assert_int_equal(build(NULL, &err, NULL), -EINVAL);
}

/* ---- seccomp: real effect --------------------------------------------- */

static int child_seccomp(void)
{
	struct gr_error err = { 0 };
	char *getcwd_names[] = { "getcwd", "no_such_syscall", NULL };
	char *pers[] = { "personality", NULL };
	char *dup3_names[] = { "dup3", NULL };
	char *gp[] = { "getpgid", NULL };
	char *allow[] = { "getpid", NULL };
	struct oci_seccomp_arg pers_arg[] = { { .index = 0, .value = 0xffffffffu, .op = SC_OP_EQ } };
	/* dup3(_, newfd >= 100, flags & O_CLOEXEC) */
	struct oci_seccomp_arg dup3_args[] = {
		{ .index = 1, .value = 100, .op = SC_OP_GE },
		{ .index = 2, .value = O_CLOEXEC, .value_two = O_CLOEXEC, .op = SC_OP_MASKED_EQ },
	};
	struct oci_seccomp_arg gp_args[] = {
		{ .index = 0, .value = 1000001, .op = SC_OP_EQ },
		{ .index = 0, .value = 1000002, .op = SC_OP_EQ },
	};
	struct oci_seccomp_rule rules[] = {
		{ .names = getcwd_names, .action = "SCMP_ACT_ERRNO", .errno_ret = { true, ENOTBLK } },
		{ .names = pers, .action = "SCMP_ACT_ERRNO", .errno_ret = { true, EDOM },
		  .args = pers_arg, .n_args = 1 },
		{ .names = dup3_names, .action = "SCMP_ACT_ERRNO", .errno_ret = { true, EXDEV },
		  .args = dup3_args, .n_args = 2 },
		{ .names = gp, .action = "SCMP_ACT_ERRNO", .errno_ret = { true, EBADFD },
		  .args = gp_args, .n_args = 2 },
		{ .names = allow, .action = "SCMP_ACT_ALLOW" }, /* equals the default: skipped */
	};
	char *arches[] = { "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", NULL };
	char *flags[] = { "SECCOMP_FILTER_FLAG_TSYNC", NULL };
	struct oci_seccomp s = { .default_action = "SCMP_ACT_ALLOW", .syscalls = rules, .n_syscalls = 5,
				 .architectures = arches, .flags = flags };

	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	if (seccomp_apply(&s, &err) < 0) {
		fprintf(stderr, "seccomp_apply: %s\n", err.msg);
		return 1;
	}
	char buf[256];
	errno = 0;
	CHECK(syscall(SYS_getcwd, buf, sizeof(buf)) < 0 && errno == ENOTBLK);
	CHECK(getpid() > 0);
	errno = 0;
	CHECK(personality(0xffffffff) < 0 && errno == EDOM);
	CHECK(personality(PER_LINUX) >= 0);
	errno = 0;
	CHECK(dup3(0, 101, O_CLOEXEC) < 0 && errno == EXDEV);
	CHECK(dup3(0, 101, 0) == 101);  /* flags do not match */
	CHECK(dup3(0, 50, O_CLOEXEC) == 50); /* newfd below 100 */
	close(101);
	close(50);
	errno = 0;
	CHECK(getpgid(1000001) < 0 && errno == EBADFD);
	errno = 0;
	CHECK(getpgid(1000002) < 0 && errno == EBADFD);
	errno = 0;
	CHECK(getpgid(1000003) < 0 && errno == ESRCH);
	CHECK(getpgid(0) >= 0);
	return 0;
}

static void test_seccomp_apply_real(void **state)
{
	(void)state;
	if (seccomp_api_get() < 2) /* no seccomp() syscall (e.g. under valgrind) */
		skip();
	run_in_child(child_seccomp);
}

/* Deny by default, with errno; an allow list keeps the child alive. */
static int child_seccomp_default_deny(void)
{
	struct gr_error err = { 0 };
	/* Generous, so sanitizer runtimes keep working; getppid and getuid are
	 * the ones checked. */
	char *allow[] = { "exit_group", "exit", "write", "writev", "read", "getpid", "gettid", "tgkill",
			  "brk", "mmap", "munmap", "mprotect", "madvise", "mremap", "rt_sigreturn",
			  "rt_sigprocmask", "rt_sigaction", "sigaltstack", "futex", "fstat", "newfstatat",
			  "close", "openat", "readlink", "readlinkat", "prctl", "getrandom", "sched_yield",
			  "clock_gettime", "getrlimit", "prlimit64", "lseek", "pread64", "ioctl", NULL };
	struct oci_seccomp_rule rules[] = { { .names = allow, .action = "SCMP_ACT_ALLOW" } };
	struct oci_seccomp s = { .default_action = "SCMP_ACT_ERRNO", .default_errno_ret = { true, ENOSYS },
				 .syscalls = rules, .n_syscalls = 1 };
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	if (seccomp_apply(&s, &err) < 0) {
		fprintf(stderr, "seccomp_apply: %s\n", err.msg);
		return 1;
	}
	CHECK(getpid() > 0);
	errno = 0;
	CHECK(syscall(SYS_getppid) < 0 && errno == ENOSYS);
	errno = 0;
	CHECK(syscall(SYS_getuid) < 0 && errno == ENOSYS);
	return 0;
}

static void test_seccomp_apply_default_deny(void **state)
{
	(void)state;
	if (seccomp_api_get() < 2)
		skip();
	run_in_child(child_seccomp_default_deny);
}

/* Without no_new_privs and without CAP_SYS_ADMIN, loading fails clearly. */
static int child_seccomp_needs_nnp(void)
{
	struct gr_error err = { 0 };
	uint64_t eff, prm, inh;
	CHECK(capget_v3(&eff, &prm, &inh) == 0);
	CHECK(capset_v3(eff & ~BIT(CAP_SYS_ADMIN), prm, inh) == 0);
	struct oci_seccomp s = { .default_action = "SCMP_ACT_ALLOW" };
	int r = seccomp_apply(&s, &err);
	if (r != -EACCES && r != -EPERM)
		fprintf(stderr, "seccomp_apply: %d %s\n", r, err.msg);
	CHECK(r == -EACCES || r == -EPERM);
	CHECK(strstr(err.msg, "linux.seccomp: loading the filter (the process needs no_new_privs or "
			      "CAP_SYS_ADMIN)") == err.msg);
	return 0;
}

static void test_seccomp_apply_needs_nnp(void **state)
{
	(void)state;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1)
		skip();
	run_in_child(child_seccomp_needs_nnp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caps_from_name),
		cmocka_unit_test(test_caps_list_to_mask),
		cmocka_unit_test(test_caps_last_cap_and_bounding),
		cmocka_unit_test(test_caps_apply_bad_name),
		cmocka_unit_test(test_caps_apply_drops),
		cmocka_unit_test(test_caps_apply_intersects_bounding),
		cmocka_unit_test(test_caps_apply_null),
		cmocka_unit_test(test_caps_apply_cannot_grow),
		cmocka_unit_test(test_rlimit_from_name),
		cmocka_unit_test(test_rlimits_soft_above_hard),
		cmocka_unit_test(test_rlimits_apply),
		cmocka_unit_test(test_rlimits_host_hard_limit),
		cmocka_unit_test(test_personality),
		cmocka_unit_test(test_seccomp_names),
		cmocka_unit_test(test_seccomp_build_every_action),
		cmocka_unit_test(test_seccomp_build_skips),
		cmocka_unit_test(test_seccomp_build_args),
		cmocka_unit_test(test_seccomp_build_arches_and_flags),
		cmocka_unit_test(test_seccomp_build_errors),
		cmocka_unit_test(test_seccomp_apply_real),
		cmocka_unit_test(test_seccomp_apply_default_deny),
		cmocka_unit_test(test_seccomp_apply_needs_nnp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
