/* Unit tests for the pure parts of the gureum CLI (src/cli/format.c):
 * CSV quoting, YAML escaping and dumping, tables, sizes, durations,
 * timestamps, argument parsing, URL escaping, made-up names, shell quoting
 * and the console's escape sequence. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/format.h"
#include "common/cleanup.h"

/* Runs fn(out) into a memory buffer and returns what it wrote. */
#define CAPTURE(expr) ({ \
	char *_buf = NULL; size_t _len = 0; \
	FILE *out = open_memstream(&_buf, &_len); \
	assert_non_null(out); \
	expr; \
	fclose(out); \
	_buf; })

static void test_csv_plain_and_quoted(void **state)
{
	(void)state;
	const char *row[] = { "c1", "a,b", "say \"hi\"", "line\nbreak", " pad", "", NULL };
	gr_autofree char *s = CAPTURE(cli_csv_row(out, row, 7));
	assert_string_equal(s, "c1,\"a,b\",\"say \"\"hi\"\"\",\"line\nbreak\",\" pad\",,\n");
	gr_autofree char *cr = CAPTURE(cli_csv_field(out, "a\rb"));
	assert_string_equal(cr, "\"a\rb\"");
}

static void test_yaml_scalars(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } cases[] = {
		{ "c1", "c1" },
		{ "Running", "Running" },
		{ "", "\"\"" },
		{ "true", "\"true\"" },
		{ "No", "\"No\"" },
		{ "null", "\"null\"" },
		{ "~", "\"~\"" },
		{ "123", "\"123\"" },
		{ "-1.5", "\"-1.5\"" },
		{ "2024-01-01T00:00:00Z", "\"2024-01-01T00:00:00Z\"" },
		{ "a: b", "\"a: b\"" },
		{ "key:", "\"key:\"" },
		{ "a #c", "\"a #c\"" },
		{ "- x", "\"- x\"" },
		{ "*ref", "\"*ref\"" },
		{ " lead", "\" lead\"" },
		{ "say \"hi\"\n", "\"say \\\"hi\\\"\\n\"" },
		{ "back\\slash\t", "\"back\\\\slash\\t\"" },
		{ "bell\x07", "\"bell\\x07\"" },
		{ "caf\xc3\xa9", "\"caf\xc3\xa9\"" },
		{ "limits.memory", "limits.memory" },
		{ "/1.0/instances/c1", "/1.0/instances/c1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gr_autofree char *s = CAPTURE(cli_yaml_scalar(out, cases[i].in));
		assert_string_equal(s, cases[i].out);
	}
}

static void test_yaml_dump_nested(void **state)
{
	(void)state;
	json_error_t jerr;
	gr_autojson json_t *v = json_loads(
		"[{\"name\":\"c1\",\"config\":{\"limits.memory\":\"256MiB\"},\"command\":[\"sh\",\"-c\",\"exit 7\"],"
		"\"pid\":12,\"ok\":true,\"none\":null,\"empty\":{},\"list\":[]},"
		"{\"name\":\"yes\"}]", JSON_PRESERVE_ORDER, &jerr);
	assert_non_null(v);
	gr_autofree char *s = CAPTURE(cli_yaml_dump(out, v, 0));
	assert_string_equal(s,
		"- name: c1\n"
		"  config:\n"
		"    limits.memory: \"256MiB\"\n"   /* starts like a number: quoted */
		"  command:\n"
		"  - sh\n"
		"  - \"-c\"\n"                    /* a leading - is an indicator */
		"  - exit 7\n"
		"  pid: 12\n"
		"  ok: true\n"
		"  none: null\n"
		"  empty: {}\n"
		"  list: []\n"
		"- name: \"yes\"\n");
	gr_autojson json_t *empty = json_array();
	gr_autofree char *e = CAPTURE(cli_yaml_dump(out, empty, 0));
	assert_string_equal(e, "[]\n");
}

