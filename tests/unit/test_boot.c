/* Unit tests for src/vmm/boot: the e820 map, the 64-bit Linux boot protocol
 * (zero page byte for byte at its documented offsets), the PVH entry for ELF
 * kernels, and every validation error. The fixtures are built in memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/boot/boot.h"
#include "vmm/layout.h"

#define MiB (1ULL << 20)

/* ---- little-endian accessors on byte buffers ---- */
static void put16(uint8_t *p, size_t off, uint16_t v) { memcpy(p + off, &v, 2); }
static void put32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }
static void put64(uint8_t *p, size_t off, uint64_t v) { memcpy(p + off, &v, 8); }
static uint16_t get16(const uint8_t *p, size_t off) { uint16_t v; memcpy(&v, p + off, 2); return v; }
static uint32_t get32(const uint8_t *p, size_t off) { uint32_t v; memcpy(&v, p + off, 4); return v; }
static uint64_t get64(const uint8_t *p, size_t off) { uint64_t v; memcpy(&v, p + off, 8); return v; }

static struct guest_mem *new_gm(uint64_t size)
{
	struct guest_mem *gm = calloc(1, sizeof(*gm));
	struct gr_error err = { 0 };
	assert_non_null(gm);
	assert_int_equal(gm_create(gm, size, &err), 0);
	return gm;
}

static void free_gm(struct guest_mem *gm)
{
	gm_destroy(gm);
	free(gm);
}

static void assert_e820(const uint8_t *p, uint64_t addr, uint64_t size, uint32_t type)
{
	assert_int_equal(get64(p, 0), addr);
	assert_int_equal(get64(p, 8), size);
	assert_int_equal(get32(p, 16), type);
}

/* ---- e820 ---- */

static void test_e820_small(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(64 * MiB);
	struct e820_entry e[8];
	assert_int_equal(boot_e820(gm, e, 8), 3);
	assert_e820((uint8_t *)&e[0], 0, LAYOUT_EBDA_START, E820_RAM);
	assert_e820((uint8_t *)&e[1], LAYOUT_EBDA_START, MiB - LAYOUT_EBDA_START, E820_RESERVED);
	assert_e820((uint8_t *)&e[2], MiB, 63 * MiB, E820_RAM);
	/* max limits the count */
	assert_int_equal(boot_e820(gm, e, 2), 2);
	assert_int_equal(boot_e820(gm, e, 0), 0);
	free_gm(gm);

	gm = new_gm(MiB); /* the minimum: nothing above 1 MiB */
	assert_int_equal(boot_e820(gm, e, 8), 2);
	assert_e820((uint8_t *)&e[1], LAYOUT_EBDA_START, MiB - LAYOUT_EBDA_START, E820_RESERVED);
	free_gm(gm);
}

static void test_e820_above_4g(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(3 * 1024 * MiB + 256 * MiB); /* 3.25 GiB: 0.25 GiB above 4 GiB */
	struct e820_entry e[8];
	assert_int_equal(boot_e820(gm, e, 8), 4);
	assert_e820((uint8_t *)&e[0], 0, LAYOUT_EBDA_START, E820_RAM);
	assert_e820((uint8_t *)&e[1], LAYOUT_EBDA_START, MiB - LAYOUT_EBDA_START, E820_RESERVED);
	assert_e820((uint8_t *)&e[2], MiB, GM_MMIO_HOLE_START - MiB, E820_RAM);
	assert_e820((uint8_t *)&e[3], GM_MMIO_HOLE_END, 256 * MiB, E820_RAM);
	free_gm(gm);
}

/* ---- bzImage fixture ---- */

#define BZ_SETUP_SECTS 4
#define BZ_PM_OFF ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_PM_SIZE 0x1000

struct bz_opts {
	uint16_t version;
	uint16_t xloadflags;
	uint32_t cmdline_size;
	uint32_t initrd_addr_max;
	uint32_t init_size;
	uint8_t jump_len;      /* header ends at 0x202 + jump_len */
	uint8_t setup_sects;
};

static const struct bz_opts BZ_DEFAULT = {
	.version = 0x020f, .xloadflags = BOOT_XLF_KERNEL_64 | BOOT_XLF_CAN_BE_LOADED_ABOVE_4G,
	.cmdline_size = 2047, .initrd_addr_max = 0x7fffffff, .init_size = 0x200000, .jump_len = 0x6a,
	.setup_sects = BZ_SETUP_SECTS,
};

static uint8_t *make_bzimage(const struct bz_opts *o, size_t *len)
{
	size_t n = BZ_PM_OFF + BZ_PM_SIZE;
	uint8_t *k = calloc(1, n);
	assert_non_null(k);
	k[0] = 'M', k[1] = 'Z';
	for (size_t i = 0x200 + 0x70; i < BZ_PM_OFF; i++) /* real-mode setup code: must not be copied */
		k[i] = 0xcc;
	k[0x1f1] = o->setup_sects;
	put16(k, 0x1f2, 1);              /* root_flags */
	put32(k, 0x1f4, BZ_PM_SIZE / 16); /* syssize */
	put16(k, 0x1fa, 0xffff);         /* vid_mode */
	put16(k, 0x1fe, 0xaa55);
	k[0x200] = 0xeb;
	k[0x201] = o->jump_len;
	memcpy(k + 0x202, "HdrS", 4);
	put16(k, 0x206, o->version);
	put16(k, 0x20e, 0x1234);         /* kernel_version */
	k[0x211] = BOOT_LOADED_HIGH;
	put32(k, 0x214, 0x100000);       /* code32_start */
	put32(k, 0x22c, o->initrd_addr_max);
	put32(k, 0x230, 0x200000);       /* kernel_alignment */
	k[0x234] = 1;                    /* relocatable_kernel */
	k[0x235] = 21;                   /* min_alignment */
	put16(k, 0x236, o->xloadflags);
	put32(k, 0x238, o->cmdline_size);
	put64(k, 0x258, 0x1000000);      /* pref_address */
	put32(k, 0x260, o->init_size);
	put32(k, 0x264, 0x190);          /* handover_offset */
	put32(k, 0x268, 0xabcd);         /* kernel_info_offset */
	for (size_t i = 0x26c; i < 0x270; i++) /* beyond the header: code in a real file */
		k[i] = 0xee;
	for (size_t i = 0; i < BZ_PM_SIZE; i++)
		k[BZ_PM_OFF + i] = (uint8_t)(i * 7 + 3);
	*len = n;
	return k;
}

