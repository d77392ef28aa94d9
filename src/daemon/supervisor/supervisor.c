/* The supervisor's main loop: run the workload (workload.h: a container or
 * a VM engine), relay its output to the log (and a console client), reap it,
 * record the exit, restart it per policy, stop it on SIGTERM. See
 * supervisor.h and src/daemon/README.md. */
#include "daemon/supervisor/workload.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_DEFAULT_S 10   /* when stop.json is absent or unreadable */
#define DRAIN_MS 100                /* output still read after the init is gone */

int64_t sup_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sup_run_sock_addr(const struct sup *s, const char *name, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/%s", s->run_dirfd, name);
}

int sup_listen_run_sock(struct sup *s, const char *name, int *out, struct gr_error *err)
{
	struct sockaddr_un a;
	sup_run_sock_addr(s, name, &a);
	(void)unlinkat(s->run_dirfd, name, 0); /* ours: we hold the instance's lock */
	gr_autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return gr_error_sys(err, errno, "socket");
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (r < 0 || listen(fd, 4) < 0)
		return gr_error_sys(err, errno, "cannot listen on %s/%s", s->p.run, name);
	*out = gr_steal_fd(fd);
	return 0;
}

void sup_note(struct sup *s, const char *fmt, ...)
{
	if (!s->log_ok)
		return;
	char buf[GR_ERROR_MSG_MAX + 64];
	int n = snprintf(buf, sizeof(buf), "[gureum-supervisor] ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	/* Never in the middle of the workload's line: held until it ends. */
	if (s->log_midline && s->held_len + (size_t)n <= sizeof(s->held)) {
		memcpy(s->held + s->held_len, buf, (size_t)n);
		s->held_len += (size_t)n;
		return;
	}
	if (s->log_midline)
		sup_log_end_line(s);
	(void)rotlog_write(&s->log, buf, (size_t)n, NULL);
}

void sup_log_end_line(struct sup *s)
{
	if (s->log_ok && s->log_midline)
		(void)rotlog_write(&s->log, "\n", 1, NULL);
	s->log_midline = false;
	if (s->log_ok && s->held_len)
		(void)rotlog_write(&s->log, s->held, s->held_len, NULL);
	s->held_len = 0;
}

static void report_ready(struct sup *s, const struct gr_error *err)
{
	int fd = s->o->ready_fd;
	if (fd < 0)
		return;
	char buf[GR_ERROR_MSG_MAX + 16];
	int n = err ? snprintf(buf, sizeof(buf), "error: %s\n", err->msg) : snprintf(buf, sizeof(buf), "ok\n");
	(void)gr_write_all(fd, buf, (size_t)(n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1));
	close(fd);
	((struct supervisor_opts *)s->o)->ready_fd = -1;
}

/* ---- set-up ---- */

static int lock_pid_file(struct sup *s, struct gr_error *err)
{
	s->pid_fd = open(s->p.pid_file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->pid_fd < 0)
		return gr_error_sys(err, errno, "cannot open %s", s->p.pid_file);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(s->pid_fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;
		close(s->pid_fd);
		s->pid_fd = -1; /* not ours: never removed by our clean-up */
		errno = e;
		if (errno == EAGAIN || errno == EACCES)
			return gr_error_set(err, EBUSY, "instance %s already has a running supervisor", s->o->name);
		return gr_error_sys(err, errno, "cannot lock %s", s->p.pid_file);
	}
	uint64_t start = 0;
	int r = gr_proc_start_time(getpid(), &start, err);
	if (r < 0)
		return r;
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%d %llu\n", (int)getpid(), (unsigned long long)start);
	if (ftruncate(s->pid_fd, 0) < 0 || pwrite(s->pid_fd, buf, (size_t)n, 0) != n)
		return gr_error_sys(err, errno, "cannot write %s", s->p.pid_file);
	return 0;
}

static int setup_signals(struct sup *s, struct gr_error *err)
{
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return gr_error_sys(err, errno, "sigprocmask");
	s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sig_fd < 0)
		return gr_error_sys(err, errno, "signalfd");
	return 0;
}

/* ---- the event loop ---- */

static void close_client(struct sup *s)
{
	if (s->client_fd >= 0)
		close(s->client_fd);
	s->client_fd = -1;
}

