/* Console input from inside the guest (PVH, paging off). The command line
 * says what to check:
 *   uart=1  the 16550A: FIFO on, IER = received-data interrupt, OUT2; prints
 *           "uart ready", waits (polling LSR.DR) for a line of input, checks
 *           that IIR then shows received-data-available (0x04), and prints
 *           "uart echo: LINE"
 *   vcon=1  virtio-console: posts receive buffers, sends "vcon ready" on the
 *           transmitq, collects received bytes up to a newline, checks the
 *           used-buffer interrupt bit, sends "vcon echo: LINE"
 * Failures report through the debug-exit port: uart 10-13, vcon 20-29. The
 * virtio part is a self-contained polled driver for a two-queue device. */
#include "payload.h"
#include "pvh.h"

void payload_main(const struct hvm_start_info *si);

#define LINE_MAX 64

static __attribute__((noreturn)) void fail(uint8_t code, const char *what, uint32_t value)
{
	serial_puts("gureum-vmm console: FAILED: ");
	serial_puts(what);
	serial_puts(" ");
	serial_hex(value);
	serial_puts("\n");
	debug_exit(code);
}

/* ---- the UART ---- */

static void test_uart(void)
{
	outb(SERIAL_PORT + 2, 0x07);         /* FCR: FIFO on, both cleared */
	outb(SERIAL_PORT + 4, 0x08);         /* MCR: OUT2 */
	outb(SERIAL_PORT + 1, 0x01);         /* IER: received data available */
	if (inb(SERIAL_PORT + 1) != 0x01)
		fail(10, "uart: IER reads", inb(SERIAL_PORT + 1));
	if ((inb(SERIAL_PORT + 2) & 0x0F) != 0x01)
		fail(11, "uart: IIR before input", inb(SERIAL_PORT + 2));
	serial_puts("uart ready\n");
	static char line[LINE_MAX];
	unsigned n = 0;
	for (;;) {
		while (!(inb(SERIAL_PORT + 5) & 0x01))
			;
		uint8_t iir = inb(SERIAL_PORT + 2);
		if ((iir & 0x0F) != 0x04)
			fail(12, "uart: IIR with data ready", iir);
		char c = (char)inb(SERIAL_PORT);
		if (c == '\n' || c == '\r')
			break;
		if (n + 1 >= LINE_MAX)
			fail(13, "uart: line too long", n);
		line[n++] = c;
	}
	line[n] = 0;
	serial_puts("uart echo: ");
	serial_puts(line);
	serial_puts("\n");
}

/* ---- virtio-console ---- */

#define MMIO_BASE 0xD0000000u
#define MMIO_SIZE 0x1000u
#define MMIO_PROBE 19
#define QSZ 8

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct ring {
	struct desc desc[QSZ];
	uint16_t avail[2 + QSZ + 1] __attribute__((aligned(64)));
	uint32_t used[1 + 2 * QSZ + 1] __attribute__((aligned(64)));
} __attribute__((aligned(4096)));

static struct ring rings[2];
static uint16_t avail_idx[2], used_seen[2];
static uint32_t base;
static uint8_t rxbuf[QSZ][16];
static char txbuf[LINE_MAX + 16];

static void barrier(void) { __asm__ volatile("" : : : "memory"); }
static uint32_t rd(uint32_t off) { return *(volatile uint32_t *)(uintptr_t)(base + off); }
static void wr(uint32_t off, uint32_t v) { *(volatile uint32_t *)(uintptr_t)(base + off) = v; }

static void post(int q, uint16_t d)
{
	volatile struct ring *r = &rings[q];
	r->avail[2 + avail_idx[q] % QSZ] = d;
	barrier();
	r->avail[1] = ++avail_idx[q];
	barrier();
	wr(0x050, (uint32_t)q);
}

static void post_rx(uint16_t d)
{
	volatile struct ring *r = &rings[0];
	r->desc[d].addr = (uint32_t)(uintptr_t)rxbuf[d];
	r->desc[d].len = sizeof(rxbuf[d]);
	r->desc[d].flags = 2;  /* WRITE */
	post(0, d);
}

