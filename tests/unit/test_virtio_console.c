/* virtio-console (devices/virtio_console.c) through the virtio-mmio
 * transport with crafted rings: transmitq output to a file chardev,
 * receiveq input buffered until the driver posts buffers, split across
 * buffers, readable descriptors ignored, the pending limit, a reset dropping
 * pending input, a hostile descriptor setting NEEDS_RESET. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/devices/virtio_console.h"
#include "vq_fixture.h"

#define RAM   (1ULL << 20)
#define BUF   0x1000ULL
#define DESC(q)  (0x10000ULL + (q) * 0x4000)
#define AVAIL(q) (0x11000ULL + (q) * 0x4000)
#define USED(q)  (0x12000ULL + (q) * 0x4000)
#define QN 8

struct fx {
	struct guest_mem gm;
	struct virtio_console con;
	struct chardev cd;
	char path[64];
	int irqs;
	uint16_t idx[2];
};

static void on_irq(void *opaque, bool level)
{
	if (level)
		((struct fx *)opaque)->irqs++;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct gr_error err = { 0 };
	if (!f || gm_create(&f->gm, RAM, &err) < 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "/tmp/gureum-test-con-XXXXXX");
	int fd = mkstemp(f->path);
	if (fd < 0)
		return -1;
	close(fd);
	char spec[80];
	snprintf(spec, sizeof(spec), "file=%s", f->path);
	if (chardev_open(&f->cd, "--console", spec, &err) < 0 ||
	    virtio_console_init(&f->con, &f->gm, &f->cd, on_irq, f, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	chardev_close(&f->cd);
	unlink(f->path);
	gm_destroy(&f->gm);
	free(f);
	return 0;
}

static void wr(struct fx *f, uint64_t off, uint32_t v) { vqf_wr(&f->con.mmio, off, v); }
static uint32_t rd(struct fx *f, uint64_t off) { return vqf_rd(&f->con.mmio, off); }

static void driver_up(struct fx *f)
{
	assert_true(vqf_negotiate(&f->con.mmio, 1ULL << 32) & VIRTIO_STATUS_FEATURES_OK);
	for (uint32_t q = 0; q < 2; q++) {
		vqf_queue(&f->con.mmio, q, QN, DESC(q), AVAIL(q), USED(q));
		assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	}
	vqf_driver_ok(&f->con.mmio);
}

static void put_desc(struct fx *f, int q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	vqf_desc(&f->gm, DESC(q), i, addr, len, flags, next);
}

static void post(struct fx *f, int q, uint16_t head)
{
	vqf_offer(&f->gm, AVAIL(q), QN, &f->idx[q], head);
	vqf_wr(&f->con.mmio, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)q);
}

static uint16_t used_idx(struct fx *f, int q) { return vqf_used_idx(&f->gm, USED(q)); }
static uint32_t used_len(struct fx *f, int q, uint16_t slot)
{
	uint32_t id, len;
	vqf_used_elem(&f->gm, USED(q), QN, slot, &id, &len);
	return len;
}
static uint8_t *g(struct fx *f, uint64_t gpa) { return gm_ptr(&f->gm, gpa, 1); }

static size_t receive(struct fx *f, const char *s)
{
	return virtio_console_receive(&f->con, (const uint8_t *)s, strlen(s));
}

static void test_identity(void **state)
{
	struct fx *f = *state;
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_CONSOLE);
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), 0);   /* no SIZE, MULTIPORT, EMERG_WRITE */
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);     /* two queues only */
}

