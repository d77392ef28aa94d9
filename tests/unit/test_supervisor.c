/* gureum-supervisor's pure parts and the container driver's config.json:
 * restart policy and back-off, log rotation, exit.json, instance paths,
 * supervisor liveness through the pid file's lock, the OCI config made
 * from an instance (checked by the container library's own parser), and the
 * engine workload's parts: run-engine's arguments and the QMP client
 * (against a socketpair playing QEMU). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "container/config.h"
#include "daemon/instance/container.h"
#include "daemon/instance/supervised.h"
#include "daemon/supervisor/engine.h"
#include "daemon/supervisor/supervisor.h"
#include "daemon/supervisor/workload.h"

/* ---- restart policy ---- */

static void test_restart_parse(void **state)
{
	(void)state;
	struct restart_policy p;
	struct gr_error err = { 0 };
	assert_int_equal(restart_policy_parse(NULL, &p, &err), 0);
	assert_int_equal(p.mode, RESTART_NO);
	assert_int_equal(restart_policy_parse("no", &p, &err), 0);
	assert_int_equal(p.mode, RESTART_NO);
	assert_int_equal(restart_policy_parse("always", &p, &err), 0);
	assert_int_equal(p.mode, RESTART_ALWAYS);
	assert_int_equal(restart_policy_parse("on-failure", &p, &err), 0);
	assert_int_equal(p.mode, RESTART_ON_FAILURE);
	assert_int_equal(p.max, 0);
	assert_int_equal(restart_policy_parse("on-failure:3", &p, &err), 0);
	assert_int_equal(p.mode, RESTART_ON_FAILURE);
	assert_int_equal(p.max, 3);
	const char *bad[] = { "sometimes", "on-failure:0", "on-failure:", "on-failure:x", "on-failure:-1",
			      "always:3", "On-Failure", "on-failure:1000001", " no" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gr_error_clear(&err);
		assert_int_equal(restart_policy_parse(bad[i], &p, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "boot.restart"));
		assert_non_null(strstr(err.msg, bad[i]));
	}
}

static void test_restart_wanted(void **state)
{
	(void)state;
	struct restart_policy no = { RESTART_NO, 0 }, always = { RESTART_ALWAYS, 0 },
			      onf = { RESTART_ON_FAILURE, 0 }, onf2 = { RESTART_ON_FAILURE, 2 };
	assert_false(restart_wanted(&no, 1, 0));
	assert_true(restart_wanted(&always, 0, 0));
	assert_true(restart_wanted(&always, 137, 1000));
	assert_false(restart_wanted(&onf, 0, 0));
	assert_true(restart_wanted(&onf, 1, 500));
	assert_true(restart_wanted(&onf, -1, 0)); /* a failed start is a failure */
	assert_true(restart_wanted(&onf2, 3, 0));
	assert_true(restart_wanted(&onf2, 3, 1));
	assert_false(restart_wanted(&onf2, 3, 2));
	assert_false(restart_wanted(&onf2, 0, 0));
}

static void test_backoff(void **state)
{
	(void)state;
	unsigned f = 0;
	const unsigned want[] = { 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000 };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(restart_backoff_next(&f, 50), want[i]);
	/* 9.999 s is still a short run; 10 s resets. */
	assert_int_equal(restart_backoff_next(&f, 9999), 10000);
	assert_int_equal(restart_backoff_next(&f, 10000), 100);
	assert_int_equal(restart_backoff_next(&f, 0), 200);
	/* Many failures never overflow. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(restart_backoff_next(&f, 0) <= RESTART_BACKOFF_MAX_MS, 1);
	assert_int_equal(restart_backoff_next(&f, 0), 10000);
}

/* ---- log rotation ---- */

static char tmpdir[64];

static int setup_tmp(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-supervisor-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
	(void)state;
	return gr_rm_rf(tmpdir, NULL);
}

static size_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (size_t)st.st_size : (size_t)-1;
}

static char *slurp(const char *path)
{
	char *s = NULL;
	return gr_read_file(path, &s, NULL, NULL) == 0 ? s : NULL;
}

