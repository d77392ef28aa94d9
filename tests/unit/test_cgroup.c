/* Unit tests for src/container/cgroup.c.
 *
 * Most tests run against fake cgroup trees: a temporary directory holding one
 * plain directory per hierarchy, pre-created knob files, and a fake
 * mountinfo file that points into it. The last test drives the real
 * /sys/fs/cgroup when run as root on a writable cgroup file system and skips
 * otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "container/cgroup.h"

#define SET(opt, val) do { (opt).set = true; (opt).v = (val); } while (0)
#define C1 "/gureum-runtime/c1"

/* ---------------------------------------------------------------- helpers */

static void put(const char *root, const char *rel, const char *content)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	struct gr_error err = { 0 };
	assert_int_equal(gr_mkdir_p(dir, 0755, &err), 0);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static char *get(const char *root, const char *rel)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	char *s = NULL;
	struct gr_error err = { 0 };
	if (gr_read_file(path, &s, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	return s;
}

#define assert_file(root, rel, expected) do { \
		char *_s = get(root, rel); \
		assert_string_equal(_s, expected); \
		free(_s); \
	} while (0)

static bool exists(const char *root, const char *rel)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return access(path, F_OK) == 0;
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/gr-cgroup-mountinfo-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(gr_write_all(fd, text, strlen(text)), 0);
	close(fd);
	return path;
}

static int detect_text(const char *text, struct cgroup_layout *l, struct gr_error *err)
{
	gr_autofree char *p = write_tmp(text);
	int r = cgroup_layout_detect(p, l, err);
	unlink(p);
	return r;
}

static const struct cgroup_v1_hierarchy *find_h(const struct cgroup_layout *l, const char *ctrl)
{
	for (size_t i = 0; i < l->n_v1; i++)
		for (char **c = l->v1[i].controllers; *c; c++)
			if (strcmp(*c, ctrl) == 0)
				return &l->v1[i];
	return NULL;
}

/* -------------------------------------------------------------- fake trees */

struct fake {
	char root[64];
	char mountinfo[96];
	struct cgroup_layout l;
};

/* A hierarchy: directory name under the fake root and super options. */
struct fake_h { const char *dir, *opts; };

static struct fake *fake_new(const struct fake_h *h, const char *unified_ctrls)
{
	struct fake *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/gr-cgroup-test-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	char mi[8192] = "22 1 0:21 / / rw,relatime - ext4 /dev/vda1 rw\n";
	size_t n = strlen(mi);
	int id = 30;
	for (; h && h->dir; h++, id++) {
		n += (size_t)snprintf(mi + n, sizeof(mi) - n,
				      "%d 22 0:%d / %s/%s rw,nosuid,nodev,noexec,relatime shared:%d - cgroup cgroup %s\n",
				      id, id, f->root, h->dir, id, h->opts);
		char rel[128];
		snprintf(rel, sizeof(rel), "%s/cgroup.procs", h->dir);
		put(f->root, rel, "");
	}
	if (unified_ctrls) {
		n += (size_t)snprintf(mi + n, sizeof(mi) - n,
				      "%d 22 0:%d / %s/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
				      id, id, f->root);
		put(f->root, "unified/cgroup.controllers", unified_ctrls);
		put(f->root, "unified/cgroup.subtree_control", "");
		put(f->root, "unified/cgroup.procs", "");
	}
	snprintf(f->mountinfo, sizeof(f->mountinfo), "%s/mountinfo", f->root);
	put(f->root, "mountinfo", mi);
	struct gr_error err = { 0 };
	if (cgroup_layout_detect(f->mountinfo, &f->l, &err) < 0)
		fail_msg("%s", err.msg);
	return f;
}

/* Pre-creates knob files (empty) under <root>/<dir>/<cg>. */
static void knobs(struct fake *f, const char *dir, const char *cg, const char *const *files)
{
	for (; *files; files++) {
		char rel[256];
		snprintf(rel, sizeof(rel), "%s%s/%s", dir, cg, *files);
		put(f->root, rel, "");
	}
}

static const char *const v1_memory_knobs[] = {
	"cgroup.procs", "memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes",
	"memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes", "memory.swappiness",
	"memory.oom_control", "memory.use_hierarchy", NULL
};
static const char *const v1_cpu_knobs[] = {
	"cgroup.procs", "cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.cfs_burst_us",
	"cpu.rt_runtime_us", "cpu.rt_period_us", "cpu.idle", NULL
};
static const char *const v1_cpuset_knobs[] = { "cgroup.procs", "cpuset.cpus", "cpuset.mems", NULL };
static const char *const v1_pids_knobs[] = { "cgroup.procs", "pids.max", NULL };
static const char *const v1_blkio_knobs[] = {
	"cgroup.procs", "blkio.weight", "blkio.leaf_weight", "blkio.weight_device", "blkio.leaf_weight_device",
	"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device", "blkio.throttle.read_iops_device",
	"blkio.throttle.write_iops_device", NULL
};
static const char *const v1_hugetlb_knobs[] = { "cgroup.procs", "hugetlb.2MB.limit_in_bytes", NULL };
static const char *const v1_devices_knobs[] = { "cgroup.procs", "devices.allow", "devices.deny", NULL };
static const char *const v1_net_knobs[] = { "cgroup.procs", "net_cls.classid", "net_prio.ifpriomap", NULL };
static const char *const v1_freezer_knobs[] = { "cgroup.procs", "freezer.state", NULL };
static const char *const procs_only[] = { "cgroup.procs", NULL };

static const struct fake_h v1_full[] = {
	{ "cpu,cpuacct", "rw,cpu,cpuacct" },
	{ "cpuset", "rw,cpuset" },
	{ "memory", "rw,memory" },
	{ "devices", "rw,devices" },
	{ "freezer", "rw,freezer" },
	{ "blkio", "rw,blkio" },
	{ "pids", "rw,pids" },
	{ "hugetlb", "rw,hugetlb" },
	{ "net_cls,net_prio", "rw,net_cls,net_prio" },
	{ "systemd", "rw,xattr,name=systemd" },
	{ NULL, NULL },
};

/* The layout of the development hosts: v1 controllers, cgroup2 with hugetlb. */
static const struct fake_h hybrid_v1[] = {
	{ "cpu", "rw,cpu" },
	{ "cpuacct", "rw,cpuacct" },
	{ "cpuset", "rw,cpuset" },
	{ "memory", "rw,memory" },
	{ "devices", "rw,devices" },
	{ "freezer", "rw,freezer" },
	{ "blkio", "rw,blkio" },
	{ "pids", "rw,pids" },
	{ "systemd", "rw,name=systemd" },
	{ NULL, NULL },
};

static void fake_v1_knobs(struct fake *f)
{
	/* cpuset: only the root has values; the intermediate level is empty. */
	put(f->root, "cpuset/cpuset.cpus", "0-1\n");
	put(f->root, "cpuset/cpuset.mems", "0\n");
	knobs(f, "cpuset", "/gureum-runtime", v1_cpuset_knobs);
	knobs(f, "cpuset", C1, v1_cpuset_knobs);
	knobs(f, "cpu,cpuacct", C1, v1_cpu_knobs);
	knobs(f, "memory", C1, v1_memory_knobs);
	knobs(f, "devices", C1, v1_devices_knobs);
	knobs(f, "freezer", C1, v1_freezer_knobs);
	knobs(f, "blkio", C1, v1_blkio_knobs);
	knobs(f, "pids", C1, v1_pids_knobs);
	knobs(f, "hugetlb", C1, v1_hugetlb_knobs);
	knobs(f, "net_cls,net_prio", C1, v1_net_knobs);
	knobs(f, "systemd", C1, procs_only);
}

static int setup_v1(void **state)
{
	struct fake *f = fake_new(v1_full, NULL);
	fake_v1_knobs(f);
	*state = f;
	return 0;
}

