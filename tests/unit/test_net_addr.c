/* Unit tests for src/daemon/network/addr.c: strict IPv4 and subnet parsing
 * (hostile inputs), formatting, overlap, host ranges, MACs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/network/addr.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static void test_ipv4_parse_good(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	uint32_t a = 1;
	assert_int_equal(ipv4_parse("10.0.0.1", "ipv4.address", &a, &err), 0);
	assert_int_equal(a, IP(10, 0, 0, 1));
	assert_int_equal(ipv4_parse("0.0.0.0", "x", &a, &err), 0);
	assert_int_equal(a, 0);
	assert_int_equal(ipv4_parse("255.255.255.255", "x", &a, &err), 0);
	assert_int_equal(a, 0xffffffffu);
	assert_int_equal(ipv4_parse("192.168.100.200", "x", &a, &err), 0);
	assert_int_equal(a, IP(192, 168, 100, 200));

	char buf[IPV4_STR_MAX];
	ipv4_format(IP(10, 180, 0, 1), buf);
	assert_string_equal(buf, "10.180.0.1");
	ipv4_format(0xffffffffu, buf);
	assert_string_equal(buf, "255.255.255.255");
	ipv4_format(0, buf);
	assert_string_equal(buf, "0.0.0.0");
}

static void test_ipv4_parse_bad(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	const char *bad[] = { "256.1.1.1", "1.256.1.1", "1.1.1.256", "1000.1.1.1", "01.2.3.4", "1.2.3.04", "1.00.3.4",
			      "1.2.3", "1.2.3.4.5", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "1..3.4", ".1.2.3", "1.2.3.",
			      "a.b.c.d", "-1.2.3.4", "+1.2.3.4", "1.2.3.4/24", "0x1.2.3.4", "1,2,3,4", "1.2.3.4\x1b",
			      "１.2.3.4", "4294967297", "", NULL };
	for (const char **s = bad; *s; s++) {
		uint32_t a = 12345;
		gr_error_clear(&err);
		assert_int_equal(ipv4_parse(*s, "ipv4.address", &a, &err), -EINVAL);
		assert_int_equal(a, 12345); /* untouched */
		assert_non_null(strstr(err.msg, "ipv4.address"));
		assert_null(strchr(err.msg, '\n'));
		assert_null(strchr(err.msg, '\x1b'));
	}
	assert_int_equal(ipv4_parse(NULL, "ipv4.address", &(uint32_t){ 0 }, &err), -EINVAL);

	/* Messages name the value and say why. */
	assert_int_equal(ipv4_parse("256.1.1.1", "ipv4.address", &(uint32_t){ 0 }, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"256.1.1.1\""));
	assert_non_null(strstr(err.msg, "255"));
	assert_int_equal(ipv4_parse("01.2.3.4", "ipv4.address", &(uint32_t){ 0 }, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "leading zero"));
	assert_int_equal(ipv4_parse("", "ipv4.address", &(uint32_t){ 0 }, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "empty"));

	/* A very long string: refused, the message stays short. */
	char huge[10000];
	memset(huge, '1', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	assert_int_equal(ipv4_parse(huge, "ipv4.address", &(uint32_t){ 0 }, &err), -EINVAL);
	assert_true(strlen(err.msg) < 300);
	for (size_t i = 0; i + 2 < sizeof(huge); i += 2)
		huge[i + 1] = '.';
	assert_int_equal(ipv4_parse(huge, "ipv4.address", &(uint32_t){ 0 }, &err), -EINVAL);
	assert_true(strlen(err.msg) < 300);
}