static void test_rotlog(void **state)
{
	(void)state;
	char path[128], p1[140], p2[140], p3[140];
	snprintf(path, sizeof(path), "%s/console.log", tmpdir);
	snprintf(p1, sizeof(p1), "%s.1", path);
	snprintf(p2, sizeof(p2), "%s.2", path);
	snprintf(p3, sizeof(p3), "%s.3", path);
	struct rotlog l;
	struct gr_error err = { 0 };
	assert_int_equal(rotlog_open(&l, path, 100, 3, &err), 0);
	char buf[260];
	for (int i = 0; i < 260; i++)
		buf[i] = (char)('a' + i % 26);
	/* 60 bytes, then 60 more: the second write is split across a rotation. */
	assert_int_equal(rotlog_write(&l, buf, 60, &err), 0);
	assert_int_equal(file_size(path), 60);
	assert_int_equal(rotlog_write(&l, buf + 60, 60, &err), 0);
	assert_int_equal(file_size(p1), 100);
	assert_int_equal(file_size(path), 20);
	/* A write bigger than a file fills several. */
	assert_int_equal(rotlog_write(&l, buf + 120, 140, &err), 0);
	rotlog_close(&l);
	/* 260 bytes in total: .2 dropped the oldest 0..59 already, so exactly
	 * 100 + 100 + 60 remain, in order. */
	assert_int_equal(file_size(p2), 100);
	assert_int_equal(file_size(p1), 100);
	assert_int_equal(file_size(path), 60);
	assert_int_equal(file_size(p3), (size_t)-1);
	gr_autofree char *a = slurp(p2), *b = slurp(p1), *c = slurp(path);
	assert_memory_equal(a, buf, 100);
	assert_memory_equal(b, buf + 100, 100);
	assert_memory_equal(c, buf + 200, 60);
	/* Re-opened, it appends where it was. */
	assert_int_equal(rotlog_open(&l, path, 100, 3, &err), 0);
	assert_int_equal(rotlog_write(&l, "xyz", 3, &err), 0);
	rotlog_close(&l);
	assert_int_equal(file_size(path), 63);
	/* One file only: rotation truncates. */
	assert_int_equal(rotlog_open(&l, path, 100, 1, &err), 0);
	assert_int_equal(rotlog_write(&l, buf, 50, &err), 0);
	rotlog_close(&l);
	assert_int_equal(file_size(path), 13);
	assert_int_equal(file_size(p1), 100); /* untouched from before */
}

/* The supervisor's notes never split a line of the workload's output:
 * held while it is unfinished, written once it ends. */
static void test_notes_between_lines(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/notes.log", tmpdir);
	(void)unlink(path);
	struct sup s = { .log_ok = true };
	struct gr_error err = { 0 };
	assert_int_equal(rotlog_open(&s.log, path, 1 << 20, 1, &err), 0);
	assert_int_equal(rotlog_write(&s.log, "boot\n", 5, &err), 0);
	sup_note(&s, "at a line's end: %d", 1);
	assert_int_equal(rotlog_write(&s.log, "gureum-init: pow", 16, &err), 0);
	s.log_midline = true;
	sup_note(&s, "stopping");
	sup_note(&s, "accepted");
	gr_autofree char *mid = slurp(path);
	assert_string_equal(mid, "boot\n[gureum-supervisor] at a line's end: 1\ngureum-init: pow");
	assert_int_equal(rotlog_write(&s.log, "ering off\n", 10, &err), 0);
	s.log_midline = false; /* what the output pump does after a line ends */
	sup_log_end_line(&s);
	gr_autofree char *done = slurp(path);
	assert_string_equal(done, "boot\n[gureum-supervisor] at a line's end: 1\ngureum-init: powering off\n"
				  "[gureum-supervisor] stopping\n[gureum-supervisor] accepted\n");
	/* Too much held: the unfinished line is ended rather than a note lost. */
	s.log_midline = true;
	for (int i = 0; i < 100; i++)
		sup_note(&s, "note %03d is long enough to fill the buffer soon", i);
	assert_false(s.log_midline);
	sup_log_end_line(&s);
	gr_autofree char *all = slurp(path);
	assert_non_null(strstr(all, "note 000 is"));
	assert_non_null(strstr(all, "note 099 is"));
	rotlog_close(&s.log);
}

/* /proc/PID/stat fields, and a supervisor's usage: the CPU time and memory
 * of the processes under it (here a child that spent CPU and touched
 * memory, under a stand-in supervisor). */