static const char *const v2_knobs[] = {
	"cgroup.procs", "cgroup.freeze", "cgroup.events", "cgroup.subtree_control",
	"memory.max", "memory.low", "memory.swap.max", "memory.high", "memory.current",
	"cpu.weight", "cpu.max", "cpu.max.burst", "cpu.idle", "pids.max", "io.weight", "io.max",
	"hugetlb.2MB.max", "hugetlb.2MB.rsvd.max", NULL
};

static int setup_v2(void **state)
{
	struct fake *f = fake_new(NULL, "cpu memory pids io hugetlb\n");
	put(f->root, "unified/gureum-runtime/cgroup.controllers", "cpu memory pids io hugetlb\n");
	put(f->root, "unified/gureum-runtime/cgroup.subtree_control", "");
	knobs(f, "unified", C1, v2_knobs);
	put(f->root, "unified" C1 "/cgroup.controllers", "cpu memory pids io hugetlb\n");
	put(f->root, "unified" C1 "/cgroup.events", "populated 0\nfrozen 0\n");
	*state = f;
	return 0;
}

static int setup_hybrid(void **state)
{
	struct fake *f = fake_new(hybrid_v1, "hugetlb\n");
	put(f->root, "cpuset/cpuset.cpus", "0-1\n");
	put(f->root, "cpuset/cpuset.mems", "0\n");
	knobs(f, "cpuset", "/gureum-runtime", v1_cpuset_knobs);
	knobs(f, "cpuset", C1, v1_cpuset_knobs);
	knobs(f, "cpu", C1, v1_cpu_knobs);
	knobs(f, "cpuacct", C1, procs_only);
	knobs(f, "memory", C1, v1_memory_knobs);
	knobs(f, "devices", C1, v1_devices_knobs);
	knobs(f, "freezer", C1, v1_freezer_knobs);
	knobs(f, "blkio", C1, v1_blkio_knobs);
	knobs(f, "pids", C1, v1_pids_knobs);
	knobs(f, "systemd", C1, procs_only);
	put(f->root, "unified/gureum-runtime/cgroup.controllers", "hugetlb\n");
	put(f->root, "unified/gureum-runtime/cgroup.subtree_control", "");
	knobs(f, "unified", C1, v2_knobs);
	put(f->root, "unified" C1 "/cgroup.controllers", "hugetlb\n");
	*state = f;
	return 0;
}

static int teardown_fake(void **state)
{
	struct fake *f = *state;
	if (f) {
		struct gr_error err = { 0 };
		cgroup_layout_free(&f->l);
		gr_rm_rf(f->root, &err);
		free(f);
	}
	return 0;
}

/* --------------------------------------------------------------- mountinfo */

static const char host_hybrid_mountinfo[] =
	"26 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
	"34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
	"37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
	"38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
	"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static void test_mountinfo_hybrid(void **state)
{
	(void)state;
	struct cgroup_layout l;
	struct gr_error err = { 0 };
	assert_int_equal(detect_text(host_hybrid_mountinfo, &l, &err), 0);
	assert_int_equal(l.mode, CGROUP_MODE_HYBRID);
	assert_string_equal(l.unified_mount, "/sys/fs/cgroup/unified");
	assert_int_equal(l.n_v1, 9);
	assert_string_equal(find_h(&l, "memory")->mount, "/sys/fs/cgroup/memory");
	assert_string_equal(find_h(&l, "name=systemd")->mount, "/sys/fs/cgroup/systemd");
	assert_null(find_h(&l, "hugetlb"));
	cgroup_layout_free(&l);
	assert_int_equal(l.n_v1, 0);
	assert_null(l.v1);
}

static void test_mountinfo_v1(void **state)
{
	(void)state;
	static const char text[] =
		"25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755\n"
		"26 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:5 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd\n"
		"29 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct\n"
		"30 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:11 - cgroup cgroup rw,net_cls,net_prio\n"
		"31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory\n"
		"32 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid shared:13 - cgroup cgroup rw,cpuset,clone_children\n"
		/* the same hierarchies again, bind-mounted into a container */
		"90 89 0:29 /docker/abc /var/lib/x/sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
		"91 89 0:27 / /var/lib/x/sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n";
	struct cgroup_layout l;
	struct gr_error err = { 0 };
	assert_int_equal(detect_text(text, &l, &err), 0);
	assert_int_equal(l.mode, CGROUP_MODE_V1);
	assert_null(l.unified_mount);
	assert_int_equal(l.n_v1, 5);
	const struct cgroup_v1_hierarchy *cpu = find_h(&l, "cpu");
	assert_non_null(cpu);
	assert_ptr_equal(cpu, find_h(&l, "cpuacct"));
	assert_string_equal(cpu->mount, "/sys/fs/cgroup/cpu,cpuacct");
	assert_string_equal(cpu->controllers[0], "cpu");
	assert_string_equal(cpu->controllers[1], "cpuacct");
	assert_null(cpu->controllers[2]);
	const struct cgroup_v1_hierarchy *sd = find_h(&l, "name=systemd");
	assert_non_null(sd);
	assert_null(sd->controllers[1]); /* xattr, release_agent= are options */
	assert_null(find_h(&l, "clone_children"));
	assert_string_equal(find_h(&l, "memory")->mount, "/sys/fs/cgroup/memory");
	assert_string_equal(find_h(&l, "net_prio")->mount, "/sys/fs/cgroup/net_cls,net_prio");
	cgroup_layout_free(&l);
}

static void test_mountinfo_prefers_root_slash(void **state)
{
	(void)state;
	static const char text[] =
		"40 1 0:29 /docker/abc /a rw - cgroup cgroup rw,memory\n"
		"41 1 0:29 / /b rw - cgroup cgroup rw,memory\n"
		"42 1 0:29 / /c rw - cgroup cgroup rw,memory\n"
		"43 1 0:40 /sub /u1 rw - cgroup2 cgroup2 rw\n"
		"44 1 0:40 / /u2 rw - cgroup2 cgroup2 rw\n"
		"45 1 0:40 / /u3 rw - cgroup2 cgroup2 rw\n";
	struct cgroup_layout l;
	struct gr_error err = { 0 };
	assert_int_equal(detect_text(text, &l, &err), 0);
	assert_int_equal(l.mode, CGROUP_MODE_HYBRID);
	assert_int_equal(l.n_v1, 1);
	assert_string_equal(l.v1[0].mount, "/b");
	assert_string_equal(l.unified_mount, "/u2");
	cgroup_layout_free(&l);
}

static void test_mountinfo_v2(void **state)
{
	(void)state;
	struct cgroup_layout l;
	struct gr_error err = { 0 };
	assert_int_equal(detect_text("30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - "
				     "cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
				     "99 30 0:26 / /run/other rw - cgroup2 cgroup2 rw\n", &l, &err), 0);
	assert_int_equal(l.mode, CGROUP_MODE_V2);
	assert_string_equal(l.unified_mount, "/sys/fs/cgroup");
	assert_int_equal(l.n_v1, 0);
	cgroup_layout_free(&l);

	/* A lone named v1 hierarchy (no controllers) does not make a hybrid host. */
	assert_int_equal(detect_text("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
				     "31 30 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n", &l, &err), 0);
	assert_int_equal(l.mode, CGROUP_MODE_V2);
	assert_int_equal(l.n_v1, 0);
	cgroup_layout_free(&l);
}

static void test_mountinfo_escapes_and_optional_fields(void **state)
{
	(void)state;
	struct cgroup_layout l;
	struct gr_error err = { 0 };
	assert_int_equal(detect_text("31 30 0:27 / /my\\040cgroups/mem rw shared:3 master:2 - cgroup cgroup rw,memory\n",
				     &l, &err), 0);
	assert_int_equal(l.mode, CGROUP_MODE_V1);
	assert_string_equal(l.v1[0].mount, "/my cgroups/mem");
	cgroup_layout_free(&l);
}

