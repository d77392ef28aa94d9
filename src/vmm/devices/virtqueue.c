/* Split virtqueues (virtio 1.x, section 2.7) over guest memory.
 *
 * Everything in the rings belongs to the guest and may change under us at any
 * moment, so:
 *  - every ring index and descriptor is read exactly once into a local copy,
 *    and only the copy is checked and used (no double fetch);
 *  - every range is translated with gm_ptr(), which bounds it to guest RAM;
 *  - the walk of a chain is bounded by the queue size (or the indirect
 *    table's entry count), so a loop in `next` ends with -EINVAL;
 *  - the ring pointers are recomputed and rechecked on every call, so a queue
 *    that was never validated cannot be used to reach outside RAM.
 *
 * Memory ordering follows the spec (2.7.13, 2.7.7): the avail index is read
 * with acquire semantics before the ring entries and descriptors it covers;
 * used entries are written before the used index is published with release
 * semantics; a full barrier separates publishing the used index from reading
 * the driver's suppression fields, and writing avail_event from re-reading
 * the avail index. */
#include "vmm/devices/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

struct vq_rings {
	uint8_t *desc;      /* size * 16 bytes */
	uint16_t *avail;    /* [0] flags, [1] idx, [2 .. 2+size) ring, [2+size] used_event */
	uint8_t *used;      /* flags u16, idx u16, ring[size] of {u32 id, u32 len}, avail_event u16 */
};

static bool vq_size_ok(uint16_t size)
{
	return size && size <= VQ_MAX_SIZE && (size & (size - 1)) == 0;
}

/* Host pointers of the three rings, after checking size, alignment and that
 * every ring lies inside RAM. */
static bool vq_map(const struct guest_mem *gm, const struct virtqueue *vq, struct vq_rings *r)
{
	if (!gm || !vq_size_ok(vq->size))
		return false;
	if (vq->desc_gpa % 16 || vq->avail_gpa % 2 || vq->used_gpa % 4)
		return false;
	r->desc = gm_ptr(gm, vq->desc_gpa, VQ_DESC_BYTES(vq->size));
	r->avail = gm_ptr(gm, vq->avail_gpa, VQ_AVAIL_BYTES(vq->size));
	r->used = gm_ptr(gm, vq->used_gpa, VQ_USED_BYTES(vq->size));
	if (!r->desc || !r->avail || !r->used)
		return false;
	/* gm_ptr keeps the gpa's offset within a page-aligned mapping, so the
	 * host pointers are aligned like the guest addresses; check anyway, the
	 * atomic accesses below rely on it. */
	if ((uintptr_t)r->avail % 2 || (uintptr_t)r->used % 4)
		return false;
	return true;
}

static uint16_t avail_idx_acquire(const struct vq_rings *r)
{
	return le16toh(__atomic_load_n(&r->avail[1], __ATOMIC_ACQUIRE));
}

static uint16_t *used_idx_ptr(const struct vq_rings *r)
{
	return (uint16_t *)(void *)(r->used + 2);
}

static uint16_t *avail_event_ptr(const struct vq_rings *r, uint16_t size)
{
	return (uint16_t *)(void *)(r->used + 4 + 8 * (size_t)size);
}

bool vq_validate(const struct guest_mem *gm, struct virtqueue *vq)
{
	struct vq_rings r;
	return vq_map(gm, vq, &r);
}

void vq_reset(struct virtqueue *vq, uint16_t size)
{
	memset(vq, 0, sizeof(*vq));
	vq->size = size;
}

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* One read of a 16-byte descriptor (possibly unaligned, in an indirect table). */
static void desc_read(const uint8_t *p, struct vq_desc *d)
{
	uint8_t raw[16];
	/* A volatile copy, so the compiler can neither re-read guest memory
	 * later nor split the checks from the use. */
	const volatile uint8_t *src = p;
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = src[i];
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
	memcpy(&addr, raw, 8);
	memcpy(&len, raw + 8, 4);
	memcpy(&flags, raw + 12, 2);
	memcpy(&next, raw + 14, 2);
	d->addr = le64toh(addr);
	d->len = le32toh(len);
	d->flags = le16toh(flags);
	d->next = le16toh(next);
}

static int vq_fail(struct virtqueue *vq)
{
	vq->broken = true;
	return -EINVAL;
}

