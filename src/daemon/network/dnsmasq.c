/* One dnsmasq per network: its host files, start, reload (SIGHUP) and stop.
 * See dnsmasq.h for the files and the arguments it is given. */
#include "daemon/network/dnsmasq.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"

#define DNSMASQ_DEFAULT_PATH "/usr/sbin/dnsmasq"
#define DNSMASQ_STOP_WAIT_MS 5000   /* after SIGTERM, then as long again after SIGKILL */
#define DNSMASQ_START_WAIT_MS 30000 /* its launcher exits once the daemon serves */
#define DNSMASQ_NAME_MAX 63         /* a DNS label */
#define DNSMASQ_USER "nobody"       /* what it drops to (Debian's names) */
#define DNSMASQ_GROUP "nogroup"
#define DNSMASQ_MAX_ARGS 32

static const char *dnsmasq_path(void)
{
	const char *p = getenv("GUREUM_DNSMASQ");
	return p && *p ? p : DNSMASQ_DEFAULT_PATH;
}

static int join_path(char *buf, size_t size, const char *dir, const char *name, struct gr_error *err)
{
	int k = snprintf(buf, size, "%s/%s", dir, name);
	if (k < 0 || (size_t)k >= size)
		return gr_error_set(err, ENAMETOOLONG, "path %s/%s is too long", dir, name);
	return 0;
}

static int pid_file_path(const struct dnsmasq_net *n, char buf[PATH_MAX], struct gr_error *err)
{
	return join_path(buf, PATH_MAX, n->run_dir, "dnsmasq.pid", err);
}

struct dnsmasq_paths {
	char dhcp_hosts[PATH_MAX], hosts[PATH_MAX], leases[PATH_MAX], pid_file[PATH_MAX], log[PATH_MAX];
};

static int dnsmasq_paths(const struct dnsmasq_net *n, struct dnsmasq_paths *p, struct gr_error *err)
{
	int rc;
	if ((rc = join_path(p->dhcp_hosts, sizeof(p->dhcp_hosts), n->run_dir, "dhcp-hosts", err)) < 0 ||
	    (rc = join_path(p->hosts, sizeof(p->hosts), n->run_dir, "hosts", err)) < 0 ||
	    (rc = join_path(p->leases, sizeof(p->leases), n->state_dir, "leases", err)) < 0 ||
	    (rc = pid_file_path(n, p->pid_file, err)) < 0 ||
	    (rc = join_path(p->log, sizeof(p->log), n->run_dir, "dnsmasq.log", err)) < 0)
		return gr_error_prefix(err, "network %s", n->name);
	return 0;
}

/* ---- host files ---- */

/* Instance names are validated by the API; this is the last line before
 * they reach a file dnsmasq parses (a ',' or ' ' would change its meaning). */