static void test_table(void **state)
{
	(void)state;
	const char *headers[] = { "NAME", "STATE" };
	struct cli_table *t = cli_table_new(2, headers);
	assert_non_null(t);
	const char *r1[] = { "c1", "RUNNING" };
	const char *r2[] = { "longer-name", NULL };
	assert_int_equal(cli_table_add(t, r1), 0);
	assert_int_equal(cli_table_add(t, r2), 0);
	gr_autofree char *s = CAPTURE(cli_table_print(t, out));
	assert_string_equal(s,
		"+-------------+---------+\n"
		"| NAME        | STATE   |\n"
		"+-------------+---------+\n"
		"| c1          | RUNNING |\n"
		"| longer-name |         |\n"
		"+-------------+---------+\n");
	cli_table_free(t);

	/* Many rows (growth), and no rows at all. */
	t = cli_table_new(2, headers);
	for (int i = 0; i < 100; i++)
		assert_int_equal(cli_table_add(t, r1), 0);
	cli_table_free(t);
	t = cli_table_new(2, headers);
	gr_autofree char *e = CAPTURE(cli_table_print(t, out));
	assert_string_equal(e, "+------+-------+\n| NAME | STATE |\n+------+-------+\n");
	cli_table_free(t);
}

static void test_sizes_and_durations(void **state)
{
	(void)state;
	char b[32];
	cli_format_size(0, b, sizeof(b)); assert_string_equal(b, "0B");
	cli_format_size(1023, b, sizeof(b)); assert_string_equal(b, "1023B");
	cli_format_size(1536, b, sizeof(b)); assert_string_equal(b, "1.50KiB");
	cli_format_size(256ull << 20, b, sizeof(b)); assert_string_equal(b, "256.00MiB");
	cli_format_size(3ull << 30, b, sizeof(b)); assert_string_equal(b, "3.00GiB");
	cli_format_size(UINT64_MAX, b, sizeof(b)); assert_string_equal(b, "16.00EiB");
	cli_format_duration_ns(0, b, sizeof(b)); assert_string_equal(b, "0.00s");
	cli_format_duration_ns(250000000ull, b, sizeof(b)); assert_string_equal(b, "0.25s");
	cli_format_duration_ns(59990000000ull, b, sizeof(b)); assert_string_equal(b, "59.99s");
	cli_format_duration_ns(184ull * 1000000000ull, b, sizeof(b)); assert_string_equal(b, "3m4s");
	cli_format_duration_ns(7380ull * 1000000000ull, b, sizeof(b)); assert_string_equal(b, "2h3m");
	cli_format_duration_ns(363600ull * 1000000000ull, b, sizeof(b)); assert_string_equal(b, "4d5h");
}

static void test_timestamps(void **state)
{
	(void)state;
	char b[64];
	assert_int_equal(cli_format_timestamp("2024-05-01T10:20:30Z", b, sizeof(b)), 0);
	assert_string_equal(b, "2024/05/01 10:20 UTC");
	assert_int_equal(cli_format_timestamp("2024-05-01T10:20:30.123456789Z", b, sizeof(b)), 0);
	assert_string_equal(b, "2024/05/01 10:20 UTC");
	assert_int_equal(cli_format_timestamp("2024-05-01T01:20:30+02:00", b, sizeof(b)), 0);
	assert_string_equal(b, "2024/04/30 23:20 UTC");
	assert_int_equal(cli_format_timestamp("2024-12-31T23:30:00-01:00", b, sizeof(b)), 0);
	assert_string_equal(b, "2025/01/01 00:30 UTC");
	assert_int_equal(cli_format_timestamp("yesterday", b, sizeof(b)), -EINVAL);
	assert_string_equal(b, "yesterday");
	assert_int_equal(cli_format_timestamp("2024-13-01T00:00:00Z", b, sizeof(b)), -EINVAL);
	assert_int_equal(cli_format_timestamp("2024-05-01T10:20:30", b, sizeof(b)), -EINVAL);
	assert_int_equal(cli_format_timestamp("2024-05-01T10:20:30Zjunk", b, sizeof(b)), -EINVAL);
	assert_int_equal(cli_format_timestamp("", b, sizeof(b)), -EINVAL);
	assert_string_equal(b, "");
}

