#include "vm.h"
#include "layout.h"
#include "cpuid.h"
#include "msr.h"
#include "common/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define KVM_TSS_ADDR 0xFFFBD000ULL
#define KVM_IDENTITY_MAP_ADDR 0xFFFBC000ULL
#define KICK_SIGNAL SIGUSR1

static int kvm_ioctl_err(struct gr_error *err, const char *what)
{
	return gr_error_sys(err, errno, "KVM: %s", what);
}

static int vm_get_cpuid(struct vm *vm, struct gr_error *err)
{
	for (int n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)n * sizeof(struct kvm_cpuid_entry2));
		if (!c)
			return gr_error_set(err, ENOMEM, "out of memory");
		c->nent = (uint32_t)n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			vm->cpuid = c;
			return 0;
		}
		int e = errno;
		free(c);
		if (e != E2BIG)
			return gr_error_sys(err, e, "KVM: KVM_GET_SUPPORTED_CPUID");
	}
	return gr_error_set(err, E2BIG, "KVM: KVM_GET_SUPPORTED_CPUID: too many entries");
}

/* ---- the irqchip ---- */

/* KVM_SIGNAL_MSI: > 0 delivered, 0 no local APIC took it. Kernels before 4.20
 * answer -1 with EPERM when no destination matched: the guest's doing, not
 * an error. */
static int vm_ioapic_send_msi(void *opaque, const struct ioapic_msi *m)
{
	struct vm *vm = opaque;
	struct kvm_msi msi = { .address_lo = (uint32_t)m->address, .address_hi = (uint32_t)(m->address >> 32),
			       .data = m->data };
	int r = ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi);
	if (r < 0)
		return errno == EPERM ? 0 : -errno;
	return r;
}

/* The level-triggered pins as MSI routes on GSIs 0..23 (the ones the split
 * irqchip reserves), so that KVM reports their EOIs (KVM_EXIT_IOAPIC_EOI). */
static int vm_ioapic_set_level_routes(void *opaque, const struct ioapic_route *routes, size_t n)
{
	struct vm *vm = opaque;
	union {
		struct kvm_irq_routing r;
		uint8_t bytes[sizeof(struct kvm_irq_routing) + IOAPIC_PINS * sizeof(struct kvm_irq_routing_entry)];
	} t;
	memset(&t, 0, sizeof(t));
	if (n > IOAPIC_PINS)
		return -EINVAL;
	t.r.nr = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		struct kvm_irq_routing_entry *e = &t.r.entries[i];
		e->gsi = routes[i].pin;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)routes[i].msi.address;
		e->u.msi.address_hi = (uint32_t)(routes[i].msi.address >> 32);
		e->u.msi.data = routes[i].msi.data;
	}
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, &t.r) < 0)
		return -errno;
	return 0;
}

static void vm_ioapic_failed(void *opaque, int neg_errno, const char *what)
{
	vm_stop(opaque, VM_EXIT_VMM_ERROR, "I/O APIC: %s: %s", what, strerror(-neg_errno));
}

static const struct ioapic_ops vm_ioapic_ops = {
	.send_msi = vm_ioapic_send_msi,
	.set_level_routes = vm_ioapic_set_level_routes,
	.failed = vm_ioapic_failed,
};

/* KVM_CAP_X2APIC_API's flag (bit 2) that makes KVM honour a guest's Suppress
 * EOI Broadcast (KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST; not in older headers). */
#define VM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST (1ULL << 2)

/* Suppress EOI Broadcast (directed EOI, SVR bit 12): KVM offers it to guests
 * with x2APIC in CPUID when the IOAPIC is not KVM's, but by default still
 * broadcasts the EOIs of a guest that turns it on (KVM_EXIT_IOAPIC_EOI), so
 * the IOAPIC ends a level interrupt at the local APIC's EOI, before the guest
 * asks it to. Our IOAPIC has the EOI register the guest then writes, so where
 * KVM lets us (kernels with the fix report the flag on the VM once the split
 * irqchip is on) we ask for real suppression, as on hardware. */
