/* Unit tests for src/vmm/devices/virtio_mmio.c: the register map, feature
 * negotiation, queue setup, reset and interrupts, driven as a guest driver
 * would through virtio_mmio_read()/virtio_mmio_write(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/virtio_mmio.h"
#include "vq_fixture.h"

#define RAM   (16ULL << 20)
#define DESC  0x10000ULL
#define AVAIL 0x20000ULL
#define USED  0x30000ULL
#define BUF   0x100000ULL

#define DEV_FEATURE_A 5                  /* a device-specific feature bit */

struct fx {
	struct guest_mem gm;
	struct virtio_mmio_dev dev;
	uint8_t config[16];
	int notified[VIRTIO_MMIO_MAX_QUEUES];
	int activated, resets;
	int irq_raises, irq_lowers;
	bool irq_level;
};

static void cfg_read(struct virtio_mmio_dev *dev, uint32_t off, void *data, uint32_t len)
{
	struct fx *f = dev->opaque;
	memcpy(data, f->config + off, len);
}

static void cfg_write(struct virtio_mmio_dev *dev, uint32_t off, const void *data, uint32_t len)
{
	struct fx *f = dev->opaque;
	memcpy(f->config + off, data, len);
}

static void on_notify(struct virtio_mmio_dev *dev, uint32_t index)
{
	struct fx *f = dev->opaque;
	assert_true(index < dev->num_queues);
	f->notified[index]++;
}

static void on_activate(struct virtio_mmio_dev *dev) { ((struct fx *)dev->opaque)->activated++; }
static void on_reset(struct virtio_mmio_dev *dev) { ((struct fx *)dev->opaque)->resets++; }

static void on_irq(void *opaque, bool level)
{
	struct fx *f = opaque;
	f->irq_level = level;
	if (level)
		f->irq_raises++;
	else
		f->irq_lowers++;
}

static const struct virtio_mmio_ops ops = {
	.config_read = cfg_read,
	.config_write = cfg_write,
	.queue_notify = on_notify,
	.activate = on_activate,
	.reset = on_reset,
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct gr_error err = { 0 };
	if (!f || gm_create(&f->gm, RAM, &err) < 0)
		return -1;
	for (int i = 0; i < 16; i++)
		f->config[i] = (uint8_t)(0xa0 + i);
	struct virtio_mmio_params p = {
		.device_id = VIRTIO_ID_BLOCK,
		.features = (1ULL << DEV_FEATURE_A) | (1ULL << VIRTIO_F_EVENT_IDX),
		.num_queues = 2,
		.queue_num_max = 64,
		.config_size = sizeof(f->config),
		.ops = &ops,
		.opaque = f,
		.irq = on_irq,
		.irq_opaque = f,
	};
	if (virtio_mmio_init(&f->dev, &f->gm, &p, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	gm_destroy(&f->gm);
	free(f);
	return 0;
}

static uint32_t rd(struct fx *f, uint64_t off) { return vqf_rd(&f->dev, off); }
static void wr(struct fx *f, uint64_t off, uint32_t v) { vqf_wr(&f->dev, off, v); }
/* From a reset. */
static uint32_t negotiate(struct fx *f, uint64_t features)
{
	wr(f, VIRTIO_MMIO_STATUS, 0);
	return vqf_negotiate(&f->dev, features);
}

static void setup_queue(struct fx *f, uint32_t q, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used)
{
	vqf_queue(&f->dev, q, num, desc, avail, used);
}

static void test_init_params(void **state)
{
	(void)state;
	struct guest_mem gm;
	struct gr_error err = { 0 };
	struct virtio_mmio_dev dev;
	assert_int_equal(gm_create(&gm, RAM, &err), 0);
	struct virtio_mmio_params p = { .device_id = VIRTIO_ID_RNG, .num_queues = 1 };
	assert_int_equal(virtio_mmio_init(&dev, &gm, &p, &err), 0);
	assert_int_equal(dev.queue_num_max, 256);
	assert_true(dev.device_features & (1ULL << VIRTIO_F_VERSION_1));
	p.num_queues = 0;
	assert_int_equal(virtio_mmio_init(&dev, &gm, &p, &err), -EINVAL);
	p.num_queues = 9;
	assert_int_equal(virtio_mmio_init(&dev, &gm, &p, &err), -EINVAL);
	p.num_queues = 1, p.queue_num_max = 100;
	assert_int_equal(virtio_mmio_init(&dev, &gm, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "power of two"));
	p.queue_num_max = 2048;
	assert_int_equal(virtio_mmio_init(&dev, &gm, &p, &err), -EINVAL);
	p.queue_num_max = 0, p.config_size = 0xf01;
	assert_int_equal(virtio_mmio_init(&dev, &gm, &p, &err), -EINVAL);
	p.config_size = 0, p.device_id = 0;
	assert_int_equal(virtio_mmio_init(&dev, &gm, &p, &err), -EINVAL);
	gm_destroy(&gm);
}

static void test_ids(void **state)
{
	struct fx *f = *state;
	assert_int_equal(rd(f, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	uint8_t magic[4];
	virtio_mmio_read(&f->dev, 0, magic, 4);
	assert_memory_equal(magic, "virt", 4);
	assert_int_equal(rd(f, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	assert_int_equal(rd(f, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_CONFIG_GENERATION), 0);
	/* Write-only and reserved registers read as 0. */
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_NOTIFY), 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_DESC_LOW), 0);
	assert_int_equal(rd(f, 0x0f8), 0);
	/* Read-only registers ignore writes. */
	wr(f, VIRTIO_MMIO_MAGIC_VALUE, 0);
	wr(f, VIRTIO_MMIO_DEVICE_ID, 7);
	assert_int_equal(rd(f, VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
}

static void test_device_features(void **state)
{
	struct fx *f = *state;
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), (1u << DEV_FEATURE_A) | (1u << VIRTIO_F_EVENT_IDX));
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), 1);   /* VERSION_1 */
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0xffffffff);
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), 0);
}

