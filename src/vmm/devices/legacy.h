/* The legacy port-I/O devices: an 8250 UART (output only for now), the
 * i8042's reset line, and the debug-exit port test payloads report through. */
#ifndef GR_VMM_LEGACY_H
#define GR_VMM_LEGACY_H

#include "vmm/vm.h"

struct serial {
	int out_fd;            /* -1: discard */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint64_t bytes_out;
};

/* Registers the UART at LAYOUT_SERIAL_PORT, the i8042 at 0x60/0x64 and the
 * debug-exit port. */
int legacy_devices_add(struct vm *vm, struct serial *serial, struct gr_error *err);

#endif