static uint8_t *make_initrd(size_t n)
{
	uint8_t *p = malloc(n);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i ^ (i >> 8) ^ 0x5a);
	return p;
}

static void test_bzimage_zero_page(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(64 * MiB);
	size_t klen, ilen = 10000;
	uint8_t *k = make_bzimage(&BZ_DEFAULT, &klen);
	uint8_t *initrd = make_initrd(ilen);
	const char *cmdline = "console=ttyS0 root=/dev/vda rw";
	/* dirt where the zero page goes: it must be cleared */
	memset(gm_ptr(gm, LAYOUT_ZERO_PAGE, 4096), 0x77, 4096);

	struct boot_info bi;
	struct gr_error err = { 0 };
	int r = boot_load_mem(gm, k, klen, initrd, ilen, cmdline, 0xe0000, &bi, &err);
	assert_int_equal(r, 0);
	assert_int_equal(bi.mode, BOOT_LINUX64);
	assert_int_equal(bi.entry, LAYOUT_KERNEL_LOAD + 0x200);
	assert_int_equal(bi.params_gpa, LAYOUT_ZERO_PAGE);
	assert_int_equal(bi.kernel_end, LAYOUT_KERNEL_LOAD + 0x200000); /* init_size > file */
	uint64_t want_initrd = (64 * MiB - ilen) & ~0xfffULL;
	assert_int_equal(bi.initrd_gpa, want_initrd);
	assert_int_equal(bi.initrd_size, ilen);

	const uint8_t *zp = gm_ptr(gm, LAYOUT_ZERO_PAGE, 4096);
	/* the setup header, copied from the file up to 0x202 + jump byte, with our fields */
	for (size_t off = 0x1f1; off < 0x26c; off++) {
		switch (off) {
		case 0x210: case 0x211: case 0x224: case 0x225:
		case 0x218 ... 0x21f: case 0x228 ... 0x22b:
			continue;
		}
		assert_int_equal(zp[off], k[off]);
	}
	assert_int_equal(zp[0x210], 0xff);                       /* type_of_loader */
	assert_int_equal(zp[0x211], BOOT_LOADED_HIGH | BOOT_CAN_USE_HEAP);
	assert_int_equal(get16(zp, 0x224), 0xfe00);              /* heap_end_ptr */
	assert_int_equal(get32(zp, 0x228), LAYOUT_CMDLINE);      /* cmd_line_ptr */
	assert_int_equal(get32(zp, 0x0c8), 0);                   /* ext_cmd_line_ptr */
	assert_int_equal(get32(zp, 0x218), want_initrd);         /* ramdisk_image */
	assert_int_equal(get32(zp, 0x21c), ilen);                /* ramdisk_size */
	assert_int_equal(get32(zp, 0x0c0), 0);                   /* ext_ramdisk_image */
	assert_int_equal(get32(zp, 0x0c4), 0);                   /* ext_ramdisk_size */
	assert_int_equal(get64(zp, 0x070), 0xe0000);             /* acpi_rsdp_addr (2.15 >= 2.14) */
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_int_equal(get16(zp, 0x206), 0x020f);
	assert_int_equal(get32(zp, 0x22c), 0x7fffffff);
	assert_int_equal(get32(zp, 0x238), 2047);
	assert_int_equal(get32(zp, 0x260), 0x200000);
	assert_int_equal(get32(zp, 0x268), 0xabcd);
	/* e820: count at 0x1e8, table at 0x2d0 (20 bytes per entry) */
	assert_int_equal(zp[0x1e8], 3);
	assert_e820(zp + 0x2d0, 0, LAYOUT_EBDA_START, E820_RAM);
	assert_e820(zp + 0x2d0 + 20, LAYOUT_EBDA_START, MiB - LAYOUT_EBDA_START, E820_RESERVED);
	assert_e820(zp + 0x2d0 + 40, MiB, 63 * MiB, E820_RAM);
	/* everything else is zero: before the header (but rsdp), after it, after the e820 table */
	for (size_t off = 0; off < 0x1f1; off++)
		if ((off < 0x070 || off >= 0x078) && off != 0x1e8)
			assert_int_equal(zp[off], 0);
	for (size_t off = 0x26c; off < 0x2d0; off++)
		assert_int_equal(zp[off], 0);
	for (size_t off = 0x2d0 + 3 * 20; off < 4096; off++)
		assert_int_equal(zp[off], 0);

	/* the protected-mode code at 1 MiB, not the real-mode setup */
	assert_memory_equal(gm_ptr(gm, LAYOUT_KERNEL_LOAD, BZ_PM_SIZE), k + BZ_PM_OFF, BZ_PM_SIZE);
	/* the command line, NUL-terminated */
	assert_string_equal((const char *)gm_ptr(gm, LAYOUT_CMDLINE, strlen(cmdline) + 1), cmdline);
	/* the initrd */
	assert_memory_equal(gm_ptr(gm, want_initrd, ilen), initrd, ilen);
	free(k);
	free(initrd);
	free_gm(gm);
}

static void test_bzimage_no_initrd_no_cmdline(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(32 * MiB);
	size_t klen;
	uint8_t *k = make_bzimage(&BZ_DEFAULT, &klen);
	memset(gm_ptr(gm, LAYOUT_CMDLINE, 16), 'x', 16);
	struct boot_info bi;
	struct gr_error err = { 0 };
	assert_int_equal(boot_load_mem(gm, k, klen, NULL, 0, NULL, 0, &bi, &err), 0);
	const uint8_t *zp = gm_ptr(gm, LAYOUT_ZERO_PAGE, 4096);
	assert_int_equal(get32(zp, 0x218), 0);
	assert_int_equal(get32(zp, 0x21c), 0);
	assert_int_equal(get64(zp, 0x070), 0);
	assert_int_equal(bi.initrd_gpa, 0);
	assert_int_equal(bi.initrd_size, 0);
	assert_int_equal(*(const char *)gm_ptr(gm, LAYOUT_CMDLINE, 1), '\0');
	free(k);
	free_gm(gm);
}