static void test_proc_usage(void **state)
{
	(void)state;
	uint64_t f[2], start = 0;
	assert_int_equal(gr_proc_stat_fields(getpid(), 22, 1, f), 0);
	assert_int_equal(gr_proc_start_time(getpid(), &start, NULL), 0);
	assert_int_equal(f[0], start);
	assert_int_equal(gr_proc_stat_fields(getpid(), 3, 1, f), -EINVAL); /* the state is not a number */
	assert_int_equal(gr_proc_stat_fields(getpid(), 60, 2, f), -EINVAL); /* past the last field */

	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t sup = fork();
	assert_true(sup >= 0);
	if (sup == 0) {
		pid_t engine = fork();
		if (engine == 0) {
			size_t n = 48u << 20;
			volatile char *m = malloc(n);
			for (size_t i = 0; m && i < n; i += 4096)
				m[i] = 1;
			uint64_t t[2] = { 0, 0 };
			while (gr_proc_stat_fields(getpid(), 14, 2, t) == 0 && t[0] + t[1] < 3) /* 3 ticks of CPU */
				;
			(void)!write(ready[1], "r", 1);
			pause();
			_exit(0);
		}
		pause();
		_exit(0);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	struct instance_status st = { .supervisor_pid = sup };
	supervised_usage(&st);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)sup, (int)sup);
	gr_autofree char *kids = NULL;
	assert_int_equal(gr_read_file(path, &kids, NULL, NULL), 0);
	kill((pid_t)strtol(kids, NULL, 10), SIGKILL);
	kill(sup, SIGKILL);
	waitpid(sup, NULL, 0);
	close(ready[0]);
	close(ready[1]);
	long hz = sysconf(_SC_CLK_TCK);
	assert_true(st.cpu_ns >= 3ull * (1000000000ull / (uint64_t)hz));
	assert_true(st.memory_bytes >= 48ull << 20);
	/* Nothing running: zeros. */
	st = (struct instance_status){ .cpu_ns = 1, .memory_bytes = 1 };
	supervised_usage(&st);
	assert_int_equal(st.cpu_ns, 0);
	assert_int_equal(st.memory_bytes, 0);
}

static void test_rotlog_unwritable(void **state)
{
	(void)state;
	struct rotlog l;
	struct gr_error err = { 0 };
	assert_true(rotlog_open(&l, "/nonexistent-dir/x.log", 100, 3, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/x.log"));
}

static void test_crlf_filter(void **state)
{
	(void)state;
	char out[64];
	bool cr = false;
	size_t n = log_crlf_filter("a\r\nb\rc\r", 7, out, &cr);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "a\nb\rc", 5);
	assert_true(cr); /* the last \r waits */
	n = log_crlf_filter("\nd", 2, out, &cr);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\nd", 2);
	assert_false(cr);
	log_crlf_filter("x\r", 2, out, &cr);
	n = log_crlf_filter("y", 1, out, &cr);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\ry", 2);
	assert_int_equal(log_crlf_filter("", 0, out, &cr), 0);
}

/* ---- exit.json ---- */

static void test_exit_info(void **state)
{
	(void)state;
	struct exit_info e = { .restarts = 2 };
	exit_info_from_status(&e, 3 << 8, false);
	assert_int_equal(e.exit_code, 3);
	assert_int_equal(e.signal, 0);
	assert_string_equal(e.reason, "exited with 3");
	assert_true(strlen(e.exited_at) > 20);
	exit_info_from_status(&e, SIGKILL, true);
	assert_int_equal(e.exit_code, 137);
	assert_int_equal(e.signal, SIGKILL);
	assert_string_equal(e.reason, "stopped: killed by SIGKILL");
	assert_true(e.stopped);

	char path[128];
	snprintf(path, sizeof(path), "%s/exit.json", tmpdir);
	struct gr_error err = { 0 };
	struct exit_info r;
	assert_int_equal(exit_info_read(path, &r, &err), -ENOENT);
	assert_int_equal(r.exit_code, -1);
	e.restarting = true;
	assert_int_equal(exit_info_write(path, &e, &err), 0);
	assert_int_equal(exit_info_read(path, &r, &err), 0);
	assert_int_equal(r.exit_code, 137);
	assert_int_equal(r.signal, 9);
	assert_int_equal(r.restarts, 2);
	assert_true(r.stopped);
	assert_true(r.restarting);
	assert_string_equal(r.reason, e.reason);
	assert_string_equal(r.exited_at, e.exited_at);

	exit_info_failed_start(&e, "exec /x: No such file");
	assert_int_equal(e.exit_code, -1);
	assert_string_equal(e.reason, "failed to start: exec /x: No such file");

	/* A wrong type is named. */
	gr_autojson json_t *j = json_pack("{s:s}", "exit_code", "3");
	assert_true(exit_info_from_json(j, &r, &err) < 0);
	assert_non_null(strstr(err.msg, "exit_code"));
	gr_write_file_atomic(path, "{\"exit_code\":", 13, 0600, NULL);
	assert_true(exit_info_read(path, &r, &err) < 0);
}

/* ---- paths and liveness ---- */

static void test_paths(void **state)
{
	(void)state;
	struct instance_paths p;
	struct gr_error err = { 0 };
	assert_int_equal(instance_paths_init(&p, "/s", "/r", "web-1", &err), 0);
	assert_string_equal(p.bundle, "/s/instances/web-1");
	assert_string_equal(p.config, "/s/instances/web-1/config.json");
	assert_string_equal(p.log, "/s/instances/web-1/logs/console.log");
	assert_string_equal(p.containers, "/r/containers");
	assert_string_equal(p.pid_file, "/r/instances/web-1/supervisor.pid");
	assert_string_equal(p.exit_file, "/r/instances/web-1/exit.json");
	const char *bad[] = { "", "-a", "a-", "A", "a_b", "a/b", "..", "a.b",
			      "a234567890123456789012345678901234567890123456789012345678901234" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(instance_name_valid(bad[i]));
		assert_int_equal(instance_paths_init(&p, "/s", "/r", bad[i], &err), -EINVAL);
	}
	assert_true(instance_name_valid("a23456789012345678901234567890123456789012345678901234567890123"));
	assert_int_equal(instance_paths_init(&p, "relative", "/r", "a", &err), -EINVAL);
	char longdir[PATH_MAX];
	memset(longdir, 'x', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	assert_int_equal(instance_paths_init(&p, longdir, "/r", "a", &err), -ENAMETOOLONG);
}

static void test_supervisor_alive(void **state)
{
	(void)state;
	struct instance_paths p;
	struct gr_error err = { 0 };
	assert_int_equal(instance_paths_init(&p, tmpdir, tmpdir, "alive", &err), 0);
	assert_int_equal(gr_mkdir_p(p.run, 0700, &err), 0);
	pid_t pid;
	assert_false(supervisor_alive(&p, &pid)); /* no file */
	assert_int_equal(pid, 0);
	int go[2], ready[2];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid_t child = fork();
	if (child == 0) {
		int fd = open(p.pid_file, O_RDWR | O_CREAT, 0600);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		uint64_t st = 0;
		gr_proc_start_time(getpid(), &st, NULL);
		dprintf(fd, "%d %llu\n", (int)getpid(), (unsigned long long)st);
		if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
			_exit(1);
		(void)!write(ready[1], "r", 1);
		char c;
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_true(supervisor_alive(&p, &pid));
	assert_int_equal(pid, child);
	(void)!write(go[1], "g", 1);
	waitpid(child, NULL, 0);
	assert_false(supervisor_alive(&p, &pid)); /* the lock died with it, the file stays */
	assert_int_equal(pid, 0);
}

/* ---- config.json ---- */

static json_t *find_ns(json_t *cfg, const char *type)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(json_object_get(cfg, "linux"), "namespaces"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "type")), type) == 0)
			return v;
	return NULL;
}

