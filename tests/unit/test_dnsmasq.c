/* Unit tests for src/daemon/network/dnsmasq.c with the real dnsmasq.
 *
 * main() moves the test into private network, PID and mount namespaces
 * (with its own /proc) and runs the tests in a child that is PID 1 there:
 * the host's network is never touched, and when the child exits the kernel
 * kills every dnsmasq it started, even after a crash. Inside: bridges br0
 * (10.99.0.1/24) and br1 (10.99.1.1/24), made with ip(8).
 *
 * Tested: the host files' text, their place (RUN, not STATE, whose old
 * copies go) and modes (files 0644, run directory 0711, its parent made
 * searchable, whatever the umask), refused names and addresses; start, DNS
 * answers for NAME and NAME.gureum (hand-made A queries over UDP), dnsmasq
 * runs as nobody:nogroup (/proc/PID/status), reload by SIGHUP read as
 * nobody (a new name resolves, a removed one no longer does), stop (process
 * gone, pid file removed, a second stop is 0); a dnsmasq started with other
 * arguments (as root, as earlier versions did) is replaced; a run directory
 * chain nobody cannot pass is refused (-EACCES) before anything starts or
 * is signalled; a stale pid file (naming this test, another network's
 * dnsmasq, or garbage) is never signalled; the binary check
 * (GUREUM_DNSMASQ); a failed start carries dnsmasq's message and leaves no
 * process; DHCP with busybox's udhcpc on veths in br0 (static leases only,
 * names that look like lease times, guest-sent names kept out of DNS; the
 * lease file in the 0700 STATE directory is written by dnsmasq as nobody,
 * in place). Without root only the host files are tested.
 *
 * The temporary directory stands for / down to RUN: it and BASE/run are
 * made 0711 here, as gureumd's main.c makes RUN. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "daemon/network/dnsmasq.h"

extern char **environ;

static char base[64];                 /* the test's temporary directory */
static char run_root[96];             /* BASE/run, standing for RUN (0711) */
static volatile sig_atomic_t got_hup, got_term;

struct tnet {
	struct dnsmasq_net n;
	char state[128], run[128], pid_file[160];
};
static struct tnet net1, net2, bad;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup++;
	else
		got_term++;
}

static void tnet_init(struct tnet *t, const char *name, const char *bridge, uint32_t subnet)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->state, sizeof(t->state), "%s/state/networks/%s", base, name);
	snprintf(t->run, sizeof(t->run), "%s/run/networks/%s", base, name);
	snprintf(t->pid_file, sizeof(t->pid_file), "%s/dnsmasq.pid", t->run);
	t->n.name = name;
	t->n.bridge = bridge;
	t->n.subnet.addr = subnet;
	t->n.subnet.prefix = 24;
	t->n.state_dir = t->state;
	t->n.run_dir = t->run;
}

