/* Interrupt delivery through the I/O APIC, from inside the guest (PVH entry,
 * 32-bit protected mode, paging off). The payload sets up an IDT, enables its
 * local APIC (spurious vector register) and routes the virtio-rng device's
 * GSI (5 + its window index; 5 with only --rng) through an IOAPIC redirection
 * entry to a vector on its own APIC id, then makes rng requests and halts
 * until the handler has run (hlt with interrupts on, a local APIC timer as
 * the watchdog):
 *   - the IOAPIC registers: version 0x11 (KVM's) or 0x20 (gureum-vmm's, with
 *     the EOI register) with 24 pins, ID and arbitration 0 (as the MADT
 *     says), every pin masked at reset, an entry reads back
 *   - edge-triggered: one interrupt per request, EOI clears the ISR bit
 *   - masked: nothing arrives, not even once unmasked (edges are not held)
 *   - level-triggered: remote IRR is set while the handler runs (when the
 *     vector is in service: PVM's local APIC EOIs at delivery) and clear
 *     after its EOI, and a second request is delivered again (so the EOI
 *     reached the IOAPIC: with gureum-vmm's, through KVM_EXIT_IOAPIC_EOI)
 *   - a destination APIC id nobody has: nothing arrives, the VMM carries on
 *   - the boot MSRs gureum-vmm set: MISC_ENABLE (fast strings), MTRRdefType WB
 * With "irqchip=split" on the command line (gureum-vmm's own IOAPIC) it also
 * checks what KVM's in-kernel IOAPIC does differently: reserved bits of
 * entries and the ID register read as 0, unknown registers read 0, and an
 * entry with a reserved delivery mode delivers nothing; the version is 0x20;
 * and, where the local APIC offers Suppress EOI Broadcast (LVR bit 24: x2APIC
 * in CPUID with the split irqchip), a level interrupt with it on: when KVM
 * honours it (remote IRR still set after the local APIC's EOI), an EOI
 * register write of another vector changes nothing, one of the vector clears
 * remote IRR, and the pin delivers again.
 * Failures report N through the debug-exit port (exit status 64 + N):
 *   1 start info   2 MISC_ENABLE   3 MTRRdefType   4 IOAPIC version
 *   5 IOAPIC ID / arbitration   6 redirection entry not masked at reset
 *   7 reserved entry bits kept   8 reserved ID bits kept or unknown register not 0
 *   9 local APIC id or enable   10 no virtio-rng   11 rng setup
 *   12 entry does not read back   13 no edge interrupt in time
 *   14 rng request not completed (used length)   15 wrong interrupt count
 *   16 masked pin delivered   17 masked edge delivered once unmasked
 *   18 no level interrupt in time   19 remote IRR clear in the level handler
 *   20 remote IRR still set after EOI   21 level pin not delivered again
 *   22 delivered to an APIC id nobody has   23 reserved delivery mode delivered
 *   24 ISR bit still set after EOI   25 an exception or unexpected vector
 *   26 version not 0x20 (strict)   27 Suppress EOI Broadcast bit not kept
 *   28 EOI register: another vector cleared remote IRR
 *   29 EOI register did not clear remote IRR
 *   30 level pin not delivered again after the EOI register */
#include "payload.h"
#include "pvh.h"
#include "virtio_drv.h"

void payload_main(const struct hvm_start_info *si);

#define IOAPIC_BASE 0xFEC00000u
#define LAPIC_BASE  0xFEE00000u

#define LAPIC_ID        0x020
#define LAPIC_VER       0x030
#define LAPIC_TPR       0x080
#define LAPIC_EOI       0x0B0
#define LAPIC_SVR       0x0F0
#define LAPIC_ISR       0x100
#define LAPIC_IRR       0x200
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV 0x3E0

#define V_EDGE     0x30
#define V_LEVEL    0x31
#define V_TIMER    0x40
#define V_SPURIOUS 0xFF

#define RTE_LEVEL  (1u << 15)
#define RTE_MASKED (1u << 16)
#define RTE_REMOTE_IRR (1u << 14)

#define LVR_DIRECTED_EOI  (1u << 24)   /* Suppress EOI Broadcast available */
#define SVR_SUPPRESS_EOI  (1u << 12)

/* The local APIC timer counts the 1 GHz bus clock KVM emulates (divide by 1). */
#define WAIT_DELIVERY 1000000000u   /* 1 s: an interrupt that should come */
#define WAIT_NOTHING  20000000u     /* 20 ms: an interrupt that should not */

