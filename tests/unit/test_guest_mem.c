/* Unit tests for src/vmm/guest_mem.c: layout, bounds checks, guard pages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/guest_mem.h"

static void test_small_layout_and_bounds(void **state)
{
	(void)state;
	struct guest_mem gm;
	struct gr_error err = { 0 };
	assert_int_equal(gm_create(&gm, 64 << 20, &err), 0);
	assert_int_equal(gm.n_regions, 1);
	assert_non_null(gm_ptr(&gm, 0, 64 << 20));
	assert_non_null(gm_ptr(&gm, (64 << 20) - 1, 1));
	assert_non_null(gm_ptr(&gm, 64 << 20, 0));
	assert_null(gm_ptr(&gm, (64 << 20) - 1, 2));
	assert_null(gm_ptr(&gm, 64 << 20, 1));
	assert_null(gm_ptr(&gm, UINT64_MAX, 2));           /* overflow */
	assert_null(gm_ptr(&gm, 16, UINT64_MAX));          /* overflow */
	uint32_t v = 0xdeadbeef, back = 0;
	assert_int_equal(gm_write(&gm, 4096, &v, sizeof(v)), 0);
	assert_int_equal(gm_read(&gm, 4096, &back, sizeof(back)), 0);
	assert_int_equal(back, v);
	assert_int_equal(gm_write(&gm, (64 << 20) - 2, &v, sizeof(v)), -EFAULT);
	gm_destroy(&gm);
}

static void test_hole_split(void **state)
{
	(void)state;
	struct guest_mem gm;
	struct gr_error err = { 0 };
	uint64_t size = GM_MMIO_HOLE_START + (16ULL << 20);
	assert_int_equal(gm_create(&gm, size, &err), 0);
	assert_int_equal(gm.n_regions, 2);
	assert_non_null(gm_ptr(&gm, GM_MMIO_HOLE_START - 1, 1));
	assert_null(gm_ptr(&gm, GM_MMIO_HOLE_START, 1));        /* the hole is not RAM */
	assert_null(gm_ptr(&gm, GM_MMIO_HOLE_START - 1, 2));    /* straddles into the hole */
	assert_non_null(gm_ptr(&gm, GM_MMIO_HOLE_END, 16 << 20));
	assert_null(gm_ptr(&gm, GM_MMIO_HOLE_END, (16 << 20) + 1));
	gm_destroy(&gm);
}

static void test_guard_pages_fault(void **state)
{
	(void)state;
	struct guest_mem gm;
	struct gr_error err = { 0 };
	assert_int_equal(gm_create(&gm, 1 << 20, &err), 0);
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* not cmocka's or a sanitizer's handler */
		volatile uint8_t *p = gm.regions[0].host;
		p[(1 << 20)] = 1; /* the guard page after RAM */
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
	gm_destroy(&gm);
}

static void test_bad_sizes_and_parse(void **state)
{
	(void)state;
	struct guest_mem gm;
	struct gr_error err = { 0 };
	assert_true(gm_create(&gm, 4096, &err) < 0);
	assert_non_null(strstr(err.msg, "at least 1 MiB"));
	assert_true(gm_create(&gm, (1 << 20) + 1, &err) < 0);
	uint64_t v;
	assert_int_equal(gm_parse_size("512M", &v), 0);
	assert_true(v == 512ULL << 20);
	assert_int_equal(gm_parse_size("2GiB", &v), 0);
	assert_true(v == 2ULL << 30);
	assert_int_equal(gm_parse_size("1048576", &v), 0);
	assert_true(v == 1048576);
	assert_int_equal(gm_parse_size("1.5G", &v), -EINVAL);
	assert_int_equal(gm_parse_size("-1", &v), -EINVAL);
	assert_int_equal(gm_parse_size("12Q", &v), -EINVAL);
	assert_int_equal(gm_parse_size("99999999999T", &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_layout_and_bounds),
		cmocka_unit_test(test_hole_split),
		cmocka_unit_test(test_guard_pages_fault),
		cmocka_unit_test(test_bad_sizes_and_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
