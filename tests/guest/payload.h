/* Helpers for freestanding test payloads: port I/O, serial output, and the
 * debug-exit port through which a payload reports (0 = pass, N = check N failed). */
#ifndef GR_GUEST_PAYLOAD_H
#define GR_GUEST_PAYLOAD_H

#include <stdint.h>

#define SERIAL_PORT 0x3F8
#define DEBUG_EXIT_PORT 0x501

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void serial_puts(const char *s)
{
	for (; *s; s++) {
		while (!(inb(SERIAL_PORT + 5) & 0x20))
			;
		outb(SERIAL_PORT, (uint8_t)*s);
	}
}

static inline void serial_hex(uint32_t v)
{
	char buf[11] = "0x";
	for (int i = 0; i < 8; i++) {
		unsigned d = (v >> (28 - 4 * i)) & 0xF;
		buf[2 + i] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
	}
	buf[10] = 0;
	serial_puts(buf);
}

static inline __attribute__((noreturn)) void debug_exit(uint8_t code)
{
	outb(DEBUG_EXIT_PORT, code);
	for (;;)
		__asm__ volatile("hlt");
}

#endif