static void test_net_parse_good(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct ipv4_net n = { 0 };
	assert_int_equal(ipv4_net_parse("10.180.0.0/24", "subnet", &n, &err), 0);
	assert_int_equal(n.addr, IP(10, 180, 0, 0));
	assert_int_equal(n.prefix, 24);
	assert_int_equal(ipv4_net_parse("10.0.0.0/8", "subnet", &n, &err), 0);
	assert_int_equal(n.prefix, 8);
	assert_int_equal(ipv4_net_parse("192.168.1.4/30", "subnet", &n, &err), 0);
	assert_int_equal(n.addr, IP(192, 168, 1, 4));
	assert_int_equal(n.prefix, 30);

	char buf[IPV4_NET_STR_MAX];
	ipv4_net_format(&n, buf);
	assert_string_equal(buf, "192.168.1.4/30");
	struct ipv4_net w = { .addr = 0xffffffffu, .prefix = 32 };
	ipv4_net_format(&w, buf);
	assert_string_equal(buf, "255.255.255.255/32");
}

static void test_net_parse_bad(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct ipv4_net n = { .addr = 7, .prefix = 7 };

	assert_int_equal(ipv4_net_parse("10.0.0.1/24", "subnet", &n, &err), -EINVAL);
	assert_string_equal(err.msg, "subnet \"10.0.0.1/24\": host bits are set; did you mean 10.0.0.0/24?");
	assert_int_equal(ipv4_net_parse("10.1.2.3/16", "subnet", &n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "did you mean 10.1.0.0/16?"));

	assert_int_equal(ipv4_net_parse("10.0.0.0/33", "subnet", &n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\"10.0.0.0/33\""));
	assert_non_null(strstr(err.msg, "/8"));
	assert_non_null(strstr(err.msg, "/30"));
	assert_int_equal(ipv4_net_parse("10.0.0.0/7", "subnet", &n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "out of range"));
	assert_int_equal(ipv4_net_parse("10.0.0.0/31", "subnet", &n, &err), -EINVAL);
	assert_int_equal(ipv4_net_parse("10.0.0.0/32", "subnet", &n, &err), -EINVAL);
	assert_int_equal(ipv4_net_parse("0.0.0.0/0", "subnet", &n, &err), -EINVAL);

	const char *bad[] = { "1.2.3.4/", "1.2.3.0/024", "10.0.0.0/08", "10.0.0.0/100", "10.0.0.0/-8", "10.0.0.0/+8",
			      "10.0.0.0/ 8", "10.0.0.0 /8", "10.0.0.0/8 ", "10.0.0.0/8/8", "10.0.0.0", "/24",
			      "256.0.0.0/8", "010.0.0.0/8", "10.0.0/24", "10.0.0.0.0/24", " 10.0.0.0/24",
			      "10.0.0.0/24\n", "10.0.0.0\\24", "10.0.0.0/2a", "", NULL };
	for (const char **s = bad; *s; s++) {
		gr_error_clear(&err);
		assert_int_equal(ipv4_net_parse(*s, "network.subnet", &n, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "network.subnet"));
		assert_null(strchr(err.msg, '\n'));
	}
	assert_int_equal(ipv4_net_parse(NULL, "subnet", &n, &err), -EINVAL);
	/* Failures leave out alone. */
	assert_int_equal(n.addr, 7);
	assert_int_equal(n.prefix, 7);

	char huge[5000];
	memset(huge, '9', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	assert_int_equal(ipv4_net_parse(huge, "subnet", &n, &err), -EINVAL);
	assert_true(strlen(err.msg) < 300);
	memcpy(huge, "10.0.0.0/", 9);
	assert_int_equal(ipv4_net_parse(huge, "subnet", &n, &err), -EINVAL);
	assert_true(strlen(err.msg) < 300);
}

static void test_mask_and_of(void **state)
{
	(void)state;
	assert_int_equal(ipv4_net_mask(0), 0);
	assert_int_equal(ipv4_net_mask(1), 0x80000000u);
	assert_int_equal(ipv4_net_mask(8), 0xff000000u);
	assert_int_equal(ipv4_net_mask(24), 0xffffff00u);
	assert_int_equal(ipv4_net_mask(31), 0xfffffffeu);
	assert_int_equal(ipv4_net_mask(32), 0xffffffffu);

	struct ipv4_net n = ipv4_net_of(IP(10, 1, 2, 3), 24);
	assert_int_equal(n.addr, IP(10, 1, 2, 0));
	assert_int_equal(n.prefix, 24);
	n = ipv4_net_of(IP(10, 1, 2, 3), 0);
	assert_int_equal(n.addr, 0);
	assert_int_equal(n.prefix, 0);
	n = ipv4_net_of(IP(10, 1, 2, 3), 32);
	assert_int_equal(n.addr, IP(10, 1, 2, 3));
	assert_int_equal(n.prefix, 32);
	n = ipv4_net_of(IP(10, 1, 2, 3), 99); /* clamped */
	assert_int_equal(n.prefix, 32);
}

static void test_contains_overlap(void **state)
{
	(void)state;
	struct ipv4_net a = { IP(10, 0, 0, 0), 8 }, b = { IP(10, 1, 0, 0), 16 }, c = { IP(10, 2, 0, 0), 16 },
			d = { IP(11, 0, 0, 0), 8 }, e = { IP(10, 1, 255, 252), 30 }, all = { 0, 0 };
	assert_true(ipv4_net_contains(&a, IP(10, 255, 255, 255)));
	assert_true(ipv4_net_contains(&a, IP(10, 0, 0, 0)));
	assert_false(ipv4_net_contains(&a, IP(11, 0, 0, 0)));
	assert_false(ipv4_net_contains(&a, IP(9, 255, 255, 255)));
	assert_true(ipv4_net_contains(&e, IP(10, 1, 255, 255)));
	assert_false(ipv4_net_contains(&e, IP(10, 1, 255, 251)));
	assert_true(ipv4_net_contains(&all, IP(1, 2, 3, 4)));

	/* Overlap is symmetric: test both ways. */
	const struct {
		const struct ipv4_net *x, *y;
		bool overlap;
	} cases[] = {
		{ &a, &b, true }, { &a, &c, true }, { &b, &c, false }, { &a, &d, false }, { &b, &e, true },
		{ &c, &e, false }, { &a, &a, true }, { &e, &e, true }, { &all, &d, true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ipv4_net_overlap(cases[i].x, cases[i].y), cases[i].overlap);
		assert_int_equal(ipv4_net_overlap(cases[i].y, cases[i].x), cases[i].overlap);
	}
	/* Adjacent /24s do not overlap; a /23 covering both does. */
	struct ipv4_net p = { IP(192, 168, 0, 0), 24 }, q = { IP(192, 168, 1, 0), 24 }, r = { IP(192, 168, 0, 0), 23 };
	assert_false(ipv4_net_overlap(&p, &q));
	assert_false(ipv4_net_overlap(&q, &p));
	assert_true(ipv4_net_overlap(&r, &q));
	assert_true(ipv4_net_overlap(&q, &r));
	assert_true(ipv4_net_overlap(&p, &r));
}

static void test_host_range(void **state)
{
	(void)state;
	struct ipv4_net n24 = { IP(10, 180, 0, 0), 24 };
	assert_int_equal(ipv4_net_gateway(&n24), IP(10, 180, 0, 1));
	assert_int_equal(ipv4_net_broadcast(&n24), IP(10, 180, 0, 255));
	assert_int_equal(ipv4_net_first_host(&n24), IP(10, 180, 0, 2));
	assert_int_equal(ipv4_net_last_host(&n24), IP(10, 180, 0, 254));

	struct ipv4_net n30 = { IP(192, 168, 1, 4), 30 };
	assert_int_equal(ipv4_net_gateway(&n30), IP(192, 168, 1, 5));
	assert_int_equal(ipv4_net_broadcast(&n30), IP(192, 168, 1, 7));
	assert_int_equal(ipv4_net_first_host(&n30), IP(192, 168, 1, 6));
	assert_int_equal(ipv4_net_last_host(&n30), IP(192, 168, 1, 6)); /* one instance */

	struct ipv4_net n8 = { IP(10, 0, 0, 0), 8 };
	assert_int_equal(ipv4_net_gateway(&n8), IP(10, 0, 0, 1));
	assert_int_equal(ipv4_net_broadcast(&n8), IP(10, 255, 255, 255));
	assert_int_equal(ipv4_net_first_host(&n8), IP(10, 0, 0, 2));
	assert_int_equal(ipv4_net_last_host(&n8), IP(10, 255, 255, 254));

	/* Top of the address space: no wrap. */
	struct ipv4_net top = { IP(255, 255, 255, 0), 24 };
	assert_int_equal(ipv4_net_broadcast(&top), 0xffffffffu);
	assert_int_equal(ipv4_net_last_host(&top), IP(255, 255, 255, 254));
}

static void test_mac(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	uint8_t m[6], prev[6] = { 0 };
	int differ = 0;
	for (int i = 0; i < 64; i++) {
		assert_int_equal(mac_random(m, &err), 0);
		assert_int_equal(m[0], 0x0e);
		assert_int_equal(m[0] & 1, 0); /* unicast */
		assert_int_equal(m[0] & 2, 2); /* locally administered */
		if (memcmp(m, prev, 6))
			differ++;
		memcpy(prev, m, 6);
	}
	assert_true(differ > 60); /* 40 random bits: a repeat is practically impossible */

	char buf[MAC_STR_MAX];
	const uint8_t k[6] = { 0x0e, 0x12, 0xab, 0x00, 0xff, 0x9a };
	mac_format(k, buf);
	assert_string_equal(buf, "0e:12:ab:00:ff:9a");
	uint8_t back[6];
	assert_int_equal(mac_parse(buf, back, &err), 0);
	assert_memory_equal(back, k, 6);
	assert_int_equal(mac_parse("0E:12:AB:00:FF:9A", back, &err), 0);
	assert_memory_equal(back, k, 6);

	const char *bad[] = { "", "0e:12:ab:00:ff", "0e:12:ab:00:ff:9a:", "0e:12:ab:00:ff:9a:00", "0e-12-ab-00-ff-9a",
			      "0e12.ab00.ff9a", "0e:12:ab:00:ff:9g", "e:12:ab:00:ff:9a", "0e:12:ab:00:ff:9", " 0e:12:ab:00:ff:9a",
			      "0e:12:ab:00:ff:9a ", "0e:12:ab:00:ff:9a\n", "0e::2:ab:00:ff:9a", "0e:12:ab:00:ff:+a",
			      "0e:12:ab:0:0ff:9a", "0e 12 ab 00 ff 9a", "0e:12:ab:00:ff:9a\x1b", NULL };
	for (const char **s = bad; *s; s++) {
		uint8_t t[6] = { 1, 2, 3, 4, 5, 6 };
		gr_error_clear(&err);
		assert_int_equal(mac_parse(*s, t, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "MAC"));
		assert_null(strchr(err.msg, '\n'));
		assert_null(strchr(err.msg, '\x1b'));
		const uint8_t orig[6] = { 1, 2, 3, 4, 5, 6 };
		assert_memory_equal(t, orig, 6);
	}
	assert_int_equal(mac_parse(NULL, m, &err), -EINVAL);
	char huge[4000];
	memset(huge, 'a', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	assert_int_equal(mac_parse(huge, m, &err), -EINVAL);
	assert_true(strlen(err.msg) < 300);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_parse_good),
		cmocka_unit_test(test_ipv4_parse_bad),
		cmocka_unit_test(test_net_parse_good),
		cmocka_unit_test(test_net_parse_bad),
		cmocka_unit_test(test_mask_and_of),
		cmocka_unit_test(test_contains_overlap),
		cmocka_unit_test(test_host_range),
		cmocka_unit_test(test_mac),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
