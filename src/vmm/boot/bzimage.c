/* The 64-bit Linux boot protocol for bzImage (Documentation/arch/x86/boot.rst).
 *
 * The protected-mode part of the file, after (setup_sects + 1) * 512 bytes of
 * real-mode setup, is loaded at LAYOUT_KERNEL_LOAD (1 MiB) whatever the
 * header's pref_address says: relocatable kernels (all distribution kernels)
 * decompress themselves to a suitable place, and non-relocatable ones to
 * their fixed LOAD_PHYSICAL_ADDR. The entry is the 64-bit one at load +
 * 0x200, so the real-mode setup code is never run; the zero page is built
 * here instead, from the file's setup header. The initrd stays below
 * initrd_addr_max and below the 32-bit hole even when the kernel could take
 * it above 4 GiB. */
#include "vmm/boot/boot.h"
#include "vmm/boot/boot_internal.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the zero page is filled in host byte order");
_Static_assert(sizeof(struct boot_params) == 4096, "boot_params is one page");
_Static_assert(sizeof(struct e820_entry) == 20, "e820 entry");
#define AT(field, off) _Static_assert(offsetof(struct boot_params, field) == (off), #field)
AT(acpi_rsdp_addr, 0x070);
AT(ext_ramdisk_image, 0x0c0);
AT(ext_ramdisk_size, 0x0c4);
AT(ext_cmd_line_ptr, 0x0c8);
AT(cc_blob_address, 0x13c);
AT(alt_mem_k, 0x1e0);
AT(e820_entries, 0x1e8);
AT(sentinel, 0x1ef);
AT(hdr, 0x1f1);
AT(hdr.setup_sects, 0x1f1);
AT(hdr.syssize, 0x1f4);
AT(hdr.boot_flag, 0x1fe);
AT(hdr.jump, 0x200);
AT(hdr.header, 0x202);
AT(hdr.version, 0x206);
AT(hdr.type_of_loader, 0x210);
AT(hdr.loadflags, 0x211);
AT(hdr.code32_start, 0x214);
AT(hdr.ramdisk_image, 0x218);
AT(hdr.ramdisk_size, 0x21c);
AT(hdr.heap_end_ptr, 0x224);
AT(hdr.cmd_line_ptr, 0x228);
AT(hdr.initrd_addr_max, 0x22c);
AT(hdr.kernel_alignment, 0x230);
AT(hdr.relocatable_kernel, 0x234);
AT(hdr.xloadflags, 0x236);
AT(hdr.cmdline_size, 0x238);
AT(hdr.setup_data, 0x250);
AT(hdr.pref_address, 0x258);
AT(hdr.init_size, 0x260);
AT(hdr.handover_offset, 0x264);
AT(hdr.kernel_info_offset, 0x268);
AT(edd_mbr_sig_buffer, 0x290);
AT(e820_table, 0x2d0);
AT(eddbuf, 0xd00);
#undef AT

/* The last 2.12 field (handover_offset) ends here: the header must reach it. */
#define HDR_MIN_END 0x268u
#define ENTRY64_OFFSET 0x200u

int boot_bzimage_load(struct guest_mem *gm, const struct boot_req *req, struct boot_info *out,
		      struct gr_error *err)
{
	const uint8_t *k = req->kernel;
	const size_t len = req->kernel_len;
	const char *kn = req->kname;

	/* 1. The setup header, checked before anything is written. */
	if (len < HDR_MIN_END)
		return gr_error_set(err, ENOEXEC, "%s: truncated: %zu bytes is too short for a setup header "
				    "(it ends at 0x%x)", kn, len, HDR_MIN_END);
	size_t hdr_end = 0x202u + k[0x201];
	if (hdr_end < HDR_MIN_END)
		return gr_error_set(err, ENOEXEC, "%s: setup header ends at 0x%zx (jump byte 0x%02x at 0x201), "
				    "before the boot protocol 2.12 fields end at 0x%x", kn, hdr_end, k[0x201], HDR_MIN_END);
	if (hdr_end > len)
		return gr_error_set(err, ENOEXEC, "%s: truncated: setup header ends at 0x%zx but the file has %zu bytes",
				    kn, hdr_end, len);
	if (hdr_end > BOOT_HDR_AREA_END)
		hdr_end = BOOT_HDR_AREA_END; /* a future header: copy what boot_params has room for */

	struct boot_params bp;
	memset(&bp, 0, sizeof(bp));
	memcpy((uint8_t *)&bp + BOOT_HDR_START, k + BOOT_HDR_START, hdr_end - BOOT_HDR_START);
	struct boot_setup_header *h = &bp.hdr;

