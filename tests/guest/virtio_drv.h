/* A minimal virtio-mmio driver (virtio 1.x, modern transport) shared by the
 * payloads that talk to gureum-vmm's devices (virtio.c, irq.c, net.c,
 * console.c, vsock.c). PVH entry, paging off: guest-physical = virtual.
 * Devices are found by probing the windows from 0xD0000000 (4 KiB each, one
 * per I/O APIC pin from GSI 5) for the magic value, version 2 and the device
 * id. Split virtqueues of QSZ entries (struct vq); single-queue devices use
 * vdrv_setup and the queue in struct vdev, others vdrv_negotiate, vdrv_queue
 * per queue and vdrv_driver_ok. Freestanding; include after payload.h. */
#ifndef GR_GUEST_VIRTIO_DRV_H
#define GR_GUEST_VIRTIO_DRV_H

#include <stdint.h>

#define MMIO_BASE   0xD0000000u
#define MMIO_SIZE   0x1000u
#define MMIO_PROBE  19           /* windows to probe (one per I/O APIC pin) */
#define MMIO_GSI_BASE 5          /* window n raises GSI 5 + n */

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

/* One split virtqueue: its ring, our indices into it, its number. */
struct vq {
	volatile struct ring *r;
	uint16_t avail_idx, used_seen;
	uint32_t index;
};

struct vdev {
	uint32_t base;
	struct vq q;                  /* queue 0, as vdrv_setup sets it up */
};

static inline void barrier(void) { __asm__ volatile("" : : : "memory"); }

static inline uint32_t rd(const struct vdev *d, uint32_t off)
{
	return *(volatile uint32_t *)(uintptr_t)(d->base + off);
}
static inline void wr(const struct vdev *d, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(d->base + off) = v;
}

/* The first window with a version-2 device of this id; base 0 when none. */
static inline uint32_t vdrv_probe(uint32_t id)
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

/* The GSI of the device at window base. */
static inline uint32_t vdrv_gsi(uint32_t base) { return MMIO_GSI_BASE + (base - MMIO_BASE) / MMIO_SIZE; }

/* Reset, negotiate VERSION_1 (+ want_lo), up to FEATURES_OK. Returns 0 or
 * the failing step (1..3). *dev_lo gets the device's low feature word. */
static inline int vdrv_negotiate(const struct vdev *d, uint32_t want_lo, uint32_t *dev_lo)
{
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
	return 0;
}

/* Sets up queue index on ring r. Returns 0 or the failing step: 4 (too
 * small, or already ready), 5 (not ready after the write). */
static inline int vdrv_queue(const struct vdev *d, struct vq *q, uint32_t index, volatile struct ring *r)
{
	*q = (struct vq){ .r = r, .index = index };
	wr(d, R_QUEUE_SEL, index);
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
	return rd(d, R_QUEUE_READY) == 1 ? 0 : 5;
}

static inline void vdrv_driver_ok(const struct vdev *d)
{
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

/* A single-queue device: vdrv_negotiate, queue 0 on r, DRIVER_OK. Returns 0
 * or the failing step (1..5). */
static inline int vdrv_setup(struct vdev *d, volatile struct ring *r, uint32_t want_lo, uint32_t *dev_lo)
{
	int s = vdrv_negotiate(d, want_lo, dev_lo);
	if (s == 0)
		s = vdrv_queue(d, &d->q, 0, r);
	if (s == 0)
		vdrv_driver_ok(d);
	return s;
}

static inline void vdrv_set_desc(volatile struct ring *r, int i, const volatile void *p, uint32_t len,
				 uint16_t flags)
{
	r->desc[i].addr = (uint32_t)(uintptr_t)p;
	r->desc[i].len = len;
	r->desc[i].flags = flags;
}

/* Makes the chain at head (its descriptors filled) available on q with
 * interrupts wanted (avail flags 0); notifies the device when told. */
static inline void vdrv_offer(const struct vdev *d, struct vq *q, uint16_t head, int notify)
{
	q->r->avail[0] = 0;
	q->r->avail[2 + (q->avail_idx % QSZ)] = head;
	barrier();
	q->r->avail[1] = ++q->avail_idx;
	barrier();
	if (notify)
		wr(d, R_QUEUE_NOTIFY, q->index);
}

/* Chains the n descriptors filled from index 0 of queue 0 and offers them. */
static inline void vdrv_post(struct vdev *d, int n)
{
	volatile struct ring *r = d->q.r;
	for (int i = 0; i < n; i++) {
		r->desc[i].flags = (uint16_t)(r->desc[i].flags | (i + 1 < n ? D_NEXT : 0));
		r->desc[i].next = (uint16_t)(i + 1);
	}
	vdrv_offer(d, &d->q, 0, 1);
}

/* Whether the device has returned a buffer on q not yet taken with vdrv_take. */
static inline int vdrv_pending(const struct vq *q)
{
	return (uint16_t)(q->r->used[0] >> 16) != q->used_seen;
}

/* Takes the next used element of q: its length (its head in *id unless id
 * is 0). Call when vdrv_pending. */
static inline uint32_t vdrv_take(struct vq *q, uint32_t *id)
{
	barrier();
	uint32_t slot = q->used_seen % QSZ;
	q->used_seen++;
	if (id)
		*id = q->r->used[1 + 2 * slot];
	return q->r->used[1 + 2 * slot + 1];
}

/* Polls q for the next used element: 1 with its length (and head), or 0
 * after spins rounds of pause. */
static inline int vdrv_wait(struct vq *q, uint32_t spins, uint32_t *len, uint32_t *id)
{
	for (uint32_t spin = 0; !vdrv_pending(q); spin++) {
		if (spin > spins)
			return 0;
		__asm__ volatile("pause");
	}
	*len = vdrv_take(q, id);
	return 1;
}

/* Polls queue 0 for the next used element: its length, or -1 after a bounded spin. */
static inline int vdrv_poll(struct vdev *d)
{
	uint32_t len;
	return vdrv_wait(&d->q, 100000, &len, 0) ? (int)len : -1;
}

#endif