static void test_bzimage_rsdp_needs_2_14(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(32 * MiB);
	struct bz_opts o = BZ_DEFAULT;
	struct boot_info bi;
	struct gr_error err = { 0 };
	size_t klen;
	o.version = 0x020c; /* 2.12: no acpi_rsdp_addr */
	uint8_t *k = make_bzimage(&o, &klen);
	assert_int_equal(boot_load_mem(gm, k, klen, NULL, 0, "", 0xe0000, &bi, &err), 0);
	assert_int_equal(get64(gm_ptr(gm, LAYOUT_ZERO_PAGE, 4096), 0x070), 0);
	free(k);
	o.version = 0x020e; /* 2.14 */
	k = make_bzimage(&o, &klen);
	assert_int_equal(boot_load_mem(gm, k, klen, NULL, 0, "", 0xe0000, &bi, &err), 0);
	assert_int_equal(get64(gm_ptr(gm, LAYOUT_ZERO_PAGE, 4096), 0x070), 0xe0000);
	free(k);
	free_gm(gm);
}

static void test_bzimage_header_length_and_setup_sects(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(32 * MiB);
	struct bz_opts o = BZ_DEFAULT;
	struct boot_info bi;
	struct gr_error err = { 0 };
	size_t klen;
	/* a 2.12 header that ends at 0x268: the bytes after it are not copied */
	o.version = 0x020c;
	o.jump_len = 0x66;
	o.setup_sects = 0; /* 0 means 4 */
	uint8_t *k = make_bzimage(&o, &klen);
	assert_int_equal(boot_load_mem(gm, k, klen, NULL, 0, NULL, 0, &bi, &err), 0);
	const uint8_t *zp = gm_ptr(gm, LAYOUT_ZERO_PAGE, 4096);
	assert_int_equal(get32(zp, 0x264), 0x190);
	assert_int_equal(get32(zp, 0x268), 0);
	assert_int_equal(zp[0x1f1], 0);
	assert_memory_equal(gm_ptr(gm, LAYOUT_KERNEL_LOAD, BZ_PM_SIZE), k + BZ_PM_OFF, BZ_PM_SIZE);
	free(k);
	free_gm(gm);
}

static void test_bzimage_initrd_placement(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(3 * 1024 * MiB + 256 * MiB);
	struct bz_opts o = BZ_DEFAULT;
	struct boot_info bi;
	struct gr_error err = { 0 };
	size_t klen, ilen = 3 * 4096 + 5;
	uint8_t *initrd = make_initrd(ilen);

	/* initrd_addr_max above the hole: the initrd ends below 3 GiB */
	uint8_t *k = make_bzimage(&o, &klen);
	o.initrd_addr_max = 0xffffffff;
	free(k);
	k = make_bzimage(&o, &klen);
	assert_int_equal(boot_load_mem(gm, k, klen, initrd, ilen, NULL, 0, &bi, &err), 0);
	assert_int_equal(bi.initrd_gpa, (GM_MMIO_HOLE_START - ilen) & ~0xfffULL);
	const uint8_t *zp = gm_ptr(gm, LAYOUT_ZERO_PAGE, 4096);
	assert_int_equal(zp[0x1e8], 4);
	assert_e820(zp + 0x2d0 + 60, GM_MMIO_HOLE_END, 256 * MiB, E820_RAM);
	assert_memory_equal(gm_ptr(gm, bi.initrd_gpa, ilen), initrd, ilen);
	free(k);

	/* an old-style limit (0x37ffffff, the highest byte it may use) */
	o.initrd_addr_max = 0x37ffffff;
	k = make_bzimage(&o, &klen);
	assert_int_equal(boot_load_mem(gm, k, klen, initrd, ilen, NULL, 0, &bi, &err), 0);
	assert_int_equal(bi.initrd_gpa, (0x38000000 - ilen) & ~0xfffULL);
	assert_true(bi.initrd_gpa + ilen <= 0x38000000);
	assert_int_equal(get32(gm_ptr(gm, LAYOUT_ZERO_PAGE, 4096), 0x218), bi.initrd_gpa);
	free(k);
	free(initrd);
	free_gm(gm);
}

static void test_bzimage_initrd_too_large(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(16 * MiB);
	struct boot_info bi;
	struct gr_error err = { 0 };
	size_t klen;
	uint8_t *k = make_bzimage(&BZ_DEFAULT, &klen);
	/* kernel ends at 3 MiB (init_size 2 MiB from 1 MiB): 13 MiB + 1 page fit, 14 MiB does not */
	size_t ok = 13 * MiB;
	uint8_t *initrd = make_initrd(14 * MiB);
	assert_int_equal(boot_load_mem(gm, k, klen, initrd, ok, NULL, 0, &bi, &err), 0);
	assert_int_equal(bi.initrd_gpa, 3 * MiB);
	int r = boot_load_mem(gm, k, klen, initrd, ok + 1, NULL, 0, &bi, &err);
	assert_int_equal(r, -ENOMEM);
	r = boot_load_mem(gm, k, klen, initrd, 14 * MiB, NULL, 0, &bi, &err);
	assert_int_equal(r, -ENOMEM);
	assert_int_equal(err.code, ENOMEM);
	assert_non_null(strstr(err.msg, "initrd: 14680064 bytes do not fit below 0x1000000"));
	assert_non_null(strstr(err.msg, "0x300000")); /* where the kernel ends */
	/* an empty initrd is an error, not silently nothing */
	r = boot_load_mem(gm, k, klen, initrd, 0, NULL, 0, &bi, &err);
	assert_int_equal(r, -EINVAL);
	assert_string_equal(err.msg, "initrd: the file is empty");
	free(k);
	free(initrd);
	free_gm(gm);
}

static void test_bzimage_cmdline_limits(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(32 * MiB);
	struct bz_opts o = BZ_DEFAULT;
	struct boot_info bi;
	struct gr_error err = { 0 };
	size_t klen;
	o.cmdline_size = 16;
	uint8_t *k = make_bzimage(&o, &klen);
	assert_int_equal(boot_load_mem(gm, k, klen, NULL, 0, "0123456789abcdef", 0, &bi, &err), 0);
	assert_string_equal((const char *)gm_ptr(gm, LAYOUT_CMDLINE, 17), "0123456789abcdef");
	int r = boot_load_mem(gm, k, klen, NULL, 0, "0123456789abcdefg", 0, &bi, &err);
	assert_int_equal(r, -E2BIG);
	assert_string_equal(err.msg, "cmdline: 17 bytes is longer than kernel allows (cmdline_size 16)");
	free(k);

	/* the kernel takes more than our page of command line: our limit applies */
	o.cmdline_size = 0x7fffffff;
	k = make_bzimage(&o, &klen);
	char *big = malloc(LAYOUT_CMDLINE_MAX + 1);
	assert_non_null(big);
	memset(big, 'a', LAYOUT_CMDLINE_MAX);
	big[LAYOUT_CMDLINE_MAX - 1] = '\0'; /* 65535 chars + NUL: fits exactly */
	assert_int_equal(boot_load_mem(gm, k, klen, NULL, 0, big, 0, &bi, &err), 0);
	assert_int_equal(strlen(gm_ptr(gm, LAYOUT_CMDLINE, LAYOUT_CMDLINE_MAX)), LAYOUT_CMDLINE_MAX - 1);
	big[LAYOUT_CMDLINE_MAX - 1] = 'a';
	big[LAYOUT_CMDLINE_MAX] = '\0';
	r = boot_load_mem(gm, k, klen, NULL, 0, big, 0, &bi, &err);
	assert_int_equal(r, -E2BIG);
	assert_string_equal(err.msg, "cmdline: 65536 bytes is longer than gureum-vmm's limit of 65535 bytes");
	free(big);
	free(k);
	free_gm(gm);
}

