/* Unit tests for src/common/json.c and error.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/json.h"
#include "common/cleanup.h"

static json_t *parse(const char *text)
{
	struct gr_error err = { 0 };
	json_t *j = NULL;
	assert_int_equal(gr_json_load_string("test", text, &j, &err), 0);
	return j;
}

static void test_type_error_names_path_and_value(void **state)
{
	(void)state;
	gr_autojson json_t *j = parse("{\"limit\": \"1G\"}");
	struct gr_error err = { 0 };
	int64_t v;
	assert_int_equal(gr_json_get_int64(j, "linux.resources.memory", "limit", &v, &err), -EINVAL);
	assert_string_equal(err.msg, "linux.resources.memory.limit: expected an integer, got \"1G\"");
}

static void test_absent_and_null_are_zero(void **state)
{
	(void)state;
	gr_autojson json_t *j = parse("{\"a\": null}");
	struct gr_error err = { 0 };
	const char *s = "unchanged";
	assert_int_equal(gr_json_get_string(j, "", "a", &s, &err), 0);
	assert_int_equal(gr_json_get_string(j, "", "b", &s, &err), 0);
	assert_string_equal(s, "unchanged");
}

static void test_ranges(void **state)
{
	(void)state;
	gr_autojson json_t *j = parse("{\"neg\": -1, \"big\": 4294967296, \"ok\": 7}");
	struct gr_error err = { 0 };
	uint32_t u32;
	uint64_t u64;
	assert_true(gr_json_get_uint64(j, "x", "neg", &u64, &err) < 0);
	assert_string_equal(err.msg, "x.neg: expected an unsigned integer, got -1");
	assert_true(gr_json_get_uint32(j, "x", "big", &u32, &err) < 0);
	assert_int_equal(gr_json_get_uint32(j, "x", "ok", &u32, &err), 1);
	assert_int_equal(u32, 7);
}

static void test_strv(void **state)
{
	(void)state;
	gr_autojson json_t *j = parse("{\"args\": [\"sh\", \"-c\"], \"bad\": [\"x\", 3]}");
	struct gr_error err = { 0 };
	gr_autostrv char **v = NULL;
	assert_int_equal(gr_json_get_strv(j, "process", "args", &v, &err), 1);
	assert_int_equal(gr_strv_len(v), 2);
	assert_string_equal(v[1], "-c");
	char **w = NULL;
	assert_true(gr_json_get_strv(j, "process", "bad", &w, &err) < 0);
	assert_null(w);
	assert_string_equal(err.msg, "process.bad[1]: expected a string, got 3");
}

static void test_syntax_error_has_position(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	json_t *j = NULL;
	assert_true(gr_json_load_string("config.json", "{\n  \"a\": ,\n}", &j, &err) < 0);
	assert_non_null(strstr(err.msg, "config.json:2:"));
	assert_true(gr_json_load_string("config.json", "[1]", &j, &err) < 0);
	assert_non_null(strstr(err.msg, "expected a JSON object"));
}

static void test_error_prefix(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	assert_int_equal(gr_error_sys(&err, ENOENT, "cannot open %s", "/x"), -ENOENT);
	assert_int_equal(gr_error_prefix(&err, "loading bundle"), -ENOENT);
	assert_string_equal(err.msg, "loading bundle: cannot open /x: No such file or directory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type_error_names_path_and_value),
		cmocka_unit_test(test_absent_and_null_are_zero),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_strv),
		cmocka_unit_test(test_syntax_error_has_position),
		cmocka_unit_test(test_error_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
