/* Unit tests for src/vmm/devices/ioapic.c, the userspace IOAPIC of the split
 * irqchip, driven through its MMIO window as a guest would (IOREGSEL, IOWIN),
 * with fake ops that record every message sent and every route set. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/ioapic.h"

#define MAX_SENT 64

struct fx {
	struct ioapic io;
	struct ioapic_ops ops;
	struct ioapic_msi sent[MAX_SENT];
	int n_sent;
	int accept;                        /* what send_msi answers (> 0 accepted, 0 not, < 0 error) */
	struct ioapic_route routes[IOAPIC_PINS];
	size_t n_routes;
	int route_calls;
	int route_result;
	int failures, last_failure;
};

static int fake_send(void *opaque, const struct ioapic_msi *m)
{
	struct fx *f = opaque;
	if (f->accept < 0)
		return f->accept;
	assert_true(f->n_sent < MAX_SENT);
	f->sent[f->n_sent++] = *m;
	return f->accept;
}

static int fake_routes(void *opaque, const struct ioapic_route *r, size_t n)
{
	struct fx *f = opaque;
	f->route_calls++;
	if (f->route_result < 0)
		return f->route_result;
	assert_true(n <= IOAPIC_PINS);
	memcpy(f->routes, r, n * sizeof(*r));
	f->n_routes = n;
	return 0;
}