static void expect_bz_error(const struct bz_opts *o, void (*patch)(uint8_t *, size_t *), uint64_t mem,
			    int code, const char *msg)
{
	struct guest_mem *gm = new_gm(mem);
	struct boot_info bi;
	struct gr_error err = { 0 };
	size_t klen;
	uint8_t *k = make_bzimage(o, &klen);
	if (patch)
		patch(k, &klen);
	int r = boot_load_mem(gm, k, klen, NULL, 0, NULL, 0, &bi, &err);
	if (r != -code || !strstr(err.msg, msg))
		fail_msg("got %d \"%s\", want %d \"%s\"", r, err.msg, -code, msg);
	free(k);
	free_gm(gm);
}

static void patch_magic(uint8_t *k, size_t *len) { (void)len; k[0x205] = 'T'; }
static void patch_boot_flag(uint8_t *k, size_t *len) { (void)len; put16(k, 0x1fe, 0x1234); }
static void patch_short_jump(uint8_t *k, size_t *len) { (void)len; k[0x201] = 0x40; }
static void patch_zimage(uint8_t *k, size_t *len) { (void)len; k[0x211] = 0; }
static void patch_setup_sects(uint8_t *k, size_t *len) { (void)len; k[0x1f1] = 200; }
static void patch_syssize(uint8_t *k, size_t *len) { (void)len; put32(k, 0x1f4, BZ_PM_SIZE / 16 + 2); }

static void test_bzimage_errors(void **state)
{
	(void)state;
	struct bz_opts o = BZ_DEFAULT;
	o.version = 0x020a;
	expect_bz_error(&o, NULL, 32 * MiB, ENOEXEC,
			"kernel: boot protocol 2.10 is too old (need 2.12 for the 64-bit entry)");
	o = BZ_DEFAULT;
	o.xloadflags = BOOT_XLF_CAN_BE_LOADED_ABOVE_4G;
	expect_bz_error(&o, NULL, 32 * MiB, ENOEXEC, "kernel: xloadflags 0x0002 lacks XLF_KERNEL_64");
	expect_bz_error(&BZ_DEFAULT, patch_magic, 32 * MiB, ENOEXEC, "kernel: neither a bzImage nor an ELF vmlinux");
	expect_bz_error(&BZ_DEFAULT, patch_boot_flag, 32 * MiB, ENOEXEC, "kernel: boot_flag 0x1234 at 0x1fe is not 0xAA55");
	expect_bz_error(&BZ_DEFAULT, patch_short_jump, 32 * MiB, ENOEXEC, "kernel: setup header ends at 0x242");
	expect_bz_error(&BZ_DEFAULT, patch_zimage, 32 * MiB, ENOEXEC, "lacks LOADED_HIGH");
	expect_bz_error(&BZ_DEFAULT, patch_setup_sects, 32 * MiB, ENOEXEC,
			"kernel: truncated: setup_sects 200 puts the kernel at offset 0x19200");
	expect_bz_error(&BZ_DEFAULT, patch_syssize, 32 * MiB, ENOEXEC, "kernel: truncated: syssize says 4128 bytes");
	o = BZ_DEFAULT;
	o.init_size = 64 * MiB;
	expect_bz_error(&o, NULL, 32 * MiB, ENOMEM, "kernel: needs 67108864 bytes from 0x100000 (init_size 67108864)");
	/* a kernel in a 1 MiB guest: nothing fits at 1 MiB */
	expect_bz_error(&BZ_DEFAULT, NULL, MiB, ENOMEM, "RAM below 4 GiB ends at 0x100000");
}

static void test_not_a_kernel(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(8 * MiB);
	struct boot_info bi;
	struct gr_error err = { 0 };
	uint8_t junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 13);
	assert_int_equal(boot_load_mem(gm, junk, sizeof(junk), NULL, 0, NULL, 0, &bi, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "kernel: neither a bzImage nor an ELF vmlinux"));
	assert_int_equal(boot_load_mem(gm, junk, 0, NULL, 0, NULL, 0, &bi, &err), -ENOEXEC);
	assert_int_equal(boot_load_mem(gm, NULL, 0, NULL, 0, NULL, 0, &bi, &err), -ENOEXEC);
	free_gm(gm);
}

/* Every prefix of the file fails cleanly (ASan checks that nothing is read
 * past it); the last 16-byte unit of syssize rounding is tolerated. */
static void test_bzimage_truncated(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(32 * MiB);
	struct boot_info bi;
	size_t klen;
	uint8_t *k = make_bzimage(&BZ_DEFAULT, &klen);
	for (size_t n = 0; n + 16 < klen; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, k, n);
		struct gr_error err = { 0 };
		int r = boot_load_mem(gm, copy, n, NULL, 0, NULL, 0, &bi, &err);
		if (r != -ENOEXEC || err.msg[0] == '\0')
			fail_msg("prefix of %zu bytes: %d \"%s\"", n, r, err.msg);
		if (n >= 0x206 && !strstr(err.msg, "truncated"))
			fail_msg("prefix of %zu bytes: \"%s\" does not say truncated", n, err.msg);
		free(copy);
	}
	free(k);
	free_gm(gm);
}

/* ---- ELF / PVH fixture ---- */

#define SEG1_PADDR 0x100000u
#define SEG1_SIZE 0x200u
#define SEG2_PADDR 0x200000u
#define SEG2_FILESZ 0x100u
#define SEG2_MEMSZ 0x3000u
#define PVH_ENTRY (SEG1_PADDR + 0x10)

