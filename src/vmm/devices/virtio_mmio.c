/* The virtio-mmio transport, version 2 (virtio 1.x, 4.2.2). */
#include "vmm/devices/virtio_mmio.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

int virtio_mmio_init(struct virtio_mmio_dev *dev, const struct guest_mem *gm,
		     const struct virtio_mmio_params *p, struct gr_error *err)
{
	memset(dev, 0, sizeof(*dev));
	if (!gm)
		return gr_error_set(err, EINVAL, "virtio-mmio: no guest memory");
	if (p->device_id == 0)
		return gr_error_set(err, EINVAL, "virtio-mmio: device id 0 is reserved (no device)");
	if (p->num_queues == 0 || p->num_queues > VIRTIO_MMIO_MAX_QUEUES)
		return gr_error_set(err, EINVAL, "virtio-mmio: device %u: %u queues, must be 1..%d",
				    p->device_id, p->num_queues, VIRTIO_MMIO_MAX_QUEUES);
	uint16_t qmax = p->queue_num_max ? p->queue_num_max : VQ_MAX_SIZE / 4;
	if (qmax > VQ_MAX_SIZE || (qmax & (qmax - 1)))
		return gr_error_set(err, EINVAL, "virtio-mmio: device %u: queue size %u is not a power of two <= %d",
				    p->device_id, qmax, VQ_MAX_SIZE);
	if (p->config_size > VIRTIO_MMIO_CONFIG_MAX)
		return gr_error_set(err, EINVAL, "virtio-mmio: device %u: config space of %u bytes, at most %u",
				    p->device_id, p->config_size, VIRTIO_MMIO_CONFIG_MAX);
	dev->gm = gm;
	dev->device_id = p->device_id;
	dev->vendor_id = VIRTIO_MMIO_VENDOR;
	dev->device_features = p->features | (1ULL << VIRTIO_F_VERSION_1);
	dev->num_queues = p->num_queues;
	dev->queue_num_max = qmax;
	dev->config_size = p->config_size;
	dev->config = p->config;
	dev->ops = p->ops;
	dev->opaque = p->opaque;
	dev->irq = p->irq;
	dev->irq_opaque = p->irq_opaque;
	for (uint32_t i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		vq_reset(&dev->queues[i], i < dev->num_queues ? qmax : 0);
	return 0;
}

struct virtqueue *virtio_mmio_queue(struct virtio_mmio_dev *dev, uint32_t index)
{
	return index < dev->num_queues ? &dev->queues[index] : NULL;
}

bool virtio_mmio_has_feature(const struct virtio_mmio_dev *dev, unsigned bit)
{
	return bit < 64 && (dev->acked_features >> bit) & 1;
}

void virtio_mmio_raise(struct virtio_mmio_dev *dev, uint32_t bits)
{
	__atomic_fetch_or(&dev->interrupt_status, bits, __ATOMIC_SEQ_CST);
	if (dev->irq)
		dev->irq(dev->irq_opaque, true);
}

void virtio_mmio_set_needs_reset(struct virtio_mmio_dev *dev)
{
	dev->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	virtio_mmio_raise(dev, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_config_changed(struct virtio_mmio_dev *dev)
{
	dev->config_generation++;
	virtio_mmio_raise(dev, VIRTIO_MMIO_INT_CONFIG);
}

bool virtio_mmio_signal_used(struct virtio_mmio_dev *dev, uint32_t index, uint16_t old_used)
{
	struct virtqueue *vq = virtio_mmio_queue(dev, index);
	if (!vq || !vq_should_notify(dev->gm, vq, old_used))
		return false;
	virtio_mmio_raise(dev, VIRTIO_MMIO_INT_VRING);
	return true;
}

void virtio_mmio_reset(struct virtio_mmio_dev *dev)
{
	dev->driver_features = 0;
	dev->acked_features = 0;
	dev->device_features_sel = dev->driver_features_sel = 0;
	dev->queue_sel = 0;
	dev->status = 0;
	for (uint32_t i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		vq_reset(&dev->queues[i], i < dev->num_queues ? dev->queue_num_max : 0);
	uint32_t was = __atomic_exchange_n(&dev->interrupt_status, 0, __ATOMIC_SEQ_CST);
	if (was && dev->irq)
		dev->irq(dev->irq_opaque, false);
	if (dev->ops && dev->ops->reset)
		dev->ops->reset(dev);
}

/* Offers FEATURES_OK: accepted only when the driver took nothing the device
 * did not offer, and took VIRTIO_F_VERSION_1 (this transport is modern only). */
static bool features_accept(struct virtio_mmio_dev *dev)
{
	uint64_t f = dev->driver_features;
	if (f & ~dev->device_features)
		return false;
	if (!(f & (1ULL << VIRTIO_F_VERSION_1)))
		return false;
	dev->acked_features = f;
	return true;
}

static void status_write(struct virtio_mmio_dev *dev, uint32_t val)
{
	if (val == 0) {
		virtio_mmio_reset(dev);
		return;
	}
	uint32_t old = dev->status;
	/* Bits only accumulate until a reset; NEEDS_RESET is the device's. */
	uint32_t status = old | (val & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	if ((status & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		if (!features_accept(dev))
			status &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	/* DRIVER_OK without negotiated features is not a working device. */
	if (!(status & VIRTIO_STATUS_FEATURES_OK))
		status &= ~VIRTIO_STATUS_DRIVER_OK;
	dev->status = status;
	if ((status & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    dev->ops && dev->ops->activate)
		dev->ops->activate(dev);
}

static struct virtqueue *selected_queue(struct virtio_mmio_dev *dev)
{
	return virtio_mmio_queue(dev, dev->queue_sel);
}

static void queue_ready_write(struct virtio_mmio_dev *dev, struct virtqueue *vq, uint32_t val)
{
	if (val == 0) {
		vq->ready = false;
		return;
	}
	if (vq->ready)
		return;
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->broken = false;
	vq->event_idx = virtio_mmio_has_feature(dev, VIRTIO_F_EVENT_IDX);
	if (!vq_validate(dev->gm, vq)) {
		virtio_mmio_set_needs_reset(dev);
		return;
	}
	vq->ready = true;
}

static void set_low(uint64_t *v, uint32_t lo)
{
	*v = (*v & 0xffffffff00000000ULL) | lo;
}

static void set_high(uint64_t *v, uint32_t hi)
{
	*v = (*v & 0xffffffffULL) | ((uint64_t)hi << 32);
}

static uint32_t reg_read(struct virtio_mmio_dev *dev, uint64_t offset)
{
	struct virtqueue *vq;
	switch (offset) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return VIRTIO_MMIO_VERSION_2;
	case VIRTIO_MMIO_DEVICE_ID:
		return dev->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return dev->vendor_id;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (dev->device_features_sel > 1)
			return 0;
		return (uint32_t)(dev->device_features >> (32 * dev->device_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return selected_queue(dev) ? dev->queue_num_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		vq = selected_queue(dev);
		return vq ? vq->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return __atomic_load_n(&dev->interrupt_status, __ATOMIC_SEQ_CST);
	case VIRTIO_MMIO_STATUS:
		return dev->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return dev->config_generation;
	default:
		return 0;    /* write-only and reserved registers */
	}
}

static void reg_write(struct virtio_mmio_dev *dev, uint64_t offset, uint32_t val)
{
	switch (offset) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		dev->device_features_sel = val;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		/* Frozen once FEATURES_OK was accepted. */
		if (dev->status & VIRTIO_STATUS_FEATURES_OK || dev->driver_features_sel > 1)
			return;
		if (dev->driver_features_sel == 0)
			set_low(&dev->driver_features, val);
		else
			set_high(&dev->driver_features, val);
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		dev->driver_features_sel = val;
		return;
	case VIRTIO_MMIO_QUEUE_SEL:
		dev->queue_sel = val;
		return;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (val < dev->num_queues && dev->queues[val].ready &&
		    dev->ops && dev->ops->queue_notify)
			dev->ops->queue_notify(dev, val);
		return;
	case VIRTIO_MMIO_INTERRUPT_ACK: {
		uint32_t left = __atomic_and_fetch(&dev->interrupt_status, ~val, __ATOMIC_SEQ_CST);
		if (left == 0 && dev->irq)
			dev->irq(dev->irq_opaque, false);
		return;
	}
	case VIRTIO_MMIO_STATUS:
		status_write(dev, val);
		return;
	}

	/* The queue registers: only for an existing queue that is not ready. */
	struct virtqueue *vq = selected_queue(dev);
	if (!vq)
		return;
	if (offset == VIRTIO_MMIO_QUEUE_READY) {
		queue_ready_write(dev, vq, val);
		return;
	}
	if (vq->ready)
		return;
	switch (offset) {
	case VIRTIO_MMIO_QUEUE_NUM:
		/* An invalid size leaves the queue unusable: QueueReady will fail. */
		if (val && val <= dev->queue_num_max && (val & (val - 1)) == 0)
			vq->size = (uint16_t)val;
		else
			vq->size = 0;
		return;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:    set_low(&vq->desc_gpa, val); return;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:   set_high(&vq->desc_gpa, val); return;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:  set_low(&vq->avail_gpa, val); return;
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH: set_high(&vq->avail_gpa, val); return;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:  set_low(&vq->used_gpa, val); return;
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH: set_high(&vq->used_gpa, val); return;
	}
}

/* Config space access [offset, offset + len) relative to its start: false
 * when it is not entirely inside. */
static bool config_range_ok(const struct virtio_mmio_dev *dev, uint64_t off, uint32_t len)
{
	return off <= dev->config_size && len <= dev->config_size - off;
}

void virtio_mmio_read(struct virtio_mmio_dev *dev, uint64_t offset, void *data, uint32_t len)
{
	memset(data, 0, len);
	if (offset >= VIRTIO_MMIO_CONFIG) {
		uint64_t off = offset - VIRTIO_MMIO_CONFIG;
		if (!len || len > 8 || !config_range_ok(dev, off, len))
			return;
		if (dev->ops && dev->ops->config_read)
			dev->ops->config_read(dev, (uint32_t)off, data, len);
		else if (dev->config)
			memcpy(data, (const uint8_t *)dev->config + off, len);
		return;
	}
	if (len != 4 || offset % 4)
		return;
	uint32_t v = htole32(reg_read(dev, offset));
	memcpy(data, &v, 4);
}

void virtio_mmio_write(struct virtio_mmio_dev *dev, uint64_t offset, const void *data, uint32_t len)
{
	if (offset >= VIRTIO_MMIO_CONFIG) {
		uint64_t off = offset - VIRTIO_MMIO_CONFIG;
		if (len && len <= 8 && config_range_ok(dev, off, len) && dev->ops && dev->ops->config_write)
			dev->ops->config_write(dev, (uint32_t)off, data, len);
		return;
	}
	if (len != 4 || offset % 4)
		return;
	uint32_t v;
	memcpy(&v, data, 4);
	reg_write(dev, offset, le32toh(v));
}

void virtio_mmio_serve_queue(struct virtio_mmio_dev *dev, uint32_t index, struct vq_chain *chain,
			     uint32_t (*handle)(void *opaque, struct vq_chain *chain), void *opaque)
{
	struct virtqueue *vq = virtio_mmio_queue(dev, index);
	if (!vq)
		return;
	uint16_t old_used = vq->used_idx;
	bool pushed = false;
	for (uint32_t n = 0; n < vq->size; n++) {
		int r = vq_pop(dev->gm, vq, chain);
		if (r == 0)
			break;
		if (r < 0) {
			virtio_mmio_set_needs_reset(dev);
			break;
		}
		uint32_t written = handle(opaque, chain);
		if (vq_push(dev->gm, vq, chain->head, written) < 0) {
			virtio_mmio_set_needs_reset(dev);
			break;
		}
		pushed = true;
	}
	if (pushed)
		virtio_mmio_signal_used(dev, index, old_used);
}