static bool env_has(json_t *cfg, const char *kv)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(json_object_get(cfg, "process"), "env"), i, v)
		if (strcmp(json_string_value(v), kv) == 0)
			return true;
	return false;
}

static void test_config_generate(void **state)
{
	(void)state;
	gr_autojson json_t *conf = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "limits.cpu", "0.5", "limits.memory", "256MiB",
					     "limits.processes", "100", "environment.FOO", "bar baz",
					     "environment.PATH", "/bin", "boot.restart", "on-failure:3");
	char *cmd[] = { "/bin/echo", "hi", NULL };
	struct instance_spec spec = { 1, "web-1", "container", "busybox", conf, cmd };
	struct gr_error err = { 0 };
	gr_autojson json_t *cfg = NULL;
	assert_int_equal(container_config_generate(&spec, NULL, &cfg, &err), 0);
	json_t *res = json_object_get(json_object_get(cfg, "linux"), "resources");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "cpu"), "quota")), 50000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "cpu"), "period")), 100000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "memory"), "limit")), 268435456);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "pids"), "limit")), 100);
	assert_true(env_has(cfg, "FOO=bar baz"));
	assert_true(env_has(cfg, "PATH=/bin"));
	assert_true(env_has(cfg, "HOME=/root"));
	assert_false(env_has(cfg, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
	assert_string_equal(json_string_value(json_object_get(cfg, "hostname")), "web-1");
	json_t *proc = json_object_get(cfg, "process");
	assert_true(json_is_true(json_object_get(proc, "terminal")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(proc, "args"), 0)), "/bin/echo");
	assert_string_equal(json_string_value(json_array_get(json_object_get(proc, "args"), 1)), "hi");
	assert_non_null(find_ns(cfg, "network"));
	assert_non_null(find_ns(cfg, "pid"));
	assert_non_null(find_ns(cfg, "mount"));
	assert_null(find_ns(cfg, "user"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(cfg, "linux"), "cgroupsPath")),
			    "/gureum/web-1");
	assert_false(json_is_true(json_object_get(json_object_get(cfg, "root"), "readonly")));
	/* The container library accepts it as it is. */
	struct oci_config *oc = NULL;
	assert_int_equal(oci_config_parse(cfg, &oc, &err), 0);
	assert_true(oc->process.terminal);
	assert_int_equal(oc->linux_.resources.memory.limit.v, 268435456);
	assert_non_null(oc->linux_.seccomp);
	oci_config_free(oc);

	/* Without a command: the image's shell; without config: no limits. */
	struct instance_spec bare = { 2, "a", "container", "busybox", NULL, NULL };
	gr_autojson json_t *c2 = NULL;
	assert_int_equal(container_config_generate(&bare, "/gureum-x", &c2, &err), 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(c2, "process"), "args"), 0)),
			    "/bin/sh");
	assert_string_equal(json_string_value(json_object_get(json_object_get(c2, "linux"), "cgroupsPath")), "/gureum-x/a");
	char parent[96], other[96];
	container_cgroup_parent("/run/gureum", parent, sizeof(parent));
	assert_string_equal(parent, "/gureum");
	container_cgroup_parent("/tmp/a/run", parent, sizeof(parent));
	container_cgroup_parent("/tmp/b/run", other, sizeof(other));
	assert_int_equal(strlen(parent), strlen("/gureum-") + 8);
	assert_string_not_equal(parent, other);
	json_t *r2 = json_object_get(json_object_get(c2, "linux"), "resources");
	assert_null(json_object_get(r2, "memory"));
	assert_null(json_object_get(r2, "cpu"));
}

