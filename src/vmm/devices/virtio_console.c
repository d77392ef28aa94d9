/* virtio-console: one port over a chardev (see virtio_console.h). */
#include "vmm/devices/virtio_console.h"

#include <errno.h>
#include <string.h>

/* Copies pending input into the receiveq's chains while both last. */
static void deliver(struct virtio_console *con)
{
	struct virtio_mmio_dev *dev = &con->mmio;
	struct virtqueue *vq = virtio_mmio_queue(dev, VIRTIO_CONSOLE_RXQ);
	if (!con->pending_len || !(dev->status & VIRTIO_STATUS_DRIVER_OK) ||
	    (dev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) || !vq || !vq->ready)
		return;
	uint16_t old_used = vq->used_idx;
	bool pushed = false;
	for (uint32_t n = 0; n < vq->size && con->pending_len; n++) {
		int r = vq_pop(dev->gm, vq, &con->chain);
		if (r == 0)
			break;
		if (r < 0) {
			virtio_mmio_set_needs_reset(dev);
			break;
		}
		size_t done = 0;
		for (size_t i = 0; i < con->chain.n && done < con->pending_len; i++) {
			const struct vq_buf *b = &con->chain.bufs[i];
			if (!b->write)
				continue;
			size_t take = con->pending_len - done < b->len ? con->pending_len - done : b->len;
			memcpy(b->host, con->pending + done, take);
			done += take;
		}
		memmove(con->pending, con->pending + done, con->pending_len - done);
		con->pending_len -= done;
		con->bytes_rx += done;
		if (vq_push(dev->gm, vq, con->chain.head, (uint32_t)done) < 0) {
			virtio_mmio_set_needs_reset(dev);
			break;
		}
		pushed = true;
	}
	if (pushed)
		virtio_mmio_signal_used(dev, VIRTIO_CONSOLE_RXQ, old_used);
}

size_t virtio_console_receive(struct virtio_console *con, const uint8_t *buf, size_t n)
{
	size_t room = VIRTIO_CONSOLE_PENDING - con->pending_len;
	size_t take = n < room ? n : room;
	memcpy(con->pending + con->pending_len, buf, take);
	con->pending_len += take;
	deliver(con);
	return take;
}

static size_t con_room(void *opaque)
{
	struct virtio_console *con = opaque;
	return VIRTIO_CONSOLE_PENDING - con->pending_len;
}

static void con_input(void *opaque, const uint8_t *buf, size_t n)
{
	(void)virtio_console_receive(opaque, buf, n);
}

static const struct chardev_ops con_chardev_ops = { .room = con_room, .input = con_input };

static uint32_t tx_serve(void *opaque, struct vq_chain *chain)
{
	struct virtio_console *con = opaque;
	for (size_t i = 0; i < chain->n; i++) {
		const struct vq_buf *b = &chain->bufs[i];
		if (b->write)
			continue;   /* a writable buffer on transmitq: nothing to send from it */
		if (con->cd)
			chardev_write(con->cd, b->host, b->len);
		con->bytes_tx += b->len;
	}
	return 0;
}

static void con_notify(struct virtio_mmio_dev *dev, uint32_t index)
{
	struct virtio_console *con = dev->opaque;
	if (index == VIRTIO_CONSOLE_TXQ) {
		virtio_mmio_serve_queue(dev, index, &con->chain, tx_serve, con);
		return;
	}
	size_t before = con->pending_len;
	deliver(con);
	if (con->pending_len < before && con->cd)
		chardev_resume_input(con->cd);
}

static void con_activate(struct virtio_mmio_dev *dev)
{
	struct virtio_console *con = dev->opaque;
	deliver(con);
	if (con->cd)
		chardev_resume_input(con->cd);
}

static void con_reset(struct virtio_mmio_dev *dev)
{
	struct virtio_console *con = dev->opaque;
	con->dropped_rx += con->pending_len;
	con->pending_len = 0;
	if (con->cd)
		chardev_resume_input(con->cd);
}

static const struct virtio_mmio_ops con_ops = {
	.queue_notify = con_notify,
	.activate = con_activate,
	.reset = con_reset,
};

int virtio_console_init(struct virtio_console *con, const struct guest_mem *gm, struct chardev *cd,
			virtio_mmio_irq_fn irq, void *irq_opaque, struct gr_error *err)
{
	memset(con, 0, sizeof(*con));
	con->cd = cd;
	struct virtio_mmio_params p = {
		.device_id = VIRTIO_ID_CONSOLE, .features = 0, .num_queues = 2, .queue_num_max = 0,
		.config_size = 0, .ops = &con_ops, .opaque = con, .irq = irq, .irq_opaque = irq_opaque,
	};
	int r = virtio_mmio_init(&con->mmio, gm, &p, err);
	if (r < 0)
		return gr_error_prefix(err, "virtio-console");
	return 0;
}

int virtio_console_attach(struct virtio_console *con, struct ev_loop *loop, pthread_mutex_t *lock,
			  struct gr_error *err)
{
	if (!con->cd)
		return 0;
	return chardev_attach(con->cd, loop, lock, &con_chardev_ops, con, err);
}
