/* Loading a guest kernel: the 64-bit Linux boot protocol for bzImage and the
 * PVH entry for ELF vmlinux (and the test payloads), with the e820 map, the
 * command line and the initrd. Everything the files control is validated:
 * header fields, segment addresses and sizes all go through gm_ptr(). */
#ifndef GR_VMM_BOOT_H
#define GR_VMM_BOOT_H

#include <stddef.h>
#include <stdint.h>
#include "common/error.h"
#include "vmm/guest_mem.h"

enum boot_mode {
	BOOT_LINUX64, /* bzImage: 64-bit entry, rsi = zero page, long mode, identity paging */
	BOOT_PVH,     /* ELF with a XEN_ELFNOTE_PHYS32_ENTRY note: 32-bit protected mode, ebx = start info */
};

struct boot_info {
	enum boot_mode mode;
	uint64_t entry;        /* guest physical entry point */
	uint64_t params_gpa;   /* zero page (LINUX64) or hvm_start_info (PVH) */
	uint64_t kernel_end;   /* first byte after the loaded kernel image */
	uint64_t initrd_gpa, initrd_size;
};

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));

/* The e820 map for gm: RAM below LAYOUT_EBDA_START, reserved up to 1 MiB,
 * RAM from 1 MiB (and above 4 GiB); returns the number of entries (<= max). */
size_t boot_e820(const struct guest_mem *gm, struct e820_entry *out, size_t max);

/* Loads kernel (bzImage or ELF, told apart by content), the optional initrd
 * and the command line into gm, and fills the boot parameters for the mode.
 * rsdp_gpa (0 when none) goes into boot_params.acpi_rsdp_addr / start info. */
int boot_load(struct guest_mem *gm, const char *kernel, const char *initrd, const char *cmdline,
	      uint64_t rsdp_gpa, struct boot_info *out, struct gr_error *err);

/* The same from memory (for tests and fuzzing). */
int boot_load_mem(struct guest_mem *gm, const uint8_t *kernel, size_t kernel_len, const uint8_t *initrd,
		  size_t initrd_len, const char *cmdline, uint64_t rsdp_gpa, struct boot_info *out,
		  struct gr_error *err);

#endif
