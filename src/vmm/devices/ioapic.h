/* The I/O APIC, emulated in gureum-vmm for KVM's split irqchip
 * (KVM_CAP_SPLIT_IRQCHIP: the local APICs stay in the kernel, the IOAPIC and
 * its interrupt routing are ours). An IOAPIC of version 0x20 (the ICH's,
 * as QEMU's and Cloud Hypervisor's split-irqchip IOAPICs): the 82093AA's
 * registers plus the EOI register; 24 pins (GSI 0..23), at
 * LAYOUT_IOAPIC_BASE as the MADT says (the MADT has no version field).
 *
 * Registers: IOREGSEL (window offset 0x00) selects an indirect register,
 * IOWIN (0x10) reads or writes it, EOI (0x40, write-only) takes a vector;
 * 32-bit accesses only:
 *   0x00 ID (bits 24..27), 0x01 version (0x00170020: version 0x20, max
 *   redirection entry 23), 0x02 arbitration id (= ID), 0x10 + 2n / 0x11 + 2n
 *   the low / high word of pin n's redirection entry.
 * Anything else reads 0 and ignores writes; reserved and read-only bits
 * (delivery status, remote IRR) keep their value whatever the guest writes.
 *
 * Delivery: an interrupt becomes the MSI the redirection entry describes
 * (Intel SDM vol. 3, 11.11: address 0xFEE00000 | dest << 12 | dest_mode << 2,
 * data vector | delivery_mode << 8 | level-assert << 14 | trigger << 15),
 * sent through ops->send_msi (KVM_SIGNAL_MSI). Fixed and lowest-priority
 * modes need a vector of 16 or more; NMI and INIT are sent edge-triggered;
 * SMI, ExtINT (there is no PIC) and the reserved modes are dropped.
 * Edge pins deliver on a rising input; an edge on a masked pin is lost, as on
 * the 82093AA. Level pins deliver while the input is asserted, unmasked and
 * remote IRR is clear; delivery sets remote IRR, the EOI of that vector
 * clears it and delivers again if the input is still asserted. The EOI comes
 * from the local APIC's broadcast (KVM_EXIT_IOAPIC_EOI: ioapic_eoi) or, from
 * a guest that suppresses EOI broadcasts (directed EOI: SVR bit 12, which
 * KVM offers with x2APIC in CPUID and the split irqchip), as a write of the
 * vector (bits 0..7; 8..31 reserved) to the EOI register. Inputs are logical (asserted or not): the
 * polarity bit is kept for the guest to read but, as in KVM's and QEMU's
 * IOAPICs, does not invert the input (our devices are active high, as the
 * DSDT declares).
 *
 * KVM only reports EOIs of vectors that appear in level-triggered MSI routes
 * among the first 24 GSIs, so the IOAPIC hands ops->set_level_routes the
 * messages of its level-triggered pins (masked ones included: an interrupt in
 * service must still be EOIed) whenever that set changes.
 *
 * Thread safety: every entry point takes the IOAPIC's own lock, so vCPU
 * threads (MMIO, EOI exits, device notifications) and an I/O thread may
 * call in at once. The ops are called with the lock held and must not call
 * back into the IOAPIC. Nothing a guest writes can make it fail; only the
 * ops (the host) can, and those failures are returned or passed to
 * ops->failed. */
#ifndef GR_VMM_DEVICES_IOAPIC_H
#define GR_VMM_DEVICES_IOAPIC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

#define IOAPIC_PINS        24
#define IOAPIC_VERSION     0x20
#define IOAPIC_MMIO_SIZE   0x1000ULL  /* the window registered on the MMIO bus */

/* Window offsets. */
#define IOAPIC_IOREGSEL    0x00
#define IOAPIC_IOWIN       0x10
#define IOAPIC_EOI         0x40       /* write-only: EOI of a vector (version 0x20) */

/* Indirect registers. */
#define IOAPIC_REG_ID      0x00
#define IOAPIC_REG_VERSION 0x01
#define IOAPIC_REG_ARB     0x02
#define IOAPIC_REG_REDTBL  0x10       /* 0x10 + 2 * pin: low word, + 1: high word */

/* Redirection entry fields. */
#define IOAPIC_RTE_VECTOR      0xFFULL
#define IOAPIC_RTE_DELMODE_SHIFT 8
#define IOAPIC_RTE_DELMODE     (7ULL << 8)
#define IOAPIC_RTE_DESTMODE    (1ULL << 11)   /* 1: logical */
#define IOAPIC_RTE_DELIVS      (1ULL << 12)   /* delivery status (read-only, always 0 here) */
#define IOAPIC_RTE_POLARITY    (1ULL << 13)   /* 1: active low */
#define IOAPIC_RTE_REMOTE_IRR  (1ULL << 14)   /* read-only */
#define IOAPIC_RTE_LEVEL       (1ULL << 15)   /* trigger mode, 1: level */
#define IOAPIC_RTE_MASKED      (1ULL << 16)
#define IOAPIC_RTE_DEST_SHIFT  56
/* What the guest can change: vector, delivery mode, destination mode,
 * polarity, trigger mode, mask, destination. Bits 17..55 are reserved. */
