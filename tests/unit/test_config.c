/* Unit tests for src/container/config.c (OCI config.json) and mountopt.c.
 *
 * Valid documents come from tests/unit/data (the configs "runc spec" and
 * "runc spec --rootless" write, and one that sets every field). Invalid
 * documents are made by changing one or two members of a small valid base
 * document; each case is its own cmocka test, named after what it changes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "container/config.h"
#include "container/mountopt.h"
#include "container/security.h"

#ifndef GR_TEST_DATA
#define GR_TEST_DATA "tests/unit/data"
#endif

static void config_freep(struct oci_config **c) { oci_config_free(*c); }
#define _cleanup_config_ _cleanup_(config_freep)

static void mount_clear(struct oci_mount *m) { free(m->data); m->data = NULL; }

static json_t *parse_json(const char *text)
{
	struct gr_error err = { 0 };
	json_t *j = NULL;
	if (gr_json_load_string("test", text, &j, &err) < 0)
		fail_msg("bad test JSON: %s", err.msg);
	return j;
}

static struct oci_config *load_fixture(const char *name)
{
	char path[512];
	struct gr_error err = { 0 };
	struct oci_config *c = NULL;
	snprintf(path, sizeof(path), "%s/%s", GR_TEST_DATA, name);
	int r = oci_config_load(path, &c, &err);
	if (r < 0)
		fail_msg("%s: %s", name, err.msg);
	assert_non_null(c);
	return c;
}

static size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* ------------------------------------------------------------------------
 * Valid documents
 * ---------------------------------------------------------------------- */

