/* The VMM's end of the control API: see api_control.h and api_proto.h. */
#include "vmm/api_control.h"
#include "vmm/devices/ged.h"
#include "vmm/devices/chardev.h"
#include "vmm/devices/virtio_blk.h"
#include "vmm/devices/virtio_console.h"
#include "vmm/devices/virtio_net.h"
#include "vmm/devices/virtio_rng.h"
#include "vmm/devices/virtio_vsock.h"
#include "common/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define API_PROGRAM "gureum-vmm-api"
#define API_FD 3   /* where the API process finds its end of the socketpair */

int vmm_control_find_program(char *out, size_t size, struct gr_error *err)
{
	const char *env = getenv("GUREUM_VMM_API");
	if (env && *env) {
		if ((size_t)snprintf(out, size, "%s", env) >= size)
			return gr_error_set(err, ENAMETOOLONG, "GUREUM_VMM_API: the path is too long");
	} else {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return gr_error_sys(err, errno, "--api-socket: cannot find the API program: readlink /proc/self/exe");
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (!slash)
			return gr_error_set(err, ENOENT, "--api-socket: cannot find the API program: /proc/self/exe is \"%s\"",
					    self);
		*slash = '\0';
		if ((size_t)snprintf(out, size, "%s/%s", self, API_PROGRAM) >= size)
			return gr_error_set(err, ENAMETOOLONG, "--api-socket: the API program's path is too long");
	}
	if (access(out, X_OK) < 0)
		return gr_error_sys(err, errno,
				    "--api-socket: the API program %s is not there or not executable (install %s next to "
				    "gureum-vmm, or set GUREUM_VMM_API)",
				    out, API_PROGRAM);
	return 0;
}

/* Waits until pid has ended (with SIGCHLD ignored, waitpid returns ECHILD then). */
static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* The API process's hello: 0, or its error with its message. */
static int wait_hello(struct vmm_control *c, const char *program, int timeout_ms, struct gr_error *err)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	int r;
	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return gr_error_sys(err, errno, "--api-socket: poll on the API process's channel");
	if (r == 0)
		return gr_error_set(err, ETIMEDOUT, "--api-socket: the API process (%s) was not ready within %d ms",
				    program, timeout_ms);
	ssize_t n;
	while ((n = recv(c->fd, c->buf, sizeof(c->buf), MSG_TRUNC | MSG_DONTWAIT)) < 0 && errno == EINTR)
		;
	if (n < 0 && errno != ECONNRESET)
		return gr_error_sys(err, errno, "--api-socket: reading the API process's hello");
	if (n <= 0) {
		reap(c->pid);
		c->pid = -1;
		return gr_error_set(err, ECHILD, "--api-socket: the API process (%s) ended before it was ready", program);
	}
	struct vmm_ctl_header h;
	if ((size_t)n > VMM_CTL_MAX_MESSAGE || vmm_ctl_header_decode(c->buf, (size_t)n, VMM_CTL_MAGIC_HELLO, &h) < 0)
		return gr_error_set(err, EBADMSG, "--api-socket: the API process sent a malformed hello (%zd bytes)", n);
	if (h.result == 0)
		return h.len == 0 ? 0 : gr_error_set(err, EBADMSG, "--api-socket: the API process's hello has a body");
	char text[VMM_CTL_MAX_TEXT + 1];
	if (vmm_ctl_text_decode(c->buf + VMM_CTL_HEADER_LEN, h.len, text, sizeof(text)) < 0)
		return gr_error_set(err, EBADMSG, "--api-socket: the API process failed with an unreadable message");
	return gr_error_set(err, -h.result, "%s", text);
}

