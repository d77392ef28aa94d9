/* Unit tests for src/vmm/devices/virtio_vsock.c: the --vsock spec, the
 * listening socket, header validation against crafted packets, credit
 * accounting both ways, and host- and guest-initiated connections driven
 * through crafted rings in a guest_mem (the test plays the guest driver
 * through virtio_mmio_write, and the host side through real unix sockets;
 * the I/O loop is run a step at a time with ev_loop_run_once, or on its own
 * thread for the teardown race). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/devices/virtio_vsock.h"
#include "vq_fixture.h"

#define RAM    (8ULL << 20)
#define QSZ    16u
#define QBASE  0x10000ULL       /* queue q: desc +q*0x4000, avail +0x1000, used +0x2000 */
#define RXBUF  0x100000ULL      /* rx buffer i at RXBUF + i * RXLEN */
#define RXLEN  0x1000u
#define TXBUF  0x200000ULL      /* tx buffer slot i at TXBUF + i * TXLEN */
#define TXLEN  0x11000u
#define CID    3u

struct fx {
	struct guest_mem gm;
	struct virtio_vsock v;
	struct ev_loop loop;
	pthread_mutex_t lock;
	char dir[64], path[108];
	uint16_t avail[3], used_seen[3];
	int irqs;
};

struct pkt {
	struct virtio_vsock_hdr h;
	uint8_t data[RXLEN];
	uint32_t len;                /* payload bytes in data */
};

static void on_irq(void *opaque, bool level)
{
	struct fx *f = opaque;
	if (level)
		f->irqs++;
}

static void wr(struct fx *f, uint64_t off, uint32_t v)
{
	pthread_mutex_lock(&f->lock);   /* what the VMM's MMIO bus does */
	vqf_wr(&f->v.mmio, off, v);
	pthread_mutex_unlock(&f->lock);
}

static uint32_t rd(struct fx *f, uint64_t off)
{
	pthread_mutex_lock(&f->lock);
	uint32_t v = vqf_rd(&f->v.mmio, off);
	pthread_mutex_unlock(&f->lock);
	return v;
}

static uint64_t qdesc(uint32_t q) { return QBASE + q * 0x4000ULL; }
static uint64_t qavail(uint32_t q) { return qdesc(q) + 0x1000; }
static uint64_t qused(uint32_t q) { return qdesc(q) + 0x2000; }

