/* Split virtqueues (virtio 1.x, section 2.7) over guest memory. Every index,
 * address and length the guest supplies is validated: a bad descriptor ends
 * the chain with an error (the device then sets NEEDS_RESET), never an
 * access outside guest RAM, a crash or an endless loop. */
#ifndef GR_VMM_VIRTQUEUE_H
#define GR_VMM_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmm/guest_mem.h"

#define VQ_MAX_SIZE 1024         /* largest queue size a device offers */
#define VQ_MAX_CHAIN_BYTES (1u << 30)

/* Descriptor flags (virtio 1.x 2.7.5). */
#define VIRTQ_DESC_F_NEXT     1u
#define VIRTQ_DESC_F_WRITE    2u
#define VIRTQ_DESC_F_INDIRECT 4u
/* Avail ring flags (driver -> device) and used ring flags (device -> driver). */
#define VRING_AVAIL_F_NO_INTERRUPT 1u
#define VRING_USED_F_NO_NOTIFY     1u

/* Ring sizes in bytes for a queue of n entries, event fields included. */
#define VQ_DESC_BYTES(n)  (16ULL * (n))
#define VQ_AVAIL_BYTES(n) (6ULL + 2ULL * (n))
#define VQ_USED_BYTES(n)  (6ULL + 8ULL * (n))

/* The spec's test for VIRTIO_F_EVENT_IDX: has new_idx passed event_idx
 * since old? (all arithmetic modulo 2^16) */
static inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

struct virtqueue {
	uint16_t size;               /* power of two, <= VQ_MAX_SIZE; 0 = not set up */
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail;         /* next avail ring slot to take */
	uint16_t used_idx;           /* next used ring slot to fill */
	bool event_idx;              /* VIRTIO_F_EVENT_IDX negotiated */
	bool broken;                 /* a validation failure happened */
};

/* One buffer of a chain, already translated and bounds-checked. */
struct vq_buf {
	uint8_t *host;
	uint32_t len;
	bool write;                  /* device-writable */
};

struct vq_chain {
	uint16_t head;               /* descriptor index to return in the used ring */
	size_t n;
	struct vq_buf bufs[VQ_MAX_SIZE];
	uint64_t read_len, write_len;/* totals of the readable and writable parts */
};

/* Checks the ring addresses (alignment, inside RAM) when the driver sets
 * QueueReady; returns false when the queue cannot be used. */
bool vq_validate(const struct guest_mem *gm, struct virtqueue *vq);
/* Takes the next available chain: 1 when one was taken, 0 when none is
 * pending, -EINVAL when the guest's ring or descriptors are invalid (and then
 * marks the queue broken). Readable buffers come before writable ones. */
int vq_pop(const struct guest_mem *gm, struct virtqueue *vq, struct vq_chain *out);
/* Returns a chain to the driver with the number of bytes written. */
int vq_push(const struct guest_mem *gm, struct virtqueue *vq, uint16_t head, uint32_t written);
/* Returns n chains at once: the entries are written first, the used index
 * is published once, so the driver sees all of them or none (virtio-net's
 * merged receive buffers). n <= the queue size. */
struct vq_used { uint16_t head; uint32_t len; };
int vq_push_n(const struct guest_mem *gm, struct virtqueue *vq, const struct vq_used *used, size_t n);
/* Gives back the last n chains taken by vq_pop (not yet pushed): the next
 * vq_pop takes them again (virtio-net, when a frame does not fit). */
void vq_unpop(struct virtqueue *vq, uint16_t n);
/* Should the driver be interrupted (honours VRING_AVAIL_F_NO_INTERRUPT / used_event)? */
bool vq_should_notify(const struct guest_mem *gm, struct virtqueue *vq, uint16_t old_used);

/* Forgets the queue's addresses, size and indexes (device reset); size
 * becomes `size` (the device's default, may be 0). */
void vq_reset(struct virtqueue *vq, uint16_t size);

#endif
