#include "cpuid.h"

#include <string.h>

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == function &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index))
			return e;
	}
	return NULL;
}

/* Bits needed to number n things (ceil(log2(n))). */
static uint32_t bits_for(unsigned int n)
{
	uint32_t b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

static void x2apic_topology(struct kvm_cpuid_entry2 *e, unsigned int id, unsigned int n)
{
	switch (e->index) {
	case 0: /* SMT level: one thread per core */
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (1u << 8) | e->index;
		break;
	case 1: /* core level: n cores in the package */
		e->eax = bits_for(n);
		e->ebx = n;
		e->ecx = (2u << 8) | e->index;
		break;
	default: /* no further levels */
		e->eax = e->ebx = 0;
		e->ecx = e->index;
		break;
	}
	e->edx = id;
}

void cpuid_filter(struct kvm_cpuid2 *c, unsigned int id, unsigned int n)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 0x1:
			/* APIC id, logical processors per package, HTT, hypervisor. */
			e->ebx = (e->ebx & 0x0000FFFFu) | (id << 24) | ((n & 0xFFu) << 16);
			if (n > 1)
				e->edx |= 1u << 28;
			else
				e->edx &= ~(1u << 28);
			e->ecx |= 1u << 31;
			break;
		case 0x4:
			/* Cores per package - 1 in EAX[31:26]; no threads share caches beyond the core. */
			if ((e->eax & 0x1F) != 0) {
				e->eax &= 0x03FFFFFFu;
				e->eax |= ((n - 1) & 0x3Fu) << 26;
				e->eax &= ~(0xFFFu << 14); /* sharing: one thread */
			}
			break;
		case 0xB:
		case 0x1F:
			x2apic_topology(e, id, n);
			break;
		case CPUID_KVM_SIGNATURE:
			e->eax = CPUID_KVM_FEATURES;
			memcpy(&e->ebx, "KVMK", 4);
			memcpy(&e->ecx, "VMKV", 4);
			memcpy(&e->edx, "M\0\0\0", 4);
			break;
		case 0x80000008:
			/* AMD: cores - 1 and the APIC id size. */
			e->ecx = (e->ecx & ~0xF0FFu) | ((n - 1) & 0xFFu) | (bits_for(n) << 12);
			break;
		default:
			break;
		}
	}
}