static void driver_init(struct fx *f)
{
	pthread_mutex_lock(&f->lock);
	vqf_wr(&f->v.mmio, VIRTIO_MMIO_STATUS, 0);
	vqf_negotiate(&f->v.mmio, 1ULL << 32);   /* VERSION_1 */
	for (uint32_t q = 0; q < 3; q++) {
		vqf_queue(&f->v.mmio, q, QSZ, qdesc(q), qavail(q), qused(q));
		f->avail[q] = f->used_seen[q] = 0;
	}
	vqf_driver_ok(&f->v.mmio);
	pthread_mutex_unlock(&f->lock);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

static void set_desc(struct fx *f, uint32_t q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	vqf_desc(&f->gm, qdesc(q), i, addr, len, flags, next);
}

static void make_avail(struct fx *f, uint32_t q, uint16_t head) { vqf_offer(&f->gm, qavail(q), QSZ, &f->avail[q], head); }

/* Posts n rx buffers (one descriptor of RXLEN each) and notifies. */
static void rx_post(struct fx *f, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		uint16_t i = f->avail[0] % QSZ;
		set_desc(f, 0, i, RXBUF + i * (uint64_t)RXLEN, RXLEN, VIRTQ_DESC_F_WRITE, 0);
		make_avail(f, 0, i);
	}
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

/* The next packet the device put in the rx queue; false when none. */
static bool rx_take(struct fx *f, struct pkt *p)
{
	if (vqf_used_idx(&f->gm, qused(0)) == f->used_seen[0])
		return false;
	uint32_t e[2];
	vqf_used_elem(&f->gm, qused(0), QSZ, f->used_seen[0]++, &e[0], &e[1]);
	assert_true(e[0] < QSZ);
	assert_true(e[1] >= VSOCK_HDR_BYTES && e[1] <= RXLEN);
	assert_int_equal(gm_read(&f->gm, RXBUF + e[0] * (uint64_t)RXLEN, &p->h, sizeof(p->h)), 0);
	p->len = e[1] - VSOCK_HDR_BYTES;
	assert_int_equal(p->len, p->h.len);
	assert_int_equal(gm_read(&f->gm, RXBUF + e[0] * (uint64_t)RXLEN + VSOCK_HDR_BYTES, p->data, p->len), 0);
	assert_int_equal(p->h.src_cid, VSOCK_HOST_CID);
	assert_int_equal(p->h.dst_cid, CID);
	assert_int_equal(p->h.type, VIRTIO_VSOCK_TYPE_STREAM);
	return true;
}

static struct virtio_vsock_hdr hdr(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t len)
{
	return (struct virtio_vsock_hdr){ .src_cid = CID, .dst_cid = VSOCK_HOST_CID, .src_port = src_port,
					  .dst_port = dst_port, .len = len, .type = VIRTIO_VSOCK_TYPE_STREAM, .op = op,
					  .buf_alloc = 65536 };
}

/* Sends a packet on the tx queue: the header and `chain_payload` bytes of
 * payload (which may differ from h.len, for hostile packets), the header
 * split over two descriptors when split. */
static void tx_raw(struct fx *f, const void *h, uint32_t hlen, const void *payload, uint32_t chain_payload, bool split)
{
	uint16_t slot = f->avail[1] % QSZ;
	uint64_t buf = TXBUF + slot * (uint64_t)TXLEN;
	assert_int_equal(gm_write(&f->gm, buf, h, hlen), 0);
	if (chain_payload)
		assert_int_equal(gm_write(&f->gm, buf + hlen, payload, chain_payload), 0);
	uint16_t head = (uint16_t)(slot * 2 % QSZ);   /* two descriptors per slot at most: QSZ/2 in flight */
	if (split && hlen + chain_payload > 10) {
		set_desc(f, 1, head, buf, 10, VIRTQ_DESC_F_NEXT, (uint16_t)(head + 1));
		set_desc(f, 1, (uint16_t)(head + 1), buf + 10, hlen + chain_payload - 10, 0, 0);
	} else {
		set_desc(f, 1, head, buf, hlen + chain_payload, 0, 0);
	}
	make_avail(f, 1, head);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	uint16_t used;
	assert_int_equal(gm_read(&f->gm, qused(1) + 2, &used, 2), 0);
	assert_int_equal(used, f->avail[1]);   /* served at once */
}

static void tx(struct fx *f, struct virtio_vsock_hdr h, const void *payload)
{
	tx_raw(f, &h, sizeof(h), payload, h.len, false);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct gr_error err = { 0 };
	if (!f || gm_create(&f->gm, RAM, &err) < 0)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/gr-vsock-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
	pthread_mutex_init(&f->lock, NULL);
	if (ev_loop_init(&f->loop, &err) < 0 ||
	    virtio_vsock_init(&f->v, &f->gm, CID, f->path, on_irq, f, &err) < 0 ||
	    virtio_vsock_start(&f->v, &f->loop, &f->lock, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	driver_init(f);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	ev_loop_stop(&f->loop);
	virtio_vsock_close(&f->v);
	ev_loop_destroy(&f->loop);
	struct stat st;
	assert_int_equal(stat(f->path, &st), -1);   /* the socket file is gone */
	char p[128];
	snprintf(p, sizeof(p), "%s/v.sock_1234", f->dir);
	unlink(p);
	rmdir(f->dir);
	gm_destroy(&f->gm);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return 0;
}

/* Runs the I/O loop until it has nothing for 50 ms. */
static void run_loop(struct fx *f)
{
	while (ev_loop_run_once(&f->loop, 50) == 1)
		;
}

static int unix_listen(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static int unix_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Reads exactly n bytes (or what arrives within a second). */
static ssize_t read_n(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 1000) <= 0)
			break;
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* The other end closed: end of file, or ECONNRESET when it closed with
 * bytes of ours unread. */
static bool is_eof(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	return poll(&p, 1, 1000) == 1 && (read(fd, &c, 1) == 0 || errno == ECONNRESET);
}

/* ---- the spec ---- */

static void test_parse_spec(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	uint64_t cid;
	char *path;
	assert_int_equal(virtio_vsock_parse_spec("cid=3,socket=/tmp/v.sock", &cid, &path, &err), 0);
	assert_int_equal(cid, 3);
	assert_string_equal(path, "/tmp/v.sock");
	free(path);
	assert_int_equal(virtio_vsock_parse_spec("socket=a,cid=4294967294", &cid, &path, &err), 0);
	assert_int_equal(cid, 4294967294u);
	assert_string_equal(path, "a");
	free(path);

	static const struct { const char *spec, *msg; } bad[] = {
		{ "cid=2,socket=a", "out of range" },
		{ "cid=0,socket=a", "out of range" },
		{ "cid=4294967295,socket=a", "out of range" },
		{ "cid=99999999999999999999999,socket=a", "out of range" },
		{ "cid=-3,socket=a", "not a number" },
		{ "cid=3x,socket=a", "not a number" },
		{ "cid=3", "missing socket=" },
		{ "socket=a", "missing cid=" },
		{ "cid=3,socket=a,port=5", "unknown key \"port=5\"" },
		{ "cid=3,socket=", "unknown key" },
		{ "", "missing cid=" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		path = (char *)1;
		assert_int_equal(virtio_vsock_parse_spec(bad[i].spec, &cid, &path, &err), -EINVAL);
		assert_null(path);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].spec, err.msg, bad[i].msg);
	}
	char spec[200] = "cid=3,socket=/";
	memset(spec + 14, 'x', 97);   /* 98-byte path: PATH_4294967295 would not fit */
	assert_int_equal(virtio_vsock_parse_spec(spec, &cid, &path, &err), -ENAMETOOLONG);
	assert_non_null(strstr(err.msg, "longer than 96"));
	spec[13 + 96] = 0;            /* a 96-byte path fits */
	assert_int_equal(virtio_vsock_parse_spec(spec, &cid, &path, &err), 0);
	free(path);
}

/* ---- the device and its socket ---- */

static void test_config_and_socket(void **state)
{
	struct fx *f = *state;
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
	assert_int_equal(rd(f, VIRTIO_MMIO_CONFIG), CID);
	assert_int_equal(rd(f, VIRTIO_MMIO_CONFIG + 4), 0);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	/* A second device on the same live socket is refused; a regular file too. */
	struct virtio_vsock other;
	struct gr_error err = { 0 };
	assert_true(virtio_vsock_init(&other, &f->gm, 4, f->path, on_irq, f, &err) < 0);
	assert_non_null(strstr(err.msg, "listening"));
	virtio_vsock_close(&other);
	assert_int_equal(stat(f->path, &st), 0);   /* still ours */
	char file[128];
	snprintf(file, sizeof(file), "%s/file", f->dir);
	close(open(file, O_WRONLY | O_CREAT, 0600));
	assert_int_equal(virtio_vsock_init(&other, &f->gm, 4, file, on_irq, f, &err), -EEXIST);
	virtio_vsock_close(&other);
	assert_int_equal(stat(file, &st), 0);      /* not touched */
	unlink(file);
}

/* ---- header validation ---- */

static void expect_rst(struct fx *f, uint32_t src_port, uint32_t dst_port)
{
	struct pkt p;
	assert_true(rx_take(f, &p));
	assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(p.h.src_port, src_port);
	assert_int_equal(p.h.dst_port, dst_port);
	assert_int_equal(p.len, 0);
}

static void test_bad_headers(void **state)
{
	struct fx *f = *state;
	struct pkt p;
	rx_post(f, QSZ);
	uint64_t bad0 = f->v.bad_packets;

	struct virtio_vsock_hdr h = hdr(1000, 52, VIRTIO_VSOCK_OP_REQUEST, 0);
	h.src_cid = 4;                      /* not the guest's: dropped, no answer */
	tx(f, h, NULL);
	assert_false(rx_take(f, &p));
	h.src_cid = (1ULL << 32) | CID;     /* the upper half counts too */
	tx(f, h, NULL);
	assert_false(rx_take(f, &p));

	h = hdr(1000, 52, VIRTIO_VSOCK_OP_REQUEST, 0);
	h.dst_cid = 5;                      /* not the host */
	tx(f, h, NULL);
	expect_rst(f, 52, 1000);
	h = hdr(1000, 52, VIRTIO_VSOCK_OP_REQUEST, 0);
	h.type = 2;                         /* SEQPACKET */
	tx(f, h, NULL);
	expect_rst(f, 52, 1000);

	static uint8_t big[VSOCK_MAX_PAYLOAD + 8];
	h = hdr(1000, 52, VIRTIO_VSOCK_OP_RW, VSOCK_MAX_PAYLOAD + 1);   /* oversized, and all in the chain */
	tx(f, h, big);
	expect_rst(f, 52, 1000);
	h = hdr(1000, 52, VIRTIO_VSOCK_OP_RW, 100);   /* len beyond the chain */
	tx_raw(f, &h, sizeof(h), big, 10, false);
	expect_rst(f, 52, 1000);
	h = hdr(1000, 52, VIRTIO_VSOCK_OP_RW, 0xFFFFFFFFu);
	tx_raw(f, &h, sizeof(h), big, 10, true);
	expect_rst(f, 52, 1000);
	h = hdr(1000, 52, 99, 0);           /* unknown op */
	tx(f, h, NULL);
	expect_rst(f, 52, 1000);
	h = hdr(1000, 52, VIRTIO_VSOCK_OP_INVALID, 0);
	tx(f, h, NULL);
	expect_rst(f, 52, 1000);
	h = hdr(1000, 52, VIRTIO_VSOCK_OP_SHUTDOWN, 4);   /* payload on a control op */
	tx(f, h, big);
	expect_rst(f, 52, 1000);

	/* Unknown connections: RST, except for RST itself. */
	static const uint16_t ops[] = { VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_OP_CREDIT_UPDATE,
					VIRTIO_VSOCK_OP_CREDIT_REQUEST };
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		tx(f, hdr(2000 + (uint32_t)i, 77, ops[i], 0), NULL);
		expect_rst(f, 77, 2000 + (uint32_t)i);
	}
	tx(f, hdr(2000, 77, VIRTIO_VSOCK_OP_RW, 5), "hello");
	expect_rst(f, 77, 2000);
	tx(f, hdr(2000, 77, VIRTIO_VSOCK_OP_RST, 0), NULL);
	assert_false(rx_take(f, &p));

	/* A chain shorter than a header: nothing to answer. */
	tx_raw(f, &h, 20, NULL, 0, false);
	assert_false(rx_take(f, &p));
	assert_int_equal(f->v.bad_packets - bad0, 16);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);

	/* A guest connecting where nobody listens (no PATH_52): RST. */
	tx(f, hdr(1000, 52, VIRTIO_VSOCK_OP_REQUEST, 0), NULL);
	expect_rst(f, 52, 1000);
	assert_int_equal(f->v.conns_refused, 1);
}

