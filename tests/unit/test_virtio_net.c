/* Unit tests for src/vmm/devices/virtio_net.c and tap.c: the --net spec
 * (hostile strings too), MACs, feature negotiation and the offloads handed
 * to the tap, TX and RX through crafted rings in a guest_mem. The tap is a
 * socketpair(AF_UNIX, SOCK_SEQPACKET) (frame boundaries kept, non-blocking);
 * tap_open itself is tried on a real tap inside a private network namespace
 * of a child process (skipped without CAP_NET_ADMIN). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/devices/tap.h"
#include "vmm/devices/virtio_net.h"
#include "vq_fixture.h"

#define RAM      (4ULL << 20)
#define QSZ      8
#define RX_DESC  0x10000ULL
#define RX_AVAIL 0x11000ULL
#define RX_USED  0x12000ULL
#define TX_DESC  0x13000ULL
#define TX_AVAIL 0x14000ULL
#define TX_USED  0x15000ULL
#define BUF      0x100000ULL      /* frames: 1 MiB onwards */

static const uint8_t MAC[6] = { 0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc };

struct fx {
	struct guest_mem gm;
	struct virtio_net net;
	int peer;                     /* the host side of the "tap" */
	int irq_raises;
	uint16_t rx_avail, tx_avail;
	uint32_t offload_calls[8];
	int n_offload_calls;
	int offload_fail;
};

static struct fx *current;

static void on_irq(void *opaque, bool level)
{
	struct fx *f = opaque;
	if (level)
		f->irq_raises++;
}

static int fake_set_offload(int fd, uint32_t flags)
{
	(void)fd;
	if (current->n_offload_calls < 8)
		current->offload_calls[current->n_offload_calls++] = flags;
	return current->offload_fail ? -ENODEV : 0;
}

static int fx_open(void **state, uint32_t offloads)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct gr_error err = { 0 };
	if (!f || gm_create(&f->gm, RAM, &err) < 0)
		return -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (virtio_net_init(&f->net, &f->gm, sv[0], "test0", MAC, offloads, on_irq, f, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	f->peer = sv[1];
	f->net.set_offload = fake_set_offload;
	current = f;
	*state = f;
	return 0;
}

static int fx_setup(void **state) { return fx_open(state, TAP_OFFLOADS_ALL); }
static int fx_setup_plain(void **state) { return fx_open(state, 0); }

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	virtio_net_close(&f->net);
	if (f->peer >= 0)
		close(f->peer);
	gm_destroy(&f->gm);
	free(f);
	return 0;
}

/* ---- the driver side ---- */

static void wr(struct fx *f, uint64_t off, uint32_t v) { vqf_wr(&f->net.mmio, off, v); }
static uint32_t rd(struct fx *f, uint64_t off) { return vqf_rd(&f->net.mmio, off); }

/* Negotiates VERSION_1 + features (low word), sets up both queues, DRIVER_OK. */
static void driver_up(struct fx *f, uint32_t features)
{
	wr(f, VIRTIO_MMIO_STATUS, 0);
	f->rx_avail = f->tx_avail = 0;
	assert_true(vqf_negotiate(&f->net.mmio, 1ULL << 32 | features) & VIRTIO_STATUS_FEATURES_OK);
	vqf_queue(&f->net.mmio, VIRTIO_NET_RXQ, QSZ, RX_DESC, RX_AVAIL, RX_USED);
	vqf_queue(&f->net.mmio, VIRTIO_NET_TXQ, QSZ, TX_DESC, TX_AVAIL, TX_USED);
	vqf_driver_ok(&f->net.mmio);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DRIVER_OK);
}

static void put_desc(struct fx *f, uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	vqf_desc(&f->gm, table, i, addr, len, flags, next);
}

/* A chain of n descriptors starting at index `first` (bufs given as
 * gpa/len/write triples), made available on the queue, then notified. */
struct seg { uint64_t gpa; uint32_t len; bool write; };