static bool host_name_ok(const char *s)
{
	size_t len = s ? strlen(s) : 0;
	if (len == 0 || len > DNSMASQ_NAME_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return false;
	return true;
}

/* A name for a message: control and non-ASCII bytes shown as '?', cut at 64. */
static const char *shown(const char *s, char buf[72])
{
	size_t i = 0;
	for (; s && s[i] && i < 64; i++)
		buf[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
	if (s && s[i])
		buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
	buf[i] = '\0';
	return buf;
}

/* dnsmasq reads a --dhcp-hostsfile field as a lease time when it is digits
 * with an optional unit (123, 5s, 45m, 1h, 2d, 1w) or "infinite", and as
 * "do not serve this host" when it is "ignore": valid instance names all.
 * Such a name is left out of the line (the instance still gets its
 * address, and its name resolves through the hosts file). */
static bool dhcp_name_ambiguous(const char *s)
{
	if (strcmp(s, "infinite") == 0 || strcmp(s, "ignore") == 0)
		return true;
	size_t digits = strspn(s, "0123456789");
	if (digits == 0)
		return false;
	return s[digits] == '\0' || (strchr("smhdw", s[digits]) && s[digits + 1] == '\0');
}

/* Writes dir/name atomically and durably: a new temporary file (O_EXCL,
 * 0644 whatever the umask: dnsmasq reads it as nobody), fsync, rename over
 * name, fsync of the directory. */
static int write_file_durable(const char *dir, const char *name, const char *data, size_t len,
			      struct gr_error *err)
{
	static unsigned counter;
	gr_autoclose int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return gr_error_sys(err, errno, "cannot open directory %s", dir);
	char tmp[NAME_MAX + 1];
	gr_autoclose int fd = -1;
	for (int attempt = 0; fd < 0; attempt++) {
		unsigned c = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
		snprintf(tmp, sizeof(tmp), ".%s.tmp-%ld-%u", name, (long)getpid(), c);
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 && (errno != EEXIST || attempt >= 100))
			return gr_error_sys(err, errno, "cannot create %s/%s", dir, tmp);
	}
	int rc = 0;
	if (fchmod(fd, 0644) < 0 || gr_write_all(fd, data, len) < 0 || fsync(fd) < 0)
		rc = gr_error_sys(err, errno, "cannot write %s/%s", dir, tmp);
	else if (close(gr_steal_fd(fd)) < 0)
		rc = gr_error_sys(err, errno, "cannot write %s/%s", dir, tmp);
	else if (renameat(dfd, tmp, dfd, name) < 0)
		rc = gr_error_sys(err, errno, "cannot rename %s/%s to %s", dir, tmp, name);
	if (rc < 0) {
		unlinkat(dfd, tmp, 0);
		return rc;
	}
	if (fsync(dfd) < 0)
		return gr_error_sys(err, errno, "cannot sync directory %s", dir);
	return 0;
}

/* The state directory 0700; the run directory 0711 (dnsmasq, as nobody,
 * opens the host files in it by name but cannot list it) whatever the
 * umask or an earlier mode, and its parent (RUN/networks) given the search
 * bits it lacks (nothing else of its mode changes). */
static int make_dirs(const struct dnsmasq_net *n, struct gr_error *err)
{
	/* dnsmasq is given paths under them, and finds itself by them. */
	if (n->state_dir[0] != '/' || n->run_dir[0] != '/')
		return gr_error_set(err, EINVAL, "network %s: state and run directories must be absolute paths (%s, %s)",
				    n->name, n->state_dir, n->run_dir);
	int rc = gr_mkdir_p(n->state_dir, 0700, err);
	if (rc == 0)
		rc = gr_mkdir_p(n->run_dir, 0711, err);
	if (rc < 0)
		return gr_error_prefix(err, "network %s", n->name);
	if (chmod(n->run_dir, 0711) < 0)
		return gr_error_sys(err, errno, "network %s: cannot make %s 0711", n->name, n->run_dir);
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", n->run_dir);
	for (size_t k = strlen(parent); k > 1 && parent[k - 1] == '/'; k--)
		parent[k - 1] = '\0';
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		return 0;                   /* directly under / */
	*slash = '\0';
	struct stat st;
	if (stat(parent, &st) < 0)
		return gr_error_sys(err, errno, "network %s: cannot stat %s", n->name, parent);
	if ((st.st_mode & 0011) != 0011 && chmod(parent, (st.st_mode & 07777) | 0011) < 0)
		return gr_error_sys(err, errno, "network %s: cannot make %s traversable (0711)", n->name, parent);
	return 0;
}

int dnsmasq_write_hosts(const struct dnsmasq_net *n, const struct dnsmasq_host *hosts, size_t count,
			struct gr_error *err)
{
	for (size_t i = 0; i < count; i++) {
		char buf[72];
		if (!host_name_ok(hosts[i].name))
			return gr_error_set(err, EINVAL,
					    "network %s: instance name \"%s\" cannot be a DNS name "
					    "(1 to %d of a-z, 0-9 and -)",
					    n->name, shown(hosts[i].name, buf), DNSMASQ_NAME_MAX);
		if (!hosts[i].mac)
			return gr_error_set(err, EINVAL, "network %s: instance %s has no MAC address",
					    n->name, hosts[i].name);
		if (!ipv4_net_contains(&n->subnet, hosts[i].addr)) {
			char a[IPV4_STR_MAX], s[IPV4_NET_STR_MAX];
			ipv4_format(hosts[i].addr, a);
			ipv4_net_format(&n->subnet, s);
			return gr_error_set(err, EINVAL, "network %s: instance %s's address %s is outside %s",
					    n->name, hosts[i].name, a, s);
		}
	}
	int rc = make_dirs(n, err);
	if (rc < 0)
		return rc;

	gr_autofree char *dhcp = NULL, *names = NULL;
	size_t dhcp_len = 0, names_len = 0;
	gr_autofclose FILE *fdhcp = open_memstream(&dhcp, &dhcp_len);
	gr_autofclose FILE *fnames = open_memstream(&names, &names_len);
	if (!fdhcp || !fnames)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < count; i++) {
		char mac[MAC_STR_MAX], addr[IPV4_STR_MAX];
		mac_format(hosts[i].mac, mac);
		ipv4_format(hosts[i].addr, addr);
		if (dhcp_name_ambiguous(hosts[i].name))
			fprintf(fdhcp, "%s,%s\n", mac, addr);
		else
			fprintf(fdhcp, "%s,%s,%s\n", mac, addr, hosts[i].name);
		fprintf(fnames, "%s %s %s.%s\n", addr, hosts[i].name, hosts[i].name, DNSMASQ_DOMAIN);
	}
	/* fclose makes the buffers final (and they stay ours to free). */
	int bad = ferror(fdhcp) | ferror(fnames);
	bad |= fclose(gr_steal_ptr(fdhcp));
	bad |= fclose(gr_steal_ptr(fnames));
	if (bad || !dhcp || !names)
		return gr_error_set(err, ENOMEM, "out of memory");

	rc = write_file_durable(n->run_dir, "dhcp-hosts", dhcp, dhcp_len, err);
	if (rc == 0)
		rc = write_file_durable(n->run_dir, "hosts", names, names_len, err);
	if (rc < 0)
		return gr_error_prefix(err, "network %s: DHCP/DNS host files", n->name);
	/* Where versions before dnsmasq ran as nobody kept them. */
	static const char *const old[] = { "dhcp-hosts", "hosts" };
	for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof(path), "%s/%s", n->state_dir, old[i]) < (int)sizeof(path))
			(void)unlink(path);
	}
	return 0;
}

