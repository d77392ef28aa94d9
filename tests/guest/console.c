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
 * virtio part polls, with the two-queue driver of virtio_drv.h. */
#include "payload.h"
#include "pvh.h"
#include "virtio_drv.h"

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

static struct ring rings[2];
static struct vdev dev;
static struct vq rxq, txq;
static uint8_t rxbuf[QSZ][16];
static char txbuf[LINE_MAX + 16];

static void post_rx(uint16_t d)
{
	vdrv_set_desc(rxq.r, d, rxbuf[d], sizeof(rxbuf[d]), D_WRITE);
	vdrv_offer(&dev, &rxq, d, 1);
}

static void send(const char *s)
{
	unsigned n = 0;
	while (s[n])
		n++;
	vdrv_set_desc(txq.r, 0, s, n, 0);
	vdrv_offer(&dev, &txq, 0, 1);
	uint32_t len;
	if (!vdrv_wait(&txq, 1000000, &len, 0))
		fail(24, "vcon: transmit timed out", 0);
}

static void append(char *dst, unsigned *at, const char *s)
{
	while (*s)
		dst[(*at)++] = *s++;
	dst[*at] = 0;
}

static void test_vcon(void)
{
	dev.base = vdrv_probe(3);
	if (!dev.base)
		fail(20, "no virtio-console device", 0);
	uint32_t lo;
	int s = vdrv_negotiate(&dev, 0, &lo);                /* VERSION_1 only */
	if (s)
		fail(21, "vcon: setup step", (uint32_t)s);
	if ((s = vdrv_queue(&dev, &rxq, 0, &rings[0])) || (s = vdrv_queue(&dev, &txq, 1, &rings[1])))
		fail(22, "vcon: queue setup step", (uint32_t)s);
	vdrv_driver_ok(&dev);
	for (uint16_t d = 0; d < QSZ; d++)
		post_rx(d);
	send("vcon ready\n");
	static char line[LINE_MAX];
	unsigned n = 0;
	int irq_seen = 0;
	for (;;) {
		while (!vdrv_pending(&rxq))
			;
		uint32_t id, len = vdrv_take(&rxq, &id);
		if (id >= QSZ || len > sizeof(rxbuf[0]))
			fail(23, "vcon: used element", id);
		if (!irq_seen && !(rd(&dev, R_INT_STATUS) & 1))  /* one interrupt may cover several buffers */
			fail(25, "vcon: InterruptStatus has no used-buffer bit", rd(&dev, R_INT_STATUS));
		irq_seen = 1;
		wr(&dev, R_INT_ACK, 1);
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