static int vm_enable_eoi_suppression(struct vm *vm, struct gr_error *err)
{
	int flags = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X2APIC_API);
	if (flags <= 0 || !((unsigned)flags & VM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST))
		return 0;
	struct kvm_enable_cap cap = { .cap = KVM_CAP_X2APIC_API, .args = { VM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST } };
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return kvm_ioctl_err(err, "KVM_ENABLE_CAP(KVM_CAP_X2APIC_API, ENABLE_SUPPRESS_EOI_BROADCAST)");
	vm->eoi_suppression = true;
	return 0;
}

/* The split irqchip (local APICs in KVM, our IOAPIC on the MMIO bus) when KVM
 * has it and mode allows; otherwise KVM's full irqchip (LAPICs, IOAPIC, PIC). */
static int vm_create_irqchip(struct vm *vm, enum vm_irqchip mode, struct gr_error *err)
{
	if (mode != VM_IRQCHIP_KERNEL) {
		int have = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SPLIT_IRQCHIP);
		struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { IOAPIC_PINS } };
		if (have > 0 && ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0) {
			int r = ioapic_init(&vm->ioapic, &vm_ioapic_ops, vm, err);
			if (r < 0)
				return r;
			vm->split_irqchip = true;
			if ((r = vm_enable_eoi_suppression(vm, err)) < 0)
				return r;
			return vm_add_mmio(vm, LAYOUT_IOAPIC_BASE, IOAPIC_MMIO_SIZE, ioapic_mmio_read, ioapic_mmio_write,
					   &vm->ioapic, err);
		}
		if (mode == VM_IRQCHIP_SPLIT)
			return have > 0 ? gr_error_sys(err, errno, "KVM: KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP, %d)", IOAPIC_PINS)
					: gr_error_set(err, ENOTSUP, "KVM: no split irqchip (KVM_CAP_SPLIT_IRQCHIP) on this host");
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return kvm_ioctl_err(err, "KVM_CREATE_IRQCHIP");
	/* GSIs 0..23 to KVM's IOAPIC only. The machine has no 8259 PIC
	 * (hardware-reduced ACPI, no PCAT_COMPAT in the MADT), but KVM's default
	 * routes GSIs 0..15 to its PIC as well, whose never-programmed output
	 * reaches vCPU 0 through LINT0 (ExtINT after reset) as vectors 0..15:
	 * exceptions, to a guest that uses the IOAPIC. */
	union {
		struct kvm_irq_routing r;
		uint8_t bytes[sizeof(struct kvm_irq_routing) + IOAPIC_PINS * sizeof(struct kvm_irq_routing_entry)];
	} t;
	memset(&t, 0, sizeof(t));
	t.r.nr = IOAPIC_PINS;
	for (uint32_t i = 0; i < IOAPIC_PINS; i++)
		t.r.entries[i] = (struct kvm_irq_routing_entry){ .gsi = i, .type = KVM_IRQ_ROUTING_IRQCHIP,
								 .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = i } };
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, &t.r) < 0)
		return kvm_ioctl_err(err, "KVM_SET_GSI_ROUTING (GSIs 0..23 to the IOAPIC)");
	return 0;
}

int vm_create(struct vm *vm, struct guest_mem *gm, unsigned int n_vcpus, struct gr_error *err)
{
	return vm_create_with_irqchip(vm, gm, n_vcpus, VM_IRQCHIP_AUTO, err);
}

