/* virtio-vsock from inside the guest, with a polled driver (three queues:
 * rx, tx, event). The command line says what to do:
 *   vsock_cid=N      the guest_cid the config space must hold
 *   vsock_port=P     connect to the host (CID 2) port P: REQUEST, RESPONSE,
 *                    send "hello from the guest", expect "ack: hello from the
 *                    guest" back (in one or more RW packets), SHUTDOWN both
 *                    ways, expect the device's RST
 *   vsock_listen=L   then accept a host-initiated connection to port L
 *                    (prints "vsock: listening" first): REQUEST -> RESPONSE,
 *                    echo the first RW, answer the host's SHUTDOWN with RST
 * Failures report through the debug-exit port: 10-19 setup and phase 1,
 * 20-29 phase 2. */
#include "payload.h"
#include "pvh.h"
#include "virtio_drv.h"

void payload_main(const struct hvm_start_info *si);

#define HDR 44u
#define RXBUF 256u
#define OP_REQUEST 1
#define OP_RESPONSE 2
#define OP_RST 3
#define OP_SHUTDOWN 4
#define OP_RW 5
#define OP_CREDIT_UPDATE 6

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

static struct ring rings[3];
static struct vq rxq, txq, evq;
static struct vdev dev;
static uint8_t rxbufs[QSZ][RXBUF] __attribute__((aligned(16)));
static uint8_t txbuf[HDR + 64] __attribute__((aligned(16)));
static uint64_t cid;
static uint32_t fwd_cnt;   /* bytes of this connection we consumed, for the device's credit */

static __attribute__((noreturn)) void fail(uint8_t code, const char *what, uint32_t value)
{
	serial_puts("gureum-vmm vsock: FAILED: ");
	serial_puts(what);
	serial_puts(" ");
	serial_hex(value);
	serial_puts("\n");
	debug_exit(code);
}

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static void rx_repost(uint16_t i)
{
	vdrv_set_desc(rxq.r, i, rxbufs[i], RXBUF, D_WRITE);
	rxq.r->desc[i].next = 0;
	vdrv_offer(&dev, &rxq, i, 1);
}

/* Sends one packet (header + len bytes of data) and waits for the device to
 * take it. */
static void send(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t flags, const char *data, uint32_t len)
{
	struct hdr h = { .src_cid = cid, .dst_cid = 2, .src_port = src_port, .dst_port = dst_port, .len = len,
			 .type = 1, .op = op, .flags = flags, .buf_alloc = QSZ * (RXBUF - HDR), .fwd_cnt = fwd_cnt };
	volatile uint8_t *t = txbuf;
	for (uint32_t i = 0; i < HDR; i++)
		t[i] = ((const uint8_t *)&h)[i];
	for (uint32_t i = 0; i < len; i++)
		t[HDR + i] = (uint8_t)data[i];
	vdrv_set_desc(txq.r, 0, txbuf, HDR + len, 0);
	txq.r->desc[0].next = 0;
	vdrv_offer(&dev, &txq, 0, 1);
	uint64_t end = rdtsc() + 20000000000ull;
	while (!vdrv_pending(&txq))
		if (rdtsc() > end)
			fail(18, "tx not taken, op", op);
	vdrv_take(&txq, 0);
}

/* Waits (up to about 10 s) for the next rx packet: its header in *h and
 * its payload copied to data (up to max bytes); the buffer is re-posted. */
static void receive(struct hdr *h, char *data, uint32_t max, uint8_t code)
{
	uint64_t end = rdtsc() + 20000000000ull;
	while (!vdrv_pending(&rxq))
		if (rdtsc() > end)
			fail(code, "nothing received, used index", rxq.used_seen);
	uint32_t id, len = vdrv_take(&rxq, &id);
	if (id >= QSZ || len < HDR || len > RXBUF)
		fail(code, "bad used element, length", len);
	volatile uint8_t *b = rxbufs[id];
	for (uint32_t i = 0; i < HDR; i++)
		((uint8_t *)h)[i] = b[i];
	if (h->len != len - HDR || h->src_cid != 2 || h->dst_cid != cid || h->type != 1)
		fail(code, "bad header, op", h->op);
	for (uint32_t i = 0; i < h->len && i < max; i++)
		data[i] = (char)b[HDR + i];
	fwd_cnt += h->len;
	rx_repost(id);
}

