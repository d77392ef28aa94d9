/* The e820 map given to the guest (boot_params.e820_table, the PVH memmap). */
#include "vmm/boot/boot.h"
#include "vmm/boot/boot_internal.h"

uint64_t boot_low_ram_end(const struct guest_mem *gm)
{
	if (gm->n_regions == 0 || gm->regions[0].gpa != 0)
		return 0;
	return gm->regions[0].size;
}

size_t boot_e820(const struct guest_mem *gm, struct e820_entry *out, size_t max)
{
	struct e820_entry all[2 + 1 + 2];
	size_t n = 0;
	uint64_t low_end = boot_low_ram_end(gm);
	const uint64_t mib = 1ULL << 20;

	if (low_end == 0)
		return 0;
	/* Conventional memory, then the EBDA/BIOS area the guest must not use
	 * (the RSDP and ACPI tables live there), then RAM from 1 MiB. */
	all[n++] = (struct e820_entry){ 0, low_end < LAYOUT_EBDA_START ? low_end : LAYOUT_EBDA_START, E820_RAM };
	all[n++] = (struct e820_entry){ LAYOUT_EBDA_START, mib - LAYOUT_EBDA_START, E820_RESERVED };
	if (low_end > mib)
		all[n++] = (struct e820_entry){ mib, low_end - mib, E820_RAM };
	for (size_t i = 1; i < gm->n_regions && n < sizeof(all) / sizeof(all[0]); i++)
		if (gm->regions[i].size)
			all[n++] = (struct e820_entry){ gm->regions[i].gpa, gm->regions[i].size, E820_RAM };

	size_t count = n < max ? n : max;
	for (size_t i = 0; i < count; i++)
		out[i] = all[i];
	return count;
}
