/* Powers the machine off the way Linux does on a hardware-reduced ACPI
 * machine (PVH entry): finds the FADT from the RSDP in the start info, reads
 * the SLEEP_CONTROL_REG's port and writes SLP_TYP 5 (\_S5_) | SLP_EN to it;
 * gureum-vmm should then exit with status 0. With "mode=reset" on the
 * command line it writes the FADT's RESET_VALUE to its RESET_REG port
 * instead (exit status 2). A write that returns reports a failure:
 *   1  the power-off or reset write did not stop the machine
 *   2  no valid RSDP / XSDT        3  no FADT in the XSDT
 *   4  the sleep control register is not an 8-bit system I/O port
 *   5  the FADT has no usable reset register
 *   6  the sleep status register is not the 8-bit system I/O port after it
 *   7  WAK_STS set before any sleep request, or not cleared by writing it
 *   8  an S3 request (no such state) did not "wake" at once (WAK_STS)
 * Before powering off it checks that writes without SLP_EN, or for another
 * sleep state, do not stop the machine. */
#include "payload.h"
#include "pvh.h"

void payload_main(const struct hvm_start_info *si);

#define FADT_RESET_REG     116 /* Generic Address Structures (12 bytes) */
#define FADT_RESET_VALUE   128
#define FADT_SLEEP_CONTROL 244
#define FADT_SLEEP_STATUS  256
#define FADT_FLAGS         112
#define FADT_RESET_REG_SUP (1u << 10)
#define GAS_SYSTEM_IO      1
#define SLP_TYP_S5         5
#define SLP_EN             0x20
#define WAK_STS            0x80

static const uint8_t *find_fadt(const struct hvm_start_info *si)
{
	if (!acpi_xsdt(si))
		debug_exit(2);
	const uint8_t *t = acpi_table(si, "FACP");
	if (!t || u32(t + 4) < FADT_SLEEP_CONTROL + 24)
		debug_exit(3);
	return t;
}

void payload_main(const struct hvm_start_info *si)
{
	const uint8_t *fadt = find_fadt(si);
	if (cmdline_has((const char *)(uintptr_t)si->cmdline_paddr, "mode=reset")) {
		const uint8_t *gas = fadt + FADT_RESET_REG;
		uint64_t port = u64(gas + 4);
		if (!(u32(fadt + FADT_FLAGS) & FADT_RESET_REG_SUP) || gas[0] != GAS_SYSTEM_IO || gas[1] != 8 ||
		    port > 0xFFFF)
			debug_exit(5);
		serial_puts("gureum-vmm poweroff: reset through port ");
		serial_hex((uint32_t)port);
		serial_puts("\n");
		outb((uint16_t)port, fadt[FADT_RESET_VALUE]);
		debug_exit(1);
	}
	const uint8_t *gas = fadt + FADT_SLEEP_CONTROL;
	uint64_t port = u64(gas + 4);
	if (gas[0] != GAS_SYSTEM_IO || gas[1] != 8 || port == 0 || port > 0xFFFF)
		debug_exit(4);
	const uint8_t *sgas = fadt + FADT_SLEEP_STATUS;
	uint64_t sport = u64(sgas + 4);
	if (sgas[0] != GAS_SYSTEM_IO || sgas[1] != 8 || sport == 0 || sport > 0xFFFF)
		debug_exit(6);
	if (inb((uint16_t)sport) & WAK_STS)
		debug_exit(7);
	outb((uint16_t)port, SLP_TYP_S5 << 2);    /* no SLP_EN: ignored */
	outb((uint16_t)port, (3 << 2) | SLP_EN); /* S3: not supported, wakes at once */
	if (!(inb((uint16_t)sport) & WAK_STS))
		debug_exit(8);
	outb((uint16_t)sport, WAK_STS);          /* write 1 to clear */
	if (inb((uint16_t)sport) & WAK_STS)
		debug_exit(7);
	serial_puts("gureum-vmm poweroff: S5 through sleep control port ");
	serial_hex((uint32_t)port);
	serial_puts("\n");
	outb((uint16_t)port, (SLP_TYP_S5 << 2) | SLP_EN);
	debug_exit(1);
}