int vmm_control_spawn(struct vmm_control *c, const char *program, const char *socket_path, int timeout_ms,
		      struct gr_error *err)
{
	c->fd = -1;
	c->pid = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->closed_cond, &ca);
	pthread_condattr_destroy(&ca);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return gr_error_sys(err, errno, "--api-socket: socketpair");
	/* Everything the child needs is prepared before fork: after it, only
	 * async-signal-safe calls. */
	char parent[24];
	snprintf(parent, sizeof(parent), "%d", (int)getpid());
	char fdarg[8];
	snprintf(fdarg, sizeof(fdarg), "%d", API_FD);
	char *const argv[] = { (char *)program, "--socket", (char *)socket_path, "--fd", fdarg, "--parent", parent, NULL };
	/* SIGCHLD ignored: the kernel reaps the API process when it ends, so it
	 * never lingers as a zombie although the sandboxed VMM may not wait. */
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigemptyset(&ign.sa_mask);
	sigaction(SIGCHLD, &ign, NULL);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		/* Dies with the VMM, whatever kills it (checked after: the VMM may be gone already). */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != (pid_t)atoi(parent))
			_exit(127);
		int fd = sv[1];
		if (fd == API_FD) {
			if (fcntl(fd, F_SETFD, 0) < 0)
				_exit(127);
		} else if (dup2(fd, API_FD) < 0) {  /* dup2 clears close-on-exec */
			_exit(127);
		}
		close_range(API_FD + 1, ~0U, 0);   /* disks, /dev/kvm, guest memory fds: not the API's business */
		struct sigaction dfl = { .sa_handler = SIG_DFL };   /* an ignored disposition survives exec */
		sigaction(SIGCHLD, &dfl, NULL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(program, argv, environ);
		_exit(127);
	}
	int fork_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return gr_error_sys(err, fork_errno, "--api-socket: fork of the API process");
	}
	c->fd = sv[0];
	c->pid = pid;
	int r = wait_hello(c, program, timeout_ms, err);
	if (r < 0) {
		gr_error_prefix(err, "--api-socket %s", socket_path);
		close(c->fd);   /* it exits on EOF (or was never ready: kill it) */
		c->fd = -1;
		if (c->pid > 0) {
			kill(c->pid, SIGKILL);
			reap(c->pid);
			c->pid = -1;
		}
		return r;
	}
	return 0;
}

int vmm_control_add_device(struct vmm_control *c, const char *name, pthread_mutex_t *lock,
			   vmm_control_collect_fn collect, const void *dev, struct gr_error *err)
{
	if (c->n_devices == VMM_CTL_MAX_DEVICES)
		return gr_error_set(err, ENOSPC, "metrics: more than %u devices", VMM_CTL_MAX_DEVICES);
	if (strlen(name) >= VMM_CTL_NAME_LEN || !vmm_ctl_name_valid(name, VMM_CTL_NAME_LEN) || !collect)
		return gr_error_set(err, EINVAL, "metrics: bad device name \"%s\"", name);
	struct vmm_control_device *d = &c->devices[c->n_devices++];
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->lock = lock;
	d->collect = collect;
	d->dev = dev;
	return 0;
}

static void counter(struct vmm_ctl_device *out, const char *key, uint64_t v)
{
	if (out->n_counters == VMM_CTL_MAX_COUNTERS)
		return;
	struct vmm_ctl_counter *c = &out->counters[out->n_counters++];
	snprintf(c->key, sizeof(c->key), "%s", key);
	c->value = v;
}

void vmm_control_collect_blk(const void *dev, struct vmm_ctl_device *out)
{
	const struct virtio_blk *b = dev;   /* under its window lock: the vCPUs update these under it */
	counter(out, "reads", b->reads);
	counter(out, "writes", b->writes);
	counter(out, "flushes", b->flushes);
	counter(out, "errors", b->errors);
	counter(out, "bytes_read", b->bytes_read);
	counter(out, "bytes_written", b->bytes_written);
}

void vmm_control_collect_rng(const void *dev, struct vmm_ctl_device *out)
{
	const struct virtio_rng *r = dev;
	counter(out, "requests", r->requests);
	counter(out, "bytes", r->bytes);
}

void vmm_control_collect_net(const void *dev, struct vmm_ctl_device *out)
{
	const struct virtio_net *n = dev;   /* under its window lock: the vCPUs and the I/O thread update these under it */
	counter(out, "rx_packets", n->rx_packets);
	counter(out, "rx_bytes", n->rx_bytes);
	counter(out, "rx_dropped", n->rx_dropped);
	counter(out, "rx_errors", n->rx_errors);
	counter(out, "tx_packets", n->tx_packets);
	counter(out, "tx_bytes", n->tx_bytes);
	counter(out, "tx_dropped", n->tx_dropped);
	counter(out, "tx_errors", n->tx_errors);
}