static volatile uint32_t edge_count, level_count, timer_fired;
static volatile uint32_t level_rte_in_handler, level_isr_in_handler;
static struct vdev rng;
static struct ring rng_ring;
static uint8_t rng_buf[16];
static uint64_t idt[256] __attribute__((aligned(8)));
static uint32_t rng_pin;

static uint32_t lapic_read(uint32_t reg) { return *(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg); }
static void lapic_write(uint32_t reg, uint32_t v) { *(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg) = v; }

static uint32_t ioapic_read(uint32_t index)
{
	*(volatile uint32_t *)(uintptr_t)IOAPIC_BASE = index;
	return *(volatile uint32_t *)(uintptr_t)(IOAPIC_BASE + 0x10);
}

static void ioapic_write(uint32_t index, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)IOAPIC_BASE = index;
	*(volatile uint32_t *)(uintptr_t)(IOAPIC_BASE + 0x10) = v;
}

/* The EOI register of a version 0x20 IOAPIC (window offset 0x40). */
static void ioapic_eoi(uint32_t vector)
{
	*(volatile uint32_t *)(uintptr_t)(IOAPIC_BASE + 0x40) = vector;
}

static void rte_set(uint32_t pin, uint32_t dest, uint32_t low)
{
	ioapic_write(0x10 + 2 * pin, RTE_MASKED); /* masked while the halves disagree */
	ioapic_write(0x11 + 2 * pin, dest << 24);
	ioapic_write(0x10 + 2 * pin, low);
}

static uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return (uint64_t)hi << 32 | lo;
}

static __attribute__((noreturn)) void fail(uint8_t code, const char *what, uint32_t value)
{
	serial_puts("gureum-vmm irq: FAILED: ");
	serial_puts(what);
	serial_puts(" ");
	serial_hex(value);
	serial_puts("\n");
	debug_exit(code);
}

/* ---- interrupt handlers (called from the stubs below) ---- */

void on_edge(void);
void on_level(void);
void on_timer(void);

static void ack_device(void)
{
	wr(&rng, R_INT_ACK, rd(&rng, R_INT_STATUS));
}

void on_edge(void)
{
	edge_count++;
	ack_device();
	lapic_write(LAPIC_EOI, 0);
}

void on_level(void)
{
	level_isr_in_handler = lapic_read(LAPIC_ISR + (V_LEVEL / 32) * 0x10) >> (V_LEVEL % 32) & 1;
	level_rte_in_handler = ioapic_read(0x10 + 2 * rng_pin);
	level_count++;
	ack_device();
	lapic_write(LAPIC_EOI, 0); /* with gureum-vmm's IOAPIC: KVM_EXIT_IOAPIC_EOI clears remote IRR */
}

void on_timer(void)
{
	timer_fired = 1;
	lapic_write(LAPIC_EOI, 0);
}

void on_exception(uint32_t vector)
{
	fail(25, "exception, vector", vector);
}

/* The stubs. A handler never returns with iret: PVM's instruction emulator,
 * which runs this guest's kernel-mode code, cannot emulate iret in protected
 * mode ("KVM internal error ... emulation failure"). Interrupts only arrive
 * inside halt_until_interrupt (sti; hlt), so each handler instead goes back
 * to where that function was called, on its saved stack, with interrupts off
 * (the interrupt gate cleared IF). Exceptions report their vector. */
void on_exception(uint32_t vector);
uint32_t wait_esp;
__asm__(".text\n"
	".globl irq_edge_stub, irq_level_stub, irq_timer_stub, irq_spurious_stub, halt_until_interrupt\n"
	"halt_until_interrupt:\n"
	"\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"
	"\tmovl %esp, wait_esp\n"
	"1:\tsti\n\thlt\n\tcli\n\tjmp 1b\n"  /* woken without an interrupt: halt again */
	"irq_resume:\n"
	"\tmovl wait_esp, %esp\n"
	"\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n"
	"\tret\n"
	"irq_edge_stub:\n\tcld\n\tcall on_edge\n\tjmp irq_resume\n"
	"irq_level_stub:\n\tcld\n\tcall on_level\n\tjmp irq_resume\n"
	"irq_timer_stub:\n\tcld\n\tcall on_timer\n\tjmp irq_resume\n"
	"irq_spurious_stub:\n\tjmp irq_resume\n"     /* no EOI for the spurious vector */
	".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"exc_stub_\\v:\n\tcld\n\tpushl $\\v\n\tcall on_exception\n"
	".endr\n"
	".section .rodata\n"
	".balign 4\n"
	"exc_stubs:\n"
	".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"\t.long exc_stub_\\v\n"
	".endr\n"
	".text\n");