int vm_create_with_irqchip(struct vm *vm, struct guest_mem *gm, unsigned int n_vcpus, enum vm_irqchip irqchip,
			   struct gr_error *err)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	for (unsigned i = 0; i < VM_MAX_VCPUS; i++)
		vm->vcpu_fds[i] = -1;
	pthread_mutex_init(&vm->lock, NULL);
	/* CLOCK_MONOTONIC: the forced stop's deadline must not move with the wall clock. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->stopped_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&vm->park_cond, NULL);
	vm->gm = gm;
	if (n_vcpus < 1 || n_vcpus > VM_MAX_VCPUS)
		return gr_error_set(err, EINVAL, "cpus: %u is out of range (1 to %d)", n_vcpus, VM_MAX_VCPUS);
	vm->n_vcpus = n_vcpus;
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return gr_error_sys(err, errno, "cannot open /dev/kvm (is KVM available and are you allowed to use it?)");
	int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION)
		return gr_error_set(err, ENOTSUP, "KVM: API version %d, need %d", api, KVM_API_VERSION);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return kvm_ioctl_err(err, "KVM_CREATE_VM");
	(void)fcntl(vm->vm_fd, F_SETFD, FD_CLOEXEC);
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		return kvm_ioctl_err(err, "KVM_SET_TSS_ADDR");
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return kvm_ioctl_err(err, "KVM_SET_IDENTITY_MAP_ADDR");
	int r = vm_create_irqchip(vm, irqchip, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < gm->n_regions; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = (uint32_t)i, .guest_phys_addr = gm->regions[i].gpa,
			.memory_size = gm->regions[i].size, .userspace_addr = (uintptr_t)gm->regions[i].host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return kvm_ioctl_err(err, "KVM_SET_USER_MEMORY_REGION");
	}
	int run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return kvm_ioctl_err(err, "KVM_GET_VCPU_MMAP_SIZE");
	vm->run_size = (size_t)run_size;
	return vm_get_cpuid(vm, err);
}

void vm_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		if (vm->runs[i])
			munmap(vm->runs[i], vm->run_size);
		if (vm->vcpu_fds[i] >= 0)
			close(vm->vcpu_fds[i]);
	}
	for (size_t i = 0; i < vm->n_mmio; i++)
		pthread_mutex_destroy(&vm->mmio[i].lock);
	vm->n_mmio = 0;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	free(vm->cpuid);
	vm->cpuid = NULL;
	free(vm->msr_list);
	vm->msr_list = NULL;
	if (vm->split_irqchip)
		ioapic_destroy(&vm->ioapic);
	vm->split_irqchip = false;
}

int vm_add_pio(struct vm *vm, uint16_t base, uint16_t len, vm_pio_fn fn, void *dev, struct gr_error *err)
{
	if (vm->n_pio == VM_MAX_PIO)
		return gr_error_set(err, ENOSPC, "too many port I/O devices");
	vm->pio[vm->n_pio++] = (struct vm_pio){ .base = base, .len = len, .fn = fn, .dev = dev };
	return 0;
}

int vm_add_mmio(struct vm *vm, uint64_t base, uint64_t len, vm_mmio_read_fn read, vm_mmio_write_fn write,
		void *dev, struct gr_error *err)
{
	if (vm->n_mmio == VM_MAX_MMIO)
		return gr_error_set(err, ENOSPC, "MMIO window 0x%llx: too many MMIO devices (at most %d)",
				    (unsigned long long)base, VM_MAX_MMIO);
	if (len == 0 || base + len < base || !read || !write)
		return gr_error_set(err, EINVAL, "MMIO window 0x%llx+0x%llx: empty, wrapping or without handlers",
				    (unsigned long long)base, (unsigned long long)len);
	for (size_t i = 0; i < vm->gm->n_regions; i++) {
		const struct gm_region *r = &vm->gm->regions[i];
		if (base < r->gpa + r->size && r->gpa < base + len)
			return gr_error_set(err, EINVAL, "MMIO window 0x%llx+0x%llx overlaps guest RAM at 0x%llx",
					    (unsigned long long)base, (unsigned long long)len,
					    (unsigned long long)r->gpa);
	}
	for (size_t i = 0; i < vm->n_mmio; i++) {
		const struct vm_mmio *m = &vm->mmio[i];
		if (base < m->base + m->len && m->base < base + len)
			return gr_error_set(err, EBUSY, "MMIO window 0x%llx+0x%llx overlaps the one at 0x%llx",
					    (unsigned long long)base, (unsigned long long)len,
					    (unsigned long long)m->base);
	}
	struct vm_mmio *m = &vm->mmio[vm->n_mmio];
	*m = (struct vm_mmio){ .base = base, .len = len, .read = read, .write = write, .dev = dev };
	int e = pthread_mutex_init(&m->lock, NULL);
	if (e)
		return gr_error_sys(err, e, "MMIO window 0x%llx: pthread_mutex_init", (unsigned long long)base);
	vm->n_mmio++;
	return 0;
}

pthread_mutex_t *vm_mmio_lock(struct vm *vm, uint64_t base)
{
	for (size_t i = 0; i < vm->n_mmio; i++)
		if (vm->mmio[i].base == base)
			return &vm->mmio[i].lock;
	return NULL;
}

int vm_irq_line(struct vm *vm, uint32_t gsi, int level)
{
	if (vm->split_irqchip)
		return ioapic_set_irq(&vm->ioapic, gsi, level != 0);
	struct kvm_irq_level l = { .irq = gsi, .level = level ? 1 : 0 };
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return -errno;
	return 0;
}

void vm_irq_edge(void *opaque, bool level)
{
	struct vm_irq_source *src = opaque;
	if (!level)
		return;  /* edge: the pulse below already brought the line down */
	if (src->vm->split_irqchip) {
		int r = ioapic_pulse_irq(&src->vm->ioapic, src->gsi);
		if (r < 0)
			vm_stop(src->vm, VM_EXIT_VMM_ERROR, "I/O APIC: interrupt for GSI %u: %s", src->gsi, strerror(-r));
		return;
	}
	int r = vm_irq_line(src->vm, src->gsi, 1);
	if (r == 0)
		r = vm_irq_line(src->vm, src->gsi, 0);
	if (r < 0)
		vm_stop(src->vm, VM_EXIT_VMM_ERROR, "KVM_IRQ_LINE for GSI %u: %s", src->gsi, strerror(-r));
}

