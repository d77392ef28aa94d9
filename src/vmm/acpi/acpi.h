/* ACPI tables for the guest: RSDP (2.0), XSDT, FADT (hardware-reduced),
 * MADT (a local APIC per vCPU, the IOAPIC), DSDT describing the devices
 * (COM1, virtio-mmio windows), so SMP and device discovery work with kernels
 * built without MP-table support. Written into guest memory between
 * LAYOUT_ACPI_START and LAYOUT_ACPI_END, every table checksummed. */
#ifndef GR_VMM_ACPI_H
#define GR_VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>
#include "common/error.h"
#include "vmm/guest_mem.h"

struct acpi_mmio_device {
	uint64_t base, size;
	uint32_t gsi;
};

struct acpi_config {
	unsigned int n_cpus;                   /* 1..255 */
	const struct acpi_mmio_device *virtio; /* virtio-mmio windows */
	size_t n_virtio;
	int serial;                            /* describe COM1 (LAYOUT_SERIAL_PORT, IRQ 4) */
};

/* Builds every table; *rsdp_gpa is where the RSDP went. */
int acpi_build(struct guest_mem *gm, const struct acpi_config *cfg, uint64_t *rsdp_gpa, struct gr_error *err);

/* Writes each table found from the RSDP as DIR/<SIG>.dat (for `iasl -d`). */
int acpi_dump(const struct guest_mem *gm, uint64_t rsdp_gpa, const char *dir, struct gr_error *err);

/* The 8-bit checksum rule: bytes sum to 0. */
uint8_t acpi_checksum(const void *data, size_t len);

#endif