static char *slurp(const char *path)
{
	char *s = NULL;
	struct gr_error err = { 0 };
	if (gr_read_file(path, &s, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	return s;
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

static const uint8_t mac1[6] = { 0x0e, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t mac2[6] = { 0x0e, 0x00, 0x00, 0x00, 0x00, 0x02 };
static const uint8_t mac3[6] = { 0x0e, 0xab, 0xcd, 0xef, 0x10, 0xff };

static void write_hosts_ok(struct tnet *t, const struct dnsmasq_host *h, size_t count)
{
	struct gr_error err = { 0 };
	if (dnsmasq_write_hosts(&t->n, h, count, &err) < 0)
		fail_msg("%s", err.msg);
}

/* ---- a small DNS client ---- */

/* Sends an A query for name to server:53 and reads the reply. Returns its
 * rcode (0 = answer, 3 = no such name) with *addr the first A record (0 when
 * none), or -1 when no valid reply came within 5 s. */
static int dns_query_a(const char *server, const char *name, uint32_t *addr)
{
	static uint16_t next_id = 0x4a00;
	uint8_t q[300], r[1500];
	uint16_t id = next_id++;
	size_t len = 0;
	q[len++] = (uint8_t)(id >> 8);
	q[len++] = (uint8_t)id;
	q[len++] = 0x01;                      /* RD */
	q[len++] = 0x00;
	const uint8_t counts[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };   /* QD=1 AN=NS=AR=0 */
	memcpy(q + len, counts, 8);
	len += 8;
	for (const char *l = name; *l;) {
		size_t k = strcspn(l, ".");
		assert_true(k > 0 && k < 64 && len + k + 6 < sizeof(q));
		q[len++] = (uint8_t)k;
		memcpy(q + len, l, k);
		len += k;
		l += k + (l[k] == '.');
	}
	q[len++] = 0;
	const uint8_t tail[4] = { 0, 1, 0, 1 };   /* type A, class IN */
	memcpy(q + len, tail, 4);
	len += 4;

	gr_autoclose int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
	assert_int_equal(inet_pton(AF_INET, server, &sa.sin_addr), 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, q, len, 0), (ssize_t)len);
	ssize_t n;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) != 1)
			return -1;
		n = recv(fd, r, sizeof(r), 0);
		if (n < 0)
			return -1;      /* ECONNREFUSED: nothing listens */
		if (n >= 12 && r[0] == q[0] && r[1] == q[1] && (r[2] & 0x80))
			break;          /* ours, and a response */
	}
	int rcode = r[3] & 0x0f;
	unsigned qd = (unsigned)(r[4] << 8 | r[5]), an = (unsigned)(r[6] << 8 | r[7]);
	size_t off = 12;
	/* Skips a name: labels up to a zero, or a compression pointer. */
#define SKIP_NAME()                                                        \
	do {                                                               \
		while (off < (size_t)n && r[off] != 0 && (r[off] & 0xc0) != 0xc0) \
			off += (size_t)r[off] + 1;                         \
		off += off < (size_t)n && r[off] != 0 ? 2 : 1;             \
	} while (0)
	for (unsigned i = 0; i < qd; i++) {
		SKIP_NAME();
		off += 4;
	}
	*addr = 0;
	for (unsigned i = 0; i < an && off + 10 <= (size_t)n; i++) {
		SKIP_NAME();
		if (off + 10 > (size_t)n)
			break;
		unsigned type = (unsigned)(r[off] << 8 | r[off + 1]);
		unsigned rdlen = (unsigned)(r[off + 8] << 8 | r[off + 9]);
		off += 10;
		if (off + rdlen > (size_t)n)
			break;
		if (type == 1 && rdlen == 4) {
			*addr = (uint32_t)r[off] << 24 | (uint32_t)r[off + 1] << 16 | (uint32_t)r[off + 2] << 8 | r[off + 3];
			break;
		}
		off += rdlen;
	}
#undef SKIP_NAME
	return rcode;
}

/* Asks until the answer for name is want (0: no such name). dnsmasq handles
 * a SIGHUP in its own time, so this polls, giving up after 1000 tries. */
static void dns_expect(const char *server, const char *name, uint32_t want)
{
	uint32_t got = 0;
	int rcode = -1;
	for (int i = 0; i < 1000; i++) {
		rcode = dns_query_a(server, name, &got);
		if (want ? rcode == 0 && got == want : rcode == 3)
			return;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	fail_msg("%s at %s: rcode %d, address %08x; expected %08x", name, server, rcode, got, want);
}

/* ---- processes ---- */

static int run_argv(char *const argv[])
{
	pid_t pid;
	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool process_gone(pid_t pid)
{
	char s = gr_proc_state(pid);
	return s == 0 || s == 'Z';
}

/* Live processes whose command line has an argument containing needle; each
 * is waited for (10 s) before it counts, so one that is exiting does not.
 * kill: SIGKILL them first. */
static int processes_with_arg(const char *needle, bool kill_them)
{
	gr_autoclosedir DIR *d = opendir("/proc");
	assert_non_null(d);
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t v;
		if (gr_parse_u64(e->d_name, &v) < 0 || (pid_t)v == getpid())
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		gr_autofree char *cmd = NULL;
		size_t len = 0;
		struct gr_error err = { 0 };
		if (gr_read_file(path, &cmd, &len, &err) < 0)
			continue;
		bool match = false;
		for (size_t off = 0; off < len; off += strlen(cmd + off) + 1)
			match |= strstr(cmd + off, needle) != NULL;
		if (!match)
			continue;
		gr_autoclose int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)v, 0);
		if (pidfd < 0)
			continue;
		if (kill_them)
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		if (poll(&p, 1, 10000) != 1)
			count++;
	}
	return count;
}