/* ---- finding the running dnsmasq ---- */

static pid_t read_pid_file(const char *path)
{
	char buf[32];
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	ssize_t k = gr_read_all(fd, buf, sizeof(buf) - 1);
	if (k <= 0)
		return 0;
	buf[k] = '\0';
	while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == ' '))
		buf[--k] = '\0';
	uint64_t v;
	if (gr_parse_u64(buf, &v) < 0 || v < 1 || v > INT_MAX)
		return 0;
	return (pid_t)v;
}

/* Is pid a dnsmasq (our binary) started with --pid-file=pid_file? A stale
 * pid file whose number now names another process says no. */
static bool pid_is_dnsmasq(pid_t pid, const char *pid_file)
{
	char link[64], exe[PATH_MAX + 16], want[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	ssize_t k = readlink(link, exe, sizeof(exe) - 1);
	if (k <= 0)
		return false;               /* gone, or a zombie */
	exe[k] = '\0';
	/* The binary was replaced (a package upgrade) while it ran. */
	static const char deleted[] = " (deleted)";
	size_t dl = sizeof(deleted) - 1;
	if ((size_t)k > dl && strcmp(exe + k - dl, deleted) == 0)
		exe[k - dl] = '\0';
	const char *bin = dnsmasq_path();
	if (!realpath(bin, want))
		snprintf(want, sizeof(want), "%s", bin);
	if (strcmp(exe, want) != 0)
		return false;

	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	gr_autofree char *cmd = NULL;
	size_t len = 0;
	struct gr_error ignored = { 0 };
	if (gr_read_file(path, &cmd, &len, &ignored) < 0)
		return false;
	gr_autofree char *arg = NULL;
	if (asprintf(&arg, "--pid-file=%s", pid_file) < 0)
		return false;
	for (size_t off = 0; off < len; off += strlen(cmd + off) + 1)
		if (strcmp(cmd + off, arg) == 0)
			return true;
	return false;
}

/* A pidfd for the network's dnsmasq, or -ESRCH. The pidfd is opened before
 * the checks, so a signal sent through it reaches the process that was
 * checked (or none, if it has exited since), never a newcomer with its pid. */
static int dnsmasq_open(const struct dnsmasq_net *n, pid_t *pid_out)
{
	char pf[PATH_MAX];
	struct gr_error ignored = { 0 };
	if (pid_file_path(n, pf, &ignored) < 0)
		return -ESRCH;
	pid_t pid = read_pid_file(pf);
	if (pid <= 0)
		return -ESRCH;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -ESRCH;
	if (!pid_is_dnsmasq(pid, pf)) {
		close(pidfd);
		return -ESRCH;
	}
	if (pid_out)
		*pid_out = pid;
	return pidfd;
}

pid_t dnsmasq_pid(const struct dnsmasq_net *n)
{
	pid_t pid = 0;
	int pidfd = dnsmasq_open(n, &pid);
	if (pidfd < 0)
		return 0;
	close(pidfd);
	return pid;
}

static int pidfd_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the process of pidfd has exited (a zombie counts); false
 * when it still runs after ms. */
static bool wait_exit(int pidfd, int ms)
{
	int64_t deadline = now_ms() + ms;
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int r = poll(&p, 1, left > 0 ? (int)left : 0);
		if (r > 0)
			return true;
		if (r == 0)
			return false;
		if (errno != EINTR)
			return false;
	}
}