/* rx buffers too small for a header: the driver broke the device's contract. */
static void test_rx_buffer_too_small(void **state)
{
	struct fx *f = *state;
	uint16_t i = f->avail[0] % QSZ;
	set_desc(f, 0, i, RXBUF, 20, VIRTQ_DESC_F_WRITE, 0);
	make_avail(f, 0, i);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	tx(f, hdr(1000, 52, VIRTIO_VSOCK_OP_RESPONSE, 0), NULL);   /* wants an RST sent */
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* ---- guest-initiated ---- */

/* REQUEST from guest port gport to host port 1234 where the test listens;
 * returns the accepted host end. */
static int guest_connect(struct fx *f, uint32_t gport, uint32_t buf_alloc, int *listener)
{
	char p[128];
	snprintf(p, sizeof(p), "%s_1234", f->path);
	if (*listener < 0)
		*listener = unix_listen(p);
	struct virtio_vsock_hdr h = hdr(gport, 1234, VIRTIO_VSOCK_OP_REQUEST, 0);
	h.buf_alloc = buf_alloc;
	tx(f, h, NULL);
	struct pkt pk;
	assert_true(rx_take(f, &pk));
	assert_int_equal(pk.h.op, VIRTIO_VSOCK_OP_RESPONSE);
	assert_int_equal(pk.h.src_port, 1234);
	assert_int_equal(pk.h.dst_port, gport);
	assert_int_equal(pk.h.buf_alloc, VSOCK_BUF_ALLOC);
	assert_int_equal(pk.h.fwd_cnt, 0);
	int fd = accept4(*listener, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void test_guest_initiated(void **state)
{
	struct fx *f = *state;
	int l = -1;
	rx_post(f, QSZ);
	int host = guest_connect(f, 5000, 65536, &l);
	assert_int_equal(virtio_vsock_connections(&f->v), 1);

	/* guest -> host, the header split over two descriptors */
	struct virtio_vsock_hdr h = hdr(5000, 1234, VIRTIO_VSOCK_OP_RW, 11);
	tx_raw(f, &h, sizeof(h), "hello host!", 11, true);
	char buf[64] = { 0 };
	assert_int_equal(read_n(host, buf, 11), 11);
	assert_memory_equal(buf, "hello host!", 11);

	/* host -> guest */
	assert_int_equal(write(host, "hi guest", 8), 8);
	run_loop(f);
	struct pkt p;
	assert_true(rx_take(f, &p));
	assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(p.h.src_port, 1234);
	assert_int_equal(p.h.dst_port, 5000);
	assert_int_equal(p.len, 8);
	assert_memory_equal(p.data, "hi guest", 8);
	assert_int_equal(p.h.fwd_cnt, 11);    /* what we forwarded to the host */
	assert_false(rx_take(f, &p));

	/* CREDIT_REQUEST -> CREDIT_UPDATE with our counters */
	tx(f, hdr(5000, 1234, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0), NULL);
	assert_true(rx_take(f, &p));
	assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(p.h.buf_alloc, VSOCK_BUF_ALLOC);
	assert_int_equal(p.h.fwd_cnt, 11);

	/* A second REQUEST for the same pair resets it. */
	int host2 = guest_connect(f, 5001, 65536, &l);
	assert_int_equal(virtio_vsock_connections(&f->v), 2);
	tx(f, hdr(5001, 1234, VIRTIO_VSOCK_OP_REQUEST, 0), NULL);
	expect_rst(f, 1234, 5001);
	assert_true(is_eof(host2));
	close(host2);

	/* The guest shuts down SEND: the host reads EOF; then RCV too: RST, closed. */
	h = hdr(5000, 1234, VIRTIO_VSOCK_OP_SHUTDOWN, 0);
	h.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	tx(f, h, NULL);
	assert_true(is_eof(host));
	assert_int_equal(write(host, "late", 4), 4);   /* the other direction still works */
	run_loop(f);
	assert_true(rx_take(f, &p));
	assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(p.data, "late", 4);
	h.flags = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;
	tx(f, h, NULL);
	expect_rst(f, 1234, 5000);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
	close(host);

	/* The host closing: SHUTDOWN to the guest, then the guest's RST ends it. */
	host = guest_connect(f, 5002, 65536, &l);
	close(host);
	run_loop(f);
	assert_true(rx_take(f, &p));
	assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(p.h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV);
	assert_int_equal(virtio_vsock_connections(&f->v), 1);
	tx(f, hdr(5002, 1234, VIRTIO_VSOCK_OP_RST, 0), NULL);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
	assert_false(rx_take(f, &p));
	close(l);
}

/* ---- host-initiated ---- */

/* A host client asks for guest port gport; returns the client's socket and
 * the host-side port in the device's REQUEST. */
static int host_connect(struct fx *f, uint32_t gport, const char *extra, uint32_t *local)
{
	int c = unix_connect(f->path);
	char line[32];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n%s", gport, extra);
	assert_int_equal(write(c, line, (size_t)n), n);
	run_loop(f);
	struct pkt p;
	assert_true(rx_take(f, &p));
	assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(p.h.dst_port, gport);
	assert_true(p.h.src_port >= VSOCK_LOCAL_PORT_BASE);
	assert_int_equal(p.h.buf_alloc, VSOCK_BUF_ALLOC);
	*local = p.h.src_port;
	return c;
}

static void test_host_initiated(void **state)
{
	struct fx *f = *state;
	rx_post(f, QSZ);
	uint32_t local;
	int c = host_connect(f, 52, "ping", &local);   /* data right behind the line */
	assert_int_equal(virtio_vsock_connections(&f->v), 1);
	struct virtio_vsock_hdr h = hdr(52, local, VIRTIO_VSOCK_OP_RESPONSE, 0);
	tx(f, h, NULL);
	char line[32] = { 0 }, want[32];
	int n = snprintf(want, sizeof(want), "OK %u\n", local);
	assert_int_equal(read_n(c, line, (size_t)n), n);
	assert_string_equal(line, want);

	/* Bytes written right behind the CONNECT line are data, not handshake. */
	run_loop(f);
	struct pkt p;
	assert_true(rx_take(f, &p));
	assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(p.h.src_port, local);
	assert_int_equal(p.h.dst_port, 52);
	assert_memory_equal(p.data, "ping", 4);
	h = hdr(52, local, VIRTIO_VSOCK_OP_RW, 4);
	tx(f, h, "pong");
	char buf[8] = { 0 };
	assert_int_equal(read_n(c, buf, 4), 4);
	assert_memory_equal(buf, "pong", 4);

	/* A second client gets another host-side port. */
	uint32_t local2;
	int c2 = host_connect(f, 52, "", &local2);
	assert_int_not_equal(local2, local);
	/* The guest refuses: the client's socket is closed. */
	tx(f, hdr(52, local2, VIRTIO_VSOCK_OP_RST, 0), NULL);
	assert_true(is_eof(c2));
	close(c2);

	/* The client hangs up while the guest has not answered: RST to the guest. */
	c2 = host_connect(f, 53, "", &local2);
	close(c2);
	run_loop(f);
	expect_rst(f, local2, 53);

	/* A bad handshake: closed, the guest hears nothing. */
	c2 = unix_connect(f->path);
	assert_int_equal(write(c2, "HELLO 52\n", 9), 9);
	run_loop(f);
	assert_true(is_eof(c2));
	close(c2);
	c2 = unix_connect(f->path);
	assert_int_equal(write(c2, "CONNECT 4294967296\n", 19), 19);
	run_loop(f);
	assert_true(is_eof(c2));
	close(c2);
	c2 = unix_connect(f->path);
	static const char junk[40] = "CONNECT 0000000000000000000000000000000";
	assert_int_equal(write(c2, junk, sizeof(junk)), (ssize_t)sizeof(junk));   /* no newline in sight */
	run_loop(f);
	assert_true(is_eof(c2));
	close(c2);
	assert_false(rx_take(f, &p));
	assert_int_equal(virtio_vsock_connections(&f->v), 1);

	close(c);
	run_loop(f);
	assert_true(rx_take(f, &p));
	assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
	tx(f, hdr(52, local, VIRTIO_VSOCK_OP_RST, 0), NULL);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
}

/* Before DRIVER_OK there is no one to connect to. */
static void test_host_connect_without_driver(void **state)
{
	struct fx *f = *state;
	wr(f, VIRTIO_MMIO_STATUS, 0);
	int c = unix_connect(f->path);
	assert_int_equal(write(c, "CONNECT 52\n", 11), 11);
	run_loop(f);
	assert_true(is_eof(c));
	close(c);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
}

/* ---- credit ---- */

static void test_credit_to_guest(void **state)
{
	struct fx *f = *state;
	int l = -1;
	rx_post(f, QSZ);
	int host = guest_connect(f, 6000, 8, &l);   /* the guest can take 8 bytes */
	assert_int_equal(write(host, "0123456789abcdefghij", 20), 20);
	run_loop(f);
	struct pkt p;
	assert_true(rx_take(f, &p));
	assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(p.len, 8);
	assert_memory_equal(p.data, "01234567", 8);
	assert_false(rx_take(f, &p));               /* no credit left: nothing more */
	/* The guest consumed 5: 5 more. */
	struct virtio_vsock_hdr h = hdr(6000, 1234, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
	h.buf_alloc = 8;
	h.fwd_cnt = 5;
	tx(f, h, NULL);
	run_loop(f);
	assert_true(rx_take(f, &p));
	assert_int_equal(p.len, 5);
	assert_memory_equal(p.data, "89abc", 5);
	assert_false(rx_take(f, &p));
	/* A bigger buffer: the rest. */
	h.buf_alloc = 4096;
	h.fwd_cnt = 13;
	tx(f, h, NULL);
	run_loop(f);
	assert_true(rx_take(f, &p));
	assert_int_equal(p.len, 7);
	assert_memory_equal(p.data, "defghij", 7);

	/* No rx buffers: data waits, and flows once the guest posts some. */
	unsigned left = (uint16_t)(f->avail[0] - f->used_seen[0]);   /* buffers still posted */
	assert_true(left > 0);
	for (unsigned i = 0; i < left; i++) {
		assert_int_equal(write(host, "x", 1), 1);
		run_loop(f);
		assert_true(rx_take(f, &p));
		assert_int_equal(p.len, 1);
	}
	assert_int_equal(write(host, "late", 4), 4);
	run_loop(f);
	assert_false(rx_take(f, &p));
	rx_post(f, 1);
	run_loop(f);
	assert_true(rx_take(f, &p));
	assert_int_equal(p.len, 4);
	assert_memory_equal(p.data, "late", 4);
	close(host);
	close(l);
}

static void test_credit_from_guest(void **state)
{
	struct fx *f = *state;
	int l = -1;
	rx_post(f, QSZ);
	int host = guest_connect(f, 7000, 65536, &l);
	/* The host does not read: the socket buffer fills, then ours. The guest
	 * may send at most VSOCK_BUF_ALLOC beyond what we forwarded. */
	static uint8_t chunk[16384];
	memset(chunk, 'z', sizeof(chunk));
	struct pkt p;
	uint64_t sent = 0;
	int i;
	for (i = 0; i < 200 && virtio_vsock_connections(&f->v) == 1; i++) {
		tx(f, hdr(7000, 1234, VIRTIO_VSOCK_OP_RW, sizeof(chunk)), chunk);
		sent += sizeof(chunk);
		while (rx_take(f, &p)) {
			if (p.h.op == VIRTIO_VSOCK_OP_RST)
				break;
			assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
			/* never more credit than we can hold */
			assert_true(sent - p.h.fwd_cnt <= VSOCK_BUF_ALLOC);
			if (f->avail[0] - f->used_seen[0] < 2)
				rx_post(f, 4);
		}
	}
	/* The connection was reset once the guest overran its credit. */
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
	assert_true(i < 200);
	assert_true(sent > VSOCK_BUF_ALLOC);
	close(host);

	/* Within credit, a slow host gets everything, in order. */
	host = guest_connect(f, 7001, 65536, &l);
	int fl = fcntl(host, F_GETFL);
	fcntl(host, F_SETFL, fl | O_NONBLOCK);
	uint32_t fwd = 0;
	uint64_t total = 0, got = 0;
	static uint8_t sink[65536];
	for (int k = 0; k < 40 || got < total; k++) {
		if (k < 40) {
			for (size_t j = 0; j < sizeof(chunk); j++)
				chunk[j] = (uint8_t)((total + j) * 7 + ((total + j) >> 9));
			if (total + sizeof(chunk) - fwd <= VSOCK_BUF_ALLOC) {   /* the guest's credit check */
				tx(f, hdr(7001, 1234, VIRTIO_VSOCK_OP_RW, sizeof(chunk)), chunk);
				total += sizeof(chunk);
			}
		}
		ssize_t n = read(host, sink, k % 3 ? 5000 : sizeof(sink));   /* slowly */
		for (ssize_t j = 0; j < n; j++, got++)
			assert_int_equal(sink[j], (uint8_t)(got * 7 + (got >> 9)));
		run_loop(f);   /* EPOLLOUT: our buffer drains */
		if (f->avail[0] - f->used_seen[0] < 4)
			rx_post(f, 4);
		tx(f, hdr(7001, 1234, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0), NULL);
		while (rx_take(f, &p)) {
			assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
			assert_true(p.h.fwd_cnt >= fwd && p.h.fwd_cnt <= total);
			fwd = p.h.fwd_cnt;
		}
		assert_true(k < 10000);
	}
	assert_int_equal(got, total);
	assert_int_equal(fwd, total);
	assert_true(total >= 40 * sizeof(chunk) / 2);
	assert_int_equal(virtio_vsock_connections(&f->v), 1);
	close(host);
	close(l);
}

/* The host's bytes arrive in order whatever the interleaving (checked over
 * 256 KiB, with reads through the loop and credit returned as consumed). */
static void test_stream_order_to_guest(void **state)
{
	struct fx *f = *state;
	int l = -1;
	rx_post(f, QSZ);
	int host = guest_connect(f, 8000, 16384, &l);
	int fl = fcntl(host, F_GETFL);
	fcntl(host, F_SETFL, fl | O_NONBLOCK);
	static uint8_t data[256 * 1024];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + i / 251);
	size_t written = 0, got = 0;
	uint32_t fwd = 0;
	while (got < sizeof(data)) {
		if (written < sizeof(data)) {
			ssize_t n = write(host, data + written, sizeof(data) - written);
			if (n > 0)
				written += (size_t)n;
		}
		run_loop(f);
		struct pkt p;
		bool any = false;
		while (rx_take(f, &p)) {
			assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RW);
			assert_true(got + p.len <= sizeof(data));
			assert_memory_equal(p.data, data + got, p.len);
			got += p.len;
			fwd += p.len;
			assert_true(p.len <= RXLEN - VSOCK_HDR_BYTES);
			any = true;
		}
		if (any) {
			rx_post(f, (unsigned)(QSZ - (uint16_t)(f->avail[0] - f->used_seen[0])));
			struct virtio_vsock_hdr h = hdr(8000, 1234, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
			h.buf_alloc = 16384;
			h.fwd_cnt = fwd;
			tx(f, h, NULL);
		}
	}
	assert_int_equal(got, sizeof(data));
	close(host);
	close(l);
}

/* ---- teardown ---- */

/* Status 0: every connection ends, host ends see EOF. */
static void test_reset_closes_everything(void **state)
{
	struct fx *f = *state;
	int l = -1;
	rx_post(f, QSZ);
	int a = guest_connect(f, 9000, 65536, &l);
	uint32_t local;
	int b = host_connect(f, 9001, "", &local);
	int c = unix_connect(f->path);       /* still in its handshake */
	run_loop(f);
	assert_int_equal(virtio_vsock_connections(&f->v), 3);
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
	assert_true(is_eof(a));
	assert_true(is_eof(b));
	assert_true(is_eof(c));
	close(a);
	close(b);
	close(c);
	close(l);
}

/* With the I/O thread running, connections killed from a "vCPU" (this
 * thread) are freed by the loop thread on their EPOLLHUP (ASan checks the
 * rest). */
static void test_kill_while_loop_runs(void **state)
{
	struct fx *f = *state;
	int l = -1;
	rx_post(f, QSZ);
	int hosts[6];
	for (int i = 0; i < 6; i++)
		hosts[i] = guest_connect(f, 9100 + (uint32_t)i, 65536, &l);
	struct gr_error err = { 0 };
	assert_int_equal(ev_loop_start(&f->loop, &err), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(write(hosts[i], "data", 4), 4);
	for (int i = 0; i < 3; i++)
		tx(f, hdr(9100 + (uint32_t)i, 1234, VIRTIO_VSOCK_OP_RST, 0), NULL);
	wr(f, VIRTIO_MMIO_STATUS, 0);   /* the rest */
	for (int i = 0; i < 6; i++)
		assert_true(is_eof(hosts[i]));
	for (int t = 0; t < 200; t++) {
		pthread_mutex_lock(&f->lock);
		size_t n = virtio_vsock_connections(&f->v);
		pthread_mutex_unlock(&f->lock);
		if (n == 0)
			break;
		usleep(5000);
	}
	pthread_mutex_lock(&f->lock);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
	pthread_mutex_unlock(&f->lock);
	ev_loop_stop(&f->loop);
	for (int i = 0; i < 6; i++)
		close(hosts[i]);
	close(l);
}

/* Connection limit: the 1025th host client is closed at once. */
static void test_connection_limit(void **state)
{
	struct fx *f = *state;
	rx_post(f, QSZ);
	static int fds[VSOCK_MAX_CONNS + 1];
	struct rlimit rl;   /* two descriptors per connection (ours and the device's) */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 3 * VSOCK_MAX_CONNS) {
		if (rl.rlim_max < 3 * VSOCK_MAX_CONNS)
			skip();
		rl.rlim_cur = 3 * VSOCK_MAX_CONNS;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	size_t n = 0;
	for (; n < VSOCK_MAX_CONNS + 1; n++) {
		fds[n] = unix_connect(f->path);
		if (n % 32 == 31)
			run_loop(f);
	}
	run_loop(f);
	assert_int_equal(virtio_vsock_connections(&f->v), VSOCK_MAX_CONNS);
	assert_true(f->v.conns_refused >= 1);
	/* ... and a guest REQUEST is refused with RST. */
	char p[128];
	snprintf(p, sizeof(p), "%s_1234", f->path);
	int l = unix_listen(p);
	tx(f, hdr(1, 1234, VIRTIO_VSOCK_OP_REQUEST, 0), NULL);
	expect_rst(f, 1234, 1);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	run_loop(f);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
	close(l);
}

/* Out of descriptors: the pending client waits in the backlog without the
 * loop spinning on it, and is accepted once descriptors are back. */
static void test_out_of_descriptors(void **state)
{
	struct fx *f = *state;
	rx_post(f, QSZ);
	int c = unix_connect(f->path);
	struct rlimit rl, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	int probe = dup(0);
	low = rl;
	low.rlim_cur = (rlim_t)probe;   /* every number from probe up is unavailable */
	close(probe);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	int n = 0;
	while (ev_loop_run_once(&f->loop, 50) == 1)
		assert_true(++n < 10);       /* no busy loop on EPOLLIN */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(f->v.listen_paused);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
	tx(f, hdr(1, 2, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0), NULL);   /* any guest activity */
	expect_rst(f, 2, 1);
	run_loop(f);
	assert_false(f->v.listen_paused);
	assert_int_equal(virtio_vsock_connections(&f->v), 1);
	close(c);
	run_loop(f);
	assert_int_equal(virtio_vsock_connections(&f->v), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_spec),
		cmocka_unit_test_setup_teardown(test_config_and_socket, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_headers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_rx_buffer_too_small, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_guest_initiated, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_host_initiated, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_host_connect_without_driver, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_credit_to_guest, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_credit_from_guest, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stream_order_to_guest, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reset_closes_everything, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_kill_while_loop_runs, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_out_of_descriptors, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
