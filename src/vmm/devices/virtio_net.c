/* virtio-net over a tap: the TX and RX paths, feature negotiation, the
 * I/O-thread wiring (see virtio_net.h for the model). */
#include "vmm/devices/virtio_net.h"
#include "vmm/devices/tap.h"
#include "common/cleanup.h"

#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define RX_BUF_BYTES (VIRTIO_NET_HDR_LEN + VIRTIO_NET_FRAME_MAX + 1) /* +1: a longer frame shows */

_Static_assert(sizeof(struct virtio_net_hdr_v1) == VIRTIO_NET_HDR_LEN, "virtio_net_hdr_v1 is 12 bytes");
_Static_assert(VIRTIO_NET_HDR_LEN == TAP_VNET_HDR_LEN, "the tap's vnet header is the virtio 1.x header");

/* ---- configuration ---- */

int virtio_net_parse_mac(const char *s, uint8_t mac[6])
{
	if (strlen(s) != 17)
		return -EINVAL;
	uint8_t m[6];
	for (int i = 0; i < 6; i++) {
		const char *p = s + 3 * i;
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || (i < 5 && p[2] != ':'))
			return -EINVAL;
		char hex[3] = { p[0], p[1], 0 };
		m[i] = (uint8_t)strtoul(hex, NULL, 16);
	}
	if (m[0] & 1)
		return -EINVAL;   /* multicast (and broadcast) */
	if (!(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]))
		return -EINVAL;
	memcpy(mac, m, 6);
	return 0;
}

