/* virtio-vsock with hybrid unix-socket host side (see virtio_vsock.h).
 *
 * A connection is keyed by (host-side port, guest port). Its host socket is
 * watched by the I/O thread; the epoll interest follows the state
 * (conn_watch): EPOLLIN while data may go to the guest (credit left, rx
 * buffers available, neither side shut), EPOLLOUT while guest bytes wait in
 * our buffer. Control packets (REQUEST, RESPONSE, SHUTDOWN, CREDIT_UPDATE)
 * are flags on the connection, sent in order by rx_flush() when the guest
 * has rx buffers; RSTs outlive their connection in a small ring.
 *
 * Freeing (event_loop.h's rule): the I/O thread may free a connection at any
 * time from a callback; another thread (a vCPU serving the tx queue, a
 * device reset) frees only connections whose socket is not in the loop, and
 * otherwise shuts the socket down, marks the connection dead and lets the
 * EPOLLHUP that follows free it on the I/O thread. */
#include "vmm/devices/virtio_vsock.h"
#include "common/cleanup.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define HANDSHAKE_MAX 32u   /* "CONNECT 4294967295\n" is 19 bytes */

/* Control packets a connection still owes the guest, sent in this order. */
#define PEND_REQUEST  1u
#define PEND_RESPONSE 2u
#define PEND_CREDIT   4u
#define PEND_SHUTDOWN 8u

enum conn_state {
	CONN_HANDSHAKE,    /* host client accepted, its "CONNECT <port>\n" not read yet */
	CONN_CONNECTING,   /* REQUEST sent to the guest, waiting for RESPONSE */
	CONN_ESTABLISHED,
};

struct vsock_conn {
	struct ev_handler h;              /* h.fd: the host socket */
	struct virtio_vsock *v;
	struct vsock_conn *hnext;         /* hash bucket */
	LIST_ENTRY(vsock_conn) all;       /* v->all */
	TAILQ_ENTRY(vsock_conn) ctrl;     /* v->ctrl, when in_ctrl */
	uint32_t local_port, peer_port;   /* host side, guest side */
	enum conn_state state;
	bool dead, hashed, in_ctrl, registered, hup, host_eof, rx_starved, wr_shut;
	uint32_t watched;                 /* events registered with the loop */
	uint32_t pending;                 /* PEND_* */
	uint32_t peer_shutdown;           /* VIRTIO_VSOCK_SHUTDOWN_* from the guest */
	uint32_t shutdown_sent;           /* flags of the SHUTDOWN we owe/sent */
	/* toward the guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	/* from the guest */
	uint32_t rx_cnt, fwd_cnt, fwd_cnt_sent;
	uint8_t *buf;                     /* ring of VSOCK_BUF_ALLOC: guest bytes the host socket did not take yet */
	uint32_t buf_head, buf_len;
	char line[HANDSHAKE_MAX];
	uint32_t line_len;
};

static void conn_event(struct ev_handler *h, uint32_t events);
static void rx_flush(struct virtio_vsock *v);

/* ---- the spec ---- */

