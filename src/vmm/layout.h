/* Where gureum-vmm puts things in guest physical memory. One place, so the
 * loaders, ACPI and the vCPU setup agree. */
#ifndef GR_VMM_LAYOUT_H
#define GR_VMM_LAYOUT_H

#define LAYOUT_GDT            0x00000500ULL /* boot GDT (null, code64, code32, data) */
#define LAYOUT_PVH_START_INFO 0x00006000ULL /* struct hvm_start_info + its memmap and modlist */
#define LAYOUT_ZERO_PAGE      0x00007000ULL /* Linux boot_params */
#define LAYOUT_PML4           0x00009000ULL /* identity page tables for 64-bit entry */
#define LAYOUT_PDPT           0x0000A000ULL
#define LAYOUT_PD             0x0000B000ULL /* 4 pages: 2 MiB pages mapping the first 4 GiB */
#define LAYOUT_CMDLINE        0x00020000ULL /* kernel command line */
#define LAYOUT_CMDLINE_MAX    0x00010000ULL
#define LAYOUT_EBDA_START     0x0009FC00ULL /* RAM below this; reserved from here to 1 MiB */
#define LAYOUT_ACPI_START     0x000E0000ULL /* RSDP and tables (the RSDP search area) */
#define LAYOUT_ACPI_END       0x00100000ULL
#define LAYOUT_KERNEL_LOAD    0x00100000ULL /* bzImage protected-mode code (1 MiB) */

/* Devices. */
#define LAYOUT_IOAPIC_BASE    0xFEC00000ULL
#define LAYOUT_LAPIC_BASE     0xFEE00000ULL
#define LAYOUT_VIRTIO_MMIO_BASE 0xD0000000ULL /* one 4 KiB window per device */
#define LAYOUT_VIRTIO_MMIO_SIZE 0x1000ULL
#define LAYOUT_VIRTIO_IRQ_BASE  5             /* GSI of the first virtio-mmio device */
/* The ACPI Generic Event Device (power button): one event register in a 4 KiB
 * MMIO window above the virtio-mmio windows (at most 19 from 0xD0000000), and
 * GSI 3 (free: COM2's legacy IRQ; the virtio GSIs are 5..23, COM1 is 4). */
#define LAYOUT_GED_BASE       0xD0100000ULL
#define LAYOUT_GED_SIZE       0x1000ULL
#define LAYOUT_GED_IRQ        3
#define LAYOUT_SERIAL_PORT    0x3F8
#define LAYOUT_SERIAL_IRQ     4
#define LAYOUT_DEBUG_EXIT_PORT 0x501          /* guest payloads report results here */
#define LAYOUT_ACPI_SLEEP_CONTROL_PORT 0x600  /* FADT SLEEP_CONTROL_REG (8-bit, HW-reduced ACPI) */
#define LAYOUT_ACPI_SLEEP_STATUS_PORT  0x601  /* FADT SLEEP_STATUS_REG */

#endif
