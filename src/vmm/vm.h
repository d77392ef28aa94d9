/* One KVM virtual machine: /dev/kvm, the VM file descriptor, guest memory
 * slots, the irqchip (KVM's local APICs with our IOAPIC, devices/ioapic.c, or
 * KVM's full irqchip where the split one is missing), and one thread per vCPU
 * running the exit loop. Port I/O goes to a small table of devices (serial, i8042,
 * debug exit), MMIO to a table of windows (virtio-mmio devices), each window
 * with its own lock so concurrent vCPUs never race inside one device;
 * interrupts go in through the IOAPIC (KVM_SIGNAL_MSI; KVM_IRQ_LINE with
 * KVM's IOAPIC). The first
 * vCPU to stop the machine decides the exit status. */
#ifndef GR_VMM_VM_H
#define GR_VMM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "common/error.h"
#include "vmm/guest_mem.h"
#include "vmm/devices/ioapic.h"

/* Exit status of gureum-vmm (documented in src/vmm/README.md). */
enum vm_exit_status {
	VM_EXIT_POWEROFF = 0,      /* guest powered off (or a payload reported success) */
	VM_EXIT_CONFIG = 1,        /* bad configuration or input files */
	VM_EXIT_RESET = 2,         /* guest asked for a reset (i8042 or triple fault handling) */
	VM_EXIT_TRIPLE_FAULT = 3,  /* KVM_EXIT_SHUTDOWN */
	VM_EXIT_INTERNAL = 4,      /* KVM internal error / emulation failure */
	VM_EXIT_VMM_ERROR = 5,     /* an ioctl or host resource failed */
	VM_EXIT_FORCED_STOP = 6,   /* a stop request (control API) the guest did not honour in time */
	VM_EXIT_DEBUG_BASE = 64,   /* 64 + N: a test payload wrote N (1..63) to the debug-exit port */
};

struct vm;

/* Port I/O handler: in (is_write false) fills data, out consumes it. */
typedef void (*vm_pio_fn)(struct vm *vm, void *dev, uint16_t port, bool is_write, uint8_t *data, uint32_t size);

struct vm_pio {
	uint16_t base, len;
	vm_pio_fn fn;
	void *dev;
};

/* MMIO handlers, called with the window's lock held: offset is inside the
 * window and offset + len <= its length; len is 1..8. A read fills all len
 * bytes. */
typedef void (*vm_mmio_read_fn)(void *dev, uint64_t offset, void *data, uint32_t len);
typedef void (*vm_mmio_write_fn)(void *dev, uint64_t offset, const void *data, uint32_t len);

struct vm_mmio {
	uint64_t base, len;
	vm_mmio_read_fn read;
	vm_mmio_write_fn write;
	void *dev;
	pthread_mutex_t lock;           /* serialises this device's register accesses */
};

/* An interrupt source for devices that know nothing of KVM: the device calls
 * vm_irq_edge(&src, level) (a virtio_mmio_irq_fn). */
struct vm_irq_source {
	struct vm *vm;
	uint32_t gsi;
};

#define VM_MAX_VCPUS 255
#define VM_MAX_PIO 16
#define VM_MAX_MMIO 32

struct vm {
	int kvm_fd, vm_fd;
	struct guest_mem *gm;
	unsigned int n_vcpus;
	int vcpu_fds[VM_MAX_VCPUS];
	struct kvm_run *runs[VM_MAX_VCPUS];
	size_t run_size;
	pthread_t threads[VM_MAX_VCPUS];
	struct vm_pio pio[VM_MAX_PIO];
	size_t n_pio;
	struct vm_mmio mmio[VM_MAX_MMIO];
	size_t n_mmio;
	struct kvm_cpuid2 *cpuid;        /* supported CPUID, filtered per vCPU at setup */
	struct kvm_msr_list *msr_list;   /* KVM_GET_MSR_INDEX_LIST */
	uint32_t boot_msrs_skipped;      /* boot MSRs KVM does not support (bit i: entry i of msr.c's table) */
	bool split_irqchip;              /* KVM_CAP_SPLIT_IRQCHIP: ioapic below is the machine's IOAPIC */
	bool eoi_suppression;            /* KVM honours a guest's Suppress EOI Broadcast (vm.c) */
	struct ioapic ioapic;
	/* Stop state: the first stop wins. */
	pthread_mutex_t lock;
	pthread_cond_t stopped_cond;
	bool stopped;
	int exit_status;
	char exit_reason[256];
	uint64_t exit_counts[64];        /* KVM_EXIT_* counters (metrics) */
	/* Pause and stop requests (vm_pause, vm_resume, vm_request_stop), under lock. */
	pthread_cond_t park_cond;        /* vCPU threads parking / leaving, pause waiting for them */
	bool paused;
	bool stopping;                   /* a stop was requested: the forced stop is armed */
	unsigned int vcpus_alive;        /* vCPU threads that have not returned */
	unsigned int vcpus_parked;       /* of those, parked for a pause */
	unsigned int vcpus_started;
	struct timespec stop_deadline;   /* CLOCK_MONOTONIC: when a stop becomes forced */
	struct timespec start_time;      /* CLOCK_MONOTONIC: when the vCPUs started (uptime) */
	void (*power_button)(void *opaque);  /* presses the guest's ACPI power button */
	void *power_button_opaque;
};