void vmm_control_collect_vsock(const void *dev, struct vmm_ctl_device *out)
{
	const struct virtio_vsock *v = dev; /* under its window lock, as for net */
	counter(out, "connections", v->n_conns);
	counter(out, "conns_opened", v->conns_opened);
	counter(out, "conns_refused", v->conns_refused);
	counter(out, "pkts_from_guest", v->pkts_from_guest);
	counter(out, "pkts_to_guest", v->pkts_to_guest);
	counter(out, "bytes_from_guest", v->bytes_from_guest);
	counter(out, "bytes_to_guest", v->bytes_to_guest);
	counter(out, "bad_packets", v->bad_packets);
	counter(out, "rsts_sent", v->rsts_sent);
	counter(out, "rsts_dropped", v->rsts_dropped);
}

void vmm_control_collect_chardev(const void *dev, struct vmm_ctl_device *out)
{
	struct chardev *cd = (struct chardev *)dev;
	/* bytes_in is the I/O thread's own (this runs there); the rest is under cd->lock. */
	pthread_mutex_lock(&cd->lock);
	counter(out, "bytes_in", cd->bytes_in);
	counter(out, "bytes_out", cd->bytes_out);
	counter(out, "bytes_dropped", cd->bytes_dropped);
	counter(out, "clients", cd->clients);
	pthread_mutex_unlock(&cd->lock);
}

void vmm_control_collect_console(const void *dev, struct vmm_ctl_device *out)
{
	const struct virtio_console *con = dev;  /* under its window lock, which comes before cd->lock */
	vmm_control_collect_chardev(con->cd, out);
	counter(out, "input_dropped", con->dropped_rx);
}

void vmm_control_collect_ged(const void *dev, struct vmm_ctl_device *out)
{
	const struct ged *g = dev;
	counter(out, "events", __atomic_load_n(&g->events, __ATOMIC_RELAXED));
	counter(out, "reads", __atomic_load_n(&g->reads, __ATOMIC_RELAXED));
}

/* ---- serving requests ---- */

static size_t respond(uint8_t *out, uint32_t seq, int result, const void *body, size_t len)
{
	struct vmm_ctl_header h = { .magic = VMM_CTL_MAGIC_RESPONSE, .seq = seq, .result = result, .len = (uint32_t)len };
	vmm_ctl_header_encode(&h, out);
	if (len && body != out + VMM_CTL_HEADER_LEN)
		memmove(out + VMM_CTL_HEADER_LEN, body, len);
	return VMM_CTL_HEADER_LEN + len;
}

static size_t respond_error(uint8_t *out, uint32_t seq, int result, const char *msg)
{
	size_t n = vmm_ctl_text_encode(msg, out + VMM_CTL_HEADER_LEN);
	return respond(out, seq, result, out + VMM_CTL_HEADER_LEN, n);
}

static size_t handle_metrics(struct vmm_control *c, uint32_t seq, uint8_t *out)
{
	struct vmm_ctl_metrics *m = &c->metrics;
	memset(m, 0, sizeof(*m));
	_Static_assert(sizeof(c->vm->exit_counts) / sizeof(c->vm->exit_counts[0]) <= VMM_CTL_MAX_EXITS,
		       "every exit counter fits in a message");
	m->n_exits = (uint32_t)(sizeof(c->vm->exit_counts) / sizeof(c->vm->exit_counts[0]));
	for (uint32_t i = 0; i < m->n_exits; i++)
		m->exits[i] = __atomic_load_n(&c->vm->exit_counts[i], __ATOMIC_RELAXED);
	for (size_t i = 0; i < c->n_devices; i++) {
		struct vmm_control_device *d = &c->devices[i];
		struct vmm_ctl_device *o = &m->devices[m->n_devices++];
		memcpy(o->name, d->name, sizeof(o->name));
		if (d->lock)
			pthread_mutex_lock(d->lock);
		d->collect(d->dev, o);
		if (d->lock)
			pthread_mutex_unlock(d->lock);
	}
	int n = vmm_ctl_metrics_encode(m, out + VMM_CTL_HEADER_LEN, VMM_CTL_MAX_BODY);
	if (n < 0)
		return respond_error(out, seq, n, "metrics: cannot encode the counters");
	return respond(out, seq, 0, out + VMM_CTL_HEADER_LEN, (size_t)n);
}

