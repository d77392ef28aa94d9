/* The 16550A UART (devices/legacy.c): divisor latch, IER/IIR priorities,
 * LSR bits, the receive FIFO and its limit, the interrupt line (gated by
 * OUT2), loopback, output through a chardev, and hostile accesses (wide,
 * out of range, reads of write-only registers). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/devices/legacy.h"

struct line { int changes; bool level; };

static void on_irq(void *opaque, bool level)
{
	struct line *l = opaque;
	l->changes++;
	l->level = level;
}

static uint8_t in(struct serial *s, unsigned reg)
{
	uint8_t v[4] = { 0 };
	serial_io(s, reg, false, v, 1);
	return v[0];
}

static void out(struct serial *s, unsigned reg, uint8_t v)
{
	serial_io(s, reg, true, &v, 1);
}

static size_t feed(struct serial *s, const char *str)
{
	pthread_mutex_lock(&s->lock);
	size_t n = serial_receive(s, (const uint8_t *)str, strlen(str));
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void test_reset_state_and_dlab(void **state)
{
	(void)state;
	struct serial s;
	serial_init(&s, NULL, NULL, NULL);
	assert_int_equal(in(&s, 2), 0x01);               /* no interrupt */
	assert_int_equal(in(&s, 5), 0x60);               /* THRE | TEMT, no data */
	assert_int_equal(in(&s, 6), 0xB0);               /* DCD, DSR, CTS */
	out(&s, 3, 0x83);                                /* DLAB, 8N1 */
	out(&s, 0, 0x01);
	out(&s, 1, 0x00);
	assert_int_equal(in(&s, 0), 0x01);
	assert_int_equal(in(&s, 1), 0x00);
	out(&s, 3, 0x03);
	assert_int_equal(in(&s, 3), 0x03);
	out(&s, 1, 0xFF);                                /* IER keeps its low 4 bits */
	assert_int_equal(in(&s, 1), 0x0F);
	out(&s, 3, 0x83);
	assert_int_equal(in(&s, 0), 0x01);               /* the divisor survived */
	out(&s, 3, 0x03);
	out(&s, 7, 0x5A);
	assert_int_equal(in(&s, 7), 0x5A);
	out(&s, 5, 0x00);                                /* LSR is read-only */
	assert_int_equal(in(&s, 5), 0x60 | 0x00);
}

static void test_receive_fifo_and_lsr(void **state)
{
	(void)state;
	struct serial s;
	serial_init(&s, NULL, NULL, NULL);
	assert_int_equal(in(&s, 0), 0);                  /* empty RBR reads 0 */
	assert_int_equal(feed(&s, "hi"), 2);
	assert_int_equal(in(&s, 5) & 0x01, 0x01);        /* DR */
	assert_int_equal(in(&s, 0), 'h');
	assert_int_equal(in(&s, 0), 'i');
	assert_int_equal(in(&s, 5) & 0x01, 0);
	/* The FIFO holds 16: the rest is refused (the chardev keeps it), no overrun. */
	assert_int_equal(feed(&s, "0123456789abcdefXYZ"), SERIAL_FIFO);
	assert_int_equal(feed(&s, "Q"), 0);
	assert_int_equal(in(&s, 5) & 0x03, 0x01);        /* DR, no OE */
	for (int i = 0; i < SERIAL_FIFO; i++)
		assert_int_equal(in(&s, 0), "0123456789abcdef"[i]);
	assert_int_equal(in(&s, 5) & 0x01, 0);
	/* FCR bit 1 clears the receive FIFO; bit 0 shows in IIR bits 6-7. */
	feed(&s, "abc");
	out(&s, 2, 0x07);
	assert_int_equal(in(&s, 5) & 0x01, 0);
	assert_int_equal(in(&s, 2), 0xC1);
	assert_int_equal(s.bytes_in, 2 + SERIAL_FIFO + 3);
}

static void test_iir_priorities_and_line(void **state)
{
	(void)state;
	struct line l = { 0 };
	struct serial s;
	serial_init(&s, NULL, on_irq, &l);
	out(&s, 4, 0x08);                                /* OUT2: the IRQ is wired */
	out(&s, 1, 0x01);                                /* ERBFI */
	assert_int_equal(in(&s, 2), 0x01);
	assert_false(l.level);
	feed(&s, "x");
	assert_int_equal(in(&s, 2), 0x04);               /* received data available */
	assert_true(l.level);
	assert_int_equal(l.changes, 1);
	/* THRE enabled too: RDA still wins. */
	out(&s, 1, 0x03);
	assert_int_equal(in(&s, 2), 0x04);
	assert_int_equal(in(&s, 0), 'x');
	/* Now THRE is the source; reading IIR while it is clears it (and the line). */
	assert_true(l.level);
	assert_int_equal(in(&s, 2), 0x02);
	assert_false(l.level);
	assert_int_equal(in(&s, 2), 0x01);
	/* A THR write arms it again (the byte is sent at once). */
	out(&s, 0, 'A');
	assert_true(l.level);
	assert_int_equal(in(&s, 2), 0x02);
	assert_false(l.level);
	/* Turning ETBEI on while THR is empty arms it; off disarms the line. */
	out(&s, 1, 0x01);
	out(&s, 1, 0x03);
	assert_true(l.level);
	out(&s, 1, 0x00);
	assert_false(l.level);
	assert_int_equal(in(&s, 2), 0x01);
	/* Without OUT2 the line stays low though IIR shows the interrupt. */
	out(&s, 4, 0x00);
	out(&s, 1, 0x01);
	feed(&s, "y");
	assert_int_equal(in(&s, 2), 0x04);
	assert_false(l.level);
	out(&s, 4, 0x08);
	assert_true(l.level);
	in(&s, 0);
	assert_false(l.level);
}