static void handle_output(struct sup *s, bool *eof)
{
	char buf[16384];
	for (int i = 0; i < 16; i++) {
		ssize_t n = read(s->out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) { /* EOF, or EIO once no process holds the pty */
			*eof = true;
			return;
		}
		struct gr_error err = { 0 };
		char text[sizeof(buf) + 1];
		size_t tn = s->terminal ? log_crlf_filter(buf, (size_t)n, text, &s->pending_cr) : (size_t)n;
		const char *logged = s->terminal ? text : buf;
		if (s->log_ok && rotlog_write(&s->log, logged, tn, &err) < 0)
			s->log_ok = false; /* disk full: keep relaying, stop logging */
		if (tn > 0) {
			s->log_midline = logged[tn - 1] != '\n';
			if (!s->log_midline && s->held_len)
				sup_log_end_line(s);
		}
		if (s->client_fd >= 0 && send(s->client_fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    errno != EAGAIN)
			close_client(s); /* a slow client loses output rather than stall the workload */
	}
}

static void handle_client_input(struct sup *s)
{
	char buf[4096];
	ssize_t n = recv(s->client_fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_client(s);
		return;
	}
	if (s->terminal && s->out_fd >= 0)
		(void)gr_write_all(s->out_fd, buf, (size_t)n);
}

static void accept_client(struct sup *s)
{
	int fd = accept4(s->console_lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	close_client(s); /* the newest console client wins */
	s->client_fd = fd;
}

static int read_stop_timeout(struct sup *s)
{
	gr_autojson json_t *j = NULL;
	int64_t t = STOP_TIMEOUT_DEFAULT_S;
	if (gr_json_load_file(s->p.stop_file, &j, NULL) == 0 && gr_json_get_int64(j, NULL, "timeout", &t, NULL) == 1 &&
	    t >= 0)
		return t > 86400 ? 86400 : (int)t;
	return STOP_TIMEOUT_DEFAULT_S;
}

static void kill_all(struct sup *s)
{
	s->ops->kill(s);
	s->kill_deadline = -1;
}

static void handle_stop(struct sup *s)
{
	int timeout = read_stop_timeout(s);
	bool first = !s->stop_requested;
	s->stop_requested = true;
	if (s->init <= 0 || s->exited)
		return;
	s->ops->request_stop(s, timeout, first);
	if (timeout == 0) {
		sup_note(s, "stopping: killing the %s", s->ops->what);
		kill_all(s);
		return;
	}
	int64_t deadline = sup_now_ms() + (int64_t)timeout * 1000;
	if (s->kill_deadline < 0 || deadline < s->kill_deadline)
		s->kill_deadline = deadline;
}

static void handle_signals(struct sup *s)
{
	struct signalfd_siginfo si;
	while (read(s->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			handle_stop(s);
	}
	if (s->ops->exited && s->init > 0 && !s->exited) {
		siginfo_t info = { 0 };
		if (waitid(P_PID, (id_t)s->init, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == s->init)
			s->ops->exited(s);
	}
	int st;
	pid_t w;
	while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
		if (w == s->init && !s->exited) {
			s->exited = true;
			s->wstatus = st;
		}
	}
}

/* Serves signals and the console until the init exits (running) or until
 * until_ms passes (back-off; returns early on a stop request). */
static void serve(struct sup *s, int64_t until_ms)
{
	for (;;) {
		if (s->init > 0 && s->exited)
			return;
		if (s->init <= 0 && (s->stop_requested || sup_now_ms() >= until_ms))
			return;
		int64_t now = sup_now_ms();
		if (s->kill_deadline >= 0 && now >= s->kill_deadline) {
			sup_note(s, "stop timeout: killing the %s", s->ops->what);
			kill_all(s);
		}
		int64_t wake = -1;
		if (s->kill_deadline >= 0)
			wake = s->kill_deadline;
		if (s->init <= 0 && (wake < 0 || until_ms < wake))
			wake = until_ms;
		int timeout = wake < 0 ? -1 : (int)(wake > now ? wake - now : 0);
		struct pollfd pfd[5];
		int n = 0;
		pfd[n++] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
		int out_i = -1, l_i = -1, c_i = -1, w_i = -1;
		if (s->out_fd >= 0) {
			out_i = n;
			pfd[n++] = (struct pollfd){ .fd = s->out_fd, .events = POLLIN };
		}
		if (s->console_lfd >= 0) {
			l_i = n;
			pfd[n++] = (struct pollfd){ .fd = s->console_lfd, .events = POLLIN };
		}
		if (s->client_fd >= 0) {
			c_i = n;
			pfd[n++] = (struct pollfd){ .fd = s->client_fd, .events = POLLIN };
		}
		short wev = 0;
		int wfd = s->ops->poll_fd ? s->ops->poll_fd(s, &wev) : -1;
		if (wfd >= 0) {
			w_i = n;
			pfd[n++] = (struct pollfd){ .fd = wfd, .events = wev };
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pfd[0].revents)
			handle_signals(s);
		if (out_i >= 0 && pfd[out_i].revents) {
			bool eof = false;
			handle_output(s, &eof);
			if (eof) {
				close(s->out_fd);
				s->out_fd = -1;
			}
		}
		if (l_i >= 0 && pfd[l_i].revents)
			accept_client(s);
		if (c_i >= 0 && s->client_fd >= 0 && pfd[c_i].revents)
			handle_client_input(s);
		if (w_i >= 0 && pfd[w_i].revents)
			s->ops->poll_event(s, pfd[w_i].revents);
	}
}

/* What the workload wrote before it died is still read, briefly. */
static void drain_output(struct sup *s)
{
	int64_t end = sup_now_ms() + DRAIN_MS;
	while (s->out_fd >= 0) {
		int64_t left = end - sup_now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = { .fd = s->out_fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) <= 0)
			break;
		bool eof = false;
		handle_output(s, &eof);
		if (eof)
			break;
	}
	if (s->out_fd >= 0)
		close(s->out_fd);
	s->out_fd = -1;
}

/* ---- the whole life ---- */

static void sup_cleanup(struct sup *s)
{
	close_client(s);
	if (s->console_lfd >= 0) {
		close(s->console_lfd);
		unlinkat(s->run_dirfd, "console.sock", 0);
	}
	if (s->out_fd >= 0)
		close(s->out_fd);
	if (s->ops->cleanup)
		s->ops->cleanup(s);
	rotlog_close(&s->log);
	if (s->pid_fd >= 0) {
		/* Removed while still locked, so a reader never sees a dead file locked. */
		unlink(s->p.pid_file);
		(void)unlink(s->p.stop_file);
		close(s->pid_fd);
	}
	if (s->run_dirfd >= 0)
		close(s->run_dirfd);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
}

int supervisor_run(const struct supervisor_opts *o, struct gr_error *err)
{
	struct sup s = { .o = o, .pid_fd = -1, .run_dirfd = -1, .sig_fd = -1, .console_lfd = -1, .client_fd = -1,
			 .out_fd = -1, .kill_deadline = -1 };
	s.ops = o->engine_argv ? &engine_workload : &container_workload;
	s.log.fd = -1;
	int r = instance_paths_init(&s.p, o->state_dir, o->run_dir, o->name, err);
	if (r < 0)
		goto fail_early;
	if ((r = gr_mkdir_p(s.p.run, 0700, err)) < 0 || (r = lock_pid_file(&s, err)) < 0)
		goto fail;
	s.run_dirfd = open(s.p.run, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s.run_dirfd < 0) {
		r = gr_error_sys(err, errno, "cannot open %s", s.p.run);
		goto fail;
	}
	(void)unlink(s.p.exit_file);
	(void)unlink(s.p.stop_file);
	if ((r = setup_signals(&s, err)) < 0 || (r = gr_mkdir_p(s.p.log_dir, 0700, err)) < 0 ||
	    (r = rotlog_open(&s.log, s.p.log, o->log_max, o->log_files, err)) < 0)
		goto fail;
	s.log_ok = true;
	if (s.ops->prepare && (r = s.ops->prepare(&s, err)) < 0)
		goto fail;
	if (s.terminal && (r = sup_listen_run_sock(&s, "console.sock", &s.console_lfd, err)) < 0)
		goto fail;

	struct exit_info ex = { 0 };
	unsigned restarts = 0, failures = 0;
	bool first = true;
	for (;;) {
		int64_t t0 = sup_now_ms();
		struct gr_error serr = { 0 };
		if (s.ops->start(&s, &serr) < 0) {
			if (first) {
				*err = serr;
				r = -serr.code;
				sup_note(&s, "failed to start: %s", serr.msg);
				exit_info_failed_start(&ex, serr.msg);
				goto fail_start;
			}
			exit_info_failed_start(&ex, serr.msg);
			sup_note(&s, "failed to restart: %s", serr.msg);
		} else {
			if (first)
				report_ready(&s, NULL);
			serve(&s, -1);
			drain_output(&s);
			sup_log_end_line(&s); /* its last line, unfinished, ends here */
			if (s.ops->finish)
				s.ops->finish(&s);
			exit_info_from_status(&ex, s.wstatus, s.stop_requested);
			s.init = 0;
		}
		first = false;
		ex.restarts = restarts;
		ex.stopped = s.stop_requested;
		if (s.stop_requested || !restart_wanted(&o->restart, ex.exit_code, restarts)) {
			ex.restarting = false;
			struct gr_error werr = { 0 };
			if (exit_info_write(s.p.exit_file, &ex, &werr) < 0)
				sup_note(&s, "%s", werr.msg);
			sup_note(&s, "%s", ex.reason);
			break;
		}
		unsigned delay = restart_backoff_next(&failures, (uint64_t)(sup_now_ms() - t0));
		ex.restarting = true;
		ex.restarts = restarts + 1;
		struct gr_error werr = { 0 };
		if (exit_info_write(s.p.exit_file, &ex, &werr) < 0)
			sup_note(&s, "%s", werr.msg);
		sup_note(&s, "%s; restart %u in %u ms", ex.reason, restarts + 1, delay);
		serve(&s, sup_now_ms() + delay);
		if (s.stop_requested) {
			ex.restarting = false;
			ex.restarts = restarts;
			ex.stopped = true;
			(void)exit_info_write(s.p.exit_file, &ex, NULL);
			break;
		}
		restarts++;
	}
	sup_cleanup(&s);
	return 0;

fail_start: {
	struct gr_error werr = { 0 };
	(void)exit_info_write(s.p.exit_file, &ex, &werr);
}
fail:
	report_ready(&s, err);
	sup_cleanup(&s);
	return r;
fail_early:
	report_ready(&s, err);
	return r;
}