struct elf_opts {
	bool is32;
	bool no_note;
	unsigned note_descsz;        /* 4 or 8 */
	uint64_t seg2_paddr;
	uint64_t seg2_filesz, seg2_memsz;
	uint64_t seg2_offset_add;    /* pushes segment 2's file offset */
	uint32_t entry;
};

static const struct elf_opts ELF_DEFAULT = {
	.note_descsz = 4, .seg2_paddr = SEG2_PADDR, .seg2_filesz = SEG2_FILESZ, .seg2_memsz = SEG2_MEMSZ,
	.entry = PVH_ENTRY,
};

/* Layout: ehdr, 3 phdrs (PT_NOTE, PT_LOAD, PT_LOAD), the note section (an
 * unrelated GNU note first, then the Xen one), segment 1, segment 2 last. */
static uint8_t *make_elf(const struct elf_opts *o, size_t *len)
{
	size_t ehsz = o->is32 ? sizeof(Elf32_Ehdr) : sizeof(Elf64_Ehdr);
	size_t phsz = o->is32 ? sizeof(Elf32_Phdr) : sizeof(Elf64_Phdr);
	size_t note_off = ehsz + 3 * phsz;
	uint8_t note[96] = { 0 };
	size_t nl = 0;
	/* an unrelated note: name "GNU", type 3, 5-byte desc (padded to 8) */
	put32(note, 0, 4), put32(note, 4, 5), put32(note, 8, 3);
	memcpy(note + 12, "GNU", 4);
	memcpy(note + 16, "abcde", 5);
	nl = 24;
	/* a Xen note of another type */
	put32(note, nl, 4), put32(note, nl + 4, 4), put32(note, nl + 8, 6);
	memcpy(note + nl + 12, "Xen", 4);
	memcpy(note + nl + 16, "lnx", 4);
	nl += 20;
	if (!o->no_note) {
		put32(note, nl, 4), put32(note, nl + 4, o->note_descsz), put32(note, nl + 8, XEN_ELFNOTE_PHYS32_ENTRY);
		memcpy(note + nl + 12, "Xen", 4);
		if (o->note_descsz == 8)
			put64(note, nl + 16, o->entry);
		else
			put32(note, nl + 16, o->entry);
		nl += 16 + (o->note_descsz + 3) / 4 * 4;
	}
	size_t seg1_off = 0x1000, seg2_off = 0x2000;
	size_t n = seg2_off + SEG2_FILESZ;
	uint8_t *e = calloc(1, n);
	assert_non_null(e);
	memcpy(e + note_off, note, nl);
	for (size_t i = 0; i < SEG1_SIZE; i++)
		e[seg1_off + i] = (uint8_t)(0x90 + i);
	for (size_t i = 0; i < SEG2_FILESZ; i++)
		e[seg2_off + i] = (uint8_t)(0x31 * i + 1);

	struct { uint32_t type; uint64_t off, paddr, filesz, memsz, align; } ph[3] = {
		{ PT_NOTE, note_off, 0, nl, nl, 4 },
		{ PT_LOAD, seg1_off, SEG1_PADDR, SEG1_SIZE, SEG1_SIZE, 0x1000 },
		{ PT_LOAD, seg2_off + o->seg2_offset_add, o->seg2_paddr, o->seg2_filesz, o->seg2_memsz, 0x1000 },
	};
	if (o->is32) {
		Elf32_Ehdr h = { 0 };
		memcpy(h.e_ident, ELFMAG, SELFMAG);
		h.e_ident[EI_CLASS] = ELFCLASS32, h.e_ident[EI_DATA] = ELFDATA2LSB, h.e_ident[EI_VERSION] = EV_CURRENT;
		h.e_type = ET_EXEC, h.e_machine = EM_386, h.e_version = EV_CURRENT, h.e_entry = 0xdead;
		h.e_phoff = ehsz, h.e_ehsize = ehsz, h.e_phentsize = phsz, h.e_phnum = 3;
		memcpy(e, &h, sizeof(h));
		for (int i = 0; i < 3; i++) {
			Elf32_Phdr p = { .p_type = ph[i].type, .p_offset = ph[i].off, .p_vaddr = ph[i].paddr,
					 .p_paddr = ph[i].paddr, .p_filesz = ph[i].filesz, .p_memsz = ph[i].memsz,
					 .p_flags = PF_R, .p_align = ph[i].align };
			memcpy(e + ehsz + i * phsz, &p, sizeof(p));
		}
	} else {
		Elf64_Ehdr h = { 0 };
		memcpy(h.e_ident, ELFMAG, SELFMAG);
		h.e_ident[EI_CLASS] = ELFCLASS64, h.e_ident[EI_DATA] = ELFDATA2LSB, h.e_ident[EI_VERSION] = EV_CURRENT;
		h.e_type = ET_EXEC, h.e_machine = EM_X86_64, h.e_version = EV_CURRENT, h.e_entry = 0xffffffff81000000;
		h.e_phoff = ehsz, h.e_ehsize = ehsz, h.e_phentsize = phsz, h.e_phnum = 3;
		memcpy(e, &h, sizeof(h));
		for (int i = 0; i < 3; i++) {
			Elf64_Phdr p = { .p_type = ph[i].type, .p_offset = ph[i].off,
					 .p_vaddr = 0xffffffff80000000ULL + ph[i].paddr, .p_paddr = ph[i].paddr,
					 .p_filesz = ph[i].filesz, .p_memsz = ph[i].memsz, .p_flags = PF_R,
					 .p_align = ph[i].align };
			memcpy(e + ehsz + i * phsz, &p, sizeof(p));
		}
	}
	*len = n;
	return e;
}