static void fake_failed(void *opaque, int neg_errno, const char *what)
{
	struct fx *f = opaque;
	assert_non_null(what);
	f->failures++;
	f->last_failure = neg_errno;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->ops = (struct ioapic_ops){ .send_msi = fake_send, .set_level_routes = fake_routes, .failed = fake_failed };
	f->accept = 1;
	struct gr_error err = { 0 };
	assert_int_equal(ioapic_init(&f->io, &f->ops, f, &err), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	ioapic_destroy(&f->io);
	free(f);
	return 0;
}

/* ---- guest-side register access ---- */

static uint32_t mmio_read32(struct fx *f, uint64_t off)
{
	uint32_t v = 0xDEADBEEF;
	ioapic_mmio_read(&f->io, off, &v, 4);
	return v;
}

static void mmio_write32(struct fx *f, uint64_t off, uint32_t v)
{
	ioapic_mmio_write(&f->io, off, &v, 4);
}

static uint32_t reg_read(struct fx *f, uint32_t index)
{
	mmio_write32(f, IOAPIC_IOREGSEL, index);
	return mmio_read32(f, IOAPIC_IOWIN);
}

static void reg_write(struct fx *f, uint32_t index, uint32_t v)
{
	mmio_write32(f, IOAPIC_IOREGSEL, index);
	mmio_write32(f, IOAPIC_IOWIN, v);
}

static void rte_write(struct fx *f, uint32_t pin, uint64_t e)
{
	reg_write(f, IOAPIC_REG_REDTBL + 2 * pin + 1, (uint32_t)(e >> 32));
	reg_write(f, IOAPIC_REG_REDTBL + 2 * pin, (uint32_t)e);
}

static uint64_t rte_read(struct fx *f, uint32_t pin)
{
	return (uint64_t)reg_read(f, IOAPIC_REG_REDTBL + 2 * pin + 1) << 32 | reg_read(f, IOAPIC_REG_REDTBL + 2 * pin);
}

#define EDGE(vec, dest)  ((uint64_t)(vec) | (uint64_t)(dest) << 56)
#define LEVEL(vec, dest) (EDGE(vec, dest) | IOAPIC_RTE_LEVEL)

/* ---- registers ---- */

static void test_reset_state(void **state)
{
	struct fx *f = *state;
	assert_int_equal(reg_read(f, IOAPIC_REG_ID), 0);
	assert_int_equal(reg_read(f, IOAPIC_REG_ARB), 0);
	/* version 0x20 (with the EOI register), maximum redirection entry 23 */
	assert_int_equal(reg_read(f, IOAPIC_REG_VERSION), 0x00170020);
	for (uint32_t pin = 0; pin < IOAPIC_PINS; pin++)
		assert_int_equal(rte_read(f, pin), IOAPIC_RTE_MASKED);
	assert_int_equal(f->route_calls, 0); /* nothing to tell KVM at start-up */
}

static void test_ioregsel_reads_back_low_byte(void **state)
{
	struct fx *f = *state;
	mmio_write32(f, IOAPIC_IOREGSEL, 0xABCDEF12);
	assert_int_equal(mmio_read32(f, IOAPIC_IOREGSEL), 0x12);
}

static void test_id_register(void **state)
{
	struct fx *f = *state;
	reg_write(f, IOAPIC_REG_ID, 0xFFFFFFFF);
	assert_int_equal(reg_read(f, IOAPIC_REG_ID), 0x0F000000);   /* bits 24..27 only */
	assert_int_equal(reg_read(f, IOAPIC_REG_ARB), 0x0F000000);  /* arbitration follows the ID */
	reg_write(f, IOAPIC_REG_ID, 0x05000000);
	assert_int_equal(reg_read(f, IOAPIC_REG_ID), 0x05000000);
	/* version and arbitration are read-only */
	reg_write(f, IOAPIC_REG_VERSION, 0);
	reg_write(f, IOAPIC_REG_ARB, 0);
	assert_int_equal(reg_read(f, IOAPIC_REG_VERSION), 0x00170020);
	assert_int_equal(reg_read(f, IOAPIC_REG_ARB), 0x05000000);
}

static void test_redirection_entry_round_trip(void **state)
{
	struct fx *f = *state;
	uint64_t e = 0x3Aull | (uint64_t)IOAPIC_DM_LOWEST << 8 | IOAPIC_RTE_DESTMODE | IOAPIC_RTE_POLARITY |
		     IOAPIC_RTE_MASKED | 0x81ull << 56;
	rte_write(f, 7, e);
	assert_int_equal(rte_read(f, 7), e);
	assert_int_equal(ioapic_get_rte(&f->io, 7), e);
	/* every pin has its own entry */
	assert_int_equal(rte_read(f, 6), IOAPIC_RTE_MASKED);
	assert_int_equal(rte_read(f, 8), IOAPIC_RTE_MASKED);
	rte_write(f, 23, EDGE(0x40, 3));
	assert_int_equal(rte_read(f, 23), EDGE(0x40, 3));
}

static void test_reserved_and_read_only_bits_ignored(void **state)
{
	struct fx *f = *state;
	reg_write(f, IOAPIC_REG_REDTBL + 2 * 5, 0xFFFFFFFF);
	reg_write(f, IOAPIC_REG_REDTBL + 2 * 5 + 1, 0xFFFFFFFF);
	/* delivery status (12), remote IRR (14) and 17..55 stay clear */
	assert_int_equal(rte_read(f, 5), IOAPIC_RTE_WRITABLE);
	assert_int_equal(reg_read(f, IOAPIC_REG_REDTBL + 2 * 5), 0x0001AFFF);
	assert_int_equal(reg_read(f, IOAPIC_REG_REDTBL + 2 * 5 + 1), 0xFF000000);
}

static void test_unknown_registers(void **state)
{
	struct fx *f = *state;
	uint64_t before = ioapic_get_stats(&f->io).bad_accesses;
	/* 0x03..0x0F, beyond the last entry (0x40..0xFF) */
	assert_int_equal(reg_read(f, 0x03), 0);
	assert_int_equal(reg_read(f, 0x0F), 0);
	assert_int_equal(reg_read(f, IOAPIC_REG_REDTBL + 2 * IOAPIC_PINS), 0);
	assert_int_equal(reg_read(f, 0xFF), 0);
	reg_write(f, 0x40, 0x30);
	reg_write(f, 0xFF, 0xFFFFFFFF);
	assert_int_equal(ioapic_get_stats(&f->io).bad_accesses, before + 6);
	for (uint32_t pin = 0; pin < IOAPIC_PINS; pin++)
		assert_int_equal(rte_read(f, pin), IOAPIC_RTE_MASKED);
}

static void test_odd_accesses(void **state)
{
	struct fx *f = *state;
	reg_write(f, IOAPIC_REG_REDTBL, 0x31);
	/* sizes other than 4 and offsets other than 0x00 / 0x10 do nothing and read 0 */
	uint8_t b = 0x55;
	ioapic_mmio_write(&f->io, IOAPIC_IOREGSEL, &b, 1);
	assert_int_equal(mmio_read32(f, IOAPIC_IOREGSEL), IOAPIC_REG_REDTBL);
	uint64_t q = 0x1122334455667788ull;
	ioapic_mmio_write(&f->io, IOAPIC_IOWIN, &q, 8);
	ioapic_mmio_read(&f->io, IOAPIC_IOWIN, &q, 8);
	assert_int_equal(q, 0);
	uint16_t h = 0xFFFF;
	ioapic_mmio_read(&f->io, IOAPIC_IOWIN, &h, 2);
	assert_int_equal(h, 0);
	ioapic_mmio_write(&f->io, IOAPIC_IOWIN + 1, &h, 2);
	mmio_write32(f, 0x04, 0xFFFFFFFF);
	mmio_write32(f, 0x14, 0xFFFFFFFF);
	mmio_write32(f, 0x44, 0xFFFFFFFF);
	mmio_write32(f, 0xFFC, 0xFFFFFFFF);
	assert_int_equal(mmio_read32(f, 0x20), 0);
	assert_int_equal(mmio_read32(f, 0x40), 0);   /* the EOI register is write-only */
	assert_int_equal(mmio_read32(f, 0xFFC), 0);
	assert_int_equal(rte_read(f, 0), 0x31);
	assert_int_equal(ioapic_get_stats(&f->io).bad_accesses, 12);
	assert_int_equal(ioapic_get_stats(&f->io).eoi_writes, 0);
}

/* ---- messages ---- */

static void test_msi_composition(void **state)
{
	(void)state;
	struct ioapic_msi m;
	/* fixed, physical, edge: vector 0x30 to APIC 2 */
	assert_true(ioapic_rte_to_msi(EDGE(0x30, 2), &m));
	assert_int_equal(m.address, 0xFEE02000ull);
	assert_int_equal(m.data, 0x30);
	/* lowest priority, logical, level: destination mode in address bit 2, trigger in bit 15, assert in 14 */
	uint64_t e = 0x41 | (uint64_t)IOAPIC_DM_LOWEST << 8 | IOAPIC_RTE_DESTMODE | IOAPIC_RTE_LEVEL | 0xF0ull << 56;
	assert_true(ioapic_rte_to_msi(e, &m));
	assert_int_equal(m.address, 0xFEEF0004ull);
	assert_int_equal(m.data, 0x41 | 1u << 8 | 1u << 14 | 1u << 15);
	/* NMI and INIT go edge-triggered, without a vector */
	assert_true(ioapic_rte_to_msi(0x99 | (uint64_t)IOAPIC_DM_NMI << 8 | IOAPIC_RTE_LEVEL, &m));
	assert_int_equal(m.address, 0xFEE00000ull);
	assert_int_equal(m.data, 4u << 8);
	assert_true(ioapic_rte_to_msi((uint64_t)IOAPIC_DM_INIT << 8 | 1ull << 56, &m));
	assert_int_equal(m.address, 0xFEE01000ull);
	assert_int_equal(m.data, 5u << 8);
	/* polarity and mask do not change the message */
	assert_true(ioapic_rte_to_msi(EDGE(0x30, 2) | IOAPIC_RTE_POLARITY | IOAPIC_RTE_MASKED, &m));
	assert_int_equal(m.data, 0x30);
	/* nothing for SMI, ExtINT, the reserved modes, or vectors below 16 */
	assert_false(ioapic_rte_to_msi(0x30 | (uint64_t)IOAPIC_DM_SMI << 8, &m));
	assert_false(ioapic_rte_to_msi(0x30 | (uint64_t)IOAPIC_DM_EXTINT << 8, &m));
	assert_false(ioapic_rte_to_msi(0x30 | 3ull << 8, &m));
	assert_false(ioapic_rte_to_msi(0x30 | 6ull << 8, &m));
	assert_false(ioapic_rte_to_msi(EDGE(0x0F, 0), &m));
	assert_true(ioapic_rte_to_msi(EDGE(0x10, 0), &m));
}

/* ---- edge ---- */

static void test_edge_delivers_on_rising_input(void **state)
{
	struct fx *f = *state;
	rte_write(f, 5, EDGE(0x30, 1));
	assert_int_equal(f->n_sent, 0);
	assert_int_equal(ioapic_set_irq(&f->io, 5, true), 0);
	assert_int_equal(f->n_sent, 1);
	assert_int_equal(f->sent[0].address, 0xFEE01000ull);
	assert_int_equal(f->sent[0].data, 0x30);
	/* no new edge while the input stays high */
	assert_int_equal(ioapic_set_irq(&f->io, 5, true), 0);
	assert_int_equal(f->n_sent, 1);
	assert_int_equal(ioapic_set_irq(&f->io, 5, false), 0);
	assert_int_equal(ioapic_set_irq(&f->io, 5, true), 0);
	assert_int_equal(f->n_sent, 2);
	/* pulses: one message each; remote IRR is never set for edge pins */
	assert_int_equal(ioapic_set_irq(&f->io, 5, false), 0);
	assert_int_equal(ioapic_pulse_irq(&f->io, 5), 0);
	assert_int_equal(ioapic_pulse_irq(&f->io, 5), 0);
	assert_int_equal(f->n_sent, 4);
	assert_int_equal(rte_read(f, 5) & IOAPIC_RTE_REMOTE_IRR, 0);
	assert_int_equal(ioapic_get_stats(&f->io).delivered, 4);
	/* only pin 5's edge reached the guest */
	assert_int_equal(ioapic_pulse_irq(&f->io, 6), 0);
	assert_int_equal(f->n_sent, 4);
}

static void test_masked_edge_is_lost(void **state)
{
	struct fx *f = *state;
	rte_write(f, 9, EDGE(0x31, 0) | IOAPIC_RTE_MASKED);
	assert_int_equal(ioapic_pulse_irq(&f->io, 9), 0);
	assert_int_equal(ioapic_set_irq(&f->io, 9, true), 0);
	assert_int_equal(f->n_sent, 0);
	assert_int_equal(ioapic_get_stats(&f->io).masked, 2);
	/* unmasking with the input high delivers nothing: the edge came while masked */
	rte_write(f, 9, EDGE(0x31, 0));
	assert_int_equal(f->n_sent, 0);
	assert_int_equal(ioapic_set_irq(&f->io, 9, false), 0);
	assert_int_equal(ioapic_pulse_irq(&f->io, 9), 0);
	assert_int_equal(f->n_sent, 1);
}

static void test_not_accepted_and_undeliverable(void **state)
{
	struct fx *f = *state;
	f->accept = 0; /* no local APIC takes it (no such APIC id, APIC disabled) */
	rte_write(f, 5, LEVEL(0x30, 0x7F));
	assert_int_equal(ioapic_set_irq(&f->io, 5, true), 0);
	assert_int_equal(f->n_sent, 1);
	assert_int_equal(rte_read(f, 5) & IOAPIC_RTE_REMOTE_IRR, 0); /* nobody will EOI it */
	assert_int_equal(ioapic_get_stats(&f->io).not_accepted, 1);
	/* SMI, ExtINT, reserved modes, bad vectors: nothing is sent */
	f->accept = 1;
	const uint64_t bad[] = { 0x30 | (uint64_t)IOAPIC_DM_SMI << 8, 0x30 | (uint64_t)IOAPIC_DM_EXTINT << 8,
				 0x30 | 3ull << 8, 0x30 | 6ull << 8, 0x05 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rte_write(f, 6, bad[i]);
		assert_int_equal(ioapic_pulse_irq(&f->io, 6), 0);
	}
	assert_int_equal(f->n_sent, 1);
	assert_int_equal(ioapic_get_stats(&f->io).undeliverable, 5);
	/* beyond pin 23 */
	assert_int_equal(ioapic_set_irq(&f->io, IOAPIC_PINS, true), -EINVAL);
	assert_int_equal(ioapic_pulse_irq(&f->io, 1000), -EINVAL);
	assert_int_equal(ioapic_get_rte(&f->io, IOAPIC_PINS), 0);
}

static void test_send_error_is_returned(void **state)
{
	struct fx *f = *state;
	rte_write(f, 5, EDGE(0x30, 0));
	f->accept = -EIO;
	assert_int_equal(ioapic_pulse_irq(&f->io, 5), -EIO);
	assert_int_equal(ioapic_set_irq(&f->io, 5, true), -EIO);
	/* a delivery caused by a register write reports through ops->failed */
	ioapic_set_irq(&f->io, 7, true);
	rte_write(f, 7, LEVEL(0x32, 0));
	assert_int_equal(f->failures, 1);
	assert_int_equal(f->last_failure, -EIO);
}

/* ---- level ---- */

static void test_level_remote_irr_and_eoi(void **state)
{
	struct fx *f = *state;
	rte_write(f, 10, LEVEL(0x50, 0));
	assert_int_equal(ioapic_set_irq(&f->io, 10, true), 0);
	assert_int_equal(f->n_sent, 1);
	assert_int_equal(f->sent[0].data, 0x50 | 1u << 14 | 1u << 15);
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	/* in service: more assertions send nothing */
	assert_int_equal(ioapic_set_irq(&f->io, 10, true), 0);
	assert_int_equal(f->n_sent, 1);
	/* the guest cannot clear remote IRR by writing it */
	reg_write(f, IOAPIC_REG_REDTBL + 2 * 10, (uint32_t)LEVEL(0x50, 0));
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	/* an EOI of another vector changes nothing */
	assert_int_equal(ioapic_eoi(&f->io, 0x51), 0);
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	/* EOI while still asserted: delivered again, remote IRR set again */
	assert_int_equal(ioapic_eoi(&f->io, 0x50), 0);
	assert_int_equal(f->n_sent, 2);
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	/* the device drops the line, then the EOI: remote IRR clear, nothing sent */
	assert_int_equal(ioapic_set_irq(&f->io, 10, false), 0);
	assert_int_equal(ioapic_eoi(&f->io, 0x50), 0);
	assert_int_equal(f->n_sent, 2);
	assert_int_equal(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR, 0);
	assert_int_equal(ioapic_get_stats(&f->io).eois, 2);
	/* a pulse on a level pin delivers once and sets remote IRR */
	assert_int_equal(ioapic_pulse_irq(&f->io, 10), 0);
	assert_int_equal(f->n_sent, 3);
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	assert_int_equal(ioapic_pulse_irq(&f->io, 10), 0); /* in service: lost, the line is low at the EOI */
	assert_int_equal(ioapic_eoi(&f->io, 0x50), 0);
	assert_int_equal(f->n_sent, 3);
}

static void test_level_masked_is_held_until_unmasked(void **state)
{
	struct fx *f = *state;
	rte_write(f, 11, LEVEL(0x60, 0) | IOAPIC_RTE_MASKED);
	assert_int_equal(ioapic_set_irq(&f->io, 11, true), 0);
	assert_int_equal(f->n_sent, 0);
	rte_write(f, 11, LEVEL(0x60, 0)); /* unmask with the input asserted */
	assert_int_equal(f->n_sent, 1);
	assert_true(rte_read(f, 11) & IOAPIC_RTE_REMOTE_IRR);
	/* masked while in service: the EOI still clears remote IRR, redelivery waits for the unmask */
	rte_write(f, 11, LEVEL(0x60, 0) | IOAPIC_RTE_MASKED);
	assert_int_equal(ioapic_eoi(&f->io, 0x60), 0);
	assert_int_equal(rte_read(f, 11) & IOAPIC_RTE_REMOTE_IRR, 0);
	assert_int_equal(f->n_sent, 1);
	rte_write(f, 11, LEVEL(0x60, 0));
	assert_int_equal(f->n_sent, 2);
}

static void test_switch_to_edge_clears_remote_irr(void **state)
{
	struct fx *f = *state;
	rte_write(f, 12, LEVEL(0x70, 0));
	ioapic_pulse_irq(&f->io, 12);
	assert_true(rte_read(f, 12) & IOAPIC_RTE_REMOTE_IRR);
	rte_write(f, 12, EDGE(0x70, 0));
	assert_int_equal(rte_read(f, 12), EDGE(0x70, 0));
	rte_write(f, 12, LEVEL(0x70, 0));
	assert_int_equal(rte_read(f, 12) & IOAPIC_RTE_REMOTE_IRR, 0);
}

static void test_eoi_serves_every_pin_with_the_vector(void **state)
{
	struct fx *f = *state;
	rte_write(f, 13, LEVEL(0x80, 0));
	rte_write(f, 14, LEVEL(0x80, 1));
	ioapic_set_irq(&f->io, 13, true);
	ioapic_set_irq(&f->io, 14, true);
	assert_int_equal(f->n_sent, 2);
	ioapic_set_irq(&f->io, 13, false);
	assert_int_equal(ioapic_eoi(&f->io, 0x80), 0);
	assert_int_equal(f->n_sent, 3); /* pin 14 again, to APIC 1 */
	assert_int_equal(f->sent[2].address, 0xFEE01000ull);
	assert_int_equal(rte_read(f, 13) & IOAPIC_RTE_REMOTE_IRR, 0);
	assert_true(rte_read(f, 14) & IOAPIC_RTE_REMOTE_IRR);
}

/* ---- the EOI register (version 0x20: guests that suppress EOI broadcasts) ---- */

static void test_eoi_register_clears_remote_irr_and_redelivers(void **state)
{
	struct fx *f = *state;
	rte_write(f, 10, LEVEL(0x50, 0));
	rte_write(f, 11, LEVEL(0x50, 1));
	rte_write(f, 12, EDGE(0x50, 0));
	assert_int_equal(ioapic_set_irq(&f->io, 10, true), 0);
	assert_int_equal(ioapic_set_irq(&f->io, 11, true), 0);
	assert_int_equal(f->n_sent, 2);
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	assert_true(rte_read(f, 11) & IOAPIC_RTE_REMOTE_IRR);
	/* pin 10 still asserted, pin 11 dropped: one EOI write serves both */
	assert_int_equal(ioapic_set_irq(&f->io, 11, false), 0);
	mmio_write32(f, IOAPIC_EOI, 0x50);
	assert_int_equal(f->n_sent, 3);
	assert_int_equal(f->sent[2].address, 0xFEE00000ull);
	assert_int_equal(f->sent[2].data, 0x50 | 1u << 14 | 1u << 15);
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);    /* delivered again: in service again */
	assert_int_equal(rte_read(f, 11) & IOAPIC_RTE_REMOTE_IRR, 0);
	assert_int_equal(rte_read(f, 12), EDGE(0x50, 0));        /* an edge pin has nothing to end */
	/* the line drops: the next EOI ends it, nothing is sent */
	assert_int_equal(ioapic_set_irq(&f->io, 10, false), 0);
	mmio_write32(f, IOAPIC_EOI, 0x50);
	assert_int_equal(f->n_sent, 3);
	assert_int_equal(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR, 0);
	struct ioapic_stats st = ioapic_get_stats(&f->io);
	assert_int_equal(st.eoi_writes, 2);
	assert_int_equal(st.eois, 3);
	assert_int_equal(st.bad_accesses, 0);
	/* bits 8..31 are reserved: the vector is bits 0..7 */
	assert_int_equal(ioapic_pulse_irq(&f->io, 10), 0);
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	mmio_write32(f, IOAPIC_EOI, 0xFFFFFF50);
	assert_int_equal(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR, 0);
	/* the EOI exit still works beside the register */
	assert_int_equal(ioapic_pulse_irq(&f->io, 10), 0);
	assert_int_equal(ioapic_eoi(&f->io, 0x50), 0);
	assert_int_equal(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR, 0);
}