/* ---- start ---- */

/* dnsmasq's output as one line: every run of blanks and newlines becomes
 * one space, none at either end. */
static void one_line(char *s)
{
	char *w = s;
	bool blank = false;
	for (const char *r = s; *r; r++) {
		if (*r == '\n' || *r == '\r' || *r == ' ' || *r == '\t') {
			blank = w != s;
			continue;
		}
		if (blank)
			*w++ = ' ';
		blank = false;
		*w++ = *r;
	}
	*w = '\0';
}

/* Runs the launcher: reads its output (the daemon points its own stdout
 * and stderr at /dev/null, so the pipe ends when the daemon is up or has
 * failed) and waits for it. *status: its exit status, -1 when killed. */
static int run_launcher(const char *path, char *const argv[], char *out, size_t out_len, int *status,
			struct gr_error *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "pipe");
	gr_autoclose int rd = p[0];
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	/* It outlives gureumd: it must hold none of gureumd's descriptors
	 * (the API socket, the database), even ones without O_CLOEXEC. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
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
	if (r != 0)
		return gr_error_sys(err, r, "cannot run %s (install dnsmasq-base, or set GUREUM_DNSMASQ)", path);

	size_t got = 0;
	bool timed_out = false;
	int64_t deadline = now_ms() + DNSMASQ_START_WAIT_MS;
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd pf = { .fd = rd, .events = POLLIN };
		int k = poll(&pf, 1, left > 0 ? (int)left : 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			timed_out = k == 0;
			break;
		}
		char sink[512];
		ssize_t m = got + 1 < out_len ? read(rd, out + got, out_len - 1 - got) : read(rd, sink, sizeof(sink));
		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0)
			break;
		if (got + 1 < out_len)
			got += (size_t)m;
	}
	out[got] = '\0';
	if (timed_out)
		kill(pid, SIGKILL);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return gr_error_sys(err, errno, "waitpid %s", path);
	if (timed_out)
		return gr_error_set(err, ETIMEDOUT, "%s did not finish starting within %d s (killed)", path,
				    DNSMASQ_START_WAIT_MS / 1000);
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return 0;
}

/* dnsmasq reads the host files after it has become nobody (at start and at
 * every SIGHUP) and starts without complaint when it cannot, serving no
 * names: every directory on the way must let others search it, and the
 * files must let others read them. */
static int check_reachable(const struct dnsmasq_net *n, const struct dnsmasq_paths *p, struct gr_error *err)
{
	gr_autofree char *dir = realpath(n->run_dir, NULL);
	if (!dir)
		return gr_error_sys(err, errno, "network %s: %s", n->name, n->run_dir);
	size_t len = strlen(dir);
	for (size_t end = 0; end <= len; end++) {
		if (end < len && dir[end] != '/')
			continue;
		char saved = dir[end];
		dir[end] = '\0';
		const char *d = end == 0 ? "/" : dir;
		struct stat st;
		int rc = 0;
		if (stat(d, &st) < 0)
			rc = gr_error_sys(err, errno, "network %s: cannot stat %s", n->name, d);
		else if (!(st.st_mode & S_IXOTH))
			rc = gr_error_set(err, EACCES,
					  "network %s: dnsmasq runs as %s and cannot reach its host files in %s: "
					  "%s is mode %04o; it must let others through (0711, as gureumd makes its "
					  "run directory)",
					  n->name, DNSMASQ_USER, n->run_dir, d, (unsigned)(st.st_mode & 07777));
		dir[end] = saved;
		if (rc < 0)
			return rc;
		if (end == 0 && len == 1)
			break;
	}
	const char *const files[] = { p->dhcp_hosts, p->hosts };
	for (size_t i = 0; i < 2; i++) {
		struct stat st;
		/* dnsmasq would start without them and serve nothing until a SIGHUP. */
		if (stat(files[i], &st) < 0)
			return gr_error_sys(err, errno, "network %s: cannot run dnsmasq without %s and %s (write them first)",
					    n->name, p->dhcp_hosts, p->hosts);
		if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IROTH))
			return gr_error_set(err, EACCES,
					    "network %s: dnsmasq runs as %s and cannot read %s (mode %04o; rewrite the "
					    "host files)",
					    n->name, DNSMASQ_USER, files[i], (unsigned)(st.st_mode & 07777));
	}
	return 0;
}