/* With vm->lock held. */
static void vm_stop_locked(struct vm *vm, int status, const char *fmt, va_list ap)
{
	if (vm->stopped)
		return;
	vm->stopped = true;
	vm->exit_status = status;
	vsnprintf(vm->exit_reason, sizeof(vm->exit_reason), fmt, ap);
	pthread_cond_broadcast(&vm->stopped_cond);
	pthread_cond_broadcast(&vm->park_cond); /* parked vCPUs leave */
}

void vm_stop(struct vm *vm, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&vm->lock);
	vm_stop_locked(vm, status, fmt, ap);
	pthread_mutex_unlock(&vm->lock);
	va_end(ap);
}

static void vm_stop_locked_fmt(struct vm *vm, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void vm_stop_locked_fmt(struct vm *vm, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vm_stop_locked(vm, status, fmt, ap);
	va_end(ap);
}

/* ---- pause, resume, stop requests ---- */

int vm_pause(struct vm *vm, struct gr_error *err)
{
	pthread_mutex_lock(&vm->lock);
	int r = 0;
	if (vm->stopped || vm->stopping)
		r = gr_error_set(err, EBUSY, "the VM is stopping");
	else if (vm->paused)
		r = gr_error_set(err, EALREADY, "the VM is already paused");
	if (r < 0) {
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	vm->paused = true;
	/* immediate_exit makes a KVM_RUN that has not started yet return at once;
	 * the signal interrupts one that has. Each thread clears it again only
	 * under the lock, when it is neither paused nor stopped. */
	for (unsigned i = 0; i < vm->vcpus_started; i++) {
		vm->runs[i]->immediate_exit = 1;
		pthread_kill(vm->threads[i], KICK_SIGNAL);
	}
	/* Synchronous: every live vCPU thread is parked (or the machine stopped
	 * and they left) before this returns. */
	while (vm->vcpus_parked < vm->vcpus_alive)
		pthread_cond_wait(&vm->park_cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vm_resume(struct vm *vm, struct gr_error *err)
{
	pthread_mutex_lock(&vm->lock);
	int r = 0;
	if (vm->stopped || vm->stopping)
		r = gr_error_set(err, EBUSY, "the VM is stopping");
	else if (!vm->paused)
		r = gr_error_set(err, EALREADY, "the VM is not paused");
	else {
		vm->paused = false;
		pthread_cond_broadcast(&vm->park_cond);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_request_stop(struct vm *vm, unsigned int timeout_ms, struct gr_error *err)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->stopped) {
		pthread_mutex_unlock(&vm->lock);
		return gr_error_set(err, EBUSY, "the VM has stopped already");
	}
	if (vm->stopping) {
		pthread_mutex_unlock(&vm->lock);
		return gr_error_set(err, EALREADY, "the VM is already stopping");
	}
	vm->stopping = true;
	clock_gettime(CLOCK_MONOTONIC, &vm->stop_deadline);
	vm->stop_deadline.tv_sec += timeout_ms / 1000;
	vm->stop_deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (vm->stop_deadline.tv_nsec >= 1000000000L) {
		vm->stop_deadline.tv_sec++;
		vm->stop_deadline.tv_nsec -= 1000000000L;
	}
	if (vm->paused) { /* the guest can only shut down while it runs */
		vm->paused = false;
		pthread_cond_broadcast(&vm->park_cond);
	}
	pthread_cond_broadcast(&vm->stopped_cond); /* vm_run now waits with the deadline */
	void (*press)(void *) = vm->power_button;
	void *opaque = vm->power_button_opaque;
	pthread_mutex_unlock(&vm->lock);
	if (press && timeout_ms > 0)
		press(opaque);
	return 0;
}

void vm_set_power_button(struct vm *vm, void (*press)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&vm->lock);
	vm->power_button = press;
	vm->power_button_opaque = opaque;
	pthread_mutex_unlock(&vm->lock);
}

enum vm_run_state vm_state(struct vm *vm, double *uptime)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&vm->lock);
	enum vm_run_state s = vm->stopped || vm->stopping ? VM_STATE_STOPPING
			      : vm->paused ? VM_STATE_PAUSED : VM_STATE_RUNNING;
	double up = 0;
	if (vm->start_time.tv_sec || vm->start_time.tv_nsec)
		up = (double)(now.tv_sec - vm->start_time.tv_sec) +
		     (double)(now.tv_nsec - vm->start_time.tv_nsec) / 1e9;
	pthread_mutex_unlock(&vm->lock);
	if (uptime)
		*uptime = up > 0 ? up : 0;
	return s;
}

/* ---- vCPU setup ---- */

static void set_cpuid_for(struct vm *vm, unsigned int id, struct kvm_cpuid2 *c)
{
	memcpy(c, vm->cpuid, sizeof(*c) + vm->cpuid->nent * sizeof(struct kvm_cpuid_entry2));
	cpuid_filter(c, id, vm->n_vcpus);
}

static void flat_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	*s = (struct kvm_segment){ .base = 0, .limit = 0xFFFFFFFF, .selector = sel, .type = type,
				   .present = 1, .dpl = 0, .s = 1, .g = 1,
				   .db = code64 ? 0 : 1, .l = code64 ? 1 : 0 };
}