static void test_config_refused(void **state)
{
	(void)state;
	struct {
		const char *key, *value, *expect;
	} bad[] = {
		{ "limits.cpus", "1", "limits.cpus" },
		{ "security.privileged", "true", "security.privileged" },
		{ "limits.memory", "lots", "limits.memory" },
		{ "limits.memory", "1MiB", "minimum" },
		{ "limits.cpu", "-1", "limits.cpu" },
		{ "limits.cpu", "0", "limits.cpu" },
		{ "limits.processes", "0", "limits.processes" },
		{ "limits.processes", "ten", "limits.processes" },
		{ "boot.restart", "sometimes", "boot.restart" },
		{ "environment.1X", "v", "environment.1X" },
		{ "environment.A=B", "v", "environment.A=B" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gr_autojson json_t *conf = json_pack("{s:s}", bad[i].key, bad[i].value);
		struct instance_spec spec = { 1, "x", "container", "busybox", conf, NULL };
		struct gr_error err = { 0 };
		json_t *cfg = NULL;
		int r = container_config_generate(&spec, NULL, &cfg, &err);
		if (r != -EINVAL && r != -ERANGE)
			fail_msg("%s=%s: %d", bad[i].key, bad[i].value, r);
		assert_null(cfg);
		if (!strstr(err.msg, bad[i].expect))
			fail_msg("%s=%s: \"%s\" does not name %s", bad[i].key, bad[i].value, err.msg, bad[i].expect);
	}
	gr_autojson json_t *conf = json_pack("{s:i}", "limits.cpu", 1);
	struct instance_spec spec = { 1, "x", "container", "busybox", conf, NULL };
	struct gr_error err = { 0 };
	json_t *cfg = NULL;
	assert_int_equal(container_config_validate(conf, &err), -EINVAL);
	assert_int_equal(container_config_generate(&spec, NULL, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "string"));
}

/* ---- run-engine's arguments ---- */

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })

static int engine_args(char **argv, struct supervisor_opts *o, bool *d, struct gr_error *err)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	gr_error_clear(err);
	return supervisor_engine_args(argc, argv, o, d, err);
}

