/* gureum-vmm-api: the control API process of one gureum-vmm (started by it
 * for --api-socket, never by hand; see src/vmm/README.md, "Control API").
 *
 *   gureum-vmm-api --socket PATH --fd N --parent PID
 *
 * Serves HTTP/JSON on PATH with api.c (libmicrohttpd) and implements every
 * request by asking the VMM over the SOCK_SEQPACKET channel on descriptor N
 * (api_proto.h). Hardening, in order: dies with its parent
 * (PR_SET_PDEATHSIG, SIGKILL), keeps only descriptors 0-2 and N, drops every
 * capability (no_new_privs), binds the socket, forks the watcher that
 * removes the socket file however this process ends, then loads its own
 * seccomp allow-list (vmm_sandbox_seccomp_api: no open, socket, bind,
 * connect, exec, fork or thread creation) before it tells the VMM it is
 * ready. It exits when the VMM shuts the channel down (or closes it by dying),
 * after closing the server and removing the socket file. */
#include "vmm/api.h"
#include "vmm/api_proto.h"
#include "vmm/sandbox.h"
#include "common/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPLY_TIMEOUT_MS 5000  /* the VMM answers at once; pause waits for the vCPUs to leave the guest */

struct channel {
	int fd;
	uint32_t seq;
	/* Held by main until the hello is out: the VMM's first message from us
	 * must be the hello, even when a client connects the moment the socket
	 * exists (libmicrohttpd serves from then on). */
	pthread_mutex_t hello_lock;
	uint8_t buf[VMM_CTL_MAX_MESSAGE + 1];
};

/* One request, one answer. Runs on the API thread only (requests are
 * handled one at a time). On success *body and *len give the answer's body
 * (inside ch->buf). */