static int write_boot_gdt_and_tables(struct vm *vm, bool long_mode, struct gr_error *err)
{
	/* null, code64 (0x08), code32 (0x10), data (0x18), tss (0x20) */
	static const uint64_t gdt[] = {
		0, 0x00AF9B000000FFFFULL, 0x00CF9B000000FFFFULL, 0x00CF93000000FFFFULL, 0x00008B0000000067ULL,
	};
	if (gm_write(vm->gm, LAYOUT_GDT, gdt, sizeof(gdt)) < 0)
		return gr_error_set(err, EFAULT, "guest memory too small for the boot GDT");
	if (!long_mode)
		return 0;
	/* Identity map of the first 4 GiB with 2 MiB pages. */
	uint64_t *pml4 = gm_ptr(vm->gm, LAYOUT_PML4, 4096);
	uint64_t *pdpt = gm_ptr(vm->gm, LAYOUT_PDPT, 4096);
	uint64_t *pd = gm_ptr(vm->gm, LAYOUT_PD, 4 * 4096);
	if (!pml4 || !pdpt || !pd)
		return gr_error_set(err, EFAULT, "guest memory too small for the boot page tables");
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT | 0x3;
	for (int i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD + (uint64_t)i * 4096) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
	return 0;
}

static int setup_bsp(int fd, bool long_mode, uint64_t entry, uint64_t params, struct gr_error *err)
{
	struct kvm_sregs s;
	if (ioctl(fd, KVM_GET_SREGS, &s) < 0)
		return kvm_ioctl_err(err, "KVM_GET_SREGS");
	s.gdt.base = LAYOUT_GDT;
	s.gdt.limit = 5 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	struct kvm_segment data;
	flat_seg(&data, 0x18, 0x3, false);
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.tr = (struct kvm_segment){ .base = 0, .limit = 0x67, .selector = 0x20, .type = 11, .present = 1 };
	s.ldt = (struct kvm_segment){ .selector = 0, .type = 2, .present = 1, .limit = 0xFFFF };
	if (long_mode) {
		flat_seg(&s.cs, 0x08, 0xB, true);
		s.cr3 = LAYOUT_PML4;
		s.cr4 = 0x20;                 /* PAE */
		s.cr0 = 0x80000001 | 0x10;    /* PG, PE, ET */
		s.efer = 0x500;               /* LME, LMA */
	} else {
		flat_seg(&s.cs, 0x10, 0xB, false);
		s.cr0 = 0x1 | 0x10;           /* PE, ET: PVH starts with paging off */
		s.cr4 = 0;
		s.efer = 0;
	}
	if (ioctl(fd, KVM_SET_SREGS, &s) < 0)
		return kvm_ioctl_err(err, "KVM_SET_SREGS");
	struct kvm_regs r = { .rflags = 0x2, .rip = entry };
	if (long_mode)
		r.rsi = params;
	else
		r.rbx = params;
	if (ioctl(fd, KVM_SET_REGS, &r) < 0)
		return kvm_ioctl_err(err, "KVM_SET_REGS");
	return 0;
}

/* KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores. */
static int vm_get_msr_list(struct vm *vm, struct gr_error *err)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return kvm_ioctl_err(err, "KVM_GET_MSR_INDEX_LIST");
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + (size_t)probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return gr_error_set(err, ENOMEM, "out of memory");
	l->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return kvm_ioctl_err(err, "KVM_GET_MSR_INDEX_LIST");
	}
	vm->msr_list = l;
	return 0;
}

/* The boot MSRs (msr.c's table) KVM supports, set on vCPU fd. */
static int vm_set_boot_msrs(struct vm *vm, int fd, unsigned int id, struct gr_error *err)
{
	union {
		struct kvm_msrs m;
		uint8_t bytes[sizeof(struct kvm_msrs) + BOOT_MSRS_COUNT * sizeof(struct kvm_msr_entry)];
	} b;
	const struct boot_msr *set[BOOT_MSRS_COUNT];
	memset(&b, 0, sizeof(b));
	const struct kvm_cpuid_entry2 *leaf1 = cpuid_find(vm->cpuid, 1, 0);
	bool cpuid_mtrr = leaf1 && (leaf1->edx & (1u << 12));
	size_t n = boot_msrs_select(vm->msr_list->indices, vm->msr_list->nmsrs, cpuid_mtrr, set, &vm->boot_msrs_skipped);
	for (size_t i = 0; i < n; i++)
		b.m.entries[i] = (struct kvm_msr_entry){ .index = set[i]->index, .data = set[i]->value };
	b.m.nmsrs = (uint32_t)n;
	int r = ioctl(fd, KVM_SET_MSRS, &b.m);
	if (r < 0)
		return gr_error_sys(err, errno, "KVM: KVM_SET_MSRS on vCPU %u", id);
	if ((size_t)r < n)
		return gr_error_set(err, EINVAL, "KVM: KVM_SET_MSRS on vCPU %u: KVM refused %s (MSR 0x%x = 0x%llx) after "
				    "setting %d of %zu boot MSRs",
				    id, set[r]->name, set[r]->index, (unsigned long long)set[r]->value, r, n);
	return 0;
}