static void test_eoi_register_wrong_vector_does_nothing(void **state)
{
	struct fx *f = *state;
	rte_write(f, 10, LEVEL(0x50, 0));
	assert_int_equal(ioapic_set_irq(&f->io, 10, true), 0);
	assert_int_equal(f->n_sent, 1);
	mmio_write32(f, IOAPIC_EOI, 0x51);
	mmio_write32(f, IOAPIC_EOI, 0x00);
	mmio_write32(f, IOAPIC_EOI, 0x5000); /* 0x50 in the reserved bits: vector 0 */
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	assert_int_equal(f->n_sent, 1);
	assert_int_equal(ioapic_get_stats(&f->io).eois, 0);
	assert_int_equal(ioapic_get_stats(&f->io).eoi_writes, 3);
	/* a masked pin in service: the EOI ends it, the redelivery waits for the unmask */
	rte_write(f, 10, LEVEL(0x50, 0) | IOAPIC_RTE_MASKED);
	mmio_write32(f, IOAPIC_EOI, 0x50);
	assert_int_equal(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR, 0);
	assert_int_equal(f->n_sent, 1);
	rte_write(f, 10, LEVEL(0x50, 0));
	assert_int_equal(f->n_sent, 2);
}

static void test_eoi_register_odd_accesses_ignored(void **state)
{
	struct fx *f = *state;
	rte_write(f, 10, LEVEL(0x50, 0));
	assert_int_equal(ioapic_set_irq(&f->io, 10, true), 0);
	/* 1-, 2- and 8-byte writes, and 32-bit writes next to the register, EOI nothing */
	uint8_t b = 0x50;
	uint16_t h = 0x50;
	uint64_t q = 0x50;
	ioapic_mmio_write(&f->io, IOAPIC_EOI, &b, 1);
	ioapic_mmio_write(&f->io, IOAPIC_EOI, &h, 2);
	ioapic_mmio_write(&f->io, IOAPIC_EOI, &q, 8);
	mmio_write32(f, IOAPIC_EOI + 1, 0x50);
	mmio_write32(f, IOAPIC_EOI + 4, 0x50);
	mmio_write32(f, IOAPIC_EOI - 4, 0x50);
	/* reading it neither returns anything nor EOIs */
	assert_int_equal(mmio_read32(f, IOAPIC_EOI), 0);
	assert_true(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	assert_int_equal(f->n_sent, 1);
	struct ioapic_stats st = ioapic_get_stats(&f->io);
	assert_int_equal(st.eoi_writes, 0);
	assert_int_equal(st.eois, 0);
	assert_int_equal(st.bad_accesses, 7);
	/* IOREGSEL is untouched by them: the window still reads pin 10's entry */
	mmio_write32(f, IOAPIC_IOREGSEL, IOAPIC_REG_REDTBL + 2 * 10);
	ioapic_mmio_write(&f->io, IOAPIC_EOI, &b, 1);
	assert_int_equal(mmio_read32(f, IOAPIC_IOWIN), (uint32_t)(LEVEL(0x50, 0) | IOAPIC_RTE_REMOTE_IRR));
}

static void test_eoi_register_send_failure_is_reported(void **state)
{
	struct fx *f = *state;
	rte_write(f, 10, LEVEL(0x50, 0));
	assert_int_equal(ioapic_set_irq(&f->io, 10, true), 0);
	f->accept = -EIO;
	mmio_write32(f, IOAPIC_EOI, 0x50); /* still asserted: the redelivery fails, the guest cannot be told */
	assert_int_equal(f->failures, 1);
	assert_int_equal(f->last_failure, -EIO);
	assert_int_equal(rte_read(f, 10) & IOAPIC_RTE_REMOTE_IRR, 0);
	/* the next assertion delivers once the host can send again */
	f->accept = 1;
	assert_int_equal(ioapic_set_irq(&f->io, 10, true), 0);
	assert_int_equal(f->n_sent, 2);
}

/* ---- the level routes for KVM's EOI exits ---- */

static void test_level_routes_follow_the_entries(void **state)
{
	struct fx *f = *state;
	rte_write(f, 5, EDGE(0x30, 0)); /* edge entries need no route */
	assert_int_equal(f->route_calls, 0);
	rte_write(f, 8, LEVEL(0x41, 2) | IOAPIC_RTE_MASKED);
	assert_int_equal(f->route_calls, 1);
	assert_int_equal(f->n_routes, 1);
	assert_int_equal(f->routes[0].pin, 8);
	assert_int_equal(f->routes[0].msi.address, 0xFEE02000ull);
	assert_int_equal(f->routes[0].msi.data, 0x41 | 1u << 14 | 1u << 15);
	/* masking, unmasking, polarity, the ID: same messages, no new call */
	rte_write(f, 8, LEVEL(0x41, 2));
	rte_write(f, 8, LEVEL(0x41, 2) | IOAPIC_RTE_POLARITY);
	reg_write(f, IOAPIC_REG_ID, 0x01000000);
	assert_int_equal(f->route_calls, 1);
	/* a new vector, a second pin, back to edge */
	rte_write(f, 8, LEVEL(0x42, 2));
	assert_int_equal(f->route_calls, 2);
	assert_int_equal(f->routes[0].msi.data & 0xFF, 0x42);
	rte_write(f, 20, LEVEL(0x43, 0));
	assert_int_equal(f->route_calls, 3);
	assert_int_equal(f->n_routes, 2);
	assert_int_equal(f->routes[1].pin, 20);
	rte_write(f, 8, EDGE(0x42, 2));
	assert_int_equal(f->route_calls, 4);
	assert_int_equal(f->n_routes, 1);
	assert_int_equal(f->routes[0].pin, 20);
	/* level NMI: sent edge, so no EOI route */
	rte_write(f, 21, (uint64_t)IOAPIC_DM_NMI << 8 | IOAPIC_RTE_LEVEL);
	assert_int_equal(f->route_calls, 4);
}

static void test_route_failure_is_reported_and_retried(void **state)
{
	struct fx *f = *state;
	f->route_result = -ENOMEM;
	rte_write(f, 8, LEVEL(0x41, 0));
	assert_int_equal(f->failures, 1); /* the low word made the pin level-triggered */
	assert_int_equal(f->last_failure, -ENOMEM);
	f->route_result = 0;
	rte_write(f, 8, LEVEL(0x41, 0));  /* same entry: tried again since the host has not got it */
	assert_int_equal(f->n_routes, 1);
	int calls = f->route_calls;
	rte_write(f, 8, LEVEL(0x41, 0));
	assert_int_equal(f->route_calls, calls);
}

static void test_without_optional_ops(void **state)
{
	(void)state;
	struct fx f = { .accept = 1 };
	struct ioapic_ops ops = { .send_msi = fake_send };
	struct gr_error err = { 0 };
	assert_int_equal(ioapic_init(&f.io, &ops, &f, &err), 0);
	rte_write(&f, 3, LEVEL(0x40, 0));
	f.accept = -EIO;
	ioapic_set_irq(&f.io, 4, true);
	rte_write(&f, 4, LEVEL(0x41, 0)); /* the failure has nowhere to go: no crash */
	f.accept = 1;
	assert_int_equal(ioapic_pulse_irq(&f.io, 3), 0);
	assert_int_equal(f.n_sent, 1);
	ioapic_destroy(&f.io);
	struct ioapic_ops none = { 0 };
	assert_int_equal(ioapic_init(&f.io, &none, &f, &err), -EINVAL);
	assert_int_equal(ioapic_init(&f.io, NULL, &f, &err), -EINVAL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_reset_state),
		T(test_ioregsel_reads_back_low_byte),
		T(test_id_register),
		T(test_redirection_entry_round_trip),
		T(test_reserved_and_read_only_bits_ignored),
		T(test_unknown_registers),
		T(test_odd_accesses),
		cmocka_unit_test(test_msi_composition),
		T(test_edge_delivers_on_rising_input),
		T(test_masked_edge_is_lost),
		T(test_not_accepted_and_undeliverable),
		T(test_send_error_is_returned),
		T(test_level_remote_irr_and_eoi),
		T(test_level_masked_is_held_until_unmasked),
		T(test_switch_to_edge_clears_remote_irr),
		T(test_eoi_serves_every_pin_with_the_vector),
		T(test_eoi_register_clears_remote_irr_and_redelivers),
		T(test_eoi_register_wrong_vector_does_nothing),
		T(test_eoi_register_odd_accesses_ignored),
		T(test_eoi_register_send_failure_is_reported),
		T(test_level_routes_follow_the_entries),
		T(test_route_failure_is_reported_and_retried),
		cmocka_unit_test(test_without_optional_ops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
