/* virtio-console (virtio 1.x, 5.3; device id 3): one port, no MULTIPORT, no
 * SIZE, no EMERG_WRITE, so no config space fields the driver may read.
 *
 *   queue 0, receiveq (host -> guest): input from the chardev, taken on the
 *            I/O thread into a pending buffer of VIRTIO_CONSOLE_PENDING
 *            bytes, then copied into the driver's writable buffers as they
 *            are made available. While the buffer is full the chardev stops
 *            reading; a notification on receiveq (new buffers) delivers and
 *            resumes it. Readable descriptors in a receiveq chain are
 *            ignored (nothing is read from them).
 *   queue 1, transmitq (guest -> host): on notify, the readable bytes of each
 *            chain go to the chardev; the used length is 0.
 *
 * Locking: everything runs under the device's MMIO window lock (vCPU
 * register accesses, and the I/O thread's input callbacks, which take the
 * same lock; pass it to virtio_console_attach). */
#ifndef GR_VMM_VIRTIO_CONSOLE_H
#define GR_VMM_VIRTIO_CONSOLE_H

#include "vmm/devices/chardev.h"
#include "vmm/devices/virtio_mmio.h"

#define VIRTIO_CONSOLE_RXQ 0
#define VIRTIO_CONSOLE_TXQ 1
#define VIRTIO_CONSOLE_PENDING 4096

struct virtio_console {
	struct virtio_mmio_dev mmio;
	struct chardev *cd;
	uint8_t pending[VIRTIO_CONSOLE_PENDING];
	size_t pending_len;
	struct vq_chain chain;           /* scratch */
	uint64_t bytes_rx, bytes_tx, dropped_rx; /* metrics (dropped: a device reset discarded them) */
};

int virtio_console_init(struct virtio_console *con, const struct guest_mem *gm, struct chardev *cd,
			virtio_mmio_irq_fn irq, void *irq_opaque, struct gr_error *err);
/* Starts taking input from the chardev on loop; lock is the window's lock. */
int virtio_console_attach(struct virtio_console *con, struct ev_loop *loop, pthread_mutex_t *lock,
			  struct gr_error *err);
/* Host input (caller holds the device lock): buffers up to the free room,
 * delivers what the receiveq can take. Returns the bytes taken. */
size_t virtio_console_receive(struct virtio_console *con, const uint8_t *buf, size_t n);

#endif