static void check_pvh(const struct elf_opts *o)
{
	struct guest_mem *gm = new_gm(64 * MiB);
	size_t klen, ilen = 8192 + 100;
	uint8_t *k = make_elf(o, &klen);
	uint8_t *initrd = make_initrd(ilen);
	memset(gm_ptr(gm, SEG2_PADDR, SEG2_MEMSZ), 0xaa, SEG2_MEMSZ); /* the bss must be zeroed */
	memset(gm_ptr(gm, LAYOUT_PVH_START_INFO, 4096), 0x55, 4096);
	struct boot_info bi;
	struct gr_error err = { 0 };
	const char *cmdline = "console=hvc0 quiet";
	int r = boot_load_mem(gm, k, klen, initrd, ilen, cmdline, 0xe0000, &bi, &err);
	if (r < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(bi.mode, BOOT_PVH);
	assert_int_equal(bi.entry, PVH_ENTRY);
	assert_int_equal(bi.params_gpa, LAYOUT_PVH_START_INFO);
	assert_int_equal(bi.kernel_end, SEG2_PADDR + SEG2_MEMSZ);
	uint64_t want_initrd = (64 * MiB - ilen) & ~0xfffULL;
	assert_int_equal(bi.initrd_gpa, want_initrd);
	assert_int_equal(bi.initrd_size, ilen);

	/* segments at p_paddr, bss zeroed */
	assert_memory_equal(gm_ptr(gm, SEG1_PADDR, SEG1_SIZE), k + 0x1000, SEG1_SIZE);
	assert_memory_equal(gm_ptr(gm, SEG2_PADDR, SEG2_FILESZ), k + 0x2000, SEG2_FILESZ);
	const uint8_t *bss = gm_ptr(gm, SEG2_PADDR + SEG2_FILESZ, SEG2_MEMSZ - SEG2_FILESZ);
	for (size_t i = 0; i < SEG2_MEMSZ - SEG2_FILESZ; i++)
		assert_int_equal(bss[i], 0);
	/* and nothing past p_memsz */
	assert_int_equal(*(uint8_t *)gm_ptr(gm, SEG2_PADDR + SEG2_MEMSZ, 1), 0);

	/* hvm_start_info at its documented offsets */
	const uint8_t *si = gm_ptr(gm, LAYOUT_PVH_START_INFO, 4096);
	assert_int_equal(get32(si, 0), 0x336ec578);
	assert_int_equal(get32(si, 4), 1);
	assert_int_equal(get32(si, 8), 0);
	assert_int_equal(get32(si, 12), 1);
	uint64_t modlist = get64(si, 16);
	assert_int_equal(get64(si, 24), LAYOUT_CMDLINE);
	assert_int_equal(get64(si, 32), 0xe0000);
	uint64_t memmap = get64(si, 40);
	assert_int_equal(get32(si, 48), 3);
	assert_int_equal(get32(si, 52), 0);
	/* module 0: the initrd */
	const uint8_t *mod = gm_ptr(gm, modlist, 32);
	assert_non_null(mod);
	assert_int_equal(get64(mod, 0), want_initrd);
	assert_int_equal(get64(mod, 8), ilen);
	assert_int_equal(get64(mod, 16), 0);
	assert_int_equal(get64(mod, 24), 0);
	/* the memmap: addr, size, type, reserved (24 bytes each) */
	const uint8_t *mm = gm_ptr(gm, memmap, 3 * 24);
	assert_non_null(mm);
	assert_e820(mm, 0, LAYOUT_EBDA_START, E820_RAM);
	assert_int_equal(get32(mm, 20), 0);
	assert_e820(mm + 24, LAYOUT_EBDA_START, MiB - LAYOUT_EBDA_START, E820_RESERVED);
	assert_e820(mm + 48, MiB, 63 * MiB, E820_RAM);
	/* none of them overlap the start info */
	assert_true(modlist >= LAYOUT_PVH_START_INFO + 56 && memmap >= modlist + 32);
	assert_true(memmap + 3 * 24 <= LAYOUT_PVH_START_INFO + 4096);

	assert_string_equal((const char *)gm_ptr(gm, LAYOUT_CMDLINE, strlen(cmdline) + 1), cmdline);
	assert_memory_equal(gm_ptr(gm, want_initrd, ilen), initrd, ilen);
	free(k);
	free(initrd);
	free_gm(gm);
}

static void test_pvh_elf64(void **state)
{
	(void)state;
	check_pvh(&ELF_DEFAULT);
}

static void test_pvh_elf32(void **state)
{
	(void)state;
	struct elf_opts o = ELF_DEFAULT;
	o.is32 = true;
	check_pvh(&o);
}

static void test_pvh_note_desc8(void **state)
{
	(void)state;
	struct elf_opts o = ELF_DEFAULT;
	o.note_descsz = 8; /* Linux writes the entry with _ASM_PTR: 8 bytes on x86-64 */
	check_pvh(&o);
}

static void test_pvh_no_initrd(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(16 * MiB);
	size_t klen;
	uint8_t *k = make_elf(&ELF_DEFAULT, &klen);
	struct boot_info bi;
	struct gr_error err = { 0 };
	assert_int_equal(boot_load_mem(gm, k, klen, NULL, 0, NULL, 0, &bi, &err), 0);
	const uint8_t *si = gm_ptr(gm, LAYOUT_PVH_START_INFO, 64);
	assert_int_equal(get32(si, 12), 0); /* nr_modules */
	assert_int_equal(get64(si, 16), 0); /* modlist_paddr */
	assert_int_equal(get64(si, 32), 0); /* rsdp_paddr */
	free(k);
	free_gm(gm);
}

static void expect_elf_error(const struct elf_opts *o, void (*patch)(uint8_t *, size_t *), int code,
			     const char *msg)
{
	struct guest_mem *gm = new_gm(64 * MiB);
	struct boot_info bi;
	struct gr_error err = { 0 };
	size_t klen;
	uint8_t *k = make_elf(o, &klen);
	if (patch)
		patch(k, &klen);
	int r = boot_load_mem(gm, k, klen, NULL, 0, NULL, 0, &bi, &err);
	if (r != -code || !strstr(err.msg, msg))
		fail_msg("got %d \"%s\", want %d \"%s\"", r, err.msg, -code, msg);
	free(k);
	free_gm(gm);
}

static void patch_elf_class(uint8_t *k, size_t *len) { (void)len; k[EI_CLASS] = 3; }
static void patch_elf_be(uint8_t *k, size_t *len) { (void)len; k[EI_DATA] = ELFDATA2MSB; }
static void patch_elf_dyn(uint8_t *k, size_t *len) { (void)len; put16(k, 16, ET_DYN); }
static void patch_elf_arm(uint8_t *k, size_t *len) { (void)len; put16(k, 18, EM_AARCH64); }
static void patch_elf_phoff(uint8_t *k, size_t *len) { (void)len; put64(k, 32, 0x10000); }
static void patch_elf_phentsize(uint8_t *k, size_t *len) { (void)len; put16(k, 54, 32); }
static void patch_elf_note_size(uint8_t *k, size_t *len) { (void)len; put32(k, 64 + 3 * 56 + 4, 0x7fffffff); }

static void test_pvh_errors(void **state)
{
	(void)state;
	struct elf_opts o = ELF_DEFAULT;
	o.no_note = true;
	expect_elf_error(&o, NULL, ENOEXEC,
			 "kernel: ELF without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build with CONFIG_PVH");
	o = ELF_DEFAULT;
	o.seg2_paddr = 0x10000000; /* 256 MiB in a 64 MiB guest */
	expect_elf_error(&o, NULL, ENOMEM, "kernel: segment 2 (PT_LOAD at paddr 0x10000000, 12288 bytes) lies outside "
			 "guest RAM (0x0-0x4000000)");
	o = ELF_DEFAULT;
	o.seg2_paddr = 64 * MiB - 0x1000; /* straddles the end of RAM because of its bss */
	expect_elf_error(&o, NULL, ENOMEM, "segment 2 (PT_LOAD at paddr 0x3fff000, 12288 bytes) lies outside");
	o = ELF_DEFAULT;
	o.seg2_filesz = SEG2_MEMSZ + 1;
	expect_elf_error(&o, NULL, ENOEXEC, "kernel: segment 2 (PT_LOAD at paddr 0x200000): p_filesz 12289 is larger "
			 "than p_memsz 12288");
	o = ELF_DEFAULT;
	o.seg2_memsz = 0; /* file contents and no memory for them */
	expect_elf_error(&o, NULL, ENOEXEC, "kernel: segment 2 (PT_LOAD at paddr 0x200000): p_filesz 256 is larger "
			 "than p_memsz 0");
	o = ELF_DEFAULT;
	o.seg2_paddr = LAYOUT_ZERO_PAGE;
	expect_elf_error(&o, NULL, ENOEXEC, "kernel: segment 2 (PT_LOAD at paddr 0x7000, 12288 bytes) overlaps the "
			 "boot structures below 1 MiB");
	o = ELF_DEFAULT;
	o.seg2_offset_add = 0x100;
	expect_elf_error(&o, NULL, ENOEXEC, "kernel: truncated: segment 2 (PT_LOAD at paddr 0x200000) has 256 bytes "
			 "at offset 0x2100");
	o = ELF_DEFAULT;
	o.seg2_offset_add = UINT64_MAX - 0x2000 - 10; /* offset + filesz overflows */
	expect_elf_error(&o, NULL, ENOEXEC, "kernel: truncated: segment 2");
	o = ELF_DEFAULT;
	o.seg2_paddr = UINT64_MAX - 0x10; /* paddr + memsz overflows */
	expect_elf_error(&o, NULL, ENOMEM, "lies outside guest RAM");
	o = ELF_DEFAULT;
	o.entry = 0x300000;
	expect_elf_error(&o, NULL, ENOEXEC, "kernel: PVH entry 0x300000 (XEN_ELFNOTE_PHYS32_ENTRY) is not inside");
	o = ELF_DEFAULT;
	o.note_descsz = 2;
	expect_elf_error(&o, NULL, ENOEXEC, "has a 2-byte descriptor");
	expect_elf_error(&ELF_DEFAULT, patch_elf_class, ENOEXEC, "kernel: ELF class 3 is neither");
	expect_elf_error(&ELF_DEFAULT, patch_elf_be, ENOEXEC, "is not little-endian");
	expect_elf_error(&ELF_DEFAULT, patch_elf_dyn, ENOEXEC, "kernel: ELF type 3 is not an executable");
	expect_elf_error(&ELF_DEFAULT, patch_elf_arm, ENOEXEC, "kernel: ELF machine 183 is not x86");
	expect_elf_error(&ELF_DEFAULT, patch_elf_phoff, ENOEXEC, "kernel: truncated: 3 program headers at offset 0x10000");
	expect_elf_error(&ELF_DEFAULT, patch_elf_phentsize, ENOEXEC, "kernel: e_phentsize 32 is not 56");
	expect_elf_error(&ELF_DEFAULT, patch_elf_note_size, ENOEXEC, "(namesz 4, descsz 2147483647) runs past");
}

static void test_pvh_truncated(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(32 * MiB);
	struct boot_info bi;
	size_t klen;
	uint8_t *k = make_elf(&ELF_DEFAULT, &klen);
	for (size_t n = 0; n < klen; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, k, n);
		struct gr_error err = { 0 };
		int r = boot_load_mem(gm, copy, n, NULL, 0, NULL, 0, &bi, &err);
		if (r != -ENOEXEC || !strstr(err.msg, "kernel: "))
			fail_msg("prefix of %zu bytes: %d \"%s\"", n, r, err.msg);
		free(copy);
	}
	free(k);
	free_gm(gm);
}

