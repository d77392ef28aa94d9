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
#include "vmm/layout.h"

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

/* ---- Layouts the guest reads (little-endian, as documented upstream) ----
 * Linux: Documentation/arch/x86/boot.rst and zero-page.rst
 * (arch/x86/include/uapi/asm/bootparam.h); PVH: xen/include/public/arch-x86/
 * hvm/start_info.h. Every offset is pinned by a _Static_assert in bzimage.c
 * and pvh.c. */

#define BOOT_HDR_MAGIC        0x53726448u /* "HdrS" at file offset 0x202 */
#define BOOT_FLAG_MAGIC       0xAA55u     /* boot_flag at 0x1fe */
#define BOOT_PROTO_MIN        0x020Cu     /* 2.12: xloadflags, the 64-bit entry */
#define BOOT_PROTO_RSDP       0x020Eu     /* 2.14: boot_params.acpi_rsdp_addr */
#define BOOT_LOADED_HIGH      0x01u       /* loadflags */
#define BOOT_CAN_USE_HEAP     0x80u
#define BOOT_XLF_KERNEL_64    0x0001u     /* xloadflags: 64-bit entry at load + 0x200 */
#define BOOT_XLF_CAN_BE_LOADED_ABOVE_4G 0x0002u
#define BOOT_LOADER_UNDEFINED 0xFFu       /* type_of_loader: no assigned id */
#define BOOT_HEAP_END_PTR     0xFE00u     /* end of the setup heap (kvmtool, qemu) */
#define BOOT_E820_MAX         128u        /* entries in boot_params.e820_table */
#define BOOT_HDR_START        0x1F1u      /* setup header, in the file and the zero page */
#define BOOT_HDR_AREA_END     0x290u      /* where boot_params has room for it to end */

struct boot_setup_header {
	uint8_t  setup_sects;        /* 0x1f1 */
	uint16_t root_flags;         /* 0x1f2 */
	uint32_t syssize;            /* 0x1f4: protected-mode code, 16-byte units */
	uint16_t ram_size;           /* 0x1f8 */
	uint16_t vid_mode;           /* 0x1fa */
	uint16_t root_dev;           /* 0x1fc */
	uint16_t boot_flag;          /* 0x1fe: 0xAA55 */
	uint16_t jump;               /* 0x200: EB xx, header ends at 0x202 + xx */
	uint32_t header;             /* 0x202: "HdrS" */
	uint16_t version;            /* 0x206 */
	uint32_t realmode_swtch;     /* 0x208 */
	uint16_t start_sys_seg;      /* 0x20c */
	uint16_t kernel_version;     /* 0x20e */
	uint8_t  type_of_loader;     /* 0x210 */
	uint8_t  loadflags;          /* 0x211 */
	uint16_t setup_move_size;    /* 0x212 */
	uint32_t code32_start;       /* 0x214 */
	uint32_t ramdisk_image;      /* 0x218 */
	uint32_t ramdisk_size;       /* 0x21c */
	uint32_t bootsect_kludge;    /* 0x220 */
	uint16_t heap_end_ptr;       /* 0x224 */
	uint8_t  ext_loader_ver;     /* 0x226 */
	uint8_t  ext_loader_type;    /* 0x227 */
	uint32_t cmd_line_ptr;       /* 0x228 */
	uint32_t initrd_addr_max;    /* 0x22c: highest byte the initrd may occupy */
	uint32_t kernel_alignment;   /* 0x230 */
	uint8_t  relocatable_kernel; /* 0x234 */
	uint8_t  min_alignment;      /* 0x235 */
	uint16_t xloadflags;         /* 0x236 */
	uint32_t cmdline_size;       /* 0x238: longest command line, without the NUL */
	uint32_t hardware_subarch;   /* 0x23c */
	uint64_t hardware_subarch_data; /* 0x240 */
	uint32_t payload_offset;     /* 0x248 */
	uint32_t payload_length;     /* 0x24c */
	uint64_t setup_data;         /* 0x250 */
	uint64_t pref_address;       /* 0x258 */
	uint32_t init_size;          /* 0x260: memory the kernel needs from its load address */
	uint32_t handover_offset;    /* 0x264 */
	uint32_t kernel_info_offset; /* 0x268 (2.15) */
} __attribute__((packed));