static void test_key_value(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	char *k = NULL, *v = NULL;
	assert_int_equal(cli_parse_key_value("limits.memory=256MiB", "-c", &k, &v, &err), 0);
	assert_string_equal(k, "limits.memory");
	assert_string_equal(v, "256MiB");
	free(k); free(v);
	assert_int_equal(cli_parse_key_value("environment.A=b=c", "-c", &k, &v, &err), 0);
	assert_string_equal(k, "environment.A");
	assert_string_equal(v, "b=c");
	free(k); free(v);
	assert_int_equal(cli_parse_key_value("X=", "--env", &k, &v, &err), 0);
	assert_string_equal(v, "");
	free(k); free(v);
	assert_int_equal(cli_parse_key_value("novalue", "-c", &k, &v, &err), -EINVAL);
	assert_string_equal(err.msg, "-c novalue: expected KEY=VALUE");
	assert_int_equal(cli_parse_key_value("=x", "--env", &k, &v, &err), -EINVAL);
	assert_string_equal(err.msg, "--env =x: the key is empty");
}

static void test_user(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	uint32_t u = 1, g = 1;
	bool has_gid = true;
	assert_int_equal(cli_parse_user("0", &u, &g, &has_gid, &err), 0);
	assert_int_equal(u, 0);
	assert_false(has_gid);
	assert_int_equal(cli_parse_user("1000:100", &u, &g, &has_gid, &err), 0);
	assert_int_equal(u, 1000);
	assert_int_equal(g, 100);
	assert_true(has_gid);
	assert_int_equal(cli_parse_user("root", &u, &g, &has_gid, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--user root: the user id must be a decimal number"));
	assert_int_equal(cli_parse_user("1:", &u, &g, &has_gid, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "group id"));
	assert_int_equal(cli_parse_user("-1", &u, &g, &has_gid, &err), -EINVAL);
	assert_int_equal(cli_parse_user("4294967295", &u, &g, &has_gid, &err), -EINVAL);
	assert_int_equal(cli_parse_user("1:2:3", &u, &g, &has_gid, &err), -EINVAL);
}

static void test_parse_format(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	enum cli_format f = CLI_FORMAT_TABLE;
	assert_int_equal(cli_parse_format("csv", &f, &err), 0);
	assert_int_equal(f, CLI_FORMAT_CSV);
	assert_int_equal(cli_parse_format("yaml", &f, &err), 0);
	assert_int_equal(f, CLI_FORMAT_YAML);
	assert_int_equal(cli_parse_format("xml", &f, &err), -EINVAL);
	assert_string_equal(err.msg, "--format xml: expected table, json, yaml or csv");
	json_t *v = json_pack("[{s:s}]", "name", "a");
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_int_equal(cli_print_document(out, v, CLI_FORMAT_TABLE), 0);
	assert_int_equal(cli_print_document(out, v, CLI_FORMAT_JSON), 1);
	fclose(out);
	assert_string_equal(buf, "[\n  {\n    \"name\": \"a\"\n  }\n]\n");
	free(buf);
	assert_string_equal(cli_json_str(json_array_get(v, 0), "name", "-"), "a");
	assert_string_equal(cli_json_str(json_array_get(v, 0), "size", "-"), "-");
	json_decref(v);
}

static void test_parse_long(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	long v;
	assert_int_equal(cli_parse_long("30", "--timeout", 0, 86400, &v, &err), 0);
	assert_int_equal(v, 30);
	assert_int_equal(cli_parse_long("", "--timeout", 0, 86400, &v, &err), -EINVAL);
	assert_int_equal(cli_parse_long("3s", "--timeout", 0, 86400, &v, &err), -EINVAL);
	assert_string_equal(err.msg, "--timeout 3s: expected an integer");
	assert_int_equal(cli_parse_long("-1", "--timeout", 0, 86400, &v, &err), -ERANGE);
	assert_string_equal(err.msg, "--timeout -1: out of range (0 to 86400)");
	assert_int_equal(cli_parse_long("99999999999999999999", "--timeout", 0, 86400, &v, &err), -ERANGE);
	assert_int_equal(cli_parse_long(" 5", "--timeout", 0, 86400, &v, &err), -EINVAL);
}

static void test_url_escape(void **state)
{
	(void)state;
	gr_autofree char *a = cli_url_escape("c1");
	assert_string_equal(a, "c1");
	gr_autofree char *b = cli_url_escape("../x?y=1&z#w %/");
	assert_string_equal(b, "..%2Fx%3Fy%3D1%26z%23w%20%25%2F");
	gr_autofree char *c = cli_url_escape("lifecycle,operation");
	assert_string_equal(c, "lifecycle%2Coperation");
	gr_autofree char *d = cli_url_escape("\xc3\xa9");
	assert_string_equal(d, "%C3%A9");
}

static bool valid_instance_name(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 63 || !isalnum((unsigned char)s[0]) || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return false;
	return true;
}

static void test_generated_names(void **state)
{
	(void)state;
	char a[64], b[64];
	for (uint32_t seed = 0; seed < 5000; seed += 7) {
		cli_generate_name(seed, a, sizeof(a));
		assert_true(valid_instance_name(a));
		assert_non_null(strchr(a, '-'));
	}
	cli_generate_name(1, a, sizeof(a));
	cli_generate_name(2, b, sizeof(b));
	assert_string_not_equal(a, b);
}

static void test_shell_join(void **state)
{
	(void)state;
	json_error_t jerr;
	gr_autojson json_t *argv = json_loads("[\"sh\",\"-c\",\"echo 'hi' $X\",\"\",\"a=b\"]", 0, &jerr);
	gr_autofree char *s = cli_shell_join(argv);
	assert_string_equal(s, "sh -c 'echo '\\''hi'\\'' $X' '' a=b");
}

static void test_escape_sequence(void **state)
{
	(void)state;
	struct cli_escape st = { 0 };
	unsigned char out[64];
	size_t n;
	/* Plain bytes pass through. */
	assert_int_equal(cli_escape_feed(&st, (const unsigned char *)"ls\r", 3, out, &n), 3);
	assert_memory_equal(out, "ls\r", 3);
	/* Ctrl-a q detaches; what came before is kept. */
	assert_int_equal(cli_escape_feed(&st, (const unsigned char *)"x\x01q", 3, out, &n), -1);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 'x');
	/* Ctrl-a Ctrl-a sends one Ctrl-a; Ctrl-a + other sends both. */
	st.pending = false;
	assert_int_equal(cli_escape_feed(&st, (const unsigned char *)"\x01\x01" "\x01z", 4, out, &n), 3);
	assert_memory_equal(out, "\x01\x01z", 3);
	/* Split across reads. */
	assert_int_equal(cli_escape_feed(&st, (const unsigned char *)"\x01", 1, out, &n), 0);
	assert_true(st.pending);
	assert_int_equal(cli_escape_feed(&st, (const unsigned char *)"q", 1, out, &n), -1);
	assert_int_equal(n, 0);
	/* Worst case output: a pending Ctrl-a plus one byte. */
	st.pending = true;
	assert_int_equal(cli_escape_feed(&st, (const unsigned char *)"a", 1, out, &n), 2);
	assert_memory_equal(out, "\x01" "a", 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_plain_and_quoted),
		cmocka_unit_test(test_yaml_scalars),
		cmocka_unit_test(test_yaml_dump_nested),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_sizes_and_durations),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_key_value),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_parse_long),
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_url_escape),
		cmocka_unit_test(test_generated_names),
		cmocka_unit_test(test_shell_join),
		cmocka_unit_test(test_escape_sequence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
