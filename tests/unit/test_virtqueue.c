/* Unit tests for src/vmm/devices/virtqueue.c: split rings crafted in guest
 * memory, well-formed and hostile. Guest RAM is surrounded by guard pages, so
 * any access outside it would crash the test (and ASan watches the rest). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/virtqueue.h"
#include "vq_fixture.h"

#define RAM      (16ULL << 20)
#define DESC     0x10000ULL
#define AVAIL    0x20000ULL
#define USED     0x30000ULL
#define INDIR    0x40000ULL
#define INDIR2   0x48000ULL
#define BUF      0x100000ULL

struct fx {
	struct guest_mem gm;
	struct virtqueue vq;
	struct vq_chain chain;
	uint16_t avail_idx;   /* the driver's next avail index */
};

static int fx_setup_size(void **state, uint16_t size)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct gr_error err = { 0 };
	if (!f || gm_create(&f->gm, RAM, &err) < 0)
		return -1;
	vq_reset(&f->vq, size);
	f->vq.desc_gpa = DESC;
	f->vq.avail_gpa = AVAIL;
	f->vq.used_gpa = USED;
	if (!vq_validate(&f->gm, &f->vq))
		return -1;
	f->vq.ready = true;
	*state = f;
	return 0;
}

static int fx_setup(void **state) { return fx_setup_size(state, 8); }
static int fx_setup_128(void **state) { return fx_setup_size(state, 128); }

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	gm_destroy(&f->gm);
	free(f);
	return 0;
}

static void put16(struct fx *f, uint64_t gpa, uint16_t v) { assert_int_equal(gm_write(&f->gm, gpa, &v, 2), 0); }
static uint16_t get16(struct fx *f, uint64_t gpa) { uint16_t v; assert_int_equal(gm_read(&f->gm, gpa, &v, 2), 0); return v; }
static uint32_t get32(struct fx *f, uint64_t gpa) { uint32_t v; assert_int_equal(gm_read(&f->gm, gpa, &v, 4), 0); return v; }

static void desc_at(struct fx *f, uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	vqf_desc(&f->gm, table, i, addr, len, flags, next);
}

static void desc(struct fx *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	desc_at(f, DESC, i, addr, len, flags, next);
}

/* Makes head available and publishes the new avail index. */
static void offer(struct fx *f, uint16_t head) { vqf_offer(&f->gm, AVAIL, f->vq.size, &f->avail_idx, head); }

static void expect_broken(struct fx *f)
{
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), -EINVAL);
	assert_true(f->vq.broken);
	/* A broken queue stays broken and is not touched again. */
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), -EINVAL);
	assert_int_equal(vq_push(&f->gm, &f->vq, 0, 0), -EINVAL);
}

/* ---- well-formed rings ---------------------------------------------- */

static void test_empty(void **state)
{
	struct fx *f = *state;
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 0);
	f->vq.ready = false;
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 0);
}

static void test_single(void **state)
{
	struct fx *f = *state;
	desc(f, 3, BUF, 100, 0, 0);
	offer(f, 3);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(f->chain.head, 3);
	assert_int_equal(f->chain.n, 1);
	assert_ptr_equal(f->chain.bufs[0].host, gm_ptr(&f->gm, BUF, 100));
	assert_int_equal(f->chain.bufs[0].len, 100);
	assert_false(f->chain.bufs[0].write);
	assert_int_equal(f->chain.read_len, 100);
	assert_int_equal(f->chain.write_len, 0);
	assert_int_equal(f->vq.last_avail, 1);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 0);
}

