/* The supervisor's main loop: run the container, relay its output to the
 * log (and a console client), reap it, record the exit, restart it per
 * policy, stop it on SIGTERM. See supervisor.h and src/daemon/README.md. */
#include "daemon/supervisor/supervisor.h"
#include "daemon/supervisor/image.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "container/container.h"
#include "container/terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_DEFAULT_S 10   /* when stop.json is absent or unreadable */
#define DRAIN_MS 100                /* output still read after the init is gone */
#define PTY_WAIT_MS 5000            /* for the container's pty after create */

struct sup {
	const struct supervisor_opts *o;
	struct instance_paths p;
	int pid_fd, run_dirfd, sig_fd, console_lfd, client_fd, out_fd;
	bool terminal;
	pid_t init;
	struct rotlog log;
	bool log_ok;
	bool pending_cr;            /* log_crlf_filter's state (terminal output) */
	bool stop_requested;
	int64_t kill_deadline;      /* ms (monotonic) when the container gets SIGKILL; -1: none */
	bool exited;
	int wstatus;
	bool mounted;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A unix socket path for NAME in the run directory, through /proc/self/fd
 * so that a long --run-dir cannot overflow sun_path. */
static void run_sock_addr(const struct sup *s, const char *name, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/%s", s->run_dirfd, name);
}

static int listen_run_sock(struct sup *s, const char *name, int *out, struct gr_error *err)
{
	struct sockaddr_un a;
	run_sock_addr(s, name, &a);
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

/* Messages of the supervisor itself, in the instance's log. */
static void sup_note(struct sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sup_note(struct sup *s, const char *fmt, ...)
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
	(void)rotlog_write(&s->log, buf, (size_t)n, NULL);
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

static bool overlay_path_ok(const char *p)
{
	return !strpbrk(p, ",:\\\n");
}

/* The kernel's messages about a failed fsconfig (the fs context's log),
 * appended to err's message. */
static void fs_context_log(int fsfd, struct gr_error *err)
{
	char line[512];
	ssize_t n;
	size_t used = strlen(err->msg);
	while ((n = read(fsfd, line, sizeof(line) - 1)) > 0 && used + 4 < sizeof(err->msg)) {
		line[n] = '\0';
		line[strcspn(line, "\n")] = '\0';
		used += (size_t)snprintf(err->msg + used, sizeof(err->msg) - used, " (%s)", line);
	}
}

/* overlay through the new mount API: one fsconfig per lower layer
 * ("lowerdir+", Linux 6.8), so the number of layers is not limited by the
 * one page mount(2) takes for its options. -EINVAL from "lowerdir+" (an
 * older kernel) gives -ENOTSUP (err untouched): the caller falls back. */
static int mount_overlay_fsconfig(const struct image_layers *img, const char *upper, const char *work,
				  const char *target, struct gr_error *err)
{
	gr_autoclose int fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return errno == ENOSYS ? -ENOTSUP : gr_error_sys(err, errno, "fsopen(overlay)");
	char dir[sizeof(img->layers_dir) + 80];
	for (size_t i = img->n; i-- > 0;) {
		snprintf(dir, sizeof(dir), "%s/%s", img->layers_dir, img->hex[i]);
		if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", dir, 0) < 0) {
			if (errno == EINVAL && i == img->n - 1)
				return -ENOTSUP; /* no lowerdir+ here */
			int e = errno;
			gr_error_sys(err, e, "overlay: lower layer %s", dir);
			fs_context_log(fsfd, err);
			return -e;
		}
	}
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", work, 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		int e = errno;
		gr_error_sys(err, e, "cannot mount the overlay of %zu layers (upper %s)", img->n, upper);
		fs_context_log(fsfd, err);
		return -e;
	}
	gr_autoclose int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV);
	if (mfd < 0)
		return gr_error_sys(err, errno, "fsmount(overlay)");
	if (move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return gr_error_sys(err, errno, "cannot attach the overlay on %s", target);
	return 0;
}

/* overlay through mount(2), for kernels without "lowerdir+": the layers by
 * their names relative to the layers directory (the working directory
 * meanwhile), 65 bytes each, so about 60 layers fit in the page. */
static int mount_overlay_legacy(const struct image_layers *img, const char *upper, const char *work,
				const char *target, struct gr_error *err)
{
	size_t cap = 4096;
	gr_autofree char *data = malloc(cap);
	if (!data)
		return gr_error_set(err, ENOMEM, "out of memory");
	size_t o = (size_t)snprintf(data, cap, "lowerdir=");
	for (size_t i = img->n; i-- > 0 && o < cap;)
		o += (size_t)snprintf(data + o, cap - o, "%s%s", img->hex[i], i ? ":" : "");
	if (o < cap)
		o += (size_t)snprintf(data + o, cap - o, ",upperdir=%s,workdir=%s", upper, work);
	if (o >= cap - 1)
		return gr_error_set(err, E2BIG, "overlay: %zu layers do not fit in mount(2)'s options on this kernel "
				    "(Linux 6.8 or later takes any number): flatten the image", img->n);
	if (chdir(img->layers_dir) < 0)
		return gr_error_sys(err, errno, "cannot enter %s", img->layers_dir);
	int r = mount("overlay", target, "overlay", MS_NODEV, data);
	int e = errno;
	if (chdir("/") < 0 && r == 0)
		return gr_error_sys(err, errno, "chdir /");
	if (r < 0)
		return gr_error_sys(err, e, "cannot mount the overlay of %zu layers (upper %s) on %s", img->n, upper,
				    target);
	return 0;
}

/* The rootfs: an overlay of the image (its layers from image.json, or the
 * single --lower directory) and the instance's upper layer, mounted in a
 * mount namespace of the supervisor's own, so that it goes away with the
 * supervisor and its container (nothing to unmount on the host after a
 * crash) while the container (created from here) sees it. */
static int mount_rootfs(struct sup *s, struct gr_error *err)
{
	const char *lower = s->o->lower;
	if (!lower && !s->o->image)
		return 0;
	if ((lower && !overlay_path_ok(lower)) || !overlay_path_ok(s->p.upper) || !overlay_path_ok(s->p.work))
		return gr_error_set(err, EINVAL, "overlay: the paths %s, %s and %s must not contain ',', ':' or '\\'",
				    lower ? lower : "", s->p.upper, s->p.work);
	_cleanup_(image_layers_free) struct image_layers img = { 0 };
	int r;
	if (s->o->image && (r = image_layers_load(s->o->state_dir, s->o->image, &img, err)) < 0)
		return r;
	if (s->o->image && !overlay_path_ok(img.layers_dir))
		return gr_error_set(err, EINVAL, "overlay: the path %s must not contain ',', ':' or '\\'", img.layers_dir);
	if ((r = gr_mkdir_p(s->p.upper, 0755, err)) < 0 || (r = gr_mkdir_p(s->p.work, 0700, err)) < 0 ||
	    (r = gr_mkdir_p(s->p.rootfs, 0755, err)) < 0)
		return r;
	if (unshare(CLONE_NEWNS) < 0)
		return gr_error_sys(err, errno, "cannot create the supervisor's mount namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return gr_error_sys(err, errno, "cannot make the supervisor's mounts slaves of the host");
	if (s->o->image) {
		r = mount_overlay_fsconfig(&img, s->p.upper, s->p.work, s->p.rootfs, err);
		if (r == -ENOTSUP)
			r = mount_overlay_legacy(&img, s->p.upper, s->p.work, s->p.rootfs, err);
		if (r < 0)
			return r;
		s->mounted = true;
		return 0;
	}
	char data[3 * PATH_MAX + 64];
	if (snprintf(data, sizeof(data), "lowerdir=%s,upperdir=%s,workdir=%s", lower, s->p.upper, s->p.work) >=
	    (int)sizeof(data))
		return gr_error_set(err, ENAMETOOLONG, "overlay: paths too long");
	if (mount("overlay", s->p.rootfs, "overlay", MS_NODEV, data) < 0)
		return gr_error_sys(err, errno, "cannot mount the overlay (lower %s, upper %s) on %s", lower,
				    s->p.upper, s->p.rootfs);
	s->mounted = true;
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

/* ---- one run of the container ---- */

static int receive_pty(struct sup *s, int lfd, struct gr_error *err)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	int n;
	do
		n = poll(&pfd, 1, PTY_WAIT_MS);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return gr_error_set(err, ETIMEDOUT, "the container did not send its pty");
	gr_autoclose int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return gr_error_sys(err, errno, "cannot accept the container's pty");
	return terminal_recv_fd(conn, &s->out_fd, err);
}

/* Creates the container with stdout and stderr on one pipe (stdin
 * /dev/null), the supervisor's own stdio put back afterwards. */
static int create_with_pipe(struct sup *s, const struct container_opts *co, struct gr_error *err)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "pipe");
	gr_autoclose int rd = pfd[0], wr = pfd[1];
	gr_autoclose int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int saved[3];
	for (int i = 0; i < 3; i++)
		saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 3);
	if (null < 0 || saved[0] < 0 || saved[1] < 0 || saved[2] < 0) {
		int e = errno;
		for (int i = 0; i < 3; i++)
			if (saved[i] >= 0)
				close(saved[i]);
		return gr_error_sys(err, e, "cannot set up the container's stdio");
	}
	int r = 0;
	if (dup2(null, 0) < 0 || dup2(wr, 1) < 0 || dup2(wr, 2) < 0)
		r = gr_error_sys(err, errno, "cannot set up the container's stdio");
	else
		r = container_create(co, err);
	for (int i = 0; i < 3; i++) {
		dup2(saved[i], i);
		close(saved[i]);
	}
	if (r < 0)
		return r;
	s->out_fd = gr_steal_fd(rd);
	return 0;
}