static void test_runc_spec(void **state)
{
	(void)state;
	_cleanup_config_ struct oci_config *c = load_fixture("runc-spec.json");

	assert_string_equal(c->oci_version, "1.0.2-dev");
	assert_string_equal(c->root_path, "rootfs");
	assert_true(c->root_readonly);
	assert_string_equal(c->hostname, "runc");
	assert_null(c->domainname);
	assert_non_null(c->json);

	assert_true(c->has_process);
	struct oci_process *p = &c->process;
	assert_true(p->terminal);
	assert_false(p->console_size.set);
	assert_int_equal(p->user.uid, 0);
	assert_int_equal(p->user.gid, 0);
	assert_false(p->user.umask.set);
	assert_int_equal(strv_len(p->args), 1);
	assert_string_equal(p->args[0], "sh");
	assert_int_equal(strv_len(p->env), 2);
	assert_string_equal(p->env[1], "TERM=xterm");
	assert_string_equal(p->cwd, "/");
	assert_true(p->has_caps);
	assert_int_equal(strv_len(p->caps.bounding), 3);
	assert_string_equal(p->caps.bounding[2], "CAP_NET_BIND_SERVICE");
	assert_null(p->caps.inheritable);
	assert_int_equal(strv_len(p->caps.ambient), 3);
	assert_int_equal(p->n_rlimits, 1);
	assert_int_equal(p->rlimits[0].resource, RLIMIT_NOFILE);
	assert_string_equal(p->rlimits[0].type, "RLIMIT_NOFILE");
	assert_int_equal(p->rlimits[0].soft, 1024);
	assert_int_equal(p->rlimits[0].hard, 1024);
	assert_true(p->no_new_privileges);
	assert_false(p->oom_score_adj.set);
	assert_false(p->has_io_priority);

	assert_int_equal(c->n_mounts, 7);
	assert_string_equal(c->mounts[0].destination, "/proc");
	assert_string_equal(c->mounts[0].type, "proc");
	assert_null(c->mounts[0].options);
	assert_int_equal(c->mounts[0].flags, 0);
	assert_null(c->mounts[0].data);
	assert_int_equal(c->mounts[1].flags, MS_NOSUID | MS_STRICTATIME);
	assert_string_equal(c->mounts[1].data, "mode=755,size=65536k");
	assert_int_equal(c->mounts[2].flags, MS_NOSUID | MS_NOEXEC);
	assert_string_equal(c->mounts[2].data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
	assert_int_equal(c->mounts[5].flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY);
	assert_null(c->mounts[5].data);
	assert_int_equal(c->mounts[6].flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY);
	assert_false(c->mounts[6].bind);

	assert_true(c->has_linux);
	struct oci_linux *l = &c->linux_;
	for (int i = 0; i < OCI_NS_TYPES; i++) {
		bool want = i != OCI_NS_USER && i != OCI_NS_TIME;
		assert_int_equal(l->ns[i].requested, want);
		assert_null(l->ns[i].path);
	}
	assert_true(l->has_resources);
	assert_int_equal(l->resources.n_devices, 1);
	assert_false(l->resources.devices[0].allow);
	assert_int_equal(l->resources.devices[0].type, 'a');
	assert_int_equal(l->resources.devices[0].major, -1);
	assert_int_equal(l->resources.devices[0].minor, -1);
	assert_string_equal(l->resources.devices[0].access, "rwm");
	assert_false(l->resources.memory.limit.set);
	assert_int_equal(strv_len(l->masked_paths), 10);
	assert_string_equal(l->masked_paths[9], "/proc/scsi");
	assert_int_equal(strv_len(l->readonly_paths), 5);
	assert_null(l->seccomp);
	assert_null(l->personality);
	assert_null(l->rootfs_propagation);
	assert_int_equal(l->rootfs_propagation_flags, 0);
	assert_false(l->time_monotonic.set);
	assert_false(l->has_intel_rdt);
	assert_int_equal(l->n_uid_mappings, 0);
	for (int k = 0; k < OCI_HOOK_KINDS; k++)
		assert_int_equal(c->hooks[k].n, 0);
}

static void test_runc_rootless(void **state)
{
	(void)state;
	_cleanup_config_ struct oci_config *c = load_fixture("runc-rootless.json");
	struct oci_linux *l = &c->linux_;
	assert_true(l->ns[OCI_NS_USER].requested);
	assert_false(l->ns[OCI_NS_NETWORK].requested);
	assert_int_equal(l->n_uid_mappings, 1);
	assert_int_equal(l->uid_mappings[0].container_id, 0);
	assert_int_equal(l->uid_mappings[0].host_id, 1000);
	assert_int_equal(l->uid_mappings[0].size, 1);
	assert_int_equal(l->n_gid_mappings, 1);
	assert_false(l->has_resources);
	struct oci_mount *sys = &c->mounts[5];
	assert_string_equal(sys->type, "none");
	assert_true(sys->bind);
	assert_int_equal(sys->flags, MS_BIND | MS_REC | MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY);
}

static void test_full(void **state)
{
	(void)state;
	_cleanup_config_ struct oci_config *c = load_fixture("full.json");

	assert_string_equal(c->oci_version, "1.2.0");
	assert_string_equal(c->root_path, "/var/lib/bundles/full/rootfs");
	assert_false(c->root_readonly);
	assert_string_equal(c->hostname, "full-host");
	assert_string_equal(c->domainname, "example.org");

	/* mounts */
	assert_int_equal(c->n_mounts, 4);
	struct oci_mount *m = &c->mounts[1];
	assert_string_equal(m->destination, "/data");
	assert_string_equal(m->source, "/srv/data");
	assert_true(m->bind);
	assert_int_equal(strv_len(m->options), 9);
	assert_int_equal(m->flags, MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW);
	assert_int_equal(m->clear_flags, 0);
	assert_int_equal(m->propagation, MS_PRIVATE | MS_REC);
	assert_int_equal(m->rec_flags, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME);
	assert_int_equal(m->rec_clear, MOUNT_ATTR__ATIME);
	assert_null(m->data);
	assert_false(m->idmap);
	m = &c->mounts[2];
	assert_false(m->bind);
	assert_int_equal(m->flags, MS_REMOUNT);
	assert_int_equal(m->clear_flags, MS_RDONLY);
	assert_string_equal(m->data, "size=64m,mode=1777");
	assert_true(m->tmpcopyup);
	m = &c->mounts[3];
	assert_true(m->bind);
	assert_true(m->idmap);
	assert_int_equal(m->flags, MS_BIND);
	assert_int_equal(m->n_uid_mappings, 1);
	assert_int_equal(m->uid_mappings[0].host_id, 100000);
	assert_int_equal(m->uid_mappings[0].size, 65536);
	assert_int_equal(m->n_gid_mappings, 1);
	assert_int_equal(m->gid_mappings[0].host_id, 200000);

	/* process */
	struct oci_process *p = &c->process;
	assert_true(c->has_process);
	assert_true(p->terminal);
	assert_true(p->console_size.set);
	assert_int_equal(p->console_size.v.height, 25);
	assert_int_equal(p->console_size.v.width, 80);
	assert_string_equal(p->cwd, "/work");
	assert_int_equal(strv_len(p->env), 3);
	assert_string_equal(p->env[2], "EMPTY=");
	assert_int_equal(strv_len(p->args), 3);
	assert_string_equal(p->args[2], "echo hello");
	assert_string_equal(p->command_line, "ignored on linux");
	assert_int_equal(p->user.uid, 1000);
	assert_int_equal(p->user.gid, 1001);
	assert_true(p->user.umask.set);
	assert_int_equal(p->user.umask.v, 022);
	assert_int_equal(p->user.n_additional_gids, 3);
	assert_int_equal(p->user.additional_gids[2], 4294967295u);
	assert_string_equal(p->user.username, "ignored");
	assert_true(p->has_caps);
	assert_int_equal(strv_len(p->caps.bounding), 3);
	assert_string_equal(p->caps.effective[0], "CAP_CHOWN");
	assert_string_equal(p->caps.inheritable[0], "CAP_KILL");
	assert_int_equal(strv_len(p->caps.permitted), 2);
	assert_non_null(p->caps.ambient);
	assert_int_equal(strv_len(p->caps.ambient), 0);
	assert_int_equal(p->n_rlimits, 3);
	assert_int_equal(p->rlimits[1].resource, RLIMIT_CORE);
	assert_int_equal(p->rlimits[1].soft, INT64_MAX);
	assert_int_equal(p->rlimits[2].resource, RLIMIT_NPROC);
	assert_int_equal(p->rlimits[2].soft, 200); /* soft > hard is left to setrlimit */
	assert_int_equal(p->rlimits[2].hard, 100);
	assert_true(p->no_new_privileges);
	assert_true(p->oom_score_adj.set);
	assert_int_equal(p->oom_score_adj.v, -500);
	assert_string_equal(p->apparmor_profile, "gureum-default");
	assert_string_equal(p->selinux_label, "system_u:system_r:container_t:s0:c1,c2");
	assert_true(p->has_io_priority);
	assert_int_equal(p->io_priority_class, 3);
	assert_int_equal(p->io_priority, 7);

	/* hooks */
	assert_int_equal(c->hooks[OCI_HOOK_PRESTART].n, 1);
	struct oci_hook *h = &c->hooks[OCI_HOOK_PRESTART].v[0];
	assert_string_equal(h->path, "/usr/bin/prestart");
	assert_int_equal(strv_len(h->args), 2);
	assert_string_equal(h->env[0], "A=1");
	assert_true(h->timeout.set);
	assert_int_equal(h->timeout.v, 5);
	assert_int_equal(c->hooks[OCI_HOOK_CREATE_RUNTIME].n, 2);
	assert_false(c->hooks[OCI_HOOK_CREATE_RUNTIME].v[0].timeout.set);
	assert_int_equal(c->hooks[OCI_HOOK_CREATE_RUNTIME].v[1].timeout.v, 1);
	assert_string_equal(c->hooks[OCI_HOOK_CREATE_CONTAINER].v[0].path, "/usr/bin/cc");
	assert_string_equal(c->hooks[OCI_HOOK_START_CONTAINER].v[0].args[0], "sc");
	assert_string_equal(c->hooks[OCI_HOOK_POSTSTART].v[0].path, "/usr/bin/ps");
	assert_int_equal(strv_len(c->hooks[OCI_HOOK_POSTSTOP].v[0].env), 2);

	/* annotations */
	assert_int_equal(c->n_annotations, 2);
	assert_string_equal(c->annotations[0].key, "org.example.key");
	assert_string_equal(c->annotations[0].value, "value");
	assert_string_equal(c->annotations[1].value, "");

	/* linux */
	struct oci_linux *l = &c->linux_;
	for (int i = 0; i < OCI_NS_TYPES; i++)
		assert_true(l->ns[i].requested);
	assert_string_equal(l->ns[OCI_NS_NETWORK].path, "/var/run/netns/full");
	assert_null(l->ns[OCI_NS_PID].path);
	assert_int_equal(l->n_uid_mappings, 1);
	assert_int_equal(l->n_gid_mappings, 2);
	assert_int_equal(l->gid_mappings[1].container_id, 65536);
	assert_int_equal(l->gid_mappings[1].host_id, 5);

	assert_int_equal(l->n_devices, 4);
	assert_int_equal(l->devices[0].type, 'c');
	assert_string_equal(l->devices[0].path, "/dev/fuse");
	assert_int_equal(l->devices[0].major, 10);
	assert_int_equal(l->devices[0].minor, 229);
	assert_true(l->devices[0].file_mode.set);
	assert_int_equal(l->devices[0].file_mode.v, 0666);
	assert_true(l->devices[0].uid.set);
	assert_true(l->devices[0].gid.set);
	assert_int_equal(l->devices[1].type, 'b');
	assert_false(l->devices[1].file_mode.set);
	assert_int_equal(l->devices[2].type, 'u');
	assert_int_equal(l->devices[3].type, 'p');
	assert_int_equal(l->devices[3].major, 0);
	assert_string_equal(l->cgroups_path, "/gureum/full");

	struct oci_resources *r = &l->resources;
	assert_true(l->has_resources);
	assert_int_equal(r->n_devices, 3);
	assert_true(r->devices[1].allow);
	assert_int_equal(r->devices[1].type, 'c');
	assert_int_equal(r->devices[1].major, 10);
	assert_int_equal(r->devices[1].minor, 229);
	assert_string_equal(r->devices[1].access, "rw");
	assert_int_equal(r->devices[2].type, 'b');
	assert_int_equal(r->devices[2].minor, -1);
	assert_null(r->devices[2].access);
	assert_true(r->memory.limit.set);
	assert_int_equal(r->memory.limit.v, 536870912);
	assert_int_equal(r->memory.reservation.v, 268435456);
	assert_int_equal(r->memory.swap.v, -1);
	assert_true(r->memory.kernel.set);
	assert_int_equal(r->memory.kernel.v, 0);
	assert_int_equal(r->memory.kernel_tcp.v, 1024);
	assert_int_equal(r->memory.swappiness.v, 60);
	assert_true(r->memory.disable_oom_killer.v);
	assert_true(r->memory.use_hierarchy.set);
	assert_false(r->memory.use_hierarchy.v);
	assert_true(r->memory.check_before_update.v);
	assert_int_equal(r->cpu.shares.v, 1024);
	assert_int_equal(r->cpu.quota.v, 50000);
	assert_int_equal(r->cpu.burst.v, 10000);
	assert_int_equal(r->cpu.period.v, 100000);
	assert_int_equal(r->cpu.realtime_runtime.v, 950000);
	assert_int_equal(r->cpu.realtime_period.v, 1000000);
	assert_string_equal(r->cpu.cpus, "0-3");
	assert_string_equal(r->cpu.mems, "0");
	assert_true(r->cpu.idle.set);
	assert_int_equal(r->cpu.idle.v, 1);
	assert_int_equal(r->pids.limit.v, 1024);
	assert_int_equal(r->blkio.weight.v, 500);
	assert_int_equal(r->blkio.leaf_weight.v, 300);
	assert_int_equal(r->blkio.n_weight_device, 2);
	assert_int_equal(r->blkio.weight_device[0].weight.v, 600);
	assert_int_equal(r->blkio.weight_device[0].leaf_weight.v, 200);
	assert_false(r->blkio.weight_device[1].weight.set);
	assert_int_equal(r->blkio.weight_device[1].minor, 16);
	assert_int_equal(r->blkio.n_throttle_read_bps, 1);
	assert_int_equal(r->blkio.throttle_read_bps[0].rate, 1048576);
	assert_int_equal(r->blkio.n_throttle_write_bps, 2);
	assert_int_equal(r->blkio.throttle_write_bps[1].rate, 1);
	assert_int_equal(r->blkio.throttle_read_iops[0].rate, 100);
	assert_int_equal(r->blkio.throttle_write_iops[0].rate, 200);
	assert_int_equal(r->n_hugepage_limits, 2);
	assert_string_equal(r->hugepage_limits[0].page_size, "2MB");
	assert_int_equal(r->hugepage_limits[0].limit, 209715200);
	assert_string_equal(r->hugepage_limits[1].page_size, "1GB");
	assert_int_equal(r->network.class_id.v, 1048577);
	assert_int_equal(r->network.n_priorities, 2);
	assert_string_equal(r->network.priorities[0].key, "eth0");
	assert_string_equal(r->network.priorities[0].value, "500");
	assert_string_equal(r->network.priorities[1].value, "0");
	assert_int_equal(r->n_rdma, 2);
	assert_string_equal(r->rdma[0].key, "mlx5_1");
	assert_string_equal(r->rdma[0].value, "hca_handle=3 hca_object=10000");
	assert_string_equal(r->rdma[1].value, "hca_object=7");
	assert_int_equal(r->n_unified, 2);
	assert_string_equal(r->unified[1].key, "io.weight");
	assert_string_equal(r->unified[1].value, "default 100");

	assert_int_equal(l->n_sysctl, 2);
	assert_string_equal(l->sysctl[0].key, "net.ipv4.ip_forward");
	assert_string_equal(l->sysctl[0].value, "1");

	struct oci_seccomp *s = l->seccomp;
	assert_non_null(s);
	assert_string_equal(s->default_action, "SCMP_ACT_ERRNO");
	assert_true(s->default_errno_ret.set);
	assert_int_equal(s->default_errno_ret.v, 38);
	assert_int_equal(strv_len(s->architectures), 3);
	assert_string_equal(s->flags[1], "SECCOMP_FILTER_FLAG_SPEC_ALLOW");
	assert_string_equal(s->listener_path, "/run/seccomp-agent.sock");
	assert_string_equal(s->listener_metadata, "agent-metadata");
	assert_int_equal(s->n_syscalls, 3);
	assert_int_equal(strv_len(s->syscalls[0].names), 3);
	assert_string_equal(s->syscalls[0].action, "SCMP_ACT_ALLOW");
	assert_false(s->syscalls[0].errno_ret.set);
	assert_int_equal(s->syscalls[0].n_args, 0);
	assert_int_equal(s->syscalls[1].n_args, 1);
	assert_int_equal(s->syscalls[1].args[0].op, SC_OP_EQ);
	struct oci_seccomp_rule *clone = &s->syscalls[2];
	assert_int_equal(clone->errno_ret.v, 1);
	assert_int_equal(clone->n_args, 6);
	assert_int_equal(clone->args[0].value, 2114060288);
	assert_int_equal(clone->args[0].op, SC_OP_MASKED_EQ);
	assert_int_equal(clone->args[1].op, SC_OP_NE);
	assert_int_equal(clone->args[2].op, SC_OP_LT);
	assert_int_equal(clone->args[3].op, SC_OP_LE);
	assert_int_equal(clone->args[4].op, SC_OP_GE);
	assert_int_equal(clone->args[5].op, SC_OP_GT);
	assert_int_equal(clone->args[5].index, 5);
	assert_int_equal(clone->args[5].value, 5);
	assert_int_equal(clone->args[5].value_two, 9);

	assert_string_equal(l->rootfs_propagation, "rslave");
	assert_int_equal(l->rootfs_propagation_flags, MS_SLAVE | MS_REC);
	assert_int_equal(strv_len(l->masked_paths), 2);
	assert_string_equal(l->readonly_paths[0], "/proc/sys");
	assert_string_equal(l->mount_label, "system_u:object_r:container_file_t:s0:c1,c2");
	assert_non_null(l->personality);
	assert_string_equal(l->personality->domain, "LINUX32");
	assert_int_equal(strv_len(l->personality->flags), 0);
	assert_true(l->time_monotonic.set);
	assert_int_equal(l->time_monotonic.secs, -86400);
	assert_int_equal(l->time_monotonic.nanosecs, 500);
	assert_true(l->time_boottime.set);
	assert_int_equal(l->time_boottime.secs, 3600);
	assert_int_equal(l->time_boottime.nanosecs, 0);
	assert_true(l->has_intel_rdt);
	assert_string_equal(l->intel_rdt_clos, "guaranteed_group");
}

/* A bundle directory holding config.json, and load errors. */
static void test_load_bundle_dir(void **state)
{
	(void)state;
	char dir[] = "/tmp/gr-test-config-XXXXXX", file[64];
	struct gr_error err = { 0 };
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/config.json", dir);

	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("{\"ociVersion\": \"1.1.0\", \"root\": {\"path\": \"rootfs\"}}", f);
	fclose(f);
	struct oci_config *c = NULL;
	assert_int_equal(oci_config_load(dir, &c, &err), 0);
	assert_string_equal(c->root_path, "rootfs");
	assert_false(c->has_process);
	assert_false(c->has_linux);
	oci_config_free(c);
	c = NULL;

	/* A validation error is prefixed with the file. */
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("{\"ociVersion\": \"1.1.0\", \"root\": {\"path\": \"rootfs\"}, \"hostname\": 7}", f);
	fclose(f);
	assert_int_equal(oci_config_load(dir, &c, &err), -EINVAL);
	assert_null(c);
	char want[256];
	snprintf(want, sizeof(want), "%s: hostname: expected a string, got 7", file);
	assert_string_equal(err.msg, want);

	/* JSON syntax errors give the position. */
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("{\"ociVersion\": \"1.1.0\",\n \"root\": }", f);
	fclose(f);
	assert_int_equal(oci_config_load(dir, &c, &err), -EINVAL);
	snprintf(want, sizeof(want), "%s:2:", file);
	assert_memory_equal(err.msg, want, strlen(want));

	unlink(file);
	assert_int_equal(oci_config_load(dir, &c, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "config.json"));
	rmdir(dir);
	assert_int_equal(oci_config_load(dir, &c, &err), -ENOENT);
	assert_non_null(strstr(err.msg, dir));
}

/* The parsed config keeps its own reference to the document. */
static void test_json_reference(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct oci_config *c = NULL;
	json_t *j = parse_json("{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": \"r\"}}");
	assert_int_equal(oci_config_parse(j, &c, &err), 0);
	assert_ptr_equal(c->json, j);
	json_decref(j);
	assert_string_equal(json_string_value(json_object_get(c->json, "ociVersion")), "1.0.0");
	oci_config_free(c);

	/* Not an object. */
	j = json_array();
	c = NULL;
	assert_int_equal(oci_config_parse(j, &c, &err), -EINVAL);
	assert_null(c);
	assert_string_equal(err.msg, "config: expected a JSON object, got []");
	json_decref(j);
}

static void test_process_parse_standalone(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct oci_process p = { 0 };
	gr_autojson json_t *j = parse_json(
		"{\"args\": [\"ls\", \"-l\"], \"cwd\": \"/tmp\", \"env\": [\"A=b\"],"
		" \"user\": {\"uid\": 5, \"gid\": 6}, \"terminal\": false}");
	assert_int_equal(oci_process_parse(j, "process.json", &p, &err), 0);
	assert_string_equal(p.args[1], "-l");
	assert_string_equal(p.cwd, "/tmp");
	assert_int_equal(p.user.uid, 5);
	assert_false(p.has_caps);
	oci_process_free(&p);
	assert_null(p.args);

	/* A failure leaves *out untouched and leaks nothing. */
	gr_autojson json_t *bad = parse_json(
		"{\"args\": [\"ls\"], \"cwd\": \"/\", \"env\": [\"A=b\"], \"capabilities\": {\"bounding\": [\"CAP_NOPE\"]}}");
	assert_int_equal(oci_process_parse(bad, "process.json", &p, &err), -EINVAL);
	assert_string_equal(err.msg, "process.json.capabilities.bounding[0]: unknown capability \"CAP_NOPE\"");
	assert_null(p.args);

	gr_autojson json_t *arr = parse_json("{\"a\": []}");
	assert_int_equal(oci_process_parse(json_object_get(arr, "a"), "process", &p, &err), -EINVAL);
	assert_string_equal(err.msg, "process: expected an object, got []");
	oci_process_free(NULL);
}

static void test_resources_parse_standalone(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct oci_resources r = { 0 };
	gr_autojson json_t *j = parse_json(
		"{\"memory\": {\"limit\": 1048576}, \"pids\": {\"limit\": -1}, \"cpu\": {\"cpus\": \"1\"},"
		" \"unified\": {\"pids.max\": \"max\"}}");
	assert_int_equal(oci_resources_parse(j, "resources.json", &r, &err), 0);
	assert_int_equal(r.memory.limit.v, 1048576);
	assert_int_equal(r.pids.limit.v, -1);
	assert_string_equal(r.cpu.cpus, "1");
	assert_string_equal(r.unified[0].value, "max");
	oci_resources_free(&r);
	assert_null(r.cpu.cpus);

	gr_autojson json_t *bad = parse_json(
		"{\"cpu\": {\"cpus\": \"1\"}, \"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 1}, {\"pageSize\": 2}]}");
	assert_int_equal(oci_resources_parse(bad, "resources.json", &r, &err), -EINVAL);
	assert_string_equal(err.msg, "resources.json.hugepageLimits[1].pageSize: expected a string, got 2");
	assert_null(r.cpu.cpus);
	assert_int_equal(oci_resources_parse(json_object_get(bad, "hugepageLimits"), "resources.json", &r, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "resources.json: expected an object, got [{\"pageSize\":\"2MB\",\"limit\":1},{\"pageSize\":2}]");
	oci_resources_free(NULL);
}

static void test_ns_tables(void **state)
{
	(void)state;
	static const char *const names[] = { "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time" };
	static const char *const proc[] = { "pid", "net", "mnt", "ipc", "uts", "user", "cgroup", "time" };
	static const int flags[] = { CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWIPC,
				     CLONE_NEWUTS, CLONE_NEWUSER, CLONE_NEWCGROUP, 0x80 };
	for (int i = 0; i < OCI_NS_TYPES; i++) {
		assert_string_equal(oci_ns_names[i], names[i]);
		assert_string_equal(oci_ns_proc_names[i], proc[i]);
		assert_int_equal(oci_ns_clone_flags[i], flags[i]);
	}
	static const char *const hooks[] = { "prestart", "createRuntime", "createContainer",
					     "startContainer", "poststart", "poststop" };
	for (int k = 0; k < OCI_HOOK_KINDS; k++)
		assert_string_equal(oci_hook_names[k], hooks[k]);
}

/* ------------------------------------------------------------------------
 * ociVersion
 * ---------------------------------------------------------------------- */

static void test_version_accepted(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"1.0.0", "1.0.1", "1.0.2", "1.0.2-dev", "1.0.0-rc5", "1.1.0", "1.1.0-rc.1",
		"1.2.0", "1.2.1", "1.2.99", "1.2.0+dev", "1.0.0-rc2-dev",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct gr_error err = { 0 };
		if (oci_version_check(ok[i], &err) != 0)
			fail_msg("%s rejected: %s", ok[i], err.msg);
	}
}

static void test_version_rejected(void **state)
{
	(void)state;
	static const struct { const char *v, *msg; } bad[] = {
		{ "2.0.0", "ociVersion: unsupported version \"2.0.0\" (supported: 1.0.0 to 1.2.x)" },
		{ "1.3.0", "ociVersion: unsupported version \"1.3.0\" (supported: 1.0.0 to 1.2.x)" },
		{ "1.3.0-dev", "ociVersion: unsupported version \"1.3.0-dev\" (supported: 1.0.0 to 1.2.x)" },
		{ "0.6.0", "ociVersion: unsupported version \"0.6.0\" (supported: 1.0.0 to 1.2.x)" },
		{ "1.10.0", "ociVersion: unsupported version \"1.10.0\" (supported: 1.0.0 to 1.2.x)" },
		{ "", "ociVersion: invalid version \"\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")" },
		{ "1.0", "ociVersion: invalid version \"1.0\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")" },
		{ "1", "ociVersion: invalid version \"1\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")" },
		{ "v1.0.0", "ociVersion: invalid version \"v1.0.0\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")" },
		{ "1.0.0.0", "ociVersion: invalid version \"1.0.0.0\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")" },
		{ "1.0.0-", "ociVersion: invalid version \"1.0.0-\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")" },
		{ "1.0.x", "ociVersion: invalid version \"1.0.x\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")" },
		{ "1.-1.0", "ociVersion: invalid version \"1.-1.0\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")" },
		{ "1.0.0 ", "ociVersion: invalid version \"1.0.0 \" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")" },
		{ "99999999999999999999999.0.0", NULL },
		{ NULL, "ociVersion: required field is missing" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gr_error err = { 0 };
		if (oci_version_check(bad[i].v, &err) != -EINVAL)
			fail_msg("version \"%s\" accepted", bad[i].v);
		if (bad[i].msg)
			assert_string_equal(err.msg, bad[i].msg);
	}
}

/* ------------------------------------------------------------------------
 * Mount options
 * ---------------------------------------------------------------------- */

static void test_mountopt_flags(void **state)
{
	(void)state;
	static const struct { const char *opt; unsigned long set, clear; } cases[] = {
		{ "defaults", 0, 0 },
		{ "ro", MS_RDONLY, 0 }, { "rw", 0, MS_RDONLY },
		{ "nosuid", MS_NOSUID, 0 }, { "suid", 0, MS_NOSUID },
		{ "nodev", MS_NODEV, 0 }, { "dev", 0, MS_NODEV },
		{ "noexec", MS_NOEXEC, 0 }, { "exec", 0, MS_NOEXEC },
		{ "sync", MS_SYNCHRONOUS, 0 }, { "async", 0, MS_SYNCHRONOUS },
		{ "dirsync", MS_DIRSYNC, 0 },
		{ "remount", MS_REMOUNT, 0 },
		{ "mand", MS_MANDLOCK, 0 }, { "nomand", 0, MS_MANDLOCK },
		{ "noatime", MS_NOATIME, 0 }, { "atime", 0, MS_NOATIME },
		{ "nodiratime", MS_NODIRATIME, 0 }, { "diratime", 0, MS_NODIRATIME },
		{ "relatime", MS_RELATIME, 0 }, { "norelatime", 0, MS_RELATIME },
		{ "strictatime", MS_STRICTATIME, 0 }, { "nostrictatime", 0, MS_STRICTATIME },
		{ "nosymfollow", MS_NOSYMFOLLOW, 0 }, { "symfollow", 0, MS_NOSYMFOLLOW },
		{ "bind", MS_BIND, 0 }, { "rbind", MS_BIND | MS_REC, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gr_error err = { 0 };
		struct oci_mount m = { 0 };
		char *opts[] = { (char *)cases[i].opt, NULL };
		assert_int_equal(mount_options_parse(opts, "mounts[0].options", &m, &err), 0);
		if (m.flags != cases[i].set || m.clear_flags != cases[i].clear)
			fail_msg("%s: flags %#lx clear %#lx", cases[i].opt, m.flags, m.clear_flags);
		assert_null(m.data);
		assert_int_equal(m.propagation, 0);
		assert_int_equal(m.rec_flags | m.rec_clear, 0);
		assert_int_equal(m.bind, strstr(cases[i].opt, "bind") != NULL);
		mount_clear(&m);
	}
}

static void test_mountopt_recursive(void **state)
{
	(void)state;
	static const struct { const char *opt; unsigned long set, clear; } cases[] = {
		{ "rro", MOUNT_ATTR_RDONLY, 0 }, { "rrw", 0, MOUNT_ATTR_RDONLY },
		{ "rnosuid", MOUNT_ATTR_NOSUID, 0 }, { "rsuid", 0, MOUNT_ATTR_NOSUID },
		{ "rnodev", MOUNT_ATTR_NODEV, 0 }, { "rdev", 0, MOUNT_ATTR_NODEV },
		{ "rnoexec", MOUNT_ATTR_NOEXEC, 0 }, { "rexec", 0, MOUNT_ATTR_NOEXEC },
		{ "rnodiratime", MOUNT_ATTR_NODIRATIME, 0 }, { "rdiratime", 0, MOUNT_ATTR_NODIRATIME },
		/* An access-time mode in attr_set needs MOUNT_ATTR__ATIME in attr_clr. */
		{ "rrelatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME },
		{ "rnorelatime", 0, MOUNT_ATTR_RELATIME },
		{ "rnoatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME },
		{ "ratime", 0, MOUNT_ATTR_NOATIME },
		{ "rstrictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME },
		{ "rnostrictatime", 0, MOUNT_ATTR_STRICTATIME },
		{ "rnosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0 }, { "rsymfollow", 0, MOUNT_ATTR_NOSYMFOLLOW },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gr_error err = { 0 };
		struct oci_mount m = { 0 };
		char *opts[] = { (char *)cases[i].opt, NULL };
		assert_int_equal(mount_options_parse(opts, "mounts[0].options", &m, &err), 0);
		if (m.rec_flags != cases[i].set || m.rec_clear != cases[i].clear)
			fail_msg("%s: rec_flags %#lx rec_clear %#lx", cases[i].opt, m.rec_flags, m.rec_clear);
		assert_int_equal(m.flags | m.clear_flags, 0);
		assert_null(m.data);
	}
}

static void test_mountopt_propagation(void **state)
{
	(void)state;
	static const struct { const char *opt; unsigned long flags; } cases[] = {
		{ "private", MS_PRIVATE }, { "rprivate", MS_PRIVATE | MS_REC },
		{ "shared", MS_SHARED }, { "rshared", MS_SHARED | MS_REC },
		{ "slave", MS_SLAVE }, { "rslave", MS_SLAVE | MS_REC },
		{ "unbindable", MS_UNBINDABLE }, { "runbindable", MS_UNBINDABLE | MS_REC },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gr_error err = { 0 };
		struct oci_mount m = { 0 };
		unsigned long f = 0;
		char *opts[] = { "rbind", (char *)cases[i].opt, NULL };
		assert_int_equal(mount_propagation_parse(cases[i].opt, &f), 0);
		assert_int_equal(f, cases[i].flags);
		assert_int_equal(mount_options_parse(opts, "o", &m, &err), 0);
		assert_int_equal(m.propagation, cases[i].flags);
		assert_int_equal(m.flags, MS_BIND | MS_REC);
	}
	unsigned long f = 123;
	assert_int_equal(mount_propagation_parse("rbind", &f), -EINVAL);
	assert_int_equal(mount_propagation_parse("", &f), -EINVAL);
	assert_int_equal(mount_propagation_parse(NULL, &f), -EINVAL);
	assert_int_equal(f, 123);
}

static void test_mountopt_combined(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct oci_mount m = { 0 };

	/* The later option wins. */
	char *ro_rw[] = { "ro", "rw", NULL };
	assert_int_equal(mount_options_parse(ro_rw, "o", &m, &err), 0);
	assert_int_equal(m.flags, 0);
	assert_int_equal(m.clear_flags, MS_RDONLY);
	char *rw_ro[] = { "rw", "ro", NULL };
	assert_int_equal(mount_options_parse(rw_ro, "o", &m, &err), 0);
	assert_int_equal(m.flags, MS_RDONLY);
	assert_int_equal(m.clear_flags, 0);
	char *rec[] = { "rro", "rrw", "rnoatime", "rstrictatime", NULL };
	assert_int_equal(mount_options_parse(rec, "o", &m, &err), 0);
	assert_int_equal(m.rec_flags, MOUNT_ATTR_STRICTATIME | MOUNT_ATTR_NOATIME);
	assert_int_equal(m.rec_clear, MOUNT_ATTR_RDONLY | MOUNT_ATTR__ATIME);
	/* Last propagation wins. */
	char *props[] = { "shared", "rslave", NULL };
	assert_int_equal(mount_options_parse(props, "o", &m, &err), 0);
	assert_int_equal(m.propagation, MS_SLAVE | MS_REC);

	/* Remount read-write. */
	char *remount[] = { "remount", "rw", "nosuid", NULL };
	assert_int_equal(mount_options_parse(remount, "o", &m, &err), 0);
	assert_int_equal(m.flags, MS_REMOUNT | MS_NOSUID);
	assert_int_equal(m.clear_flags, MS_RDONLY);

	/* Unknown words and key=value go to the file system; parsing again replaces data. */
	char *data[] = { "nosuid", "size=64m", "newinstance", "mode=0755", "uid=1000", NULL };
	assert_int_equal(mount_options_parse(data, "o", &m, &err), 0);
	assert_string_equal(m.data, "size=64m,newinstance,mode=0755,uid=1000");
	assert_int_equal(m.flags, MS_NOSUID);
	assert_int_equal(m.clear_flags, 0);
	assert_int_equal(m.propagation, 0);
	assert_int_equal(m.rec_flags | m.rec_clear, 0);

	char *idmap[] = { "bind", "idmap", "tmpcopyup", NULL };
	assert_int_equal(mount_options_parse(idmap, "o", &m, &err), 0);
	assert_null(m.data);
	assert_true(m.idmap);
	assert_true(m.bind);
	assert_true(m.tmpcopyup);
	char *ridmap[] = { "ridmap", "tmpcopyup", "notmpcopyup", NULL };
	assert_int_equal(mount_options_parse(ridmap, "o", &m, &err), 0);
	assert_true(m.idmap);
	assert_false(m.bind);
	assert_false(m.tmpcopyup);

	/* No options at all. */
	assert_int_equal(mount_options_parse(NULL, "o", &m, &err), 0);
	assert_int_equal(m.flags | m.clear_flags | m.propagation | m.rec_flags | m.rec_clear, 0);
	assert_false(m.idmap);
	char *none[] = { NULL };
	assert_int_equal(mount_options_parse(none, "o", &m, &err), 0);
	assert_null(m.data);
	mount_clear(&m);
}

/* mount_options_parse recognises every word "features" advertises. */
static void check_option_known(const char *name, void *data)
{
	struct gr_error err = { 0 };
	struct oci_mount m = { 0 };
	char *opts[] = { (char *)name, NULL };
	assert_int_equal(mount_options_parse(opts, "o", &m, &err), 0);
	if (m.data)
		fail_msg("%s went to data", name);
	(*(size_t *)data)++;
}

static void test_mountopt_names(void **state)
{
	(void)state;
	size_t n = 0;
	mount_options_foreach(check_option_known, &n);
	assert_int_equal(n, 57);
}

static void test_mountopt_errors(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct oci_mount m = { 0 };
	char *empty[] = { "ro", "", NULL };
	assert_int_equal(mount_options_parse(empty, "mounts[3].options", &m, &err), -EINVAL);
	assert_string_equal(err.msg, "mounts[3].options[1]: empty mount option");
	char *comma[] = { "ro,nosuid", NULL };
	assert_int_equal(mount_options_parse(comma, "mounts[0].options", &m, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "mounts[0].options[0]: invalid mount option \"ro,nosuid\" (list each option separately, without ',')");
	/* A failed parse leaves the mount untouched. */
	assert_int_equal(m.flags, 0);
	assert_null(m.data);
}

/* ------------------------------------------------------------------------
 * One change to a valid base document per case
 * ---------------------------------------------------------------------- */

static const char base_config[] =
	"{\"ociVersion\": \"1.2.0\","
	" \"root\": {\"path\": \"rootfs\"},"
	" \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"env\": [\"PATH=/bin\"],"
	"   \"user\": {\"uid\": 0, \"gid\": 0}},"
	" \"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"mount\"}]}}";

struct config_case {
	const char *path;   /* dotted path of the member to set */
	const char *value;  /* JSON text, or NULL to delete the member */
	const char *path2, *value2;
	const char *msg;    /* expected error, NULL when the document must parse */
};

/* Sets (or deletes when value is NULL) a member at a dotted path, creating objects on the way. */
static void set_path(json_t *root, const char *dotted, const char *value)
{
	gr_autofree char *copy = strdup(dotted);
	json_t *obj = root;
	char *save = NULL, *key = strtok_r(copy, ".", &save), *next;
	while ((next = strtok_r(NULL, ".", &save))) {
		json_t *child = json_object_get(obj, key);
		if (!json_is_object(child)) {
			child = json_object();
			json_object_set_new(obj, key, child);
		}
		obj = child;
		key = next;
	}
	if (!value) {
		json_object_del(obj, key);
		return;
	}
	json_error_t je;
	json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
	if (!v)
		fail_msg("bad case JSON for %s: %s: %s", dotted, value, je.text);
	json_object_set_new(obj, key, v);
}

static void run_case(void **state)
{
	const struct config_case *tc = *state;
	struct gr_error err = { 0 };
	struct oci_config *c = NULL;
	gr_autojson json_t *j = parse_json(base_config);

	set_path(j, tc->path, tc->value);
	if (tc->path2)
		set_path(j, tc->path2, tc->value2);
	int r = oci_config_parse(j, &c, &err);
	if (!tc->msg) {
		if (r < 0)
			fail_msg("%s = %s: unexpected error: %s", tc->path, tc->value, err.msg);
		oci_config_free(c);
		return;
	}
	if (r == 0) {
		oci_config_free(c);
		fail_msg("%s = %s: accepted, expected \"%s\"", tc->path, tc->value ? tc->value : "(deleted)", tc->msg);
	}
	assert_int_equal(r, -EINVAL);
	assert_int_equal(err.code, EINVAL);
	assert_null(c);
	assert_string_equal(err.msg, tc->msg);
}

#define OK(p, v) { p, v, NULL, NULL, NULL }
#define OK2(p, v, p2, v2) { p, v, p2, v2, NULL }
#define BAD(p, v, m) { p, v, NULL, NULL, m }
#define BAD2(p, v, p2, v2, m) { p, v, p2, v2, m }

static const struct config_case cases[] = {
	/* valid variations */
	OK("hostname", "\"h\""),
	OK("hostname", "null"),
	OK("process", NULL),
	OK("linux", NULL),
	OK("mounts", "[]"),
	OK("ociVersion", "\"1.0.0\""),
	OK("ociVersion", "\"1.0.2-dev\""),
	OK("ociVersion", "\"1.1.0-rc.1\""),
	OK("windows", "{\"layerFolders\": 5}"),
	OK("solaris", "[1]"),
	OK("vm", "\"whatever\""),
	OK("org.example.unknown", "{\"x\": 1}"),
	OK("process.unknownKey", "[1, 2]"),
	OK("linux.unknownKey", "true"),
	OK("linux.resources.memory.unknown", "\"x\""),
	OK("process.scheduler", "{\"policy\": \"SCHED_FIFO\", \"priority\": 1}"),
	OK("process.user", NULL),
	OK("process.env", NULL),
	OK("process.ioPriority", "{\"class\": \"IOPRIO_CLASS_RT\"}"),
	OK("process.oomScoreAdj", "-1000"),
	OK("process.oomScoreAdj", "1000"),
	OK("linux.namespaces", "[{\"type\": \"user\", \"path\": \"/proc/1/ns/user\"}]"),
	OK("linux", "{\"namespaces\": [{\"type\": \"user\"}],"
	   " \"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}],"
	   " \"gidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}]}"),
	OK("linux.timeOffsets", "{}"),
	OK2("linux.namespaces", "[{\"type\": \"time\", \"path\": \"/proc/1/ns/time\"}]",
	    "linux.timeOffsets", "{\"boottime\": {\"secs\": 1}}"),
	OK("linux.rootfsPropagation", "\"private\""),
	OK("linux.rootfsPropagation", "\"runbindable\""),
	OK("linux.intelRdt", "{}"),
	OK("linux.resources.devices", "[{\"allow\": true, \"type\": \"a\", \"access\": \"\"}]"),
	OK("linux.resources.memory.swappiness", "0"),
	OK("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ALLOW\"}"),
	OK("annotations", "{}"),
	OK("linux.devices", "[{\"type\": \"p\", \"path\": \"/dev/f\", \"major\": 0, \"minor\": 0}]"),

	/* ociVersion and root */
	BAD("ociVersion", NULL, "ociVersion: required field is missing"),
	BAD("ociVersion", "null", "ociVersion: required field is missing"),
	BAD("ociVersion", "1", "ociVersion: expected a string, got 1"),
	BAD("ociVersion", "\"2.0.0\"", "ociVersion: unsupported version \"2.0.0\" (supported: 1.0.0 to 1.2.x)"),
	BAD("ociVersion", "\"1.3.0\"", "ociVersion: unsupported version \"1.3.0\" (supported: 1.0.0 to 1.2.x)"),
	BAD("ociVersion", "\"latest\"",
	    "ociVersion: invalid version \"latest\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")"),
	BAD("root", NULL, "root: required field is missing"),
	BAD("root", "\"rootfs\"", "root: expected an object, got \"rootfs\""),
	BAD("root.path", NULL, "root.path: required field is missing"),
	BAD("root.path", "\"\"", "root.path: must not be empty"),
	BAD("root.path", "[]", "root.path: expected a string, got []"),
	BAD("root.readonly", "\"yes\"", "root.readonly: expected true or false, got \"yes\""),
	BAD("hostname", "7", "hostname: expected a string, got 7"),
	BAD("domainname", "false", "domainname: expected a string, got false"),

	/* mounts */
	BAD("mounts", "{}", "mounts: expected an array, got {}"),
	BAD("mounts", "[\"/proc\"]", "mounts[0]: expected an object, got \"/proc\""),
	BAD("mounts", "[{\"destination\": \"/a\"}, {\"type\": \"tmpfs\"}]",
	    "mounts[1].destination: required field is missing"),
	BAD("mounts", "[{\"destination\": \"proc\"}]", "mounts[0].destination: must be an absolute path, got \"proc\""),
	BAD("mounts", "[{\"destination\": 1}]", "mounts[0].destination: expected a string, got 1"),
	BAD("mounts", "[{\"destination\": \"/a\", \"type\": 5}]", "mounts[0].type: expected a string, got 5"),
	BAD("mounts", "[{\"destination\": \"/a\", \"source\": {}}]", "mounts[0].source: expected a string, got {}"),
	BAD("mounts", "[{\"destination\": \"/a\", \"options\": \"ro\"}]",
	    "mounts[0].options: expected an array, got \"ro\""),
	BAD("mounts", "[{\"destination\": \"/a\", \"options\": [\"ro\", 1]}]",
	    "mounts[0].options[1]: expected a string, got 1"),
	BAD("mounts", "[{\"destination\": \"/a\", \"options\": [\"\"]}]", "mounts[0].options[0]: empty mount option"),
	BAD("mounts", "[{\"destination\": \"/a\", \"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000}]}]",
	    "mounts[0].uidMappings[0].size: required field is missing"),
	BAD("mounts", "[{\"destination\": \"/a\", \"gidMappings\": [{\"containerID\": -1, \"hostID\": 0, \"size\": 1}]}]",
	    "mounts[0].gidMappings[0].containerID: expected an integer between 0 and 4294967295, got -1"),

	/* process */
	BAD("process", "\"sh\"", "process: expected an object, got \"sh\""),
	BAD("process.args", NULL, "process.args: required field is missing"),
	BAD("process.args", "[]", "process.args: must contain at least the program to run"),
	BAD("process.args", "\"sh\"", "process.args: expected an array, got \"sh\""),
	BAD("process.args", "[\"sh\", 1]", "process.args[1]: expected a string, got 1"),
	BAD("process.cwd", NULL, "process.cwd: required field is missing"),
	BAD("process.cwd", "\"tmp\"", "process.cwd: must be an absolute path, got \"tmp\""),
	BAD("process.cwd", "\"\"", "process.cwd: must be an absolute path, got \"\""),
	BAD("process.env", "[\"PATH=/bin\", \"FOO\"]", "process.env[1]: expected NAME=VALUE, got \"FOO\""),
	BAD("process.env", "[\"=x\"]", "process.env[0]: expected NAME=VALUE, got \"=x\""),
	BAD("process.env", "[null]", "process.env[0]: expected a string, got null"),
	BAD("process.terminal", "1", "process.terminal: expected true or false, got 1"),
	BAD("process.consoleSize", "{\"height\": 10}", "process.consoleSize.width: required field is missing"),
	BAD("process.consoleSize", "{\"height\": -1, \"width\": 1}",
	    "process.consoleSize.height: expected an integer between 0 and 4294967295, got -1"),
	BAD("process.consoleSize", "[]", "process.consoleSize: expected an object, got []"),
	BAD("process.commandLine", "[]", "process.commandLine: expected a string, got []"),
	BAD("process.user", "0", "process.user: expected an object, got 0"),
	BAD("process.user.uid", "-1", "process.user.uid: expected an integer between 0 and 4294967295, got -1"),
	BAD("process.user.gid", "\"0\"", "process.user.gid: expected an integer between 0 and 4294967295, got \"0\""),
	BAD("process.user.umask", "\"022\"",
	    "process.user.umask: expected an integer between 0 and 4294967295, got \"022\""),
	BAD("process.user.additionalGids", "[1, \"x\"]",
	    "process.user.additionalGids[1]: expected an integer between 0 and 4294967295, got \"x\""),
	BAD("process.user.additionalGids", "5", "process.user.additionalGids: expected an array, got 5"),
	BAD("process.capabilities", "[]", "process.capabilities: expected an object, got []"),
	BAD("process.capabilities.bounding", "[\"CAP_CHOWN\", \"CAP_FOO\"]",
	    "process.capabilities.bounding[1]: unknown capability \"CAP_FOO\""),
	BAD("process.capabilities.effective", "[\"chown\"]", "process.capabilities.effective[0]: unknown capability \"chown\""),
	BAD("process.capabilities.inheritable", "[\"CAP_KILL\", \"\"]",
	    "process.capabilities.inheritable[1]: unknown capability \"\""),
	BAD("process.capabilities.permitted", "[\"CAP_SYS_ADMINX\"]",
	    "process.capabilities.permitted[0]: unknown capability \"CAP_SYS_ADMINX\""),
	BAD("process.capabilities.ambient", "[1]", "process.capabilities.ambient[0]: expected a string, got 1"),
	BAD("process.capabilities.ambient", "\"CAP_KILL\"", "process.capabilities.ambient: expected an array, got \"CAP_KILL\""),
	BAD("process.rlimits", "[{\"type\": \"RLIMIT_NOFILE\", \"soft\": 1, \"hard\": 2}, {\"type\": \"RLIMIT_FOO\", \"soft\": 1, \"hard\": 1}]",
	    "process.rlimits[1].type: unknown resource \"RLIMIT_FOO\""),
	BAD("process.rlimits", "[{\"soft\": 1, \"hard\": 2}]", "process.rlimits[0].type: required field is missing"),
	BAD("process.rlimits", "[{\"type\": \"RLIMIT_CORE\", \"soft\": \"1\", \"hard\": 2}]",
	    "process.rlimits[0].soft: expected an unsigned integer, got \"1\""),
	BAD("process.rlimits", "[{\"type\": \"RLIMIT_CORE\", \"soft\": 1, \"hard\": -1}]",
	    "process.rlimits[0].hard: expected an unsigned integer, got -1"),
	BAD("process.rlimits", "[{\"type\": \"RLIMIT_CORE\", \"soft\": 1}]", "process.rlimits[0].hard: required field is missing"),
	BAD("process.rlimits", "[{\"type\": \"RLIMIT_CORE\", \"hard\": 1}]", "process.rlimits[0].soft: required field is missing"),
	BAD("process.rlimits", "[{\"type\": \"RLIMIT_NOFILE\", \"soft\": 1, \"hard\": 1}, {\"type\": \"RLIMIT_NOFILE\", \"soft\": 2, \"hard\": 2}]",
	    "process.rlimits: \"RLIMIT_NOFILE\" listed twice"),
	BAD("process.rlimits", "{}", "process.rlimits: expected an array, got {}"),
	BAD("process.rlimits", "[\"RLIMIT_CORE\"]", "process.rlimits[0]: expected an object, got \"RLIMIT_CORE\""),
	BAD("process.noNewPrivileges", "\"true\"", "process.noNewPrivileges: expected true or false, got \"true\""),
	BAD("process.oomScoreAdj", "1001", "process.oomScoreAdj: must be between -1000 and 1000, got 1001"),
	BAD("process.oomScoreAdj", "-1001", "process.oomScoreAdj: must be between -1000 and 1000, got -1001"),
	BAD("process.oomScoreAdj", "\"x\"", "process.oomScoreAdj: expected a 32-bit integer, got \"x\""),
	BAD("process.apparmorProfile", "1", "process.apparmorProfile: expected a string, got 1"),
	BAD("process.selinuxLabel", "{}", "process.selinuxLabel: expected a string, got {}"),
	BAD("process.ioPriority", "{\"class\": \"IOPRIO_CLASS_FOO\"}",
	    "process.ioPriority.class: unknown class \"IOPRIO_CLASS_FOO\" (expected IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)"),
	BAD("process.ioPriority", "{\"priority\": 1}", "process.ioPriority.class: required field is missing"),
	BAD("process.ioPriority", "{\"class\": \"IOPRIO_CLASS_BE\", \"priority\": 8}",
	    "process.ioPriority.priority: must be between 0 and 7, got 8"),
	BAD("process.ioPriority", "{\"class\": \"IOPRIO_CLASS_BE\", \"priority\": -1}",
	    "process.ioPriority.priority: must be between 0 and 7, got -1"),
	BAD("process.ioPriority", "\"be\"", "process.ioPriority: expected an object, got \"be\""),

	/* hooks */
	BAD("hooks", "[]", "hooks: expected an object, got []"),
	BAD("hooks.prestart", "{}", "hooks.prestart: expected an array, got {}"),
	BAD("hooks.prestart", "[{\"args\": [\"x\"]}]", "hooks.prestart[0].path: required field is missing"),
	BAD("hooks.createRuntime", "[{\"path\": \"/a\"}, {}]", "hooks.createRuntime[1].path: required field is missing"),
	BAD("hooks.createContainer", "[{\"path\": \"hook\"}]", "hooks.createContainer[0].path: must be an absolute path, got \"hook\""),
	BAD("hooks.startContainer", "[{\"path\": \"/h\", \"args\": [1]}]", "hooks.startContainer[0].args[0]: expected a string, got 1"),
	BAD("hooks.poststart", "[{\"path\": \"/h\", \"timeout\": 0}]", "hooks.poststart[0].timeout: must be greater than zero, got 0"),
	BAD("hooks.poststop", "[{\"path\": \"/h\", \"timeout\": -5}]", "hooks.poststop[0].timeout: must be greater than zero, got -5"),
	BAD("hooks.poststop", "[{\"path\": \"/h\", \"timeout\": \"5s\"}]", "hooks.poststop[0].timeout: expected a 32-bit integer, got \"5s\""),
	BAD("hooks.prestart", "[{\"path\": \"/h\", \"env\": [\"X\"]}]", "hooks.prestart[0].env[0]: expected NAME=VALUE, got \"X\""),
	BAD("hooks.prestart", "[\"/bin/true\"]", "hooks.prestart[0]: expected an object, got \"/bin/true\""),

	/* annotations */
	BAD("annotations", "[]", "annotations: expected an object, got []"),
	BAD("annotations", "{\"a\": \"b\", \"org.x\": 1}", "annotations.org.x: expected a string, got 1"),

	/* linux */
	BAD("linux", "[]", "linux: expected an object, got []"),
	BAD("linux.namespaces", "[{\"type\": \"pid\"}, {\"type\": \"mount\"}, {\"type\": \"foo\"}]",
	    "linux.namespaces[2].type: unknown namespace type \"foo\""),
	BAD("linux.namespaces", "[{\"type\": \"net\"}]", "linux.namespaces[0].type: unknown namespace type \"net\""),
	BAD("linux.namespaces", "[{\"type\": \"pid\"}, {\"type\": \"pid\"}]", "linux.namespaces: \"pid\" listed twice"),
	BAD("linux.namespaces", "[{\"path\": \"/proc/1/ns/pid\"}]", "linux.namespaces[0].type: required field is missing"),
	BAD("linux.namespaces", "[{\"type\": \"network\", \"path\": \"netns\"}]",
	    "linux.namespaces[0].path: must be an absolute path, got \"netns\""),
	BAD("linux.namespaces", "[{\"type\": 1}]", "linux.namespaces[0].type: expected a string, got 1"),
	BAD("linux.namespaces", "[\"pid\"]", "linux.namespaces[0]: expected an object, got \"pid\""),
	BAD("linux.namespaces", "{\"pid\": {}}", "linux.namespaces: expected an array, got {\"pid\":{}}"),
	BAD("linux.namespaces", "[{\"type\": \"user\"}]",
	    "linux.uidMappings: required when a new user namespace is requested"),
	BAD2("linux.namespaces", "[{\"type\": \"user\"}]",
	     "linux.uidMappings", "[{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}]",
	     "linux.gidMappings: required when a new user namespace is requested"),
	BAD2("linux.namespaces", "[{\"type\": \"user\"}]", "linux.uidMappings", "[]",
	     "linux.uidMappings: required when a new user namespace is requested"),
	BAD("linux.uidMappings", "[{\"containerID\": 0, \"hostID\": \"1000\", \"size\": 1}]",
	    "linux.uidMappings[0].hostID: expected an integer between 0 and 4294967295, got \"1000\""),
	BAD("linux.gidMappings", "[{\"hostID\": 0, \"size\": 1}]", "linux.gidMappings[0].containerID: required field is missing"),
	BAD("linux.devices", "[{\"type\": \"x\", \"path\": \"/dev/x\"}]",
	    "linux.devices[0].type: unknown device type \"x\" (expected c, b, u or p)"),
	BAD("linux.devices", "[{\"type\": \"cb\", \"path\": \"/dev/x\"}]",
	    "linux.devices[0].type: unknown device type \"cb\" (expected c, b, u or p)"),
	BAD("linux.devices", "[{\"path\": \"/dev/null\"}]", "linux.devices[0].type: required field is missing"),
	BAD("linux.devices", "[{\"type\": \"c\", \"major\": 1, \"minor\": 3}]", "linux.devices[0].path: required field is missing"),
	BAD("linux.devices", "[{\"type\": \"c\", \"path\": \"/dev/null\", \"major\": 1}]",
	    "linux.devices[0].minor: required field is missing"),
	BAD("linux.devices", "[{\"type\": \"b\", \"path\": \"/dev/sda\", \"minor\": 1}]",
	    "linux.devices[0].major: required field is missing"),
	BAD("linux.devices", "[{\"type\": \"u\", \"path\": \"/dev/u\"}]", "linux.devices[0].major: required field is missing"),
	BAD("linux.devices", "[{\"type\": \"c\", \"path\": \"dev/null\", \"major\": 1, \"minor\": 3}]",
	    "linux.devices[0].path: must be an absolute path, got \"dev/null\""),
	BAD("linux.devices", "[{\"type\": \"c\", \"path\": \"/dev/null\", \"major\": -1, \"minor\": 3}]",
	    "linux.devices[0].major: must not be negative, got -1"),
	BAD("linux.devices", "[{\"type\": \"c\", \"path\": \"/dev/null\", \"major\": 1, \"minor\": \"3\"}]",
	    "linux.devices[0].minor: expected an integer, got \"3\""),
	BAD("linux.devices", "[{\"type\": \"c\", \"path\": \"/dev/null\", \"major\": 1, \"minor\": 3, \"fileMode\": \"0666\"}]",
	    "linux.devices[0].fileMode: expected an integer between 0 and 4294967295, got \"0666\""),
	BAD("linux.devices", "[{\"type\": \"c\", \"path\": \"/dev/null\", \"major\": 1, \"minor\": 3, \"uid\": -1}]",
	    "linux.devices[0].uid: expected an integer between 0 and 4294967295, got -1"),
	BAD("linux.devices", "[{\"type\": \"c\", \"path\": \"/dev/null\", \"major\": 1, \"minor\": 3, \"gid\": 1.5}]",
	    "linux.devices[0].gid: expected an integer between 0 and 4294967295, got 1.5"),
	BAD("linux.cgroupsPath", "1", "linux.cgroupsPath: expected a string, got 1"),

	/* linux.resources */
	BAD("linux.resources", "[]", "linux.resources: expected an object, got []"),
	BAD("linux.resources.devices", "[{\"access\": \"rwm\"}]", "linux.resources.devices[0].allow: required field is missing"),
	BAD("linux.resources.devices", "[{\"allow\": \"yes\"}]",
	    "linux.resources.devices[0].allow: expected true or false, got \"yes\""),
	BAD("linux.resources.devices", "[{\"allow\": true, \"access\": \"rwx\"}]",
	    "linux.resources.devices[0].access: invalid access \"rwx\" (expected a combination of r, w and m)"),
	BAD("linux.resources.devices", "[{\"allow\": true, \"access\": \"rr\"}]",
	    "linux.resources.devices[0].access: invalid access \"rr\" (expected a combination of r, w and m)"),
	BAD("linux.resources.devices", "[{\"allow\": true, \"type\": \"p\"}]",
	    "linux.resources.devices[0].type: unknown device type \"p\" (expected a, c or b)"),
	BAD("linux.resources.devices", "[{\"allow\": true, \"type\": \"c\", \"major\": \"*\"}]",
	    "linux.resources.devices[0].major: expected an integer, got \"*\""),
	BAD("linux.resources.devices", "[{\"allow\": true, \"major\": -7}]",
	    "linux.resources.devices[0].major: must be -1 (any) or a device number, got -7"),
	BAD("linux.resources.devices", "[{\"allow\": true, \"minor\": -2}]",
	    "linux.resources.devices[0].minor: must be -1 (any) or a device number, got -2"),
	BAD("linux.resources.memory", "1", "linux.resources.memory: expected an object, got 1"),
	BAD("linux.resources.memory.limit", "\"1G\"", "linux.resources.memory.limit: expected an integer, got \"1G\""),
	BAD("linux.resources.memory.limit", "1.5", "linux.resources.memory.limit: expected an integer, got 1.5"),
	BAD("linux.resources.memory.reservation", "\"1\"", "linux.resources.memory.reservation: expected an integer, got \"1\""),
	BAD("linux.resources.memory.swap", "true", "linux.resources.memory.swap: expected an integer, got true"),
	BAD("linux.resources.memory.kernel", "[]", "linux.resources.memory.kernel: expected an integer, got []"),
	BAD("linux.resources.memory.kernelTCP", "{}", "linux.resources.memory.kernelTCP: expected an integer, got {}"),
	BAD("linux.resources.memory.swappiness", "101", "linux.resources.memory.swappiness: must be between 0 and 100, got 101"),
	BAD("linux.resources.memory.swappiness", "-1", "linux.resources.memory.swappiness: expected an unsigned integer, got -1"),
	BAD("linux.resources.memory.disableOOMKiller", "1",
	    "linux.resources.memory.disableOOMKiller: expected true or false, got 1"),
	BAD("linux.resources.memory.useHierarchy", "\"no\"", "linux.resources.memory.useHierarchy: expected true or false, got \"no\""),
	BAD("linux.resources.memory.checkBeforeUpdate", "0",
	    "linux.resources.memory.checkBeforeUpdate: expected true or false, got 0"),
	BAD("linux.resources.cpu.shares", "-1", "linux.resources.cpu.shares: expected an unsigned integer, got -1"),
	BAD("linux.resources.cpu.quota", "\"max\"", "linux.resources.cpu.quota: expected an integer, got \"max\""),
	BAD("linux.resources.cpu.burst", "-1", "linux.resources.cpu.burst: expected an unsigned integer, got -1"),
	BAD("linux.resources.cpu.period", "\"100000\"", "linux.resources.cpu.period: expected an unsigned integer, got \"100000\""),
	BAD("linux.resources.cpu.realtimeRuntime", "\"1\"", "linux.resources.cpu.realtimeRuntime: expected an integer, got \"1\""),
	BAD("linux.resources.cpu.realtimePeriod", "-5", "linux.resources.cpu.realtimePeriod: expected an unsigned integer, got -5"),
	BAD("linux.resources.cpu.cpus", "0", "linux.resources.cpu.cpus: expected a string, got 0"),
	BAD("linux.resources.cpu.mems", "[0]", "linux.resources.cpu.mems: expected a string, got [0]"),
	BAD("linux.resources.cpu.idle", "true", "linux.resources.cpu.idle: expected an integer, got true"),
	BAD("linux.resources.pids.limit", "\"max\"", "linux.resources.pids.limit: expected an integer, got \"max\""),
	BAD("linux.resources.blockIO.weight", "70000",
	    "linux.resources.blockIO.weight: expected an integer between 0 and 65535, got 70000"),
	BAD("linux.resources.blockIO.leafWeight", "-1",
	    "linux.resources.blockIO.leafWeight: expected an integer between 0 and 65535, got -1"),
	BAD("linux.resources.blockIO.weightDevice", "[{\"major\": 8, \"minor\": 0, \"weight\": \"x\"}]",
	    "linux.resources.blockIO.weightDevice[0].weight: expected an integer between 0 and 65535, got \"x\""),
	BAD("linux.resources.blockIO.weightDevice", "[{\"major\": 8, \"minor\": 0, \"leafWeight\": 65536}]",
	    "linux.resources.blockIO.weightDevice[0].leafWeight: expected an integer between 0 and 65535, got 65536"),
	BAD("linux.resources.blockIO.weightDevice", "[{\"minor\": 0}]",
	    "linux.resources.blockIO.weightDevice[0].major: required field is missing"),
	BAD("linux.resources.blockIO.throttleReadBpsDevice", "[{\"major\": 8, \"minor\": 0}]",
	    "linux.resources.blockIO.throttleReadBpsDevice[0].rate: required field is missing"),
	BAD("linux.resources.blockIO.throttleWriteBpsDevice", "[{\"major\": 8, \"minor\": 0, \"rate\": -1}]",
	    "linux.resources.blockIO.throttleWriteBpsDevice[0].rate: expected an unsigned integer, got -1"),
	BAD("linux.resources.blockIO.throttleReadIOPSDevice", "[{\"major\": \"8\", \"minor\": 0, \"rate\": 1}]",
	    "linux.resources.blockIO.throttleReadIOPSDevice[0].major: expected an integer, got \"8\""),
	BAD("linux.resources.blockIO.throttleWriteIOPSDevice", "[{\"major\": 8, \"rate\": 1}]",
	    "linux.resources.blockIO.throttleWriteIOPSDevice[0].minor: required field is missing"),
	BAD("linux.resources.blockIO.throttleWriteIOPSDevice", "[1]",
	    "linux.resources.blockIO.throttleWriteIOPSDevice[0]: expected an object, got 1"),
	BAD("linux.resources.hugepageLimits", "[{\"limit\": 1}]",
	    "linux.resources.hugepageLimits[0].pageSize: required field is missing"),
	BAD("linux.resources.hugepageLimits", "[{\"pageSize\": \"2MB\", \"limit\": -1}]",
	    "linux.resources.hugepageLimits[0].limit: expected an unsigned integer, got -1"),
	BAD("linux.resources.hugepageLimits", "[{\"pageSize\": \"2MB\"}]",
	    "linux.resources.hugepageLimits[0].limit: required field is missing"),
	BAD("linux.resources.network.classID", "-1",
	    "linux.resources.network.classID: expected an integer between 0 and 4294967295, got -1"),
	BAD("linux.resources.network.priorities", "[{\"name\": \"eth0\"}]",
	    "linux.resources.network.priorities[0].priority: required field is missing"),
	BAD("linux.resources.network.priorities", "[{\"priority\": 1}]",
	    "linux.resources.network.priorities[0].name: required field is missing"),
	BAD("linux.resources.rdma", "{\"mlx\": {\"hcaHandles\": \"x\"}}",
	    "linux.resources.rdma.mlx.hcaHandles: expected an integer between 0 and 4294967295, got \"x\""),
	BAD("linux.resources.rdma", "{\"mlx\": {\"hcaObjects\": -1}}",
	    "linux.resources.rdma.mlx.hcaObjects: expected an integer between 0 and 4294967295, got -1"),
	BAD("linux.resources.rdma", "{\"mlx\": 1}", "linux.resources.rdma.mlx: expected an object, got 1"),
	BAD("linux.resources.rdma", "[]", "linux.resources.rdma: expected an object, got []"),
	BAD("linux.resources.unified", "{\"memory.max\": 1}", "linux.resources.unified.memory.max: expected a string, got 1"),
	BAD("linux.sysctl", "{\"net.ipv4.ip_forward\": 1}", "linux.sysctl.net.ipv4.ip_forward: expected a string, got 1"),
	BAD("linux.sysctl", "[\"a=b\"]", "linux.sysctl: expected an object, got [\"a=b\"]"),

	/* linux.seccomp */
	BAD("linux.seccomp", "{}", "linux.seccomp.defaultAction: required field is missing"),
	BAD("linux.seccomp", "\"unconfined\"", "linux.seccomp: expected an object, got \"unconfined\""),
	BAD("linux.seccomp", "{\"defaultAction\": 1}", "linux.seccomp.defaultAction: expected a string, got 1"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": -1}",
	    "linux.seccomp.defaultErrnoRet: expected an integer between 0 and 4294967295, got -1"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"architectures\": \"SCMP_ARCH_X86_64\"}",
	    "linux.seccomp.architectures: expected an array, got \"SCMP_ARCH_X86_64\""),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"flags\": [1]}",
	    "linux.seccomp.flags[0]: expected a string, got 1"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"listenerPath\": \"agent.sock\"}",
	    "linux.seccomp.listenerPath: must be an absolute path, got \"agent.sock\""),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"listenerMetadata\": 5}",
	    "linux.seccomp.listenerMetadata: expected a string, got 5"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"action\": \"SCMP_ACT_ALLOW\"}]}",
	    "linux.seccomp.syscalls[0].names: required field is missing"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [], \"action\": \"SCMP_ACT_ALLOW\"}]}",
	    "linux.seccomp.syscalls[0].names: must list at least one system call"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"]}]}",
	    "linux.seccomp.syscalls[0].action: required field is missing"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": \"EPERM\"}]}",
	    "linux.seccomp.syscalls[0].errnoRet: expected an integer between 0 and 4294967295, got \"EPERM\""),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\","
	    " \"args\": [{\"index\": 6, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}",
	    "linux.seccomp.syscalls[0].args[0].index: must be between 0 and 5, got 6"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\"},"
	    " {\"names\": [\"write\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"},"
	    " {\"index\": 1, \"value\": 0, \"op\": \"SCMP_CMP_FOO\"}]}]}",
	    "linux.seccomp.syscalls[1].args[1].op: unknown operator \"SCMP_CMP_FOO\""),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\","
	    " \"args\": [{\"index\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}",
	    "linux.seccomp.syscalls[0].args[0].value: required field is missing"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\","
	    " \"args\": [{\"index\": 0, \"value\": 1}]}]}",
	    "linux.seccomp.syscalls[0].args[0].op: required field is missing"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\","
	    " \"args\": [{\"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
	    "linux.seccomp.syscalls[0].args[0].index: required field is missing"),
	BAD("linux.seccomp", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\","
	    " \"args\": [{\"index\": 0, \"value\": 1, \"valueTwo\": \"x\", \"op\": \"SCMP_CMP_EQ\"}]}]}",
	    "linux.seccomp.syscalls[0].args[0].valueTwo: expected an unsigned integer, got \"x\""),

	/* the rest of linux */
	BAD("linux.rootfsPropagation", "\"foo\"",
	    "linux.rootfsPropagation: unknown propagation \"foo\" (expected shared, slave, private or unbindable, optionally prefixed with r)"),
	BAD("linux.rootfsPropagation", "1", "linux.rootfsPropagation: expected a string, got 1"),
	BAD("linux.maskedPaths", "[\"proc/kcore\"]", "linux.maskedPaths[0]: must be an absolute path, got \"proc/kcore\""),
	BAD("linux.maskedPaths", "[1]", "linux.maskedPaths[0]: expected a string, got 1"),
	BAD("linux.readonlyPaths", "[\"/proc/sys\", \"sys\"]", "linux.readonlyPaths[1]: must be an absolute path, got \"sys\""),
	BAD("linux.mountLabel", "1", "linux.mountLabel: expected a string, got 1"),
	BAD("linux.personality", "{\"domain\": \"LINUX64\"}",
	    "linux.personality.domain: unknown domain \"LINUX64\" (expected LINUX or LINUX32)"),
	BAD("linux.personality", "{}", "linux.personality.domain: required field is missing"),
	BAD("linux.personality", "{\"domain\": \"LINUX\", \"flags\": \"x\"}", "linux.personality.flags: expected an array, got \"x\""),
	BAD("linux.timeOffsets", "{\"monotonic\": {\"secs\": 1}}",
	    "linux.timeOffsets: requires a time namespace (add {\"type\": \"time\"} to linux.namespaces)"),
	BAD2("linux.namespaces", "[{\"type\": \"time\"}]", "linux.timeOffsets", "{\"realtime\": {\"secs\": 1}}",
	     "linux.timeOffsets: unknown clock \"realtime\" (expected monotonic or boottime)"),
	BAD2("linux.namespaces", "[{\"type\": \"time\"}]", "linux.timeOffsets", "{\"boottime\": {\"nanosecs\": 1000000000}}",
	     "linux.timeOffsets.boottime.nanosecs: must be below 1000000000, got 1000000000"),
	BAD2("linux.namespaces", "[{\"type\": \"time\"}]", "linux.timeOffsets", "{\"boottime\": {\"secs\": \"1\"}}",
	     "linux.timeOffsets.boottime.secs: expected an integer, got \"1\""),
	BAD2("linux.namespaces", "[{\"type\": \"time\"}]", "linux.timeOffsets", "{\"monotonic\": 5}",
	     "linux.timeOffsets.monotonic: expected an object, got 5"),
	BAD("linux.timeOffsets", "[]", "linux.timeOffsets: expected an object, got []"),
	BAD("linux.intelRdt", "{\"closID\": 1}", "linux.intelRdt.closID: expected a string, got 1"),
	BAD("linux.intelRdt", "\"x\"", "linux.intelRdt: expected an object, got \"x\""),
};

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_runc_spec),
		cmocka_unit_test(test_runc_rootless),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_load_bundle_dir),
		cmocka_unit_test(test_json_reference),
		cmocka_unit_test(test_process_parse_standalone),
		cmocka_unit_test(test_resources_parse_standalone),
		cmocka_unit_test(test_ns_tables),
		cmocka_unit_test(test_version_accepted),
		cmocka_unit_test(test_version_rejected),
		cmocka_unit_test(test_mountopt_flags),
		cmocka_unit_test(test_mountopt_recursive),
		cmocka_unit_test(test_mountopt_propagation),
		cmocka_unit_test(test_mountopt_combined),
		cmocka_unit_test(test_mountopt_names),
		cmocka_unit_test(test_mountopt_errors),
	};
	size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);
	size_t n_cases = sizeof(cases) / sizeof(cases[0]);
	struct CMUnitTest *tests = calloc(n_fixed + n_cases, sizeof(*tests));
	char **names = calloc(n_cases, sizeof(char *));
	if (!tests || !names)
		return 1;
	memcpy(tests, fixed, sizeof(fixed));
	for (size_t i = 0; i < n_cases; i++) {
		const struct config_case *tc = &cases[i];
		if (asprintf(&names[i], "%s %s = %.40s%s", tc->msg ? "reject" : "accept", tc->path,
			     tc->value ? tc->value : "(deleted)", tc->path2 ? " +1" : "") < 0)
			return 1;
		tests[n_fixed + i] = (struct CMUnitTest){
			.name = names[i],
			.test_func = run_case,
			.initial_state = (void *)tc,
		};
	}
	int failed = _cmocka_run_group_tests("config", tests, n_fixed + n_cases, NULL, NULL);
	for (size_t i = 0; i < n_cases; i++)
		free(names[i]);
	free(names);
	free(tests);
	return failed;
}