static void test_mountinfo_none(void **state)
{
	(void)state;
	struct cgroup_layout l;
	struct gr_error err = { 0 };
	gr_autofree char *p = write_tmp("22 1 0:21 / / rw - ext4 /dev/vda1 rw\n");
	assert_int_equal(cgroup_layout_detect(p, &l, &err), -ENOENT);
	char want[256];
	snprintf(want, sizeof(want),
		 "no cgroup file system is mounted (according to %s); mount cgroup2 on /sys/fs/cgroup", p);
	assert_string_equal(err.msg, want);
	unlink(p);
	assert_int_equal(cgroup_layout_detect("/nonexistent/mountinfo", &l, &err), -ENOENT);
	assert_string_equal(err.msg, "cannot open /nonexistent/mountinfo: No such file or directory");
}

static void test_mode_names(void **state)
{
	(void)state;
	assert_string_equal(cgroup_mode_name(CGROUP_MODE_V1), "v1");
	assert_string_equal(cgroup_mode_name(CGROUP_MODE_V2), "v2");
	assert_string_equal(cgroup_mode_name(CGROUP_MODE_HYBRID), "hybrid");
}

/* ------------------------------------------------------------- paths, math */

static void test_path_resolve(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	char *p = NULL;
	assert_int_equal(cgroup_path_resolve(NULL, "c1", &p, &err), 0);
	assert_string_equal(p, "/gureum-runtime/c1");
	free(p);
	assert_int_equal(cgroup_path_resolve("", "c2", &p, &err), 0);
	assert_string_equal(p, "/gureum-runtime/c2");
	free(p);
	assert_int_equal(cgroup_path_resolve("a/b", "c", &p, &err), 0);
	assert_string_equal(p, "/a/b");
	free(p);
	assert_int_equal(cgroup_path_resolve("//a//./b/", "c", &p, &err), 0);
	assert_string_equal(p, "/a/b");
	free(p);
	assert_int_equal(cgroup_path_resolve("/machine/x:y", "c", &p, &err), 0);
	assert_string_equal(p, "/machine/x:y");
	free(p);

	assert_int_equal(cgroup_path_resolve("/a/../b", "c", &p, &err), -EINVAL);
	assert_null(p);
	assert_string_equal(err.msg, "linux.cgroupsPath: \"/a/../b\" must not contain \"..\"");
	assert_int_equal(cgroup_path_resolve("..", "c", &p, &err), -EINVAL);
	assert_int_equal(cgroup_path_resolve("/", "c", &p, &err), -EINVAL);
	assert_string_equal(err.msg, "linux.cgroupsPath: \"/\" is the root cgroup; give the container a cgroup of its own");
	assert_int_equal(cgroup_path_resolve("machine.slice:libpod:x", "c", &p, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "linux.cgroupsPath: systemd cgroup paths (\"machine.slice:libpod:x\") need the systemd "
			    "cgroup manager, which gureum-runtime does not support; use --cgroup-manager cgroupfs");
	assert_int_equal(cgroup_path_resolve(NULL, "../x", &p, &err), -EINVAL);
	assert_int_equal(cgroup_path_resolve(NULL, NULL, &p, &err), -EINVAL);
}

static void test_conversions(void **state)
{
	(void)state;
	assert_int_equal(cgroup_shares_to_weight(0), 0);
	assert_int_equal(cgroup_shares_to_weight(2), 1);
	assert_int_equal(cgroup_shares_to_weight(1024), 39);
	assert_int_equal(cgroup_shares_to_weight(262144), 10000);
	assert_int_equal(cgroup_shares_to_weight(1), 1);          /* clamped to the kernel's range */
	assert_int_equal(cgroup_shares_to_weight(1000000), 10000);
	assert_int_equal(cgroup_blkio_to_io_weight(0), 0);
	assert_int_equal(cgroup_blkio_to_io_weight(10), 1);
	assert_int_equal(cgroup_blkio_to_io_weight(500), 4950);
	assert_int_equal(cgroup_blkio_to_io_weight(1000), 10000);
	assert_int_equal(cgroup_blkio_to_io_weight(5), 1);
}

/* ---------------------------------------------------------------------- v1 */

static void test_v1_create(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	assert_false(cgroup_exists(&f->l, "/other"));
	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);
	assert_true(cgroup_exists(&f->l, C1));
	for (const struct fake_h *h = v1_full; h->dir; h++) {
		char rel[128];
		snprintf(rel, sizeof(rel), "%s" C1, h->dir);
		assert_true(exists(f->root, rel));
	}
	/* cpuset copied down from the root through the empty intermediate level */
	assert_file(f->root, "cpuset/gureum-runtime/cpuset.cpus", "0-1");
	assert_file(f->root, "cpuset/gureum-runtime/cpuset.mems", "0");
	assert_file(f->root, "cpuset" C1 "/cpuset.cpus", "0-1");
	assert_file(f->root, "cpuset" C1 "/cpuset.mems", "0");

	/* a non-empty level in between is what gets copied further down */
	put(f->root, "cpuset/gureum-runtime/cpuset.cpus", "1\n");
	put(f->root, "cpuset" C1 "/cpuset.cpus", "");
	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);
	assert_file(f->root, "cpuset" C1 "/cpuset.cpus", "1");

	assert_int_equal(cgroup_enter(&f->l, C1, 4242, &err), 0);
	assert_file(f->root, "memory" C1 "/cgroup.procs", "4242");
	assert_file(f->root, "systemd" C1 "/cgroup.procs", "4242");
	assert_file(f->root, "net_cls,net_prio" C1 "/cgroup.procs", "4242");

	assert_int_equal(cgroup_create(&f->l, "/a/../b", &err), -EINVAL);
	assert_int_equal(cgroup_create(&f->l, "/", &err), -EINVAL);
}

