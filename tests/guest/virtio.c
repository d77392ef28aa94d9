/* A minimal polled virtio-mmio driver (virtio 1.x, modern transport) that
 * exercises gureum-vmm's devices from inside the guest (PVH entry, paging
 * off, so guest-physical = virtual). The command line says what to expect:
 *   rng=1  a virtio-rng device: 64 random bytes, not all zero
 *   blk=1  a virtio-blk device: write a pattern at sector 1, FLUSH, read it
 *          back; read sector 0 (the host test fills it with (i * 7 + 3) & 0xff);
 *          a read beyond the capacity must fail with IOERR
 * Devices are found by probing the windows from 0xD0000000 (4 KiB each) for
 * the magic value, version 2 and the device id. Each request must also set
 * the used-buffer bit in InterruptStatus (the device raised its interrupt).
 * Each failed step reports its own code through the debug-exit port:
 * rng 10-15, blk 20-32 (see the fail() calls). */
#include "payload.h"
#include "pvh.h"

void payload_main(const struct hvm_start_info *si);

#define MMIO_BASE   0xD0000000u
#define MMIO_SIZE   0x1000u
#define MMIO_PROBE  19           /* windows to probe (one per I/O APIC pin) */

#define R_MAGIC       0x000
#define R_VERSION     0x004
#define R_DEVICE_ID   0x008
#define R_DEV_FEAT    0x010
#define R_DEV_FEAT_SEL 0x014
#define R_DRV_FEAT    0x020
#define R_DRV_FEAT_SEL 0x024
#define R_QUEUE_SEL   0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM   0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INT_STATUS  0x060
#define R_INT_ACK     0x064
#define R_STATUS      0x070
#define R_DESC_LO     0x080
#define R_DESC_HI     0x084
#define R_DRIVER_LO   0x090
#define R_DRIVER_HI   0x094
#define R_DEVICE_LO   0x0a0
#define R_DEVICE_HI   0x0a4
#define R_CONFIG      0x100

#define S_ACK 1u
#define S_DRIVER 2u
#define S_DRIVER_OK 4u
#define S_FEATURES_OK 8u

#define D_NEXT 1u
#define D_WRITE 2u

#define QSZ 8

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };

struct ring {
	struct desc desc[QSZ];                        /* 16-byte aligned */
	uint16_t avail[2 + QSZ + 1] __attribute__((aligned(64)));
	uint32_t used[1 + 2 * QSZ + 1] __attribute__((aligned(64)));  /* flags|idx, {id, len}..., avail_event */
} __attribute__((aligned(4096)));

struct vdev {
	uint32_t base;
	volatile struct ring *r;
	uint16_t avail_idx, used_seen;
};

static struct ring rings[2];
static struct vdev devs[2];

static void barrier(void) { __asm__ volatile("" : : : "memory"); }

static uint32_t rd(const struct vdev *d, uint32_t off) { return *(volatile uint32_t *)(uintptr_t)(d->base + off); }
static void wr(const struct vdev *d, uint32_t off, uint32_t v) { *(volatile uint32_t *)(uintptr_t)(d->base + off) = v; }

static __attribute__((noreturn)) void fail(uint8_t code, const char *what, uint32_t value)
{
	serial_puts("gureum-vmm virtio: FAILED: ");
	serial_puts(what);
	serial_puts(" ");
	serial_hex(value);
	serial_puts("\n");
	debug_exit(code);
}

/* The first window with a version-2 device of this id; base 0 when none. */
static uint32_t probe(uint32_t id)
{
	for (uint32_t i = 0; i < MMIO_PROBE; i++) {
		struct vdev d = { .base = MMIO_BASE + i * MMIO_SIZE };
		if (rd(&d, R_MAGIC) != 0x74726976u || rd(&d, R_VERSION) != 2)
			continue;
		if (rd(&d, R_DEVICE_ID) == id)
			return d.base;
	}
	return 0;
}

/* Reset, negotiate VERSION_1 (+ want_lo), set up queue 0. Returns 0 or the
 * failing step (1..5). *dev_lo gets the device's low feature word. */
