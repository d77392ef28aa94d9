/* The virtio-mmio transport (virtio 1.x, section 4.2), modern only
 * (Version register 2). One struct virtio_mmio_dev per device window; the
 * concrete device (blk, net, ...) supplies its id, features, config space and
 * a queue-notify handler through struct virtio_mmio_ops, and the VMM routes
 * MMIO exits in the device's window to virtio_mmio_read()/virtio_mmio_write()
 * with the offset inside the window.
 *
 * Everything the driver writes is checked: registers are 32 bits wide and
 * aligned (other accesses below the config space read as 0 and are ignored),
 * queue registers are frozen while the queue is ready, QueueReady=1 validates
 * the rings (failure: DEVICE_NEEDS_RESET and a config-change interrupt), and
 * FEATURES_OK is refused for features the device did not offer.
 *
 * Locking: register accesses and device callbacks for one device must be
 * serialized by the caller (the VMM holds a per-device lock). Only
 * InterruptStatus is updated atomically, so a device thread may raise an
 * interrupt while a vCPU acknowledges another. */
#ifndef GR_VMM_VIRTIO_MMIO_H
#define GR_VMM_VIRTIO_MMIO_H

#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"
#include "vmm/guest_mem.h"
#include "vmm/devices/virtqueue.h"

/* Register map (offsets inside the device window). */
#define VIRTIO_MMIO_MAGIC_VALUE         0x000
#define VIRTIO_MMIO_VERSION             0x004
#define VIRTIO_MMIO_DEVICE_ID           0x008
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL           0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_QUEUE_NUM           0x038
#define VIRTIO_MMIO_QUEUE_READY         0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_STATUS              0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc
#define VIRTIO_MMIO_CONFIG              0x100

#define VIRTIO_MMIO_MAGIC      0x74726976u /* "virt" */
#define VIRTIO_MMIO_VERSION_2  2u
#define VIRTIO_MMIO_VENDOR     0x4d555247u /* "GRUM" */
#define VIRTIO_MMIO_MAX_QUEUES 8
/* The config space runs from 0x100 to the end of the 4 KiB window. */
#define VIRTIO_MMIO_CONFIG_MAX (0x1000u - VIRTIO_MMIO_CONFIG)

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE        1u
#define VIRTIO_STATUS_DRIVER             2u
#define VIRTIO_STATUS_DRIVER_OK          4u
#define VIRTIO_STATUS_FEATURES_OK        8u
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED             128u

/* InterruptStatus bits. */
#define VIRTIO_MMIO_INT_VRING  1u   /* used buffer notification */
#define VIRTIO_MMIO_INT_CONFIG 2u   /* configuration change */

/* Reserved feature bits (6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

/* Device ids (5). */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4
#define VIRTIO_ID_VSOCK   19

struct virtio_mmio_dev;

/* What the concrete device provides. Every callback is optional. */
struct virtio_mmio_ops {
	/* Config space access: offset relative to the start of the config space,
	 * offset + len <= config_size (checked by the transport), data in guest
	 * (little-endian) byte order. Without config_read, reads copy from the
	 * params' config bytes. */
	void (*config_read)(struct virtio_mmio_dev *dev, uint32_t offset, void *data, uint32_t len);
	void (*config_write)(struct virtio_mmio_dev *dev, uint32_t offset, const void *data, uint32_t len);
	/* The driver notified queue `index` (< num_queues, and that queue is ready). */
	void (*queue_notify)(struct virtio_mmio_dev *dev, uint32_t index);
	/* The driver set DRIVER_OK: queues and features are final. */
	void (*activate)(struct virtio_mmio_dev *dev);
	/* The driver reset the device (Status = 0); the transport state is already reset. */
	void (*reset)(struct virtio_mmio_dev *dev);
};

/* Interrupt injection: level true when InterruptStatus gains a bit (called
 * again for every new interrupt, so an edge/irqfd wiring works too), false
 * when the driver acknowledged every bit. */
typedef void (*virtio_mmio_irq_fn)(void *opaque, bool level);

