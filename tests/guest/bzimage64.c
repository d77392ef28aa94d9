/* The 64-bit half of bzimage64 (see bzimage64.S): entered at 1 MiB + 0x200
 * in long mode, it checks the zero page the boot loader built: the setup
 * header copied from the file and completed, the e820 map, the command line
 * (which must contain "bz=1"), the initrd ("initrd_len=N" on the command line:
 * N bytes following the pattern i % 251, placed within initrd_addr_max; no
 * initrd otherwise), the RSDP, and the CPU state the protocol promises.
 *
 * Failure codes: 1 setup header not copied, 2 loader fields not filled in,
 * 3 not loaded at 1 MiB, 4 e820 count, 5 e820 entries, 6 command line,
 * 7 initrd placement or size, 8 initrd bytes, 9 RSDP, 10 interrupts on,
 * 11 not in long mode with paging. */
#include "payload.h"

/* Zero page offsets (struct boot_params, with the setup header at 0x1f1). */
#define BP_ACPI_RSDP_ADDR     0x070
#define BP_EXT_RAMDISK_IMAGE  0x0c0
#define BP_EXT_RAMDISK_SIZE   0x0c4
#define BP_EXT_CMD_LINE_PTR   0x0c8
#define BP_E820_ENTRIES       0x1e8
#define BP_SETUP_SECTS        0x1f1
#define BP_BOOT_FLAG          0x1fe
#define BP_HEADER             0x202
#define BP_VERSION            0x206
#define BP_TYPE_OF_LOADER     0x210
#define BP_LOADFLAGS          0x211
#define BP_RAMDISK_IMAGE      0x218
#define BP_RAMDISK_SIZE       0x21c
#define BP_CMD_LINE_PTR       0x228
#define BP_INITRD_ADDR_MAX    0x22c
#define BP_CMDLINE_SIZE       0x238
#define BP_INIT_SIZE          0x260
#define BP_E820_TABLE         0x2d0
#define E820_MAX              128
#define E820_RAM              1
#define LOAD_ADDR             0x100000ULL

void bz_main(const uint8_t *zp);

static uint8_t u8(const uint8_t *zp, unsigned off) { return zp[off]; }
static uint16_t u16(const uint8_t *zp, unsigned off) { return *(const uint16_t *)(zp + off); }
static uint32_t u32(const uint8_t *zp, unsigned off) { return *(const uint32_t *)(zp + off); }
static uint64_t u64(const uint8_t *zp, unsigned off) { return *(const uint64_t *)(zp + off); }

static int has_word(const char *s, const char *w)
{
	for (; *s; s++) {
		int i = 0;
		while (w[i] && s[i] == w[i])
			i++;
		if (!w[i])
			return 1;
	}
	return 0;
}

static long cmdline_int(const char *c, const char *key)
{
	for (; *c; c++) {
		int i = 0;
		while (key[i] && c[i] == key[i])
			i++;
		if (!key[i] && c[i] == '=') {
			long v = 0;
			for (c += i + 1; *c >= '0' && *c <= '9'; c++)
				v = v * 10 + (*c - '0');
			return v;
		}
	}
	return -1;
}

/* Is [a, a + n) inside one e820 RAM entry? */
static int in_ram(const uint8_t *zp, uint64_t a, uint64_t n)
{
	for (unsigned i = 0; i < u8(zp, BP_E820_ENTRIES); i++) {
		const uint8_t *e = zp + BP_E820_TABLE + 20 * i;
		uint64_t addr = u64(e, 0), size = u64(e, 8);
		if (u32(e, 16) == E820_RAM && a >= addr && a + n <= addr + size)
			return 1;
	}
	return 0;
}