static int start_container(struct sup *s, struct gr_error *err)
{
	struct container_opts co = {
		.root = s->p.containers, .id = s->o->name, .bundle = s->p.bundle,
		.cgroup_manager = s->o->no_cgroups ? CGROUP_MANAGER_DISABLED : CGROUP_MANAGER_CGROUPFS,
	};
	int r;
	s->exited = false;
	s->init = 0;
	/* A container left by a supervisor that died goes first. */
	struct gr_error derr = { 0 };
	(void)container_delete(s->p.containers, s->o->name, true, &derr);
	if (s->terminal) {
		struct sockaddr_un a;
		run_sock_addr(s, "pty.sock", &a);
		gr_autoclose int lfd = -1;
		if ((r = listen_run_sock(s, "pty.sock", &lfd, err)) < 0)
			return r;
		co.console_socket = a.sun_path;
		r = container_create(&co, err);
		if (r == 0 && (r = receive_pty(s, lfd, err)) < 0)
			(void)container_delete(s->p.containers, s->o->name, true, &derr);
		unlinkat(s->run_dirfd, "pty.sock", 0);
		if (r < 0)
			return r;
	} else if ((r = create_with_pipe(s, &co, err)) < 0) {
		return r;
	}
	fcntl(s->out_fd, F_SETFL, fcntl(s->out_fd, F_GETFL) | O_NONBLOCK);
	_cleanup_(state_free) struct container_state st = { 0 };
	if ((r = state_load(s->p.containers, s->o->name, &st, err)) == 0) {
		s->init = st.pid;
		r = container_start(&co, err);
	}
	if (r < 0) {
		(void)container_delete(s->p.containers, s->o->name, true, &derr);
		if (s->init > 0)
			waitpid(s->init, NULL, WNOHANG);
		close(s->out_fd);
		s->out_fd = -1;
		s->init = 0;
		return r;
	}
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
		if (s->log_ok && rotlog_write(&s->log, s->terminal ? text : buf, tn, &err) < 0)
			s->log_ok = false; /* disk full: keep relaying, stop logging */
		if (s->client_fd >= 0 && send(s->client_fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    errno != EAGAIN)
			close_client(s); /* a slow client loses output rather than stall the container */
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
	struct gr_error err = { 0 };
	if (container_kill(s->p.containers, s->o->name, SIGKILL, !s->o->no_cgroups, &err) < 0 && s->init > 0)
		kill(s->init, SIGKILL);
	s->kill_deadline = -1;
}

static void handle_stop(struct sup *s)
{
	int timeout = read_stop_timeout(s);
	bool first = !s->stop_requested;
	s->stop_requested = true;
	if (s->init <= 0 || s->exited)
		return;
	struct gr_error err = { 0 };
	/* A frozen container would not see its SIGTERM. */
	(void)container_pause(s->p.containers, s->o->name, false, &err);
	if (timeout == 0) {
		sup_note(s, "stopping: killing the container");
		kill_all(s);
		return;
	}
	if (first) {
		sup_note(s, "stopping: SIGTERM, SIGKILL after %d s", timeout);
		kill(s->init, SIGTERM);
	}
	int64_t deadline = now_ms() + (int64_t)timeout * 1000;
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
		if (s->init <= 0 && (s->stop_requested || now_ms() >= until_ms))
			return;
		int64_t now = now_ms();
		if (s->kill_deadline >= 0 && now >= s->kill_deadline) {
			sup_note(s, "stop timeout: killing the container");
			kill_all(s);
		}
		int64_t wake = -1;
		if (s->kill_deadline >= 0)
			wake = s->kill_deadline;
		if (s->init <= 0 && (wake < 0 || until_ms < wake))
			wake = until_ms;
		int timeout = wake < 0 ? -1 : (int)(wake > now ? wake - now : 0);
		struct pollfd pfd[4];
		int n = 0;
		pfd[n++] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
		int out_i = -1, l_i = -1, c_i = -1;
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
	}
}