#define IOAPIC_RTE_WRITABLE    (0xFF00000000000000ULL | 0x1AFFFULL)

enum ioapic_delivery_mode {
	IOAPIC_DM_FIXED = 0,
	IOAPIC_DM_LOWEST = 1,
	IOAPIC_DM_SMI = 2,
	IOAPIC_DM_NMI = 4,
	IOAPIC_DM_INIT = 5,
	IOAPIC_DM_EXTINT = 7,
};

/* An MSI as the local APICs receive it. */
struct ioapic_msi {
	uint64_t address;
	uint32_t data;
};

/* A level-triggered pin's message, for the EOI routes. */
struct ioapic_route {
	uint32_t pin;
	struct ioapic_msi msi;
};

struct ioapic_ops {
	/* Sends one message: > 0 when a local APIC accepted it, 0 when none
	 * did (no such destination, APIC disabled), -errno when sending failed. */
	int (*send_msi)(void *opaque, const struct ioapic_msi *msi);
	/* Replaces the level-triggered routes (n <= IOAPIC_PINS); 0 or -errno.
	 * May be NULL (then no EOIs are reported and remote IRR stays set until
	 * the guest switches the pin to edge). */
	int (*set_level_routes)(void *opaque, const struct ioapic_route *routes, size_t n);
	/* A host-side failure where no caller can be told (a register write);
	 * what names the operation. May be NULL. */
	void (*failed)(void *opaque, int neg_errno, const char *what);
};

struct ioapic_stats {
	uint64_t delivered;        /* messages a local APIC accepted */
	uint64_t not_accepted;     /* messages no local APIC took */
	uint64_t masked;           /* interrupts not sent: pin masked (edge: lost; level: held) */
	uint64_t undeliverable;    /* not sent: SMI, ExtINT, reserved mode, vector < 16 */
	uint64_t eois;             /* EOIs that cleared a remote IRR (either way) */
	uint64_t eoi_writes;       /* writes to the EOI register */
	uint64_t bad_accesses;     /* odd sizes or offsets, unknown registers */
	uint64_t route_updates;    /* set_level_routes calls */
};

struct ioapic {
	pthread_mutex_t lock;
	uint32_t ioregsel;                      /* bits 0..7 */
	uint32_t id;                            /* the ID register (bits 24..27) */
	uint64_t rte[IOAPIC_PINS];
	uint32_t line;                          /* input asserted, one bit per pin */
	struct ioapic_route routes[IOAPIC_PINS]; /* the level routes last handed to ops */
	size_t n_routes;
	bool routes_valid;                      /* routes[] is what the host has */
	const struct ioapic_ops *ops;
	void *opaque;
	struct ioapic_stats stats;
};

/* Resets to the power-on state: ID 0, every pin masked, edge, vector 0. */
int ioapic_init(struct ioapic *io, const struct ioapic_ops *ops, void *opaque, struct gr_error *err);
void ioapic_destroy(struct ioapic *io);

/* The MMIO window (the vm_mmio_read_fn / vm_mmio_write_fn signatures); dev
 * is the struct ioapic. Only aligned 32-bit accesses to IOREGSEL and IOWIN,
 * and 32-bit writes to EOI, do anything; other reads return 0. A failure to
 * send the interrupt an EOI re-delivers goes to ops->failed. */
void ioapic_mmio_read(void *dev, uint64_t offset, void *data, uint32_t len);
void ioapic_mmio_write(void *dev, uint64_t offset, const void *data, uint32_t len);

/* Sets input pin's level (asserted or not). -EINVAL for a pin beyond 23,
 * -errno when sending failed, 0 otherwise (delivered or not). */
int ioapic_set_irq(struct ioapic *io, uint32_t pin, bool asserted);
/* An edge: asserts then deasserts the pin under one lock hold. */
int ioapic_pulse_irq(struct ioapic *io, uint32_t pin);
/* The guest EOIed vector (KVM_EXIT_IOAPIC_EOI; the EOI register does the
 * same): clears remote IRR of the level pins with that vector and delivers
 * again where the input is still asserted. 0 or -errno when sending failed. */
int ioapic_eoi(struct ioapic *io, uint8_t vector);

/* The message for a redirection entry; false when the entry describes
 * nothing a local APIC can take (see above). */
bool ioapic_rte_to_msi(uint64_t rte, struct ioapic_msi *msi);

/* A copy of the redirection entry of pin (0 beyond 23) and of the counters. */
uint64_t ioapic_get_rte(struct ioapic *io, uint32_t pin);
struct ioapic_stats ioapic_get_stats(struct ioapic *io);

#endif