void bz_main(const uint8_t *zp)
{
	/* The CPU state: interrupts off, long mode with paging. */
	uint64_t flags, cr0, entry;
	uint32_t efer_lo, efer_hi;
	__asm__ volatile("pushfq; popq %0" : "=r"(flags));
	__asm__ volatile("movq %%cr0, %0" : "=r"(cr0));
	__asm__ volatile("rdmsr" : "=a"(efer_lo), "=d"(efer_hi) : "c"(0xC0000080u));
	__asm__ volatile("leaq startup_64(%%rip), %0" : "=r"(entry));
	if (flags & 0x200)
		debug_exit(10);
	if (!(cr0 & 0x80000000u) || !(efer_lo & 0x400)) /* CR0.PG, EFER.LMA */
		debug_exit(11);
	if (entry != LOAD_ADDR + 0x200)
		debug_exit(3);

	/* The setup header, copied from the file and completed by the loader. */
	if (u32(zp, BP_HEADER) != 0x53726448 || u16(zp, BP_VERSION) != 0x020F || u16(zp, BP_BOOT_FLAG) != 0xAA55 ||
	    u8(zp, BP_SETUP_SECTS) != 3 || u32(zp, BP_INITRD_ADDR_MAX) != 0x01FFFFFF)
		debug_exit(1);
	if (u8(zp, BP_TYPE_OF_LOADER) == 0 || !(u8(zp, BP_LOADFLAGS) & 0x01))
		debug_exit(2);

	/* e820: RAM at 0 and RAM holding the kernel's init_size from 1 MiB, sorted, no overlaps. */
	unsigned n = u8(zp, BP_E820_ENTRIES);
	if (n <= 2 || n > E820_MAX)
		debug_exit(4);
	const uint8_t *e820 = zp + BP_E820_TABLE;
	if (u64(e820, 0) != 0 || u32(e820, 16) != E820_RAM)
		debug_exit(5);
	for (unsigned i = 1; i < n; i++)
		if (u64(e820, 20 * i) < u64(e820, 20 * (i - 1)) + u64(e820, 20 * (i - 1) + 8))
			debug_exit(5);
	uint32_t init_size = u32(zp, BP_INIT_SIZE);
	if (!in_ram(zp, LOAD_ADDR, init_size))
		debug_exit(5);

	/* The command line. */
	uint64_t cmd_addr = u32(zp, BP_CMD_LINE_PTR) | (uint64_t)u32(zp, BP_EXT_CMD_LINE_PTR) << 32;
	const char *cmd = (const char *)(uintptr_t)cmd_addr;
	if (!cmd_addr || !in_ram(zp, cmd_addr, 1) || !has_word(cmd, "bz=1"))
		debug_exit(6);
	uint32_t len = 0;
	while (cmd[len])
		len++;
	if (len > u32(zp, BP_CMDLINE_SIZE))
		debug_exit(6);

	/* The initrd: where the header allows, clear of the kernel, in RAM, with the test's bytes. */
	uint64_t rd = u32(zp, BP_RAMDISK_IMAGE) | (uint64_t)u32(zp, BP_EXT_RAMDISK_IMAGE) << 32;
	uint64_t rd_size = u32(zp, BP_RAMDISK_SIZE) | (uint64_t)u32(zp, BP_EXT_RAMDISK_SIZE) << 32;
	long want = cmdline_int(cmd, "initrd_len");
	if (want < 0) {
		if (rd || rd_size)
			debug_exit(7);
	} else {
		if (rd_size != (uint64_t)want || !rd || (rd & 0xFFF) || rd < LOAD_ADDR + init_size ||
		    rd + rd_size - 1 > u32(zp, BP_INITRD_ADDR_MAX) || !in_ram(zp, rd, rd_size))
			debug_exit(7);
		const uint8_t *p = (const uint8_t *)(uintptr_t)rd;
		unsigned v = 0;
		for (uint64_t i = 0; i < rd_size; i++) {
			if (p[i] != v)
				debug_exit(8);
			if (++v == 251)
				v = 0;
		}
	}

	/* The RSDP (boot protocol 2.14): signature and checksum of the first 20 bytes. */
	uint64_t rsdp_addr = u64(zp, BP_ACPI_RSDP_ADDR);
	const uint8_t *rsdp = (const uint8_t *)(uintptr_t)rsdp_addr;
	if (!rsdp_addr || u64(rsdp, 0) != 0x2052545020445352ULL)
		debug_exit(9);
	uint8_t sum = 0;
	for (int i = 0; i < 20; i++)
		sum = (uint8_t)(sum + rsdp[i]);
	if (sum)
		debug_exit(9);

	serial_puts("bzimage64: ok\n");
	debug_exit(0);
}
