/* virtio-net from inside the guest (PVH entry, paging off: guest-physical =
 * virtual), a polled driver with both queues. It finds the net device,
 * negotiates VERSION_1 + MAC (+ STATUS), reads its MAC from the config space
 * (checked against mac=XXXXXXXXXXXX on the command line when given: twelve
 * hex digits), posts receive buffers, sends one Ethernet frame through TX:
 *   dst ff:ff:ff:ff:ff:ff, src = the device's MAC, ethertype 0x88b5 (IEEE
 *   local experimental), payload "gureum-net ping " + 64 bytes (i * 5 + 1)
 * and waits (polling the used ring) for the host's answer:
 *   dst = the device's MAC, ethertype 0x88b5, payload "gureum-net pong " +
 *   the same 64 bytes, each XOR 0xff.
 * With offload=1 it also negotiates CSUM and GUEST_CSUM (so gureum-vmm,
 * already sandboxed, sets the tap's offloads at DRIVER_OK).
 * Frames that are not the answer (the host's own IPv6 chatter, say) are
 * skipped and their buffers posted again. Failures report their own code
 * through the debug-exit port (40-59, see the fail() calls); 0 = pass. */
#include "payload.h"
#include "pvh.h"
#include "virtio_drv.h"

void payload_main(const struct hvm_start_info *si);

#define F_CSUM   (1u << 0)
#define F_GCSUM  (1u << 1)
#define F_MAC    (1u << 5)
#define F_STATUS (1u << 16)

#define RXQ      0
#define TXQ      1
#define HDR      12
#define RX_BUFS  4
#define RX_LEN   1526            /* header + a 1514-byte frame: what a driver without MRG_RXBUF posts */
#define ETHERTYPE 0x88b5
#define PAT      64
#define SPIN_MAX 30000000u       /* minutes of polling: the host answers in ms, but a loaded CI machine may starve its helper (the test's own timeout ends a real hang) */

static struct ring rings[2];
static struct vdev dev;
static struct vq rxq, txq;
static uint8_t rx_buf[RX_BUFS][RX_LEN] __attribute__((aligned(64)));
static uint8_t tx_hdr[HDR];
static uint8_t tx_frame[14 + 16 + PAT];
static uint8_t mac[6];

static uint8_t rd8(uint32_t off) { return *(volatile uint8_t *)(uintptr_t)(dev.base + off); }

static __attribute__((noreturn)) void fail(uint8_t code, const char *what, uint32_t value)
{
	serial_puts("gureum-vmm net: FAILED: ");
	serial_puts(what);
	serial_puts(" ");
	serial_hex(value);
	serial_puts("\n");
	debug_exit(code);
}