void virtio_net_default_mac(const char *tap, unsigned index, uint8_t mac[6])
{
	uint32_t h = 2166136261u;          /* FNV-1a */
	for (const char *p = tap; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h ^= h >> 16;
	mac[0] = 0x02;                      /* locally administered, unicast */
	mac[1] = 0x67;                      /* "gr" */
	mac[2] = 0x72;
	mac[3] = (uint8_t)(h >> 8);
	mac[4] = (uint8_t)h;
	mac[5] = (uint8_t)index;
}

int virtio_net_parse_spec(const char *spec, struct virtio_net_spec *out, struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	bool has_tap = false;
	const char *p = spec;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		const char *val = eq ? eq + 1 : NULL;
		size_t vlen = eq ? len - klen - 1 : 0;
		if (len == 0)
			return gr_error_set(err, EINVAL, "empty option (expected tap=IF[,mac=MAC])");
		if (!val)
			return gr_error_set(err, EINVAL, "\"%.*s%s\" is not key=value (expected tap=IF[,mac=MAC])",
					    (int)(len > 32 ? 32 : len), p, len > 32 ? "..." : "");
		if (klen == 3 && strncmp(p, "tap", 3) == 0) {
			if (has_tap)
				return gr_error_set(err, EINVAL, "tap= given twice");
			if (vlen == 0)
				return gr_error_set(err, EINVAL, "tap= needs an interface name");
			if (vlen >= IFNAMSIZ)
				return gr_error_set(err, EINVAL, "interface name \"%.*s%s\" is longer than %d bytes",
						    (int)(vlen > 20 ? 20 : vlen), val, vlen > 20 ? "..." : "", IFNAMSIZ - 1);
			memcpy(out->tap, val, vlen);
			out->tap[vlen] = 0;
			int r = tap_check_name(out->tap, err);
			if (r < 0)
				return r;
			has_tap = true;
		} else if (klen == 3 && strncmp(p, "mac", 3) == 0) {
			if (out->has_mac)
				return gr_error_set(err, EINVAL, "mac= given twice");
			char m[18] = { 0 };
			if (vlen >= sizeof(m) || (memcpy(m, val, vlen), virtio_net_parse_mac(m, out->mac) < 0))
				return gr_error_set(err, EINVAL,
						    "bad MAC \"%.*s%s\" (expected six hex pairs like 02:00:00:12:34:56, unicast, not all zero)",
						    (int)(vlen > 24 ? 24 : vlen), val, vlen > 24 ? "..." : "");
			out->has_mac = true;
		} else {
			return gr_error_set(err, EINVAL, "unknown option \"%.*s%s\" (expected tap=IF[,mac=MAC])",
					    (int)(klen > 32 ? 32 : klen), p, klen > 32 ? "..." : "");
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	if (!has_tap)
		return gr_error_set(err, EINVAL, "no tap= (expected tap=IF[,mac=MAC])");
	return 0;
}

/* ---- the I/O thread ---- */

static uint32_t wanted_events(const struct virtio_net *net)
{
	if (net->backend_gone)
		return 0;
	uint32_t ev = 0;
	if (net->active && !net->rx_waiting && !net->rx_broken)
		ev |= EPOLLIN;
	if (net->tx_waiting)
		ev |= EPOLLOUT;
	return ev;
}

static void update_events(struct virtio_net *net)
{
	uint32_t ev = wanted_events(net);
	if (ev == net->io_events)
		return;
	net->io_events = ev;
	if (net->io_registered) {
		struct gr_error err;
		(void)ev_loop_mod(net->loop, &net->io, ev, &err); /* EBADF/ENOMEM only: nothing better to do */
	}
}

/* The tap failed or went away (deleted interface: EPOLLERR, EBADFD): link
 * down, stop watching; transmitted frames are dropped from now on. */
static void backend_lost(struct virtio_net *net)
{
	if (net->backend_gone)
		return;
	net->backend_gone = true;
	if (net->io_registered) {
		ev_loop_del(net->loop, &net->io);
		net->io_registered = false;
	}
	net->io_events = 0;
	net->config.status = htole16(0);
	virtio_mmio_config_changed(&net->mmio);
}

/* ---- TX ---- */

static bool has(const struct virtio_net *net, unsigned bit)
{
	return virtio_mmio_has_feature(&net->mmio, bit);
}

/* Whether the driver's header only asks for what it negotiated. */
static bool tx_header_ok(const struct virtio_net *net, const struct virtio_net_hdr_v1 *h, uint64_t frame_len)
{
	if (h->flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		return false;
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (!has(net, VIRTIO_NET_F_CSUM))
			return false;
		uint64_t end = (uint64_t)le16toh(h->csum_start) + le16toh(h->csum_offset) + 2;
		if (end > frame_len)
			return false;
	}
	uint8_t gso = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
	if (gso == VIRTIO_NET_HDR_GSO_NONE)
		return !(h->gso_type & VIRTIO_NET_HDR_GSO_ECN);
	if (gso == VIRTIO_NET_HDR_GSO_TCPV4 && !has(net, VIRTIO_NET_F_HOST_TSO4))
		return false;
	if (gso == VIRTIO_NET_HDR_GSO_TCPV6 && !has(net, VIRTIO_NET_F_HOST_TSO6))
		return false;
	if (gso != VIRTIO_NET_HDR_GSO_TCPV4 && gso != VIRTIO_NET_HDR_GSO_TCPV6)
		return false;     /* UDP (UFO) is not offered */
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) && !has(net, VIRTIO_NET_F_HOST_ECN))
		return false;
	return le16toh(h->gso_size) != 0 && (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
}

/* Sends one chain. 0: done (sent, dropped or refused: the chain goes back),
 * -EAGAIN: the tap is full, leave the chain on the ring. */
static int tx_one(struct virtio_net *net, const struct vq_chain *c)
{
	if (c->write_len || c->read_len < VIRTIO_NET_HDR_LEN + VIRTIO_NET_FRAME_MIN ||
	    c->read_len - VIRTIO_NET_HDR_LEN > VIRTIO_NET_FRAME_MAX) {
		net->tx_errors++;
		return 0;
	}
	uint64_t frame_len = c->read_len - VIRTIO_NET_HDR_LEN;
	/* One copy of the header (it may span buffers): checked, then sent. */
	struct virtio_net_hdr_v1 h;
	uint8_t *hp = (uint8_t *)&h;
	size_t got = 0, i = 0, skip = 0;
	for (; i < c->n && got < VIRTIO_NET_HDR_LEN; i++) {
		size_t take = c->bufs[i].len;
		if (take > VIRTIO_NET_HDR_LEN - got)
			take = VIRTIO_NET_HDR_LEN - got;
		memcpy(hp + got, c->bufs[i].host, take);
		got += take;
		skip = take;
	}
	if (!tx_header_ok(net, &h, frame_len)) {
		net->tx_errors++;
		return 0;
	}
	h.num_buffers = 0;
	int cnt = 0;
	net->iov[cnt++] = (struct iovec){ .iov_base = &h, .iov_len = sizeof(h) };
	/* The rest of the buffer the header ended in, then the following ones. */
	if (i > 0 && skip < c->bufs[i - 1].len)
		net->iov[cnt++] = (struct iovec){ .iov_base = c->bufs[i - 1].host + skip,
						  .iov_len = c->bufs[i - 1].len - skip };
	for (; i < c->n; i++)
		if (c->bufs[i].len)
			net->iov[cnt++] = (struct iovec){ .iov_base = c->bufs[i].host, .iov_len = c->bufs[i].len };
	if (cnt > IOV_MAX) {
		net->tx_errors++;
		return 0;
	}
	ssize_t n;
	do
		n = writev(net->fd, net->iov, cnt);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -EAGAIN;
	if (n != (ssize_t)(VIRTIO_NET_HDR_LEN + frame_len)) {
		net->tx_dropped++;   /* tap down (EIO), gone, or the kernel refused the frame (EINVAL) */
		return 0;
	}
	net->tx_packets++;
	net->tx_bytes += frame_len;
	return 0;
}

static void tx_process(struct virtio_net *net)
{
	struct virtio_mmio_dev *dev = &net->mmio;
	struct virtqueue *vq = virtio_mmio_queue(dev, VIRTIO_NET_TXQ);
	if (net->tx_waiting || !vq->ready)
		return;
	uint16_t old_used = vq->used_idx;
	bool pushed = false;
	for (uint32_t k = 0; k < vq->size; k++) {
		int r = vq_pop(dev->gm, vq, &net->chain);
		if (r == 0)
			break;
		if (r < 0) {
			virtio_mmio_set_needs_reset(dev);
			break;
		}
		if (tx_one(net, &net->chain) == -EAGAIN) {
			vq_unpop(vq, 1);
			net->tx_waiting = true;
			break;
		}
		if (vq_push(dev->gm, vq, net->chain.head, 0) < 0) {
			virtio_mmio_set_needs_reset(dev);
			break;
		}
		pushed = true;
	}
	if (pushed)
		virtio_mmio_signal_used(dev, VIRTIO_NET_TXQ, old_used);
}

/* ---- RX ---- */

/* Copies src into the writable part of c from byte `at`; returns how much fitted. */
static size_t chain_fill(const struct vq_chain *c, size_t at, const uint8_t *src, size_t len)
{
	size_t done = 0, pos = 0;
	for (size_t i = 0; i < c->n && done < len; i++) {
		const struct vq_buf *b = &c->bufs[i];
		if (pos + b->len > at) {
			size_t off = at > pos ? at - pos : 0;
			size_t take = b->len - off;
			if (take > len - done)
				take = len - done;
			memcpy(b->host + off, src + done, take);
			done += take;
			at += take;
		}
		pos += b->len;
	}
	return done;
}

/* The host address of writable byte `at` of c (at < c->write_len). */
static uint8_t *chain_byte(const struct vq_chain *c, size_t at)
{
	size_t pos = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (at < pos + c->bufs[i].len)
			return c->bufs[i].host + (at - pos);
		pos += c->bufs[i].len;
	}
	return NULL;
}