struct virtio_mmio_dev {
	/* Set by virtio_mmio_init(). */
	const struct guest_mem *gm;
	uint32_t device_id;
	uint32_t vendor_id;
	uint64_t device_features;    /* offered; always includes VIRTIO_F_VERSION_1 */
	uint32_t num_queues;         /* 1 .. VIRTIO_MMIO_MAX_QUEUES */
	uint16_t queue_num_max;      /* power of two <= VQ_MAX_SIZE */
	uint32_t config_size;        /* bytes of device config space */
	const void *config;          /* its bytes, guest byte order (or NULL: ops->config_read) */
	const struct virtio_mmio_ops *ops;
	void *opaque;                /* for the concrete device */
	virtio_mmio_irq_fn irq;
	void *irq_opaque;

	/* Transport state. */
	uint64_t driver_features;    /* as written by the driver */
	uint64_t acked_features;     /* negotiated: set when FEATURES_OK was accepted */
	uint32_t device_features_sel, driver_features_sel;
	uint32_t queue_sel;
	uint32_t status;
	uint32_t interrupt_status;   /* accessed atomically */
	uint32_t config_generation;
	struct virtqueue queues[VIRTIO_MMIO_MAX_QUEUES];
};

struct virtio_mmio_params {
	uint32_t device_id;
	uint64_t features;           /* device-specific and reserved bits; VERSION_1 is added */
	uint32_t num_queues;
	uint16_t queue_num_max;      /* 0: VQ_MAX_SIZE / 4 (256) */
	uint32_t config_size;        /* <= VIRTIO_MMIO_CONFIG_MAX */
	const void *config;          /* config_size bytes read as they are, or NULL */
	const struct virtio_mmio_ops *ops;
	void *opaque;
	virtio_mmio_irq_fn irq;
	void *irq_opaque;
};

int virtio_mmio_init(struct virtio_mmio_dev *dev, const struct guest_mem *gm,
		     const struct virtio_mmio_params *p, struct gr_error *err);

/* MMIO accesses at `offset` inside the device window, len bytes (1..8). A
 * read always fills all len bytes (0 for anything not readable). */
void virtio_mmio_read(struct virtio_mmio_dev *dev, uint64_t offset, void *data, uint32_t len);
void virtio_mmio_write(struct virtio_mmio_dev *dev, uint64_t offset, const void *data, uint32_t len);

/* Device reset (what Status = 0 does): queues, features, status, interrupts. */
void virtio_mmio_reset(struct virtio_mmio_dev *dev);

/* The queue at index, or NULL when index >= num_queues. */
struct virtqueue *virtio_mmio_queue(struct virtio_mmio_dev *dev, uint32_t index);
/* Whether a feature bit was negotiated. */
bool virtio_mmio_has_feature(const struct virtio_mmio_dev *dev, unsigned bit);

/* After vq_push()es on queue index: raises the used-buffer interrupt when the
 * driver wants one (vq_should_notify against old_used, the used index before
 * the pushes). Returns whether it was raised. */
bool virtio_mmio_signal_used(struct virtio_mmio_dev *dev, uint32_t index, uint16_t old_used);
/* The device changed its config space: bumps ConfigGeneration, raises the
 * config-change interrupt. */
void virtio_mmio_config_changed(struct virtio_mmio_dev *dev);
/* The device met an error it cannot recover from (e.g. vq_pop() returned
 * -EINVAL): sets DEVICE_NEEDS_RESET and raises the config-change interrupt. */
void virtio_mmio_set_needs_reset(struct virtio_mmio_dev *dev);
/* Serves what the driver made available on queue `index`: pops each chain
 * into *chain, calls handle (which returns the number of bytes it wrote into
 * the chain), returns the chain to the used ring, and interrupts the driver
 * once at the end. At most one queue's worth per call: anything added
 * meanwhile comes with its own notification. A bad ring sets NEEDS_RESET. */
void virtio_mmio_serve_queue(struct virtio_mmio_dev *dev, uint32_t index, struct vq_chain *chain,
			     uint32_t (*handle)(void *opaque, struct vq_chain *chain), void *opaque);
/* Adds bits to InterruptStatus and injects the interrupt. */
void virtio_mmio_raise(struct virtio_mmio_dev *dev, uint32_t bits);

#endif
