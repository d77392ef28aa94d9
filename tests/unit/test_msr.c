/* Unit tests for src/vmm/msr.c: which boot MSRs gureum-vmm sets, given what
 * KVM_GET_MSR_INDEX_LIST lists and the CPUID's MTRR bit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "vmm/msr.h"

#define ALL_MASK ((1u << BOOT_MSRS_COUNT) - 1)

/* Every boot MSR but the MTRR, as a hardware-assisted KVM lists them, with
 * others KVM lists around them. */
static const uint32_t kvm_list[] = {
	0x3B, 0x10, 0x174, 0x175, 0x176, 0xC0000080, 0xC0000081, 0xC0000082, 0xC0000083,
	0xC0000084, 0xC0000102, 0x1A0, 0xC0000103, 0x4B564D00,
};
#define N_KVM_LIST (sizeof(kvm_list) / sizeof(kvm_list[0]))

static int index_of(uint32_t msr)
{
	for (int i = 0; i < BOOT_MSRS_COUNT; i++)
		if (boot_msrs[i].index == msr)
			return i;
	return -1;
}

static void test_table(void **state)
{
	(void)state;
	/* what the MSRs are set to: 0 but MISC_ENABLE and MTRRdefType */
	for (int i = 0; i < BOOT_MSRS_COUNT; i++) {
		assert_non_null(boot_msrs[i].name);
		uint32_t m = boot_msrs[i].index;
		if (m == MSR_IA32_MISC_ENABLE)
			assert_int_equal(boot_msrs[i].value, 0x1801);  /* FAST_STRING, BTS and PEBS unavailable */
		else if (m == MSR_IA32_MTRR_DEF_TYPE)
			assert_int_equal(boot_msrs[i].value, 0x806);   /* enabled, write-back */
		else
			assert_int_equal(boot_msrs[i].value, 0);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(boot_msrs[j].index, m);
	}
	const uint32_t expected[] = { 0x174, 0x175, 0x176, 0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084,
				      0xC0000102, 0x10, 0x1A0, 0x2FF };
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
		assert_true(index_of(expected[i]) >= 0);
	assert_string_equal(boot_msrs[index_of(0x2FF)].name, "IA32_MTRR_DEF_TYPE");
	assert_string_equal(boot_msrs[index_of(0x1A0)].name, "IA32_MISC_ENABLE");
}

static void test_everything_supported(void **state)
{
	(void)state;
	const struct boot_msr *out[BOOT_MSRS_COUNT];
	uint32_t skipped = 0xDEAD;
	size_t n = boot_msrs_select(kvm_list, N_KVM_LIST, true, out, &skipped);
	assert_int_equal(n, BOOT_MSRS_COUNT);
	assert_int_equal(skipped, 0);
	for (size_t i = 0; i < n; i++)
		assert_ptr_equal(out[i], &boot_msrs[i]); /* in table order, whatever the list's order */
}

static void test_mtrr_follows_cpuid_only(void **state)
{
	(void)state;
	const struct boot_msr *out[BOOT_MSRS_COUNT];
	uint32_t skipped;
	int mtrr = index_of(MSR_IA32_MTRR_DEF_TYPE);
	/* no MTRR bit: everything else is set, the MTRR skipped */
	size_t n = boot_msrs_select(kvm_list, N_KVM_LIST, false, out, &skipped);
	assert_int_equal(n, BOOT_MSRS_COUNT - 1);
	assert_int_equal(skipped, 1u << mtrr);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(out[i]->index, MSR_IA32_MTRR_DEF_TYPE);
	/* listed by KVM (it never is) but no MTRR bit: still skipped */
	const uint32_t with_mtrr[] = { 0x2FF, 0x10 };
	n = boot_msrs_select(with_mtrr, 2, false, out, &skipped);
	assert_int_equal(n, 1);
	assert_int_equal(out[0]->index, MSR_IA32_TSC);
	assert_int_equal(skipped, ALL_MASK & ~(1u << index_of(MSR_IA32_TSC)));
	/* an empty list with the MTRR bit: only the MTRR */
	n = boot_msrs_select(NULL, 0, true, out, &skipped);
	assert_int_equal(n, 1);
	assert_ptr_equal(out[0], &boot_msrs[mtrr]);
	assert_int_equal(skipped, ALL_MASK & ~(1u << mtrr));
}

static void test_nothing_supported(void **state)
{
	(void)state;
	const struct boot_msr *out[BOOT_MSRS_COUNT];
	uint32_t skipped;
	assert_int_equal(boot_msrs_select(NULL, 0, false, out, &skipped), 0);
	assert_int_equal(skipped, ALL_MASK);
	const uint32_t unrelated[] = { 0x3B, 0xC0000080, 0x4B564D01, 0x2FE, 0x1A1 };
	assert_int_equal(boot_msrs_select(unrelated, 5, false, out, &skipped), 0);
	assert_int_equal(skipped, ALL_MASK);
}

static void test_partial_list(void **state)
{
	(void)state;
	/* an older or stricter KVM: no CSTAR (AMD-only on Intel hosts), no MISC_ENABLE; duplicates */
	const uint32_t partial[] = { 0xC0000102, 0x10, 0x10, 0x174, 0x175, 0x176, 0xC0000081, 0xC0000082, 0xC0000084 };
	const struct boot_msr *out[BOOT_MSRS_COUNT];
	uint32_t skipped;
	size_t n = boot_msrs_select(partial, sizeof(partial) / sizeof(partial[0]), true, out, &skipped);
	assert_int_equal(n, BOOT_MSRS_COUNT - 2);
	assert_int_equal(skipped, 1u << index_of(MSR_CSTAR) | 1u << index_of(MSR_IA32_MISC_ENABLE));
	/* the picked ones keep the table's order and are each picked once */
	for (size_t i = 1; i < n; i++)
		assert_true(out[i - 1] < out[i]);
	assert_int_equal(out[n - 1]->index, MSR_IA32_MTRR_DEF_TYPE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_everything_supported),
		cmocka_unit_test(test_mtrr_follows_cpuid_only),
		cmocka_unit_test(test_nothing_supported),
		cmocka_unit_test(test_partial_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