enum { RX_DELIVERED, RX_NO_BUFFERS, RX_DROPPED, RX_BROKEN };

/* Puts the pending frame into receive chains. */
static int rx_deliver(struct virtio_net *net)
{
	struct virtio_mmio_dev *dev = &net->mmio;
	struct virtqueue *vq = virtio_mmio_queue(dev, VIRTIO_NET_RXQ);
	bool mrg = has(net, VIRTIO_NET_F_MRG_RXBUF);
	size_t len = net->rx_len, done = 0;
	uint16_t n = 0;
	uint8_t *nb[2] = { NULL, NULL };    /* num_buffers in the first chain */
	if (!mrg) {
		uint16_t one = htole16(1);
		memcpy(net->rx_buf + offsetof(struct virtio_net_hdr_v1, num_buffers), &one, 2);
	}
	while (done < len) {
		if (n >= vq->size) {            /* cannot happen: each chain takes >= 12 bytes */
			vq_unpop(vq, n);
			return RX_NO_BUFFERS;
		}
		int r = vq_pop(dev->gm, vq, &net->chain);
		if (r < 0) {
			virtio_mmio_set_needs_reset(dev);
			net->rx_broken = true;
			return RX_BROKEN;
		}
		if (r == 0) {
			vq_unpop(vq, n);
			return RX_NO_BUFFERS;
		}
		n++;
		const struct vq_chain *c = &net->chain;
		if (c->read_len || c->write_len < VIRTIO_NET_HDR_LEN) {
			/* The driver broke 5.1.6.3.1: nothing sensible can follow. */
			vq_unpop(vq, n);
			virtio_mmio_set_needs_reset(dev);
			net->rx_broken = true;
			net->rx_errors++;
			return RX_BROKEN;
		}
		if (!mrg && c->write_len < len) {
			vq_unpop(vq, 1);        /* the next frame may fit */
			net->rx_dropped++;
			return RX_DROPPED;
		}
		if (n == 1 && mrg) {
			nb[0] = chain_byte(c, offsetof(struct virtio_net_hdr_v1, num_buffers));
			nb[1] = chain_byte(c, offsetof(struct virtio_net_hdr_v1, num_buffers) + 1);
		}
		size_t put = chain_fill(c, 0, net->rx_buf + done, len - done);
		net->used[n - 1] = (struct vq_used){ .head = c->head, .len = (uint32_t)put };
		done += put;
	}
	if (mrg) {
		*nb[0] = (uint8_t)n;
		*nb[1] = (uint8_t)(n >> 8);
	}
	if (vq_push_n(dev->gm, vq, net->used, n) < 0) {
		virtio_mmio_set_needs_reset(dev);
		net->rx_broken = true;
		return RX_BROKEN;
	}
	net->rx_packets++;
	net->rx_bytes += len - VIRTIO_NET_HDR_LEN;
	return RX_DELIVERED;
}