static void test_engine_args(void **state)
{
	(void)state;
	struct supervisor_opts o;
	bool d = true;
	struct gr_error err = { 0 };
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	int rfd = fds[1] >= 3 ? fds[1] : fcntl(fds[1], F_DUPFD, 3);
	char fdtext[16];
	snprintf(fdtext, sizeof(fdtext), "%d", rfd);

	char **a = ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "vm-1", "--", "/usr/bin/qemu",
			"-M", "microvm", "--", "-x");
	assert_int_equal(engine_args(a, &o, &d, &err), 0);
	assert_string_equal(o.state_dir, "/s");
	assert_string_equal(o.run_dir, "/r");
	assert_string_equal(o.name, "vm-1");
	assert_false(d);
	assert_int_equal(o.ready_fd, -1);
	assert_null(o.qmp);
	assert_int_equal(o.restart.mode, RESTART_NO);
	assert_ptr_equal(o.engine_argv, a + 8); /* the engine's own "--" is its argument */
	assert_string_equal(o.engine_argv[0], "/usr/bin/qemu");
	assert_string_equal(o.engine_argv[3], "--");
	assert_string_equal(o.engine_argv[4], "-x");
	assert_null(o.engine_argv[5]);

	char **b = ARGV("run-engine", "--state-dir=/s", "--run-dir", "/r", "--name=v", "--restart", "on-failure:2",
			"--ready-fd", fdtext, "--daemonize", "--qmp=/r/instances/v/qmp.sock", "--log-max", "8192",
			"--log-files=2", "--", "/e");
	assert_int_equal(engine_args(b, &o, &d, &err), 0);
	assert_string_equal(o.state_dir, "/s");
	assert_string_equal(o.name, "v");
	assert_true(d);
	assert_int_equal(o.ready_fd, rfd);
	assert_string_equal(o.qmp, "/r/instances/v/qmp.sock");
	assert_int_equal(o.restart.mode, RESTART_ON_FAILURE);
	assert_int_equal(o.restart.max, 2);
	assert_int_equal(o.log_max, 8192);
	assert_int_equal(o.log_files, 2);
	assert_string_equal(o.engine_argv[0], "/e");
	assert_null(o.engine_argv[1]);

	/* Refused, each with a message naming what. */
	struct {
		char **argv;
		const char *expect;
	} bad[] = {
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v"), "command line is missing" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--"), "command line is missing" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--", "qemu"), "\"qemu\" must be an absolute path" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "/e"), "unexpected argument \"/e\"" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--lower", "/l", "--", "/e"), "unknown option \"--lower\"" },
		{ ARGV("run-engine", "--state", "/s", "--run-dir", "/r", "--name", "v", "--", "/e"), "unknown option \"--state\"" },
		{ ARGV("run-engine", "--run-dir", "/r", "--name", "v", "--", "/e"), "are required" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "Bad_Name", "--", "/e"), "\"Bad_Name\" is not an instance name" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--restart", "sometimes", "--", "/e"), "sometimes" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--ready-fd", "2", "--", "/e"), "--ready-fd: \"2\"" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--ready-fd", "999999", "--", "/e"), "--ready-fd: \"999999\"" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--ready-fd", "x", "--", "/e"), "--ready-fd: \"x\"" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--daemonize=yes", "--", "/e"), "--daemonize takes no value" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--qmp", "qmp.sock", "--", "/e"), "--qmp: \"qmp.sock\"" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--log-max", "10", "--", "/e"), "--log-max" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v", "--log-files", "0", "--", "/e"), "--log-files" },
		{ ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name"), "--name needs a value" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = engine_args(bad[i].argv, &o, &d, &err);
		if (r != -EINVAL || !strstr(err.msg, bad[i].expect))
			fail_msg("case %zu: %d \"%s\" does not name %s", i, r, err.msg, bad[i].expect);
	}
	close(fds[0]);
	close(fds[1]);
	if (rfd != fds[1])
		close(rfd);
}

/* ---- QMP ---- */

static const char GREETING[] = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
			       "\"package\": \"Debian\"}, \"capabilities\": [\"oob\"]}}\r\n";

/* The peer's side: writes s; reads what the client sent (at most n - 1 bytes, non-blocking). */
static void peer_send(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static char *peer_recv(int fd, char *buf, size_t n)
{
	ssize_t k = recv(fd, buf, n - 1, MSG_DONTWAIT);
	buf[k > 0 ? k : 0] = '\0';
	return buf;
}

static void qmp_pair(struct qmp_client *q, int *peer)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	qmp_client_init(q, sv[0], "system_powerdown");
	*peer = sv[1];
}

