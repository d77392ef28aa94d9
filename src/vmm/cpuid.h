/* CPUID for a vCPU, from what KVM supports (KVM_GET_SUPPORTED_CPUID):
 * topology for N vCPUs (one socket, one thread per core), the hypervisor
 * bit, and the KVM paravirtual leaves (signature, kvmclock, PV EOI, steal
 * time) as KVM offers them. */
#ifndef GR_VMM_CPUID_H
#define GR_VMM_CPUID_H

#include <linux/kvm.h>
#include <stdint.h>

#define CPUID_KVM_SIGNATURE 0x40000000u
#define CPUID_KVM_FEATURES  0x40000001u

/* Rewrites the entries of c (a copy of the supported list) for vCPU id of
 * n_vcpus. Entries KVM did not list stay absent. */
void cpuid_filter(struct kvm_cpuid2 *c, unsigned int id, unsigned int n_vcpus);

/* Finds an entry; NULL when absent. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index);

#endif