static bool add_arg(char **v, size_t *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool add_arg(char **v, size_t *k, const char *fmt, ...)
{
	if (*k + 1 >= DNSMASQ_MAX_ARGS)
		return false;
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return false;
	v[(*k)++] = s;
	return true;
}

/* dnsmasq's argument vector (a NULL-terminated vector of allocated strings). */
static int build_argv(const struct dnsmasq_net *n, const struct dnsmasq_paths *p, char ***out,
		      struct gr_error *err)
{
	char gw[IPV4_STR_MAX], first[IPV4_STR_MAX], mask[IPV4_STR_MAX];
	ipv4_format(ipv4_net_gateway(&n->subnet), gw);
	ipv4_format(ipv4_net_first_host(&n->subnet), first);
	ipv4_format(ipv4_net_mask(n->subnet.prefix), mask);
	uint32_t first_a = ipv4_net_first_host(&n->subnet), last_a = ipv4_net_last_host(&n->subnet);
	unsigned lease_max = last_a >= first_a ? last_a - first_a + 1 : 1;

	gr_autostrv char **v = calloc(DNSMASQ_MAX_ARGS, sizeof(*v));
	if (!v)
		return gr_error_set(err, ENOMEM, "out of memory");
	size_t k = 0;
	bool ok = add_arg(v, &k, "%s", dnsmasq_path()) &&
		  add_arg(v, &k, "--conf-file=/dev/null") &&      /* not /etc/dnsmasq.conf */
		  /* It parses packets from the guests: never as root (see dnsmasq.h).
		   * Explicit, also the group: its default group is "dip". */
		  add_arg(v, &k, "--user=%s", DNSMASQ_USER) &&
		  add_arg(v, &k, "--group=%s", DNSMASQ_GROUP) &&
		  add_arg(v, &k, "--no-hosts") &&                 /* not /etc/hosts */
		  add_arg(v, &k, "--strict-order") &&
		  add_arg(v, &k, "--bind-interfaces") &&          /* one dnsmasq per bridge, each on its own address */
		  add_arg(v, &k, "--except-interface=lo") &&      /* --interface would add lo (127.0.0.1:53) */
		  add_arg(v, &k, "--interface=%s", n->bridge) &&
		  add_arg(v, &k, "--listen-address=%s", gw) &&
		  add_arg(v, &k, "--pid-file=%s", p->pid_file) &&
		  add_arg(v, &k, "--log-facility=%s", p->log) &&
		  add_arg(v, &k, "--dhcp-range=%s,static,%s,1h", first, mask) &&
		  add_arg(v, &k, "--dhcp-hostsfile=%s", p->dhcp_hosts) &&
		  add_arg(v, &k, "--addn-hosts=%s", p->hosts) &&
		  add_arg(v, &k, "--dhcp-leasefile=%s", p->leases) &&
		  add_arg(v, &k, "--dhcp-lease-max=%u", lease_max) &&
		  add_arg(v, &k, "--dhcp-no-override") &&
		  add_arg(v, &k, "--dhcp-authoritative") &&
		  add_arg(v, &k, "--quiet-dhcp") &&               /* guests' DHCP traffic does not fill RUN (tmpfs) with log lines */
		  add_arg(v, &k, "--dhcp-ignore-names") &&        /* a guest cannot put a name of its choice into DNS */
		  add_arg(v, &k, "--domain=%s", DNSMASQ_DOMAIN) &&
		  add_arg(v, &k, "--local=/%s/", DNSMASQ_DOMAIN) &&
		  add_arg(v, &k, "--domain-needed");              /* a dotless name that is no instance is not forwarded */
	if (!ok)
		return gr_error_set(err, ENOMEM, "out of memory");
	*out = gr_steal_ptr(v);
	return 0;
}

/* Was pid started with exactly argv? (Not when it has exited since.) */
static bool runs_with(pid_t pid, char *const argv[])
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	gr_autofree char *cmd = NULL;
	size_t len = 0, off = 0;
	struct gr_error ignored = { 0 };
	if (gr_read_file(path, &cmd, &len, &ignored) < 0)
		return false;
	for (size_t i = 0; argv[i]; i++) {
		size_t l = strlen(argv[i]) + 1;
		if (off + l > len || memcmp(cmd + off, argv[i], l) != 0)
			return false;
		off += l;
	}
	return off == len;
}