/* Random corruption of both formats: an error or a load, never a crash or
 * an out-of-bounds access (run under ASan). */
static void test_fuzz_corruption(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(32 * MiB);
	size_t blen, elen;
	uint8_t *bz = make_bzimage(&BZ_DEFAULT, &blen);
	uint8_t *elf = make_elf(&ELF_DEFAULT, &elen);
	uint32_t seed = 12345;
	int loaded = 0, rejected = 0;
	for (int iter = 0; iter < 4000; iter++) {
		bool use_elf = iter & 1;
		size_t len = use_elf ? elen : blen;
		uint8_t *copy = malloc(len);
		memcpy(copy, use_elf ? elf : bz, len);
		int flips = 1 + iter % 8;
		for (int f = 0; f < flips; f++) {
			seed = seed * 1103515245 + 12345;
			/* mostly in the headers, where the parser looks */
			size_t span = (seed >> 8) % 4 ? 0x300 : len;
			size_t pos = (seed >> 12) % span;
			seed = seed * 1103515245 + 12345;
			copy[pos] = (uint8_t)(seed >> 16);
		}
		struct boot_info bi;
		struct gr_error err = { 0 };
		int r = boot_load_mem(gm, copy, len, NULL, 0, "x", 0, &bi, &err);
		if (r < 0) {
			assert_true(err.msg[0] != '\0');
			rejected++;
		} else {
			assert_true(bi.entry != 0);
			loaded++;
		}
		free(copy);
	}
	print_message("corrupted kernels: %d loaded, %d rejected\n", loaded, rejected);
	assert_true(loaded > 0 && rejected > 0);
	free(bz);
	free(elf);
	free_gm(gm);
}

/* ---- from files ---- */