static void test_v1_apply(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	struct oci_device_rule devs[] = {
		{ .allow = false, .type = 'a', .major = -1, .minor = -1, .access = (char *)"rwm" },
		{ .allow = true, .type = 'c', .major = 1, .minor = 3, .access = NULL },
		{ .allow = true, .type = 'c', .major = 136, .minor = -1, .access = (char *)"rw" },
	};
	struct oci_weight_device wd[1] = { { .major = 8, .minor = 0 } };
	SET(wd[0].weight, 500);
	SET(wd[0].leaf_weight, 300);
	struct oci_throttle_device rbps = { 8, 0, 1048576 }, wbps = { 8, 16, 2097152 }, riops = { 8, 0, 100 },
				   wiops = { 8, 0, 200 };
	struct oci_hugepage_limit hp = { (char *)"2MB", 4194304 };
	struct oci_kv prio = { (char *)"eth0", (char *)"5" };
	struct oci_resources r = { 0 };
	r.devices = devs;
	r.n_devices = 3;
	SET(r.memory.limit, 268435456);
	SET(r.memory.reservation, 134217728);
	SET(r.memory.swap, 536870912);
	SET(r.memory.kernel, 67108864);
	SET(r.memory.kernel_tcp, 16777216);
	SET(r.memory.swappiness, 10);
	SET(r.memory.disable_oom_killer, true);
	SET(r.memory.use_hierarchy, true);
	SET(r.cpu.shares, 512);
	SET(r.cpu.quota, 50000);
	SET(r.cpu.period, 100000);
	SET(r.cpu.burst, 10000);
	SET(r.cpu.realtime_runtime, 950);
	SET(r.cpu.realtime_period, 1000);
	SET(r.cpu.idle, 1);
	r.cpu.cpus = (char *)"1";
	r.cpu.mems = (char *)"0";
	SET(r.pids.limit, 64);
	SET(r.blkio.weight, 300);
	SET(r.blkio.leaf_weight, 200);
	r.blkio.weight_device = wd;
	r.blkio.n_weight_device = 1;
	r.blkio.throttle_read_bps = &rbps;
	r.blkio.n_throttle_read_bps = 1;
	r.blkio.throttle_write_bps = &wbps;
	r.blkio.n_throttle_write_bps = 1;
	r.blkio.throttle_read_iops = &riops;
	r.blkio.n_throttle_read_iops = 1;
	r.blkio.throttle_write_iops = &wiops;
	r.blkio.n_throttle_write_iops = 1;
	r.hugepage_limits = &hp;
	r.n_hugepage_limits = 1;
	SET(r.network.class_id, 0x100001);
	r.network.priorities = &prio;
	r.network.n_priorities = 1;

	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);
	int q = cgroup_apply(&f->l, C1, &r, &err);
	if (q < 0)
		fail_msg("%s", err.msg);
	assert_file(f->root, "memory" C1 "/memory.limit_in_bytes", "268435456");
	assert_file(f->root, "memory" C1 "/memory.soft_limit_in_bytes", "134217728");
	assert_file(f->root, "memory" C1 "/memory.memsw.limit_in_bytes", "536870912");
	assert_file(f->root, "memory" C1 "/memory.kmem.limit_in_bytes", "67108864");
	assert_file(f->root, "memory" C1 "/memory.kmem.tcp.limit_in_bytes", "16777216");
	assert_file(f->root, "memory" C1 "/memory.swappiness", "10");
	assert_file(f->root, "memory" C1 "/memory.oom_control", "1");
	assert_file(f->root, "memory" C1 "/memory.use_hierarchy", "1");
	assert_file(f->root, "cpu,cpuacct" C1 "/cpu.shares", "512");
	assert_file(f->root, "cpu,cpuacct" C1 "/cpu.cfs_quota_us", "50000");
	assert_file(f->root, "cpu,cpuacct" C1 "/cpu.cfs_period_us", "100000");
	assert_file(f->root, "cpu,cpuacct" C1 "/cpu.cfs_burst_us", "10000");
	assert_file(f->root, "cpu,cpuacct" C1 "/cpu.rt_runtime_us", "950");
	assert_file(f->root, "cpu,cpuacct" C1 "/cpu.rt_period_us", "1000");
	assert_file(f->root, "cpu,cpuacct" C1 "/cpu.idle", "1");
	assert_file(f->root, "cpuset" C1 "/cpuset.cpus", "1");
	assert_file(f->root, "cpuset" C1 "/cpuset.mems", "0");
	assert_file(f->root, "pids" C1 "/pids.max", "64");
	assert_file(f->root, "blkio" C1 "/blkio.weight", "300");
	assert_file(f->root, "blkio" C1 "/blkio.leaf_weight", "200");
	assert_file(f->root, "blkio" C1 "/blkio.weight_device", "8:0 500");
	assert_file(f->root, "blkio" C1 "/blkio.leaf_weight_device", "8:0 300");
	assert_file(f->root, "blkio" C1 "/blkio.throttle.read_bps_device", "8:0 1048576");
	assert_file(f->root, "blkio" C1 "/blkio.throttle.write_bps_device", "8:16 2097152");
	assert_file(f->root, "blkio" C1 "/blkio.throttle.read_iops_device", "8:0 100");
	assert_file(f->root, "blkio" C1 "/blkio.throttle.write_iops_device", "8:0 200");
	assert_file(f->root, "hugetlb" C1 "/hugetlb.2MB.limit_in_bytes", "4194304");
	/* One write per rule through one descriptor per file (a plain file
	 * appends them): "a *:* rwm" went to deny, then two allows in order. */
	assert_file(f->root, "devices" C1 "/devices.deny", "a *:* rwm");
	assert_file(f->root, "devices" C1 "/devices.allow", "c 1:3 rwmc 136:* rw");
	assert_file(f->root, "net_cls,net_prio" C1 "/net_cls.classid", "1048577");
	assert_file(f->root, "net_cls,net_prio" C1 "/net_prio.ifpriomap", "eth0 5");

	/* default access is rwm */
	r = (struct oci_resources){ 0 };
	r.devices = &devs[1];
	r.n_devices = 1;
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);
	assert_file(f->root, "devices" C1 "/devices.allow", "c 1:3 rwm");

	/* pids limit <= 0 is unlimited; unlimited memory unlimits swap too (as runc) */
	r = (struct oci_resources){ 0 };
	SET(r.pids.limit, 0);
	SET(r.memory.limit, -1);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);
	assert_file(f->root, "pids" C1 "/pids.max", "max");
	assert_file(f->root, "memory" C1 "/memory.limit_in_bytes", "-1");
	assert_file(f->root, "memory" C1 "/memory.memsw.limit_in_bytes", "-1");
}

static void test_v1_deprecated_kmem_skipped(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/memory" C1 "/memory.kmem.limit_in_bytes", f->root);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/memory" C1 "/memory.kmem.tcp.limit_in_bytes", f->root);
	assert_int_equal(unlink(path), 0);
	struct oci_resources r = { 0 };
	SET(r.memory.kernel, 67108864);
	SET(r.memory.kernel_tcp, 1048576);
	SET(r.memory.limit, 1048576);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);
	assert_file(f->root, "memory" C1 "/memory.limit_in_bytes", "1048576");
	assert_false(exists(f->root, "memory" C1 "/memory.kmem.limit_in_bytes"));
}

static void test_v1_errors(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	struct oci_resources r = { 0 };
	char want[1024];

	/* unified keys need cgroup v2 */
	struct oci_kv kv = { (char *)"memory.high", (char *)"1G" };
	r.unified = &kv;
	r.n_unified = 1;
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg, "linux.resources.unified: requires cgroup v2 (this host has cgroup v1)");

	/* a write the kernel refuses: field, value and file are named */
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/memory" C1 "/memory.limit_in_bytes", f->root);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/dev/full", path), 0);
	r = (struct oci_resources){ 0 };
	SET(r.memory.limit, 100);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -ENOSPC);
	snprintf(want, sizeof(want),
		 "linux.resources.memory.limit: cannot write \"100\" to %s: No space left on device", path);
	assert_string_equal(err.msg, want);

	/* a knob that does not exist: the file is named */
	snprintf(path, sizeof(path), "%s/cpu,cpuacct" C1 "/cpu.cfs_burst_us", f->root);
	assert_int_equal(unlink(path), 0);
	r = (struct oci_resources){ 0 };
	SET(r.cpu.burst, 1000);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -ENOENT);
	snprintf(want, sizeof(want), "linux.resources.cpu.burst: cannot open %s: No such file or directory", path);
	assert_string_equal(err.msg, want);

	/* swap without swap accounting */
	snprintf(path, sizeof(path), "%s/memory" C1 "/memory.memsw.limit_in_bytes", f->root);
	assert_int_equal(unlink(path), 0);
	r = (struct oci_resources){ 0 };
	SET(r.memory.swap, 1000000);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	snprintf(want, sizeof(want),
		 "linux.resources.memory.swap: this host has no swap accounting (%s/memory" C1
		 "/memory.memsw.limit_in_bytes is missing); boot with swapaccount=1 or leave memory.swap unset", f->root);
	assert_string_equal(err.msg, want);
	/* ... but swap -1 (unlimited) is fine */
	SET(r.memory.swap, -1);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);

	/* swappiness range */
	r = (struct oci_resources){ 0 };
	SET(r.memory.swappiness, 150);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EINVAL);
	assert_string_equal(err.msg, "linux.resources.memory.swappiness: 150 is out of range (0-100)");

	/* bad device rule */
	struct oci_device_rule bad = { .allow = true, .type = 'c', .major = 1, .minor = 3, .access = (char *)"rwx" };
	r = (struct oci_resources){ 0 };
	r.devices = &bad;
	r.n_devices = 1;
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "linux.resources.devices[0].access: invalid access \"rwx\" (expected a subset of \"rwm\")");

	/* page size the host does not have */
	struct oci_hugepage_limit hp = { (char *)"1GB", 1073741824 };
	r = (struct oci_resources){ 0 };
	r.hugepage_limits = &hp;
	r.n_hugepage_limits = 1;
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	snprintf(want, sizeof(want),
		 "linux.resources.hugepageLimits[0].pageSize: this host has no 1GB huge pages "
		 "(%s/hugetlb" C1 "/hugetlb.1GB.limit_in_bytes is missing)", f->root);
	assert_string_equal(err.msg, want);
}

