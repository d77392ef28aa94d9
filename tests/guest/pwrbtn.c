/* Waits for the ACPI power button as a hardware-reduced OS learns of it, then
 * powers off (PVH entry, paging and interrupts off). From the tables, as
 * Linux would: the DSDT (through the FADT) must declare the power button
 * (EisaId PNP0C0C) and a Generic Event Device (_HID "ACPI0013") with an
 * Interrupt() resource and the OperationRegion GDST its _EVT reads. The
 * payload routes that GSI through the I/O APIC to vector 0x40 (unmasked,
 * interrupts stay disabled, so it only lands in the local APIC's IRR), then
 * polls the GDST register, printing a '.' every 256 polls (so a test can see
 * it make progress or not). When bit 0 (power button) appears it checks
 * that the register read cleared it and that the interrupt arrived, and
 * writes SLP_TYP 5 | SLP_EN to the FADT's sleep control register: gureum-vmm
 * exits 0. Failures:
 *   1  the power-off write did not stop the machine
 *   2  no FADT / DSDT (or a bad checksum)   3  no PNP0C0C device in the DSDT
 *   4  no ACPI0013 device                     5  no OperationRegion GDST in SystemMemory
 *   6  no Interrupt() resource after ACPI0013 (or a GSI beyond 23)
 *   7  the sleep control register is not an 8-bit system I/O port
 *   8  the vector was pending before any event  9  an unknown event bit
 *   10 the interrupt never reached the local APIC  11 the register did not clear on read */
#include "payload.h"
#include "pvh.h"

void payload_main(const struct hvm_start_info *si);

#define FADT_X_DSDT        140
#define FADT_SLEEP_CONTROL 244
#define SLP_TYP_S5         5
#define SLP_EN             0x20
#define IOAPIC             0xFEC00000u
#define LAPIC              0xFEE00000u
#define LAPIC_SVR          0x0F0
#define LAPIC_IRR          0x200
#define VECTOR             0x40

static void mmio_w32(uint32_t a, uint32_t v) { *(volatile uint32_t *)(uintptr_t)a = v; }
static uint32_t mmio_r32(uint32_t a) { return *(volatile uint32_t *)(uintptr_t)a; }

/* The first occurrence of pat (n bytes) in t[from..len), or -1. */
static int find(const uint8_t *t, uint32_t from, uint32_t len, const uint8_t *pat, uint32_t n)
{
	for (uint32_t i = from; i + n <= len; i++) {
		uint32_t k = 0;
		while (k < n && t[i + k] == pat[k])
			k++;
		if (k == n)
			return (int)i;
	}
	return -1;
}

void payload_main(const struct hvm_start_info *si)
{
	const uint8_t *fadt = acpi_table(si, "FACP");
	if (!fadt || u32(fadt + 4) < FADT_SLEEP_CONTROL + 12)
		debug_exit(2);
	const uint8_t *dsdt = ptr(u64(fadt + FADT_X_DSDT));
	if (!sig_is(dsdt, "DSDT") || sum(dsdt, u32(dsdt + 4)) != 0)
		debug_exit(2);
	uint32_t len = u32(dsdt + 4);
	static const uint8_t pwrb[] = { 0x0C, 0x41, 0xD0, 0x0C, 0x0C };   /* DWordPrefix EisaId("PNP0C0C") */
	static const uint8_t ged[] = "ACPI0013";
	static const uint8_t region[] = { 0x5B, 0x80, 'G', 'D', 'S', 'T', 0x00, 0x0C }; /* SystemMemory, DWord offset */
	static const uint8_t irq[] = { 0x89, 0x06, 0x00 };                 /* Extended Interrupt, 6 bytes */
	if (find(dsdt, 36, len, pwrb, sizeof(pwrb)) < 0)
		debug_exit(3);
	int g = find(dsdt, 36, len, ged, sizeof(ged));   /* with its NUL */
	if (g < 0)
		debug_exit(4);
	int r = find(dsdt, (uint32_t)g, len, region, sizeof(region));
	if (r < 0)
		debug_exit(5);
	volatile uint8_t *reg = (volatile uint8_t *)(uintptr_t)u32(dsdt + r + sizeof(region));
	int q = find(dsdt, (uint32_t)g, len, irq, sizeof(irq));
	if (q < 0 || dsdt[q + 4] != 1 || u32(dsdt + q + 5) > 23)
		debug_exit(6);
	uint32_t gsi = u32(dsdt + q + 5);
	const uint8_t *gas = fadt + FADT_SLEEP_CONTROL;
	uint64_t port = u64(gas + 4);
	if (gas[0] != 1 || gas[1] != 8 || port == 0 || port > 0xFFFF)
		debug_exit(7);

	/* The GSI to vector 0x40 on APIC 0: edge, active high, fixed, unmasked. */
	mmio_w32(LAPIC + LAPIC_SVR, 0x1FF);                 /* APIC software-enabled */
	mmio_w32(IOAPIC, 0x10 + 2 * gsi + 1);
	mmio_w32(IOAPIC + 0x10, 0);                         /* destination APIC 0 */
	mmio_w32(IOAPIC, 0x10 + 2 * gsi);
	mmio_w32(IOAPIC + 0x10, VECTOR);
	uint32_t irr = LAPIC + LAPIC_IRR + (VECTOR / 32) * 0x10, bit = 1u << (VECTOR % 32);
	if (mmio_r32(irr) & bit)
		debug_exit(8);
	serial_puts("gureum-vmm pwrbtn: waiting for the power button (GED register ");
	serial_hex((uint32_t)(uintptr_t)reg);
	serial_puts(", GSI ");
	serial_hex(gsi);
	serial_puts(")\n");

	uint8_t ev;
	for (uint32_t polls = 1;; polls++) {
		ev = *reg;
		if (ev)
			break;
		if (polls % 256 == 0)
			serial_puts(".");
	}
	if (ev & ~1u)
		debug_exit(9);
	uint32_t tries = 0;
	while (!(mmio_r32(irr) & bit))
		if (++tries == 100000)
			debug_exit(10);
	if (*reg != 0)
		debug_exit(11);
	serial_puts("\ngureum-vmm pwrbtn: power button pressed, powering off through port ");
	serial_hex((uint32_t)port);
	serial_puts("\n");
	outb((uint16_t)port, (SLP_TYP_S5 << 2) | SLP_EN);
	debug_exit(1);
}
