/* What the virtqueue and virtio device unit tests share: the driver's side
 * of a virtio-mmio device (32-bit register access, feature negotiation,
 * queue setup) and split rings crafted in guest memory (descriptors, the
 * avail ring, the used ring). Include after cmocka.h. */
#ifndef GR_TEST_VQ_FIXTURE_H
#define GR_TEST_VQ_FIXTURE_H

#include <stdint.h>
#include <string.h>
#include "vmm/guest_mem.h"
#include "vmm/devices/virtio_mmio.h"

static inline uint32_t vqf_rd(struct virtio_mmio_dev *d, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	virtio_mmio_read(d, off, &v, 4);
	return v;
}

static inline void vqf_wr(struct virtio_mmio_dev *d, uint64_t off, uint32_t v)
{
	virtio_mmio_write(d, off, &v, 4);
}

/* The driver's side of 3.1.1 from ACKNOWLEDGE up to FEATURES_OK (features:
 * both words, VIRTIO_F_VERSION_1 included by the caller; no reset first:
 * write 0 to the status for one); the status read back. */
static inline uint32_t vqf_negotiate(struct virtio_mmio_dev *d, uint64_t features)
{
	vqf_wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	vqf_wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vqf_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vqf_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	vqf_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vqf_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	vqf_wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	return vqf_rd(d, VIRTIO_MMIO_STATUS);
}

/* Queue q with num entries at desc/avail/used, set ready (not checked). */
static inline void vqf_queue(struct virtio_mmio_dev *d, uint32_t q, uint32_t num, uint64_t desc, uint64_t avail,
			     uint64_t used)
{
	vqf_wr(d, VIRTIO_MMIO_QUEUE_SEL, q);
	vqf_wr(d, VIRTIO_MMIO_QUEUE_NUM, num);
	vqf_wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vqf_wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vqf_wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
	vqf_wr(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
	vqf_wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
	vqf_wr(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
	vqf_wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
}

static inline void vqf_driver_ok(struct virtio_mmio_dev *d)
{
	vqf_wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
				      VIRTIO_STATUS_DRIVER_OK);
}

/* Descriptor i of the table at table. */
static inline void vqf_desc(const struct guest_mem *gm, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
			    uint16_t flags, uint16_t next)
{
	uint8_t d[16];
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	assert_int_equal(gm_write(gm, table + 16ULL * i, d, 16), 0);
}

/* Makes head available on the avail ring at avail (a queue of size
 * entries) and publishes the new index; *idx is the driver's avail index. */
static inline void vqf_offer(const struct guest_mem *gm, uint64_t avail, uint16_t size, uint16_t *idx, uint16_t head)
{
	assert_int_equal(gm_write(gm, avail + 4 + 2ULL * (*idx % size), &head, 2), 0);
	++*idx;
	assert_int_equal(gm_write(gm, avail + 2, idx, 2), 0);
}

/* The used ring at used: its index, and element slot (mod size). */
static inline uint16_t vqf_used_idx(const struct guest_mem *gm, uint64_t used)
{
	uint16_t v;
	assert_int_equal(gm_read(gm, used + 2, &v, 2), 0);
	return v;
}

static inline void vqf_used_elem(const struct guest_mem *gm, uint64_t used, uint16_t size, uint16_t slot, uint32_t *id,
				 uint32_t *len)
{
	uint32_t e[2];
	assert_int_equal(gm_read(gm, used + 4 + 8ULL * (slot % size), e, 8), 0);
	*id = e[0];
	*len = e[1];
}

#endif
