/* The legacy port-I/O devices: an 8250 UART (output only for now), the
 * i8042's reset line, the debug-exit port test payloads report through, and
 * the hardware-reduced ACPI sleep registers the FADT points to. */
#ifndef GR_VMM_LEGACY_H
#define GR_VMM_LEGACY_H

#include "vmm/vm.h"

struct serial {
	int out_fd;            /* -1: discard */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint64_t bytes_out;
};

/* The ACPI sleep registers: SLEEP_CONTROL_REG at LAYOUT_ACPI_SLEEP_CONTROL_PORT
 * and SLEEP_STATUS_REG at LAYOUT_ACPI_SLEEP_STATUS_PORT (8-bit each). A write
 * of SLP_EN with SLP_TYP 5 (\_S5_) stops the VM with VM_EXIT_POWEROFF; a
 * sleep request for any other state is not carried out: the machine "wakes"
 * at once (WAK_STS set) so an OS waiting for the wake does not spin forever.
 * Writes without SLP_EN are ignored. The status register reads WAK_STS (0x80)
 * or 0; writing WAK_STS clears it. Accessed from any vCPU thread (atomics). */
struct acpi_sleep {
	uint8_t status;
};

/* Registers the UART at LAYOUT_SERIAL_PORT, the i8042 at 0x60/0x64, the
 * debug-exit port and the ACPI sleep registers (state in *sleep). */
int legacy_devices_add(struct vm *vm, struct serial *serial, struct acpi_sleep *sleep, struct gr_error *err);

#endif
