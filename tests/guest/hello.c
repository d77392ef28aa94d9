/* The smallest payload: booted through PVH, it checks the start info the
 * VMM handed over, prints to the serial port and reports through debug exit. */
#include "payload.h"
#include "pvh.h"

void payload_main(const struct hvm_start_info *si);

void payload_main(const struct hvm_start_info *si)
{
	serial_puts("gureum-vmm payload: hello\n");
	if (si->magic != 0x336ec578)
		debug_exit(1);
	if (si->memmap_entries == 0 || si->memmap_paddr == 0)
		debug_exit(2);
	if (si->cmdline_paddr) {
		serial_puts("cmdline: ");
		serial_puts((const char *)(uintptr_t)si->cmdline_paddr);
		serial_puts("\n");
	}
	serial_puts("gureum-vmm payload: ok\n");
	debug_exit(0);
}
