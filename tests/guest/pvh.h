/* What PVH payloads share: the start info the VMM hands over (ebx), byte
 * helpers for reading firmware tables, the command line, and the ACPI table
 * lookup through the RSDP. Freestanding; include after payload.h. */
#ifndef GR_GUEST_PVH_H
#define GR_GUEST_PVH_H

#include <stdint.h>

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
struct hvm_modlist_entry { uint64_t paddr, size, cmdline_paddr, reserved; };
struct hvm_memmap_entry { uint64_t addr, size; uint32_t type, reserved; };

#define HVM_START_MAGIC 0x336ec578

static inline const uint8_t *ptr(uint64_t a) { return (const uint8_t *)(uintptr_t)a; }
static inline uint32_t u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t u64(const uint8_t *p) { return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32; }

/* ACPI's 8-bit checksum rule: the bytes sum to 0. */
static inline uint8_t sum(const uint8_t *p, uint32_t n)
{
	uint8_t s = 0;
	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static inline int sig_is(const uint8_t *p, const char *s)
{
	for (int i = 0; s[i]; i++)
		if (p[i] != (uint8_t)s[i])
			return 0;
	return 1;
}

/* The decimal value after "key=" in the command line; -1 if absent. */
static inline int cmdline_int(const char *c, const char *key)
{
	for (; c && *c; c++) {
		int i = 0;
		while (key[i] && c[i] == key[i])
			i++;
		if (!key[i] && c[i] == '=') {
			int v = 0;
			for (c += i + 1; *c >= '0' && *c <= '9'; c++)
				v = v * 10 + (*c - '0');
			return v;
		}
	}
	return -1;
}

/* Whether the command line holds the word w (separated by spaces). */
static inline int cmdline_has(const char *c, const char *w)
{
	while (c && *c) {
		while (*c == ' ')
			c++;
		int i = 0;
		while (w[i] && c[i] == w[i])
			i++;
		if (!w[i] && (c[i] == ' ' || c[i] == 0))
			return 1;
		while (*c && *c != ' ')
			c++;
	}
	return 0;
}

/* The XSDT through a valid RSDP (revision 2, both checksums); 0 when not found. */
static inline const uint8_t *acpi_xsdt(const struct hvm_start_info *si)
{
	const uint8_t *rsdp = ptr(si->rsdp_paddr);
	if (!si->rsdp_paddr || !sig_is(rsdp, "RSD PTR ") || sum(rsdp, 20) != 0 || rsdp[15] < 2 ||
	    sum(rsdp, u32(rsdp + 20)) != 0)
		return 0;
	const uint8_t *xsdt = ptr(u64(rsdp + 24));
	if (!sig_is(xsdt, "XSDT") || sum(xsdt, u32(xsdt + 4)) != 0)
		return 0;
	return xsdt;
}

/* The table with this signature listed in the XSDT, checksum verified; 0 when absent. */
static inline const uint8_t *acpi_table(const struct hvm_start_info *si, const char *sig)
{
	const uint8_t *xsdt = acpi_xsdt(si);
	for (uint32_t off = 36; xsdt && off + 8 <= u32(xsdt + 4); off += 8) {
		const uint8_t *t = ptr(u64(xsdt + off));
		if (sig_is(t, sig) && sum(t, u32(t + 4)) == 0)
			return t;
	}
	return 0;
}

#endif