/* A v1 host with only cpu and memory hierarchies. */
static const struct fake_h v1_small[] = {
	{ "cpu", "rw,cpu" },
	{ "memory", "rw,memory" },
	{ NULL, NULL },
};

static void test_v1_missing_controllers(void **state)
{
	(void)state;
	struct fake *f = fake_new(v1_small, NULL);
	*state = f;
	knobs(f, "memory", C1, v1_memory_knobs);
	knobs(f, "cpu", C1, v1_cpu_knobs);
	struct gr_error err = { 0 };
	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);

	struct oci_resources r = { 0 };
	SET(r.pids.limit, 10);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg,
			    "linux.resources.pids.limit: this host has no pids cgroup controller "
			    "(no cgroup v1 hierarchy carries it)");

	r = (struct oci_resources){ 0 };
	r.cpu.cpus = (char *)"0";
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg, "linux.resources.cpu.cpus: this host has no cpuset cgroup controller "
				     "(no cgroup v1 hierarchy carries it)");

	struct oci_device_rule d = { .allow = true, .type = 'c', .major = 1, .minor = 3 };
	r = (struct oci_resources){ 0 };
	r.devices = &d;
	r.n_devices = 1;
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg, "linux.resources.devices: this host has no devices cgroup controller");

	/* blockIO is skipped without a blkio controller */
	struct oci_throttle_device t = { 8, 0, 1000 };
	r = (struct oci_resources){ 0 };
	SET(r.blkio.weight, 500);
	r.blkio.throttle_read_bps = &t;
	r.blkio.n_throttle_read_bps = 1;
	SET(r.memory.limit, 4096000);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);
	assert_file(f->root, "memory" C1 "/memory.limit_in_bytes", "4096000");
}

/* ---------------------------------------------------------------------- v2 */

static void test_v2_create(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	assert_int_equal(f->l.mode, CGROUP_MODE_V2);
	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);
	assert_true(cgroup_exists(&f->l, C1));
	/* root down to the parent; the cgroup's own subtree_control is left alone */
	assert_file(f->root, "unified/cgroup.subtree_control", "+cpu +memory +pids +io +hugetlb");
	assert_file(f->root, "unified/gureum-runtime/cgroup.subtree_control", "+cpu +memory +pids +io +hugetlb");
	assert_file(f->root, "unified" C1 "/cgroup.subtree_control", "");
	/* only what the parent offers */
	put(f->root, "unified/gureum-runtime/cgroup.controllers", "cpuset pids rdma\n");
	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);
	assert_file(f->root, "unified/gureum-runtime/cgroup.subtree_control", "+pids +cpuset");

	assert_int_equal(cgroup_enter(&f->l, C1, 77, &err), 0);
	assert_file(f->root, "unified" C1 "/cgroup.procs", "77");
}

static void test_v2_apply(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	struct oci_weight_device wd[2] = { { .major = 8, .minor = 0 }, { .major = 8, .minor = 16 } };
	SET(wd[0].weight, 500);
	SET(wd[1].leaf_weight, 10); /* leaf weights have no v2 counterpart */
	struct oci_throttle_device rbps = { 8, 0, 1048576 }, wiops = { 8, 0, 0 };
	struct oci_hugepage_limit hp = { (char *)"2MB", 4194304 };
	struct oci_kv uni = { (char *)"memory.high", (char *)"200000000" };
	struct oci_device_rule dev = { .allow = false, .type = 'a', .major = -1, .minor = -1 };
	struct oci_resources r = { 0 };
	SET(r.memory.limit, 268435456);
	SET(r.memory.reservation, 134217728);
	SET(r.memory.swap, 536870912);
	SET(r.memory.swappiness, 60);            /* ignored on v2 */
	SET(r.memory.kernel, 1000000);           /* ignored on v2 */
	SET(r.memory.disable_oom_killer, true);  /* ignored on v2 */
	SET(r.cpu.shares, 1024);
	SET(r.cpu.quota, 50000);
	SET(r.cpu.period, 200000);
	SET(r.cpu.burst, 1000);
	SET(r.cpu.idle, 0);
	SET(r.pids.limit, 100);
	SET(r.blkio.weight, 500);
	SET(r.blkio.leaf_weight, 100);
	r.blkio.weight_device = wd;
	r.blkio.n_weight_device = 2;
	r.blkio.throttle_read_bps = &rbps;
	r.blkio.n_throttle_read_bps = 1;
	r.blkio.throttle_write_iops = &wiops;
	r.blkio.n_throttle_write_iops = 1;
	r.hugepage_limits = &hp;
	r.n_hugepage_limits = 1;
	r.unified = &uni;
	r.n_unified = 1;
	r.devices = &dev;     /* a fake tree is not cgroup2: the eBPF filter is not attached */
	r.n_devices = 1;

	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);
	int q = cgroup_apply(&f->l, C1, &r, &err);
	if (q < 0)
		fail_msg("%s", err.msg);
	assert_file(f->root, "unified" C1 "/memory.max", "268435456");
	assert_file(f->root, "unified" C1 "/memory.low", "134217728");
	assert_file(f->root, "unified" C1 "/memory.swap.max", "268435456");
	assert_file(f->root, "unified" C1 "/cpu.weight", "39");
	assert_file(f->root, "unified" C1 "/cpu.max", "50000 200000");
	assert_file(f->root, "unified" C1 "/cpu.max.burst", "1000");
	assert_file(f->root, "unified" C1 "/cpu.idle", "0");
	assert_file(f->root, "unified" C1 "/pids.max", "100");
	assert_file(f->root, "unified" C1 "/io.weight", "8:0 4950"); /* last write; "default 4950" before */
	assert_file(f->root, "unified" C1 "/io.max", "8:0 wiops=max");
	assert_file(f->root, "unified" C1 "/hugetlb.2MB.max", "4194304");
	assert_file(f->root, "unified" C1 "/hugetlb.2MB.rsvd.max", "4194304");
	assert_file(f->root, "unified" C1 "/memory.high", "200000000");

	/* weight alone, unlimited values, quota without period */
	r = (struct oci_resources){ 0 };
	SET(r.blkio.weight, 1000);
	SET(r.memory.limit, -1);
	SET(r.cpu.quota, -1);
	SET(r.pids.limit, -1);
	SET(r.memory.reservation, -1);
	r.blkio.throttle_read_bps = &rbps;
	r.blkio.n_throttle_read_bps = 1;
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);
	assert_file(f->root, "unified" C1 "/io.weight", "default 10000");
	assert_file(f->root, "unified" C1 "/io.max", "8:0 rbps=1048576");
	assert_file(f->root, "unified" C1 "/memory.max", "max");
	assert_file(f->root, "unified" C1 "/memory.swap.max", "max");
	assert_file(f->root, "unified" C1 "/memory.low", "max");
	assert_file(f->root, "unified" C1 "/cpu.max", "max 100000");
	assert_file(f->root, "unified" C1 "/pids.max", "max");

	/* swap -1 with a limit */
	r = (struct oci_resources){ 0 };
	SET(r.memory.limit, 1000000);
	SET(r.memory.swap, -1);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);
	assert_file(f->root, "unified" C1 "/memory.max", "1000000");
	assert_file(f->root, "unified" C1 "/memory.swap.max", "max");
}