static void post_rx(uint16_t i, int notify)
{
	vdrv_set_desc(rxq.r, i, rx_buf[i], RX_LEN, D_WRITE);
	rxq.r->desc[i].next = 0;
	vdrv_offer(&dev, &rxq, i, notify);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* mac=XXXXXXXXXXXX on the command line: 1 with want filled, 0 when absent. */
static int cmdline_mac(const char *c, uint8_t want[6])
{
	for (; c && *c; c++) {
		if (c[0] != 'm' || c[1] != 'a' || c[2] != 'c' || c[3] != '=')
			continue;
		for (int i = 0; i < 6; i++) {
			int hi = hexval(c[4 + 2 * i]), lo = hexval(c[5 + 2 * i]);
			if (hi < 0 || lo < 0)
				fail(59, "bad mac= on the command line at digit", (uint32_t)(2 * i));
			want[i] = (uint8_t)(hi << 4 | lo);
		}
		return 1;
	}
	return 0;
}

static const char PING[] = "gureum-net ping ", PONG[] = "gureum-net pong ";

/* Whether rx_buf[i] (len bytes, header included) is the host's answer. */
static int is_answer(const volatile uint8_t *b, uint32_t len)
{
	const volatile uint8_t *f = b + HDR;
	if (len < HDR + 14 + 16 + PAT)
		return 0;
	if (f[12] != (ETHERTYPE >> 8) || f[13] != (ETHERTYPE & 0xff))
		return 0;
	for (int i = 0; i < 16; i++)
		if (f[14 + i] != (uint8_t)PONG[i])
			return 0;
	return 1;
}

void payload_main(const struct hvm_start_info *si)
{
	if (si->magic != HVM_START_MAGIC)
		debug_exit(1);
	const char *cmd = (const char *)(uintptr_t)si->cmdline_paddr;

	dev.base = vdrv_probe(1);
	if (!dev.base)
		fail(40, "no virtio-net device", 0);
	uint32_t want_lo = F_MAC | F_STATUS, lo;
	if (cmdline_int(cmd, "offload") == 1)
		want_lo |= F_CSUM | F_GCSUM;
	static const uint8_t setup_fail[] = { 0, 41, 42, 44 };
	int s = vdrv_negotiate(&dev, want_lo, &lo);
	if (s)
		fail(setup_fail[s], "setup step (1 reset, 2 no VERSION_1, 3 FEATURES_OK refused)", (uint32_t)s);
	if (!(lo & F_MAC))
		fail(43, "no VIRTIO_NET_F_MAC, features", lo);
	if ((want_lo & F_CSUM) && (lo & (F_CSUM | F_GCSUM)) != (F_CSUM | F_GCSUM))
		fail(39, "offload=1: CSUM/GUEST_CSUM not offered, features", lo);
	for (int i = 0; i < 6; i++)
		mac[i] = rd8(R_CONFIG + i);
	uint8_t want[6];
	if (cmdline_mac(cmd, want))
		for (int i = 0; i < 6; i++)
			if (mac[i] != want[i])
				fail(45, "config MAC differs from mac= at byte", (uint32_t)i);
	if ((lo & F_STATUS) && !(rd8(R_CONFIG + 6) & 1))
		fail(46, "link is not up, status", rd8(R_CONFIG + 6));
	if ((s = vdrv_queue(&dev, &rxq, RXQ, &rings[RXQ])))
		fail(47, "receive queue setup step", (uint32_t)s);
	if ((s = vdrv_queue(&dev, &txq, TXQ, &rings[TXQ])))
		fail(48, "transmit queue setup step", (uint32_t)s);
	vdrv_driver_ok(&dev);
	serial_puts("gureum-vmm net: device up, mac ");
	for (int i = 0; i < 6; i++) {
		static const char hx[] = "0123456789abcdef";
		char b[4] = { hx[mac[i] >> 4], hx[mac[i] & 15], i < 5 ? ':' : '\n', 0 };
		serial_puts(b);
	}

	for (uint16_t i = 0; i < RX_BUFS; i++)
		post_rx(i, i + 1 == RX_BUFS);

	/* The frame: header (no offloads), Ethernet, "ping" and the pattern. */
	volatile uint8_t *f = tx_frame;
	for (int i = 0; i < 6; i++) {
		f[i] = 0xff;
		f[6 + i] = mac[i];
	}
	f[12] = ETHERTYPE >> 8;
	f[13] = ETHERTYPE & 0xff;
	for (int i = 0; i < 16; i++)
		f[14 + i] = (uint8_t)PING[i];
	for (int i = 0; i < PAT; i++)
		f[30 + i] = (uint8_t)(i * 5 + 1);
	txq.r->desc[0] = (struct desc){ (uint32_t)(uintptr_t)tx_hdr, HDR, D_NEXT, 1 };
	txq.r->desc[1] = (struct desc){ (uint32_t)(uintptr_t)tx_frame, sizeof(tx_frame), 0, 0 };
	vdrv_offer(&dev, &txq, 0, 1);
	uint32_t id, len;
	if (!vdrv_wait(&txq, SPIN_MAX, &len, &id))
		fail(49, "transmit timed out", 0);
	if (id != 0 || len != 0)
		fail(50, "transmit used entry (id << 16 | len)", id << 16 | len);
	if (!(rd(&dev, R_INT_STATUS) & 1))
		fail(51, "no used-buffer interrupt bit after transmit", rd(&dev, R_INT_STATUS));
	wr(&dev, R_INT_ACK, 1);
	serial_puts("gureum-vmm net: frame sent\n");

	for (int frames = 0;; frames++) {
		if (frames > 64)
			fail(52, "no answer among the frames received", (uint32_t)frames);
		if (!vdrv_wait(&rxq, SPIN_MAX, &len, &id))
			fail(53, "no frame received (timed out)", (uint32_t)frames);
		if (id >= RX_BUFS || len > RX_LEN)
			fail(54, "receive used entry (id << 16 | len)", id << 16 | len);
		const volatile uint8_t *b = rx_buf[id];
		if ((b[10] | b[11] << 8) != 1)
			fail(55, "num_buffers", (uint32_t)(b[10] | b[11] << 8));
		if (!is_answer(b, len)) {
			post_rx((uint16_t)id, 1);      /* not for us: the buffer goes back */
			continue;
		}
		const volatile uint8_t *a = b + HDR;
		for (int i = 0; i < 6; i++)
			if (a[i] != mac[i])
				fail(56, "answer's destination MAC differs at byte", (uint32_t)i);
		if (len != HDR + 14 + 16 + PAT)
			fail(57, "answer's length", len);
		for (int i = 0; i < PAT; i++) {
			uint8_t e = (uint8_t)(i * 5 + 1);
			e ^= 0xff;
			if (a[30 + i] != e)
				fail(58, "answer's payload differs at byte", (uint32_t)i);
		}
		break;
	}
	serial_puts("gureum-vmm net: answer received\ngureum-vmm net: ok\n");
	debug_exit(0);
}