int vm_setup_vcpus(struct vm *vm, bool long_mode, uint64_t entry, uint64_t params, struct gr_error *err)
{
	int r = write_boot_gdt_and_tables(vm, long_mode, err);
	if (r < 0)
		return r;
	if (!vm->msr_list && (r = vm_get_msr_list(vm, err)) < 0)
		return r;
	gr_autofree struct kvm_cpuid2 *c = malloc(sizeof(*c) + vm->cpuid->nent * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		int fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (fd < 0)
			return kvm_ioctl_err(err, "KVM_CREATE_VCPU");
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		vm->vcpu_fds[i] = fd;
		void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (run == MAP_FAILED)
			return gr_error_sys(err, errno, "KVM: mmap of the vCPU %u run area", i);
		vm->runs[i] = run;
		set_cpuid_for(vm, i, c);
		if (ioctl(fd, KVM_SET_CPUID2, c) < 0)
			return kvm_ioctl_err(err, "KVM_SET_CPUID2");
		if ((r = vm_set_boot_msrs(vm, fd, i, err)) < 0)
			return r;
		if (i == 0 && (r = setup_bsp(fd, long_mode, entry, params, err)) < 0)
			return r;
	}
	return 0;
}

/* ---- the exit loop ---- */

struct vcpu_arg {
	struct vm *vm;
	unsigned int id;
};

static void kick(int sig)
{
	(void)sig; /* interrupts KVM_RUN with EINTR */
}

static void handle_pio(struct vm *vm, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		const struct vm_pio *d = NULL;
		for (size_t k = 0; k < vm->n_pio; k++)
			if (run->io.port >= vm->pio[k].base && run->io.port < vm->pio[k].base + vm->pio[k].len)
				d = &vm->pio[k];
		if (d)
			d->fn(vm, d->dev, run->io.port, is_write, data, run->io.size);
		else if (!is_write)
			memset(data, 0xFF, run->io.size); /* nothing there */
	}
}

static void handle_mmio(struct vm *vm, struct kvm_run *run)
{
	uint64_t addr = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;
	struct vm_mmio *m = NULL;
	if (len >= 1 && len <= sizeof(run->mmio.data)) {
		for (size_t k = 0; k < vm->n_mmio; k++)
			if (addr >= vm->mmio[k].base && addr - vm->mmio[k].base < vm->mmio[k].len &&
			    len <= vm->mmio[k].len - (addr - vm->mmio[k].base))
				m = &vm->mmio[k];
	}
	if (!m) {
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0xFF, sizeof(run->mmio.data)); /* nothing there */
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (run->mmio.is_write)
		m->write(m->dev, addr - m->base, run->mmio.data, len);
	else
		m->read(m->dev, addr - m->base, run->mmio.data, len);
	pthread_mutex_unlock(&m->lock);
}