/* Delivers the pending frame, then reads and delivers up to `reads` more. */
static void rx_process(struct virtio_net *net, unsigned reads)
{
	struct virtio_mmio_dev *dev = &net->mmio;
	struct virtqueue *vq = virtio_mmio_queue(dev, VIRTIO_NET_RXQ);
	uint16_t old_used = vq->used_idx;
	bool pushed = false;
	for (;;) {
		if (!net->active || net->rx_broken || net->backend_gone)
			break;
		if (!net->rx_len) {
			if (reads == 0)
				break;
			reads--;
			ssize_t n = read(net->fd, net->rx_buf, RX_BUF_BYTES);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {           /* EBADFD: the interface was deleted; 0: a closed peer */
				backend_lost(net);
				break;
			}
			if (n < (ssize_t)(VIRTIO_NET_HDR_LEN + VIRTIO_NET_FRAME_MIN)) {
				net->rx_errors++;
				continue;
			}
			if (n > (ssize_t)(VIRTIO_NET_HDR_LEN + VIRTIO_NET_FRAME_MAX)) {
				net->rx_dropped++;
				continue;
			}
			net->rx_len = (uint32_t)n;
		}
		int r = rx_deliver(net);
		if (r == RX_NO_BUFFERS) {
			net->rx_waiting = true;
			break;
		}
		net->rx_len = 0;
		if (r == RX_BROKEN)
			break;
		if (r == RX_DELIVERED)
			pushed = true;
	}
	if (pushed)
		virtio_mmio_signal_used(dev, VIRTIO_NET_RXQ, old_used);
}

/* ---- the transport's callbacks ---- */

static void net_notify(struct virtio_mmio_dev *dev, uint32_t index)
{
	struct virtio_net *net = dev->opaque;
	if (index == VIRTIO_NET_TXQ) {
		tx_process(net);
	} else if (index == VIRTIO_NET_RXQ && net->rx_waiting) {
		/* New buffers: the waiting frame goes now, the I/O thread reads the rest. */
		net->rx_waiting = false;
		rx_process(net, 0);
	}
	update_events(net);
}

static uint32_t tun_offloads_for(const struct virtio_net *net)
{
	uint32_t t = 0;
	if (!has(net, VIRTIO_NET_F_GUEST_CSUM))
		return 0;
	t |= TUN_F_CSUM;
	if (has(net, VIRTIO_NET_F_GUEST_TSO4))
		t |= TUN_F_TSO4;
	if (has(net, VIRTIO_NET_F_GUEST_TSO6))
		t |= TUN_F_TSO6;
	if (has(net, VIRTIO_NET_F_GUEST_ECN) && (t & (TUN_F_TSO4 | TUN_F_TSO6)))
		t |= TUN_F_TSO_ECN;
	return t & net->tap_offloads;
}

static int net_set_offload(struct virtio_net *net, uint32_t t)
{
	if (t == net->tun_offloads)
		return 0;
	int r = net->set_offload ? net->set_offload(net->fd, t) : 0;
	if (r == 0)
		net->tun_offloads = t;
	return r;
}

static void net_activate(struct virtio_mmio_dev *dev)
{
	struct virtio_net *net = dev->opaque;
	/* Only what the tap accepted at setup was offered: a failure means it
	 * went away (a frame it could not take would be worse than no network). */
	if (net_set_offload(net, tun_offloads_for(net)) < 0) {
		virtio_mmio_set_needs_reset(dev);
		return;
	}
	net->active = true;
	update_events(net);
}

static void net_reset(struct virtio_mmio_dev *dev)
{
	struct virtio_net *net = dev->opaque;
	if (net->rx_len)
		net->rx_dropped++;
	net->rx_len = 0;
	net->active = net->rx_waiting = net->rx_broken = net->tx_waiting = false;
	(void)net_set_offload(net, 0);   /* retried at the next DRIVER_OK if it failed */
	update_events(net);
}

