#include "vm.h"
#include "layout.h"
#include "cpuid.h"
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

int vm_create(struct vm *vm, struct guest_mem *gm, unsigned int n_vcpus, struct gr_error *err)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	for (unsigned i = 0; i < VM_MAX_VCPUS; i++)
		vm->vcpu_fds[i] = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->stopped_cond, NULL);
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
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return kvm_ioctl_err(err, "KVM_CREATE_IRQCHIP");
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
	int r = vm_irq_line(src->vm, src->gsi, 1);
	if (r == 0)
		r = vm_irq_line(src->vm, src->gsi, 0);
	if (r < 0)
		vm_stop(src->vm, VM_EXIT_VMM_ERROR, "KVM_IRQ_LINE for GSI %u: %s", src->gsi, strerror(-r));
}

void vm_stop(struct vm *vm, int status, const char *fmt, ...)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->stopped) {
		vm->stopped = true;
		vm->exit_status = status;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(vm->exit_reason, sizeof(vm->exit_reason), fmt, ap);
		va_end(ap);
		pthread_cond_broadcast(&vm->stopped_cond);
	}
	pthread_mutex_unlock(&vm->lock);
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

int vm_setup_vcpus(struct vm *vm, bool long_mode, uint64_t entry, uint64_t params, struct gr_error *err)
{
	int r = write_boot_gdt_and_tables(vm, long_mode, err);
	if (r < 0)
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
		bool stop = vm->stopped;
		pthread_mutex_unlock(&vm->lock);
		if (stop)
			break;
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
		default:
			vm_stop(vm, VM_EXIT_INTERNAL, "unhandled KVM exit %u on vCPU %u", reason, a->id);
			break;
		}
	}
	return NULL;
}

int vm_run(struct vm *vm)
{
	struct sigaction sa = { .sa_handler = kick };
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);
	struct vcpu_arg args[VM_MAX_VCPUS];
	unsigned started = 0;
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		args[i] = (struct vcpu_arg){ .vm = vm, .id = i };
		if (pthread_create(&vm->threads[i], NULL, vcpu_thread, &args[i]) != 0) {
			vm_stop(vm, VM_EXIT_VMM_ERROR, "cannot start the thread of vCPU %u", i);
			break;
		}
		started++;
	}
	pthread_mutex_lock(&vm->lock);
	while (!vm->stopped)
		pthread_cond_wait(&vm->stopped_cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < started; i++) {
		vm->runs[i]->immediate_exit = 1;
		pthread_kill(vm->threads[i], KICK_SIGNAL);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(vm->threads[i], NULL);
	return vm->exit_status;
}