static void test_multi(void **state)
{
	struct fx *f = *state;
	/* 5 -> 1 -> 7 -> 0: read 16, read 512, write 1024, write 1 */
	desc(f, 5, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, BUF + 0x1000, 512, VIRTQ_DESC_F_NEXT, 7);
	desc(f, 7, BUF + 0x2000, 1024, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	desc(f, 0, BUF + 0x3000, 1, VIRTQ_DESC_F_WRITE, 6);  /* next ignored without NEXT */
	offer(f, 5);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(f->chain.head, 5);
	assert_int_equal(f->chain.n, 4);
	assert_false(f->chain.bufs[0].write);
	assert_false(f->chain.bufs[1].write);
	assert_true(f->chain.bufs[2].write);
	assert_true(f->chain.bufs[3].write);
	assert_ptr_equal(f->chain.bufs[2].host, gm_ptr(&f->gm, BUF + 0x2000, 1));
	assert_int_equal(f->chain.read_len, 528);
	assert_int_equal(f->chain.write_len, 1025);
}

static void test_full_ring(void **state)
{
	struct fx *f = *state;
	/* Exactly size chains outstanding is legal, and so is a zero-length buffer. */
	for (uint16_t i = 0; i < 8; i++) {
		desc(f, i, BUF + i * 0x100, i, 0, 0);
		offer(f, i);
	}
	for (uint16_t i = 0; i < 8; i++) {
		assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
		assert_int_equal(f->chain.head, i);
		assert_int_equal(f->chain.bufs[0].len, i);
	}
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 0);
}