static void test_loopback_and_msr(void **state)
{
	(void)state;
	struct line l = { 0 };
	struct serial s;
	serial_init(&s, NULL, on_irq, &l);
	/* What Linux's 8250 probe checks: MCR = LOOP | OUT2 | RTS, MSR & 0xF0 == 0x90. */
	out(&s, 4, 0x10 | 0x0A);
	assert_int_equal(in(&s, 6) & 0xF0, 0x90);
	out(&s, 4, 0x10 | 0x05);                         /* OUT1 -> RI, DTR -> DSR */
	assert_int_equal(in(&s, 6) & 0xF0, 0x60);
	/* THR goes to RBR; host input is refused meanwhile. */
	out(&s, 0, 'L');
	assert_int_equal(in(&s, 5) & 0x01, 0x01);
	assert_int_equal(feed(&s, "no"), 0);
	assert_int_equal(in(&s, 0), 'L');
	assert_int_equal(s.bytes_out, 0);
	/* 17 bytes into a 16-byte FIFO: overrun, LSR.OE until LSR is read, RLS first in IIR. */
	out(&s, 1, 0x05);
	for (int i = 0; i < SERIAL_FIFO + 1; i++)
		out(&s, 0, (uint8_t)i);
	assert_int_equal(in(&s, 2), 0x06);
	assert_int_equal(in(&s, 5) & 0x03, 0x03);
	assert_int_equal(in(&s, 5) & 0x03, 0x01);
	assert_int_equal(in(&s, 2), 0x04);
	out(&s, 2, 0x02);
	out(&s, 4, 0x00);
	assert_int_equal(in(&s, 6) & 0xF0, 0xB0);
}

static void test_output_through_chardev(void **state)
{
	(void)state;
	char path[] = "/tmp/gureum-test-uart-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	char spec[64];
	snprintf(spec, sizeof(spec), "file=%s", path);
	struct chardev cd;
	struct gr_error err = { 0 };
	assert_int_equal(chardev_open(&cd, "--serial", spec, &err), 0);
	struct serial s;
	serial_init(&s, &cd, NULL, NULL);
	for (const char *p = "hello\n"; *p; p++)
		out(&s, 0, (uint8_t)*p);
	chardev_close(&cd);
	char buf[16] = { 0 };
	fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	close(fd);
	unlink(path);
	assert_string_equal(buf, "hello\n");
	assert_int_equal(s.bytes_out, 6);
}

static void test_hostile_accesses(void **state)
{
	(void)state;
	struct serial s;
	serial_init(&s, NULL, NULL, NULL);
	feed(&s, "ab");
	/* A 4-byte read of RBR takes one byte; the other bytes read as 0xff. */
	uint8_t v[4] = { 0 };
	serial_io(&s, 0, false, v, 4);
	assert_int_equal(v[0], 'a');
	assert_int_equal(v[1], 0xFF);
	assert_int_equal(v[3], 0xFF);
	/* A 2-byte write at LCR sets LCR only. */
	uint8_t w[2] = { 0x03, 0xFF };
	serial_io(&s, 3, true, w, 2);
	assert_int_equal(in(&s, 3), 0x03);
	assert_int_equal(in(&s, 4), 0x00);
	/* Offsets outside the 8 registers, size 0: nothing, reads all-ones. */
	memset(v, 0, sizeof(v));
	serial_io(&s, 8, false, v, 4);
	assert_int_equal(v[0], 0xFF);
	serial_io(&s, 200, true, w, 2);
	serial_io(&s, 0, false, v, 0);
	assert_int_equal(in(&s, 0), 'b');
	/* FIFO index wrap-around over many rounds. */
	for (int round = 0; round < 40; round++) {
		assert_int_equal(feed(&s, "0123456789"), 10);
		for (int i = 0; i < 10; i++)
			assert_int_equal(in(&s, 0), '0' + i);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reset_state_and_dlab),
		cmocka_unit_test(test_receive_fifo_and_lsr),
		cmocka_unit_test(test_iir_priorities_and_line),
		cmocka_unit_test(test_loopback_and_msr),
		cmocka_unit_test(test_output_through_chardev),
		cmocka_unit_test(test_hostile_accesses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