static void test_v2_errors(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	struct oci_resources r = { 0 };
	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);

	SET(r.memory.limit, 2000);
	SET(r.memory.swap, 1000);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EINVAL);
	assert_string_equal(err.msg, "linux.resources.memory.swap: 1000 is below memory.limit 2000 "
				     "(swap is the limit of memory plus swap)");

	r = (struct oci_resources){ 0 };
	SET(r.memory.swap, 1000);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EINVAL);
	assert_string_equal(err.msg, "linux.resources.memory.swap: 1000 needs a memory limit (memory.limit) as well");

	r = (struct oci_resources){ 0 };
	SET(r.cpu.realtime_runtime, 1000);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg, "linux.resources.cpu.realtimeRuntime: real-time CPU limits need cgroup v1 "
				     "(cgroup v2 has no cpu.rt_runtime_us)");

	/* cpuset is not in this cgroup's cgroup.controllers */
	r = (struct oci_resources){ 0 };
	r.cpu.mems = (char *)"0";
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg, "linux.resources.cpu.mems: the cpuset cgroup controller is not available to "
				     "cgroup /gureum-runtime/c1 (cgroup v2 controllers: cpu memory pids io hugetlb)");

	r = (struct oci_resources){ 0 };
	SET(r.network.class_id, 1);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg, "linux.resources.network.classID: the net_cls cgroup controller is not "
				     "available to cgroup /gureum-runtime/c1 (cgroup v2 controllers: cpu memory pids io hugetlb)");

	static const char *const bad_keys[] = { "../cgroup.procs", "a/b", "..", "", NULL };
	for (const char *const *k = bad_keys; *k; k++) {
		struct oci_kv kv = { (char *)*k, (char *)"1" };
		r = (struct oci_resources){ 0 };
		r.unified = &kv;
		r.n_unified = 1;
		assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EINVAL);
		char want[256];
		snprintf(want, sizeof(want), "linux.resources.unified: invalid key \"%s\": it must name a file in the "
			 "cgroup directory (no '/' or \"..\")", *k);
		assert_string_equal(err.msg, want);
	}

	struct oci_kv missing = { (char *)"memory.nope", (char *)"1" };
	r = (struct oci_resources){ 0 };
	r.unified = &missing;
	r.n_unified = 1;
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -ENOENT);
	char want[512];
	snprintf(want, sizeof(want), "linux.resources.unified.memory.nope: cannot open %s/unified" C1
		 "/memory.nope: No such file or directory", f->root);
	assert_string_equal(err.msg, want);

	/* checkBeforeUpdate refuses a limit below the current usage */
	put(f->root, "unified" C1 "/memory.current", "5000\n");
	r = (struct oci_resources){ 0 };
	SET(r.memory.limit, 4096);
	SET(r.memory.check_before_update, true);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EBUSY);
	assert_string_equal(err.msg, "linux.resources.memory.limit: 4096 is below the current usage of 5000 bytes "
				     "(checkBeforeUpdate)");
	SET(r.memory.limit, 8192);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);
}

static void test_v2_freeze(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	bool frozen = true;
	assert_int_equal(cgroup_is_frozen(&f->l, C1, &frozen, &err), 0);
	assert_false(frozen);
	put(f->root, "unified" C1 "/cgroup.events", "populated 1\nfrozen 1\n");
	assert_int_equal(cgroup_freeze(&f->l, C1, true, &err), 0);
	assert_file(f->root, "unified" C1 "/cgroup.freeze", "1");
	assert_int_equal(cgroup_is_frozen(&f->l, C1, &frozen, &err), 0);
	assert_true(frozen);

	/* the kernel never reports "frozen 0": a bounded wait, then an error */
	assert_int_equal(cgroup_freeze(&f->l, C1, false, &err), -ETIMEDOUT);
	char want[512];
	snprintf(want, sizeof(want), "timed out after 2000 ms waiting for cgroup " C1 " to thaw (%s/unified" C1
		 "/cgroup.events: frozen 1)", f->root);
	assert_string_equal(err.msg, want);
	assert_file(f->root, "unified" C1 "/cgroup.freeze", "0");
}

/* ------------------------------------------------------------------ hybrid */

static void test_hybrid(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	assert_int_equal(f->l.mode, CGROUP_MODE_HYBRID);
	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);
	assert_file(f->root, "unified/cgroup.subtree_control", "+hugetlb");
	assert_file(f->root, "unified/gureum-runtime/cgroup.subtree_control", "+hugetlb");
	assert_file(f->root, "cpuset" C1 "/cpuset.cpus", "0-1");
	assert_int_equal(cgroup_enter(&f->l, C1, 99, &err), 0);
	assert_file(f->root, "unified" C1 "/cgroup.procs", "99");
	assert_file(f->root, "cpuacct" C1 "/cgroup.procs", "99");

	struct oci_hugepage_limit hp = { (char *)"2MB", 2097152 };
	struct oci_kv uni = { (char *)"hugetlb.2MB.max", (char *)"6291456" };
	struct oci_device_rule dev = { .allow = true, .type = 'b', .major = 8, .minor = -1, .access = (char *)"r" };
	struct oci_resources r = { 0 };
	SET(r.memory.limit, 1048576);
	SET(r.memory.swap, 2097152);
	SET(r.cpu.shares, 100);
	SET(r.pids.limit, 5);
	SET(r.blkio.weight, 100);
	r.hugepage_limits = &hp;
	r.n_hugepage_limits = 1;
	r.devices = &dev;
	r.n_devices = 1;
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);
	assert_file(f->root, "memory" C1 "/memory.limit_in_bytes", "1048576");
	assert_file(f->root, "memory" C1 "/memory.memsw.limit_in_bytes", "2097152");
	assert_file(f->root, "cpu" C1 "/cpu.shares", "100");
	assert_file(f->root, "pids" C1 "/pids.max", "5");
	assert_file(f->root, "blkio" C1 "/blkio.weight", "100");
	assert_file(f->root, "devices" C1 "/devices.allow", "b 8:* r");
	/* hugetlb is only on the unified hierarchy here */
	assert_file(f->root, "unified" C1 "/hugetlb.2MB.max", "2097152");

	/* unified keys go to the unified hierarchy */
	r = (struct oci_resources){ 0 };
	r.unified = &uni;
	r.n_unified = 1;
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), 0);
	assert_file(f->root, "unified" C1 "/hugetlb.2MB.max", "6291456");

	/* a controller neither side has */
	r = (struct oci_resources){ 0 };
	SET(r.network.class_id, 7);
	assert_int_equal(cgroup_apply(&f->l, C1, &r, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg, "linux.resources.network.classID: this host has no net_cls cgroup controller "
				     "(not in a cgroup v1 hierarchy, and cgroup v2 offers only: hugetlb)");

	/* the v1 freezer is used on hybrid hosts */
	put(f->root, "freezer" C1 "/freezer.state", "THAWED\n");
	assert_int_equal(cgroup_freeze(&f->l, C1, true, &err), 0);
	assert_file(f->root, "freezer" C1 "/freezer.state", "FROZEN");
	assert_file(f->root, "unified" C1 "/cgroup.freeze", "");
	bool frozen = false;
	assert_int_equal(cgroup_is_frozen(&f->l, C1, &frozen, &err), 0);
	assert_true(frozen);
	assert_int_equal(cgroup_freeze(&f->l, C1, false, &err), 0);
	assert_file(f->root, "freezer" C1 "/freezer.state", "THAWED");
	assert_int_equal(cgroup_is_frozen(&f->l, C1, &frozen, &err), 0);
	assert_false(frozen);
}

