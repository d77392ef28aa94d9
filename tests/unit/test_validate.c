/* Unit tests for src/daemon/validate.c: names, sizes, CPUs, restart
 * policies, config keys and values, commands, hostile strings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "daemon/validate.h"

static void test_names(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	const char *good[] = { "a", "c1", "1abc", "web-01", "a-b-c", "0", NULL };
	for (const char **n = good; *n; n++)
		assert_int_equal(validate_instance_name(*n, &err), 0);
	char max[64];
	memset(max, 'a', 63);
	max[63] = '\0';
	assert_int_equal(validate_instance_name(max, &err), 0);
	char toolong[65];
	memset(toolong, 'a', 64);
	toolong[64] = '\0';
	assert_int_equal(validate_instance_name(toolong, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "too long"));
	assert_int_equal(validate_instance_name("", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "empty"));
	assert_int_equal(validate_instance_name(NULL, &err), -EINVAL);
	assert_int_equal(validate_instance_name("-a", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "start"));
	assert_int_equal(validate_instance_name("a-", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "end"));
	const char *bad[] = { "A", "a_b", "a.b", "a/b", "..", "a b", "é", "a\n", "a\"b", NULL };
	for (const char **n = bad; *n; n++) {
		assert_int_equal(validate_instance_name(*n, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "instance name"));
	}
	assert_int_equal(validate_instance_name("ab/../c", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "position 3"));
}

static void test_hostile_strings_are_quoted(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	assert_int_equal(validate_instance_name("x\x1b[31mred\n", &err), -EINVAL);
	assert_null(strchr(err.msg, '\x1b'));
	assert_null(strchr(err.msg, '\n'));
	assert_non_null(strstr(err.msg, "\\x1b"));
	char huge[5000];
	memset(huge, 'A', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	assert_int_equal(validate_size("limits.memory", huge, &(uint64_t){ 0 }, &err), -EINVAL);
	assert_true(strlen(err.msg) < 400);
	assert_non_null(strstr(err.msg, "..."));
	char q[VALIDATE_QUOTE_MAX];
	assert_string_equal(validate_quote("a\"b\\c", q, sizeof(q)), "\"a\\x22b\\x5cc\"");
	assert_string_equal(validate_quote("\xff", q, sizeof(q)), "\"\\xff\"");
}

static void test_sizes(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct {
		const char *in;
		uint64_t out;
	} ok[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "4096B", 4096 },
		{ "1kB", 1000 },
		{ "1KiB", 1024 },
		{ "256MiB", 256ull << 20 },
		{ "512MB", 512000000ull },
		{ "1GiB", 1ull << 30 },
		{ "2GB", 2000000000ull },
		{ "1TiB", 1ull << 40 },
		{ "18446744073709551615", UINT64_MAX },
		{ "16777215TiB", 16777215ull << 40 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 1;
		assert_int_equal(validate_size("limits.memory", ok[i].in, &v, &err), 0);
		assert_true(v == ok[i].out);
	}
	uint64_t v;
	assert_int_equal(validate_size("limits.memory", "16777216TiB", &v, &err), -ERANGE);
	assert_non_null(strstr(err.msg, "too large"));
	assert_int_equal(validate_size("limits.memory", "18446744073709551616", &v, &err), -ERANGE);
	assert_int_equal(validate_size("limits.memory", "99999999999999999999999", &v, &err), -ERANGE);
	const char *bad[] = { "", "MiB", "-1", "+1", "1.5GiB", "1 GiB", "1gib", "1mb", "1K", "1KB", "1Mi", "1GiBB", " 1", "0x10", NULL };
	for (const char **b = bad; *b; b++) {
		assert_int_equal(validate_size("limits.memory", *b, &v, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "limits.memory"));
	}
	assert_int_equal(validate_size("limits.memory", "1GB!", &v, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown unit"));
}

static void test_cpu(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	uint64_t m;
	assert_int_equal(validate_cpu("limits.cpu", "1", &m, &err), 0);
	assert_int_equal(m, 1000);
	assert_int_equal(validate_cpu("limits.cpu", "0.5", &m, &err), 0);
	assert_int_equal(m, 500);
	assert_int_equal(validate_cpu("limits.cpu", "0.125", &m, &err), 0);
	assert_int_equal(m, 125);
	assert_int_equal(validate_cpu("limits.cpu", "0", &m, &err), -ERANGE);
	assert_int_equal(validate_cpu("limits.cpu", "0.000", &m, &err), -ERANGE);
	assert_int_equal(validate_cpu("limits.cpu", "0.0001", &m, &err), -EINVAL);
	const char *bad[] = { "", ".5", "1.", "-1", "1e3", "one", "1,5", "0x1", " 1", NULL };
	for (const char **b = bad; *b; b++)
		assert_int_equal(validate_cpu("limits.cpu", *b, &m, &err), -EINVAL);
	char more[32];
	snprintf(more, sizeof(more), "%ld", sysconf(_SC_NPROCESSORS_ONLN) + 1);
	assert_int_equal(validate_cpu("limits.cpu", more, &m, &err), -ERANGE);
	assert_non_null(strstr(err.msg, "CPUs"));
	assert_int_equal(validate_cpu("limits.cpu", "99999999999", &m, &err), -ERANGE);
}

static void test_restart(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	enum boot_restart p;
	unsigned n;
	assert_int_equal(validate_restart("boot.restart", "no", &p, &n, &err), 0);
	assert_int_equal(p, BOOT_RESTART_NO);
	assert_int_equal(validate_restart("boot.restart", "always", &p, &n, &err), 0);
	assert_int_equal(p, BOOT_RESTART_ALWAYS);
	assert_int_equal(validate_restart("boot.restart", "on-failure", &p, &n, &err), 0);
	assert_int_equal(p, BOOT_RESTART_ON_FAILURE);
	assert_int_equal(n, 0);
	assert_int_equal(validate_restart("boot.restart", "on-failure:3", &p, &n, &err), 0);
	assert_int_equal(n, 3);
	const char *bad[] = { "", "yes", "on-failure:", "on-failure:0", "on-failure:-1", "on-failure:x",
			      "on-failure:1000001", "Always", "on-failure:3 ", NULL };
	for (const char **b = bad; *b; b++)
		assert_int_equal(validate_restart("boot.restart", *b, &p, &n, &err), -EINVAL);
}

static int config(const char *text, struct gr_error *err)
{
	json_error_t je;
	gr_autojson json_t *j = json_loads(text, JSON_ALLOW_NUL, &je);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return validate_config(j, err);
}

static void test_config(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	assert_int_equal(validate_config(NULL, &err), 0);
	assert_int_equal(config("{}", &err), 0);
	assert_int_equal(config("{\"limits.cpu\":\"1\",\"limits.memory\":\"256MiB\",\"limits.processes\":\"100\","
				"\"boot.restart\":\"on-failure:2\",\"environment.FOO_1\":\"bar baz\",\"environment._x\":\"\"}",
				&err),
			 0);
	assert_int_equal(config("{\"limits.gpu\":\"1\"}", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown key \"limits.gpu\""));
	assert_int_equal(config("{\"limits.cpu\":1}", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "config.limits.cpu"));
	assert_non_null(strstr(err.msg, "string"));
	assert_int_equal(config("{\"limits.memory\":\"lots\"}", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "config.limits.memory"));
	assert_int_equal(config("{\"limits.memory\":\"1KiB\"}", &err), -ERANGE);
	assert_non_null(strstr(err.msg, "minimum"));
	assert_int_equal(config("{\"limits.processes\":\"0\"}", &err), -EINVAL);
	assert_int_equal(config("{\"limits.processes\":\"1.5\"}", &err), -EINVAL);
	assert_int_equal(config("{\"limits.processes\":\"1\"}", &err), 0);
	assert_int_equal(config("{\"boot.restart\":\"sometimes\"}", &err), -EINVAL);
	assert_int_equal(config("{\"environment.\":\"x\"}", &err), -EINVAL);
	assert_int_equal(config("{\"environment.1X\":\"x\"}", &err), -EINVAL);
	assert_int_equal(config("{\"environment.A-B\":\"x\"}", &err), -EINVAL);
	assert_int_equal(config("{\"environment.A=B\":\"x\"}", &err), -EINVAL);
	assert_int_equal(config("{\"environment.A\":\"x\\u0000y\"}", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "NUL"));
	assert_int_equal(config("{\"environment.\\u001b[2J\":\"x\"}", &err), -EINVAL);
	assert_null(strchr(err.msg, '\x1b'));
	assert_int_equal(config("[]", &err), -EINVAL);
	char big[CONFIG_VALUE_MAX + 64];
	int n = snprintf(big, sizeof(big), "{\"environment.A\":\"");
	memset(big + n, 'x', CONFIG_VALUE_MAX + 1);
	strcpy(big + n + CONFIG_VALUE_MAX + 1, "\"}");
	assert_int_equal(config(big, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "too long"));
}

static void test_command_and_environment(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	json_error_t je;
	gr_autojson json_t *ok = json_loads("[\"sh\", \"-c\", \"\"]", 0, &je);
	assert_int_equal(validate_command("command", ok, &err), 0);
	gr_autojson json_t *empty = json_array();
	assert_int_equal(validate_command("command", empty, &err), -EINVAL);
	gr_autojson json_t *num = json_loads("[\"sh\", 1]", 0, &je);
	assert_int_equal(validate_command("command", num, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "command[1]"));
	gr_autojson json_t *blank = json_loads("[\"\"]", 0, &je);
	assert_int_equal(validate_command("command", blank, &err), -EINVAL);
	gr_autojson json_t *nul = json_loads("[\"a\\u0000b\"]", JSON_ALLOW_NUL, &je);
	assert_int_equal(validate_command("command", nul, &err), -EINVAL);
	gr_autojson json_t *str = json_string("sh");
	assert_int_equal(validate_command("command", str, &err), -EINVAL);
	gr_autojson json_t *env = json_loads("{\"A\":\"1\",\"_B2\":\"x y\"}", 0, &je);
	assert_int_equal(validate_environment("environment", env, &err), 0);
	gr_autojson json_t *badenv = json_loads("{\"A B\":\"1\"}", 0, &je);
	assert_int_equal(validate_environment("environment", badenv, &err), -EINVAL);
	gr_autojson json_t *badval = json_loads("{\"A\":1}", 0, &je);
	assert_int_equal(validate_environment("environment", badval, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "environment.A"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_hostile_strings_are_quoted),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_cpu),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_command_and_environment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