/* Reaps the dnsmasqs that exited (PID 1 of the namespace is their parent). */
static void reap(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* ---- host files (no root needed) ---- */

static int mode_of(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		fail_msg("stat %s: %s", path, strerror(errno));
	return (int)(st.st_mode & 07777);
}

static void test_write_hosts(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct dnsmasq_host h[] = {
		{ "c1", mac1, IP(10, 99, 0, 2) },
		{ "web-2", mac3, IP(10, 99, 0, 254) },
	};
	/* RUN/networks as an owner-only directory (gureumd's network.c makes
	 * it so before this), and the host files where versions that ran
	 * dnsmasq as root kept them; all under a strict umask. */
	char networks[128], old1[200], old2[200];
	snprintf(networks, sizeof(networks), "%s/networks", run_root);
	assert_int_equal(mkdir(networks, 0700), 0);
	struct gr_error e = { 0 };
	assert_int_equal(gr_mkdir_p(net1.state, 0700, &e), 0);
	snprintf(old1, sizeof(old1), "%s/dhcp-hosts", net1.state);
	snprintf(old2, sizeof(old2), "%s/hosts", net1.state);
	put(old1, "0e:00:00:00:00:09,10.99.0.9,old\n");
	put(old2, "10.99.0.9 old old.gureum\n");
	mode_t umask_was = umask(077);
	write_hosts_ok(&net1, h, 2);
	umask(umask_was);

	assert_int_equal(mode_of(net1.state), 0700);
	assert_int_equal(mode_of(net1.run), 0711);
	assert_int_equal(mode_of(networks), 0711);
	assert_int_equal(access(old1, F_OK), -1);
	assert_int_equal(access(old2, F_OK), -1);

	char p1[200], p2[200];
	snprintf(p1, sizeof(p1), "%s/dhcp-hosts", net1.run);
	snprintf(p2, sizeof(p2), "%s/hosts", net1.run);
	assert_int_equal(mode_of(p1), 0644);
	assert_int_equal(mode_of(p2), 0644);
	gr_autofree char *d = slurp(p1), *n = slurp(p2);
	assert_string_equal(d, "0e:00:00:00:00:01,10.99.0.2,c1\n0e:ab:cd:ef:10:ff,10.99.0.254,web-2\n");
	assert_string_equal(n, "10.99.0.2 c1 c1.gureum\n10.99.0.254 web-2 web-2.gureum\n");

	/* Names dnsmasq would read as a lease time or "ignore" are left out of
	 * dhcp-hosts (and only there). */
	struct dnsmasq_host amb[] = {
		{ "123", mac1, IP(10, 99, 0, 2) },      { "1h", mac1, IP(10, 99, 0, 3) },
		{ "45m", mac1, IP(10, 99, 0, 4) },      { "infinite", mac1, IP(10, 99, 0, 5) },
		{ "ignore", mac1, IP(10, 99, 0, 6) },   { "12-34", mac1, IP(10, 99, 0, 7) },
		{ "1e5", mac1, IP(10, 99, 0, 8) },      { "1hh", mac1, IP(10, 99, 0, 9) },
	};
	write_hosts_ok(&net1, amb, sizeof(amb) / sizeof(amb[0]));
	gr_autofree char *da = slurp(p1), *na = slurp(p2);
	assert_string_equal(da, "0e:00:00:00:00:01,10.99.0.2\n0e:00:00:00:00:01,10.99.0.3\n"
				"0e:00:00:00:00:01,10.99.0.4\n0e:00:00:00:00:01,10.99.0.5\n"
				"0e:00:00:00:00:01,10.99.0.6\n0e:00:00:00:00:01,10.99.0.7,12-34\n"
				"0e:00:00:00:00:01,10.99.0.8,1e5\n0e:00:00:00:00:01,10.99.0.9,1hh\n");
	assert_non_null(strstr(na, "10.99.0.2 123 123.gureum\n10.99.0.3 1h 1h.gureum\n"));
	write_hosts_ok(&net1, h, 2);

	/* Refused, and the files stay as they were. */
	const char *bad_names[] = { "C1", "a,b", "a b", "a.b", "", "x\ny",
				    "a123456789012345678901234567890123456789012345678901234567890123" };
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		struct dnsmasq_host b[] = { { "ok", mac1, IP(10, 99, 0, 2) }, { bad_names[i], mac2, IP(10, 99, 0, 3) } };
		assert_int_equal(dnsmasq_write_hosts(&net1.n, b, 2, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "cannot be a DNS name"));
	}
	struct dnsmasq_host ctl[] = { { "a\x01\xff" "b", mac1, IP(10, 99, 0, 2) } };
	assert_int_equal(dnsmasq_write_hosts(&net1.n, ctl, 1, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"a??b\""));
	struct tnet rel;
	tnet_init(&rel, "rel", "br0", IP(10, 99, 0, 0));
	rel.n.state_dir = "relative/state";
	assert_int_equal(dnsmasq_write_hosts(&rel.n, h, 2, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "absolute"));
	struct dnsmasq_host null_name[] = { { NULL, mac1, IP(10, 99, 0, 2) } };
	assert_int_equal(dnsmasq_write_hosts(&net1.n, null_name, 1, &err), -EINVAL);
	struct dnsmasq_host outside[] = { { "c9", mac1, IP(10, 99, 1, 2) } };
	assert_int_equal(dnsmasq_write_hosts(&net1.n, outside, 1, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "10.99.1.2 is outside 10.99.0.0/24"));
	gr_autofree char *d2 = slurp(p1), *n2 = slurp(p2);
	assert_string_equal(d2, d);
	assert_string_equal(n2, n);

	/* No instances: empty files. No temporary file is left behind, and
	 * nothing is written to the state directory. */
	write_hosts_ok(&net1, NULL, 0);
	gr_autofree char *d3 = slurp(p1), *n3 = slurp(p2);
	assert_string_equal(d3, "");
	assert_string_equal(n3, "");
	const char *dirs[] = { net1.run, net1.state };
	const int want[] = { 2, 0 };
	for (int k = 0; k < 2; k++) {
		gr_autoclosedir DIR *dir = opendir(dirs[k]);
		assert_non_null(dir);
		struct dirent *de;
		int files = 0;
		while ((de = readdir(dir)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				assert_true(de->d_name[0] != '.');
				files++;
			}
		assert_int_equal(files, want[k]);
	}

	/* A run directory left 0700 (by an earlier version) becomes 0711. */
	assert_int_equal(chmod(net1.run, 0700), 0);
	write_hosts_ok(&net1, NULL, 0);
	assert_int_equal(mode_of(net1.run), 0711);
}

/* ---- dnsmasq itself (root, in the namespaces) ---- */

/* The four ids (real, effective, saved, file system) of a /proc/PID/status
 * line ("Uid:" or "Gid:"). */
static void proc_ids(pid_t pid, const char *key, unsigned ids[4])
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	gr_autofree char *st = slurp(path);
	const char *line = strstr(st, key);
	assert_non_null(line);
	if (sscanf(line + strlen(key), "%u %u %u %u", &ids[0], &ids[1], &ids[2], &ids[3]) != 4)
		fail_msg("%s: cannot parse %s", path, key);
}