/* Walks the chain starting at head; fills out. */
static int vq_walk(const struct guest_mem *gm, const struct virtqueue *vq,
		   const struct vq_rings *r, uint16_t head, struct vq_chain *out)
{
	const uint8_t *table = r->desc;   /* current descriptor table */
	uint32_t entries = vq->size;      /* its number of entries */
	uint32_t steps = 0;               /* descriptors visited in this table */
	bool indirect = false, seen_write = false;
	uint16_t i = head;

	out->head = head;
	out->n = 0;
	out->read_len = out->write_len = 0;

	for (;;) {
		if (i >= entries)
			return -EINVAL;          /* head or next out of the table */
		if (++steps > entries)
			return -EINVAL;          /* a loop: longer than the table */
		struct vq_desc d;
		desc_read(table + 16 * (size_t)i, &d);

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (indirect)
				return -EINVAL;  /* nested indirect tables are forbidden */
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return -EINVAL;  /* INDIRECT and NEXT on the same descriptor */
			if (d.len == 0 || d.len % 16 || d.len > VQ_DESC_BYTES(vq->size))
				return -EINVAL;
			const uint8_t *t = gm_ptr(gm, d.addr, d.len);
			if (!t)
				return -EINVAL;
			table = t;
			entries = d.len / 16;
			steps = 0;
			indirect = true;
			i = 0;
			continue;
		}

		/* The whole chain, indirect entries included, is no longer than
		 * the queue (2.7.5.3.1); this also bounds out->bufs. */
		if (out->n >= vq->size)
			return -EINVAL;
		uint8_t *host = gm_ptr(gm, d.addr, d.len);
		if (!host)
			return -EINVAL;          /* outside RAM, or addr + len overflows */
		bool write = d.flags & VIRTQ_DESC_F_WRITE;
		if (write) {
			seen_write = true;
			out->write_len += d.len;
			if (out->write_len > VQ_MAX_CHAIN_BYTES)
				return -EINVAL;
		} else {
			if (seen_write)
				return -EINVAL;  /* readable after writable */
			out->read_len += d.len;
			if (out->read_len > VQ_MAX_CHAIN_BYTES)
				return -EINVAL;
		}
		out->bufs[out->n++] = (struct vq_buf){ .host = host, .len = d.len, .write = write };

		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

int vq_pop(const struct guest_mem *gm, struct virtqueue *vq, struct vq_chain *out)
{
	if (vq->broken)
		return -EINVAL;
	if (!vq->ready)
		return 0;
	struct vq_rings r;
	if (!vq_map(gm, vq, &r))
		return vq_fail(vq);

	uint16_t avail = avail_idx_acquire(&r);
	if (avail == vq->last_avail && vq->event_idx) {
		/* Ask to be notified at the next entry, then look again: the driver
		 * may have added one before it saw the new avail_event. */
		__atomic_store_n(avail_event_ptr(&r, vq->size), htole16(vq->last_avail), __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail = avail_idx_acquire(&r);
	}
	uint16_t pending = (uint16_t)(avail - vq->last_avail);
	if (pending == 0)
		return 0;
	if (pending > vq->size)
		return vq_fail(vq);      /* the driver cannot have more than size buffers out */

	uint16_t slot = vq->last_avail & (vq->size - 1);
	uint16_t head = le16toh(__atomic_load_n(&r.avail[2 + slot], __ATOMIC_RELAXED));
	if (vq_walk(gm, vq, &r, head, out) < 0)
		return vq_fail(vq);

	vq->last_avail++;
	if (vq->event_idx)
		__atomic_store_n(avail_event_ptr(&r, vq->size), htole16(vq->last_avail), __ATOMIC_RELAXED);
	return 1;
}

int vq_push(const struct guest_mem *gm, struct virtqueue *vq, uint16_t head, uint32_t written)
{
	if (vq->broken || !vq->ready)
		return -EINVAL;
	struct vq_rings r;
	if (!vq_map(gm, vq, &r))
		return vq_fail(vq);
	if (head >= vq->size)
		return -EINVAL;

	uint16_t slot = vq->used_idx & (vq->size - 1);
	uint32_t *elem = (uint32_t *)(void *)(r.used + 4 + 8 * (size_t)slot);
	__atomic_store_n(&elem[0], htole32((uint32_t)head), __ATOMIC_RELAXED);
	__atomic_store_n(&elem[1], htole32(written), __ATOMIC_RELAXED);
	vq->used_idx++;
	/* The entry must be visible before the index that covers it. */
	__atomic_store_n(used_idx_ptr(&r), htole16(vq->used_idx), __ATOMIC_RELEASE);
	return 0;
}

int vq_push_n(const struct guest_mem *gm, struct virtqueue *vq, const struct vq_used *used, size_t n)
{
	if (vq->broken || !vq->ready)
		return -EINVAL;
	struct vq_rings r;
	if (!vq_map(gm, vq, &r))
		return vq_fail(vq);
	if (n > vq->size)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (used[i].head >= vq->size)
			return -EINVAL;
	uint16_t idx = vq->used_idx;
	for (size_t i = 0; i < n; i++, idx++) {
		uint32_t *elem = (uint32_t *)(void *)(r.used + 4 + 8 * (size_t)(idx & (vq->size - 1)));
		__atomic_store_n(&elem[0], htole32((uint32_t)used[i].head), __ATOMIC_RELAXED);
		__atomic_store_n(&elem[1], htole32(used[i].len), __ATOMIC_RELAXED);
	}
	vq->used_idx = idx;
	__atomic_store_n(used_idx_ptr(&r), htole16(vq->used_idx), __ATOMIC_RELEASE);
	return 0;
}

void vq_unpop(struct virtqueue *vq, uint16_t n)
{
	/* avail_event (EVENT_IDX) may stay ahead: at worst one notification
	 * more, never one missed. */
	vq->last_avail = (uint16_t)(vq->last_avail - n);
}

bool vq_should_notify(const struct guest_mem *gm, struct virtqueue *vq, uint16_t old_used)
{
	if (!vq->ready)
		return false;
	struct vq_rings r;
	if (!vq_map(gm, vq, &r))
		return false;
	/* The used index we published must be visible before we read what the
	 * driver asked for, or we could miss its request for an interrupt. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vq->event_idx) {
		uint16_t used_event = le16toh(__atomic_load_n(&r.avail[2 + vq->size], __ATOMIC_RELAXED));
		return vring_need_event(used_event, vq->used_idx, old_used);
	}
	uint16_t flags = le16toh(__atomic_load_n(&r.avail[0], __ATOMIC_RELAXED));
	return !(flags & VRING_AVAIL_F_NO_INTERRUPT);
}
