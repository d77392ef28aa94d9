/* Unit tests for src/vmm/cpuid.c: topology and KVM leaves for N vCPUs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cpuid.h"

static struct kvm_cpuid2 *fake(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 8 * sizeof(struct kvm_cpuid_entry2));
	assert_non_null(c);
	struct kvm_cpuid_entry2 e[] = {
		{ .function = 0x1, .ebx = 0xAB000800, .ecx = 0x1, .edx = 0 },
		{ .function = 0x4, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0xFC004121 },
		{ .function = 0xB, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0xB, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0xB, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 7, .ebx = 9 },
		{ .function = 0x40000000, .eax = 0x40000001 },
		{ .function = 0x40000001, .eax = 0x1 | 0x8 | 0x20 | 0x40 },
		{ .function = 0x80000008, .ecx = 0xF0FF },
	};
	memcpy(c->entries, e, sizeof(e));
	c->nent = 8;
	return c;
}

static void test_leaf1_and_hypervisor_bit(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = fake();
	cpuid_filter(c, 3, 4);
	struct kvm_cpuid_entry2 *e = cpuid_find(c, 1, 0);
	assert_int_equal(e->ebx >> 24, 3);            /* initial APIC id */
	assert_int_equal((e->ebx >> 16) & 0xFF, 4);   /* logical processors */
	assert_int_equal(e->ebx & 0xFFFF, 0x0800);    /* the rest kept */
	assert_true(e->ecx & (1u << 31));             /* hypervisor */
	assert_true(e->edx & (1u << 28));             /* HTT for n > 1 */
	cpuid_filter(c, 0, 1);
	assert_false(e->edx & (1u << 28));
	free(c);
}

static void test_x2apic_topology(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = fake();
	cpuid_filter(c, 5, 6);
	struct kvm_cpuid_entry2 *smt = cpuid_find(c, 0xB, 0), *core = cpuid_find(c, 0xB, 1),
				*end = cpuid_find(c, 0xB, 2);
	assert_int_equal(smt->ebx, 1);
	assert_int_equal((smt->ecx >> 8) & 0xFF, 1);
	assert_int_equal(core->eax, 3);               /* 6 cores need 3 bits */
	assert_int_equal(core->ebx, 6);
	assert_int_equal((core->ecx >> 8) & 0xFF, 2);
	assert_int_equal(end->eax, 0);
	assert_int_equal(end->ebx, 0);
	assert_int_equal(smt->edx, 5);
	assert_int_equal(core->edx, 5);
	free(c);
}

static void test_cache_and_amd_core_counts(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = fake();
	cpuid_filter(c, 0, 2);
	assert_int_equal(cpuid_find(c, 4, 0)->eax >> 26, 1);           /* cores - 1 */
	assert_int_equal((cpuid_find(c, 4, 0)->eax >> 14) & 0xFFF, 0);  /* one thread shares */
	assert_int_equal(cpuid_find(c, 0x80000008, 0)->ecx & 0xFF, 1);
	assert_int_equal((cpuid_find(c, 0x80000008, 0)->ecx >> 12) & 0xF, 1);
	free(c);
}

static void test_kvm_leaves(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = fake();
	cpuid_filter(c, 0, 1);
	struct kvm_cpuid_entry2 *sig = cpuid_find(c, CPUID_KVM_SIGNATURE, 0);
	char s[13] = { 0 };
	memcpy(s, &sig->ebx, 4);
	memcpy(s + 4, &sig->ecx, 4);
	memcpy(s + 8, &sig->edx, 4);
	assert_string_equal(s, "KVMKVMKVM");
	assert_int_equal(sig->eax, CPUID_KVM_FEATURES);
	/* kvmclock, steal time and PV EOI stay as KVM offers them */
	assert_int_equal(cpuid_find(c, CPUID_KVM_FEATURES, 0)->eax, 0x1 | 0x8 | 0x20 | 0x40);
	assert_null(cpuid_find(c, 0xD, 0));
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf1_and_hypervisor_bit),
		cmocka_unit_test(test_x2apic_topology),
		cmocka_unit_test(test_cache_and_amd_core_counts),
		cmocka_unit_test(test_kvm_leaves),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