static void *vcpu_thread(void *p)
{
	struct vcpu_arg *a = p;
	struct vm *vm = a->vm;
	struct kvm_run *run = vm->runs[a->id];
	int fd = vm->vcpu_fds[a->id];
	sigset_t unblock;
	sigemptyset(&unblock);
	sigaddset(&unblock, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
	for (;;) {
		pthread_mutex_lock(&vm->lock);
		bool resumed = false;
		if (vm->paused && !vm->stopped) {
			vm->vcpus_parked++;
			pthread_cond_broadcast(&vm->park_cond); /* vm_pause counts us */
			while (vm->paused && !vm->stopped)
				pthread_cond_wait(&vm->park_cond, &vm->lock);
			vm->vcpus_parked--;
			resumed = true;
		}
		bool stop = vm->stopped;
		if (!stop && run->immediate_exit)
			run->immediate_exit = 0; /* a pause's, now over */
		pthread_mutex_unlock(&vm->lock);
		if (stop)
			break;
		if (resumed) /* tell a kvmclock guest it was stopped (no soft-lockup alarms); EINVAL without kvmclock */
			(void)ioctl(fd, KVM_KVMCLOCK_CTRL, 0);
		if (ioctl(fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vm_stop(vm, VM_EXIT_VMM_ERROR, "KVM_RUN on vCPU %u: %s", a->id, strerror(errno));
			break;
		}
		uint32_t reason = run->exit_reason;
		__atomic_fetch_add(&vm->exit_counts[reason < 64 ? reason : 63], 1, __ATOMIC_RELAXED);
		switch (reason) {
		case KVM_EXIT_IO:
			handle_pio(vm, run);
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(vm, run);
			break;
		case KVM_EXIT_HLT:
			vm_stop(vm, VM_EXIT_POWEROFF, "vCPU %u halted", a->id);
			break;
		case KVM_EXIT_SHUTDOWN:
			vm_stop(vm, VM_EXIT_TRIPLE_FAULT, "triple fault on vCPU %u", a->id);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
				vm_stop(vm, VM_EXIT_RESET, "guest reset (vCPU %u)", a->id);
			else
				vm_stop(vm, VM_EXIT_POWEROFF, "guest powered off (vCPU %u)", a->id);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			vm_stop(vm, VM_EXIT_INTERNAL, "KVM internal error on vCPU %u: suberror %u", a->id,
				run->internal.suberror);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vm_stop(vm, VM_EXIT_INTERNAL, "KVM entry failure on vCPU %u: reason 0x%llx", a->id,
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_IOAPIC_EOI: {
			/* The guest EOIed a level-triggered vector of our IOAPIC. */
			int r = vm->split_irqchip ? ioapic_eoi(&vm->ioapic, run->eoi.vector) : 0;
			if (r < 0)
				vm_stop(vm, VM_EXIT_VMM_ERROR, "I/O APIC: EOI of vector %u: %s", run->eoi.vector,
					strerror(-r));
			break;
		}
		default:
			vm_stop(vm, VM_EXIT_INTERNAL, "unhandled KVM exit %u on vCPU %u", reason, a->id);
			break;
		}
	}
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_alive--;
	pthread_cond_broadcast(&vm->park_cond); /* a pause waiting for us */
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vm_run(struct vm *vm)
{
	struct sigaction sa = { .sa_handler = kick };
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);
	struct vcpu_arg args[VM_MAX_VCPUS];
	unsigned started = 0;
	/* Started threads are counted under the lock, so vm_pause kicks and
	 * waits for exactly those (a thread not yet at KVM_RUN parks by itself). */
	pthread_mutex_lock(&vm->lock);
	clock_gettime(CLOCK_MONOTONIC, &vm->start_time);
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		args[i] = (struct vcpu_arg){ .vm = vm, .id = i };
		vm->vcpus_alive++;
		if (pthread_create(&vm->threads[i], NULL, vcpu_thread, &args[i]) != 0) {
			vm->vcpus_alive--;
			vm_stop_locked_fmt(vm, VM_EXIT_VMM_ERROR, "cannot start the thread of vCPU %u", i);
			break;
		}
		vm->vcpus_started = ++started;
	}
	while (!vm->stopped) {
		if (!vm->stopping) {
			pthread_cond_wait(&vm->stopped_cond, &vm->lock);
			continue;
		}
		/* A stop request: the guest has until the deadline to power off. */
		if (pthread_cond_timedwait(&vm->stopped_cond, &vm->lock, &vm->stop_deadline) == ETIMEDOUT &&
		    !vm->stopped)
			vm_stop_locked_fmt(vm, VM_EXIT_FORCED_STOP,
					   "stopped by force: the guest did not power off within the stop timeout");
	}
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < started; i++) {
		vm->runs[i]->immediate_exit = 1;
		pthread_kill(vm->threads[i], KICK_SIGNAL);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(vm->threads[i], NULL);
	return vm->exit_status;
}