static int call(struct channel *ch, uint32_t op, uint32_t arg, const uint8_t **body, size_t *len, struct gr_error *err)
{
	uint8_t req[VMM_CTL_REQUEST_LEN];
	pthread_mutex_lock(&ch->hello_lock);
	pthread_mutex_unlock(&ch->hello_lock);
	uint32_t seq = ++ch->seq;
	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = op, .seq = seq, .arg = arg }, req);
	if (send(ch->fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		return gr_error_sys(err, errno == EPIPE || errno == ECONNRESET ? EPIPE : errno, "the VMM is gone");
	for (;;) {
		struct pollfd p = { .fd = ch->fd, .events = POLLIN };
		int r = poll(&p, 1, REPLY_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return gr_error_sys(err, errno, "waiting for the VMM");
		if (r == 0)
			return gr_error_set(err, ETIMEDOUT, "the VMM did not answer within %d ms", REPLY_TIMEOUT_MS);
		ssize_t n = recv(ch->fd, ch->buf, sizeof(ch->buf), MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return gr_error_set(err, EPIPE, "the VMM is gone");
		struct vmm_ctl_header h;
		if ((size_t)n > VMM_CTL_MAX_MESSAGE ||
		    vmm_ctl_header_decode(ch->buf, (size_t)n, VMM_CTL_MAGIC_RESPONSE, &h) < 0)
			return gr_error_set(err, EBADMSG, "the VMM sent a malformed answer (%zd bytes)", n);
		if (h.seq != seq)
			continue;   /* the late answer to a request that timed out */
		if (h.result < 0) {
			char text[VMM_CTL_MAX_TEXT + 1];
			if (vmm_ctl_text_decode(ch->buf + VMM_CTL_HEADER_LEN, h.len, text, sizeof(text)) < 0)
				return gr_error_set(err, EBADMSG, "the VMM failed with an unreadable message");
			return gr_error_set(err, -h.result, "%s", text);
		}
		*body = ch->buf + VMM_CTL_HEADER_LEN;
		*len = h.len;
		return 0;
	}
}

static int op_status(void *o, struct vmm_api_status *st, struct gr_error *err)
{
	const uint8_t *b;
	size_t n;
	struct vmm_ctl_status s;
	int r = call(o, VMM_CTL_STATUS, 0, &b, &n, err);
	if (r < 0)
		return r;
	if (vmm_ctl_status_decode(b, n, &s) < 0)
		return gr_error_set(err, EBADMSG, "the VMM sent a malformed status (%zu bytes)", n);
	st->state = s.state == VMM_CTL_PAUSED ? VMM_API_PAUSED : s.state == VMM_CTL_STOPPING ? VMM_API_STOPPING
											  : VMM_API_RUNNING;
	st->vcpus = s.vcpus;
	st->memory = s.memory;
	st->uptime = (double)s.uptime_us / 1e6;
	return 0;
}

static int op_simple(void *o, uint32_t op, uint32_t arg, struct gr_error *err)
{
	const uint8_t *b;
	size_t n;
	int r = call(o, op, arg, &b, &n, err);
	if (r < 0)
		return r;
	if (n != 0)
		return gr_error_set(err, EBADMSG, "the VMM's answer has an unexpected body (%zu bytes)", n);
	return 0;
}

static int op_pause(void *o, struct gr_error *err) { return op_simple(o, VMM_CTL_PAUSE, 0, err); }
static int op_resume(void *o, struct gr_error *err) { return op_simple(o, VMM_CTL_RESUME, 0, err); }
static int op_stop(void *o, unsigned int timeout_ms, struct gr_error *err)
{
	return op_simple(o, VMM_CTL_STOP, timeout_ms, err);
}

static int op_metrics(void *o, json_t *metrics, struct gr_error *err)
{
	static struct vmm_ctl_metrics m;   /* large: not on the API thread's stack */
	const uint8_t *b;
	size_t n;
	int r = call(o, VMM_CTL_METRICS, 0, &b, &n, err);
	if (r < 0)
		return r;
	if (vmm_ctl_metrics_decode(b, n, &m) < 0)
		return gr_error_set(err, EBADMSG, "the VMM sent malformed metrics (%zu bytes)", n);
	if (vmm_api_metrics_add_exits(metrics, m.exits, m.n_exits) < 0)
		return gr_error_set(err, ENOMEM, "out of memory");
	json_t *devices = json_object();
	if (!devices || json_object_set_new(metrics, "devices", devices) < 0)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (uint32_t d = 0; d < m.n_devices; d++) {
		json_t *dev = json_object();
		if (!dev || json_object_set_new(devices, m.devices[d].name, dev) < 0)
			return gr_error_set(err, ENOMEM, "out of memory");
		for (uint32_t k = 0; k < m.devices[d].n_counters; k++)
			if (json_object_set_new(dev, m.devices[d].counters[k].key,
						json_integer((json_int_t)m.devices[d].counters[k].value)) < 0)
				return gr_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static const struct vmm_api_ops ops = {
	.get_status = op_status, .pause = op_pause, .resume = op_resume, .stop = op_stop, .get_metrics = op_metrics,
};

/* The first message: ready (result 0) or why not. */
static void send_hello(int fd, int result, const char *msg)
{
	uint8_t buf[VMM_CTL_HEADER_LEN + VMM_CTL_MAX_TEXT];
	size_t len = result < 0 ? vmm_ctl_text_encode(msg, buf + VMM_CTL_HEADER_LEN) : 0;
	vmm_ctl_header_encode(&(struct vmm_ctl_header){ .magic = VMM_CTL_MAGIC_HELLO, .result = result,
							.len = (uint32_t)len },
			      buf);
	(void)send(fd, buf, VMM_CTL_HEADER_LEN + len, MSG_NOSIGNAL);
}

static int usage(void)
{
	fprintf(stderr, "usage: gureum-vmm-api --socket PATH --fd N --parent PID (started by gureum-vmm --api-socket)\n");
	return 2;
}

static int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' }, { "fd", required_argument, NULL, 'f' },
		{ "parent", required_argument, NULL, 'p' }, { 0 },
	};
	const char *path = NULL;
	long fd = -1, parent = -1;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': path = optarg; break;
		case 'f': if (parse_int(optarg, 3, INT_MAX, &fd) < 0) return usage(); break;
		case 'p': if (parse_int(optarg, 1, INT_MAX, &parent) < 0) return usage(); break;
		default: return usage();
		}
	}
	if (optind != argc || !path || fd < 0 || parent < 0)
		return usage();
	/* Die with the VMM; if it is already gone, there is nothing to serve. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != (pid_t)parent)
		return 1;
	/* The channel must be what the VMM hands over: a SOCK_SEQPACKET socket. */
	int type = 0;
	socklen_t tl = sizeof(type);
	if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET) {
		fprintf(stderr, "gureum-vmm-api: descriptor %ld is not the VMM's channel (a SOCK_SEQPACKET socket)\n", fd);
		return 1;
	}
	(void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
	if (fd > 3)
		close_range(3, (unsigned)fd - 1, 0);
	close_range((unsigned)fd + 1, ~0U, 0);
	if (chdir("/") < 0) { /* hold no directory busy */ }

	static struct channel ch = { .hello_lock = PTHREAD_MUTEX_INITIALIZER };
	ch.fd = (int)fd;
	pthread_mutex_lock(&ch.hello_lock);
	struct gr_error err = { 0 };
	struct vmm_api *api = NULL;
	if (vmm_sandbox_drop_caps(&err) < 0 || vmm_api_open(path, &ops, &ch, &api, &err) < 0 ||
	    vmm_api_unlink_at_exit(api, &err) < 0 || vmm_sandbox_seccomp_api(&err) < 0) {
		send_hello(ch.fd, -(err.code ? err.code : EIO), err.msg);
		pthread_mutex_unlock(&ch.hello_lock);
		vmm_api_close(api);
		return 1;
	}
	send_hello(ch.fd, 0, NULL);
	pthread_mutex_unlock(&ch.hello_lock);
	/* Until the VMM shuts the channel down or dies: POLLRDHUP only, so the
	 * answers the API thread reads are left alone. */
	for (;;) {
		struct pollfd p = { .fd = ch.fd, .events = POLLRDHUP };
		int r = poll(&p, 1, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
			break;
	}
	vmm_api_close(api);   /* stops the server, the watcher removes the socket file; waits for both */
	return 0;
}