static void test_transmit(void **state)
{
	struct fx *f = *state;
	driver_up(f);
	memcpy(g(f, BUF), "hello, ", 7);
	memcpy(g(f, BUF + 0x100), "world\n", 6);
	put_desc(f, 1, 0, BUF, 7, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f, 1, 1, BUF + 0x100, 6, VIRTQ_DESC_F_NEXT, 2);
	put_desc(f, 1, 2, BUF + 0x200, 32, VIRTQ_DESC_F_WRITE, 0);   /* a writable buffer: ignored */
	post(f, 1, 0);
	assert_int_equal(used_idx(f, 1), 1);
	assert_int_equal(used_len(f, 1, 0), 0);
	assert_int_equal(f->irqs, 1);
	assert_int_equal(f->con.bytes_tx, 13);
	char buf[32] = { 0 };
	int fd = open(f->path, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 13);
	close(fd);
	assert_string_equal(buf, "hello, world\n");
}

static void test_receive(void **state)
{
	struct fx *f = *state;
	/* Before DRIVER_OK input waits in the pending buffer. */
	assert_int_equal(receive(f, "early "), 6);
	driver_up(f);   /* activation tries to deliver: no buffers yet */
	assert_int_equal(f->con.pending_len, 6);
	assert_int_equal(receive(f, "bird\n"), 5);
	/* Two chains: 4 bytes (readable descriptor first: skipped), then 64. */
	memset(g(f, BUF), 0, 0x200);
	put_desc(f, 0, 0, BUF + 0x300, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f, 0, 1, BUF, 4, VIRTQ_DESC_F_WRITE, 0);
	post(f, 0, 0);
	assert_int_equal(used_idx(f, 0), 1);
	assert_int_equal(used_len(f, 0, 0), 4);
	assert_memory_equal(g(f, BUF), "earl", 4);
	put_desc(f, 0, 2, BUF + 0x100, 64, VIRTQ_DESC_F_WRITE, 0);
	post(f, 0, 2);
	assert_int_equal(used_idx(f, 0), 2);
	assert_int_equal(used_len(f, 0, 1), 7);
	assert_memory_equal(g(f, BUF + 0x100), "y bird\n", 7);
	assert_int_equal(f->con.pending_len, 0);
	/* A buffer waiting: input goes straight in. */
	put_desc(f, 0, 3, BUF + 0x180, 8, VIRTQ_DESC_F_WRITE, 0);
	post(f, 0, 3);
	assert_int_equal(used_idx(f, 0), 2);
	assert_int_equal(receive(f, "now"), 3);
	assert_int_equal(used_idx(f, 0), 3);
	assert_memory_equal(g(f, BUF + 0x180), "now", 3);
	assert_int_equal(f->con.bytes_rx, 14);
}

static void test_pending_limit_and_reset(void **state)
{
	struct fx *f = *state;
	driver_up(f);
	static char big[VIRTIO_CONSOLE_PENDING + 100];
	memset(big, 'z', sizeof(big) - 1);
	assert_int_equal(receive(f, big), VIRTIO_CONSOLE_PENDING);
	assert_int_equal(receive(f, "more"), 0);
	wr(f, VIRTIO_MMIO_STATUS, 0);   /* reset: pending input is dropped */
	assert_int_equal(f->con.pending_len, 0);
	assert_int_equal(f->con.dropped_rx, VIRTIO_CONSOLE_PENDING);
	f->idx[0] = f->idx[1] = 0;
	memset(g(f, USED(0)), 0, 64);
	driver_up(f);
	assert_int_equal(receive(f, "x"), 1);
}

static void test_hostile_descriptor(void **state)
{
	struct fx *f = *state;
	driver_up(f);
	receive(f, "data");
	put_desc(f, 0, 0, RAM - 2, 16, VIRTQ_DESC_F_WRITE, 0);   /* past the end of RAM */
	post(f, 0, 0);
	assert_int_equal(used_idx(f, 0), 0);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* Further input is kept, not delivered, while the device needs a reset. */
	assert_int_equal(receive(f, "!"), 1);
	put_desc(f, 1, 0, RAM + 0x1000, 4, 0, 0);
	post(f, 1, 0);
	assert_int_equal(used_idx(f, 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_limit_and_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_descriptor, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