static const struct virtio_mmio_ops net_ops = {
	.queue_notify = net_notify,
	.activate = net_activate,
	.reset = net_reset,
};

void virtio_net_handle_io(struct virtio_net *net, uint32_t events)
{
	if (events & (EPOLLERR | EPOLLHUP)) {
		backend_lost(net);
		/* Chains left waiting for EPOLLOUT go back now (dropped), or the
		 * driver would wait for them for ever. */
		if (net->tx_waiting) {
			net->tx_waiting = false;
			tx_process(net);
		}
		return;
	}
	if (events & EPOLLOUT) {
		net->tx_waiting = false;
		tx_process(net);
	}
	if (events & EPOLLIN)
		rx_process(net, VIRTIO_NET_RX_BUDGET);
	update_events(net);
}

static void net_io(struct ev_handler *h, uint32_t events)
{
	struct virtio_net *net = (struct virtio_net *)(void *)((uint8_t *)h - offsetof(struct virtio_net, io));
	virtio_net_handle_io(net, events);
}

/* ---- set-up ---- */

int virtio_net_init(struct virtio_net *net, const struct guest_mem *gm, int fd, const char *name,
		    const uint8_t mac[6], uint32_t tap_offloads, virtio_mmio_irq_fn irq, void *irq_opaque,
		    struct gr_error *err)
{
	memset(net, 0, sizeof(*net));
	net->fd = fd;
	snprintf(net->name, sizeof(net->name), "%s", name);
	net->tap_offloads = tap_offloads & TAP_OFFLOADS_ALL;
	net->set_offload = tap_set_offload;
	net->io = (struct ev_handler){ .fd = fd, .fn = net_io };
	if (!(net->rx_buf = malloc(RX_BUF_BYTES)))
		return gr_error_set(err, ENOMEM, "net %s: out of memory", name);
	memcpy(net->config.mac, mac, 6);
	net->config.status = htole16(VIRTIO_NET_S_LINK_UP);
	net->config.max_virtqueue_pairs = htole16(1);
	uint64_t f = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) | (1ULL << VIRTIO_NET_F_MRG_RXBUF);
	if (net->tap_offloads & TUN_F_CSUM) {
		f |= (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM);
		if (net->tap_offloads & TUN_F_TSO4)
			f |= (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO4);
		if (net->tap_offloads & TUN_F_TSO6)
			f |= (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_TSO6);
		if ((net->tap_offloads & TUN_F_TSO_ECN) && (net->tap_offloads & (TUN_F_TSO4 | TUN_F_TSO6)))
			f |= (1ULL << VIRTIO_NET_F_HOST_ECN) | (1ULL << VIRTIO_NET_F_GUEST_ECN);
	}
	struct virtio_mmio_params p = {
		.device_id = VIRTIO_ID_NET, .features = f, .num_queues = 2, .queue_num_max = 0,
		.config_size = sizeof(net->config), .config = &net->config, .ops = &net_ops, .opaque = net,
		.irq = irq, .irq_opaque = irq_opaque,
	};
	int r = virtio_mmio_init(&net->mmio, gm, &p, err);
	if (r < 0)
		return gr_error_prefix(err, "net %s", name);
	return 0;
}

int virtio_net_open(struct virtio_net *net, const struct guest_mem *gm, const struct virtio_net_spec *spec,
		    unsigned index, virtio_mmio_irq_fn irq, void *irq_opaque, struct gr_error *err)
{
	memset(net, 0, sizeof(*net));
	net->fd = -1;
	int fd;
	uint32_t offloads;
	int r = tap_open(spec->tap, &fd, &offloads, err);
	if (r < 0)
		return r;
	uint8_t mac[6];
	if (spec->has_mac)
		memcpy(mac, spec->mac, 6);
	else
		virtio_net_default_mac(spec->tap, index, mac);
	return virtio_net_init(net, gm, fd, spec->tap, mac, offloads, irq, irq_opaque, err);
}

int virtio_net_attach(struct virtio_net *net, struct ev_loop *loop, pthread_mutex_t *lock, struct gr_error *err)
{
	net->loop = loop;
	net->io.lock = lock;
	net->io_events = 0;
	int r = ev_loop_add(loop, &net->io, 0, err);
	if (r < 0)
		return gr_error_prefix(err, "net %s", net->name);
	net->io_registered = true;
	return 0;
}

void virtio_net_close(struct virtio_net *net)
{
	if (net->io_registered)
		ev_loop_del(net->loop, &net->io);
	net->io_registered = false;
	if (net->fd >= 0)
		close(net->fd);
	net->fd = -1;
	free(net->rx_buf);
	net->rx_buf = NULL;
}