int virtio_vsock_parse_spec(const char *spec, uint64_t *cid, char **path, struct gr_error *err)
{
	*path = NULL;
	*cid = 0;
	bool have_cid = false;
	const char *sock = NULL;
	size_t sock_len = 0;
	const char *p = spec;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n > 4 && strncmp(p, "cid=", 4) == 0) {
			char num[24];
			if (n - 4 >= sizeof(num))
				return gr_error_set(err, EINVAL, "vsock \"%s\": cid \"%.*s\" is out of range (3 to 4294967294)",
						    spec, (int)(n - 4), p + 4);
			memcpy(num, p + 4, n - 4);
			num[n - 4] = 0;
			char *e;
			errno = 0;
			unsigned long long v = strtoull(num, &e, 10);
			if (errno == ERANGE)
				v = ~0ULL;
			else if (errno || *e || num[0] < '0' || num[0] > '9')
				return gr_error_set(err, EINVAL, "vsock \"%s\": cid \"%s\" is not a number", spec, num);
			if (v < VSOCK_MIN_GUEST_CID || v >= 0xFFFFFFFFull)
				return gr_error_set(err, EINVAL,
						    "vsock \"%s\": cid %llu is out of range (3 to 4294967294; 0-2 are reserved, -1 is \"any\")",
						    spec, v);
			*cid = v;
			have_cid = true;
		} else if (n > 7 && strncmp(p, "socket=", 7) == 0) {
			sock = p + 7;
			sock_len = n - 7;
		} else {
			return gr_error_set(err, EINVAL, "vsock \"%s\": unknown key \"%.*s\" (expected cid=N,socket=PATH)", spec,
					    (int)n, p);
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (!have_cid)
		return gr_error_set(err, EINVAL, "vsock \"%s\": missing cid= (expected cid=N,socket=PATH)", spec);
	if (!sock)
		return gr_error_set(err, EINVAL, "vsock \"%s\": missing socket= (expected cid=N,socket=PATH)", spec);
	/* PATH_<port> must fit too: "_" and up to 10 digits. */
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1 - 11;
	if (sock_len > max)
		return gr_error_set(err, ENAMETOOLONG,
				    "vsock \"%s\": the socket path is %zu bytes, longer than %zu (a unix socket address holds 107, and PATH_<port> must fit)",
				    spec, sock_len, max);
	*path = strndup(sock, sock_len);
	if (!*path)
		return gr_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* ---- connections: lookup, lists, watching, freeing ---- */

static unsigned bucket(uint32_t local, uint32_t peer)
{
	return (local * 2654435761u ^ peer * 40503u) % VSOCK_HASH_BUCKETS;
}

static struct vsock_conn *conn_find(struct virtio_vsock *v, uint32_t local, uint32_t peer)
{
	for (struct vsock_conn *c = v->buckets[bucket(local, peer)]; c; c = c->hnext)
		if (c->local_port == local && c->peer_port == peer)
			return c;
	return NULL;
}

static void conn_hash(struct vsock_conn *c)
{
	struct vsock_conn **b = &c->v->buckets[bucket(c->local_port, c->peer_port)];
	c->hnext = *b;
	*b = c;
	c->hashed = true;
}

static void conn_unhash(struct vsock_conn *c)
{
	if (!c->hashed)
		return;
	for (struct vsock_conn **p = &c->v->buckets[bucket(c->local_port, c->peer_port)]; *p; p = &(*p)->hnext) {
		if (*p == c) {
			*p = c->hnext;
			break;
		}
	}
	c->hashed = false;
}

static void ctrl_add(struct vsock_conn *c, uint32_t pend)
{
	struct virtio_vsock *v = c->v;
	c->pending |= pend;
	if (c->in_ctrl)
		return;
	c->in_ctrl = true;
	TAILQ_INSERT_TAIL(&v->ctrl, c, ctrl);
}

static void ctrl_remove(struct vsock_conn *c)
{
	if (!c->in_ctrl)
		return;
	TAILQ_REMOVE(&c->v->ctrl, c, ctrl);
	c->in_ctrl = false;
	c->pending = 0;
}

/* Bytes the guest can still take on this connection. */
static uint32_t peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool driver_ok(const struct virtio_vsock *v)
{
	return (v->mmio.status & VIRTIO_STATUS_DRIVER_OK) && !(v->mmio.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static uint32_t conn_wanted_events(const struct vsock_conn *c)
{
	if (c->dead)
		return 0;
	if (c->state == CONN_HANDSHAKE)
		return EPOLLIN;
	if (c->state != CONN_ESTABLISHED)
		return 0;
	uint32_t ev = 0;
	if (!c->host_eof && !(c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) && !c->rx_starved && !c->pending &&
	    peer_credit(c) > 0)
		ev |= EPOLLIN;
	if (c->buf_len)
		ev |= EPOLLOUT;
	return ev;
}

/* Makes the loop watch what the state asks for. A socket that hung up keeps
 * reporting EPOLLHUP: with nothing to watch it leaves the loop (and comes
 * back when there is). */
static void conn_watch(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;
	if (!v->loop || c->dead)
		return;
	uint32_t ev = conn_wanted_events(c);
	struct gr_error err;
	bool loop_thread = v->in_loop_callback || !v->loop->running;
	if (c->registered) {
		if (ev == 0 && c->hup && loop_thread) {
			/* Only on the loop's thread, where no event for it can be on
			 * its way; elsewhere the next EPOLLHUP brings it here. */
			ev_loop_del(v->loop, &c->h);
			c->registered = false;
		} else if (ev != c->watched && ev_loop_mod(v->loop, &c->h, ev, &err) == 0) {
			c->watched = ev;
		}
	} else if ((ev || !c->hup) && ev_loop_add(v->loop, &c->h, ev, &err) == 0) {
		c->registered = true;
		c->watched = ev;
	}
}

/* Accepting again after running out of descriptors: when a connection ends,
 * or when the guest does something (descriptors may have been freed
 * elsewhere in the process). */
static void listen_resume(struct virtio_vsock *v)
{
	struct gr_error err;
	if (v->listen_paused && v->loop && ev_loop_mod(v->loop, &v->listener, EPOLLIN, &err) == 0)
		v->listen_paused = false;
}

static void conn_free(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;
	conn_unhash(c);
	ctrl_remove(c);
	if (c->registered && v->loop)
		ev_loop_del(v->loop, &c->h);
	if (c->h.fd >= 0)
		close(c->h.fd);
	LIST_REMOVE(c, all);
	free(c->buf);
	free(c);
	v->n_conns--;
	listen_resume(v);
}

static void rst_queue(struct virtio_vsock *v, uint32_t local, uint32_t peer)
{
	if (v->rst_n == VSOCK_RST_RING) {
		v->rsts_dropped++;
		return;
	}
	uint32_t i = (v->rst_first + v->rst_n++) % VSOCK_RST_RING;
	v->rst_ring[i].src_port = local;
	v->rst_ring[i].dst_port = peer;
}

/* Whether the I/O thread runs elsewhere: a handler in the loop may then have
 * an event on its way and must not be freed from here. */
static bool loop_busy(const struct virtio_vsock *v)
{
	return v->loop && v->loop->running && !v->in_loop_callback;
}

/* Ends a connection: RST to the guest when it knows the connection and
 * send_rst, the host socket closed (by reap(), or by the I/O thread). */
static void conn_kill(struct vsock_conn *c, bool send_rst)
{
	struct virtio_vsock *v = c->v;
	if (c->dead)
		return;
	if (send_rst && c->state != CONN_HANDSHAKE)
		rst_queue(v, c->local_port, c->peer_port);
	conn_unhash(c);
	ctrl_remove(c);
	c->dead = true;
	free(c->buf);
	c->buf = NULL;
	c->buf_len = 0;
	if (c->registered && loop_busy(v)) {
		/* An event for it may be on its way: the loop frees it on EPOLLHUP. */
		(void)shutdown(c->h.fd, SHUT_RDWR);
		struct gr_error err;
		if (ev_loop_mod(v->loop, &c->h, 0, &err) == 0)
			c->watched = 0;
		return;
	}
	v->reap = true;   /* freed by reap() when the device is left: callers may still look at it */
}

/* Frees the dead connections nothing can refer to any more; called on the
 * way out of every entry point (notify, reset, loop callbacks). */
static void reap(struct virtio_vsock *v)
{
	if (!v->reap)
		return;
	v->reap = false;
	bool busy = loop_busy(v);
	for (struct vsock_conn *c = LIST_FIRST(&v->all), *next; c; c = next) {
		next = LIST_NEXT(c, all);
		if (c->dead && !(c->registered && busy))
			conn_free(c);
	}
}

static struct vsock_conn *conn_new(struct virtio_vsock *v, int fd, enum conn_state state)
{
	struct vsock_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->v = v;
	c->h = (struct ev_handler){ .fd = fd, .fn = conn_event, .lock = v->listener.lock };
	c->state = state;
	LIST_INSERT_HEAD(&v->all, c, all);
	v->n_conns++;
	return c;
}

/* ---- packets to the guest ---- */

/* Copies len bytes into the writable part of the chain at offset off;
 * returns false when it is shorter. */
static bool chain_write(const struct vq_chain *ch, uint64_t off, const void *src, uint64_t len)
{
	const uint8_t *s = src;
	uint64_t pos = 0;
	for (size_t i = 0; i < ch->n && len; i++) {
		const struct vq_buf *b = &ch->bufs[i];
		if (!b->write)
			continue;
		if (off < pos + b->len) {
			uint64_t skip = off > pos ? off - pos : 0;
			uint64_t take = b->len - skip;
			if (take > len)
				take = len;
			memcpy(b->host + skip, s, take);
			s += take;
			off += take;
			len -= take;
		}
		pos += b->len;
	}
	return len == 0;
}

/* iovecs over [off, off + len) of the writable (write) or readable part. */
static int chain_iov(const struct vq_chain *ch, bool write, uint64_t off, uint64_t len, struct iovec *iov)
{
	int n = 0;
	uint64_t pos = 0;
	for (size_t i = 0; i < ch->n && len; i++) {
		const struct vq_buf *b = &ch->bufs[i];
		if (b->write != write)
			continue;
		if (off < pos + b->len) {
			uint64_t skip = off > pos ? off - pos : 0;
			uint64_t take = b->len - skip;
			if (take > len)
				take = len;
			iov[n++] = (struct iovec){ .iov_base = b->host + skip, .iov_len = (size_t)take };
			off += take;
			len -= take;
		}
		pos += b->len;
	}
	return len ? -1 : n;
}

static void fill_hdr(struct virtio_vsock *v, struct virtio_vsock_hdr *h, uint32_t src_port, uint32_t dst_port,
		     uint16_t op, uint32_t flags, uint32_t len)
{
	*h = (struct virtio_vsock_hdr){
		.src_cid = htole64(VSOCK_HOST_CID), .dst_cid = htole64(v->guest_cid),
		.src_port = htole32(src_port), .dst_port = htole32(dst_port), .len = htole32(len),
		.type = htole16(VIRTIO_VSOCK_TYPE_STREAM), .op = htole16(op), .flags = htole32(flags),
	};
}

static void fill_conn_hdr(struct vsock_conn *c, struct virtio_vsock_hdr *h, uint16_t op, uint32_t flags, uint32_t len)
{
	fill_hdr(c->v, h, c->local_port, c->peer_port, op, flags, len);
	h->buf_alloc = htole32(VSOCK_BUF_ALLOC);
	h->fwd_cnt = htole32(c->fwd_cnt);
	c->fwd_cnt_sent = c->fwd_cnt;
}

/* The next rx buffer chain: 1 taken, 0 none (the device then waits for the
 * rx notification), -1 a broken ring or a chain too small for a header
 * (the device needs a reset). */
static int rx_pop(struct virtio_vsock *v, struct virtqueue *vq)
{
	int r = vq_pop(v->mmio.gm, vq, &v->chain);
	if (r < 0) {
		virtio_mmio_set_needs_reset(&v->mmio);
		return -1;
	}
	if (r == 0) {
		v->rx_starved = true;
		return 0;
	}
	if (v->chain.write_len < VSOCK_HDR_BYTES) {
		v->bad_packets++;
		(void)vq_push(v->mmio.gm, vq, v->chain.head, 0);
		virtio_mmio_set_needs_reset(&v->mmio);
		return -1;
	}
	return 1;
}

static struct virtqueue *rx_queue(struct virtio_vsock *v)
{
	struct virtqueue *vq = virtio_mmio_queue(&v->mmio, VSOCK_QUEUE_RX);
	if (!driver_ok(v) || !vq || !vq->ready || vq->broken)
		return NULL;
	return vq;
}

/* Sends the control packets waiting (RSTs first, then each connection's in
 * REQUEST, RESPONSE, CREDIT_UPDATE, SHUTDOWN order) while rx buffers last. */
static void rx_flush(struct virtio_vsock *v)
{
	struct virtqueue *vq = rx_queue(v);
	if (!vq)
		return;
	uint16_t old_used = vq->used_idx;
	bool pushed = false;
	while (v->rst_n || !TAILQ_EMPTY(&v->ctrl)) {
		if (rx_pop(v, vq) <= 0)
			break;
		struct virtio_vsock_hdr h;
		if (v->rst_n) {
			uint32_t i = v->rst_first;
			v->rst_first = (v->rst_first + 1) % VSOCK_RST_RING;
			v->rst_n--;
			fill_hdr(v, &h, v->rst_ring[i].src_port, v->rst_ring[i].dst_port, VIRTIO_VSOCK_OP_RST, 0, 0);
			v->rsts_sent++;
		} else {
			struct vsock_conn *c = TAILQ_FIRST(&v->ctrl);
			uint32_t p = c->pending & -c->pending;   /* lowest bit: the order above */
			uint16_t op = p == PEND_REQUEST ? VIRTIO_VSOCK_OP_REQUEST
				    : p == PEND_RESPONSE ? VIRTIO_VSOCK_OP_RESPONSE
				    : p == PEND_CREDIT ? VIRTIO_VSOCK_OP_CREDIT_UPDATE : VIRTIO_VSOCK_OP_SHUTDOWN;
			fill_conn_hdr(c, &h, op, p == PEND_SHUTDOWN ? c->shutdown_sent : 0, 0);
			c->pending &= ~p;
			if (!c->pending) {
				ctrl_remove(c);
				conn_watch(c);   /* data may flow now (after RESPONSE) */
			}
		}
		chain_write(&v->chain, 0, &h, sizeof(h));
		if (vq_push(v->mmio.gm, vq, v->chain.head, VSOCK_HDR_BYTES) < 0) {
			virtio_mmio_set_needs_reset(&v->mmio);
			break;
		}
		v->pkts_to_guest++;
		pushed = true;
	}
	if (pushed)
		virtio_mmio_signal_used(&v->mmio, VSOCK_QUEUE_RX, old_used);
}

/* The guest's view of our buffer went stale: tell it what we forwarded. */
static void maybe_credit_update(struct vsock_conn *c)
{
	uint32_t seen_free = VSOCK_BUF_ALLOC - (c->rx_cnt - c->fwd_cnt_sent);
	if (c->fwd_cnt != c->fwd_cnt_sent && seen_free < VSOCK_BUF_ALLOC / 2)
		ctrl_add(c, PEND_CREDIT);
}

/* ---- host socket -> guest ---- */

/* EPOLLIN on an established connection: one RW packet with as much as the
 * guest's credit, the rx buffer and VSOCK_MAX_PAYLOAD allow; end of file
 * becomes SHUTDOWN(SEND). */
static void host_read(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;
	rx_flush(v);   /* control packets (RESPONSE above all) go first */
	if (c->dead || c->pending || !(conn_wanted_events(c) & EPOLLIN))
		return;
	struct virtqueue *vq = rx_queue(v);
	if (!vq) {
		c->rx_starved = true;
		v->rx_starved = true;
		return;
	}
	uint8_t probe;
	ssize_t n = recv(c->h.fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_kill(c, true);
		return;
	}
	if (n == 0) {
		c->host_eof = true;
		c->shutdown_sent = VIRTIO_VSOCK_SHUTDOWN_SEND | (c->hup ? VIRTIO_VSOCK_SHUTDOWN_RCV : 0);
		ctrl_add(c, PEND_SHUTDOWN);
		rx_flush(v);
		return;
	}
	int r = rx_pop(v, vq);
	if (r <= 0) {
		c->rx_starved = r == 0;
		return;
	}
	uint64_t room = v->chain.write_len - VSOCK_HDR_BYTES;
	uint32_t max = peer_credit(c);
	if (max > VSOCK_MAX_PAYLOAD)
		max = VSOCK_MAX_PAYLOAD;
	if (room < max)
		max = (uint32_t)room;
	uint16_t old_used = vq->used_idx;
	uint32_t len = 0;
	if (max > 0) {
		struct iovec iov[VQ_MAX_SIZE];
		int cnt = chain_iov(&v->chain, true, VSOCK_HDR_BYTES, max, iov);
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		n = cnt > 0 ? recvmsg(c->h.fd, &m, MSG_DONTWAIT) : 0;
		if (n > 0)
			len = (uint32_t)n;
	}
	struct virtio_vsock_hdr h;
	if (len) {
		fill_conn_hdr(c, &h, VIRTIO_VSOCK_OP_RW, 0, len);
		c->tx_cnt += len;
		v->bytes_to_guest += len;
	} else {
		/* Nothing read after all (the peek said otherwise): a credit update
		 * is harmless and returns the buffer. */
		fill_conn_hdr(c, &h, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 0);
	}
	chain_write(&v->chain, 0, &h, sizeof(h));
	if (vq_push(v->mmio.gm, vq, v->chain.head, VSOCK_HDR_BYTES + len) < 0) {
		virtio_mmio_set_needs_reset(&v->mmio);
		return;
	}
	v->pkts_to_guest++;
	virtio_mmio_signal_used(&v->mmio, VSOCK_QUEUE_RX, old_used);
}

/* ---- guest -> host socket ---- */

/* Writes what the buffer holds to the host socket; false when the
 * connection died. */
static bool host_flush(struct vsock_conn *c)
{
	while (c->buf_len) {
		uint32_t first = VSOCK_BUF_ALLOC - c->buf_head;
		if (first > c->buf_len)
			first = c->buf_len;
		struct iovec iov[2] = {
			{ .iov_base = c->buf + c->buf_head, .iov_len = first },
			{ .iov_base = c->buf, .iov_len = c->buf_len - first },
		};
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = iov[1].iov_len ? 2 : 1 };
		ssize_t n = sendmsg(c->h.fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			conn_kill(c, true);
			return false;
		}
		c->buf_head = (c->buf_head + (uint32_t)n) % VSOCK_BUF_ALLOC;
		c->buf_len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (c->buf_len == 0) {
		free(c->buf);
		c->buf = NULL;
		c->buf_head = 0;
		/* Everything the guest sent is out: its shutdown takes effect. */
		if ((c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) && !c->wr_shut) {
			(void)shutdown(c->h.fd, SHUT_WR);
			c->wr_shut = true;
		}
		if (c->peer_shutdown == (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)) {
			conn_kill(c, true);   /* the guest closed: RST completes its close */
			return false;
		}
	}
	maybe_credit_update(c);
	return true;
}

/* RW from the guest: len bytes of payload after the header in the chain. */
static void guest_rw(struct vsock_conn *c, const struct vq_chain *ch, uint32_t len)
{
	if (c->state != CONN_ESTABLISHED || (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) ||
	    len > VSOCK_BUF_ALLOC - c->buf_len) {
		c->v->bad_packets++;   /* no connection yet, after its shutdown, or beyond our credit */
		conn_kill(c, true);
		return;
	}
	if (len == 0)
		return;
	struct iovec iov[VQ_MAX_SIZE];
	int cnt = chain_iov(ch, false, VSOCK_HDR_BYTES, len, iov);
	if (cnt < 0) {
		conn_kill(c, true);
		return;
	}
	c->rx_cnt += len;
	c->v->bytes_from_guest += len;
	uint32_t sent = 0;
	if (c->buf_len == 0) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t n;
		do
			n = sendmsg(c->h.fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_kill(c, true);
			return;
		}
		sent = n > 0 ? (uint32_t)n : 0;
		c->fwd_cnt += sent;
	}
	if (sent < len) {
		if (!c->buf && !(c->buf = malloc(VSOCK_BUF_ALLOC))) {
			conn_kill(c, true);
			return;
		}
		uint32_t skip = sent;
		for (int i = 0; i < cnt; i++) {
			const uint8_t *p = iov[i].iov_base;
			uint32_t l = (uint32_t)iov[i].iov_len;
			if (skip >= l) {
				skip -= l;
				continue;
			}
			p += skip;
			l -= skip;
			skip = 0;
			while (l) {
				uint32_t tail = (c->buf_head + c->buf_len) % VSOCK_BUF_ALLOC;
				uint32_t room = VSOCK_BUF_ALLOC - tail;
				uint32_t take = l < room ? l : room;
				memcpy(c->buf + tail, p, take);
				c->buf_len += take;
				p += take;
				l -= take;
			}
		}
	}
	maybe_credit_update(c);
}

/* A guest-initiated connection to host port: connect to PATH_<port>. */
static void guest_connect(struct virtio_vsock *v, const struct virtio_vsock_hdr *h, uint32_t local, uint32_t peer)
{
	if (v->n_conns >= VSOCK_MAX_CONNS) {
		v->conns_refused++;
		rst_queue(v, local, peer);
		return;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%" PRIu32, v->sock.path, local);
	gr_autoclose int fd = -1;
	if (n > 0 && (size_t)n < sizeof(sa.sun_path))
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		v->conns_refused++;
		rst_queue(v, local, peer);
		return;
	}
	struct vsock_conn *c = conn_new(v, fd, CONN_ESTABLISHED);
	if (!c) {
		rst_queue(v, local, peer);
		return;
	}
	fd = -1;
	c->local_port = local;
	c->peer_port = peer;
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = le32toh(h->fwd_cnt);
	conn_hash(c);
	v->conns_opened++;
	ctrl_add(c, PEND_RESPONSE);
	conn_watch(c);
}

/* One packet from the tx queue. Returns nothing to write (used length 0). */
static uint32_t tx_packet(void *opaque, struct vq_chain *ch)
{
	struct virtio_vsock *v = opaque;
	v->pkts_from_guest++;
	if (ch->read_len < VSOCK_HDR_BYTES) {
		v->bad_packets++;   /* nothing to answer to */
		return 0;
	}
	struct iovec iov[VQ_MAX_SIZE];
	int cnt = chain_iov(ch, false, 0, VSOCK_HDR_BYTES, iov);
	uint8_t raw[VSOCK_HDR_BYTES];
	size_t at = 0;
	for (int i = 0; i < cnt; i++) {   /* one copy: the guest may change it meanwhile */
		memcpy(raw + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	struct virtio_vsock_hdr h;
	memcpy(&h, raw, sizeof(h));
	uint64_t src_cid = le64toh(h.src_cid), dst_cid = le64toh(h.dst_cid);
	uint32_t peer = le32toh(h.src_port), local = le32toh(h.dst_port), len = le32toh(h.len);
	uint16_t type = le16toh(h.type), op = le16toh(h.op);
	if (src_cid != v->guest_cid) {
		v->bad_packets++;   /* spoofed: not answered */
		return 0;
	}
	struct vsock_conn *c = conn_find(v, local, peer);
	bool bad = dst_cid != VSOCK_HOST_CID || type != VIRTIO_VSOCK_TYPE_STREAM || len > VSOCK_MAX_PAYLOAD ||
		   len > ch->read_len - VSOCK_HDR_BYTES || op < VIRTIO_VSOCK_OP_REQUEST ||
		   op > VIRTIO_VSOCK_OP_CREDIT_REQUEST || (len && op != VIRTIO_VSOCK_OP_RW);
	if (bad) {
		v->bad_packets++;
		if (c)
			conn_kill(c, true);
		else if (op != VIRTIO_VSOCK_OP_RST)
			rst_queue(v, local, peer);
		return 0;
	}
	if (!c) {
		if (op == VIRTIO_VSOCK_OP_REQUEST)
			guest_connect(v, &h, local, peer);
		else if (op != VIRTIO_VSOCK_OP_RST) {
			v->bad_packets++;
			rst_queue(v, local, peer);
		}
		return 0;
	}
	c->peer_buf_alloc = le32toh(h.buf_alloc);
	c->peer_fwd_cnt = le32toh(h.fwd_cnt);
	switch (op) {
	case VIRTIO_VSOCK_OP_REQUEST:
		v->bad_packets++;   /* for a connection that exists */
		conn_kill(c, true);
		return 0;
	case VIRTIO_VSOCK_OP_RESPONSE: {
		if (c->state != CONN_CONNECTING) {
			v->bad_packets++;
			conn_kill(c, true);
			return 0;
		}
		char ok[24];
		int n = snprintf(ok, sizeof(ok), "OK %" PRIu32 "\n", c->local_port);
		if (send(c->h.fd, ok, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
			conn_kill(c, true);
			return 0;
		}
		c->state = CONN_ESTABLISHED;
		break;
	}
	case VIRTIO_VSOCK_OP_RST:
		conn_kill(c, false);
		return 0;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		c->peer_shutdown |= le32toh(h.flags) & (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
		if (c->state != CONN_ESTABLISHED) {
			conn_kill(c, true);
			return 0;
		}
		if (c->buf_len == 0 && !host_flush(c))
			return 0;
		break;
	case VIRTIO_VSOCK_OP_RW:
		guest_rw(c, ch, len);
		if (c->dead)
			return 0;
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		ctrl_add(c, PEND_CREDIT);
		break;
	}
	conn_watch(c);   /* new credit may let host data flow again */
	return 0;
}

/* ---- host side events (the I/O thread) ---- */

/* "CONNECT <port>\n", read a byte at a time so that nothing after the line
 * is taken from the socket. */
static void handshake_read(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->v;
	for (;;) {
		char ch;
		ssize_t n = recv(c->h.fd, &ch, 1, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_kill(c, false);   /* the client went away */
			return;
		}
		if (ch != '\n') {
			if (c->line_len + 1 >= HANDSHAKE_MAX) {
				conn_kill(c, false);
				return;
			}
			c->line[c->line_len++] = ch;
			continue;
		}
		c->line[c->line_len] = 0;
		const char *num = c->line + 8;
		char *end;
		errno = 0;
		unsigned long long port = strtoull(num, &end, 10);
		if (strncmp(c->line, "CONNECT ", 8) != 0 || *num < '0' || *num > '9' || *end || errno ||
		    port > UINT32_MAX || !driver_ok(v)) {
			conn_kill(c, false);
			return;
		}
		/* A host-side port nobody uses with this guest port. */
		uint32_t local;
		do {
			local = v->next_local_port++;
			if (v->next_local_port == UINT32_MAX)
				v->next_local_port = VSOCK_LOCAL_PORT_BASE;
		} while (conn_find(v, local, (uint32_t)port));
		c->local_port = local;
		c->peer_port = (uint32_t)port;
		c->state = CONN_CONNECTING;
		conn_hash(c);
		ctrl_add(c, PEND_REQUEST);
		conn_watch(c);
		rx_flush(v);
		return;
	}
}

static void conn_event(struct ev_handler *h, uint32_t events)
{
	struct vsock_conn *c = (struct vsock_conn *)((char *)h - offsetof(struct vsock_conn, h));
	struct virtio_vsock *v = c->v;
	v->in_loop_callback = true;
	if (c->dead) {
		conn_free(c);   /* killed by another thread: this is its last event */
	} else if (events & EPOLLERR) {
		conn_kill(c, true);
	} else if (c->state == CONN_HANDSHAKE) {
		handshake_read(c);
	} else if (c->state == CONN_CONNECTING) {
		if (events & EPOLLHUP)
			conn_kill(c, true);   /* the client gave up */
	} else {
		if (events & EPOLLHUP)
			c->hup = true;
		if ((events & EPOLLOUT) && c->buf_len)
			(void)host_flush(c);
		if (!c->dead && (events & (EPOLLIN | EPOLLHUP)))
			host_read(c);
		if (!c->dead)
			conn_watch(c);
	}
	rx_flush(v);
	reap(v);
	v->in_loop_callback = false;
}

static void listener_event(struct ev_handler *h, uint32_t events)
{
	struct virtio_vsock *v = (struct virtio_vsock *)((char *)h - offsetof(struct virtio_vsock, listener));
	(void)events;
	v->in_loop_callback = true;
	for (int i = 0; i < 16; i++) {
		int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* The client waits in the backlog; a level-triggered
				 * EPOLLIN would spin: listen again once a connection ends. */
				struct gr_error err;
				if (ev_loop_mod(v->loop, &v->listener, 0, &err) == 0)
					v->listen_paused = true;
			}
			break;
		}
		struct vsock_conn *c = NULL;
		if (v->n_conns >= VSOCK_MAX_CONNS || !driver_ok(v) || !(c = conn_new(v, fd, CONN_HANDSHAKE))) {
			v->conns_refused++;
			close(fd);
			continue;
		}
		v->conns_opened++;
		conn_watch(c);
		if (!c->registered)
			conn_kill(c, false);
	}
	reap(v);
	v->in_loop_callback = false;
}

/* ---- the transport's callbacks ---- */

static void vsock_notify(struct virtio_mmio_dev *dev, uint32_t index)
{
	struct virtio_vsock *v = dev->opaque;
	if (index == VSOCK_QUEUE_TX) {
		virtio_mmio_serve_queue(dev, index, &v->chain, tx_packet, v);
		rx_flush(v);
	} else if (index == VSOCK_QUEUE_RX) {
		rx_flush(v);
		if (v->rx_starved) {
			v->rx_starved = false;
			for (struct vsock_conn *c = LIST_FIRST(&v->all); c; c = LIST_NEXT(c, all)) {
				if (c->rx_starved && !c->dead) {
					c->rx_starved = false;
					conn_watch(c);
				}
			}
		}
	}
	/* The event queue only holds buffers for events we never send. */
	reap(v);
	listen_resume(v);
}

/* Every connection ends, without RST: the guest forgot them. */
static void kill_all(struct virtio_vsock *v)
{
	for (struct vsock_conn *c = LIST_FIRST(&v->all), *next; c; c = next) {
		next = LIST_NEXT(c, all);   /* c may be freed */
		conn_kill(c, false);
	}
	v->rst_first = v->rst_n = 0;
	v->rx_starved = false;
	reap(v);
}

static void vsock_reset(struct virtio_mmio_dev *dev)
{
	kill_all(dev->opaque);
}

static const struct virtio_mmio_ops vsock_ops = {
	.queue_notify = vsock_notify,
	.reset = vsock_reset,
};

int virtio_vsock_init(struct virtio_vsock *v, const struct guest_mem *gm, uint64_t cid, const char *path,
		      virtio_mmio_irq_fn irq, void *irq_opaque, struct gr_error *err)
{
	memset(v, 0, sizeof(*v));
	v->listen_fd = -1;
	v->sock = SOCK_FILE_NONE;
	LIST_INIT(&v->all);
	TAILQ_INIT(&v->ctrl);
	if (cid < VSOCK_MIN_GUEST_CID || cid >= 0xFFFFFFFFull)
		return gr_error_set(err, EINVAL, "vsock: cid %" PRIu64 " is out of range (3 to 4294967294)", cid);
	v->guest_cid = cid;
	v->config_cid = htole64(cid);
	v->next_local_port = VSOCK_LOCAL_PORT_BASE;
	struct virtio_mmio_params p = {
		.device_id = VIRTIO_ID_VSOCK, .features = 0, .num_queues = 3, .queue_num_max = 0,
		.config_size = sizeof(v->config_cid), .config = &v->config_cid, .ops = &vsock_ops, .opaque = v,
		.irq = irq, .irq_opaque = irq_opaque,
	};
	int r = virtio_mmio_init(&v->mmio, gm, &p, err);
	if (r < 0)
		return gr_error_prefix(err, "vsock");
	int fd = sock_file_listen(&v->sock, "vsock socket", path, 64, err);
	if (fd < 0)
		return fd;
	v->listen_fd = fd;
	v->listener = (struct ev_handler){ .fd = fd, .fn = listener_event };
	return 0;
}

int virtio_vsock_start(struct virtio_vsock *v, struct ev_loop *loop, pthread_mutex_t *lock, struct gr_error *err)
{
	v->listener.lock = lock;
	int r = ev_loop_add(loop, &v->listener, EPOLLIN, err);
	if (r < 0)
		return gr_error_prefix(err, "vsock socket %s", v->sock.path);
	v->loop = loop;
	return 0;
}

void virtio_vsock_close(struct virtio_vsock *v)
{
	while (!LIST_EMPTY(&v->all)) {
		LIST_FIRST(&v->all)->dead = true;
		conn_free(LIST_FIRST(&v->all));
	}
	if (v->listen_fd >= 0) {
		if (v->loop)
			ev_loop_del(v->loop, &v->listener);
		close(v->listen_fd);
	}
	v->listen_fd = -1;
	v->loop = NULL;
	sock_file_remove(&v->sock);
}

size_t virtio_vsock_connections(const struct virtio_vsock *v)
{
	return v->n_conns;
}
