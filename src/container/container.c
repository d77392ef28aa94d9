#include "container.h"
#include "cgroup.h"
#include "hooks.h"
#include "process.h"
#include "rootfs.h"
#include "terminal.h"
#include "../common/cleanup.h"
#include "../common/fs.h"
#include "../common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* ---- messages between the runtime and its children (SOCK_SEQPACKET) ---- */

enum sync_type {
	SYNC_USERMAP = 1, /* child: I unshared a user namespace, write my maps */
	SYNC_GO,          /* runtime: carry on (value: the init's host pid for hooks) */
	SYNC_CGROUP,      /* runtime: the init is in its cgroup */
	SYNC_CHILD_PID,   /* intermediate: the init's pid */
	SYNC_HOOKS,       /* init: namespaces are ready, run prestart/createRuntime */
	SYNC_READY,       /* init: created, waiting for start */
	SYNC_ERROR,       /* either side: text holds the error */
};

struct sync_msg {
	int type;
	int value;
	char text[GR_ERROR_MSG_MAX];
};

static int sync_send(int fd, int type, int value, const char *text)
{
	struct sync_msg m = { .type = type, .value = value };
	size_t len = offsetof(struct sync_msg, text);
	if (text) {
		snprintf(m.text, sizeof(m.text), "%s", text);
		len += strlen(m.text) + 1;
	}
	ssize_t n;
	do
		n = send(fd, &m, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

/* 0 on a message, -EPIPE on end of stream. */
static int sync_recv(int fd, struct sync_msg *m)
{
	memset(m, 0, sizeof(*m));
	ssize_t n;
	do
		n = recv(fd, m, sizeof(*m), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	m->text[sizeof(m->text) - 1] = '\0';
	return 0;
}

static int sync_expect(int fd, int type, struct sync_msg *m, struct gr_error *err)
{
	int r = sync_recv(fd, m);
	if (r == -EPIPE)
		return gr_error_set(err, EPIPE, "the container process exited during setup");
	if (r < 0)
		return gr_error_sys(err, -r, "reading from the container process");
	if (m->type == SYNC_ERROR)
		return gr_error_set(err, m->value > 0 ? m->value : EINVAL, "%s", m->text);
	if (m->type != type)
		return gr_error_set(err, EPROTO, "unexpected message %d from the container process", m->type);
	return 0;
}

/* A child reports its error to the runtime and exits. */
static __attribute__((noreturn)) void child_fail(int fd, const struct gr_error *err)
{
	sync_send(fd, SYNC_ERROR, err->code, err->msg);
	_exit(1);
}

/* ---- small helpers ---- */

static int open_state_dir(const char *root, const char *id, int *out, struct gr_error *err)
{
	char dir[PATH_MAX];
	int r = state_dir_path(root, id, dir, sizeof(dir), err);
	if (r < 0)
		return r;
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? gr_error_set(err, ENOENT, "container %s does not exist", id)
				       : gr_error_sys(err, errno, "cannot open %s", dir);
	*out = fd;
	return 0;
}

/* The unix socket at DIR/start.sock, named through /proc/self/fd so that
 * long --root paths do not overflow sun_path. */
static int start_sock_addr(int dirfd, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	snprintf(addr->sun_path, sizeof(addr->sun_path), "/proc/self/fd/%d/start.sock", dirfd);
	return 0;
}

int container_parse_signal(const char *s, int *sig)
{
	uint64_t n;
	if (gr_parse_u64(s, &n) == 0) {
		if (n == 0 || n >= (uint64_t)NSIG)
			return -EINVAL;
		*sig = (int)n;
		return 0;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	static const struct { const char *name; int sig; } names[] = {
		{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL },
		{ "TRAP", SIGTRAP }, { "ABRT", SIGABRT }, { "IOT", SIGIOT }, { "BUS", SIGBUS },
		{ "FPE", SIGFPE }, { "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV },
		{ "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
		{ "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT }, { "STOP", SIGSTOP },
		{ "TSTP", SIGTSTP }, { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG },
		{ "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },
		{ "WINCH", SIGWINCH }, { "IO", SIGIO }, { "POLL", SIGPOLL }, { "PWR", SIGPWR },
		{ "SYS", SIGSYS },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0) {
			*sig = names[i].sig;
			return 0;
		}
	if (strncasecmp(s, "RTMIN", 5) == 0 || strncasecmp(s, "RTMAX", 5) == 0) {
		int base = strncasecmp(s, "RTMIN", 5) == 0 ? SIGRTMIN : SIGRTMAX;
		int64_t off = 0;
		if (s[5] && gr_parse_i64(s + 5, &off) < 0)
			return -EINVAL;
		int v = base + (int)off;
		if (v < SIGRTMIN || v > SIGRTMAX)
			return -EINVAL;
		*sig = v;
		return 0;
	}
	return -EINVAL;
}

static int write_pid_file(const char *path, pid_t pid, struct gr_error *err)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d", (int)pid);
	return gr_write_file_atomic(path, buf, (size_t)n, 0644, err);
}

static char *state_json_text(const struct container_state *st, enum container_status s)
{
	gr_autojson json_t *j = state_to_json(st, s);
	return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

static int write_id_map(pid_t pid, const char *file, const struct oci_idmap *m, size_t n,
			struct gr_error *err)
{
	char path[64], buf[4096];
	size_t len = 0;
	for (size_t i = 0; i < n && len < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%u %u %u\n", m[i].container_id,
					m[i].host_id, m[i].size);
	if (len >= sizeof(buf))
		return gr_error_set(err, E2BIG, "linux.%s: too many mappings", file);
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	gr_autoclose int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		return gr_error_sys(err, errno, "cannot write the %s of the container (%s)", file,
				    strcmp(file, "uid_map") == 0 ? "linux.uidMappings" : "linux.gidMappings");
	return 0;
}

static bool ns_new(const struct oci_config *c, enum oci_ns_type t)
{
	return c->linux_.ns[t].requested && !c->linux_.ns[t].path;
}

/* ---- the intermediate process and the container's init ---- */

struct create_ctx {
	const struct container_opts *o;
	const struct oci_config *cfg;
	const char *rootfs;
	const char *bundle;
	struct cgroup_layout *layout;   /* NULL when cgroups are disabled */
	const char *cg_path;
	int sync_fd;
	int start_fd;                   /* listening start.sock */
	int state_dirfd;                /* ROOT/ID, to remove start.sock just before the exec */
	int console_fd;                 /* connected console socket, or -1 */
};

static int setns_path(const char *path, int flag, const char *name, struct gr_error *err)
{
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "linux.namespaces: cannot open the %s namespace %s", name, path);
	if (setns(fd, flag) < 0)
		return gr_error_sys(err, errno, "linux.namespaces: cannot join the %s namespace %s", name, path);
	return 0;
}

static __attribute__((noreturn)) void init_main(struct create_ctx *x);

static __attribute__((noreturn)) void intermediate_main(struct create_ctx *x)
{
	const struct oci_config *c = x->cfg;
	struct gr_error err = { 0 };
	struct sync_msg m;

	/* Namespaces given by path: the user namespace first (it owns the
	 * others), the mount namespace last. */
	static const enum oci_ns_type order[] = { OCI_NS_USER, OCI_NS_IPC, OCI_NS_UTS, OCI_NS_NETWORK,
						  OCI_NS_PID, OCI_NS_CGROUP, OCI_NS_TIME, OCI_NS_MOUNT };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const struct oci_namespace *ns = &c->linux_.ns[order[i]];
		if (ns->requested && ns->path &&
		    setns_path(ns->path, oci_ns_clone_flags[order[i]], oci_ns_names[order[i]], &err) < 0)
			child_fail(x->sync_fd, &err);
	}
	if (ns_new(c, OCI_NS_USER)) {
		if (unshare(CLONE_NEWUSER) < 0) {
			gr_error_sys(&err, errno, "cannot create a user namespace");
			child_fail(x->sync_fd, &err);
		}
		sync_send(x->sync_fd, SYNC_USERMAP, 0, NULL);
	}
	if (sync_expect(x->sync_fd, SYNC_GO, &m, &err) < 0)
		child_fail(x->sync_fd, &err);
	if (c->linux_.ns[OCI_NS_USER].requested && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)) {
		gr_error_sys(&err, errno, "cannot become root in the user namespace (is 0 mapped?)");
		child_fail(x->sync_fd, &err);
	}
	/* The cgroup namespace is made by the init itself, once the runtime has
	 * moved it into its cgroup (see init_cgroup_ready). */
	int flags = 0;
	for (int t = 0; t < OCI_NS_TYPES; t++)
		if (t != OCI_NS_USER && t != OCI_NS_CGROUP && ns_new(c, (enum oci_ns_type)t))
			flags |= oci_ns_clone_flags[t];
	if (flags && unshare(flags) < 0) {
		gr_error_sys(&err, errno, "cannot create the container's namespaces (unshare 0x%x)", flags);
		child_fail(x->sync_fd, &err);
	}
	if (ns_new(c, OCI_NS_TIME) && (c->linux_.time_monotonic.set || c->linux_.time_boottime.set)) {
		char buf[128];
		int n = snprintf(buf, sizeof(buf), "monotonic %lld %u\nboottime %lld %u\n",
				 (long long)c->linux_.time_monotonic.secs, c->linux_.time_monotonic.nanosecs,
				 (long long)c->linux_.time_boottime.secs, c->linux_.time_boottime.nanosecs);
		gr_autoclose int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, buf, (size_t)n) != n) {
			gr_error_sys(&err, errno, "linux.timeOffsets: cannot set the time namespace offsets");
			child_fail(x->sync_fd, &err);
		}
	}
	pid_t pid = fork();
	if (pid < 0) {
		gr_error_sys(&err, errno, "cannot fork the container's init");
		child_fail(x->sync_fd, &err);
	}
	if (pid == 0)
		init_main(x);
	sync_send(x->sync_fd, SYNC_CHILD_PID, pid, NULL);
	_exit(0);
}

/* Without namespaces to join by path or a time namespace (whose offsets
 * must be written before anyone enters it), the runtime clones the init
 * straight into its new namespaces; otherwise an intermediate process joins
 * and unshares them and forks the init. */
static bool clone_directly(const struct oci_config *c)
{
	for (int t = 0; t < OCI_NS_TYPES; t++)
		if (c->linux_.ns[t].requested && c->linux_.ns[t].path)
			return false;
	return !ns_new(c, OCI_NS_TIME);
}

/* The init, cloned straight into its namespaces: in a new user namespace it
 * waits for its id maps before it becomes root there. */
static __attribute__((noreturn)) void direct_init_main(struct create_ctx *x)
{
	struct gr_error err = { 0 };
	struct sync_msg m;
	if (ns_new(x->cfg, OCI_NS_USER)) {
		if (sync_expect(x->sync_fd, SYNC_GO, &m, &err) < 0)
			child_fail(x->sync_fd, &err);
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
			gr_error_sys(&err, errno, "cannot become root in the user namespace (is 0 mapped?)");
			child_fail(x->sync_fd, &err);
		}
	}
	init_main(x);
}

static void init_report_start_failure(int conn, const struct gr_error *err)
{
	if (conn >= 0)
		(void)gr_write_all(conn, err->msg, strlen(err->msg));
}

/* The runtime moves the init into its cgroup while the init mounts (moving
 * a task on cgroup v1 waits for an RCU grace period); the init waits here
 * before anything that depends on it: cgroup mounts, the cgroup namespace,
 * and any fork. */
static int init_cgroup_ready(void *data, struct gr_error *err)
{
	struct create_ctx *x = data;
	struct sync_msg m;
	int r = sync_expect(x->sync_fd, SYNC_CGROUP, &m, err);
	if (r < 0)
		return r;
	if (m.value && (r = cgroup_enter_self_v1(x->layout, x->cg_path, err)) < 0)
		return r;
	if (ns_new(x->cfg, OCI_NS_CGROUP) && unshare(CLONE_NEWCGROUP) < 0)
		return gr_error_sys(err, errno, "cannot create the cgroup namespace");
	return 0;
}

static __attribute__((noreturn)) void init_main(struct create_ctx *x)
{
	const struct oci_config *c = x->cfg;
	struct gr_error err = { 0 };
	struct sync_msg m;
	char slave_path[64] = "";
	int console_slave = -1;

	if (setsid() < 0) {
		gr_error_sys(&err, errno, "setsid");
		child_fail(x->sync_fd, &err);
	}
	if (!x->o->no_new_keyring && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, x->o->id) < 0 &&
	    errno != ENOSYS && errno != EPERM && errno != EACCES && errno != EDQUOT) {
		gr_error_sys(&err, errno, "cannot create a session keyring");
		child_fail(x->sync_fd, &err);
	}
	if (c->hostname && c->hostname[0] && sethostname(c->hostname, strlen(c->hostname)) < 0) {
		gr_error_sys(&err, errno, "hostname: cannot set \"%s\"", c->hostname);
		child_fail(x->sync_fd, &err);
	}
	if (c->domainname && c->domainname[0] && setdomainname(c->domainname, strlen(c->domainname)) < 0) {
		gr_error_sys(&err, errno, "domainname: cannot set \"%s\"", c->domainname);
		child_fail(x->sync_fd, &err);
	}
	struct rootfs_ctx rc = {
		.cfg = c, .rootfs = x->rootfs, .cg_layout = x->layout, .cg_path = x->cg_path,
		.userns = c->linux_.ns[OCI_NS_USER].requested,
		.cgroupns = c->linux_.ns[OCI_NS_CGROUP].requested,
		.cgroup_ready = init_cgroup_ready, .cgroup_ready_data = x,
		.unified_joined = x->layout && (ns_new(c, OCI_NS_USER) ||
						cgroup_unified_needed(x->layout, c->linux_.has_resources ?
								      &c->linux_.resources : NULL)),
	};
	if (rootfs_prepare(&rc, &err) < 0)
		child_fail(x->sync_fd, &err);
	sync_send(x->sync_fd, SYNC_HOOKS, 0, NULL);
	if (sync_expect(x->sync_fd, SYNC_GO, &m, &err) < 0)
		child_fail(x->sync_fd, &err);
	pid_t host_pid = m.value;
	char created[sizeof(m.text)];
	memcpy(created, m.text, sizeof(created));
	if (c->hooks[OCI_HOOK_CREATE_CONTAINER].n) {
		struct container_state st = { .id = (char *)x->o->id, .bundle = (char *)x->bundle,
					      .rootfs = (char *)x->rootfs, .oci_version = c->oci_version,
					      .pid = host_pid, .created = created };
		gr_autofree char *sj = state_json_text(&st, STATUS_CREATING);
		if (hooks_run(c, OCI_HOOK_CREATE_CONTAINER, sj ? sj : "{}", &err) < 0)
			child_fail(x->sync_fd, &err);
	}
	if (rootfs_pivot(x->rootfs, x->o->no_pivot, &err) < 0)
		child_fail(x->sync_fd, &err);
	if (c->process.terminal) {
		int master = -1, slave = -1;
		if (terminal_open_pty(&master, &slave, slave_path, sizeof(slave_path), &err) < 0)
			child_fail(x->sync_fd, &err);
		if (c->process.console_size.set)
			(void)terminal_set_size(slave, c->process.console_size.v.height,
						c->process.console_size.v.width, NULL);
		if (terminal_send_fd(x->console_fd, master, &err) < 0 ||
		    terminal_make_controlling(slave, &err) < 0)
			child_fail(x->sync_fd, &err);
		close(master);
		close(x->console_fd);
		console_slave = slave;
	}
	/* /dev/console is bound from the pty we hold, never from a path. */
	if (rootfs_finish(c, console_slave, &err) < 0)
		child_fail(x->sync_fd, &err);
	if (console_slave >= 0)
		close(console_slave);
	sync_send(x->sync_fd, SYNC_READY, 0, NULL);
	close(x->sync_fd);

	/* Created: wait for "start". */
	for (;;) {
		int conn = accept4(x->start_fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			_exit(1);
		}
		char byte;
		if (read(conn, &byte, 1) != 1) {
			close(conn);
			continue;
		}
		close(x->start_fd);
		if (c->hooks[OCI_HOOK_START_CONTAINER].n) {
			struct container_state st = { .id = (char *)x->o->id, .bundle = (char *)x->bundle,
						      .rootfs = (char *)x->rootfs, .oci_version = c->oci_version,
						      .pid = host_pid, .created = created };
			gr_autofree char *sj = state_json_text(&st, STATUS_CREATED);
			if (hooks_run(c, OCI_HOOK_START_CONTAINER, sj ? sj : "{}", &err) < 0) {
				init_report_start_failure(conn, &err);
				_exit(1);
			}
		}
		/* From here the container counts as running (see container_status). */
		unlinkat(x->state_dirfd, "start.sock", 0);
		close(x->state_dirfd);
		process_exec(&c->process, c, x->o->preserve_fds, &err);
		init_report_start_failure(conn, &err);
		_exit(127);
	}
}

/* ---- create ---- */

/* What run keeps from its create, so start and delete need not load it again. */
struct create_result {
	struct container_state st;
	struct oci_config *cfg;
	struct cgroup_layout layout;
	bool have_layout;
};

static void create_result_free(struct create_result *res)
{
	state_free(&res->st);
	if (res->cfg)
		oci_config_free(res->cfg);
	if (res->have_layout)
		cgroup_layout_free(&res->layout);
	memset(res, 0, sizeof(*res));
}

/* A copy of st whose strings it owns. */
static int state_dup(const struct container_state *st, struct container_state *out, struct gr_error *err)
{
	*out = (struct container_state){ .pid = st->pid, .start_time = st->start_time };
	out->id = strdup(st->id);
	out->bundle = strdup(st->bundle);
	out->rootfs = strdup(st->rootfs);
	out->oci_version = strdup(st->oci_version);
	out->created = strdup(st->created);
	out->cgroup_path = st->cgroup_path ? strdup(st->cgroup_path) : NULL;
	out->annotations = st->annotations ? json_incref(st->annotations) : NULL;
	if (!out->id || !out->bundle || !out->rootfs || !out->oci_version || !out->created ||
	    (st->cgroup_path && !out->cgroup_path)) {
		state_free(out);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static void destroy_partial(const char *dir, const struct cgroup_layout *l, const char *cg_path, pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (l && cg_path) {
		(void)cgroup_kill_all(l, cg_path, SIGKILL, NULL);
		(void)cgroup_destroy(l, cg_path, NULL);
	}
	if (dir)
		(void)gr_rm_rf(dir, NULL);
}

/* The device cgroup rules: the config's, then access to the default devices
 * (as runc does), so a config that denies everything still gets a working
 * /dev/null, ptys and so on. Devices listed in linux.devices are created but
 * need their own allow rule, as with runc. */
static int device_rules(const struct oci_config *c, struct oci_device_rule **out, size_t *n,
			struct gr_error *err)
{
	static const struct { char type; int64_t major, minor; } defaults[] = {
		{ 'c', 1, 3 }, { 'c', 1, 5 }, { 'c', 1, 7 }, { 'c', 1, 8 }, { 'c', 1, 9 },
		{ 'c', 5, 0 }, { 'c', 5, 1 }, { 'c', 5, 2 }, { 'c', 136, -1 },
	};
	size_t nd = sizeof(defaults) / sizeof(defaults[0]);
	size_t total = c->linux_.resources.n_devices + nd;
	struct oci_device_rule *v = calloc(total, sizeof(*v));
	if (!v)
		return gr_error_set(err, ENOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < c->linux_.resources.n_devices; i++)
		v[k++] = c->linux_.resources.devices[i];
	for (size_t i = 0; i < nd; i++)
		v[k++] = (struct oci_device_rule){ .allow = true, .type = defaults[i].type,
						   .major = defaults[i].major, .minor = defaults[i].minor,
						   .access = (char *)"rwm" };
	*out = v;
	*n = k;
	return 0;
}

/* A sysctl may only be set when it belongs to a namespace of the container
 * (as runc checks); anything else would change the host's value. */
static int validate_sysctl(const struct oci_config *c, const char *key, struct gr_error *err)
{
	static const char *const ipc_keys[] = { "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
						"kernel.shmall", "kernel.shmmax", "kernel.shmmni",
						"kernel.shm_rmid_forced", NULL };
	const struct oci_namespace *ns = c->linux_.ns;
	bool ipc = false;
	for (const char *const *k = ipc_keys; *k; k++)
		ipc |= strcmp(key, *k) == 0;
	if (ipc || strncmp(key, "fs.mqueue.", 10) == 0) {
		if (ns[OCI_NS_IPC].requested)
			return 0;
		return gr_error_set(err, EINVAL, "linux.sysctl[\"%s\"]: needs an ipc namespace in linux.namespaces", key);
	}
	if (strncmp(key, "net.", 4) == 0) {
		if (ns[OCI_NS_NETWORK].requested)
			return 0;
		return gr_error_set(err, EINVAL, "linux.sysctl[\"%s\"]: needs a network namespace in linux.namespaces",
				    key);
	}
	if (strcmp(key, "kernel.hostname") == 0 || strcmp(key, "kernel.domainname") == 0) {
		if (ns[OCI_NS_UTS].requested)
			return 0;
		return gr_error_set(err, EINVAL, "linux.sysctl[\"%s\"]: needs a uts namespace in linux.namespaces", key);
	}
	return gr_error_set(err, EINVAL, "linux.sysctl[\"%s\"]: not namespaced; setting it would change the host's "
			    "value", key);
}

static bool host_file_starts_with(const char *path, const char *prefix)
{
	char buf[16] = "";
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 && gr_read_all(fd, buf, sizeof(buf) - 1) > 0 && strncmp(buf, prefix, strlen(prefix)) == 0;
}

static int validate_for_create(const struct oci_config *c, struct gr_error *err)
{
	for (size_t i = 0; i < c->linux_.n_sysctl; i++) {
		int r = validate_sysctl(c, c->linux_.sysctl[i].key, err);
		if (r < 0)
			return r;
	}
	/* Never run a container unconfined that asked for confinement. */
	if (c->process.apparmor_profile && c->process.apparmor_profile[0] &&
	    host_file_starts_with("/sys/module/apparmor/parameters/enabled", "Y"))
		return gr_error_set(err, ENOTSUP, "process.apparmorProfile: AppArmor is enabled on this host but "
				    "gureum-runtime cannot apply profiles yet; remove the profile to run unconfined");
	if (c->process.selinux_label && c->process.selinux_label[0] && access("/sys/fs/selinux/enforce", F_OK) == 0)
		return gr_error_set(err, ENOTSUP, "process.selinuxLabel: SELinux is enabled on this host but "
				    "gureum-runtime cannot apply labels yet; remove the label");
	if (!c->has_process)
		return gr_error_set(err, EINVAL, "process: required to create a container");
	if (!c->has_linux || !c->linux_.ns[OCI_NS_MOUNT].requested)
		return gr_error_set(err, EINVAL, "linux.namespaces: a mount namespace is required");
	if (c->hostname && c->hostname[0] && !c->linux_.ns[OCI_NS_UTS].requested)
		return gr_error_set(err, EINVAL, "hostname: setting it needs a uts namespace in linux.namespaces");
	if (c->linux_.seccomp && c->linux_.seccomp->listener_path)
		return gr_error_set(err, ENOTSUP, "linux.seccomp.listenerPath: seccomp notification is not supported");
	if (c->linux_.has_intel_rdt)
		return gr_error_set(err, ENOTSUP, "linux.intelRdt: not supported by gureum-runtime");
	for (size_t i = 0; i < c->n_mounts; i++)
		if (c->mounts[i].idmap)
			return gr_error_set(err, ENOTSUP, "mounts[%zu].options: idmapped mounts are not supported", i);
	return 0;
}

/* Creates the container; with internal_console (foreground run with a
 * terminal) *console_master receives the pty master. */
static int do_create(const struct container_opts *o, int *console_master, struct create_result *res,
		     struct gr_error *err)
{
	char bundle[PATH_MAX], cfg_path[PATH_MAX], rootfs[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
	int r;
	if ((r = state_validate_id(o->id, err)) < 0)
		return r;
	if (!realpath(o->bundle ? o->bundle : ".", bundle))
		return gr_error_sys(err, errno, "bundle %s", o->bundle ? o->bundle : ".");
	snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", bundle);
	struct oci_config *cp = NULL;
	if ((r = oci_config_load(cfg_path, &cp, err)) < 0)
		return r;
	_cleanup_(oci_config_freep) struct oci_config *c = cp;
	if ((r = validate_for_create(c, err)) < 0)
		return gr_error_prefix(err, "%s", cfg_path);
	if (!c->root_path)
		return gr_error_set(err, EINVAL, "%s: root.path is required", cfg_path);
	snprintf(tmp, sizeof(tmp), "%s/%s", bundle, c->root_path);
	if (!realpath(c->root_path[0] == '/' ? c->root_path : tmp, rootfs))
		return gr_error_sys(err, errno, "root.path: %s", c->root_path[0] == '/' ? c->root_path : tmp);
	if (c->process.terminal && !o->console_socket && !console_master)
		return gr_error_set(err, EINVAL,
				    "process.terminal is true: --console-socket is required to receive the pty");

	/* The state directory: its creation claims the id. */
	if ((r = gr_mkdir_p(o->root, 0700, err)) < 0)
		return r;
	if ((r = state_dir_path(o->root, o->id, dir, sizeof(dir), err)) < 0)
		return r;
	if (mkdir(dir, 0700) < 0)
		return errno == EEXIST ? gr_error_set(err, EEXIST, "container %s already exists", o->id)
				       : gr_error_sys(err, errno, "cannot create %s", dir);

	/* From here every failure removes what was made. */
	struct cgroup_layout layout = { 0 };
	bool have_layout = false;
	gr_autofree char *cg_path = NULL;
	pid_t child = -1, init = -1;
	gr_autoclose int dirfd = -1, start_fd = -1, console_fd = -1, console_peer = -1;
	gr_autojson json_t *annotations = NULL;
	int sp[2] = { -1, -1 };

#define FAIL(expr)                                                                               \
	do {                                                                                     \
		r = (expr);                                                                      \
		goto fail;                                                                       \
	} while (0)

	gr_autofree char *cfg_text = json_dumps(c->json, JSON_COMPACT);
	snprintf(tmp, sizeof(tmp), "%s/config.json", dir);
	if (!cfg_text)
		FAIL(gr_error_set(err, ENOMEM, "cannot encode the config"));
	if ((r = gr_write_file_new(tmp, cfg_text, strlen(cfg_text), 0600, err)) < 0)
		goto fail;

	if (o->cgroup_manager != CGROUP_MANAGER_DISABLED) {
		if ((r = cgroup_layout_detect(NULL, &layout, err)) < 0)
			goto fail;
		have_layout = true;
		if ((r = cgroup_path_resolve(c->linux_.cgroups_path, o->id, &cg_path, err)) < 0)
			goto fail;
		gr_autofree pid_t *busy = NULL;
		size_t n_busy = 0;
		if (cgroup_exists(&layout, cg_path) && cgroup_pids(&layout, cg_path, &busy, &n_busy, NULL) == 0 &&
		    n_busy > 0) {
			r = gr_error_set(err, EBUSY, "linux.cgroupsPath: cgroup %s already holds %zu process(es) that "
					 "are not this container's; give the container a cgroup of its own", cg_path, n_busy);
			free(gr_steal_ptr(cg_path)); /* never touch a cgroup that belongs to someone else */
			goto fail;
		}
	}

	/* A first state.json right away, so that a create killed half way can
	 * still be found and deleted (with its cgroup). */
	char created[64];
	state_now_rfc3339(created, sizeof(created));
	struct container_state st = {
		.id = (char *)o->id, .bundle = bundle, .rootfs = rootfs, .oci_version = c->oci_version,
		.pid = 0, .cgroup_path = cg_path, .created = created, .creating = true,
	};
	if ((r = state_save(o->root, &st, err)) < 0)
		goto fail;
	if (cg_path && (r = cgroup_create(&layout, cg_path, err)) < 0) {
		free(gr_steal_ptr(cg_path)); /* never remove a cgroup we did not make */
		goto fail;
	}

	dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	start_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (dirfd < 0 || start_fd < 0)
		FAIL(gr_error_sys(err, errno, "cannot set up %s", dir));
	struct sockaddr_un addr;
	start_sock_addr(dirfd, &addr);
	if (bind(start_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(start_fd, 4) < 0)
		FAIL(gr_error_sys(err, errno, "cannot listen on %s/start.sock", dir));

	if (c->process.terminal) {
		if (o->console_socket) {
			if ((r = terminal_connect(o->console_socket, &console_fd, err)) < 0)
				goto fail;
		} else {
			int pair[2];
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
				FAIL(gr_error_sys(err, errno, "socketpair"));
			console_fd = pair[0];
			console_peer = pair[1];
		}
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		FAIL(gr_error_sys(err, errno, "socketpair"));

	struct create_ctx x = {
		.o = o, .cfg = c, .rootfs = rootfs, .bundle = bundle, .layout = have_layout ? &layout : NULL,
		.cg_path = cg_path, .sync_fd = sp[1], .start_fd = start_fd, .console_fd = console_fd,
		.state_dirfd = dirfd,
	};
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	struct sync_msg m;
	if (clone_directly(c)) {
		/* One clone makes the init in all its new namespaces (owned by
		 * its new user namespace, if any), as crun does. */
		int flags = 0;
		for (int t = 0; t < OCI_NS_TYPES; t++)
			if (t != OCI_NS_CGROUP && ns_new(c, (enum oci_ns_type)t))
				flags |= oci_ns_clone_flags[t];
		init = (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, NULL);
		if (init < 0)
			FAIL(gr_error_sys(err, errno, "cannot create the container's namespaces (clone 0x%x)", flags));
		if (init == 0) {
			close(sp[0]);
			if (chdir(bundle) < 0)
				_exit(1);
			direct_init_main(&x);
		}
	} else {
		child = fork();
		if (child < 0)
			FAIL(gr_error_sys(err, errno, "fork"));
		if (child == 0) {
			close(sp[0]);
			if (chdir(bundle) < 0)
				_exit(1);
			intermediate_main(&x);
		}
	}
	close(sp[1]);
	sp[1] = -1;
	/* Only the init uses the console socket; holding our copy would keep a
	 * foreground pty wait from seeing the init die. */
	if (console_fd >= 0) {
		close(console_fd);
		console_fd = -1;
	}

	pid_t mapped = init > 0 ? init : child;
	if (ns_new(c, OCI_NS_USER)) {
		if (init < 0 && (r = sync_expect(sp[0], SYNC_USERMAP, &m, err)) < 0)
			goto fail;
		if ((r = write_id_map(mapped, "uid_map", c->linux_.uid_mappings, c->linux_.n_uid_mappings, err)) < 0 ||
		    (r = write_id_map(mapped, "gid_map", c->linux_.gid_mappings, c->linux_.n_gid_mappings, err)) < 0)
			goto fail;
	}
	if (init < 0) {
		sync_send(sp[0], SYNC_GO, 0, NULL);
		r = sync_expect(sp[0], SYNC_CHILD_PID, &m, err);
		waitpid(child, NULL, 0);
		child = -1;
		if (r < 0)
			goto fail;
		init = m.value;
	} else if (ns_new(c, OCI_NS_USER)) {
		sync_send(sp[0], SYNC_GO, 0, NULL);
	}
	/* The init starts on its mounts meanwhile and waits for SYNC_CGROUP
	 * before it needs the cgroup. Outside a new user namespace it joins the
	 * v1 hierarchies itself (cgroup_enter_self_v1: no global lock, so no RCU
	 * grace period to wait for); the unified hierarchy, or everything for an
	 * init in a user namespace, is written from here. */
	bool self_v1 = false;
	if (cg_path) {
		if (ns_new(c, OCI_NS_USER))
			r = cgroup_enter(&layout, cg_path, init, err);
		else if (cgroup_unified_needed(&layout, c->linux_.has_resources ? &c->linux_.resources : NULL))
			r = cgroup_enter_unified(&layout, cg_path, init, err);
		if (r < 0)
			goto fail;
		self_v1 = !ns_new(c, OCI_NS_USER) && layout.n_v1 > 0;
	}
	sync_send(sp[0], SYNC_CGROUP, self_v1, NULL);

	st.pid = init;
	if (c->n_annotations) {
		annotations = json_object();
		for (size_t i = 0; i < c->n_annotations; i++)
			json_object_set_new(annotations, c->annotations[i].key,
					    json_string(c->annotations[i].value));
		st.annotations = annotations;
	}

	if ((r = sync_expect(sp[0], SYNC_HOOKS, &m, err)) < 0)
		goto fail;
	/* Hooks that call `state` see "creating" with the init's pid. */
	if ((r = gr_proc_start_time(init, &st.start_time, err)) < 0)
		goto fail;
	bool create_hooks = c->hooks[OCI_HOOK_PRESTART].n || c->hooks[OCI_HOOK_CREATE_RUNTIME].n ||
			    c->hooks[OCI_HOOK_CREATE_CONTAINER].n;
	if (create_hooks && (r = state_save(o->root, &st, err)) < 0)
		goto fail;
	st.creating = false;
	if (c->hooks[OCI_HOOK_PRESTART].n || c->hooks[OCI_HOOK_CREATE_RUNTIME].n) {
		/* prestart (deprecated) was defined as part of "start" on a created
		 * container, and crun and the runtime-tools suite still see it so;
		 * createRuntime runs while the container is "creating". */
		gr_autofree char *created_json = state_json_text(&st, STATUS_CREATED);
		gr_autofree char *creating_json = state_json_text(&st, STATUS_CREATING);
		if ((r = hooks_run(c, OCI_HOOK_PRESTART, created_json, err)) < 0 ||
		    (r = hooks_run(c, OCI_HOOK_CREATE_RUNTIME, creating_json, err)) < 0)
			goto fail;
	}
	sync_send(sp[0], SYNC_GO, init, created);
	if (console_peer >= 0) {
		/* Foreground run with a terminal: the pty comes to us. */
		if ((r = terminal_recv_fd(console_peer, console_master, err)) < 0) {
			/* The init died first: its own error is more useful. */
			struct gr_error ierr = { 0 };
			if (sync_expect(sp[0], SYNC_READY, &m, &ierr) < 0 && ierr.code != EPIPE)
				*err = ierr;
			goto fail;
		}
	}
	if ((r = sync_expect(sp[0], SYNC_READY, &m, err)) < 0)
		goto fail;
	/* Limits go on once the init has built its rootfs (as runc does): the
	 * device rules would otherwise forbid the mknod of linux.devices. */
	if (cg_path) {
		struct oci_resources res = c->linux_.resources; /* shallow: only devices differ */
		gr_autofree struct oci_device_rule *rules = NULL;
		if ((r = device_rules(c, &rules, &res.n_devices, err)) < 0)
			goto fail;
		res.devices = rules;
		if ((r = cgroup_apply(&layout, cg_path, &res, err)) < 0)
			goto fail;
	}
	if ((r = state_save(o->root, &st, err)) < 0)
		goto fail;
	if (o->pid_file && (r = write_pid_file(o->pid_file, init, err)) < 0)
		goto fail;
	close(sp[0]);
	sp[0] = -1;
	if (res) {
		if ((r = state_dup(&st, &res->st, err)) < 0)
			goto fail;
		res->cfg = gr_steal_ptr(c);
		res->layout = layout;
		res->have_layout = have_layout;
	} else if (have_layout) {
		cgroup_layout_free(&layout);
	}
	return 0;

fail:
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	destroy_partial(dir, have_layout ? &layout : NULL, cg_path, init);
	if (have_layout)
		cgroup_layout_free(&layout);
	if (console_master && *console_master >= 0) {
		close(*console_master);
		*console_master = -1;
	}
	return r;
#undef FAIL
}

int container_create(const struct container_opts *o, struct gr_error *err)
{
	return do_create(o, NULL, NULL, err);
}

/* ---- status, start, kill, delete ---- */

int container_status(const char *root, const struct container_state *st, enum container_status *out)
{
	if (st->creating && st->pid == 0) {
		/* The first instant of a create (or one killed then). */
		*out = STATUS_CREATING;
		return 0;
	}
	if (!state_pid_alive(st)) {
		*out = STATUS_STOPPED;
		return 0;
	}
	if (st->creating) {
		*out = STATUS_CREATING;
		return 0;
	}
	char sock[PATH_MAX];
	snprintf(sock, sizeof(sock), "%s/%s/start.sock", root, st->id);
	*out = access(sock, F_OK) == 0 ? STATUS_CREATED : STATUS_RUNNING;
	const struct cgroup_layout *l;
	if (st->cgroup_path && (l = cgroup_layout_cached(NULL))) {
		bool frozen = false;
		if (cgroup_is_frozen(l, st->cgroup_path, &frozen, NULL) == 0 && frozen)
			*out = STATUS_PAUSED;
	}
	return 0;
}

int container_load_config(const char *root, const char *id, struct oci_config **out, struct gr_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int r = state_dir_path(root, id, dir, sizeof(dir), err);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/config.json", dir);
	return oci_config_load(path, out, err);
}

static void warn_hook(const struct gr_error *err)
{
	fprintf(stderr, "warning: %s\n", err->msg);
}

static void run_hooks_warn(const struct oci_config *c, enum oci_hook_kind kind, const struct container_state *st,
			   enum container_status status)
{
	if (!c->hooks[kind].n)
		return;
	gr_autofree char *sj = state_json_text(st, status);
	hooks_run_all(c, kind, sj ? sj : "{}", warn_hook);
}

/* Releases a created init into its process; st and c are already loaded. */
static int start_loaded(const char *root, const struct container_state *st, const struct oci_config *c,
			struct gr_error *err)
{
	gr_autoclose int dirfd = -1;
	int r = open_state_dir(root, st->id, &dirfd, err);
	if (r < 0)
		return r;
	gr_autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr;
	start_sock_addr(dirfd, &addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return gr_error_sys(err, errno, "cannot reach the container %s (is its init alive?)", st->id);
	if (write(fd, "s", 1) != 1)
		return gr_error_sys(err, errno, "cannot start container %s", st->id);
	char msg[GR_ERROR_MSG_MAX];
	ssize_t n = gr_read_all(fd, msg, sizeof(msg) - 1);
	if (n < 0) /* e.g. reset: another start won the race */
		return gr_error_sys(err, (int)-n, "cannot start container %s", st->id);
	if (n > 0) {
		msg[n] = '\0';
		return gr_error_set(err, EINVAL, "%s", msg);
	}
	run_hooks_warn(c, OCI_HOOK_POSTSTART, st, STATUS_RUNNING);
	return 0;
}

int container_start(const struct container_opts *o, struct gr_error *err)
{
	_cleanup_(state_free) struct container_state st = { 0 };
	int r = state_load(o->root, o->id, &st, err);
	if (r < 0)
		return r;
	enum container_status s;
	container_status(o->root, &st, &s);
	if (s != STATUS_CREATED)
		return gr_error_set(err, EINVAL, "cannot start container %s: it is %s, not created", o->id,
				    state_status_name(s));
	struct oci_config *cp = NULL;
	if ((r = container_load_config(o->root, o->id, &cp, err)) < 0)
		return r;
	_cleanup_(oci_config_freep) struct oci_config *c = cp;
	return start_loaded(o->root, &st, c, err);
}

static int with_container(const char *root, const char *id, struct container_state *st,
			  enum container_status *status, struct gr_error *err)
{
	int r = state_load(root, id, st, err);
	if (r < 0)
		return r;
	container_status(root, st, status);
	return 0;
}

static int layout_for(const struct container_state *st, struct cgroup_layout *l, struct gr_error *err)
{
	if (!st->cgroup_path)
		return gr_error_set(err, ENOTSUP, "container %s was created without cgroups (--cgroup-manager disabled)",
				    st->id);
	return cgroup_layout_detect(NULL, l, err);
}

int container_kill(const char *root, const char *id, int sig, bool all, struct gr_error *err)
{
	_cleanup_(state_free) struct container_state st = { 0 };
	enum container_status s;
	int r = with_container(root, id, &st, &s, err);
	if (r < 0)
		return r;
	if (all && st.cgroup_path) {
		/* Even when the init is gone: what it left in the cgroup (as
		 * containerd expects when cleaning up). */
		struct cgroup_layout l;
		r = cgroup_layout_detect(NULL, &l, err);
		if (r == 0) {
			r = cgroup_kill_all(&l, st.cgroup_path, sig, err);
			cgroup_layout_free(&l);
		}
	} else if (s == STATUS_STOPPED) {
		r = gr_error_set(err, ESRCH, "container %s is not running", id);
	} else if (kill(st.pid, sig) < 0) {
		r = gr_error_sys(err, errno, "cannot send signal %d to container %s (pid %d)", sig, id, (int)st.pid);
	}
	return r;
}

static void wait_gone(const struct container_state *st)
{
	for (int i = 0; i < 1000 && state_pid_alive(st); i++) {
		if (waitpid(st->pid, NULL, WNOHANG) == st->pid)
			break;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	waitpid(st->pid, NULL, WNOHANG);
}

/* Kills what is left, removes the cgroup (l: NULL when cgroups are off or
 * unknown) and the state directory, then runs the poststop hooks (c may be
 * NULL when the config copy is unreadable). */
static int delete_loaded(const char *root, const struct container_state *st, enum container_status s,
			 const struct oci_config *c, const struct cgroup_layout *l, struct gr_error *err)
{
	char dir[PATH_MAX];
	int r;
	if (s != STATUS_STOPPED) {
		if (l)
			(void)cgroup_kill_all(l, st->cgroup_path, SIGKILL, NULL);
		kill(st->pid, SIGKILL);
		wait_gone(st);
	} else if (l) {
		/* The init is gone; anything it left in the cgroup goes too. */
		(void)cgroup_kill_all(l, st->cgroup_path, SIGKILL, NULL);
	}
	if (l && (r = cgroup_destroy(l, st->cgroup_path, err)) < 0)
		return r;
	if ((r = state_dir_path(root, st->id, dir, sizeof(dir), err)) < 0)
		return r;
	if ((r = gr_rm_rf(dir, err)) < 0)
		return r;
	if (c)
		run_hooks_warn(c, OCI_HOOK_POSTSTOP, st, STATUS_STOPPED);
	return 0;
}

int container_delete(const char *root, const char *id, bool force, struct gr_error *err)
{
	_cleanup_(state_free) struct container_state st = { 0 };
	enum container_status s;
	char dir[PATH_MAX];
	int r = with_container(root, id, &st, &s, err);
	if (r == -ENOENT && force) {
		/* Like runc: --force on a container that is already gone succeeds
		 * (podman's cleanup and "rm -f" both delete). A directory without a
		 * state file is what a create killed in its first instant leaves. */
		gr_error_clear(err);
		if (state_dir_path(root, id, dir, sizeof(dir), err) < 0)
			return -err->code;
		return gr_rm_rf(dir, err);
	}
	if (r < 0)
		return r;
	if ((s == STATUS_RUNNING || s == STATUS_PAUSED) && !force)
		return gr_error_set(err, EBUSY, "cannot delete container %s: it is %s (stop it first or use --force)",
				    id, state_status_name(s));
	struct oci_config *cp = NULL;
	struct gr_error cerr = { 0 };
	(void)container_load_config(root, id, &cp, &cerr);
	_cleanup_(oci_config_freep) struct oci_config *c = cp;
	struct cgroup_layout l;
	bool have_layout = st.cgroup_path && cgroup_layout_detect(NULL, &l, NULL) == 0;
	r = delete_loaded(root, &st, s, c, have_layout ? &l : NULL, err);
	if (have_layout)
		cgroup_layout_free(&l);
	return r;
}

int container_pause(const char *root, const char *id, bool pause, struct gr_error *err)
{
	_cleanup_(state_free) struct container_state st = { 0 };
	enum container_status s;
	int r = with_container(root, id, &st, &s, err);
	if (r < 0)
		return r;
	if (pause && s != STATUS_RUNNING && s != STATUS_CREATED)
		return gr_error_set(err, EINVAL, "cannot pause container %s: it is %s", id, state_status_name(s));
	if (!pause && s != STATUS_PAUSED)
		return gr_error_set(err, EINVAL, "cannot resume container %s: it is %s, not paused", id,
				    state_status_name(s));
	struct cgroup_layout l;
	if ((r = layout_for(&st, &l, err)) < 0)
		return r;
	r = cgroup_freeze(&l, st.cgroup_path, pause, err);
	cgroup_layout_free(&l);
	return r;
}

int container_update(const char *root, const char *id, const struct oci_resources *res, struct gr_error *err)
{
	_cleanup_(state_free) struct container_state st = { 0 };
	enum container_status s;
	int r = with_container(root, id, &st, &s, err);
	if (r < 0)
		return r;
	if (s == STATUS_STOPPED)
		return gr_error_set(err, EINVAL, "cannot update container %s: it is stopped", id);
	struct cgroup_layout l;
	if ((r = layout_for(&st, &l, err)) < 0)
		return r;
	r = cgroup_apply(&l, st.cgroup_path, res, err);
	cgroup_layout_free(&l);
	return r;
}

int container_pids(const char *root, const char *id, pid_t **pids, size_t *n, struct gr_error *err)
{
	_cleanup_(state_free) struct container_state st = { 0 };
	enum container_status s;
	int r = with_container(root, id, &st, &s, err);
	if (r < 0)
		return r;
	*pids = NULL;
	*n = 0;
	if (st.cgroup_path) {
		struct cgroup_layout l;
		if ((r = cgroup_layout_detect(NULL, &l, err)) < 0)
			return r;
		r = cgroup_pids(&l, st.cgroup_path, pids, n, err);
		cgroup_layout_free(&l);
		return r;
	}
	if (s != STATUS_STOPPED) {
		*pids = malloc(sizeof(pid_t));
		if (!*pids)
			return gr_error_set(err, ENOMEM, "out of memory");
		(*pids)[0] = st.pid;
		*n = 1;
	}
	return 0;
}

/* ---- foreground run and exec: signals, terminal, exit codes ---- */

static volatile pid_t g_forward_pid;

static void forward_signal(int sig)
{
	if (g_forward_pid > 0)
		kill(g_forward_pid, sig);
}

static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

static void forward_signals(pid_t pid)
{
	g_forward_pid = pid;
	struct sigaction sa = { .sa_handler = forward_signal };
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
		sigaction(forwarded_signals[i], &sa, NULL);
}

/* Holds the forwarded signals back (into *old the mask to restore) until
 * the process they are for exists: one that arrives meanwhile is delivered
 * to it once forward_signals() is set, instead of killing us. */
static void block_forwarded_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
		sigaddset(&set, forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

static int wait_exit_code(pid_t pid, int master, struct gr_error *err)
{
	if (master >= 0)
		(void)terminal_relay(master, err);
	/* Any child: processes the container leaves behind are re-parented to
	 * us (a subreaper) and reaped as they exit, not when the init does. */
	int status;
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, 0);
		if (w == pid) {
			status = st;
			break;
		}
		if (w < 0 && errno != EINTR)
			return gr_error_sys(err, errno, "waitpid %d", (int)pid);
	}
	/* Orphans re-parented to us (we are a subreaper) are reaped too. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int container_run(const struct container_opts *o, bool detach, int *exit_code, struct gr_error *err)
{
	_cleanup_(create_result_free) struct create_result res = { 0 };
	int master = -1;
	int r = do_create(o, detach ? NULL : &master, &res, err);
	if (r < 0)
		return r;
	const struct cgroup_layout *l = res.have_layout ? &res.layout : NULL;
	if (!detach)
		forward_signals(res.st.pid);
	r = start_loaded(o->root, &res.st, res.cfg, err);
	if (r < 0) {
		struct gr_error derr = { 0 };
		(void)delete_loaded(o->root, &res.st, STATUS_RUNNING, res.cfg, l, &derr);
		if (master >= 0)
			close(master);
		return r;
	}
	if (detach) {
		*exit_code = 0;
		return 0;
	}
	int code = wait_exit_code(res.st.pid, master, err);
	if (master >= 0)
		close(master);
	struct gr_error derr = { 0 };
	/* We reaped the init ourselves: it is stopped. */
	if (!o->keep)
		(void)delete_loaded(o->root, &res.st, STATUS_STOPPED, res.cfg, l, &derr);
	if (code < 0)
		return code;
	*exit_code = code;
	return 0;
}

static __attribute__((noreturn)) void exec_child(int sync_fd, int ns_fds[OCI_NS_TYPES],
						 const struct oci_config *c, const struct exec_opts *o,
						 int console_fd)
{
	struct gr_error err = { 0 };
	struct sync_msg m;
	static const enum oci_ns_type order[] = { OCI_NS_USER, OCI_NS_IPC, OCI_NS_UTS, OCI_NS_NETWORK,
						  OCI_NS_PID, OCI_NS_CGROUP, OCI_NS_TIME, OCI_NS_MOUNT };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int t = order[i];
		if (ns_fds[t] >= 0 && setns(ns_fds[t], oci_ns_clone_flags[t]) < 0) {
			gr_error_sys(&err, errno, "cannot join the container's %s namespace", oci_ns_names[t]);
			child_fail(sync_fd, &err);
		}
	}
	pid_t pid = fork();
	if (pid < 0) {
		gr_error_sys(&err, errno, "fork");
		child_fail(sync_fd, &err);
	}
	if (pid > 0) {
		sync_send(sync_fd, SYNC_CHILD_PID, pid, NULL);
		_exit(0);
	}
	if (sync_expect(sync_fd, SYNC_GO, &m, &err) < 0)
		child_fail(sync_fd, &err);
	if (o->process->terminal || o->detach)
		setsid();
	if (o->process->terminal) {
		int master = -1, slave = -1;
		char slave_path[64];
		if (terminal_open_pty(&master, &slave, slave_path, sizeof(slave_path), &err) < 0)
			child_fail(sync_fd, &err);
		/* The size first: once the master is sent, its receiver may
		 * resize the terminal, and a later initial size would undo that. */
		if (o->process->console_size.set)
			(void)terminal_set_size(slave, o->process->console_size.v.height,
						o->process->console_size.v.width, NULL);
		if (terminal_send_fd(console_fd, master, &err) < 0 || terminal_make_controlling(slave, &err) < 0)
			child_fail(sync_fd, &err);
		close(master);
		close(slave);
		close(console_fd);
	}
	process_exec(o->process, c, o->preserve_fds, &err);
	child_fail(sync_fd, &err);
}

int container_exec(const char *root, const char *id, const struct exec_opts *o, int *exit_code,
		   struct gr_error *err)
{
	_cleanup_(state_free) struct container_state st = { 0 };
	enum container_status s;
	int r = with_container(root, id, &st, &s, err);
	if (r < 0)
		return r;
	if (s != STATUS_RUNNING && s != STATUS_CREATED)
		return gr_error_set(err, EINVAL, "cannot exec in container %s: it is %s", id, state_status_name(s));
	struct oci_config *cp = NULL;
	if ((r = container_load_config(root, id, &cp, err)) < 0)
		return r;
	_cleanup_(oci_config_freep) struct oci_config *c = cp;

	int ns_fds[OCI_NS_TYPES];
	sigset_t saved_mask;
	bool mask_saved = false;
	gr_autoclose int console_fd = -1, console_peer = -1;
	for (int t = 0; t < OCI_NS_TYPES; t++)
		ns_fds[t] = -1;
	for (int t = 0; t < OCI_NS_TYPES; t++) {
		char p[64], self[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/%s", (int)st.pid, oci_ns_proc_names[t]);
		snprintf(self, sizeof(self), "/proc/self/ns/%s", oci_ns_proc_names[t]);
		struct stat a, b;
		if (stat(p, &a) < 0 || stat(self, &b) < 0 || (a.st_ino == b.st_ino && a.st_dev == b.st_dev))
			continue;
		ns_fds[t] = open(p, O_RDONLY | O_CLOEXEC);
		if (ns_fds[t] < 0) {
			r = gr_error_sys(err, errno, "cannot open %s", p);
			goto out;
		}
	}
	if (o->process->terminal) {
		if (o->console_socket) {
			if ((r = terminal_connect(o->console_socket, &console_fd, err)) < 0)
				goto out;
		} else if (o->detach) {
			r = gr_error_set(err, EINVAL, "exec --tty --detach needs --console-socket");
			goto out;
		} else {
			int pair[2];
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
				r = gr_error_sys(err, errno, "socketpair");
				goto out;
			}
			console_fd = pair[0];
			console_peer = pair[1];
		}
	}
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		r = gr_error_sys(err, errno, "socketpair");
		goto out;
	}
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (!o->detach) {
		block_forwarded_signals(&saved_mask);
		mask_saved = true;
	}
	pid_t child = fork();
	if (child < 0) {
		r = gr_error_sys(err, errno, "fork");
		close(sp[0]);
		close(sp[1]);
		goto out;
	}
	if (child == 0) {
		if (mask_saved)
			sigprocmask(SIG_SETMASK, &saved_mask, NULL);
		close(sp[0]);
		exec_child(sp[1], ns_fds, c, o, console_fd);
	}
	close(sp[1]);
	if (console_fd >= 0) {
		close(console_fd);
		console_fd = -1;
	}
	struct sync_msg m;
	r = sync_expect(sp[0], SYNC_CHILD_PID, &m, err);
	waitpid(child, NULL, 0);
	if (r < 0) {
		close(sp[0]);
		goto out;
	}
	pid_t pid = m.value;
	if (st.cgroup_path) {
		struct cgroup_layout l;
		if ((r = cgroup_layout_detect(NULL, &l, err)) == 0) {
			r = cgroup_enter(&l, st.cgroup_path, pid, err);
			cgroup_layout_free(&l);
		}
		if (r < 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(sp[0]);
			goto out;
		}
	}
	sync_send(sp[0], SYNC_GO, 0, NULL);
	int master = -1;
	if (console_peer >= 0 && (r = terminal_recv_fd(console_peer, &master, err)) < 0) {
		if (sync_recv(sp[0], &m) == 0 && m.type == SYNC_ERROR)
			gr_error_set(err, m.value > 0 ? m.value : EINVAL, "%s", m.text);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(sp[0]);
		goto out;
	}
	/* End of stream: the process exec'd (the socket is close-on-exec). */
	r = sync_recv(sp[0], &m);
	close(sp[0]);
	if (r == 0 && m.type == SYNC_ERROR) {
		waitpid(pid, NULL, 0);
		if (master >= 0)
			close(master);
		r = gr_error_set(err, m.value > 0 ? m.value : EINVAL, "%s", m.text);
		goto out;
	}
	if (o->pid_file && (r = write_pid_file(o->pid_file, pid, err)) < 0)
		goto out;
	r = 0;
	if (o->detach) {
		*exit_code = 0;
		goto out;
	}
	forward_signals(pid);
	sigprocmask(SIG_SETMASK, &saved_mask, NULL);   /* what arrived meanwhile goes to pid now */
	mask_saved = false;
	int code = wait_exit_code(pid, master, err);
	if (master >= 0)
		close(master);
	if (code < 0)
		r = code;
	else
		*exit_code = code;
out:
	if (mask_saved)
		sigprocmask(SIG_SETMASK, &saved_mask, NULL);
	for (int t = 0; t < OCI_NS_TYPES; t++)
		if (ns_fds[t] >= 0)
			close(ns_fds[t]);
	return r;
}