size_t vmm_control_handle(struct vmm_control *c, const void *msg, size_t n, uint8_t *out)
{
	struct vmm_ctl_request q = { 0 };
	int r = vmm_ctl_request_decode(msg, n, &q);
	if (r < 0) {
		__atomic_fetch_add(&c->refused, 1, __ATOMIC_RELAXED);
		char why[96];
		snprintf(why, sizeof(why), "malformed request (%zu bytes): %s", n,
			 r == -EOPNOTSUPP ? "unknown operation" : r == -ERANGE ? "argument out of range" : "bad length or magic");
		return respond_error(out, q.seq, r == -EBADMSG ? -EPROTO : -EINVAL, why);
	}
	__atomic_fetch_add(&c->requests, 1, __ATOMIC_RELAXED);
	struct gr_error err = { 0 };
	switch (q.op) {
	case VMM_CTL_STATUS: {
		double up;
		enum vm_run_state s = vm_state(c->vm, &up);
		struct vmm_ctl_status st = {
			.state = s == VM_STATE_PAUSED ? VMM_CTL_PAUSED : s == VM_STATE_STOPPING ? VMM_CTL_STOPPING
												  : VMM_CTL_RUNNING,
			.vcpus = c->vm->n_vcpus, .memory = c->memory, .uptime_us = (uint64_t)(up * 1e6),
		};
		vmm_ctl_status_encode(&st, out + VMM_CTL_HEADER_LEN);
		return respond(out, q.seq, 0, out + VMM_CTL_HEADER_LEN, VMM_CTL_STATUS_LEN);
	}
	case VMM_CTL_PAUSE:
		r = vm_pause(c->vm, &err);
		break;
	case VMM_CTL_RESUME:
		r = vm_resume(c->vm, &err);
		break;
	case VMM_CTL_STOP:
		r = vm_request_stop(c->vm, q.arg, &err);
		break;
	case VMM_CTL_METRICS:
		return handle_metrics(c, q.seq, out);
	}
	if (r < 0)
		return respond_error(out, q.seq, r, err.msg);
	return respond(out, q.seq, 0, NULL, 0);
}

static void mark_closed(struct vmm_control *c)
{
	pthread_mutex_lock(&c->lock);
	c->closed = true;
	pthread_cond_broadcast(&c->closed_cond);
	pthread_mutex_unlock(&c->lock);
}

static void on_channel(struct ev_handler *h, uint32_t events)
{
	(void)events;
	struct vmm_control *c = (struct vmm_control *)((char *)h - offsetof(struct vmm_control, h));
	/* MSG_TRUNC: n is the datagram's real length, so an oversized one is seen (and refused). */
	ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), MSG_TRUNC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {   /* EOF (or the channel failed): the API process is gone */
		ev_loop_del(c->loop, h);
		mark_closed(c);
		return;
	}
	size_t len = vmm_control_handle(c, c->buf, (size_t)n, c->out);
	(void)send(c->fd, c->out, len, MSG_NOSIGNAL | MSG_DONTWAIT);  /* a peer gone or not reading: dropped */
}

int vmm_control_attach(struct vmm_control *c, struct ev_loop *loop, struct vm *vm, uint64_t memory,
		       struct gr_error *err)
{
	c->vm = vm;
	c->memory = memory;
	c->loop = loop;
	c->h = (struct ev_handler){ .fd = c->fd, .fn = on_channel };
	int r = ev_loop_add(loop, &c->h, EPOLLIN | EPOLLRDHUP, err);
	if (r < 0) {
		c->loop = NULL;
		return gr_error_prefix(err, "control API");
	}
	return 0;
}

void vmm_control_close(struct vmm_control *c, bool loop_running, int timeout_ms)
{
	if (c->fd < 0)
		return;
	/* The API process sees EOF, closes its server, removes the socket file
	 * and exits; its end closes with it. */
	shutdown(c->fd, SHUT_WR);
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	if (loop_running && c->loop) {
		pthread_mutex_lock(&c->lock);
		while (!c->closed && pthread_cond_timedwait(&c->closed_cond, &c->lock, &deadline) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&c->lock);
		ev_loop_del(c->loop, &c->h);
	} else {
		if (c->loop)
			ev_loop_del(c->loop, &c->h);
		/* Read until EOF (nothing more is answered). */
		for (;;) {
			struct pollfd p = { .fd = c->fd, .events = POLLIN };
			if (poll(&p, 1, timeout_ms) <= 0)
				break;
			ssize_t k = recv(c->fd, c->buf, sizeof(c->buf), MSG_DONTWAIT);
			if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
				break;
		}
	}
	close(c->fd);
	c->fd = -1;
	c->pid = -1;   /* reaped by the kernel (SIGCHLD is ignored) */
}
