/* The container workload of gureum-supervisor (workload.h): an OCI container
 * run with the container library from the bundle STATE/instances/NAME, its
 * rootfs an overlay (the image's layers, or --lower, under the instance's
 * upper layer) mounted in a mount namespace of the supervisor's own. */
#include "daemon/supervisor/workload.h"
#include "daemon/supervisor/image.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "container/container.h"
#include "container/terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PTY_WAIT_MS 5000            /* for the container's pty after create */

/* ---- the rootfs ---- */

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

static int container_prepare(struct sup *s, struct gr_error *err)
{
	int r = load_terminal(s, err);
	if (r < 0)
		return r;
	return mount_rootfs(s, err);
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

static int container_start_run(struct sup *s, struct gr_error *err)
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
		sup_run_sock_addr(s, "pty.sock", &a);
		gr_autoclose int lfd = -1;
		if ((r = sup_listen_run_sock(s, "pty.sock", &lfd, err)) < 0)
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

/* ---- stopping ---- */

static void container_request_stop(struct sup *s, int timeout_s, bool first)
{
	struct gr_error err = { 0 };
	/* A frozen container would not see its SIGTERM. */
	(void)container_pause(s->p.containers, s->o->name, false, &err);
	if (timeout_s > 0 && first) {
		sup_note(s, "stopping: SIGTERM, SIGKILL after %d s", timeout_s);
		kill(s->init, SIGTERM);
	}
}

static void container_kill_all(struct sup *s)
{
	struct gr_error err = { 0 };
	if (container_kill(s->p.containers, s->o->name, SIGKILL, !s->o->no_cgroups, &err) < 0 && s->init > 0)
		kill(s->init, SIGKILL);
}

static void container_finish(struct sup *s)
{
	struct gr_error derr = { 0 };
	if (container_delete(s->p.containers, s->o->name, true, &derr) < 0)
		sup_note(s, "cannot remove the container's state: %s", derr.msg);
}

static void container_cleanup(struct sup *s)
{
	if (s->mounted)
		(void)umount2(s->p.rootfs, MNT_DETACH);
	s->mounted = false;
}

const struct workload_ops container_workload = {
	.what = "container",
	.prepare = container_prepare,
	.start = container_start_run,
	.request_stop = container_request_stop,
	.kill = container_kill_all,
	.finish = container_finish,
	.cleanup = container_cleanup,
};