static void test_qmp_exchange(void **state)
{
	(void)state;
	static struct qmp_client q;
	int peer;
	char buf[256];
	qmp_pair(&q, &peer);
	assert_int_equal(q.events, POLLIN);
	/* Nothing yet: it waits for the greeting and sends nothing. */
	assert_int_equal(qmp_client_io(&q, 0), POLLIN);
	assert_string_equal(peer_recv(peer, buf, sizeof(buf)), "");
	/* The greeting in two pieces. */
	peer_send(peer, "{\"QMP\": {\"version\": {}, ");
	assert_int_equal(qmp_client_io(&q, POLLIN), POLLIN);
	assert_int_equal(q.state, QMP_GREETING);
	assert_string_equal(peer_recv(peer, buf, sizeof(buf)), "");
	peer_send(peer, "\"capabilities\": []}}\r\n");
	assert_int_equal(qmp_client_io(&q, POLLIN), POLLIN);
	assert_int_equal(q.state, QMP_CAPABILITIES);
	assert_string_equal(peer_recv(peer, buf, sizeof(buf)), "{\"execute\":\"qmp_capabilities\"}\n");
	/* An event and the answer in one read, then a blank line. */
	peer_send(peer, "{\"event\": \"RTC_CHANGE\", \"data\": {}}\r\n{\"return\": {}}\r\n\r\n");
	assert_int_equal(qmp_client_io(&q, POLLIN), POLLIN);
	assert_int_equal(q.state, QMP_COMMAND);
	assert_string_equal(peer_recv(peer, buf, sizeof(buf)), "{\"execute\":\"system_powerdown\"}\n");
	peer_send(peer, "{\"return\": {}}\n{\"event\": \"POWERDOWN\"}\n");
	assert_int_equal(qmp_client_io(&q, POLLIN), 0);
	assert_int_equal(q.state, QMP_DONE);
	assert_int_equal(q.events, 0);
	/* Over: it reads and sends nothing more. */
	assert_int_equal(qmp_client_io(&q, POLLIN), 0);
	qmp_client_close(&q);
	assert_int_equal(q.fd, -1);
	close(peer);

	/* Everything the server says at once (a greeting and answers queued ahead). */
	qmp_pair(&q, &peer);
	char all[1024];
	snprintf(all, sizeof(all), "%s{\"return\": {}}\n{\"return\": {}}\n", GREETING);
	peer_send(peer, all);
	assert_int_equal(qmp_client_io(&q, POLLIN), 0);
	assert_int_equal(q.state, QMP_DONE);
	assert_string_equal(peer_recv(peer, buf, sizeof(buf)),
			    "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"system_powerdown\"}\n");
	qmp_client_close(&q);
	close(peer);
}

/* Runs a server script: greeting reply1 [reply2]; returns the client's final state. */
static enum qmp_state qmp_run(const char *const *replies, size_t n, struct qmp_client *q, bool close_after)
{
	int peer;
	qmp_pair(q, &peer);
	for (size_t i = 0; i < n; i++) {
		peer_send(peer, replies[i]);
		if (i + 1 == n && close_after)
			shutdown(peer, SHUT_WR);
		if (qmp_client_io(q, POLLIN) == 0)
			break;
	}
	if (n == 0 && close_after) {
		shutdown(peer, SHUT_WR);
		qmp_client_io(q, POLLIN | POLLHUP);
	}
	close(peer);
	qmp_client_close(q);
	return q->state;
}