static int setup(struct vdev *d, volatile struct ring *r, uint32_t want_lo, uint32_t *dev_lo)
{
	d->r = r;
	d->avail_idx = d->used_seen = 0;
	wr(d, R_STATUS, 0);
	if (rd(d, R_STATUS) != 0)
		return 1;
	wr(d, R_STATUS, S_ACK);
	wr(d, R_STATUS, S_ACK | S_DRIVER);
	wr(d, R_DEV_FEAT_SEL, 0);
	*dev_lo = rd(d, R_DEV_FEAT);
	wr(d, R_DEV_FEAT_SEL, 1);
	if (!(rd(d, R_DEV_FEAT) & 1))
		return 2;                               /* no VIRTIO_F_VERSION_1 */
	wr(d, R_DRV_FEAT_SEL, 0);
	wr(d, R_DRV_FEAT, want_lo & *dev_lo);
	wr(d, R_DRV_FEAT_SEL, 1);
	wr(d, R_DRV_FEAT, 1);
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd(d, R_STATUS) & S_FEATURES_OK))
		return 3;
	wr(d, R_QUEUE_SEL, 0);
	if (rd(d, R_QUEUE_NUM_MAX) < QSZ || rd(d, R_QUEUE_READY) != 0)
		return 4;
	wr(d, R_QUEUE_NUM, QSZ);
	wr(d, R_DESC_LO, (uint32_t)(uintptr_t)r->desc);
	wr(d, R_DESC_HI, 0);
	wr(d, R_DRIVER_LO, (uint32_t)(uintptr_t)r->avail);
	wr(d, R_DRIVER_HI, 0);
	wr(d, R_DEVICE_LO, (uint32_t)(uintptr_t)r->used);
	wr(d, R_DEVICE_HI, 0);
	wr(d, R_QUEUE_READY, 1);
	if (rd(d, R_QUEUE_READY) != 1)
		return 5;
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return 0;
}

/* Posts a chain of n descriptors (already filled from index 0), notifies,
 * polls the used ring. Returns the used length, or -1 on a timeout, -2 when
 * the interrupt bit was not set. */
static int submit(struct vdev *d, int n)
{
	volatile struct ring *r = d->r;
	for (int i = 0; i < n; i++) {
		r->desc[i].flags = (uint16_t)(r->desc[i].flags | (i + 1 < n ? D_NEXT : 0));
		r->desc[i].next = (uint16_t)(i + 1);
	}
	r->avail[0] = 0;   /* we poll, but want the device to raise its interrupt anyway */
	r->avail[2 + (d->avail_idx % QSZ)] = 0;
	barrier();
	r->avail[1] = ++d->avail_idx;
	barrier();
	wr(d, R_QUEUE_NOTIFY, 0);
	for (int spin = 0; (uint16_t)(r->used[0] >> 16) == d->used_seen; spin++)
		if (spin > 100000)
			return -1;
	barrier();
	uint32_t slot = d->used_seen % QSZ;
	d->used_seen++;
	int len = (int)r->used[1 + 2 * slot + 1];
	if (!(rd(d, R_INT_STATUS) & 1))
		return -2;
	wr(d, R_INT_ACK, 1);
	return len;
}

static void set_desc(volatile struct ring *r, int i, const volatile void *p, uint32_t len, uint16_t flags)
{
	r->desc[i].addr = (uint32_t)(uintptr_t)p;
	r->desc[i].len = len;
	r->desc[i].flags = flags;
}

static void test_rng(void)
{
	static uint8_t buf[64];
	struct vdev *d = &devs[0];
	d->base = probe(4);
	if (!d->base)
		fail(10, "no virtio-rng device", 0);
	uint32_t lo;
	int s = setup(d, &rings[0], 0, &lo);
	if (s)
		fail(11, "rng setup step", (uint32_t)s);
	set_desc(d->r, 0, buf, sizeof(buf), D_WRITE);
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
	set_desc(d->r, n++, &hdr, sizeof(hdr), 0);
	if (with_data)
		set_desc(d->r, n++, data, sizeof(data), type == 0 ? D_WRITE : 0);
	set_desc(d->r, n++, &status, 1, D_WRITE);
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
	d->base = probe(2);
	if (!d->base)
		fail(20, "no virtio-blk device", 0);
	uint32_t lo;
	int s = setup(d, &rings[1], 1u << 9 /* FLUSH */, &lo);
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