extern const char irq_edge_stub[], irq_level_stub[], irq_timer_stub[], irq_spurious_stub[];
extern const char *const exc_stubs[32];
void halt_until_interrupt(void);

static void set_gate(unsigned v, const char *handler, uint16_t cs)
{
	uint32_t h = (uint32_t)(uintptr_t)handler;
	idt[v] = (uint64_t)((h & 0xFFFF0000u) | 0x8E00u) << 32 | (uint32_t)cs << 16 | (h & 0xFFFFu);
}

static void setup_idt(void)
{
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	for (unsigned v = 0; v < 32; v++)
		set_gate(v, exc_stubs[v], cs);
	set_gate(V_EDGE, irq_edge_stub, cs);
	set_gate(V_LEVEL, irq_level_stub, cs);
	set_gate(V_TIMER, irq_timer_stub, cs);
	set_gate(V_SPURIOUS, irq_spurious_stub, cs);
	/* Every other vector is not present: #NP, an exception, reports 25. */
	struct __attribute__((packed)) { uint16_t limit; uint32_t base; } d = { sizeof(idt) - 1, (uint32_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(d));
}

/* Halts with interrupts on until *count reaches target or the timer (ticks)
 * fires; interrupts are off otherwise. 1 when the count was reached. */
static int wait_for(volatile uint32_t *count, uint32_t target, uint32_t ticks)
{
	timer_fired = 0;
	lapic_write(LAPIC_TIMER_INIT, ticks);
	while (*count < target && !timer_fired)
		halt_until_interrupt();
	lapic_write(LAPIC_TIMER_INIT, 0);
	return *count >= target;
}

/* One rng request, polled to completion (interrupts off): the used length. */
static int rng_request(void)
{
	vdrv_set_desc(rng.q.r, 0, rng_buf, sizeof(rng_buf), D_WRITE);
	vdrv_post(&rng, 1);
	return vdrv_poll(&rng);
}

static void expect_request_done(int len)
{
	if (len != (int)sizeof(rng_buf))
		fail(14, "rng request: used length", (uint32_t)len);
}

static int lapic_bit(uint32_t base, unsigned v)
{
	return (lapic_read(base + (v / 32) * 0x10) >> (v % 32)) & 1;
}

static void check_msrs(void)
{
	uint32_t a = 1, b, c = 0, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	uint64_t misc = rdmsr(0x1A0);
	/* FAST_STRING (KVM resets it to 0). gureum-vmm also sets BTS and PEBS
	 * unavailable (bits 11, 12), but PVM hides those from the guest's rdmsr. */
	if (!(misc & 1))
		fail(2, "IA32_MISC_ENABLE without FAST_STRING", (uint32_t)misc);
	if ((d & (1u << 12)) && rdmsr(0x2FF) != 0x806)
		fail(3, "IA32_MTRR_DEF_TYPE", (uint32_t)rdmsr(0x2FF));
}

static void check_ioapic_registers(int strict)
{
	uint32_t v = ioapic_read(0x01);
	if (v != 0x00170011u && v != 0x00170020u)
		fail(4, "IOAPIC version register", v);
	if (ioapic_read(0x00) != 0 || ioapic_read(0x02) != 0)
		fail(5, "IOAPIC ID / arbitration (MADT: ID 0)", ioapic_read(0x00));
	for (uint32_t pin = 0; pin < 24; pin++)
		if (ioapic_read(0x10 + 2 * pin) != RTE_MASKED || ioapic_read(0x11 + 2 * pin) != 0)
			fail(6, "redirection entry not masked at reset, pin", pin);
	if (!strict)
		return;
	/* pin 23 is unused here */
	ioapic_write(0x10 + 2 * 23, 0xFFFFFFFFu);
	ioapic_write(0x11 + 2 * 23, 0xFFFFFFFFu);
	if (ioapic_read(0x10 + 2 * 23) != 0x0001AFFFu || ioapic_read(0x11 + 2 * 23) != 0xFF000000u)
		fail(7, "reserved / read-only entry bits kept", ioapic_read(0x10 + 2 * 23));
	rte_set(23, 0, RTE_MASKED);
	ioapic_write(0x00, 0xFFFFFFFFu);
	v = ioapic_read(0x00);
	ioapic_write(0x00, 0);
	if (v != 0x0F000000u)
		fail(8, "IOAPIC ID: reserved bits kept", v);
	if (ioapic_read(0x40) != 0 || ioapic_read(0x03) != 0)
		fail(8, "unknown IOAPIC register not 0", ioapic_read(0x40));
	v = ioapic_read(0x01);
	if (v != 0x00170020u)
		fail(26, "IOAPIC version not 0x20 (EOI register)", v);
}

/* Directed EOI: with Suppress EOI Broadcast on, the local APIC's EOI of a
 * level interrupt should not reach the IOAPIC; the guest ends it at the
 * IOAPIC's EOI register. The pin's entry is level, vector V_LEVEL. */
static void check_directed_eoi(uint32_t apic_id)
{
	if (!(lapic_read(LAPIC_VER) & LVR_DIRECTED_EOI)) {
		serial_puts("gureum-vmm irq: no Suppress EOI Broadcast offered (LVR bit 24 clear)\n");
		return;
	}
	lapic_write(LAPIC_SVR, 0x100 | V_SPURIOUS | SVR_SUPPRESS_EOI);
	if (!(lapic_read(LAPIC_SVR) & SVR_SUPPRESS_EOI))
		fail(27, "Suppress EOI Broadcast bit not kept, SVR", lapic_read(LAPIC_SVR));
	rte_set(rng_pin, apic_id, V_LEVEL | RTE_LEVEL);
	uint32_t seen = level_count;
	expect_request_done(rng_request());
	if (!wait_for(&level_count, seen + 1, WAIT_DELIVERY))
		fail(18, "no level interrupt (directed EOI)", rng_pin);
	if (ioapic_read(0x10 + 2 * rng_pin) & RTE_REMOTE_IRR) {
		/* suppressed: in service at the IOAPIC until its EOI register says otherwise */
		ioapic_eoi(V_LEVEL + 1);
		ioapic_eoi(V_LEVEL << 8);
		if (!(ioapic_read(0x10 + 2 * rng_pin) & RTE_REMOTE_IRR))
			fail(28, "EOI register: another vector cleared remote IRR", ioapic_read(0x10 + 2 * rng_pin));
		ioapic_eoi(V_LEVEL);
		if (ioapic_read(0x10 + 2 * rng_pin) & RTE_REMOTE_IRR)
			fail(29, "EOI register did not clear remote IRR", ioapic_read(0x10 + 2 * rng_pin));
		expect_request_done(rng_request());
		if (!wait_for(&level_count, seen + 2, WAIT_DELIVERY))
			fail(30, "level pin not delivered again after the EOI register", level_count);
		ioapic_eoi(V_LEVEL);
		serial_puts("gureum-vmm irq: directed EOI through the IOAPIC's EOI register\n");
	} else {
		/* KVM's default: it offers the bit but still broadcasts the EOI */
		serial_puts("gureum-vmm irq: Suppress EOI Broadcast on, KVM still broadcast the EOI\n");
	}
	if (ioapic_read(0x10 + 2 * rng_pin) & RTE_REMOTE_IRR)
		fail(29, "remote IRR still set after the EOI register", ioapic_read(0x10 + 2 * rng_pin));
	lapic_write(LAPIC_SVR, 0x100 | V_SPURIOUS);
}

void payload_main(const struct hvm_start_info *si)
{
	if (si->magic != HVM_START_MAGIC)
		debug_exit(1);
	const char *cmd = (const char *)(uintptr_t)si->cmdline_paddr;
	int strict = cmdline_has(cmd, "irqchip=split");
	check_msrs();
	check_ioapic_registers(strict);

	/* The local APIC: enabled, spurious vector 0xFF, all priorities, a one-shot timer. */
	lapic_write(LAPIC_SVR, 0x100 | V_SPURIOUS);
	lapic_write(LAPIC_TPR, 0);
	uint32_t apic_id = lapic_read(LAPIC_ID) >> 24;
	if (!(lapic_read(LAPIC_SVR) & 0x100) || apic_id != 0)
		fail(9, "local APIC enable / id", lapic_read(LAPIC_ID));
	lapic_write(LAPIC_TIMER_DIV, 0xB);
	lapic_write(LAPIC_LVT_TIMER, V_TIMER);
	setup_idt();

	rng.base = vdrv_probe(4);
	if (!rng.base)
		fail(10, "no virtio-rng device", 0);
	rng_pin = vdrv_gsi(rng.base);
	uint32_t lo;
	int s = vdrv_setup(&rng, &rng_ring, 0, &lo);
	if (s)
		fail(11, "rng setup step", (uint32_t)s);

	/* Edge-triggered, fixed, physical destination: our APIC id. */
	rte_set(rng_pin, apic_id, V_EDGE);
	if (ioapic_read(0x10 + 2 * rng_pin) != V_EDGE || ioapic_read(0x11 + 2 * rng_pin) != apic_id << 24)
		fail(12, "redirection entry read back", ioapic_read(0x10 + 2 * rng_pin));
	expect_request_done(rng_request());
	if (!wait_for(&edge_count, 1, WAIT_DELIVERY))
		fail(13, "no edge interrupt from the rng's GSI", rng_pin);
	if (edge_count != 1 || level_count != 0)
		fail(15, "interrupt count (edge)", edge_count);
	if (lapic_bit(LAPIC_ISR, V_EDGE))
		fail(24, "ISR bit set after EOI, vector", V_EDGE);

	/* Masked: the request completes, no interrupt, not even after unmasking. */
	rte_set(rng_pin, apic_id, V_EDGE | RTE_MASKED);
	expect_request_done(rng_request());
	if (wait_for(&edge_count, 2, WAIT_NOTHING) || lapic_bit(LAPIC_IRR, V_EDGE))
		fail(16, "masked pin delivered", edge_count);
	rte_set(rng_pin, apic_id, V_EDGE);
	if (wait_for(&edge_count, 2, WAIT_NOTHING))
		fail(17, "edge on a masked pin delivered once unmasked", edge_count);
	ack_device();

	/* Level-triggered: remote IRR while in service, cleared by the EOI. */
	rte_set(rng_pin, apic_id, V_LEVEL | RTE_LEVEL);
	expect_request_done(rng_request());
	if (!wait_for(&level_count, 1, WAIT_DELIVERY))
		fail(18, "no level interrupt", rng_pin);
	/* In service (ISR bit set), remote IRR must be set. Under PVM the host's
	 * local APIC has EOIed the vector by the time the handler runs (ISR
	 * clear, the EOI exit already taken), so there is nothing in service to
	 * look at; the second request below still proves the EOI cleared it. */
	if (level_isr_in_handler && !(level_rte_in_handler & RTE_REMOTE_IRR))
		fail(19, "remote IRR clear while in service", level_rte_in_handler);
	if (!level_isr_in_handler)
		serial_puts("gureum-vmm irq: the vector was EOIed at delivery (PVM): remote IRR not observable in service\n");
	if (ioapic_read(0x10 + 2 * rng_pin) & RTE_REMOTE_IRR)
		fail(20, "remote IRR still set after EOI", ioapic_read(0x10 + 2 * rng_pin));
	expect_request_done(rng_request());
	if (!wait_for(&level_count, 2, WAIT_DELIVERY))
		fail(21, "level pin not delivered again after EOI", level_count);
	if (edge_count != 1 || level_count != 2 || lapic_bit(LAPIC_ISR, V_LEVEL))
		fail(15, "interrupt count (level) or ISR", level_count);

	/* Nobody has APIC id 0x7F: nothing arrives, the VMM keeps running. */
	rte_set(rng_pin, 0x7F, V_EDGE);
	expect_request_done(rng_request());
	if (wait_for(&edge_count, 2, WAIT_NOTHING))
		fail(22, "delivered to a missing APIC id", edge_count);
	ack_device();
	if (strict) {
		/* Delivery mode 3 is reserved: dropped. */
		rte_set(rng_pin, apic_id, V_EDGE | 3u << 8);
		expect_request_done(rng_request());
		if (wait_for(&edge_count, 2, WAIT_NOTHING))
			fail(23, "reserved delivery mode delivered", edge_count);
		ack_device();
		check_directed_eoi(apic_id);
	}
	rte_set(rng_pin, 0, RTE_MASKED);
	serial_puts("gureum-vmm irq: ok\n");
	debug_exit(0);
}