static char *write_temp(const uint8_t *data, size_t len)
{
	char *path = strdup("/tmp/gureum-test-boot-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_boot_load_files(void **state)
{
	(void)state;
	struct guest_mem *gm = new_gm(64 * MiB);
	size_t klen, ilen = 3 * MiB + 17;
	uint8_t *k = make_bzimage(&BZ_DEFAULT, &klen);
	uint8_t *initrd = make_initrd(ilen);
	char *kpath = write_temp(k, klen), *ipath = write_temp(initrd, ilen);
	struct boot_info bi;
	struct gr_error err = { 0 };
	assert_int_equal(boot_load(gm, kpath, ipath, "root=/dev/vda", 0, &bi, &err), 0);
	assert_int_equal(bi.mode, BOOT_LINUX64);
	assert_int_equal(bi.initrd_size, ilen);
	assert_memory_equal(gm_ptr(gm, bi.initrd_gpa, ilen), initrd, ilen);
	assert_memory_equal(gm_ptr(gm, LAYOUT_KERNEL_LOAD, BZ_PM_SIZE), k + BZ_PM_OFF, BZ_PM_SIZE);

	/* errors name the file */
	char want[256];
	assert_int_equal(boot_load(gm, "/nonexistent/vmlinuz", NULL, NULL, 0, &bi, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "kernel /nonexistent/vmlinuz: cannot open"));
	assert_int_equal(boot_load(gm, kpath, "/nonexistent/initrd", NULL, 0, &bi, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "initrd /nonexistent/initrd: cannot open"));
	assert_int_equal(boot_load(gm, "/tmp", NULL, NULL, 0, &bi, &err), -EINVAL);
	assert_string_equal(err.msg, "kernel /tmp: not a regular file");

	/* a file with an old protocol */
	put16(k, 0x206, 0x020a);
	char *old = write_temp(k, klen);
	assert_int_equal(boot_load(gm, old, NULL, NULL, 0, &bi, &err), -ENOEXEC);
	snprintf(want, sizeof(want), "kernel %s: boot protocol 2.10 is too old (need 2.12 for the 64-bit entry)", old);
	assert_string_equal(err.msg, want);

	/* an initrd larger than the guest's memory */
	struct guest_mem *small = new_gm(2 * MiB);
	assert_int_equal(boot_load(small, kpath, ipath, NULL, 0, &bi, &err), -EFBIG);
	snprintf(want, sizeof(want), "initrd %s: %zu bytes is larger than the guest's 2097152 bytes of memory", ipath, ilen);
	assert_string_equal(err.msg, want);
	free_gm(small);

	/* PVH from a file, with the initrd read straight into guest memory */
	size_t elen;
	uint8_t *elf = make_elf(&ELF_DEFAULT, &elen);
	char *epath = write_temp(elf, elen);
	assert_int_equal(boot_load(gm, epath, ipath, NULL, 0, &bi, &err), 0);
	assert_int_equal(bi.mode, BOOT_PVH);
	assert_memory_equal(gm_ptr(gm, bi.initrd_gpa, ilen), initrd, ilen);
	/* an initrd that does not fit, named by its path */
	struct guest_mem *g8 = new_gm(4 * MiB);
	assert_int_equal(boot_load(g8, epath, ipath, NULL, 0, &bi, &err), -ENOMEM);
	snprintf(want, sizeof(want), "initrd %s: %zu bytes do not fit below 0x400000", ipath, ilen);
	assert_non_null(strstr(err.msg, want));
	free_gm(g8);

	unlink(kpath), unlink(ipath), unlink(old), unlink(epath);
	free(kpath), free(ipath), free(old), free(epath);
	free(k), free(initrd), free(elf);
	free_gm(gm);
}

/* ---- the real thing, when this machine has one ---- */

static void test_real_vmlinuz(void **state)
{
	(void)state;
	glob_t g;
	if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0 || g.gl_pathc == 0) {
		print_message("no /boot/vmlinuz-* on this machine: skipped\n");
		skip();
	}
	int loaded = 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		if (access(g.gl_pathv[i], R_OK) != 0)
			continue; /* Debian keeps them 0600 */
		struct guest_mem *gm = new_gm(256 * MiB);
		struct boot_info bi;
		struct gr_error err = { 0 };
		int r = boot_load(gm, g.gl_pathv[i], NULL, "console=ttyS0", 0xe0000, &bi, &err);
		if (r < 0)
			fail_msg("%s", err.msg);
		assert_int_equal(bi.mode, BOOT_LINUX64);
		assert_int_equal(bi.entry, LAYOUT_KERNEL_LOAD + 0x200);
		const uint8_t *zp = gm_ptr(gm, LAYOUT_ZERO_PAGE, 4096);
		assert_memory_equal(zp + 0x202, "HdrS", 4);
		assert_true(get16(zp, 0x206) >= 0x020c);
		assert_true(get16(zp, 0x236) & BOOT_XLF_KERNEL_64);
		assert_true(zp[0x1e8] >= 3);
		print_message("%s: boot protocol %u.%02u, init_size %u, loaded\n", g.gl_pathv[i], get16(zp, 0x206) >> 8,
			      get16(zp, 0x206) & 0xff, get32(zp, 0x260));
		loaded++;
		free_gm(gm);
	}
	globfree(&g);
	if (!loaded) {
		print_message("/boot/vmlinuz-* not readable by this user: skipped\n");
		skip();
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_e820_small),
		cmocka_unit_test(test_e820_above_4g),
		cmocka_unit_test(test_bzimage_zero_page),
		cmocka_unit_test(test_bzimage_no_initrd_no_cmdline),
		cmocka_unit_test(test_bzimage_rsdp_needs_2_14),
		cmocka_unit_test(test_bzimage_header_length_and_setup_sects),
		cmocka_unit_test(test_bzimage_initrd_placement),
		cmocka_unit_test(test_bzimage_initrd_too_large),
		cmocka_unit_test(test_bzimage_cmdline_limits),
		cmocka_unit_test(test_bzimage_errors),
		cmocka_unit_test(test_not_a_kernel),
		cmocka_unit_test(test_bzimage_truncated),
		cmocka_unit_test(test_pvh_elf64),
		cmocka_unit_test(test_pvh_elf32),
		cmocka_unit_test(test_pvh_note_desc8),
		cmocka_unit_test(test_pvh_no_initrd),
		cmocka_unit_test(test_pvh_errors),
		cmocka_unit_test(test_pvh_truncated),
		cmocka_unit_test(test_fuzz_corruption),
		cmocka_unit_test(test_boot_load_files),
		cmocka_unit_test(test_real_vmlinuz),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
