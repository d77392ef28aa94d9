/* Shared between the boot loaders (bzimage.c, pvh.c, boot.c); not an
 * interface for the rest of the VMM. */
#ifndef GR_VMM_BOOT_INTERNAL_H
#define GR_VMM_BOOT_INTERNAL_H

#include <stdbool.h>
#include "vmm/boot/boot.h"

/* The initrd, from memory or from an open file (read straight into guest
 * memory, so a large initrd is not held twice). */
struct boot_blob {
	const char *what;      /* "initrd" or "initrd /path", for messages */
	const uint8_t *data;   /* NULL when read from fd */
	int fd;
	uint64_t size;
};

struct boot_req {
	const char *kname;              /* "kernel" or "kernel /path", for messages */
	const uint8_t *kernel;
	size_t kernel_len;
	const struct boot_blob *initrd; /* NULL: none */
	const char *cmdline;            /* NULL: empty */
	uint64_t rsdp_gpa;
};

int boot_load_req(struct guest_mem *gm, const struct boot_req *req, struct boot_info *out,
		  struct gr_error *err);
int boot_bzimage_load(struct guest_mem *gm, const struct boot_req *req, struct boot_info *out,
		      struct gr_error *err);
int boot_pvh_load(struct guest_mem *gm, const struct boot_req *req, struct boot_info *out,
		  struct gr_error *err);

/* End of the RAM region below the 32-bit hole (RAM starts at 0). */
uint64_t boot_low_ram_end(const struct guest_mem *gm);

/* Checks the command line against max_len (the kernel's limit, without the
 * NUL) and LAYOUT_CMDLINE_MAX; *len gets its length. */
int boot_check_cmdline(const struct boot_req *req, uint64_t max_len, const char *limit_name,
		       size_t *len, struct gr_error *err);
/* Writes the command line (checked above) at LAYOUT_CMDLINE. */
int boot_write_cmdline(struct guest_mem *gm, const struct boot_req *req, struct gr_error *err);

/* Highest 4 KiB-aligned address for the initrd below limit (exclusive,
 * clipped to low RAM) and at or above kernel_end. */
int boot_place_initrd(const struct guest_mem *gm, const struct boot_blob *initrd, uint64_t limit,
		      uint64_t kernel_end, uint64_t *gpa, struct gr_error *err);
/* Copies the initrd to gpa (placed above). */
/* The step both loaders end with: the command line and the initrd into guest
 * memory, then *out filled. */
int boot_finish(struct guest_mem *gm, const struct boot_req *req, enum boot_mode mode, uint64_t entry,
		uint64_t params_gpa, uint64_t kernel_end, uint64_t initrd_gpa, uint64_t initrd_size,
		struct boot_info *out, struct gr_error *err);
int boot_copy_initrd(struct guest_mem *gm, const struct boot_blob *initrd, uint64_t gpa,
		     struct gr_error *err);

#endif