	if (h->header != BOOT_HDR_MAGIC)
		return gr_error_set(err, ENOEXEC, "%s: header magic 0x%08x at 0x202 is not \"HdrS\"", kn, h->header);
	if (h->boot_flag != BOOT_FLAG_MAGIC)
		return gr_error_set(err, ENOEXEC, "%s: boot_flag 0x%04x at 0x1fe is not 0xAA55", kn, h->boot_flag);
	if (h->version < BOOT_PROTO_MIN)
		return gr_error_set(err, ENOEXEC, "%s: boot protocol %u.%02u is too old (need 2.12 for the 64-bit entry)",
				    kn, h->version >> 8, h->version & 0xff);
	if (!(h->xloadflags & BOOT_XLF_KERNEL_64))
		return gr_error_set(err, ENOEXEC, "%s: xloadflags 0x%04x lacks XLF_KERNEL_64: the kernel has no 64-bit "
				    "entry point (a 32-bit kernel?)", kn, h->xloadflags);
	if (!(h->loadflags & BOOT_LOADED_HIGH))
		return gr_error_set(err, ENOEXEC, "%s: loadflags 0x%02x lacks LOADED_HIGH: a zImage, not a bzImage",
				    kn, h->loadflags);

	unsigned setup_sects = h->setup_sects ? h->setup_sects : 4;
	size_t pm_off = ((size_t)setup_sects + 1) * 512;
	if (pm_off >= len || len - pm_off <= ENTRY64_OFFSET)
		return gr_error_set(err, ENOEXEC, "%s: truncated: setup_sects %u puts the kernel at offset 0x%zx, "
				    "but the file has only %zu bytes", kn, h->setup_sects, pm_off, len);
	uint64_t pm_size = len - pm_off;
	/* syssize counts 16-byte units of protected-mode code; allow the last unit's rounding. */
	if ((uint64_t)h->syssize * 16 > pm_size + 16)
		return gr_error_set(err, ENOEXEC, "%s: truncated: syssize says %llu bytes of kernel, the file has %llu "
				    "after the setup code", kn, (unsigned long long)h->syssize * 16,
				    (unsigned long long)pm_size);

	/* 2. Where everything goes. */
	uint64_t load = LAYOUT_KERNEL_LOAD;
	uint64_t need = h->init_size > pm_size ? h->init_size : pm_size;
	uint64_t low_end = boot_low_ram_end(gm);
	if (need > low_end - load)
		return gr_error_set(err, ENOMEM, "%s: needs %llu bytes from 0x%llx (init_size %u) but RAM below 4 GiB "
				    "ends at 0x%llx; give the guest more memory", kn, (unsigned long long)need,
				    (unsigned long long)load, h->init_size, (unsigned long long)low_end);
	uint64_t kernel_end = load + need;

	size_t cmdline_len;
	int r = boot_check_cmdline(req, h->cmdline_size, "cmdline_size", &cmdline_len, err);
	if (r < 0)
		return r;

	uint64_t initrd_gpa = 0, initrd_size = 0;
	if (req->initrd) {
		r = boot_place_initrd(gm, req->initrd, (uint64_t)h->initrd_addr_max + 1, kernel_end, &initrd_gpa, err);
		if (r < 0)
			return r;
		initrd_size = req->initrd->size;
	}

	/* 3. The zero page. */
	h->type_of_loader = BOOT_LOADER_UNDEFINED;
	h->loadflags |= BOOT_LOADED_HIGH | BOOT_CAN_USE_HEAP;
	h->heap_end_ptr = BOOT_HEAP_END_PTR;
	h->cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	bp.ext_cmd_line_ptr = (uint32_t)(LAYOUT_CMDLINE >> 32);
	h->ramdisk_image = (uint32_t)initrd_gpa;
	h->ramdisk_size = (uint32_t)initrd_size;
	bp.ext_ramdisk_image = (uint32_t)(initrd_gpa >> 32);
	bp.ext_ramdisk_size = (uint32_t)(initrd_size >> 32);
	if (h->version >= BOOT_PROTO_RSDP)
		bp.acpi_rsdp_addr = req->rsdp_gpa;
	bp.e820_entries = (uint8_t)boot_e820(gm, bp.e820_table, BOOT_E820_MAX);

	/* 4. Into guest memory. */
	uint8_t *dst = gm_ptr(gm, load, pm_size);
	if (!dst) /* checked above; kept as the last line of defence */
		return gr_error_set(err, EFAULT, "%s: %llu bytes at 0x%llx are outside guest RAM", kn,
				    (unsigned long long)pm_size, (unsigned long long)load);
	memcpy(dst, k + pm_off, pm_size);
	if (gm_write(gm, LAYOUT_ZERO_PAGE, &bp, sizeof(bp)) < 0)
		return gr_error_set(err, EFAULT, "%s: the zero page at 0x%llx is outside guest RAM", kn, LAYOUT_ZERO_PAGE);
	return boot_finish(gm, req, BOOT_LINUX64, load + ENTRY64_OFFSET, LAYOUT_ZERO_PAGE, kernel_end,
			   initrd_gpa, initrd_size, out, err);
}