/* What the container wrote before it died is still read, briefly. */
static void drain_output(struct sup *s)
{
	int64_t end = now_ms() + DRAIN_MS;
	while (s->out_fd >= 0) {
		int64_t left = end - now_ms();
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
	if (s->mounted)
		(void)umount2(s->p.rootfs, MNT_DETACH);
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

static int load_terminal(struct sup *s, struct gr_error *err)
{
	struct oci_config *c = NULL;
	int r = oci_config_load(s->p.config, &c, err);
	if (r < 0)
		return r;
	s->terminal = c->has_process && c->process.terminal;
	bool nnp = c->has_process && c->process.no_new_privileges;
	oci_config_free(c);
	/* The container's process gets no_new_privs anyway: the supervisor
	 * (and the init it forks) may as well have it from the start. */
	if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return gr_error_sys(err, errno, "cannot set no_new_privs");
	return 0;
}

int supervisor_run(const struct supervisor_opts *o, struct gr_error *err)
{
	struct sup s = { .o = o, .pid_fd = -1, .run_dirfd = -1, .sig_fd = -1, .console_lfd = -1, .client_fd = -1,
			 .out_fd = -1, .kill_deadline = -1 };
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
	if ((r = load_terminal(&s, err)) < 0 || (r = mount_rootfs(&s, err)) < 0)
		goto fail;
	if (s.terminal && (r = listen_run_sock(&s, "console.sock", &s.console_lfd, err)) < 0)
		goto fail;

	struct exit_info ex = { 0 };
	unsigned restarts = 0, failures = 0;
	bool first = true;
	for (;;) {
		int64_t t0 = now_ms();
		struct gr_error serr = { 0 };
		if (start_container(&s, &serr) < 0) {
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
			struct gr_error derr = { 0 };
			if (container_delete(s.p.containers, o->name, true, &derr) < 0)
				sup_note(&s, "cannot remove the container's state: %s", derr.msg);
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
		unsigned delay = restart_backoff_next(&failures, (uint64_t)(now_ms() - t0));
		ex.restarting = true;
		ex.restarts = restarts + 1;
		struct gr_error werr = { 0 };
		if (exit_info_write(s.p.exit_file, &ex, &werr) < 0)
			sup_note(&s, "%s", werr.msg);
		sup_note(&s, "%s; restart %u in %u ms", ex.reason, restarts + 1, delay);
		serve(&s, now_ms() + delay);
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
