/* Checks what Linux relies on at boot, from inside the guest (PVH entry):
 * the start info and its memory map, the command line, the initrd bytes
 * (module 0), and the ACPI tables found from the RSDP: checksums, the XSDT,
 * the MADT's CPU count (the command line says how many: "cpus=N") and the
 * FADT's hardware-reduced flag. Each failed check reports its own number. */
#include "payload.h"
#include "pvh.h"

void payload_main(const struct hvm_start_info *si);

void payload_main(const struct hvm_start_info *si)
{
	if (si->magic != 0x336ec578 || si->version < 1)
		debug_exit(1);
	/* Memory map: RAM at 0, RAM from 1 MiB, nothing overlapping. */
	const struct hvm_memmap_entry *mm = (const void *)(uintptr_t)si->memmap_paddr;
	if (si->memmap_entries < 3 || mm[0].addr != 0 || mm[0].type != 1)
		debug_exit(2);
	int high_ram = 0;
	for (uint32_t i = 0; i < si->memmap_entries; i++) {
		if (i && mm[i].addr < mm[i - 1].addr + mm[i - 1].size)
			debug_exit(3);
		if (mm[i].addr == 0x100000 && mm[i].type == 1)
			high_ram = 1;
	}
	if (!high_ram)
		debug_exit(4);
	/* Command line. */
	const char *cmd = (const char *)(uintptr_t)si->cmdline_paddr;
	int cpus = cmdline_int(cmd, "cpus");
	if (cpus < 1)
		debug_exit(5);
	/* initrd = module 0, whose bytes follow the pattern i % 251. */
	int initrd_len = cmdline_int(cmd, "initrd_len");
	if (initrd_len > 0) {
		const struct hvm_modlist_entry *m = (const void *)(uintptr_t)si->modlist_paddr;
		if (si->nr_modules != 1 || m->size != (uint64_t)initrd_len || (m->paddr & 0xFFF))
			debug_exit(6);
		for (int i = 0; i < initrd_len; i++)
			if (ptr(m->paddr)[i] != (uint8_t)(i % 251))
				debug_exit(7);
	}
	/* ACPI. */
	const uint8_t *rsdp = ptr(si->rsdp_paddr);
	if (!si->rsdp_paddr || !sig_is(rsdp, "RSD PTR ") || sum(rsdp, 20) != 0 || rsdp[15] < 2 ||
	    sum(rsdp, u32(rsdp + 20)) != 0)
		debug_exit(8);
	const uint8_t *xsdt = ptr(u64(rsdp + 24));
	if (!sig_is(xsdt, "XSDT") || sum(xsdt, u32(xsdt + 4)) != 0)
		debug_exit(9);
	int lapics = -1, hw_reduced = 0;
	for (uint32_t off = 36; off + 8 <= u32(xsdt + 4); off += 8) {
		const uint8_t *t = ptr(u64(xsdt + off));
		if (sum(t, u32(t + 4)) != 0)
			debug_exit(10);
		if (sig_is(t, "APIC")) {
			lapics = 0;
			for (uint32_t e = 44; e + 2 <= u32(t + 4) && t[e + 1] >= 2; e += t[e + 1])
				if (t[e] == 0 && (u32(t + e + 4) & 1))
					lapics++;
		} else if (sig_is(t, "FACP")) {
			hw_reduced = (u32(t + 112) >> 20) & 1;
			const uint8_t *dsdt = ptr(u64(t + 140));
			if (!sig_is(dsdt, "DSDT") || sum(dsdt, u32(dsdt + 4)) != 0)
				debug_exit(11);
		}
	}
	if (lapics != cpus)
		debug_exit(12);
	if (!hw_reduced)
		debug_exit(13);
	serial_puts("gureum-vmm checks: ok\n");
	debug_exit(0);
}
