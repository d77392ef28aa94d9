/* ACPI tables for the guest: RSDP (2.0), XSDT, FADT (hardware-reduced),
 * MADT (a local APIC per vCPU, the IOAPIC), DSDT describing the devices
 * (COM1, virtio-mmio windows) and the soft-off state \_S5_ (the FADT's sleep
 * registers at LAYOUT_ACPI_SLEEP_*_PORT), so SMP and device discovery work with kernels
 * built without MP-table support. Written into guest memory between
 * LAYOUT_ACPI_START and LAYOUT_ACPI_END, every table checksummed. */
#ifndef GR_VMM_ACPI_H
#define GR_VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>
#include "common/error.h"
#include "vmm/guest_mem.h"
#include "vmm/layout.h"

/* Limits (additions to the first interface). The in-kernel I/O APIC has 24
 * pins; each virtio-mmio device takes one pin of its own (exclusive, edge). */
#define ACPI_MAX_CPUS           255 /* xAPIC IDs 0..254; 255 is the broadcast ID */
#define ACPI_IOAPIC_PINS        24
#define ACPI_MAX_VIRTIO_DEVICES (ACPI_IOAPIC_PINS - LAYOUT_VIRTIO_IRQ_BASE)

/* Table sizes and revisions, for the builders' users and tests. */
#define ACPI_RSDP_LEN           36
#define ACPI_SDT_HEADER_LEN     36
#define ACPI_FADT_LEN           276 /* revision 6 (ACPI 6.0 and later) */
#define ACPI_FADT_REVISION      6
#define ACPI_FADT_MINOR_REVISION 5  /* ACPI 6.5 */
#define ACPI_MADT_REVISION      6
#define ACPI_DSDT_REVISION      2   /* 64-bit AML integers */
#define ACPI_FADT_HW_REDUCED_ACPI (1u << 20)
#define ACPI_FADT_OFF_FLAGS     112
#define ACPI_FADT_OFF_X_DSDT    140
#define ACPI_FADT_OFF_RESET_REG 116 /* Generic Address Structure, 12 bytes */
#define ACPI_FADT_OFF_RESET_VALUE 128
#define ACPI_FADT_OFF_SLEEP_CONTROL 244 /* SLEEP_CONTROL_REG (ACPI 5.0+), a GAS */
#define ACPI_FADT_OFF_SLEEP_STATUS  256 /* SLEEP_STATUS_REG, a GAS */

/* The hardware-reduced sleep registers (ACPI 6.5: the FADT's SLEEP_CONTROL_REG
 * and SLEEP_STATUS_REG; \_Sx in 7.4.2): the OS writes
 * SLP_TYPx (from the \_Sx_ package) << 2 | SLP_EN to the control register;
 * WAK_STS in the status register is write-1-to-clear. The DSDT declares
 * \_S5_ = Package() { ACPI_SLP_TYP_S5, 0 } and nothing else, so soft-off is
 * the only sleep state. */
#define ACPI_SLP_TYP_SHIFT      2
#define ACPI_SLP_TYP_MASK       0x1C
#define ACPI_SLP_EN             0x20
#define ACPI_WAK_STS            0x80
#define ACPI_SLP_TYP_S5         5

struct acpi_mmio_device {
	uint64_t base, size;
	uint32_t gsi;
};

struct acpi_config {
	unsigned int n_cpus;                   /* 1..255 */
	const struct acpi_mmio_device *virtio; /* virtio-mmio windows */
	size_t n_virtio;
	int serial;                            /* describe COM1 (LAYOUT_SERIAL_PORT, IRQ 4) */
	int ged;                               /* describe the power button and the Generic Event
						  Device that signals it (LAYOUT_GED_*, devices/ged.h) */
};

/* The GED's event register as the DSDT's _EVT reads it (devices/ged.h). */
#define ACPI_GED_EVENT_POWER_BUTTON 0x01

/* Builds every table; *rsdp_gpa is where the RSDP went. */
int acpi_build(struct guest_mem *gm, const struct acpi_config *cfg, uint64_t *rsdp_gpa, struct gr_error *err);

/* acpi_build with an explicit window [start, end) of guest memory instead of
 * LAYOUT_ACPI_START..LAYOUT_ACPI_END (addition; tests use it for the
 * "tables do not fit" error, -ENOSPC). start must be 16-byte aligned. */
int acpi_build_at(struct guest_mem *gm, const struct acpi_config *cfg, uint64_t start, uint64_t end,
		  uint64_t *rsdp_gpa, struct gr_error *err);

/* Writes each table found from the RSDP as DIR/<SIG>.dat (for `iasl -d`):
 * RSDP.dat, the XSDT (or RSDT), every table it lists, and the DSDT and FACS
 * the FADT points to; a second table with the same signature gets a number
 * (SSDT2.dat). Tables are written as they are, bad checksums included; an
 * unreadable pointer or a bad signature or length is an error. */
int acpi_dump(const struct guest_mem *gm, uint64_t rsdp_gpa, const char *dir, struct gr_error *err);

/* The 8-bit checksum rule: bytes sum to 0. Returns the byte that, stored in
 * a checksum field holding 0 during the computation, makes the sum 0; so on
 * a whole, valid table it returns 0. */
uint8_t acpi_checksum(const void *data, size_t len);

#endif