static uint32_t slen(const char *s)
{
	uint32_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* Phase 1: the guest connects to host port `port`. */
static void connect_to_host(uint32_t port)
{
	static const char msg[] = "hello from the guest";
	static const char want[] = "ack: hello from the guest";
	const uint32_t me = 1000;
	struct hdr h;
	char got[64];
	fwd_cnt = 0;
	send(me, port, OP_REQUEST, 0, 0, 0);
	receive(&h, got, 0, 13);
	if (h.op == OP_RST)
		fail(14, "connection refused by the host, port", port);
	if (h.op != OP_RESPONSE || h.src_port != port || h.dst_port != me)
		fail(13, "no RESPONSE, op", h.op);
	send(me, port, OP_RW, 0, msg, slen(msg));
	uint32_t n = 0;
	while (n < slen(want)) {
		receive(&h, got + n, sizeof(got) - n, 16);
		if (h.op == OP_CREDIT_UPDATE)
			continue;
		if (h.op != OP_RW || h.src_port != port || h.dst_port != me)
			fail(15, "expected RW from the host, op", h.op);
		n += h.len;
	}
	for (uint32_t i = 0; i < slen(want); i++)
		if (n != slen(want) || got[i] != want[i])
			fail(15, "the host's reply differs at byte", i);
	serial_puts("gureum-vmm vsock: host replied\n");
	send(me, port, OP_SHUTDOWN, 3, 0, 0);
	do
		receive(&h, got, 0, 17);
	while (h.op == OP_CREDIT_UPDATE);
	if (h.op != OP_RST)
		fail(17, "no RST after SHUTDOWN, op", h.op);
}

/* Phase 2: the host connects to guest port `port`. */
static void accept_from_host(uint32_t port)
{
	struct hdr h;
	char got[RXBUF];
	serial_puts("gureum-vmm vsock: listening\n");
	receive(&h, got, 0, 20);
	fwd_cnt = 0;
	if (h.op != OP_REQUEST || h.dst_port != port)
		fail(21, "expected REQUEST, op", h.op);
	uint32_t peer = h.src_port;
	send(port, peer, OP_RESPONSE, 0, 0, 0);
	do
		receive(&h, got, sizeof(got), 22);
	while (h.op == OP_CREDIT_UPDATE);
	if (h.op != OP_RW || h.src_port != peer || h.len == 0 || h.len > 64)
		fail(23, "expected RW, op", h.op);
	send(port, peer, OP_RW, 0, got, h.len);   /* the echo */
	do
		receive(&h, got, 0, 24);
	while (h.op == OP_CREDIT_UPDATE);
	if (h.op != OP_SHUTDOWN)
		fail(25, "expected SHUTDOWN from the host, op", h.op);
	send(port, peer, OP_RST, 0, 0, 0);
	serial_puts("gureum-vmm vsock: echoed\n");
}

void payload_main(const struct hvm_start_info *si)
{
	if (si->magic != HVM_START_MAGIC)
		debug_exit(1);
	const char *cmd = (const char *)(uintptr_t)si->cmdline_paddr;
	dev.base = vdrv_probe(19);
	if (!dev.base)
		fail(10, "no virtio-vsock device", 0);
	uint32_t lo;
	int s = vdrv_negotiate(&dev, 0, &lo);   /* VERSION_1 only */
	if (s || (s = vdrv_queue(&dev, &rxq, 0, &rings[0])) || (s = vdrv_queue(&dev, &txq, 1, &rings[1])) ||
	    (s = vdrv_queue(&dev, &evq, 2, &rings[2])))
		fail(11, "setup step (1-3 features, 4-5 a queue)", (uint32_t)s);
	vdrv_driver_ok(&dev);
	cid = (uint64_t)rd(&dev, R_CONFIG) | (uint64_t)rd(&dev, R_CONFIG + 4) << 32;
	int want_cid = cmdline_int(cmd, "vsock_cid");
	if (want_cid < 0 || cid != (uint64_t)want_cid)
		fail(12, "guest_cid in the config space", (uint32_t)cid);
	for (uint16_t i = 0; i < QSZ; i++)
		rx_repost(i);
	int port = cmdline_int(cmd, "vsock_port");
	if (port >= 0)
		connect_to_host((uint32_t)port);
	int listen = cmdline_int(cmd, "vsock_listen");
	if (listen >= 0)
		accept_from_host((uint32_t)listen);
	serial_puts("gureum-vmm vsock: ok\n");
	debug_exit(0);
}
