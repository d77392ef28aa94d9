/* The boot MSRs and their selection; see msr.h. */
#include "msr.h"

/* As Firecracker and Cloud Hypervisor set them: the SYSENTER and SYSCALL
 * entry points and the swapgs base cleared, the TSC at 0 (a host write of 0
 * makes KVM keep the vCPUs' TSCs in step), fast string operations on, MTRRs
 * on with write-back as the default memory type (Linux otherwise maps all RAM
 * uncached when it trusts the MTRRs). */
const struct boot_msr boot_msrs[BOOT_MSRS_COUNT] = {
	{ MSR_IA32_SYSENTER_CS, 0, "IA32_SYSENTER_CS" },
	{ MSR_IA32_SYSENTER_ESP, 0, "IA32_SYSENTER_ESP" },
	{ MSR_IA32_SYSENTER_EIP, 0, "IA32_SYSENTER_EIP" },
	{ MSR_STAR, 0, "STAR" },
	{ MSR_LSTAR, 0, "LSTAR" },
	{ MSR_CSTAR, 0, "CSTAR" },
	{ MSR_SYSCALL_MASK, 0, "SYSCALL_MASK" },
	{ MSR_KERNEL_GS_BASE, 0, "KERNEL_GS_BASE" },
	{ MSR_IA32_TSC, 0, "IA32_TSC" },
	/* FAST_STRING, and BTS and PEBS unavailable as in KVM's reset value */
	{ MSR_IA32_MISC_ENABLE, 0x1801, "IA32_MISC_ENABLE" },
	{ MSR_IA32_MTRR_DEF_TYPE, 0x806, "IA32_MTRR_DEF_TYPE" }, /* E (enabled), default type 6 (WB) */
};

static bool listed(const uint32_t *supported, size_t n, uint32_t index)
{
	for (size_t i = 0; i < n; i++)
		if (supported[i] == index)
			return true;
	return false;
}

size_t boot_msrs_select(const uint32_t *supported, size_t n_supported, bool cpuid_mtrr,
			const struct boot_msr **out, uint32_t *skipped)
{
	size_t n = 0;
	*skipped = 0;
	for (size_t i = 0; i < BOOT_MSRS_COUNT; i++) {
		const struct boot_msr *m = &boot_msrs[i];
		bool ok = m->index == MSR_IA32_MTRR_DEF_TYPE ? cpuid_mtrr : listed(supported, n_supported, m->index);
		if (!ok) {
			*skipped |= 1u << i;
			continue;
		}
		out[n++] = m;
	}
	return n;
}