/* The zero page: 4 KiB at LAYOUT_ZERO_PAGE, rsi at the 64-bit entry. */
struct boot_params {
	uint8_t  screen_info[0x40];       /* 0x000 */
	uint8_t  apm_bios_info[0x14];     /* 0x040 */
	uint8_t  _pad2[4];
	uint64_t tboot_addr;              /* 0x058 */
	uint8_t  ist_info[0x10];          /* 0x060 */
	uint64_t acpi_rsdp_addr;          /* 0x070 (2.14) */
	uint8_t  _pad3[8];
	uint8_t  hd0_info[16];            /* 0x080 */
	uint8_t  hd1_info[16];            /* 0x090 */
	uint8_t  sys_desc_table[16];      /* 0x0a0 */
	uint8_t  olpc_ofw_header[16];     /* 0x0b0 */
	uint32_t ext_ramdisk_image;       /* 0x0c0 */
	uint32_t ext_ramdisk_size;        /* 0x0c4 */
	uint32_t ext_cmd_line_ptr;        /* 0x0c8 */
	uint8_t  _pad4[112];
	uint32_t cc_blob_address;         /* 0x13c */
	uint8_t  edid_info[0x80];         /* 0x140 */
	uint8_t  efi_info[0x20];          /* 0x1c0 */
	uint32_t alt_mem_k;               /* 0x1e0 */
	uint32_t scratch;                 /* 0x1e4 */
	uint8_t  e820_entries;            /* 0x1e8 */
	uint8_t  eddbuf_entries;          /* 0x1e9 */
	uint8_t  edd_mbr_sig_buf_entries; /* 0x1ea */
	uint8_t  kbd_status;              /* 0x1eb */
	uint8_t  secure_boot;             /* 0x1ec */
	uint8_t  _pad5[2];
	uint8_t  sentinel;                /* 0x1ef: must stay 0 */
	uint8_t  _pad6[1];
	struct boot_setup_header hdr;     /* 0x1f1 */
	uint8_t  _pad7[BOOT_HDR_AREA_END - 0x26c];
	uint32_t edd_mbr_sig_buffer[16];  /* 0x290 */
	struct e820_entry e820_table[BOOT_E820_MAX]; /* 0x2d0 */
	uint8_t  _pad8[48];
	uint8_t  eddbuf[6 * 82];          /* 0xd00 */
	uint8_t  _pad9[276];
} __attribute__((packed));

#define XEN_HVM_START_MAGIC_VALUE 0x336ec578u
#define XEN_ELFNOTE_PHYS32_ENTRY  18u

struct hvm_start_info {
	uint32_t magic;          /* 0 */
	uint32_t version;        /* 4: 1 (has the memmap) */
	uint32_t flags;          /* 8 */
	uint32_t nr_modules;     /* 12 */
	uint64_t modlist_paddr;  /* 16 */
	uint64_t cmdline_paddr;  /* 24 */
	uint64_t rsdp_paddr;     /* 32 */
	uint64_t memmap_paddr;   /* 40 */
	uint32_t memmap_entries; /* 48 */
	uint32_t reserved;       /* 52 */
};

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr, size;
	uint32_t type;      /* the e820 types */
	uint32_t reserved;
};

/* In the start-info page: the start info, module 0 (the initrd), the memmap. */
#define BOOT_PVH_MODLIST  (LAYOUT_PVH_START_INFO + 0x40)
#define BOOT_PVH_MEMMAP   (LAYOUT_PVH_START_INFO + 0x80)
#define BOOT_PVH_MEMMAP_MAX ((0x1000u - 0x80u) / sizeof(struct hvm_memmap_table_entry))

#endif