/* ------------------------------------------------- pids, kill, destroy (fake) */

static int cmp_pid(const void *a, const void *b)
{
	return *(const pid_t *)a - *(const pid_t *)b;
}

static void test_v1_pids_and_destroy(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	/* pids come from the pids hierarchy, recursively */
	put(f->root, "pids" C1 "/cgroup.procs", "10\n11\n");
	put(f->root, "pids" C1 "/sub/cgroup.procs", "12\n");
	put(f->root, "pids" C1 "/sub/deeper/cgroup.procs", "");
	put(f->root, "memory" C1 "/cgroup.procs", "999\n");
	pid_t *pids = NULL;
	size_t n = 0;
	assert_int_equal(cgroup_pids(&f->l, C1, &pids, &n, &err), 0);
	assert_int_equal(n, 3);
	qsort(pids, n, sizeof(pid_t), cmp_pid);
	assert_int_equal(pids[0], 10);
	assert_int_equal(pids[1], 11);
	assert_int_equal(pids[2], 12);
	free(pids);

	assert_int_equal(cgroup_pids(&f->l, "/absent", &pids, &n, &err), -ENOENT);

	/* destroy: empty directories go deepest first, absent is fine; a
	 * directory with files (impossible on a real cgroup fs) is an error */
	struct gr_error e2 = { 0 };
	char p[PATH_MAX];
	for (const struct fake_h *h = v1_full; h->dir; h++) {
		snprintf(p, sizeof(p), "%s/%s/gureum-runtime", f->root, h->dir);
		gr_rm_rf(p, &e2);
	}
	assert_false(cgroup_exists(&f->l, C1));
	assert_int_equal(cgroup_destroy(&f->l, C1, &err), 0);
	snprintf(p, sizeof(p), "%s/memory" C1 "/a/b", f->root);
	assert_int_equal(gr_mkdir_p(p, 0755, &err), 0);
	snprintf(p, sizeof(p), "%s/pids" C1 "/x", f->root);
	assert_int_equal(gr_mkdir_p(p, 0755, &err), 0);
	assert_true(cgroup_exists(&f->l, C1));
	assert_int_equal(cgroup_destroy(&f->l, C1, &err), 0);
	assert_false(cgroup_exists(&f->l, C1));
	assert_true(exists(f->root, "memory/gureum-runtime"));

	put(f->root, "memory" C1 "/memory.limit_in_bytes", "");
	assert_int_equal(cgroup_destroy(&f->l, C1, &err), -ENOTEMPTY);
	snprintf(p, sizeof(p), "cannot remove cgroup %s/memory" C1 ": Directory not empty", f->root);
	assert_string_equal(err.msg, p);
}

static void test_v1_kill_all_fake(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	/* A real child listed in the fake cgroup: frozen (fake), signalled, thawed. */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		for (;;)
			pause();
	}
	char buf[32];
	snprintf(buf, sizeof(buf), "%d\n", (int)child);
	put(f->root, "pids" C1 "/cgroup.procs", buf);
	put(f->root, "freezer" C1 "/freezer.state", "THAWED\n");
	int r = cgroup_kill_all(&f->l, C1, SIGKILL, &err);
	int status = 0;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(r, 0);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_file(f->root, "freezer" C1 "/freezer.state", "THAWED");
}

/* --------------------------------------------------------------- real host */

static struct {
	bool active;
	struct cgroup_layout l;
	char path[64];
	pid_t child;
} real;

static int real_teardown(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	if (!real.active)
		return 0;
	cgroup_freeze(&real.l, real.path, false, &err);
	if (real.child > 0) {
		kill(real.child, SIGKILL);
		waitpid(real.child, NULL, 0);
	}
	cgroup_destroy(&real.l, real.path, &err);
	cgroup_layout_free(&real.l);
	real.active = false;
	return 0;
}