static void post(struct fx *f, uint32_t q, uint16_t first, const struct seg *s, int n, bool notify)
{
	uint64_t desc = q == VIRTIO_NET_RXQ ? RX_DESC : TX_DESC;
	uint64_t avail = q == VIRTIO_NET_RXQ ? RX_AVAIL : TX_AVAIL;
	uint16_t *idx = q == VIRTIO_NET_RXQ ? &f->rx_avail : &f->tx_avail;
	for (int i = 0; i < n; i++)
		put_desc(f, desc, (uint16_t)(first + i), s[i].gpa, s[i].len,
			 (uint16_t)((s[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			 (uint16_t)(first + i + 1));
	vqf_offer(&f->gm, avail, QSZ, idx, first);
	if (notify)
		wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

static uint16_t used_idx(struct fx *f, uint32_t q) { return vqf_used_idx(&f->gm, q == VIRTIO_NET_RXQ ? RX_USED : TX_USED); }

static void used_elem(struct fx *f, uint32_t q, uint16_t i, uint32_t *id, uint32_t *len)
{
	vqf_used_elem(&f->gm, q == VIRTIO_NET_RXQ ? RX_USED : TX_USED, QSZ, i, id, len);
}

static uint8_t *g(struct fx *f, uint64_t gpa) { return gm_ptr(&f->gm, gpa, 1); }

static void put_hdr(struct fx *f, uint64_t gpa, uint8_t flags, uint8_t gso, uint16_t gso_size, uint16_t cs,
		    uint16_t co)
{
	struct virtio_net_hdr_v1 h = { .flags = flags, .gso_type = gso, .gso_size = gso_size,
				       .csum_start = cs, .csum_offset = co, .num_buffers = 0 };
	assert_int_equal(gm_write(&f->gm, gpa, &h, sizeof(h)), 0);
}

static void put_frame(struct fx *f, uint64_t gpa, uint32_t len, uint8_t seed)
{
	uint8_t *p = gm_ptr(&f->gm, gpa, len);
	assert_non_null(p);
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* What the "tap" received: its length, or -1 when nothing. */
static ssize_t peer_recv(struct fx *f, uint8_t *buf, size_t len)
{
	ssize_t n = recv(f->peer, buf, len, MSG_DONTWAIT);
	return n < 0 ? -1 : n;
}

/* ---- configuration ---- */

static void test_parse_spec(void **state)
{
	(void)state;
	struct virtio_net_spec s;
	struct gr_error err = { 0 };
	assert_int_equal(virtio_net_parse_spec("tap=tap0", &s, &err), 0);
	assert_string_equal(s.tap, "tap0");
	assert_false(s.has_mac);
	assert_int_equal(virtio_net_parse_spec("mac=02:00:00:AA:bb:0c,tap=gr-vm7-0", &s, &err), 0);
	assert_string_equal(s.tap, "gr-vm7-0");
	assert_true(s.has_mac);
	static const uint8_t want[6] = { 2, 0, 0, 0xaa, 0xbb, 0x0c };
	assert_memory_equal(s.mac, want, 6);
	assert_int_equal(virtio_net_parse_spec("tap=123456789012345", &s, &err), 0);   /* 15 bytes: the most */

	static const struct { const char *spec, *msg; } bad[] = {
		{ "", "empty option" },
		{ ",", "empty option" },
		{ "tap=t,", "empty option" },
		{ ",tap=t", "empty option" },
		{ "tap0", "\"tap0\" is not key=value" },
		{ "tap", "is not key=value" },
		{ "tap=", "tap= needs an interface name" },
		{ "tap=a,tap=b", "tap= given twice" },
		{ "tap=1234567890123456", "longer than 15 bytes" },
		{ "tap=a/b", "not a valid interface name" },
		{ "tap=a:1", "not a valid interface name" },
		{ "tap=a b", "not a valid interface name" },
		{ "tap=a\tb", "not a valid interface name" },
		{ "tap=..", "not a valid interface name" },
		{ "tap=.", "not a valid interface name" },
		{ "mac=02:00:00:00:00:01", "no tap=" },
		{ "tap=t,mac=zz", "bad MAC \"zz\"" },
		{ "tap=t,mac=", "bad MAC \"\"" },
		{ "tap=t,mac=01:00:5e:00:00:01", "bad MAC" },        /* multicast */
		{ "tap=t,mac=ff:ff:ff:ff:ff:ff", "bad MAC" },        /* broadcast */
		{ "tap=t,mac=00:00:00:00:00:00", "bad MAC" },
		{ "tap=t,mac=02:00:00:00:00:0g", "bad MAC" },
		{ "tap=t,mac=02-00-00-00-00-01", "bad MAC" },
		{ "tap=t,mac=02:00:00:00:00:011", "bad MAC" },
		{ "tap=t,mac=02:00:00:00:00", "bad MAC" },
		{ "tap=t,mac=2:00:00:00:00:01:", "bad MAC" },
		{ "tap=t,mac=+2:00:00:00:00:01", "bad MAC" },
		{ "tap=t,mac=02:00:00:00:00:01,mac=02:00:00:00:00:02", "mac= given twice" },
		{ "tap=t,foo=1", "unknown option \"foo\"" },
		{ "tap=t,TAP=u", "unknown option \"TAP\"" },
		{ "=t", "unknown option \"\"" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(virtio_net_parse_spec(bad[i].spec, &s, &err), -EINVAL);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("spec \"%s\": message \"%s\" lacks \"%s\"", bad[i].spec, err.msg, bad[i].msg);
	}
	/* Long and binary input: a clear error, no overflow. */
	char big[4096];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	memcpy(big, "tap=", 4);
	assert_int_equal(virtio_net_parse_spec(big, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "longer than 15 bytes"));
	memcpy(big, "tap=t,mac=", 10);
	assert_int_equal(virtio_net_parse_spec(big, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bad MAC"));
	assert_int_equal(virtio_net_parse_spec("tap=t\xff\x01", &s, &err), 0);   /* bytes the kernel takes too */
}

static void test_mac(void **state)
{
	(void)state;
	uint8_t m[6], m2[6];
	assert_int_equal(virtio_net_parse_mac("52:54:00:12:34:56", m), 0);
	assert_int_equal(m[5], 0x56);
	assert_int_equal(virtio_net_parse_mac("53:54:00:12:34:56", m), -EINVAL);
	virtio_net_default_mac("tap0", 0, m);
	virtio_net_default_mac("tap0", 0, m2);
	assert_memory_equal(m, m2, 6);                 /* deterministic */
	assert_int_equal(m[0], 0x02);                  /* locally administered, unicast */
	assert_int_equal(m[1], 0x67);
	assert_int_equal(m[2], 0x72);
	assert_int_equal(m[5], 0);
	virtio_net_default_mac("tap0", 1, m2);
	assert_memory_not_equal(m, m2, 6);
	assert_int_equal(m2[5], 1);
	virtio_net_default_mac("tap1", 0, m2);
	assert_memory_not_equal(m, m2, 6);
	char s[18];
	snprintf(s, sizeof(s), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	assert_int_equal(virtio_net_parse_mac(s, m2), 0);   /* a valid MAC by our own rules */
}

static void test_features_and_config(void **state)
{
	struct fx *f = *state;
	assert_int_equal(f->net.mmio.device_id, VIRTIO_ID_NET);
	assert_int_equal(f->net.mmio.num_queues, 2);
	uint64_t feat = f->net.mmio.device_features;
	static const unsigned want[] = { VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MRG_RXBUF,
		VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
		VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_GUEST_ECN,
		VIRTIO_F_VERSION_1 };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_true(feat & (1ULL << want[i]));
	/* Not offered: UFO, the control queue, EVENT_IDX. */
	assert_false(feat & (1ULL << VIRTIO_NET_F_GUEST_UFO));
	assert_false(feat & (1ULL << VIRTIO_NET_F_HOST_UFO));
	assert_false(feat & (1ULL << VIRTIO_NET_F_CTRL_VQ));
	assert_false(feat & (1ULL << VIRTIO_F_EVENT_IDX));
	uint8_t cfg[10];
	for (int i = 0; i < 10; i++)
		virtio_mmio_read(&f->net.mmio, VIRTIO_MMIO_CONFIG + i, &cfg[i], 1);
	assert_memory_equal(cfg, MAC, 6);
	assert_int_equal(cfg[6] | cfg[7] << 8, VIRTIO_NET_S_LINK_UP);
	assert_int_equal(cfg[8] | cfg[9] << 8, 1);
	uint32_t v = 0xffffffff;
	virtio_mmio_read(&f->net.mmio, VIRTIO_MMIO_CONFIG + 8, &v, 4);   /* crosses the end */
	assert_int_equal(v, 0);
	/* A feature the device did not offer is refused. */
	wr(f, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_NET_F_CTRL_VQ);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	wr(f, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_false(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
}

static void test_no_offloads_without_tap_support(void **state)
{
	struct fx *f = *state;
	uint64_t feat = f->net.mmio.device_features;
	assert_true(feat & (1ULL << VIRTIO_NET_F_MAC));
	assert_true(feat & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
	for (unsigned b = VIRTIO_NET_F_CSUM; b <= VIRTIO_NET_F_HOST_UFO; b++)
		if (b != VIRTIO_NET_F_MAC)
			assert_false(feat & (1ULL << b));
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	assert_int_equal(f->n_offload_calls, 0);     /* nothing to change */
}

static void test_offloads_follow_negotiation(void **state)
{
	struct fx *f = *state;
	driver_up(f, (1u << VIRTIO_NET_F_GUEST_CSUM) | (1u << VIRTIO_NET_F_GUEST_TSO4) | (1u << VIRTIO_NET_F_GUEST_ECN));
	assert_int_equal(f->n_offload_calls, 1);
	assert_int_equal(f->offload_calls[0], TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN);
	assert_true(f->net.io_events & EPOLLIN);
	/* Reset: no offloads, nothing watched. */
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(f->n_offload_calls, 2);
	assert_int_equal(f->offload_calls[1], 0);
	assert_int_equal(f->net.io_events, 0);
	/* TSO without GUEST_CSUM (a spec violation): no offload at all. */
	driver_up(f, (1u << VIRTIO_NET_F_GUEST_TSO4) | (1u << VIRTIO_NET_F_GUEST_TSO6));
	assert_int_equal(f->n_offload_calls, 2);
	/* ECN alone: only the checksum. */
	driver_up(f, (1u << VIRTIO_NET_F_GUEST_CSUM) | (1u << VIRTIO_NET_F_GUEST_ECN));
	assert_int_equal(f->offload_calls[2], TUN_F_CSUM);
	/* The tap refuses (it went away): NEEDS_RESET, nothing watched. */
	wr(f, VIRTIO_MMIO_STATUS, 0);
	f->offload_fail = 1;
	wr(f, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_NET_F_GUEST_CSUM);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	wr(f, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
				  VIRTIO_STATUS_DRIVER_OK);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(f->net.io_events, 0);
}

/* ---- TX ---- */

static void test_tx(void **state)
{
	struct fx *f = *state;
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	put_hdr(f, BUF, 0, 0, 0, 0, 0);
	put_frame(f, BUF + 0x1000, 60, 1);
	struct seg s[] = { { BUF, 12, false }, { BUF + 0x1000, 60, false } };
	post(f, VIRTIO_NET_TXQ, 0, s, 2, true);
	uint8_t got[256];
	assert_int_equal(peer_recv(f, got, sizeof(got)), 72);
	assert_memory_equal(got + 12, g(f, BUF + 0x1000), 60);
	assert_int_equal(got[0], 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_TXQ), 1);
	uint32_t id, len;
	used_elem(f, VIRTIO_NET_TXQ, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 0);
	assert_int_equal(f->irq_raises, 1);
	/* Header and frame in one buffer; header split 5 + 7 over two buffers. */
	put_hdr(f, BUF + 0x2000, 0, 0, 0, 0, 0);
	put_frame(f, BUF + 0x2000 + 12, 100, 2);
	struct seg one[] = { { BUF + 0x2000, 112, false } };
	post(f, VIRTIO_NET_TXQ, 2, one, 1, true);
	assert_int_equal(peer_recv(f, got, sizeof(got)), 112);
	assert_memory_equal(got, g(f, BUF + 0x2000), 112);
	struct seg split[] = { { BUF + 0x2000, 5, false }, { BUF + 0x2005, 7 + 50, false },
			       { BUF + 0x2000 + 62, 0, false }, { BUF + 0x2000 + 62, 50, false } };
	post(f, VIRTIO_NET_TXQ, 3, split, 4, true);
	assert_int_equal(peer_recv(f, got, sizeof(got)), 112);
	assert_memory_equal(got, g(f, BUF + 0x2000), 112);
	assert_int_equal(f->net.tx_packets, 3);
	assert_int_equal(f->net.tx_bytes, 60 + 100 + 100);
	assert_int_equal(f->net.tx_errors, 0);
}

/* One bad TX chain: returned with length 0, nothing sent, counted. */
static void tx_refused(struct fx *f, const struct seg *s, int n)
{
	uint64_t errors = f->net.tx_errors;
	uint16_t before = used_idx(f, VIRTIO_NET_TXQ);
	post(f, VIRTIO_NET_TXQ, 0, s, n, true);
	uint8_t got[16];
	assert_int_equal(peer_recv(f, got, sizeof(got)), -1);
	assert_int_equal(used_idx(f, VIRTIO_NET_TXQ), (uint16_t)(before + 1));
	uint32_t id, len;
	used_elem(f, VIRTIO_NET_TXQ, before, &id, &len);
	assert_int_equal(len, 0);
	assert_int_equal(f->net.tx_errors, errors + 1);
	assert_false(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void test_tx_hostile(void **state)
{
	struct fx *f = *state;
	driver_up(f, (1u << VIRTIO_NET_F_MAC) | (1u << VIRTIO_NET_F_CSUM) | (1u << VIRTIO_NET_F_HOST_TSO4));
	put_hdr(f, BUF, 0, 0, 0, 0, 0);
	put_frame(f, BUF + 12, 70000, 3);
	/* No header: 8 bytes; header only; a runt frame (13 bytes). */
	tx_refused(f, (struct seg[]){ { BUF, 8, false } }, 1);
	tx_refused(f, (struct seg[]){ { BUF, 12, false } }, 1);
	tx_refused(f, (struct seg[]){ { BUF, 12 + 13, false } }, 1);
	/* Oversized: one byte over the largest frame, in one buffer and spread out. */
	tx_refused(f, (struct seg[]){ { BUF, 12 + VIRTIO_NET_FRAME_MAX + 1, false } }, 1);
	tx_refused(f, (struct seg[]){ { BUF, 40000, false }, { BUF, 40000, false } }, 2);
	/* Device-writable buffers in a TX chain: alone, or after the frame. */
	tx_refused(f, (struct seg[]){ { BUF, 100, true } }, 1);
	tx_refused(f, (struct seg[]){ { BUF, 100, false }, { BUF + 0x8000, 10, true } }, 2);
	/* Headers asking for what was not negotiated, or impossible. */
	put_hdr(f, BUF, 0x80, 0, 0, 0, 0);                                   /* unknown flag */
	tx_refused(f, (struct seg[]){ { BUF, 100, false } }, 1);
	put_hdr(f, BUF, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 80, 10);           /* csum beyond the 88-byte frame */
	tx_refused(f, (struct seg[]){ { BUF, 100, false } }, 1);
	put_hdr(f, BUF, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0xffff, 0xffff);   /* overflow-proof */
	tx_refused(f, (struct seg[]){ { BUF, 100, false } }, 1);
	put_hdr(f, BUF, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 1400, 34, 16); /* TSO6 not negotiated */
	tx_refused(f, (struct seg[]){ { BUF, 100, false } }, 1);
	put_hdr(f, BUF, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP, 1400, 34, 6);    /* UFO never offered */
	tx_refused(f, (struct seg[]){ { BUF, 100, false } }, 1);
	put_hdr(f, BUF, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 0, 34, 16);    /* gso_size 0 */
	tx_refused(f, (struct seg[]){ { BUF, 100, false } }, 1);
	put_hdr(f, BUF, 0, VIRTIO_NET_HDR_GSO_TCPV4, 1400, 0, 0);                            /* GSO without NEEDS_CSUM */
	tx_refused(f, (struct seg[]){ { BUF, 100, false } }, 1);
	put_hdr(f, BUF, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 1400, 34, 16);
	tx_refused(f, (struct seg[]){ { BUF, 100, false } }, 1);                             /* ECN not negotiated */
	put_hdr(f, BUF, 0, VIRTIO_NET_HDR_GSO_ECN, 0, 0, 0);                                 /* ECN without GSO */
	tx_refused(f, (struct seg[]){ { BUF, 100, false } }, 1);
	/* What was negotiated goes through: TSO4 with a checksum request. */
	put_hdr(f, BUF, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1400, 34, 16);
	post(f, VIRTIO_NET_TXQ, 0, (struct seg[]){ { BUF, 100, false } }, 1, true);
	uint8_t got[128];
	assert_int_equal(peer_recv(f, got, sizeof(got)), 100);
	assert_int_equal(got[1], VIRTIO_NET_HDR_GSO_TCPV4);
	/* The largest frame fits. */
	put_hdr(f, BUF, 0, 0, 0, 0, 0);
	post(f, VIRTIO_NET_TXQ, 0, (struct seg[]){ { BUF, 12 + VIRTIO_NET_FRAME_MAX, false } }, 1, true);
	uint8_t *big = malloc(70000);
	assert_int_equal(peer_recv(f, big, 70000), 12 + VIRTIO_NET_FRAME_MAX);
	free(big);
	assert_int_equal(f->net.tx_packets, 2);
	/* A descriptor outside RAM: the ring is broken, NEEDS_RESET. */
	post(f, VIRTIO_NET_TXQ, 0, (struct seg[]){ { RAM - 8, 100, false } }, 1, true);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* The tap gets the device's copy of the header, num_buffers 0 (5.1.6.2). */
static void test_tx_num_buffers_zeroed(void **state)
{
	struct fx *f = *state;
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	put_hdr(f, BUF, 0, 0, 0, 0, 0);
	put_frame(f, BUF + 12, 50, 9);
	post(f, VIRTIO_NET_TXQ, 0, (struct seg[]){ { BUF, 62, false } }, 1, true);
	uint8_t got[64];
	assert_int_equal(peer_recv(f, got, sizeof(got)), 62);
	/* num_buffers is 0 on TX whatever the driver put there. */
	struct virtio_net_hdr_v1 h = { .num_buffers = 0x1234 };
	assert_int_equal(gm_write(&f->gm, BUF, &h, sizeof(h)), 0);
	post(f, VIRTIO_NET_TXQ, 1, (struct seg[]){ { BUF, 62, false } }, 1, true);
	assert_int_equal(peer_recv(f, got, sizeof(got)), 62);
	assert_int_equal(got[10] | got[11], 0);
}

static void test_tx_backpressure(void **state)
{
	struct fx *f = *state;
	int sz = 4096;
	assert_int_equal(setsockopt(f->net.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	put_hdr(f, BUF, 0, 0, 0, 0, 0);
	put_frame(f, BUF + 12, 3000, 5);
	for (uint16_t i = 0; i < QSZ; i++)
		post(f, VIRTIO_NET_TXQ, i, (struct seg[]){ { BUF, 3012, false } }, 1, false);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	uint16_t sent = used_idx(f, VIRTIO_NET_TXQ);
	assert_true(sent < QSZ);                   /* the "tap" filled up */
	assert_true(f->net.tx_waiting);
	assert_int_equal(f->net.io_events, EPOLLIN | EPOLLOUT);
	assert_int_equal(f->net.tx_dropped, 0);
	/* A notify while waiting changes nothing: the chains stay on the ring. */
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_int_equal(used_idx(f, VIRTIO_NET_TXQ), sent);
	/* The tap drains; EPOLLOUT resumes until everything went. */
	uint8_t got[4096];
	int frames = 0;
	for (int round = 0; round < 100 && used_idx(f, VIRTIO_NET_TXQ) < QSZ; round++) {
		while (peer_recv(f, got, sizeof(got)) == 3012)
			frames++;
		virtio_net_handle_io(&f->net, EPOLLOUT);
	}
	while (peer_recv(f, got, sizeof(got)) == 3012)
		frames++;
	assert_int_equal(frames, QSZ);
	assert_int_equal(used_idx(f, VIRTIO_NET_TXQ), QSZ);
	assert_false(f->net.tx_waiting);
	assert_int_equal(f->net.io_events, EPOLLIN);
	assert_int_equal(f->net.tx_packets, QSZ);
	assert_int_equal(f->net.tx_dropped, 0);
}

/* ---- RX ---- */

/* The host sends a frame of len bytes (header included). */
static void host_send(struct fx *f, size_t len, uint8_t seed)
{
	uint8_t *b = malloc(len);
	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed + i * 3);
	if (len >= 12) {
		memset(b, 0, 12);
		b[10] = 0x77;   /* junk where num_buffers goes: the tap leaves those bytes alone */
		b[11] = 0x66;
	}
	assert_int_equal(send(f->peer, b, len, 0), (ssize_t)len);
	free(b);
}

static void check_frame(struct fx *f, uint64_t gpa, size_t off, size_t n, uint8_t seed)
{
	const uint8_t *p = gm_ptr(&f->gm, gpa, n);
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(seed + (off + i) * 3))
			fail_msg("byte %zu of the frame: %u", off + i, p[i]);
}

static void test_rx(void **state)
{
	struct fx *f = *state;
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	assert_int_equal(f->net.io_events, EPOLLIN);
	post(f, VIRTIO_NET_RXQ, 0, (struct seg[]){ { BUF, 1526, true } }, 1, true);
	post(f, VIRTIO_NET_RXQ, 1, (struct seg[]){ { BUF + 0x1000, 6, true }, { BUF + 0x2000, 1520, true } }, 2, true);
	host_send(f, 112, 1);
	host_send(f, 212, 2);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 2);
	uint32_t id, len;
	used_elem(f, VIRTIO_NET_RXQ, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 112);
	assert_int_equal(g(f, BUF)[10], 1);            /* num_buffers = 1 without MRG_RXBUF */
	assert_int_equal(g(f, BUF)[11], 0);
	check_frame(f, BUF + 12, 12, 100, 1);
	used_elem(f, VIRTIO_NET_RXQ, 1, &id, &len);
	assert_int_equal(id, 1);
	assert_int_equal(len, 212);
	assert_int_equal(g(f, BUF + 0x2000)[4], 1);   /* the header spans the two buffers */
	check_frame(f, BUF + 0x2000 + 6, 12, 200, 2);
	assert_int_equal(f->net.rx_packets, 2);
	assert_int_equal(f->net.rx_bytes, 300);
	assert_true(f->irq_raises >= 1);
}

static void test_rx_waits_for_buffers(void **state)
{
	struct fx *f = *state;
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	host_send(f, 100, 4);
	host_send(f, 120, 5);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_true(f->net.rx_waiting);
	assert_int_equal(f->net.io_events, 0);       /* EPOLLIN off: the rest waits in the tap */
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 0);
	/* A stale EPOLLIN (already on its way) does not lose the frame. */
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_int_equal(f->net.rx_dropped, 0);
	/* New buffers: the waiting frame goes on the notify, the I/O thread is back. */
	post(f, VIRTIO_NET_RXQ, 0, (struct seg[]){ { BUF, 1526, true } }, 1, true);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 1);
	assert_false(f->net.rx_waiting);
	assert_int_equal(f->net.io_events, EPOLLIN);
	check_frame(f, BUF + 12, 12, 88, 4);
	/* The second frame waits again until the next buffer. */
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_true(f->net.rx_waiting);
	post(f, VIRTIO_NET_RXQ, 1, (struct seg[]){ { BUF + 0x1000, 1526, true } }, 1, true);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 2);
	check_frame(f, BUF + 0x1000 + 12, 12, 108, 5);
	assert_int_equal(f->net.rx_packets, 2);
	/* A reset drops a waiting frame (counted) and stops watching. */
	host_send(f, 100, 6);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_true(f->net.rx_waiting);
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(f->net.rx_dropped, 1);
	assert_int_equal(f->net.io_events, 0);
}

static void test_rx_too_long_without_mrg(void **state)
{
	struct fx *f = *state;
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	post(f, VIRTIO_NET_RXQ, 0, (struct seg[]){ { BUF, 200, true } }, 1, true);
	host_send(f, 300, 1);      /* does not fit: dropped, the chain kept */
	host_send(f, 150, 2);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_int_equal(f->net.rx_dropped, 1);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 1);
	uint32_t id, len;
	used_elem(f, VIRTIO_NET_RXQ, 0, &id, &len);
	assert_int_equal(len, 150);
	check_frame(f, BUF + 12, 12, 138, 2);
	/* From the host: a runt read, and a frame longer than any (both dropped). */
	post(f, VIRTIO_NET_RXQ, 1, (struct seg[]){ { BUF + 0x1000, 1526, true } }, 1, true);
	host_send(f, 20, 3);
	host_send(f, 12 + VIRTIO_NET_FRAME_MAX + 1, 3);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_int_equal(f->net.rx_errors, 1);
	assert_int_equal(f->net.rx_dropped, 2);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 1);
}

static void test_rx_mergeable(void **state)
{
	struct fx *f = *state;
	driver_up(f, (1u << VIRTIO_NET_F_MAC) | (1u << VIRTIO_NET_F_MRG_RXBUF));
	post(f, VIRTIO_NET_RXQ, 0, (struct seg[]){ { BUF, 64, true } }, 1, true);
	post(f, VIRTIO_NET_RXQ, 1, (struct seg[]){ { BUF + 0x1000, 64, true } }, 1, true);
	host_send(f, 162, 7);
	virtio_net_handle_io(&f->net, EPOLLIN);
	/* Two buffers are not enough: nothing published, both kept. */
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 0);
	assert_true(f->net.rx_waiting);
	post(f, VIRTIO_NET_RXQ, 2, (struct seg[]){ { BUF + 0x2000, 20, true }, { BUF + 0x3000, 44, true } }, 2, true);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 3);     /* all three at once */
	uint32_t id, len;
	used_elem(f, VIRTIO_NET_RXQ, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 64);
	used_elem(f, VIRTIO_NET_RXQ, 1, &id, &len);
	assert_int_equal(id, 1);
	assert_int_equal(len, 64);
	used_elem(f, VIRTIO_NET_RXQ, 2, &id, &len);
	assert_int_equal(id, 2);
	assert_int_equal(len, 34);
	assert_int_equal(g(f, BUF)[10], 3);                  /* num_buffers */
	assert_int_equal(g(f, BUF)[11], 0);
	check_frame(f, BUF + 12, 12, 52, 7);
	check_frame(f, BUF + 0x1000, 64, 64, 7);
	check_frame(f, BUF + 0x2000, 128, 20, 7);
	check_frame(f, BUF + 0x3000, 148, 14, 7);
	/* A frame that fits one buffer: num_buffers 1. */
	post(f, VIRTIO_NET_RXQ, 4, (struct seg[]){ { BUF + 0x4000, 1000, true } }, 1, true);
	host_send(f, 60, 8);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 4);
	assert_int_equal(g(f, BUF + 0x4000)[10], 1);
	assert_int_equal(f->net.rx_packets, 2);
	assert_int_equal(f->net.rx_bytes, 150 + 48);
}

static void test_rx_bad_chains(void **state)
{
	struct fx *f = *state;
	driver_up(f, (1u << VIRTIO_NET_F_MAC) | (1u << VIRTIO_NET_F_MRG_RXBUF));
	/* A readable buffer in a receive chain: NEEDS_RESET, receiving stops. */
	post(f, VIRTIO_NET_RXQ, 0, (struct seg[]){ { BUF, 64, false }, { BUF + 0x1000, 64, true } }, 2, true);
	uint8_t before = g(f, BUF)[0];
	host_send(f, 100, 1);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(f->net.rx_broken);
	assert_int_equal(f->net.io_events, 0);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 0);
	assert_int_equal(g(f, BUF)[0], before);            /* a readable buffer is never written */
	assert_int_equal(f->net.rx_errors, 1);
	/* TX still works until the reset. */
	put_hdr(f, BUF + 0x8000, 0, 0, 0, 0, 0);
	post(f, VIRTIO_NET_TXQ, 0, (struct seg[]){ { BUF + 0x8000, 60, false } }, 1, true);
	uint8_t got[64];
	assert_int_equal(peer_recv(f, got, sizeof(got)), 60);
	/* The driver resets: receiving again. A chain shorter than the header (in
	 * the second buffer of a merged frame) breaks it the same way. */
	driver_up(f, (1u << VIRTIO_NET_F_MAC) | (1u << VIRTIO_NET_F_MRG_RXBUF));
	assert_false(f->net.rx_broken);
	assert_int_equal(f->net.io_events, EPOLLIN);
	post(f, VIRTIO_NET_RXQ, 0, (struct seg[]){ { BUF, 64, true } }, 1, true);
	post(f, VIRTIO_NET_RXQ, 1, (struct seg[]){ { BUF + 0x1000, 11, true } }, 1, true);
	host_send(f, 100, 2);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 0);
	/* A descriptor outside RAM. */
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	post(f, VIRTIO_NET_RXQ, 0, (struct seg[]){ { RAM - 100, 1526, true } }, 1, true);
	host_send(f, 100, 3);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(f->net.io_events, 0);
}

static void test_rx_before_driver_ok(void **state)
{
	struct fx *f = *state;
	/* Frames wait in the tap until the driver is up: never read before. */
	host_send(f, 100, 1);
	assert_int_equal(f->net.io_events, 0);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_int_equal(f->net.rx_len, 0);
	assert_int_equal(f->net.rx_dropped + f->net.rx_packets, 0);
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	post(f, VIRTIO_NET_RXQ, 0, (struct seg[]){ { BUF, 1526, true } }, 1, true);
	virtio_net_handle_io(&f->net, EPOLLIN);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 1);
	check_frame(f, BUF + 12, 12, 88, 1);
}

static void test_backend_lost(void **state)
{
	struct fx *f = *state;
	driver_up(f, (1u << VIRTIO_NET_F_MAC) | (1u << VIRTIO_NET_F_STATUS));
	int irqs = f->irq_raises;
	close(f->peer);                  /* a read now returns 0: the tap is gone */
	f->peer = -1;
	virtio_net_handle_io(&f->net, EPOLLIN | EPOLLHUP);
	assert_true(f->net.backend_gone);
	assert_int_equal(f->net.io_events, 0);
	uint16_t st = 0xffff;
	virtio_mmio_read(&f->net.mmio, VIRTIO_MMIO_CONFIG + 6, &st, 2);
	assert_int_equal(st, 0);         /* link down */
	assert_true(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(f->irq_raises, irqs + 1);
	/* TX still returns every chain, counted as dropped (no SIGPIPE: ignored in main). */
	put_hdr(f, BUF, 0, 0, 0, 0, 0);
	post(f, VIRTIO_NET_TXQ, 0, (struct seg[]){ { BUF, 60, false } }, 1, true);
	assert_int_equal(used_idx(f, VIRTIO_NET_TXQ), 1);
	assert_int_equal(f->net.tx_dropped, 1);
	/* A reset and DRIVER_OK do not watch a lost tap again. */
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	assert_int_equal(f->net.io_events, 0);
}

/* Through a real I/O loop: the handler, the lock and EPOLLIN on/off. */
static void test_through_the_io_loop(void **state)
{
	struct fx *f = *state;
	struct ev_loop loop;
	struct gr_error err = { 0 };
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	assert_int_equal(ev_loop_init(&loop, &err), 0);
	assert_int_equal(virtio_net_attach(&f->net, &loop, &lock, &err), 0);
	host_send(f, 100, 1);
	assert_int_equal(ev_loop_run_once(&loop, 50), 0);     /* not watched before DRIVER_OK */
	driver_up(f, 1u << VIRTIO_NET_F_MAC);
	assert_int_equal(ev_loop_run_once(&loop, 1000), 1);   /* read, no buffers: EPOLLIN off */
	assert_true(f->net.rx_waiting);
	assert_int_equal(ev_loop_run_once(&loop, 50), 0);
	post(f, VIRTIO_NET_RXQ, 0, (struct seg[]){ { BUF, 1526, true } }, 1, true);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 1);
	post(f, VIRTIO_NET_RXQ, 1, (struct seg[]){ { BUF + 0x1000, 1526, true } }, 1, true);
	host_send(f, 200, 2);
	assert_int_equal(ev_loop_run_once(&loop, 1000), 1);
	assert_int_equal(used_idx(f, VIRTIO_NET_RXQ), 2);
	check_frame(f, BUF + 0x1000 + 12, 12, 188, 2);
	assert_int_equal(pthread_mutex_trylock(&lock), 0);     /* released after the callback */
	pthread_mutex_unlock(&lock);
	virtio_net_close(&f->net);                             /* removes the handler */
	assert_int_equal(ev_loop_run_once(&loop, 50), 0);
	ev_loop_destroy(&loop);
}

/* ---- a real tap, in a private network namespace of a child ---- */

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "line %d: %s (errno %d)\n", __LINE__, #c, errno); _exit(__LINE__ % 200 + 1); } } while (0)

static int make_tun(const char *name, short flags)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = flags;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void test_real_tap(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	int fd;
	uint32_t off;
	/* Does not exist: ENODEV, named, nothing created (no privilege needed). */
	assert_int_equal(tap_open("gr-nosuch9", &fd, &off, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "gr-nosuch9: no such network interface"));
	assert_int_equal(fd, -1);
	assert_int_equal(if_nametoindex("gr-nosuch9"), 0);
	assert_int_equal(tap_open("bad/name", &fd, &off, &err), -EINVAL);
	if (access("/dev/net/tun", R_OK | W_OK) != 0)
		skip();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0)
			_exit(100);             /* no CAP_SYS_ADMIN: skipped */
		CHECK(make_tun("grtap0", IFF_TAP | IFF_NO_PI) == 0);
		CHECK(make_tun("grtun0", IFF_TUN | IFF_NO_PI) == 0);
		CHECK(make_tun("grmq0", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE) == 0);
		CHECK(tap_open("grtap0", &fd, &off, &err) == 0);
		CHECK(off == TAP_OFFLOADS_ALL);
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		int hdr = 0;
		CHECK(ioctl(fd, TUNGETVNETHDRSZ, &hdr) == 0 && hdr == 12);
		struct ifreq ifr = { 0 };
		CHECK(ioctl(fd, TUNGETIFF, &ifr) == 0);
		CHECK((ifr.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)) == (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR));
		CHECK(tap_set_offload(fd, TUN_F_CSUM | TUN_F_TSO4) == 0);
		/* Non-blocking: nothing to read is EAGAIN, not a hang. */
		char b[64];
		CHECK(read(fd, b, sizeof(b)) < 0 && (errno == EAGAIN || errno == EIO));
		int fd2;
		CHECK(tap_open("grtap0", &fd2, &off, &err) == -EBUSY);
		CHECK(strstr(err.msg, "already in use") != NULL);
		CHECK(tap_open("grtun0", &fd2, &off, &err) == -EINVAL);
		CHECK(strstr(err.msg, "not a tap interface") != NULL);
		CHECK(tap_open("grmq0", &fd2, &off, &err) == -EINVAL);
		CHECK(tap_open("lo", &fd2, &off, &err) == -EINVAL);
		close(fd);
		/* Free again once closed; the persistent tap stays (gureumd's). */
		CHECK(tap_open("grtap0", &fd, &off, &err) == 0);
		close(fd);
		CHECK(if_nametoindex("grtap0") != 0);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 100)
		skip();
	assert_int_equal(WEXITSTATUS(st), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	signal(SIGPIPE, SIG_IGN);   /* gureum-vmm's taps never raise it; a closed socketpair would */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_spec),
		cmocka_unit_test(test_mac),
		T(test_features_and_config),
		cmocka_unit_test_setup_teardown(test_no_offloads_without_tap_support, fx_setup_plain, fx_teardown),
		T(test_offloads_follow_negotiation),
		T(test_tx),
		T(test_tx_hostile),
		T(test_tx_num_buffers_zeroed),
		T(test_tx_backpressure),
		T(test_rx),
		T(test_rx_waits_for_buffers),
		T(test_rx_too_long_without_mrg),
		T(test_rx_mergeable),
		T(test_rx_bad_chains),
		T(test_rx_before_driver_ok),
		T(test_backend_lost),
		T(test_through_the_io_loop),
		cmocka_unit_test(test_real_tap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