static void send(const char *s)
{
	unsigned n = 0;
	while (s[n])
		n++;
	volatile struct ring *r = &rings[1];
	r->desc[0].addr = (uint32_t)(uintptr_t)s;
	r->desc[0].len = n;
	r->desc[0].flags = 0;
	post(1, 0);
	for (int spin = 0; (uint16_t)(r->used[0] >> 16) == used_seen[1]; spin++)
		if (spin > 1000000)
			fail(24, "vcon: transmit timed out", 0);
	used_seen[1]++;
}

static void append(char *dst, unsigned *at, const char *s)
{
	while (*s)
		dst[(*at)++] = *s++;
	dst[*at] = 0;
}

static void test_vcon(void)
{
	for (uint32_t i = 0; i < MMIO_PROBE && !base; i++) {
		uint32_t b = MMIO_BASE + i * MMIO_SIZE;
		if (*(volatile uint32_t *)(uintptr_t)b == 0x74726976u && *(volatile uint32_t *)(uintptr_t)(b + 4) == 2 &&
		    *(volatile uint32_t *)(uintptr_t)(b + 8) == 3)
			base = b;
	}
	if (!base)
		fail(20, "no virtio-console device", 0);
	wr(0x070, 0);
	wr(0x070, 1 | 2);
	wr(0x024, 1);
	wr(0x020, 1);                         /* VERSION_1 */
	wr(0x070, 1 | 2 | 8);
	if (!(rd(0x070) & 8))
		fail(21, "vcon: FEATURES_OK refused", rd(0x070));
	for (uint32_t q = 0; q < 2; q++) {
		wr(0x030, q);
		if (rd(0x034) < QSZ)
			fail(22, "vcon: queue size max", rd(0x034));
		wr(0x038, QSZ);
		wr(0x080, (uint32_t)(uintptr_t)rings[q].desc);
		wr(0x084, 0);
		wr(0x090, (uint32_t)(uintptr_t)rings[q].avail);
		wr(0x094, 0);
		wr(0x0a0, (uint32_t)(uintptr_t)rings[q].used);
		wr(0x0a4, 0);
		wr(0x044, 1);
	}
	wr(0x070, 1 | 2 | 8 | 4);
	for (uint16_t d = 0; d < QSZ; d++)
		post_rx(d);
	send("vcon ready\n");
	static char line[LINE_MAX];
	unsigned n = 0;
	int irq_seen = 0;
	volatile struct ring *r = &rings[0];
	for (;;) {
		while ((uint16_t)(r->used[0] >> 16) == used_seen[0])
			;
		barrier();
		uint32_t slot = used_seen[0]++ % QSZ;
		uint32_t id = r->used[1 + 2 * slot], len = r->used[2 + 2 * slot];
		if (id >= QSZ || len > sizeof(rxbuf[0]))
			fail(23, "vcon: used element", id);
		if (!irq_seen && !(rd(0x060) & 1))  /* one interrupt may cover several buffers */
			fail(25, "vcon: InterruptStatus has no used-buffer bit", rd(0x060));
		irq_seen = 1;
		wr(0x064, 1);
		int done = 0;
		for (uint32_t i = 0; i < len; i++) {
			char c = (char)rxbuf[id][i];
			if (c == '\n' || c == '\r') {
				done = 1;
				break;
			}
			if (n + 1 >= LINE_MAX)
				fail(26, "vcon: line too long", n);
			line[n++] = c;
		}
		if (done)
			break;
		post_rx((uint16_t)id);
	}
	line[n] = 0;
	unsigned at = 0;
	append(txbuf, &at, "vcon echo: ");
	append(txbuf, &at, line);
	append(txbuf, &at, "\n");
	send(txbuf);
}

void payload_main(const struct hvm_start_info *si)
{
	if (si->magic != HVM_START_MAGIC)
		debug_exit(1);
	const char *cmd = (const char *)(uintptr_t)si->cmdline_paddr;
	if (cmdline_int(cmd, "uart") == 1)
		test_uart();
	if (cmdline_int(cmd, "vcon") == 1)
		test_vcon();
	serial_puts("gureum-vmm console: ok\n");
	debug_exit(0);
}