/* dnsmasq has dropped root for nobody:nogroup, every id of it. */
static void assert_not_root(pid_t pid)
{
	struct passwd *pw = getpwnam("nobody");
	struct group *gr = getgrnam("nogroup");
	assert_non_null(pw);
	assert_non_null(gr);
	unsigned uids[4], gids[4];
	proc_ids(pid, "Uid:", uids);
	proc_ids(pid, "Gid:", gids);
	for (int i = 0; i < 4; i++) {
		assert_int_not_equal(uids[i], 0);
		assert_int_equal(uids[i], pw->pw_uid);
		assert_int_not_equal(gids[i], 0);
		assert_int_equal(gids[i], gr->gr_gid);
	}
}

static void test_start_resolve_reload_stop(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct dnsmasq_host h1[] = { { "c1", mac1, IP(10, 99, 0, 2) } };
	write_hosts_ok(&net1, h1, 1);
	assert_int_equal(dnsmasq_pid(&net1.n), 0);
	if (dnsmasq_ensure(&net1.n, &err) < 0)
		fail_msg("%s", err.msg);
	pid_t pid = dnsmasq_pid(&net1.n);
	assert_true(pid > 0);
	gr_autofree char *pf = slurp(net1.pid_file);
	assert_int_equal(atoi(pf), pid);
	assert_not_root(pid);

	dns_expect("10.99.0.1", "c1.gureum", IP(10, 99, 0, 2));
	dns_expect("10.99.0.1", "c1", IP(10, 99, 0, 2));
	dns_expect("10.99.0.1", "c2.gureum", 0);

	/* A new name and a new address after a reload (SIGHUP: same process,
	 * which reads the host files as nobody). */
	struct dnsmasq_host h2[] = { { "c2", mac2, IP(10, 99, 0, 3) } };
	write_hosts_ok(&net1, h2, 1);
	if (dnsmasq_ensure(&net1.n, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(dnsmasq_pid(&net1.n), pid);
	assert_not_root(pid);
	dns_expect("10.99.0.1", "c2.gureum", IP(10, 99, 0, 3));
	dns_expect("10.99.0.1", "c2", IP(10, 99, 0, 3));
	dns_expect("10.99.0.1", "c1.gureum", 0);

	assert_int_equal(dnsmasq_stop(&net1.n, &err), 0);
	assert_true(process_gone(pid));
	assert_int_equal(access(net1.pid_file, F_OK), -1);
	assert_int_equal(dnsmasq_pid(&net1.n), 0);
	assert_int_equal(dnsmasq_stop(&net1.n, &err), 0);
	reap();
	assert_int_equal(got_hup, 0);
	assert_int_equal(got_term, 0);
}

/* A dnsmasq started with other arguments (here as root, as versions before
 * this one did) is stopped and started again by ensure, not reloaded. */
static void test_replaces_other_arguments(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct dnsmasq_host h[] = { { "c1", mac1, IP(10, 99, 0, 2) } };
	write_hosts_ok(&net1, h, 1);
	if (dnsmasq_ensure(&net1.n, &err) < 0)
		fail_msg("%s", err.msg);
	pid_t p1 = dnsmasq_pid(&net1.n);
	assert_true(p1 > 0);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)p1);
	gr_autofree char *cmd = NULL;
	size_t len = 0;
	if (gr_read_file(path, &cmd, &len, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(dnsmasq_stop(&net1.n, &err), 0);
	reap();

	/* The same command line with --user=root and no --group. */
	char *argv[40];
	int argc = 0;
	bool had_user = false;
	for (size_t off = 0; off < len && argc < 38; off += strlen(cmd + off) + 1) {
		if (strcmp(cmd + off, "--group=nogroup") == 0)
			continue;
		if (strcmp(cmd + off, "--user=nobody") == 0) {
			argv[argc++] = "--user=root";
			had_user = true;
			continue;
		}
		argv[argc++] = cmd + off;
	}
	argv[argc] = NULL;
	assert_true(had_user);
	assert_int_equal(run_argv(argv), 0);
	pid_t old = dnsmasq_pid(&net1.n);
	assert_true(old > 0);
	unsigned uids[4];
	proc_ids(old, "Uid:", uids);
	assert_int_equal(uids[1], 0);

	if (dnsmasq_ensure(&net1.n, &err) < 0)
		fail_msg("%s", err.msg);
	pid_t p2 = dnsmasq_pid(&net1.n);
	assert_true(p2 > 0 && p2 != old);
	assert_true(process_gone(old));
	assert_not_root(p2);
	dns_expect("10.99.0.1", "c1.gureum", IP(10, 99, 0, 2));
	/* Now the same arguments: a reload. */
	if (dnsmasq_ensure(&net1.n, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(dnsmasq_pid(&net1.n), p2);
	assert_int_equal(dnsmasq_stop(&net1.n, &err), 0);
	reap();
	assert_int_equal(got_hup, 0);
	assert_int_equal(got_term, 0);
}

/* RUN that nobody cannot pass (as gureumd's main.c made it before dnsmasq
 * dropped root): refused before anything starts, or is signalled. */
static void test_unreachable(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct dnsmasq_host h[] = { { "c1", mac1, IP(10, 99, 0, 2) } };
	write_hosts_ok(&net1, h, 1);
	assert_int_equal(chmod(run_root, 0700), 0);
	assert_int_equal(dnsmasq_ensure(&net1.n, &err), -EACCES);
	char want[160];
	snprintf(want, sizeof(want), "%s is mode 0700", run_root);
	if (!strstr(err.msg, want) || !strstr(err.msg, "nobody"))
		fail_msg("unexpected message: %s", err.msg);
	assert_int_equal(dnsmasq_pid(&net1.n), 0);
	assert_int_equal(processes_with_arg(net1.pid_file, false), 0);

	/* Running already: no SIGHUP it could not act on either. */
	assert_int_equal(chmod(run_root, 0711), 0);
	if (dnsmasq_ensure(&net1.n, &err) < 0)
		fail_msg("%s", err.msg);
	pid_t pid = dnsmasq_pid(&net1.n);
	assert_true(pid > 0);
	assert_int_equal(chmod(run_root, 0700), 0);
	assert_int_equal(dnsmasq_ensure(&net1.n, &err), -EACCES);
	assert_int_equal(dnsmasq_pid(&net1.n), pid);
	assert_int_equal(chmod(run_root, 0711), 0);

	/* A host file others cannot read. */
	char p[200];
	snprintf(p, sizeof(p), "%s/hosts", net1.run);
	assert_int_equal(chmod(p, 0600), 0);
	assert_int_equal(dnsmasq_ensure(&net1.n, &err), -EACCES);
	assert_non_null(strstr(err.msg, "cannot read"));
	write_hosts_ok(&net1, h, 1);
	assert_int_equal(mode_of(p), 0644);
	assert_int_equal(dnsmasq_stop(&net1.n, &err), 0);
	reap();
}

static void test_stale_pid_file(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	char me[32];
	snprintf(me, sizeof(me), "%d\n", (int)getpid());

	/* Our own pid: not a dnsmasq. stop: nothing signalled, the file goes. */
	write_hosts_ok(&net1, NULL, 0);
	put(net1.pid_file, me);
	assert_int_equal(dnsmasq_pid(&net1.n), 0);
	assert_int_equal(dnsmasq_stop(&net1.n, &err), 0);
	assert_int_equal(access(net1.pid_file, F_OK), -1);

	/* ensure over a stale pid file starts a dnsmasq instead of a SIGHUP. */
	put(net1.pid_file, me);
	if (dnsmasq_ensure(&net1.n, &err) < 0)
		fail_msg("%s", err.msg);
	pid_t p1 = dnsmasq_pid(&net1.n);
	assert_true(p1 > 0 && p1 != getpid());
	assert_int_equal(dnsmasq_stop(&net1.n, &err), 0);
	assert_true(process_gone(p1));

	/* Another network's dnsmasq (its --pid-file differs) is not ours. */
	struct dnsmasq_host h[] = { { "d1", mac1, IP(10, 99, 1, 2) } };
	write_hosts_ok(&net2, h, 1);
	if (dnsmasq_ensure(&net2.n, &err) < 0)
		fail_msg("%s", err.msg);
	pid_t p2 = dnsmasq_pid(&net2.n);
	assert_true(p2 > 0);
	dns_expect("10.99.1.1", "d1.gureum", IP(10, 99, 1, 2));
	char other[32];
	snprintf(other, sizeof(other), "%d", (int)p2);
	put(net1.pid_file, other);
	assert_int_equal(dnsmasq_pid(&net1.n), 0);
	assert_int_equal(dnsmasq_stop(&net1.n, &err), 0);
	assert_int_equal(dnsmasq_pid(&net2.n), p2);

	/* Another binary than the one expected: not ours either. */
	setenv("GUREUM_DNSMASQ", "/bin/true", 1);
	assert_int_equal(dnsmasq_pid(&net2.n), 0);
	unsetenv("GUREUM_DNSMASQ");
	assert_int_equal(dnsmasq_pid(&net2.n), p2);

	/* Garbage. */
	const char *junk[] = { "", "abc", "-1", "0", "12x", "99999999999999" };
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		put(net1.pid_file, junk[i]);
		assert_int_equal(dnsmasq_pid(&net1.n), 0);
	}

	assert_int_equal(dnsmasq_stop(&net2.n, &err), 0);
	assert_true(process_gone(p2));
	reap();
	assert_int_equal(got_hup, 0);
	assert_int_equal(got_term, 0);
}

/* Runs argv with its output (stdout and stderr) in out. */
static int run_capture(char *const argv[], char *out, size_t len)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (r != 0) {
		close(p[0]);
		return -1;
	}
	ssize_t got = gr_read_all(p[0], out, len - 1);
	close(p[0]);
	out[got > 0 ? got : 0] = '\0';
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* busybox's DHCP client on ifname (which it leaves unconfigured); tries
 * times discovers, a second apart. */
static void dhcp_lease(const char *ifname, const char *tries, const char *hostname, char *out, size_t len)
{
	char opt[64];
	snprintf(opt, sizeof(opt), "hostname:%s", hostname ? hostname : "");
	char *argv[] = { "busybox", "udhcpc", "-i", (char *)ifname, "-f", "-q", "-n", "-t", (char *)tries,
			 "-T", "1", "-s", "/bin/true", hostname ? "-x" : NULL, opt, NULL };
	run_capture(argv, out, len);
}

/* Static leases only: a known MAC gets its address (a name that looks like
 * a lease time does not change the lease time), an unknown MAC nothing;
 * a name the guest sends does not reach DNS. */
static void test_dhcp(void **state)
{
	(void)state;
	if (access("/bin/busybox", X_OK) != 0 && access("/usr/bin/busybox", X_OK) != 0) {
		print_message("skipped: needs busybox (udhcpc)\n");
		skip();
	}
	struct gr_error err = { 0 };
	struct dnsmasq_host h[] = { { "c1", mac1, IP(10, 99, 0, 2) }, { "123", mac2, IP(10, 99, 0, 3) } };
	write_hosts_ok(&net1, h, 2);
	if (dnsmasq_ensure(&net1.n, &err) < 0)
		fail_msg("%s", err.msg);
	/* dnsmasq made its lease file while root, in the 0700 state directory. */
	char leases[200];
	snprintf(leases, sizeof(leases), "%s/leases", net1.state);
	struct stat lst;
	assert_int_equal(stat(leases, &lst), 0);
	assert_int_equal(lst.st_uid, 0);
	assert_int_equal(mode_of(net1.state), 0700);
	const uint8_t *macs[] = { mac1, mac2, mac3 };
	for (int i = 0; i < 3; i++) {
		char v[8], e[8], m[MAC_STR_MAX];
		snprintf(v, sizeof(v), "v%d", i);
		snprintf(e, sizeof(e), "e%d", i);
		mac_format(macs[i], m);
		char *add[] = { "ip", "link", "add", v, "type", "veth", "peer", "name", e, NULL };
		char *master[] = { "ip", "link", "set", v, "master", "br0", "up", NULL };
		char *addr[] = { "ip", "link", "set", e, "address", m, "up", NULL };
		assert_int_equal(run_argv(add), 0);
		assert_int_equal(run_argv(master), 0);
		assert_int_equal(run_argv(addr), 0);
	}
	char out[4096];
	dhcp_lease("e0", "10", NULL, out, sizeof(out));
	if (!strstr(out, "lease of 10.99.0.2 obtained from 10.99.0.1, lease time 3600"))
		fail_msg("udhcpc on e0: %s", out);
	dhcp_lease("e1", "10", "evil", out, sizeof(out));
	if (!strstr(out, "lease of 10.99.0.3 obtained from 10.99.0.1, lease time 3600"))
		fail_msg("udhcpc on e1: %s", out);
	dns_expect("10.99.0.1", "123.gureum", IP(10, 99, 0, 3));
	dns_expect("10.99.0.1", "123", IP(10, 99, 0, 3));
	dns_expect("10.99.0.1", "evil.gureum", 0);
	dhcp_lease("e2", "2", NULL, out, sizeof(out));
	if (strstr(out, "obtained") || !strstr(out, "no lease"))
		fail_msg("udhcpc on e2 (unknown MAC): %s", out);

	/* As nobody it records both leases there: in place, through the
	 * descriptor it opened as root (same file, still root's). It writes
	 * in its own time: polled, up to 1000 tries. */
	bool recorded = false;
	for (int i = 0; i < 1000 && !recorded; i++) {
		gr_autofree char *l = slurp(leases);
		recorded = strstr(l, " 0e:00:00:00:00:01 10.99.0.2 ") && strstr(l, " 0e:00:00:00:00:02 10.99.0.3 ");
		if (!recorded) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	if (!recorded) {
		gr_autofree char *l = slurp(leases);
		fail_msg("%s lacks the two leases: %s", leases, l);
	}
	struct stat lst2;
	assert_int_equal(stat(leases, &lst2), 0);
	assert_int_equal(lst2.st_ino, lst.st_ino);
	assert_int_equal(lst2.st_uid, 0);

	for (int i = 0; i < 3; i++) {
		char v[8];
		snprintf(v, sizeof(v), "v%d", i);
		char *del[] = { "ip", "link", "del", v, NULL };
		assert_int_equal(run_argv(del), 0);
	}
	assert_int_equal(dnsmasq_stop(&net1.n, &err), 0);
	reap();
}

static void test_start_failure(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	write_hosts_ok(&bad, NULL, 0);
	int rc = dnsmasq_ensure(&bad.n, &err);
	assert_true(rc < 0);
	/* dnsmasq's own words ("failed to create listening socket for
	 * 10.99.2.1: Cannot assign requested address"). */
	if (!strstr(err.msg, "network bad") || !strstr(err.msg, "did not start: dnsmasq: ") ||
	    !strstr(err.msg, "(exit status "))
		fail_msg("unexpected message: %s", err.msg);
	assert_int_equal(dnsmasq_pid(&bad.n), 0);
	assert_int_equal(processes_with_arg(bad.pid_file, false), 0);

	/* The host files must exist first. */
	struct tnet nofiles;
	tnet_init(&nofiles, "nofiles", "br0", IP(10, 99, 0, 0));
	assert_int_equal(dnsmasq_ensure(&nofiles.n, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "write them first"));

	/* A binary that is not there. */
	setenv("GUREUM_DNSMASQ", "/nonexistent/dnsmasq", 1);
	rc = dnsmasq_ensure(&net1.n, &err);
	unsetenv("GUREUM_DNSMASQ");
	assert_int_equal(rc, -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/dnsmasq"));
	reap();
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(base, sizeof(base), "/tmp/gureum-test-dnsmasq-XXXXXX");
	if (!mkdtemp(base))
		return -1;
	/* What gureumd's main.c does for RUN: nobody (dnsmasq) may pass. */
	snprintf(run_root, sizeof(run_root), "%s/run", base);
	if (chmod(base, 0711) < 0 || mkdir(run_root, 0711) < 0 || chmod(run_root, 0711) < 0)
		return -1;
	tnet_init(&net1, "n1", "br0", IP(10, 99, 0, 0));
	tnet_init(&net2, "n2", "br1", IP(10, 99, 1, 0));
	tnet_init(&bad, "bad", "nosuch0", IP(10, 99, 2, 0));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	if (geteuid() == 0) {
		dnsmasq_stop(&net1.n, &err);
		dnsmasq_stop(&net2.n, &err);
		dnsmasq_stop(&bad.n, &err);
		/* Whatever a failed test left (a pid file overwritten, ...). */
		if (processes_with_arg(base, true) != 0)
			fprintf(stderr, "a dnsmasq under %s survived SIGKILL\n", base);
		reap();
	}
	gr_rm_rf(base, &err);
	return 0;
}

static int ip(const char *a, const char *b, const char *c, const char *d, const char *e, const char *f)
{
	char *argv[] = { "ip", (char *)a, (char *)b, (char *)c, (char *)d, (char *)e, (char *)f, NULL };
	return run_argv(argv);
}

/* In the namespaces: lo and the two bridges, then the tests. */
static int run_in_namespaces(void)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		fprintf(stderr, "cannot mount /proc in the test's namespaces: %s\n", strerror(errno));
		return 1;
	}
	if (ip("link", "set", "lo", "up", NULL, NULL) != 0 ||
	    ip("link", "add", "br0", "type", "bridge", NULL) != 0 ||
	    ip("addr", "add", "10.99.0.1/24", "dev", "br0", NULL) != 0 ||
	    ip("link", "set", "br0", "up", NULL, NULL) != 0 ||
	    ip("link", "add", "br1", "type", "bridge", NULL) != 0 ||
	    ip("addr", "add", "10.99.1.1/24", "dev", "br1", NULL) != 0 ||
	    ip("link", "set", "br1", "up", NULL, NULL) != 0) {
		fprintf(stderr, "cannot set up the bridges with ip(8)\n");
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_hosts),
		cmocka_unit_test(test_start_resolve_reload_stop),
		cmocka_unit_test(test_replaces_other_arguments),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_stale_pid_file),
		cmocka_unit_test(test_dhcp),
		cmocka_unit_test(test_start_failure),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

static int wait_child(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

#define NO_NAMESPACES 200   /* the child could not make its namespaces */

int main(void)
{
	const char *bin = getenv("GUREUM_DNSMASQ") ? getenv("GUREUM_DNSMASQ") : "/usr/sbin/dnsmasq";
	int rc = NO_NAMESPACES;
	if (geteuid() == 0 && access(bin, X_OK) == 0) {
		/* A child makes the namespaces (this process keeps its own: a
		 * process whose PID namespace has lost its init cannot fork,
		 * and LeakSanitizer forks at exit) and forks the tests' process,
		 * PID 1 there: its exit takes every process started in there
		 * along, whatever happened. */
		fflush(NULL);
		pid_t child = fork();
		if (child < 0) {
			perror("fork");
			return 1;
		}
		if (child == 0) {
			/* Killed with the test (a meson timeout): so is all the rest. */
			pid_t parent = getppid();
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
				_exit(1);
			if (unshare(CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS) < 0)
				_exit(NO_NAMESPACES);
			pid_t init = fork();
			if (init < 0)
				_exit(1);
			if (init == 0) {
				/* (getppid() is 0 here: the parent is outside.) */
				if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
					_exit(1);
				exit(run_in_namespaces());
			}
			_exit(wait_child(init));
		}
		rc = wait_child(child);
	}
	if (rc != NO_NAMESPACES)
		return rc;
	printf("dnsmasq: needs root, %s and namespaces; testing the host files only\n", bin);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_hosts),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
