/* virtio-rng: fills the driver's writable buffers from getrandom(). */
#include "vmm/devices/virtio_rng.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

/* Fills one buffer; returns the bytes written (less than len only when
 * getrandom fails, which it does not for the urandom pool once seeded). */
static uint32_t fill_random(uint8_t *p, uint32_t len)
{
	uint32_t done = 0;
	while (done < len) {
		ssize_t n = getrandom(p + done, len - done, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		done += (uint32_t)n;
	}
	return done;
}

/* Fills every device-writable buffer of the chain with random bytes. */
static uint32_t rng_serve(void *opaque, struct vq_chain *chain)
{
	struct virtio_rng *rng = opaque;
	uint64_t written = 0;
	for (size_t i = 0; i < chain->n; i++) {
		const struct vq_buf *b = &chain->bufs[i];
		if (!b->write)
			continue;
		uint32_t got = fill_random(b->host, b->len);
		written += got;
		if (got < b->len)
			break;
	}
	rng->requests++;
	rng->bytes += written;
	return (uint32_t)written;
}

static void rng_notify(struct virtio_mmio_dev *dev, uint32_t index)
{
	struct virtio_rng *rng = dev->opaque;
	virtio_mmio_serve_queue(dev, index, &rng->chain, rng_serve, rng);
}

static const struct virtio_mmio_ops rng_ops = {
	.queue_notify = rng_notify,
};

int virtio_rng_init(struct virtio_rng *rng, const struct guest_mem *gm, virtio_mmio_irq_fn irq, void *irq_opaque,
		    struct gr_error *err)
{
	memset(rng, 0, sizeof(*rng));
	struct virtio_mmio_params p = {
		.device_id = VIRTIO_ID_RNG, .features = 0, .num_queues = 1, .queue_num_max = 0,
		.config_size = 0, .ops = &rng_ops, .opaque = rng, .irq = irq, .irq_opaque = irq_opaque,
	};
	int r = virtio_mmio_init(&rng->mmio, gm, &p, err);
	if (r < 0)
		return gr_error_prefix(err, "virtio-rng");
	return 0;
}