static int dnsmasq_start(const struct dnsmasq_net *n, const struct dnsmasq_paths *p, char *const argv[],
			 struct gr_error *err)
{
	char out[GR_ERROR_MSG_MAX / 2];
	int status = 0;
	int rc = run_launcher(argv[0], argv, out, sizeof(out), &status, err);
	if (rc < 0)
		return gr_error_prefix(err, "network %s", n->name);
	one_line(out);
	if (status != 0) {
		char gw[IPV4_STR_MAX], gwnet[IPV4_NET_STR_MAX];
		ipv4_format(ipv4_net_gateway(&n->subnet), gw);
		ipv4_net_format(&n->subnet, gwnet);
		return gr_error_set(err, EIO,
				    "network %s: dnsmasq (DHCP/DNS on bridge %s, %s) did not start: %s "
				    "(exit status %d); check that the bridge exists with address %s and that "
				    "nothing else serves DNS on %s:53",
				    n->name, n->bridge, gwnet, out[0] ? out : "no message", status, gw, gw);
	}
	if (dnsmasq_pid(n) == 0)
		return gr_error_set(err, EIO,
				    "network %s: dnsmasq reported it started, but %s names no running dnsmasq; see %s",
				    n->name, p->pid_file, p->log);
	return 0;
}

int dnsmasq_ensure(const struct dnsmasq_net *n, struct gr_error *err)
{
	struct dnsmasq_paths p;
	int rc = dnsmasq_paths(n, &p, err);
	if (rc < 0)
		return rc;
	if ((rc = make_dirs(n, err)) < 0 || (rc = check_reachable(n, &p, err)) < 0)
		return rc;
	gr_autostrv char **argv = NULL;
	if ((rc = build_argv(n, &p, &argv, err)) < 0)
		return gr_error_prefix(err, "network %s", n->name);

	pid_t pid = 0;
	gr_autoclose int pidfd = dnsmasq_open(n, &pid);
	if (pidfd >= 0) {
		if (runs_with(pid, argv)) {
			if (pidfd_signal(pidfd, SIGHUP) == 0)
				return 0;
			if (errno != ESRCH)
				return gr_error_sys(err, errno, "network %s: cannot signal its dnsmasq to reload",
						    n->name);
			/* It has just exited: start a new one. */
		} else {
			/* Started with other arguments (by an earlier version, or
			 * before a setting changed): a SIGHUP would not apply them. */
			if ((rc = dnsmasq_stop(n, err)) < 0)
				return rc;
		}
	}
	return dnsmasq_start(n, &p, argv, err);
}

int dnsmasq_stop(const struct dnsmasq_net *n, struct gr_error *err)
{
	char pf[PATH_MAX];
	int rc = pid_file_path(n, pf, err);
	if (rc < 0)
		return gr_error_prefix(err, "network %s", n->name);
	pid_t pid = 0;
	gr_autoclose int pidfd = dnsmasq_open(n, &pid);
	if (pidfd >= 0) {
		if (pidfd_signal(pidfd, SIGTERM) < 0 && errno != ESRCH)
			return gr_error_sys(err, errno, "network %s: cannot stop its dnsmasq (pid %d)", n->name,
					    (int)pid);
		if (!wait_exit(pidfd, DNSMASQ_STOP_WAIT_MS)) {
			if (pidfd_signal(pidfd, SIGKILL) < 0 && errno != ESRCH)
				return gr_error_sys(err, errno, "network %s: cannot kill its dnsmasq (pid %d)",
						    n->name, (int)pid);
			if (!wait_exit(pidfd, DNSMASQ_STOP_WAIT_MS))
				return gr_error_set(err, ETIMEDOUT,
						    "network %s: its dnsmasq (pid %d) still runs %d s after SIGKILL",
						    n->name, (int)pid, 2 * DNSMASQ_STOP_WAIT_MS / 1000);
		}
	}
	/* Ours or stale: either way nothing runs under it now. */
	if (unlink(pf) < 0 && errno != ENOENT)
		return gr_error_sys(err, errno, "network %s: cannot remove %s", n->name, pf);
	return 0;
}
