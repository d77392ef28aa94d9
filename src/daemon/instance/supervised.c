/* What the supervised drivers share (instance/supervised.h). */
#include "daemon/instance/supervised.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "container/terminal.h"

extern char **environ;

int64_t supervised_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void supervised_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

int supervised_fd_high(int fd)
{
	if (fd < 0 || fd >= 10)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	int e = errno;
	close(fd);
	errno = e;
	return n;
}

int supervised_spawn(pid_t *pid, const char *path, posix_spawn_file_actions_t *fa, char **argv, bool setsid_,
		     struct gr_error *err)
{
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, (short)(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					      (setsid_ ? POSIX_SPAWN_SETSID : 0)));
	int r = posix_spawn(pid, path, fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	if (r != 0)
		return gr_error_sys(err, r, "cannot run %s", path);
	return 0;
}

int supervised_binary(const struct driver_env *env, char *out, struct gr_error *err)
{
	if (snprintf(out, PATH_MAX, "%s/gureum-supervisor", env->libexec_dir ? env->libexec_dir : ".") >= PATH_MAX)
		return gr_error_set(err, ENAMETOOLONG, "libexec directory path too long");
	if (access(out, X_OK) < 0)
		return gr_error_sys(err, errno, "gureum-supervisor not found at %s", out);
	return 0;
}