static void test_negotiation(void **state)
{
	struct fx *f = *state;
	uint64_t ok = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << DEV_FEATURE_A);
	assert_true(negotiate(f, ok) & VIRTIO_STATUS_FEATURES_OK);
	assert_true(virtio_mmio_has_feature(&f->dev, DEV_FEATURE_A));
	assert_true(virtio_mmio_has_feature(&f->dev, VIRTIO_F_VERSION_1));
	assert_false(virtio_mmio_has_feature(&f->dev, VIRTIO_F_EVENT_IDX));
	assert_false(virtio_mmio_has_feature(&f->dev, 200));
	/* Frozen after FEATURES_OK. */
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_F_EVENT_IDX);
	assert_int_equal(f->dev.driver_features, ok);
	assert_false(virtio_mmio_has_feature(&f->dev, VIRTIO_F_EVENT_IDX));
	/* DRIVER_OK activates the device, once. */
	wr(f, VIRTIO_MMIO_STATUS, rd(f, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->activated, 1);
	wr(f, VIRTIO_MMIO_STATUS, rd(f, VIRTIO_MMIO_STATUS));
	assert_int_equal(f->activated, 1);
	/* The driver cannot clear bits or set NEEDS_RESET. */
	wr(f, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static void test_negotiation_refused(void **state)
{
	struct fx *f = *state;
	/* A feature the device did not offer (bit 6 here, bit 40 below). */
	uint64_t v1 = 1ULL << VIRTIO_F_VERSION_1;
	assert_false(negotiate(f, v1 | (1ULL << 6)) & VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(f->dev.acked_features, 0);
	assert_false(negotiate(f, v1 | (1ULL << 40)) & VIRTIO_STATUS_FEATURES_OK);
	/* Modern only: VERSION_1 must be accepted. */
	assert_false(negotiate(f, 1ULL << DEV_FEATURE_A) & VIRTIO_STATUS_FEATURES_OK);
	/* DRIVER_OK is not taken without FEATURES_OK. */
	wr(f, VIRTIO_MMIO_STATUS, rd(f, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
	assert_false(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->activated, 0);
	/* Features selected with an unknown select value are ignored. */
	wr(f, VIRTIO_MMIO_STATUS, 0);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	assert_int_equal(f->dev.driver_features, 0);
	/* A clean retry after the reset works. */
	assert_true(negotiate(f, v1) & VIRTIO_STATUS_FEATURES_OK);
}

static void test_queue_setup_and_pop(void **state)
{
	struct fx *f = *state;
	assert_true(negotiate(f, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_EVENT_IDX)) & VIRTIO_STATUS_FEATURES_OK);
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_NUM_MAX), 64);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	uint64_t high_bits = 0;  /* all within the low 4 GiB here */
	setup_queue(f, 1, 16, DESC | high_bits, AVAIL, USED);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	struct virtqueue *vq = virtio_mmio_queue(&f->dev, 1);
	assert_non_null(vq);
	assert_int_equal(vq->size, 16);
	assert_int_equal(vq->desc_gpa, DESC);
	assert_int_equal(vq->avail_gpa, AVAIL);
	assert_int_equal(vq->used_gpa, USED);
	assert_true(vq->event_idx);
	assert_null(virtio_mmio_queue(&f->dev, 2));
	wr(f, VIRTIO_MMIO_STATUS, rd(f, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);

	/* The driver posts one buffer and notifies. */
	vqf_desc(&f->gm, DESC, 3, BUF, 512, VIRTQ_DESC_F_WRITE, 0);
	uint16_t idx = 0;
	vqf_offer(&f->gm, AVAIL, 16, &idx, 3);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(f->notified[1], 1);

	struct vq_chain *c = malloc(sizeof(*c));
	assert_non_null(c);
	assert_int_equal(vq_pop(&f->gm, vq, c), 1);
	assert_int_equal(c->head, 3);
	assert_int_equal(c->write_len, 512);
	memset(c->bufs[0].host, 0x5a, 100);
	uint16_t old = vq->used_idx;
	assert_int_equal(vq_push(&f->gm, vq, c->head, 100), 0);
	/* used_event is 0 in the avail ring: the driver wants the first one. */
	assert_true(virtio_mmio_signal_used(&f->dev, 1, old));
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	assert_true(f->irq_level);
	assert_int_equal(f->irq_raises, 1);
	wr(f, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_false(f->irq_level);
	assert_int_equal(f->irq_lowers, 1);
	uint8_t back;
	assert_int_equal(gm_read(&f->gm, BUF + 99, &back, 1), 0);
	assert_int_equal(back, 0x5a);
	free(c);
}

static void test_notify_ignored(void **state)
{
	struct fx *f = *state;
	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);   /* not ready */
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 2);   /* out of range */
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 8);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
	for (int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		assert_int_equal(f->notified[i], 0);
	setup_queue(f, 0, 8, DESC, AVAIL, USED);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(f->notified[0], 1);
}

static void test_queue_sel_out_of_range(void **state)
{
	struct fx *f = *state;
	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	setup_queue(f, 2, 8, DESC, AVAIL, USED);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 0xffffffff);
	wr(f, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	for (int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		assert_false(f->dev.queues[i].ready);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

static void test_ready_queue_frozen(void **state)
{
	struct fx *f = *state;
	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	setup_queue(f, 0, 8, DESC, AVAIL, USED);
	struct virtqueue *vq = &f->dev.queues[0];
	assert_true(vq->ready);
	wr(f, VIRTIO_MMIO_QUEUE_NUM, 4);
	wr(f, VIRTIO_MMIO_QUEUE_DESC_LOW, 0xdead0000);
	wr(f, VIRTIO_MMIO_QUEUE_DESC_HIGH, 1);
	wr(f, VIRTIO_MMIO_QUEUE_DRIVER_LOW, 0xdead0000);
	wr(f, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0xffffffff);
	assert_int_equal(vq->size, 8);
	assert_int_equal(vq->desc_gpa, DESC);
	assert_int_equal(vq->avail_gpa, AVAIL);
	assert_int_equal(vq->used_gpa, USED);
	/* Writing 0 to QueueReady releases it; then the registers are writable
	 * again, and enabling validates the new rings. */
	wr(f, VIRTIO_MMIO_QUEUE_READY, 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	wr(f, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(DESC + 0x1000));
	assert_int_equal(vq->desc_gpa, DESC + 0x1000);
	wr(f, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

static void expect_needs_reset(struct fx *f, uint32_t q)
{
	wr(f, VIRTIO_MMIO_QUEUE_SEL, q);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	assert_true(f->irq_level);
	assert_false(f->dev.queues[q].ready);
}

static void test_bad_ring_needs_reset(void **state)
{
	struct fx *f = *state;
	struct {
		uint32_t num;
		uint64_t desc, avail, used;
	} bad[] = {
		{ 8, DESC + 8, AVAIL, USED },            /* misaligned descriptor table */
		{ 8, DESC, AVAIL + 1, USED },            /* misaligned avail ring */
		{ 8, DESC, AVAIL, USED + 2 },            /* misaligned used ring */
		{ 8, RAM - 64, AVAIL, USED },            /* table runs past RAM */
		{ 8, DESC, AVAIL, RAM - 16 },            /* used ring runs past RAM */
		{ 8, DESC, 0x100000000ULL, USED },       /* above 4 GiB, no RAM there */
		{ 8, DESC, AVAIL, GM_MMIO_HOLE_START },  /* in the MMIO hole */
		{ 6, DESC, AVAIL, USED },                /* QueueNum not a power of two */
		{ 128, DESC, AVAIL, USED },              /* QueueNum above QueueNumMax */
		{ 0, DESC, AVAIL, USED },                /* QueueNum 0 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
		f->irq_level = false;
		assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
		setup_queue(f, 1, bad[i].num, bad[i].desc, bad[i].avail, bad[i].used);
		expect_needs_reset(f, 1);
		/* Notifications for the queue that failed are ignored. */
		wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
		assert_int_equal(f->notified[1], 0);
	}
}

static void test_device_needs_reset_helper(void **state)
{
	struct fx *f = *state;
	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	virtio_mmio_set_needs_reset(&f->dev);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	/* Other status writes keep it. */
	wr(f, VIRTIO_MMIO_STATUS, rd(f, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_FAILED);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), 0);
}

static void test_reset(void **state)
{
	struct fx *f = *state;
	negotiate(f, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << DEV_FEATURE_A));
	setup_queue(f, 0, 8, DESC, AVAIL, USED);
	setup_queue(f, 1, 32, DESC + 0x1000, AVAIL + 0x1000, USED + 0x1000);
	wr(f, VIRTIO_MMIO_STATUS, rd(f, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK);
	f->dev.queues[0].last_avail = 5;
	virtio_mmio_config_changed(&f->dev);
	assert_int_equal(rd(f, VIRTIO_MMIO_CONFIG_GENERATION), 1);
	assert_true(f->irq_level);

	int resets = f->resets;
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(f->resets, resets + 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_false(f->irq_level);
	assert_int_equal(f->dev.acked_features, 0);
	assert_int_equal(f->dev.driver_features, 0);
	assert_int_equal(f->dev.queue_sel, 0);
	for (uint32_t q = 0; q < 2; q++) {
		wr(f, VIRTIO_MMIO_QUEUE_SEL, q);
		assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
		assert_int_equal(f->dev.queues[q].desc_gpa, 0);
		assert_int_equal(f->dev.queues[q].last_avail, 0);
		assert_int_equal(f->dev.queues[q].size, 64);
	}
	/* The generation survives a reset: it only ever moves forward. */
	assert_int_equal(rd(f, VIRTIO_MMIO_CONFIG_GENERATION), 1);
	/* And the device can be brought up again. */
	assert_true(negotiate(f, 1ULL << VIRTIO_F_VERSION_1) & VIRTIO_STATUS_FEATURES_OK);
	setup_queue(f, 0, 8, DESC, AVAIL, USED);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
}

static void test_interrupt_ack(void **state)
{
	struct fx *f = *state;
	virtio_mmio_raise(&f->dev, VIRTIO_MMIO_INT_VRING);
	virtio_mmio_raise(&f->dev, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(f->irq_raises, 2);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 3);
	wr(f, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 1);
	assert_true(f->irq_level);
	wr(f, VIRTIO_MMIO_INTERRUPT_ACK, 0xffffffff);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_false(f->irq_level);
	/* InterruptStatus is read-only. */
	wr(f, VIRTIO_MMIO_INTERRUPT_STATUS, 3);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

static void test_odd_widths(void **state)
{
	struct fx *f = *state;
	uint8_t b[8];
	/* Sub-word and wide reads of registers give 0, and fill every byte. */
	memset(b, 0xff, sizeof(b));
	virtio_mmio_read(&f->dev, VIRTIO_MMIO_MAGIC_VALUE, b, 1);
	assert_int_equal(b[0], 0);
	assert_int_equal(b[1], 0xff);
	memset(b, 0xff, sizeof(b));
	virtio_mmio_read(&f->dev, VIRTIO_MMIO_MAGIC_VALUE, b, 2);
	assert_int_equal(b[0] | b[1], 0);
	memset(b, 0xff, sizeof(b));
	virtio_mmio_read(&f->dev, VIRTIO_MMIO_MAGIC_VALUE, b, 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(b[i], 0);
	/* Misaligned 32-bit access. */
	memset(b, 0xff, sizeof(b));
	virtio_mmio_read(&f->dev, VIRTIO_MMIO_MAGIC_VALUE + 1, b, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(b[i], 0);
	/* Writes of other widths are ignored: a byte write of 0 to Status does
	 * not reset, a 2-byte QueueSel write does not select. */
	negotiate(f, 1ULL << VIRTIO_F_VERSION_1);
	uint32_t st = rd(f, VIRTIO_MMIO_STATUS);
	uint8_t zero[8] = { 0 };
	virtio_mmio_write(&f->dev, VIRTIO_MMIO_STATUS, zero, 1);
	virtio_mmio_write(&f->dev, VIRTIO_MMIO_STATUS, zero, 2);
	virtio_mmio_write(&f->dev, VIRTIO_MMIO_STATUS, zero, 8);
	virtio_mmio_write(&f->dev, VIRTIO_MMIO_STATUS + 2, zero, 4);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), st);
	uint16_t one = 1;
	virtio_mmio_write(&f->dev, VIRTIO_MMIO_QUEUE_SEL, &one, 2);
	assert_int_equal(f->dev.queue_sel, 0);
	/* Zero-length accesses do nothing. */
	virtio_mmio_read(&f->dev, VIRTIO_MMIO_MAGIC_VALUE, b, 0);
	virtio_mmio_write(&f->dev, VIRTIO_MMIO_STATUS, zero, 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), st);
}

static void test_config_space(void **state)
{
	struct fx *f = *state;
	uint8_t b[8];
	virtio_mmio_read(&f->dev, VIRTIO_MMIO_CONFIG, b, 1);
	assert_int_equal(b[0], 0xa0);
	uint16_t w;
	virtio_mmio_read(&f->dev, VIRTIO_MMIO_CONFIG + 2, &w, 2);
	assert_int_equal(w, 0xa3a2);
	uint32_t d = rd(f, VIRTIO_MMIO_CONFIG + 4);
	assert_int_equal(d, 0xa7a6a5a4);
	uint64_t q;
	virtio_mmio_read(&f->dev, VIRTIO_MMIO_CONFIG + 8, &q, 8);
	assert_int_equal(q, 0xafaeadacabaaa9a8ULL);
	/* Past the end of the config space: 0, and writes ignored. */
	virtio_mmio_read(&f->dev, VIRTIO_MMIO_CONFIG + 12, &q, 8);
	assert_int_equal(q, 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_CONFIG + 16), 0);
	assert_int_equal(rd(f, 0xffc), 0);
	assert_int_equal(rd(f, UINT64_MAX - 3), 0);
	uint64_t ones = UINT64_MAX;
	virtio_mmio_write(&f->dev, VIRTIO_MMIO_CONFIG + 12, &ones, 8);
	virtio_mmio_write(&f->dev, UINT64_MAX - 3, &ones, 4);
	virtio_mmio_write(&f->dev, VIRTIO_MMIO_CONFIG + 16, &ones, 1);
	assert_int_equal(f->config[12], 0xac);
	/* In range: forwarded to the device. */
	uint16_t v = 0x1234;
	virtio_mmio_write(&f->dev, VIRTIO_MMIO_CONFIG + 14, &v, 2);
	assert_int_equal(f->config[14], 0x34);
	assert_int_equal(f->config[15], 0x12);
}

static void test_no_callbacks(void **state)
{
	(void)state;
	struct guest_mem gm;
	struct gr_error err = { 0 };
	struct virtio_mmio_dev dev;
	assert_int_equal(gm_create(&gm, RAM, &err), 0);
	struct virtio_mmio_params p = { .device_id = VIRTIO_ID_RNG, .num_queues = 1, .config_size = 8 };
	assert_int_equal(virtio_mmio_init(&dev, &gm, &p, &err), 0);
	uint32_t v = 0xffffffff;
	virtio_mmio_read(&dev, VIRTIO_MMIO_CONFIG, &v, 4);
	assert_int_equal(v, 0);
	virtio_mmio_write(&dev, VIRTIO_MMIO_CONFIG, &v, 4);
	virtio_mmio_raise(&dev, VIRTIO_MMIO_INT_VRING);
	v = 1;
	virtio_mmio_write(&dev, VIRTIO_MMIO_INTERRUPT_ACK, &v, 4);
	v = 0;
	virtio_mmio_write(&dev, VIRTIO_MMIO_STATUS, &v, 4);
	virtio_mmio_write(&dev, VIRTIO_MMIO_QUEUE_NOTIFY, &v, 4);
	gm_destroy(&gm);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_params),
		T(test_ids),
		T(test_device_features),
		T(test_negotiation),
		T(test_negotiation_refused),
		T(test_queue_setup_and_pop),
		T(test_notify_ignored),
		T(test_queue_sel_out_of_range),
		T(test_ready_queue_frozen),
		T(test_bad_ring_needs_reset),
		T(test_device_needs_reset_helper),
		T(test_reset),
		T(test_interrupt_ack),
		T(test_odd_widths),
		T(test_config_space),
		cmocka_unit_test(test_no_callbacks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
