/* The model-specific registers every vCPU starts with, and which of them
 * gureum-vmm sets given what KVM supports. Pure: vm.c asks KVM
 * (KVM_GET_MSR_INDEX_LIST, KVM_GET_SUPPORTED_CPUID) and hands the answers here,
 * so the selection is unit-tested without /dev/kvm. */
#ifndef GR_VMM_MSR_H
#define GR_VMM_MSR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSR_IA32_TSC            0x10
#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_IA32_MISC_ENABLE    0x1A0
#define MSR_IA32_MTRR_DEF_TYPE  0x2FF
#define MSR_STAR                0xC0000081
#define MSR_LSTAR               0xC0000082
#define MSR_CSTAR               0xC0000083
#define MSR_SYSCALL_MASK        0xC0000084
#define MSR_KERNEL_GS_BASE      0xC0000102

struct boot_msr {
	uint32_t index;
	uint64_t value;
	const char *name;
};

#define BOOT_MSRS_COUNT 11

/* The table, in the order the MSRs are set (bit i of a skipped mask is entry i). */
extern const struct boot_msr boot_msrs[BOOT_MSRS_COUNT];

/* Picks the boot MSRs KVM takes: those listed in supported[0..n_supported)
 * (KVM_GET_MSR_INDEX_LIST), except IA32_MTRR_DEF_TYPE, which KVM never lists
 * and which is taken when cpuid_mtrr (CPUID.1:EDX bit 12, which KVM's MTRR
 * emulation follows). Fills out[] (BOOT_MSRS_COUNT entries at most) in table
 * order, sets *skipped to the mask of entries left out, and returns how many
 * it picked. supported may be NULL when n_supported is 0. */
size_t boot_msrs_select(const uint32_t *supported, size_t n_supported, bool cpuid_mtrr,
			const struct boot_msr **out, uint32_t *skipped);

#endif