/* The supervisor's one-line report on fd ("ok\n" or "error: ...\n"). */
static int read_ready(int fd, char *msg, size_t n, struct gr_error *err)
{
	size_t got = 0;
	int64_t end = supervised_now_ms() + SUPERVISED_START_TIMEOUT_MS;
	for (;;) {
		int64_t left = end - supervised_now_ms();
		if (left <= 0)
			return gr_error_set(err, ETIMEDOUT, "the supervisor did not report within %d s",
					    SUPERVISED_START_TIMEOUT_MS / 1000);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int k = poll(&pfd, 1, (int)left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return gr_error_sys(err, errno, "poll");
		if (k == 0)
			continue;
		ssize_t m = read(fd, msg + got, n - 1 - got);
		if (m < 0 && errno == EINTR)
			continue;
		if (m < 0)
			return gr_error_sys(err, errno, "cannot read the supervisor's report");
		if (m == 0 || (got += (size_t)m) >= n - 1 || memchr(msg, '\n', got))
			break;
	}
	msg[got] = '\0';
	return 0;
}

int supervised_launch(const struct driver_env *env, const char *name, char *const args[], struct gr_error *err)
{
	char sup[PATH_MAX], instances_run[PATH_MAX];
	int r = supervised_binary(env, sup, err);
	if (r < 0)
		return r;
	snprintf(instances_run, sizeof(instances_run), "%s/instances", env->run_dir);
	if ((r = gr_mkdir_p(instances_run, 0700, err)) < 0)
		return r;
	size_t n = 0;
	while (args[n])
		n++;
	gr_autofree char **argv = calloc(n + 5, sizeof(char *));
	if (!argv)
		return gr_error_set(err, ENOMEM, "out of memory");
	/* The subcommand, then ours, then the caller's (which may end with
	 * "-- ENGINE ARGS"). */
	argv[0] = sup;
	argv[1] = n ? args[0] : NULL;
	argv[2] = (char *)"--ready-fd";
	argv[3] = (char *)"3";
	argv[4] = (char *)"--daemonize";
	if (n > 1)
		memcpy(argv + 5, args + 1, (n - 1) * sizeof(char *));

	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "pipe");
	gr_autoclose int rd = supervised_fd_high(pfd[0]), wr = supervised_fd_high(pfd[1]);
	if (rd < 0 || wr < 0)
		return gr_error_sys(err, errno, "pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, wr, 3);
	pid_t child;
	r = supervised_spawn(&child, sup, &fa, argv, true, err);
	posix_spawn_file_actions_destroy(&fa);
	if (r < 0)
		return r;
	close(wr);
	wr = -1;
	/* It forks the real supervisor (not our child) and exits at once. */
	int st;
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	char msg[GR_ERROR_MSG_MAX + 16];
	if ((r = read_ready(rd, msg, sizeof(msg), err)) < 0)
		return r;
	if (strncmp(msg, "ok\n", 3) == 0)
		return 0;
	if (strncmp(msg, "error: ", 7) == 0) {
		msg[strcspn(msg, "\n")] = '\0';
		return gr_error_set(err, EIO, "cannot start instance %s: %s", name, msg + 7);
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		return gr_error_set(err, EIO, "cannot start instance %s: gureum-supervisor exited with %d (bad arguments?)",
				    name, WEXITSTATUS(st));
	return gr_error_set(err, EIO, "cannot start instance %s: its supervisor ended without a report", name);
}

bool supervised_wait_gone(const struct instance_paths *p, int64_t until)
{
	pid_t pid;
	while (supervisor_alive(p, &pid)) {
		if (supervised_now_ms() >= until)
			return false;
		supervised_sleep_ms(10);
	}
	return true;
}

int supervised_stop(const struct instance_paths *p, const char *name, int timeout, bool force, bool *had_none,
		    struct gr_error *err)
{
	if (timeout < 0)
		timeout = 0;
	pid_t pid;
	*had_none = false;
	int64_t until = supervised_now_ms() + (force ? 0 : (int64_t)timeout * 1000) + SUPERVISED_STOP_GRACE_MS;
	if (!supervisor_alive(p, &pid)) {
		*had_none = true;
		return 1;
	}
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "{\"timeout\":%d}\n", force ? 0 : timeout);
	int r = gr_write_file_atomic(p->stop_file, buf, (size_t)n, 0600, err);
	if (r < 0)
		return r;
	/* Starting: the pid is written just after the lock is taken. */
	for (int i = 0; pid == 0 && i < 100 && supervisor_alive(p, &pid); i++)
		supervised_sleep_ms(10);
	if (pid > 0 && kill(pid, SIGTERM) < 0 && errno != ESRCH)
		return gr_error_sys(err, errno, "cannot signal the supervisor of %s (pid %d)", name, (int)pid);
	return supervised_wait_gone(p, until) ? 1 : 0;
}

int supervised_console(const struct instance_paths *p, const char *name, int *fd, struct gr_error *err)
{
	pid_t pid;
	if (!supervisor_alive(p, &pid))
		return gr_error_set(err, EBUSY, "instance %s is not running", name);
	gr_autoclose int dirfd = open(p->run, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return gr_error_sys(err, errno, "cannot open %s", p->run);
	if (faccessat(dirfd, "console.sock", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return gr_error_set(err, ENOTSUP, "instance %s has no console", name);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/console.sock", dirfd);
	gr_autoclose int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		return gr_error_sys(err, errno, "cannot connect to the console of %s", name);
	*fd = gr_steal_fd(s);
	return 0;
}

int supervised_log_path(const struct instance_paths *p, char **path, struct gr_error *err)
{
	*path = strdup(p->log);
	return *path ? 0 : gr_error_set(err, ENOMEM, "out of memory");
}

void supervised_status(const struct instance_paths *p, struct instance_status *out)
{
	memset(out, 0, sizeof(*out));
	out->exit_code = -1;
	bool alive = supervisor_alive(p, &out->supervisor_pid);
	out->state = alive ? INSTANCE_RUNNING : INSTANCE_STOPPED;
	struct exit_info ex;
	struct gr_error xerr = { 0 };
	int r = exit_info_read(p->exit_file, &ex, &xerr);
	if (r == 0) {
		out->exit_code = ex.exit_code;
		snprintf(out->stop_reason, sizeof(out->stop_reason), "%s", ex.reason);
		out->restarts = ex.restarts;
		out->restarting = alive && ex.restarting;
	} else if (r != -ENOENT) {
		snprintf(out->stop_reason, sizeof(out->stop_reason), "unreadable exit record: %s", xerr.msg);
	}
}

/* CPU ticks (utime + stime) and resident pages of pid, from /proc/PID/stat. */
static bool proc_usage(pid_t pid, uint64_t *ticks, uint64_t *rss_pages)
{
	uint64_t f[11]; /* fields 14 (utime) .. 24 (rss) */
	if (gr_proc_stat_fields(pid, 14, 11, f) < 0)
		return false;
	*ticks += f[0] + f[1];
	*rss_pages += f[10];
	return true;
}

/* Adds the usage of pid's descendants (bounded depth and count). */
static void tree_usage(pid_t pid, int depth, uint64_t *ticks, uint64_t *rss_pages)
{
	char path[80];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	gr_autofree char *text = NULL;
	if (depth > 4 || gr_read_file(path, &text, NULL, NULL) < 0)
		return;
	int count = 0;
	for (char *save = NULL, *tok = strtok_r(text, " \n", &save); tok && count < 64;
	     tok = strtok_r(NULL, " \n", &save), count++) {
		pid_t child = (pid_t)strtol(tok, NULL, 10);
		if (child > 0 && proc_usage(child, ticks, rss_pages))
			tree_usage(child, depth + 1, ticks, rss_pages);
	}
}

void supervised_usage(struct instance_status *st)
{
	st->cpu_ns = 0;
	st->memory_bytes = 0;
	if (st->supervisor_pid <= 0)
		return;
	uint64_t ticks = 0, pages = 0;
	tree_usage(st->supervisor_pid, 0, &ticks, &pages);
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	st->cpu_ns = hz > 0 ? ticks * (1000000000ull / (uint64_t)hz) : 0;
	st->memory_bytes = pages * (uint64_t)(page > 0 ? page : 4096);
}

static int memfd_with(const char *text, int *out, struct gr_error *err)
{
	int fd = memfd_create("gureum-exec", MFD_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "memfd_create");
	int r = gr_write_all(fd, text, strlen(text));
	if (r < 0) {
		close(fd);
		return gr_error_sys(err, -r, "cannot write the exec request");
	}
	*out = supervised_fd_high(fd);
	return 0;
}

static atomic_uint exec_counter;

/* The exec helper: `SUP SUBCOMMAND --run-dir RUN --name NAME --request-fd 3
 * [--console-socket SOCK]` with request (JSON text) on a memfd as fd 3.
 * Without tty its stdio are the session's pipes; with one it sends its
 * pty's master to a socket of ours (reached through /proc/OURPID/fd/DIRFD:
 * no sun_path length limit), or fails on its stderr. */
int supervised_exec(const struct driver_env *env, const struct instance_paths *p, const char *sup,
		    const char *subcommand, const char *name, const char *request, bool tty, int pty_timeout_ms,
		    struct exec_session *out, struct gr_error *err)
{
	int r;
	*out = (struct exec_session){ .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .pty_fd = -1, .pid = 0 };
	gr_autoclose int reqfd = -1, in_r = -1, in_w = -1, out_r = -1, out_w = -1, err_r = -1, err_w = -1;
	gr_autoclose int lfd = -1, dirfd = -1;
	if ((r = memfd_with(request, &reqfd, err)) < 0)
		return r;
	int pp[2];
	char sockname[64] = "", console_arg[128] = "";
	if (!tty) {
		if (pipe2(pp, O_CLOEXEC) < 0)
			return gr_error_sys(err, errno, "pipe");
		in_r = supervised_fd_high(pp[0]);
		in_w = supervised_fd_high(pp[1]);
		if (pipe2(pp, O_CLOEXEC) < 0)
			return gr_error_sys(err, errno, "pipe");
		out_r = supervised_fd_high(pp[0]);
		out_w = supervised_fd_high(pp[1]);
	} else {
		/* The helper sends the pty master to a socket of ours, reached
		 * through /proc/OURPID/fd/DIRFD (no sun_path length limit). */
		dirfd = open(p->run, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			return gr_error_sys(err, errno, "cannot open %s", p->run);
		snprintf(sockname, sizeof(sockname), "exec-%d-%u.sock", (int)getpid(), atomic_fetch_add(&exec_counter, 1));
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/%s", dirfd, sockname);
		snprintf(console_arg, sizeof(console_arg), "/proc/%d/fd/%d/%s", (int)getpid(), dirfd, sockname);
		lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		(void)unlinkat(dirfd, sockname, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0)
			return gr_error_sys(err, errno, "cannot listen on %s/%s", p->run, sockname);
		fchmodat(dirfd, sockname, 0600, 0);
	}
	if (pipe2(pp, O_CLOEXEC) < 0) {
		r = gr_error_sys(err, errno, "pipe");
		goto out;
	}
	err_r = supervised_fd_high(pp[0]);
	err_w = supervised_fd_high(pp[1]);
	char fdarg[16];
	snprintf(fdarg, sizeof(fdarg), "%d", 3);
	char *argv[] = { (char *)sup, (char *)subcommand, (char *)"--run-dir", (char *)env->run_dir, (char *)"--name",
			 (char *)name, (char *)"--request-fd", fdarg, tty ? (char *)"--console-socket" : NULL,
			 console_arg, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (tty) {
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	} else {
		posix_spawn_file_actions_adddup2(&fa, in_r, 0);
		posix_spawn_file_actions_adddup2(&fa, out_w, 1);
	}
	posix_spawn_file_actions_adddup2(&fa, err_w, 2);
	posix_spawn_file_actions_adddup2(&fa, reqfd, 3);
	pid_t child;
	r = supervised_spawn(&child, (char *)sup, &fa, argv, false, err);
	posix_spawn_file_actions_destroy(&fa);
	if (r < 0)
		goto out;
	if (!tty) {
		out->stdin_fd = gr_steal_fd(in_w);
		out->stdout_fd = gr_steal_fd(out_r);
		out->stderr_fd = gr_steal_fd(err_r);
		out->pid = child;
		r = 0;
		goto out;
	}
	/* tty: wait for the pty, or for the helper's failure (its stderr). */
	close(err_w);
	err_w = -1;
	int64_t end = supervised_now_ms() + pty_timeout_ms;
	for (;;) {
		struct pollfd pf[2] = { { .fd = lfd, .events = POLLIN }, { .fd = err_r, .events = POLLIN } };
		int64_t left = end - supervised_now_ms();
		int k = left > 0 ? poll(pf, 2, (int)left) : 0;
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
			r = gr_error_set(err, ETIMEDOUT, "exec: the process's terminal did not arrive");
			break;
		}
		if (pf[0].revents & POLLIN) {
			gr_autoclose int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			int master = -1;
			if (conn < 0 || terminal_recv_fd(conn, &master, err) < 0) {
				if (conn < 0)
					gr_error_sys(err, errno, "exec: cannot accept the terminal");
				kill(child, SIGKILL);
				waitpid(child, NULL, 0);
				r = -err->code;
				break;
			}
			out->pty_fd = master;
			/* The helper's own errors after this point (a command
			 * that cannot be executed) are not on the terminal. */
			out->stderr_fd = gr_steal_fd(err_r);
			out->pid = child;
			r = 0;
			break;
		}
		if (pf[1].revents) {
			char msg[GR_ERROR_MSG_MAX];
			ssize_t n = gr_read_all(err_r, msg, sizeof(msg) - 1);
			msg[n > 0 ? n : 0] = '\0';
			msg[strcspn(msg, "\n")] = '\0';
			int st;
			waitpid(child, &st, 0);
			const char *m = strncmp(msg, "gureum-supervisor: ", 19) == 0 ? msg + 19 : msg;
			r = gr_error_set(err, WIFEXITED(st) && WEXITSTATUS(st) == 127 ? ENOENT : EIO, "%s",
					 m[0] ? m : "exec: the process could not be started");
			break;
		}
	}
out:
	if (dirfd >= 0 && sockname[0])
		(void)unlinkat(dirfd, sockname, 0);
	return r;
}

int supervised_console_op(const struct driver_env *env, const struct instance_spec *spec, int *fd,
			  struct gr_error *err)
{
	struct instance_paths p;
	int r = instance_paths_init(&p, env->state_dir, env->run_dir, spec->name, err);
	return r < 0 ? r : supervised_console(&p, spec->name, fd, err);
}

int supervised_log_path_op(const struct driver_env *env, const struct instance_spec *spec, char **path,
			   struct gr_error *err)
{
	struct instance_paths p;
	int r = instance_paths_init(&p, env->state_dir, env->run_dir, spec->name, err);
	return r < 0 ? r : supervised_log_path(&p, path, err);
}
