/* A minimal polled virtio-mmio driver (virtio 1.x, modern transport) that
 * exercises gureum-vmm's devices from inside the guest (PVH entry, paging
 * off, so guest-physical = virtual). The command line says what to expect:
 *   rng=1  a virtio-rng device: 64 random bytes, not all zero
 *   blk=1  a virtio-blk device: write a pattern at sector 1, FLUSH, read it
 *          back; read sector 0 (the host test fills it with (i * 7 + 3) & 0xff);
 *          a read beyond the capacity must fail with IOERR
 * The driver bits (probing, setup, the ring) are in virtio_drv.h. Each
 * request must also set the used-buffer bit in InterruptStatus (the device
 * raised its interrupt).
 * Each failed step reports its own code through the debug-exit port:
 * rng 10-15, blk 20-32 (see the fail() calls). */
#include "payload.h"
#include "pvh.h"
#include "virtio_drv.h"

void payload_main(const struct hvm_start_info *si);

static struct ring rings[2];
static struct vdev devs[2];

static __attribute__((noreturn)) void fail(uint8_t code, const char *what, uint32_t value)
{
	serial_puts("gureum-vmm virtio: FAILED: ");
	serial_puts(what);
	serial_puts(" ");
	serial_hex(value);
	serial_puts("\n");
	debug_exit(code);
}

/* Posts a chain of n descriptors (already filled from index 0), notifies,
 * polls the used ring. Returns the used length, or -1 on a timeout, -2 when
 * the interrupt bit was not set. */
static int submit(struct vdev *d, int n)
{
	vdrv_post(d, n);   /* we poll, but want the device to raise its interrupt anyway */
	int len = vdrv_poll(d);
	if (len == -1)
		return -1;
	if (!(rd(d, R_INT_STATUS) & 1))
		return -2;
	wr(d, R_INT_ACK, 1);
	return len;
}

static void test_rng(void)
{
	static uint8_t buf[64];
	struct vdev *d = &devs[0];
	d->base = vdrv_probe(4);
	if (!d->base)
		fail(10, "no virtio-rng device", 0);
	uint32_t lo;
	int s = vdrv_setup(d, &rings[0], 0, &lo);
	if (s)
		fail(11, "rng setup step", (uint32_t)s);
	vdrv_set_desc(d->q.r, 0, buf, sizeof(buf), D_WRITE);
	int n = submit(d, 1);
	if (n == -1)
		fail(12, "rng request timed out", 0);
	if (n == -2)
		fail(15, "rng: InterruptStatus has no used-buffer bit", 0);
	if (n != (int)sizeof(buf))
		fail(13, "rng used length", (uint32_t)n);
	uint8_t any = 0;
	for (unsigned i = 0; i < sizeof(buf); i++)
		any |= ((volatile uint8_t *)buf)[i];
	if (!any)
		fail(14, "rng bytes are all zero", 0);
	serial_puts("gureum-vmm virtio: rng ok\n");
}

struct blk_req { uint32_t type, reserved; uint64_t sector; };

static struct blk_req hdr;
static uint8_t data[512] __attribute__((aligned(512)));
static uint8_t status;

/* One request: header, optional 512-byte data buffer (written by the device
 * for IN), status. Returns the status byte. */
static uint8_t blk_request(struct vdev *d, uint32_t type, uint64_t sector, int with_data)
{
	volatile struct blk_req *h = &hdr;
	h->type = type;
	h->reserved = 0;
	h->sector = sector;
	*(volatile uint8_t *)&status = 0xff;
	int n = 0;
	vdrv_set_desc(d->q.r, n++, &hdr, sizeof(hdr), 0);
	if (with_data)
		vdrv_set_desc(d->q.r, n++, data, sizeof(data), type == 0 ? D_WRITE : 0);
	vdrv_set_desc(d->q.r, n++, &status, 1, D_WRITE);
	int len = submit(d, n);
	if (len == -1)
		fail(23, "blk request timed out, type", type);
	if (len == -2)
		fail(30, "blk: InterruptStatus has no used-buffer bit, type", type);
	return *(volatile uint8_t *)&status;
}

static void test_blk(void)
{
	struct vdev *d = &devs[1];
	volatile uint8_t *buf = data;
	d->base = vdrv_probe(2);
	if (!d->base)
		fail(20, "no virtio-blk device", 0);
	uint32_t lo;
	int s = vdrv_setup(d, &rings[1], 1u << 9 /* FLUSH */, &lo);
	if (s)
		fail(21, "blk setup step", (uint32_t)s);
	if (!(lo & (1u << 9)))
		fail(31, "blk: FLUSH not offered, features", lo);
	uint32_t cap = rd(d, R_CONFIG);               /* capacity, low word */
	if (cap < 2 || rd(d, R_CONFIG + 4) != 0)
		fail(22, "blk capacity", cap);

	for (unsigned i = 0; i < 512; i++)
		buf[i] = (uint8_t)(i * 13 + 1);
	uint8_t st = blk_request(d, 1 /* OUT */, 1, 1);
	if (st != 0)
		fail(24, "blk write status", st);
	st = blk_request(d, 4 /* FLUSH */, 0, 0);
	if (st != 0)
		fail(25, "blk flush status", st);
	for (unsigned i = 0; i < 512; i++)
		buf[i] = 0;
	st = blk_request(d, 0 /* IN */, 1, 1);
	if (st != 0)
		fail(26, "blk read-back status", st);
	for (unsigned i = 0; i < 512; i++)
		if (buf[i] != (uint8_t)(i * 13 + 1))
			fail(27, "blk read-back differs at byte", i);
	st = blk_request(d, 0 /* IN */, 0, 1);
	if (st != 0)
		fail(28, "blk read of sector 0 status", st);
	for (unsigned i = 0; i < 512; i++)
		if (buf[i] != (uint8_t)(i * 7 + 3))
			fail(29, "blk sector 0 differs at byte", i);
	st = blk_request(d, 0 /* IN */, cap, 1);
	if (st != 1)
		fail(32, "blk read beyond the capacity: status", st);
	serial_puts("gureum-vmm virtio: blk ok\n");
}

void payload_main(const struct hvm_start_info *si)
{
	if (si->magic != 0x336ec578)
		debug_exit(1);
	const char *cmd = (const char *)(uintptr_t)si->cmdline_paddr;
	if (cmdline_int(cmd, "rng") == 1)
		test_rng();
	if (cmdline_int(cmd, "blk") == 1)
		test_blk();
	serial_puts("gureum-vmm virtio: ok\n");
	debug_exit(0);
}