static char *real_knob(const char *ctrl, const char *file)
{
	const char *mount = real.l.unified_mount;
	if (real.l.mode != CGROUP_MODE_V2) {
		const struct cgroup_v1_hierarchy *h = find_h(&real.l, ctrl);
		if (h)
			mount = h->mount;
	}
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s%s/%s", mount, real.path, file);
	char *s = NULL;
	struct gr_error err = { 0 };
	if (gr_read_file(p, &s, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	s[strcspn(s, "\n")] = '\0';
	return s;
}

#define assert_real(ctrl, file, expected) do { \
		char *_s = real_knob(ctrl, file); \
		assert_string_equal(_s, expected); \
		free(_s); \
	} while (0)

static void test_real_host(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct statvfs vfs;
	if (geteuid() != 0) {
		print_message("skipped: needs root to create cgroups\n");
		skip();
	}
	if (cgroup_layout_detect(NULL, &real.l, &err) < 0) {
		print_message("skipped: %s\n", err.msg);
		skip();
	}
	const char *probe = real.l.unified_mount;
	if (real.l.mode != CGROUP_MODE_V2 && real.l.n_v1)
		probe = real.l.v1[0].mount;
	if (statvfs(probe, &vfs) < 0 || (vfs.f_flag & ST_RDONLY) || access(probe, W_OK) < 0) {
		print_message("skipped: %s is not writable\n", probe);
		cgroup_layout_free(&real.l);
		skip();
	}
	real.active = true;
	snprintf(real.path, sizeof(real.path), "/gureum-unit-test-%d", (int)getpid());

	if (cgroup_create(&real.l, real.path, &err) < 0)
		fail_msg("create: %s", err.msg);
	assert_true(cgroup_exists(&real.l, real.path));

	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	real.child = fork();
	assert_true(real.child >= 0);
	if (real.child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		char c;
		close(pipefd[1]);
		if (read(pipefd[0], &c, 1) == 1) /* entered: fork a grandchild too */
			if (fork() == 0)
				prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	close(pipefd[0]);
	if (cgroup_enter(&real.l, real.path, real.child, &err) < 0)
		fail_msg("enter: %s", err.msg);
	assert_int_equal(write(pipefd[1], "x", 1), 1);
	close(pipefd[1]);

	struct oci_resources r = { 0 };
	SET(r.memory.limit, 64 << 20);
	SET(r.pids.limit, 32);
	SET(r.cpu.shares, 512);
	SET(r.cpu.quota, 50000);
	SET(r.cpu.period, 100000);
	if (cgroup_apply(&real.l, real.path, &r, &err) < 0)
		fail_msg("apply: %s", err.msg);
	assert_real("pids", "pids.max", "32");
	if (real.l.mode == CGROUP_MODE_V2) {
		assert_real("memory", "memory.max", "67108864");
		assert_real("cpu", "cpu.max", "50000 100000");
		assert_real("cpu", "cpu.weight", "20");
	} else {
		assert_real("memory", "memory.limit_in_bytes", "67108864");
		assert_real("cpu", "cpu.cfs_quota_us", "50000");
		assert_real("cpu", "cpu.shares", "512");
		/* raising memory+swap needs memsw first: the EINVAL retry path */
		char *memsw_probe = NULL;
		const struct cgroup_v1_hierarchy *mh = find_h(&real.l, "memory");
		if (mh && asprintf(&memsw_probe, "%s%s/memory.memsw.limit_in_bytes", mh->mount, real.path) > 0 &&
		    access(memsw_probe, F_OK) == 0) {
			r = (struct oci_resources){ 0 };
			SET(r.memory.limit, 64 << 20);
			SET(r.memory.swap, 128 << 20);
			if (cgroup_apply(&real.l, real.path, &r, &err) < 0)
				fail_msg("apply swap: %s", err.msg);
			SET(r.memory.limit, 256 << 20);
			SET(r.memory.swap, 512 << 20);
			if (cgroup_apply(&real.l, real.path, &r, &err) < 0)
				fail_msg("raise swap: %s", err.msg);
			assert_real("memory", "memory.limit_in_bytes", "268435456");
			assert_real("memory", "memory.memsw.limit_in_bytes", "536870912");
			SET(r.memory.limit, 32 << 20);
			SET(r.memory.swap, 48 << 20);
			if (cgroup_apply(&real.l, real.path, &r, &err) < 0)
				fail_msg("lower swap: %s", err.msg);
			assert_real("memory", "memory.limit_in_bytes", "33554432");
			assert_real("memory", "memory.memsw.limit_in_bytes", "50331648");
		}
		free(memsw_probe);
	}
	/* hybrid: hugetlb lives on the unified hierarchy */
	if (real.l.mode == CGROUP_MODE_HYBRID && !find_h(&real.l, "hugetlb") &&
	    access("/sys/kernel/mm/hugepages/hugepages-2048kB", F_OK) == 0) {
		struct oci_hugepage_limit hp = { (char *)"2MB", 4 << 20 };
		r = (struct oci_resources){ 0 };
		r.hugepage_limits = &hp;
		r.n_hugepage_limits = 1;
		if (cgroup_apply(&real.l, real.path, &r, &err) < 0)
			fail_msg("hugetlb: %s", err.msg);
		assert_real("hugetlb", "hugetlb.2MB.max", "4194304");
	}

	/* the grandchild shows up too */
	pid_t *pids = NULL;
	size_t n = 0;
	for (int i = 0; i < 200; i++) {
		free(pids);
		if (cgroup_pids(&real.l, real.path, &pids, &n, &err) < 0)
			fail_msg("pids: %s", err.msg);
		if (n == 2)
			break;
		usleep(10000);
	}
	assert_int_equal(n, 2);
	assert_true(pids[0] == real.child || pids[1] == real.child);
	free(pids);

	bool frozen = true;
	if (cgroup_freeze(&real.l, real.path, true, &err) < 0)
		fail_msg("freeze: %s", err.msg);
	assert_int_equal(cgroup_is_frozen(&real.l, real.path, &frozen, &err), 0);
	assert_true(frozen);
	if (cgroup_freeze(&real.l, real.path, false, &err) < 0)
		fail_msg("thaw: %s", err.msg);
	assert_int_equal(cgroup_is_frozen(&real.l, real.path, &frozen, &err), 0);
	assert_false(frozen);

	if (cgroup_kill_all(&real.l, real.path, SIGKILL, &err) < 0)
		fail_msg("kill_all: %s", err.msg);
	int status = 0;
	assert_int_equal(waitpid(real.child, &status, 0), real.child);
	real.child = -1;
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	/* the grandchild (reparented to init) dies too; destroy waits for it */
	if (cgroup_destroy(&real.l, real.path, &err) < 0)
		fail_msg("destroy: %s", err.msg);
	assert_false(cgroup_exists(&real.l, real.path));
	assert_int_equal(cgroup_destroy(&real.l, real.path, &err), 0);
}

/* The init joins the v1 hierarchies itself (tasks "0", no global lock) and
 * the unified one only when something there needs it. */
static void test_hybrid_enter_split(void **state)
{
	struct fake *f = *state;
	struct gr_error err = { 0 };
	assert_int_equal(cgroup_create(&f->l, C1, &err), 0);
	for (size_t i = 0; i < f->l.n_v1; i++) {
		char rel[256];
		snprintf(rel, sizeof(rel), "%s" C1 "/tasks", strrchr(f->l.v1[i].mount, '/') + 1);
		put(f->root, rel, "");
	}
	assert_int_equal(cgroup_enter_self_v1(&f->l, C1, &err), 0);
	for (size_t i = 0; i < f->l.n_v1; i++) {
		char rel[256];
		snprintf(rel, sizeof(rel), "%s" C1 "/tasks", strrchr(f->l.v1[i].mount, '/') + 1);
		assert_file(f->root, rel, "0");
	}
	if (exists(f->root, "unified" C1 "/cgroup.procs")) { /* untouched */
		char *v = get(f->root, "unified" C1 "/cgroup.procs");
		assert_string_equal(v, "");
		free(v);
	}
	assert_int_equal(cgroup_enter_unified(&f->l, C1, 4242, &err), 0);
	assert_file(f->root, "unified" C1 "/cgroup.procs", "4242");

	struct oci_resources none = { 0 };
	assert_false(cgroup_unified_needed(&f->l, NULL));
	assert_false(cgroup_unified_needed(&f->l, &none));
	struct oci_kv uni = { (char *)"hugetlb.2MB.max", (char *)"1" };
	struct oci_resources with_unified = { .unified = &uni, .n_unified = 1 };
	assert_true(cgroup_unified_needed(&f->l, &with_unified));
	struct oci_hugepage_limit hp = { (char *)"2MB", 2097152 };
	struct oci_resources with_hugetlb = { .hugepage_limits = &hp, .n_hugepage_limits = 1 };
	/* this fake hybrid host has hugetlb only on the unified hierarchy */
	assert_true(cgroup_unified_needed(&f->l, &with_hugetlb) == (find_h(&f->l, "hugetlb") == NULL));
}

static void test_unified_needed_v1_v2(void **state)
{
	(void)state;
	struct cgroup_layout v1 = { .mode = CGROUP_MODE_V1 };
	struct cgroup_layout v2 = { .mode = CGROUP_MODE_V2, .unified_mount = (char *)"/sys/fs/cgroup" };
	struct oci_kv uni = { (char *)"pids.max", (char *)"1" };
	struct oci_resources r = { .unified = &uni, .n_unified = 1 };
	assert_false(cgroup_unified_needed(&v1, &r));
	assert_true(cgroup_unified_needed(&v2, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mountinfo_hybrid),
		cmocka_unit_test(test_mountinfo_v1),
		cmocka_unit_test(test_mountinfo_prefers_root_slash),
		cmocka_unit_test(test_mountinfo_v2),
		cmocka_unit_test(test_mountinfo_escapes_and_optional_fields),
		cmocka_unit_test(test_mountinfo_none),
		cmocka_unit_test(test_mode_names),
		cmocka_unit_test(test_path_resolve),
		cmocka_unit_test(test_conversions),
		cmocka_unit_test_setup_teardown(test_v1_create, setup_v1, teardown_fake),
		cmocka_unit_test_setup_teardown(test_v1_apply, setup_v1, teardown_fake),
		cmocka_unit_test_setup_teardown(test_v1_deprecated_kmem_skipped, setup_v1, teardown_fake),
		cmocka_unit_test_setup_teardown(test_v1_errors, setup_v1, teardown_fake),
		cmocka_unit_test_teardown(test_v1_missing_controllers, teardown_fake),
		cmocka_unit_test_setup_teardown(test_v1_pids_and_destroy, setup_v1, teardown_fake),
		cmocka_unit_test_setup_teardown(test_v1_kill_all_fake, setup_v1, teardown_fake),
		cmocka_unit_test_setup_teardown(test_v2_create, setup_v2, teardown_fake),
		cmocka_unit_test_setup_teardown(test_v2_apply, setup_v2, teardown_fake),
		cmocka_unit_test_setup_teardown(test_v2_errors, setup_v2, teardown_fake),
		cmocka_unit_test_setup_teardown(test_v2_freeze, setup_v2, teardown_fake),
		cmocka_unit_test_setup_teardown(test_hybrid, setup_hybrid, teardown_fake),
		cmocka_unit_test_setup_teardown(test_hybrid_enter_split, setup_hybrid, teardown_fake),
		cmocka_unit_test(test_unified_needed_v1_v2),
		cmocka_unit_test_teardown(test_real_host, real_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