/* Which irqchip: AUTO is the split one (KVM_CAP_SPLIT_IRQCHIP: local APICs in
 * KVM, the IOAPIC of devices/ioapic.c at LAYOUT_IOAPIC_BASE) when KVM offers
 * it, else KVM's full irqchip (KVM_CREATE_IRQCHIP); SPLIT fails without it;
 * KERNEL always takes KVM's. There is no PIT either way. */
enum vm_irqchip { VM_IRQCHIP_AUTO, VM_IRQCHIP_SPLIT, VM_IRQCHIP_KERNEL };

/* Opens /dev/kvm, creates the VM (TSS, identity map, irqchip) and maps gm
 * into it. vm_create is vm_create_with_irqchip(..., VM_IRQCHIP_AUTO, ...). */
int vm_create(struct vm *vm, struct guest_mem *gm, unsigned int n_vcpus, struct gr_error *err);
int vm_create_with_irqchip(struct vm *vm, struct guest_mem *gm, unsigned int n_vcpus, enum vm_irqchip irqchip,
			   struct gr_error *err);
void vm_destroy(struct vm *vm);
int vm_add_pio(struct vm *vm, uint16_t base, uint16_t len, vm_pio_fn fn, void *dev, struct gr_error *err);
/* Registers an MMIO window [base, base + len) (no overlap with another, not
 * inside guest RAM). Accesses that do not lie entirely inside one window read
 * as all-ones and are dropped. */
int vm_add_mmio(struct vm *vm, uint64_t base, uint64_t len, vm_mmio_read_fn read, vm_mmio_write_fn write,
		void *dev, struct gr_error *err);
/* The lock held around the handlers of the MMIO window that starts at base
 * (for host-side I/O threads that touch the same device); NULL if none. */
pthread_mutex_t *vm_mmio_lock(struct vm *vm, uint64_t base);
/* Drives IOAPIC input gsi (0..23; level is "asserted"): ours with the split
 * irqchip, KVM's through KVM_IRQ_LINE otherwise; -errno on failure. Safe from
 * any thread. */
int vm_irq_line(struct vm *vm, uint32_t gsi, int level);
/* Edge-triggered, active-high interrupt (what the DSDT declares for virtio-mmio):
 * level true pulses the line (high, then low), false does nothing. opaque is
 * a struct vm_irq_source; the signature is virtio_mmio_irq_fn's. */
void vm_irq_edge(void *opaque, bool level);

/* Creates the vCPUs; vCPU 0 starts at entry in 32-bit protected mode with
 * ebx = params (PVH) or in 64-bit long mode with rsi = params (Linux). The
 * others wait for INIT/SIPI from vCPU 0 (the in-kernel LAPIC handles it).
 * Every vCPU gets the boot MSRs (msr.c's table) that KVM supports; one KVM
 * refuses is an error naming it. */
int vm_setup_vcpus(struct vm *vm, bool long_mode, uint64_t entry, uint64_t params, struct gr_error *err);
/* Runs every vCPU on its own thread until one stops the machine; returns the exit status. */
int vm_run(struct vm *vm);
/* Stops the machine with a status and a reason (first caller wins). */
void vm_stop(struct vm *vm, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* For the control API; safe from any thread other than a vCPU's, while
 * vm_run runs (and after it returned: they then answer -EBUSY).
 *
 * vm_pause: makes every vCPU thread leave KVM_RUN (immediate_exit and the
 * kick signal) and park; returns once none runs guest code (before vm_run,
 * the vCPUs park as they start). -EALREADY when paused, -EBUSY when stopping
 * or stopped. */
int vm_pause(struct vm *vm, struct gr_error *err);
/* Wakes the parked vCPUs. -EALREADY when running, -EBUSY when stopping or stopped. */
int vm_resume(struct vm *vm, struct gr_error *err);
/* Asks the guest to shut down (presses the power button set with
 * vm_set_power_button; a paused VM is resumed first so it can) and arms a
 * forced stop: if the guest has not stopped the machine within timeout_ms,
 * vm_run ends with VM_EXIT_FORCED_STOP (0: at once). -EALREADY when a stop
 * was already requested, -EBUSY when the machine has stopped. */
int vm_request_stop(struct vm *vm, unsigned int timeout_ms, struct gr_error *err);
/* The power button vm_request_stop presses (e.g. the GED's); call before vm_run. */
void vm_set_power_button(struct vm *vm, void (*press)(void *opaque), void *opaque);

enum vm_run_state { VM_STATE_RUNNING, VM_STATE_PAUSED, VM_STATE_STOPPING };
/* The state, and the seconds since the vCPUs started (0 before). */
enum vm_run_state vm_state(struct vm *vm, double *uptime);

#endif