static void test_chain_of_size(void **state)
{
	struct fx *f = *state;
	for (uint16_t i = 0; i < 8; i++)
		desc(f, i, BUF, 8, i < 7 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	offer(f, 0);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(f->chain.n, 8);
	assert_int_equal(f->chain.read_len, 64);
}

static void test_indirect(void **state)
{
	struct fx *f = *state;
	/* Table entries chained out of order: 2 -> 0 -> 1. */
	desc_at(f, INDIR, 2, BUF, 10, VIRTQ_DESC_F_NEXT, 0);
	desc_at(f, INDIR, 0, BUF + 0x100, 20, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc_at(f, INDIR, 1, BUF + 0x200, 30, VIRTQ_DESC_F_WRITE, 0);
	/* The table starts at entry 0, so the walk is 0 -> 1 only. */
	desc(f, 4, INDIR, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	offer(f, 4);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(f->chain.head, 4);
	assert_int_equal(f->chain.n, 2);
	assert_int_equal(f->chain.write_len, 50);
	assert_ptr_equal(f->chain.bufs[1].host, gm_ptr(&f->gm, BUF + 0x200, 30));

	/* Direct readable descriptors, then an indirect table of writable ones;
	 * an unaligned table is fine. */
	desc_at(f, INDIR2 + 8, 0, BUF, 4, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc_at(f, INDIR2 + 8, 1, BUF, 4, VIRTQ_DESC_F_WRITE, 0);
	desc(f, 0, BUF + 0x400, 7, VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, INDIR2 + 8, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(f->chain.n, 3);
	assert_int_equal(f->chain.read_len, 7);
	assert_int_equal(f->chain.write_len, 8);
}

static void test_indirect_full_table(void **state)
{
	struct fx *f = *state;
	for (uint16_t i = 0; i < 8; i++)
		desc_at(f, INDIR, i, BUF, 1, i < 7 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	desc(f, 0, INDIR, 8 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(f->chain.n, 8);
}

static void test_push_and_wrap(void **state)
{
	struct fx *f = *state;
	/* Start both sides just below the 16-bit wrap. */
	f->avail_idx = 65533;
	f->vq.last_avail = 65533;
	f->vq.used_idx = 65533;
	put16(f, AVAIL + 2, f->avail_idx);
	for (uint16_t i = 0; i < 6; i++) {
		desc(f, i, BUF + i * 0x100, 64, VIRTQ_DESC_F_WRITE, 0);
		offer(f, i);
	}
	assert_int_equal(f->avail_idx, 3);
	for (uint16_t i = 0; i < 6; i++) {
		assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
		assert_int_equal(f->chain.head, i);
		uint16_t old = f->vq.used_idx;
		assert_int_equal(vq_push(&f->gm, &f->vq, f->chain.head, 10 + i), 0);
		assert_int_equal(get16(f, USED + 2), (uint16_t)(old + 1));
		uint16_t slot = old % 8;
		assert_int_equal(get32(f, USED + 4 + 8 * slot), i);
		assert_int_equal(get32(f, USED + 8 + 8 * slot), 10 + i);
		assert_true(vq_should_notify(&f->gm, &f->vq, old));
	}
	assert_int_equal(f->vq.last_avail, 3);
	assert_int_equal(f->vq.used_idx, 3);
	assert_int_equal(get16(f, USED + 2), 3);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 0);
}

static void test_push_bad_head(void **state)
{
	struct fx *f = *state;
	assert_int_equal(vq_push(&f->gm, &f->vq, 8, 0), -EINVAL);
	assert_int_equal(vq_push(&f->gm, &f->vq, 0xffff, 0), -EINVAL);
	assert_int_equal(get16(f, USED + 2), 0);
	assert_int_equal(vq_push(&f->gm, &f->vq, 7, 0), 0);
	f->vq.ready = false;
	assert_int_equal(vq_push(&f->gm, &f->vq, 7, 0), -EINVAL);
}

static void test_push_n_and_unpop(void **state)
{
	struct fx *f = *state;
	f->vq.used_idx = 65535;   /* the batch crosses the 16-bit wrap */
	for (uint16_t i = 0; i < 3; i++) {
		desc(f, i, BUF + i * 0x100, 64, VIRTQ_DESC_F_WRITE, 0);
		offer(f, i);
	}
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	/* Given back: the same chains come again, in order. */
	vq_unpop(&f->vq, 2);
	assert_int_equal(f->vq.last_avail, 0);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(f->chain.head, 0);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(f->chain.head, 2);
	struct vq_used u[3] = { { 0, 10 }, { 1, 11 }, { 2, 12 } };
	/* A bad head anywhere in the batch: nothing is published. */
	u[1].head = 8;
	assert_int_equal(vq_push_n(&f->gm, &f->vq, u, 3), -EINVAL);
	assert_int_equal(get16(f, USED + 2), 0);
	assert_int_equal(f->vq.used_idx, 65535);
	assert_int_equal(vq_push_n(&f->gm, &f->vq, u, 9), -EINVAL);   /* more than the queue */
	u[1].head = 1;
	assert_int_equal(vq_push_n(&f->gm, &f->vq, u, 3), 0);
	assert_int_equal(get16(f, USED + 2), 2);
	assert_int_equal(f->vq.used_idx, 2);
	for (uint16_t i = 0; i < 3; i++) {
		uint16_t slot = (uint16_t)(65535 + i) % 8;
		assert_int_equal(get32(f, USED + 4 + 8 * slot), i);
		assert_int_equal(get32(f, USED + 8 + 8 * slot), 10 + i);
	}
	assert_true(vq_should_notify(&f->gm, &f->vq, 65535));
	f->vq.ready = false;
	assert_int_equal(vq_push_n(&f->gm, &f->vq, u, 1), -EINVAL);
}

static void test_no_interrupt(void **state)
{
	struct fx *f = *state;
	assert_int_equal(vq_push(&f->gm, &f->vq, 0, 0), 0);
	assert_true(vq_should_notify(&f->gm, &f->vq, 0));
	put16(f, AVAIL, VRING_AVAIL_F_NO_INTERRUPT);
	assert_false(vq_should_notify(&f->gm, &f->vq, 0));
}

static void test_event_idx(void **state)
{
	struct fx *f = *state;
	f->vq.event_idx = true;
	uint64_t used_event = AVAIL + 4 + 2 * 8;
	uint64_t avail_event = USED + 4 + 8 * 8;
	/* Flags are ignored with event_idx. */
	put16(f, AVAIL, VRING_AVAIL_F_NO_INTERRUPT);

	/* An empty pop asks for a notification at the current index. */
	put16(f, avail_event, 0x5555);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 0);
	assert_int_equal(get16(f, avail_event), 0);
	desc(f, 0, BUF, 1, 0, 0);
	offer(f, 0);
	offer(f, 0);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(get16(f, avail_event), 1);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(get16(f, avail_event), 2);

	/* Driver wants an interrupt once used idx passes 1 (i.e. reaches 2). */
	put16(f, used_event, 1);
	assert_int_equal(vq_push(&f->gm, &f->vq, 0, 0), 0);
	assert_false(vq_should_notify(&f->gm, &f->vq, 0));   /* 0 -> 1 */
	assert_int_equal(vq_push(&f->gm, &f->vq, 0, 0), 0);
	assert_true(vq_should_notify(&f->gm, &f->vq, 1));    /* 1 -> 2 */
	/* Batched: 0 -> 2 crosses it too; nothing pushed: no interrupt. */
	assert_true(vq_should_notify(&f->gm, &f->vq, 0));
	assert_false(vq_should_notify(&f->gm, &f->vq, 2));
	/* Across the 16-bit wrap. */
	assert_true(vring_need_event(0xffff, 0, 0xfffe));
	assert_false(vring_need_event(0xffff, 0xffff, 0xfffe));
	assert_true(vring_need_event(0xfffe, 1, 0xfff0));
}

/* ---- ring validation ------------------------------------------------ */

static void test_validate(void **state)
{
	(void)state;
	struct guest_mem gm;
	struct gr_error err = { 0 };
	assert_int_equal(gm_create(&gm, RAM, &err), 0);
	struct virtqueue vq;
	vq_reset(&vq, 256);
	vq.desc_gpa = DESC, vq.avail_gpa = AVAIL, vq.used_gpa = USED;
	assert_true(vq_validate(&gm, &vq));
	/* Minimal alignments are enough. */
	vq.desc_gpa = DESC + 16, vq.avail_gpa = AVAIL + 2, vq.used_gpa = USED + 4;
	assert_true(vq_validate(&gm, &vq));

	/* Sizes: zero, not a power of two, too large. */
	struct virtqueue bad = vq;
	uint16_t sizes[] = { 0, 3, 6, 255, 2048, 0xffff };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		bad.size = sizes[i];
		assert_false(vq_validate(&gm, &bad));
	}
	/* Misaligned rings. */
	bad = vq, bad.desc_gpa = DESC + 8;   assert_false(vq_validate(&gm, &bad));
	bad = vq, bad.avail_gpa = AVAIL + 1; assert_false(vq_validate(&gm, &bad));
	bad = vq, bad.used_gpa = USED + 2;   assert_false(vq_validate(&gm, &bad));
	/* Rings partially or entirely outside RAM. */
	bad = vq, bad.desc_gpa = RAM - 16 * 128;             assert_false(vq_validate(&gm, &bad));
	bad = vq, bad.desc_gpa = RAM - 16 * 256;             assert_true(vq_validate(&gm, &bad));
	bad = vq, bad.avail_gpa = RAM - (6 + 2 * 256) + 2;   assert_false(vq_validate(&gm, &bad));
	bad = vq, bad.avail_gpa = RAM - (6 + 2 * 256);       assert_true(vq_validate(&gm, &bad));
	bad = vq, bad.used_gpa = RAM - (6 + 8 * 256) + 4;    assert_false(vq_validate(&gm, &bad));
	bad = vq, bad.used_gpa = RAM;                        assert_false(vq_validate(&gm, &bad));
	bad = vq, bad.desc_gpa = 0xfffffffffffffff0ULL;      assert_false(vq_validate(&gm, &bad));
	bad = vq, bad.used_gpa = GM_MMIO_HOLE_START;         assert_false(vq_validate(&gm, &bad));
	/* A ring outside RAM is refused by pop, push and notify even when the
	 * queue was marked ready without validation. */
	bad = vq, bad.used_gpa = RAM - 8, bad.ready = true;
	struct vq_chain *c = malloc(sizeof(*c));
	assert_non_null(c);
	assert_int_equal(vq_pop(&gm, &bad, c), -EINVAL);
	assert_true(bad.broken);
	bad.broken = false;
	assert_int_equal(vq_push(&gm, &bad, 0, 0), -EINVAL);
	assert_false(vq_should_notify(&gm, &bad, 0));
	free(c);
	gm_destroy(&gm);
}

/* ---- hostile rings -------------------------------------------------- */

static void test_loop(void **state)
{
	struct fx *f = *state;
	desc(f, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_self_loop(void **state)
{
	struct fx *f = *state;
	desc(f, 2, BUF, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	offer(f, 2);
	expect_broken(f);
}

static void test_chain_longer_than_queue(void **state)
{
	struct fx *f = *state;
	/* 1 direct + 8 indirect = 9 buffers in a queue of 8. */
	for (uint16_t i = 0; i < 8; i++)
		desc_at(f, INDIR, i, BUF, 1, i < 7 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	desc(f, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, INDIR, 8 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_next_out_of_range(void **state)
{
	struct fx *f = *state;
	desc(f, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 8);
	offer(f, 0);
	expect_broken(f);
}

static void test_next_far_out_of_range(void **state)
{
	struct fx *f = *state;
	desc(f, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 0xffff);
	offer(f, 0);
	expect_broken(f);
}

static void test_head_out_of_range(void **state)
{
	struct fx *f = *state;
	desc(f, 0, BUF, 1, 0, 0);
	offer(f, 8);
	expect_broken(f);
}

static void test_avail_idx_jump(void **state)
{
	struct fx *f = *state;
	desc(f, 0, BUF, 1, 0, 0);
	put16(f, AVAIL + 2, 9);   /* 9 > size buffers outstanding */
	expect_broken(f);
}

static void test_avail_idx_backwards(void **state)
{
	struct fx *f = *state;
	desc(f, 0, BUF, 1, 0, 0);
	offer(f, 0);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	put16(f, AVAIL + 2, 0);   /* moved back: 0xffff outstanding */
	expect_broken(f);
}

static void test_buffer_beyond_ram(void **state)
{
	struct fx *f = *state;
	desc(f, 0, RAM, 1, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_buffer_straddles_end(void **state)
{
	struct fx *f = *state;
	desc(f, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, RAM - 10, 11, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_buffer_in_hole(void **state)
{
	struct fx *f = *state;
	desc(f, 0, GM_MMIO_HOLE_START, 16, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_addr_len_overflow(void **state)
{
	struct fx *f = *state;
	desc(f, 0, UINT64_MAX - 5, 100, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_read_len_cap(void **state)
{
	struct fx *f = *state;
	/* 65 overlapping 16 MiB buffers: 1040 MiB > 1 GiB. */
	for (uint16_t i = 0; i < 65; i++)
		desc(f, i, 0, (uint32_t)RAM, i < 64 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	offer(f, 0);
	expect_broken(f);
}

static void test_read_len_at_cap(void **state)
{
	struct fx *f = *state;
	/* 64 x 16 MiB = exactly 1 GiB is allowed. */
	for (uint16_t i = 0; i < 64; i++)
		desc(f, i, 0, (uint32_t)RAM, i < 63 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	offer(f, 0);
	assert_int_equal(vq_pop(&f->gm, &f->vq, &f->chain), 1);
	assert_int_equal(f->chain.read_len, VQ_MAX_CHAIN_BYTES);
}

static void test_write_len_cap(void **state)
{
	struct fx *f = *state;
	for (uint16_t i = 0; i < 65; i++)
		desc(f, i, 0, (uint32_t)RAM, VIRTQ_DESC_F_WRITE | (i < 64 ? VIRTQ_DESC_F_NEXT : 0), i + 1);
	offer(f, 0);
	expect_broken(f);
}

static void test_read_after_write(void **state)
{
	struct fx *f = *state;
	desc(f, 0, BUF, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc(f, 1, BUF, 1, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_read_after_write_indirect(void **state)
{
	struct fx *f = *state;
	desc_at(f, INDIR, 0, BUF, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc_at(f, INDIR, 1, BUF, 1, 0, 0);
	desc(f, 0, INDIR, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_nested_indirect(void **state)
{
	struct fx *f = *state;
	desc_at(f, INDIR2, 0, BUF, 1, 0, 0);
	desc_at(f, INDIR, 0, INDIR2, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(f, 0, INDIR, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_self(void **state)
{
	struct fx *f = *state;
	/* A table that points at itself. */
	desc_at(f, INDIR, 0, INDIR, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(f, 0, INDIR, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_two_indirect(void **state)
{
	struct fx *f = *state;
	/* Only one indirect descriptor per chain (it cannot have NEXT). */
	desc_at(f, INDIR, 0, BUF, 1, 0, 0);
	desc(f, 0, INDIR, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, INDIR, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_with_next(void **state)
{
	struct fx *f = *state;
	desc_at(f, INDIR, 0, BUF, 1, 0, 0);
	desc(f, 0, INDIR, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	desc(f, 1, BUF, 1, 0, 0);
	offer(f, 0);
	expect_broken(f);
}

static void indirect_bad_table(struct fx *f, uint64_t addr, uint32_t len)
{
	for (uint16_t i = 0; i < 8; i++)
		desc_at(f, INDIR, i, BUF, 1, 0, 0);
	desc(f, 0, addr, len, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_len_not_multiple(void **state) { indirect_bad_table(*state, INDIR, 24); }
static void test_indirect_len_zero(void **state) { indirect_bad_table(*state, INDIR, 0); }
static void test_indirect_len_too_big(void **state) { indirect_bad_table(*state, INDIR, 9 * 16); }
static void test_indirect_len_huge(void **state) { indirect_bad_table(*state, INDIR, 0xfffffff0u); }
static void test_indirect_out_of_ram(void **state) { indirect_bad_table(*state, RAM - 16, 32); }
static void test_indirect_overflow(void **state) { indirect_bad_table(*state, UINT64_MAX - 15, 32); }

static void test_indirect_next_out_of_table(void **state)
{
	struct fx *f = *state;
	/* next 2 is inside the queue size but outside a 2-entry table. */
	desc_at(f, INDIR, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	desc_at(f, INDIR, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 2);
	desc_at(f, INDIR, 2, BUF, 1, 0, 0);
	desc(f, 0, INDIR, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_loop(void **state)
{
	struct fx *f = *state;
	desc_at(f, INDIR, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	desc_at(f, INDIR, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
	desc(f, 0, INDIR, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

static void test_indirect_buffer_out_of_ram(void **state)
{
	struct fx *f = *state;
	desc_at(f, INDIR, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	desc_at(f, INDIR, 1, RAM - 1, 2, VIRTQ_DESC_F_WRITE, 0);
	desc(f, 0, INDIR, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f);
}

/* Random rings: nothing may crash, hang or point outside RAM. The guard
 * pages turn any stray access into a crash. */
static void test_random_rings(void **state)
{
	struct fx *f = *state;
	unsigned seed = 12345;
	unsigned popped = 0, refused = 0;
	uint64_t addrs[] = { 0, BUF, INDIR, RAM - 16, RAM, UINT64_MAX - 7, GM_MMIO_HOLE_START, DESC };
	for (int round = 0; round < 3000; round++) {
		uint16_t size = (uint16_t)(1u << (rand_r(&seed) % 5));  /* 1 .. 16 */
		vq_reset(&f->vq, size);
		f->vq.desc_gpa = DESC, f->vq.avail_gpa = AVAIL, f->vq.used_gpa = USED;
		f->vq.ready = true;
		f->vq.event_idx = rand_r(&seed) & 1;
		for (uint16_t t = 0; t < 2; t++)
			for (uint16_t i = 0; i < 16; i++) {
				/* Mostly plausible descriptors, with every kind of damage mixed in. */
				uint16_t flags = 0;
				if (rand_r(&seed) % 3 == 0)
					flags |= VIRTQ_DESC_F_NEXT;
				if (rand_r(&seed) % 3 == 0)
					flags |= VIRTQ_DESC_F_WRITE;
				if (rand_r(&seed) % 6 == 0)
					flags |= VIRTQ_DESC_F_INDIRECT;
				uint32_t len = (rand_r(&seed) % 8) ? (uint32_t)(rand_r(&seed) % 64) : (uint32_t)rand_r(&seed);
				uint64_t a = (rand_r(&seed) % 3) ? BUF : addrs[rand_r(&seed) % 8];
				if (rand_r(&seed) % 8 == 0)
					a += rand_r(&seed) % 64;
				if (flags & VIRTQ_DESC_F_INDIRECT && rand_r(&seed) % 4)
					a = INDIR, len = 16 * (rand_r(&seed) % 18);
				desc_at(f, t ? INDIR : DESC, i, a, len, flags, (uint16_t)(rand_r(&seed) % 18));
			}
		for (uint16_t i = 0; i < 16; i++)
			put16(f, AVAIL + 4 + 2 * i, (uint16_t)(rand_r(&seed) % 20));
		put16(f, AVAIL + 2, (uint16_t)(rand_r(&seed) % (rand_r(&seed) % 8 ? size + 1u : 20u)));
		for (int k = 0; k < 20; k++) {
			int r = vq_pop(&f->gm, &f->vq, &f->chain);
			if (r < 0)
				refused++;
			if (r <= 0)
				break;
			popped++;
			assert_true(f->chain.n <= size);
			for (size_t b = 0; b < f->chain.n; b++) {
				const struct vq_buf *vb = &f->chain.bufs[b];
				assert_true(vb->host >= f->gm.regions[0].host);
				assert_true(vb->host + vb->len <= f->gm.regions[0].host + f->gm.regions[0].size);
				if (vb->len) {
					volatile uint8_t x = vb->host[0];
					(void)x;
					vb->host[vb->len - 1] ^= 0;
				}
			}
			assert_int_equal(vq_push(&f->gm, &f->vq, f->chain.head, 0), 0);
		}
	}
	/* Both outcomes were exercised. */
	print_message("random rings: %u chains taken, %u rings refused\n", popped, refused);
	assert_true(popped > 300);
	assert_true(refused > 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_single, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_multi, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_full_ring, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_chain_of_size, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_full_table, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_push_and_wrap, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_push_bad_head, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_push_n_and_unpop, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_no_interrupt, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_event_idx, fx_setup, fx_teardown),
		cmocka_unit_test(test_validate),
		cmocka_unit_test_setup_teardown(test_loop, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_self_loop, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_chain_longer_than_queue, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_next_out_of_range, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_next_far_out_of_range, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_head_out_of_range, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_jump, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_backwards, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_buffer_beyond_ram, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_buffer_straddles_end, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_buffer_in_hole, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_addr_len_overflow, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_len_cap, fx_setup_128, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_len_at_cap, fx_setup_128, fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_len_cap, fx_setup_128, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_after_write, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_after_write_indirect, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_nested_indirect, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_self, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_two_indirect, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_with_next, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_len_not_multiple, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_len_zero, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_len_too_big, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_len_huge, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_out_of_ram, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_overflow, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_next_out_of_table, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_loop, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_indirect_buffer_out_of_ram, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_random_rings, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
