/* SMP bring-up (PVH entry): the BSP learns the APIC ids from the MADT (found
 * from the RSDP in the start info), copies the real-mode trampoline
 * (trampoline.S) below 1 MiB and wakes each AP with INIT, SIPI, SIPI through
 * the xAPIC ICR. Each AP enters 32-bit protected mode on its own stack,
 * records its APIC id, counts itself in and halts. The BSP waits, bounded in
 * time (the TSC), until every AP has checked in; the command line says how
 * many CPUs there are ("cpus=N").
 *
 * Failure codes: 1 start info, 2 cpus= missing, 3 no RSDP/XSDT, 4 no MADT,
 * 5 MADT CPU count differs from cpus=, 6 the BSP's APIC id is not in the
 * MADT, 7 an IPI was never delivered, 8 not every AP checked in in time,
 * 9 an AP checked in with an APIC id that the MADT does not list or twice. */
#include "payload.h"
#include "pvh.h"

#define TRAMPOLINE_BASE 0x8000u /* free in src/vmm/layout.h: between the zero page and the page tables */
#define SIPI_VECTOR (TRAMPOLINE_BASE >> 12)

#define APIC_ID   0x020
#define APIC_SVR  0x0F0
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310
#define ICR_INIT  0x00000500u
#define ICR_SIPI  0x00000600u
#define ICR_ASSERT 0x00004000u
#define ICR_PENDING 0x00001000u /* delivery status */

/* Bounds on busy-waits. The wait for the APs is bounded by time (TSC ticks:
 * 2^33 is about 2.5 to 8 s at 1 to 3.5 GHz), not by a loop count, since under
 * PVM this code is emulated (about 370,000 iterations of the wait loop a
 * second) while on hardware a loop count would be over in a millisecond;
 * WAIT_SPIN is only a backstop should the TSC not advance. Each ends at once
 * on success (about 10 ms for 4 CPUs here). */
#define IPI_SPIN 100000
#define SETTLE_SPIN 200
#define WAIT_TSC (1ULL << 33)
#define WAIT_SPIN 50000000

void payload_main(const struct hvm_start_info *si);
void ap_main(void);

extern const uint8_t trampoline_start[], trampoline_end[];

static volatile uint32_t lapic_base = 0xFEE00000u;
static volatile uint32_t ap_count;   /* APs that checked in */
static volatile uint8_t seen[256];   /* per APIC id: 1 = listed in the MADT, 2 = checked in */
static volatile uint32_t bad_ap;     /* an AP whose APIC id was unexpected or came twice */

static inline uint32_t lapic_read(uint32_t reg) { return *(volatile uint32_t *)(uintptr_t)(lapic_base + reg); }
static inline void lapic_write(uint32_t reg, uint32_t v) { *(volatile uint32_t *)(uintptr_t)(lapic_base + reg) = v; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* Runs on each AP, in protected mode on its own stack (trampoline.S). */
void ap_main(void)
{
	uint32_t id = lapic_read(APIC_ID) >> 24;
	if (seen[id] != 1)
		bad_ap = 1;
	seen[id] = 2;
	__atomic_fetch_add(&ap_count, 1, __ATOMIC_SEQ_CST);
}

/* The MADT from the start info's RSDP; NULL if there is none. */
static const uint8_t *find_madt(const struct hvm_start_info *si)
{
	if (!acpi_xsdt(si))
		debug_exit(3);
	return acpi_table(si, "APIC");
}

static void send_ipi(uint8_t apic_id, uint32_t icr)
{
	lapic_write(APIC_ICR_HI, (uint32_t)apic_id << 24);
	lapic_write(APIC_ICR_LO, icr);
	for (int i = 0; lapic_read(APIC_ICR_LO) & ICR_PENDING; i++)
		if (i == IPI_SPIN)
			debug_exit(7);
}

static void settle(void)
{
	for (int i = 0; i < SETTLE_SPIN; i++)
		cpu_relax();
}

void payload_main(const struct hvm_start_info *si)
{
	if (si->magic != 0x336ec578)
		debug_exit(1);
	int cpus = cmdline_int((const char *)(uintptr_t)si->cmdline_paddr, "cpus");
	if (cpus < 1)
		debug_exit(2);

	/* The processors the firmware (the VMM) describes. */
	const uint8_t *madt = find_madt(si);
	if (!madt)
		debug_exit(4);
	lapic_base = u32(madt + 36);
	uint8_t ids[256];
	int n = 0;
	for (uint32_t e = 44; e + 2 <= u32(madt + 4) && madt[e + 1] >= 2; e += madt[e + 1])
		if (madt[e] == 0 && (u32(madt + e + 4) & 1) && n < 256)
			ids[n++] = madt[e + 3];
	if (n != cpus)
		debug_exit(5);
	uint8_t bsp = (uint8_t)(lapic_read(APIC_ID) >> 24);
	int bsp_listed = 0;
	for (int i = 0; i < n; i++) {
		if (ids[i] == bsp)
			bsp_listed = 1;
		else
			seen[ids[i]] = 1;
	}
	if (!bsp_listed)
		debug_exit(6);

	/* The trampoline below 1 MiB, then INIT, SIPI, SIPI to each AP. */
	uint8_t *dst = (uint8_t *)(uintptr_t)TRAMPOLINE_BASE;
	for (const uint8_t *s = trampoline_start; s < trampoline_end; s++)
		*dst++ = *s;
	lapic_write(APIC_SVR, 0x1FF); /* software-enable the local APIC, spurious vector 0xFF */
	for (int i = 0; i < n; i++) {
		if (ids[i] == bsp)
			continue;
		send_ipi(ids[i], ICR_INIT | ICR_ASSERT);
		settle();
		send_ipi(ids[i], ICR_SIPI | ICR_ASSERT | SIPI_VECTOR);
		settle();
		send_ipi(ids[i], ICR_SIPI | ICR_ASSERT | SIPI_VECTOR);
	}

	/* Wait for every AP to count itself in. */
	uint32_t want = (uint32_t)(cpus - 1);
	uint64_t t0 = rdtsc();
	for (int i = 0; __atomic_load_n(&ap_count, __ATOMIC_SEQ_CST) != want; i++) {
		if (i == WAIT_SPIN || rdtsc() - t0 > WAIT_TSC) {
			serial_puts("smp: APs checked in: ");
			serial_hex(ap_count);
			serial_puts("\n");
			debug_exit(8);
		}
		cpu_relax();
	}
	if (bad_ap)
		debug_exit(9);
	serial_puts("smp: ");
	serial_hex((uint32_t)cpus);
	serial_puts(" CPUs up\n");
	debug_exit(0);
}