static void test_qmp_errors(void **state)
{
	(void)state;
	static struct qmp_client q;
	const char *err_desc = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no ACPI here\"}}\n";
	const char *ret = "{\"return\": {}}\n";
	struct {
		const char *replies[3];
		size_t n;
		bool close_after;
		const char *expect;
	} cases[] = {
		{ { GREETING, ret, err_desc }, 3, false, "system_powerdown refused: no ACPI here" },
		{ { GREETING, err_desc }, 2, false, "qmp_capabilities refused: no ACPI here" },
		{ { "not json\n" }, 1, false, "expected a JSON object, got \"not json\"" },
		{ { "[1,2]\n" }, 1, false, "expected a JSON object" },
		{ { "{\"return\": {}}\n" }, 1, false, "expected the server's greeting" },
		{ { GREETING, "{\"id\": 1}\n" }, 2, false, "expected the answer to qmp_capabilities" },
		{ { 0 }, 0, true, "closed the connection without a greeting" },
		{ { GREETING }, 1, true, "before answering qmp_capabilities" },
		{ { GREETING, ret }, 2, true, "before answering system_powerdown" },
		{ { "{\"QMP\": {}" }, 1, true, "without a greeting" }, /* a last line never ended */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum qmp_state st = qmp_run(cases[i].replies, cases[i].n, &q, cases[i].close_after);
		if (st != QMP_FAILED || !strstr(q.err.msg, cases[i].expect))
			fail_msg("case %zu: state %d, \"%s\" does not say %s", i, st, q.err.msg, cases[i].expect);
	}

	/* A line longer than QMP_MESSAGE_MAX ends it (the client never grows without bound). */
	int peer;
	qmp_pair(&q, &peer);
	char *big = malloc(QMP_MESSAGE_MAX + 10);
	memset(big, 'x', QMP_MESSAGE_MAX + 9);
	big[QMP_MESSAGE_MAX + 9] = '\0';
	int sz = 1 << 20;
	setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	peer_send(peer, big);
	free(big);
	short ev = POLLIN;
	for (int i = 0; i < 8 && ev; i++)
		ev = qmp_client_io(&q, POLLIN);
	assert_int_equal(ev, 0);
	assert_int_equal(q.state, QMP_FAILED);
	assert_non_null(strstr(q.err.msg, "over 16384 bytes"));
	qmp_client_close(&q);
	close(peer);

	/* A peer gone before the client could answer its greeting: the send
	 * fails and says what it was. */
	qmp_pair(&q, &peer);
	assert_int_equal(qmp_client_message(&q, "{\"QMP\":{}}", 10), QMP_CAPABILITIES);
	close(peer);
	assert_int_equal(qmp_client_io(&q, 0), 0);
	assert_int_equal(q.state, QMP_FAILED);
	assert_non_null(strstr(q.err.msg, "cannot send qmp_capabilities"));
	qmp_client_close(&q);

	/* Messages fed directly: the state machine alone. */
	qmp_client_init(&q, -1, "system_powerdown");
	assert_int_equal(qmp_client_message(&q, "{\"event\":\"X\"}", 13), QMP_GREETING);
	assert_int_equal(qmp_client_message(&q, "{\"QMP\":{}}", 10), QMP_CAPABILITIES);
	assert_int_equal(q.out_len, strlen("{\"execute\":\"qmp_capabilities\"}\n"));
	assert_int_equal(qmp_client_message(&q, "{\"return\":{}}", 13), QMP_COMMAND);
	assert_memory_equal(q.out, "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"system_powerdown\"}\n", q.out_len);
	assert_int_equal(qmp_client_message(&q, "{\"return\":{}}", 13), QMP_DONE);
	assert_int_equal(qmp_client_message(&q, "garbage", 7), QMP_DONE); /* over is over */
	/* Control bytes of a hostile server are not copied into the message. */
	qmp_client_init(&q, -1, "system_powerdown");
	assert_int_equal(qmp_client_message(&q, "\x1b[2J\n", 5), QMP_FAILED);
	assert_null(strchr(q.err.msg, '\x1b'));
}

static void test_qmp_connect(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	int fd = -1;
	/* A path longer than sun_path: reached through its directory. */
	char dir[200], path[240];
	snprintf(dir, sizeof(dir), "%s/%0120d", tmpdir, 0);
	assert_int_equal(gr_mkdir_p(dir, 0700, &err), 0);
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	assert_true(strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path));
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/qmp.sock", dfd);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(qmp_connect(path, &fd, &err), 0);
	int c = accept(l, NULL, NULL);
	assert_true(c >= 0);
	/* The client's side works. */
	static struct qmp_client q;
	qmp_client_init(&q, fd, "system_powerdown");
	peer_send(c, GREETING);
	assert_int_equal(qmp_client_io(&q, POLLIN), POLLIN);
	assert_int_equal(q.state, QMP_CAPABILITIES);
	qmp_client_close(&q);
	close(c);
	close(l);
	close(dfd);
	/* Nobody listening, or no such socket: the path is named. */
	assert_true(qmp_connect(path, &fd, &err) < 0);
	assert_non_null(strstr(err.msg, "qmp.sock"));
	assert_non_null(strstr(err.msg, "refused"));
	gr_error_clear(&err);
	assert_int_equal(qmp_connect("/nonexistent/qmp.sock", &fd, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "cannot connect to QMP at /nonexistent/qmp.sock"));
	assert_int_equal(qmp_connect("", &fd, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restart_parse),
		cmocka_unit_test(test_restart_wanted),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_notes_between_lines),
		cmocka_unit_test(test_proc_usage),
		cmocka_unit_test_setup_teardown(test_rotlog, setup_tmp, teardown_tmp),
		cmocka_unit_test(test_rotlog_unwritable),
		cmocka_unit_test(test_crlf_filter),
		cmocka_unit_test_setup_teardown(test_exit_info, setup_tmp, teardown_tmp),
		cmocka_unit_test(test_paths),
		cmocka_unit_test_setup_teardown(test_supervisor_alive, setup_tmp, teardown_tmp),
		cmocka_unit_test(test_config_generate),
		cmocka_unit_test(test_config_refused),
		cmocka_unit_test(test_engine_args),
		cmocka_unit_test(test_qmp_exchange),
		cmocka_unit_test(test_qmp_errors),
		cmocka_unit_test_setup_teardown(test_qmp_connect, setup_tmp, teardown_tmp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
