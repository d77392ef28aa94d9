/* virtio-rng (virtio 1.x, 5.4; device id 4): one queue whose device-writable
 * buffers the device fills with getrandom() bytes. Readable buffers in a
 * chain are ignored. Requests are served on the notifying vCPU's thread. */
#ifndef GR_VMM_VIRTIO_RNG_H
#define GR_VMM_VIRTIO_RNG_H

#include <stdint.h>
#include "common/error.h"
#include "vmm/devices/virtio_mmio.h"

struct virtio_rng {
	struct virtio_mmio_dev mmio;   /* the transport; route the window to it */
	struct vq_chain chain;         /* scratch, under the device's lock */
	uint64_t requests, bytes;      /* metrics */
};

/* irq/irq_opaque: how the transport raises the interrupt (e.g. vm_irq_edge). */
int virtio_rng_init(struct virtio_rng *rng, const struct guest_mem *gm, virtio_mmio_irq_fn irq, void *irq_opaque,
		    struct gr_error *err);

#endif
