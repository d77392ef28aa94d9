/* IPv4 addresses, subnets and MAC addresses (addr.h). */
#include "daemon/network/addr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "daemon/validate.h"

#define Q(s) validate_quote((s), (char[VALIDATE_QUOTE_MAX]){ 0 }, VALIDATE_QUOTE_MAX)

/* A decimal number of 1..maxdigits digits without a leading zero (a lone
 * "0" is fine) at *p; advances *p past it. false when there is none. */
static bool parse_decimal(const char **p, unsigned maxdigits, unsigned *out)
{
	const char *s = *p;
	unsigned v = 0, n = 0;
	while (s[n] >= '0' && s[n] <= '9') {
		if (n == maxdigits)
			return false;
		v = v * 10 + (unsigned)(s[n] - '0');
		n++;
	}
	if (n == 0 || (n > 1 && s[0] == '0'))
		return false;
	*p = s + n;
	*out = v;
	return true;
}

/* Parses a dotted quad at the start of s; *end points after it. On failure
 * returns -EINVAL with a reason (no value quoted: the caller adds it). */
static int parse_quad(const char *s, const char **end, uint32_t *out, const char **why)
{
	uint32_t a = 0;
	const char *p = s;
	for (int i = 0; i < 4; i++) {
		if (i > 0) {
			if (*p != '.') {
				*why = "expected four decimal numbers separated by dots, like 10.0.0.1";
				return -EINVAL;
			}
			p++;
		}
		if (*p == '0' && p[1] >= '0' && p[1] <= '9') {
			*why = "a part has a leading zero (write 1, not 01)";
			return -EINVAL;
		}
		unsigned v;
		if (!parse_decimal(&p, 3, &v)) {
			*why = (*p >= '0' && *p <= '9') ? "a part is greater than 255"
							 : "expected four decimal numbers separated by dots, like 10.0.0.1";
			return -EINVAL;
		}
		if (v > 255) {
			*why = "a part is greater than 255";
			return -EINVAL;
		}
		a = (a << 8) | v;
	}
	*end = p;
	*out = a;
	return 0;
}

int ipv4_parse(const char *s, const char *what, uint32_t *out, struct gr_error *err)
{
	if (!what)
		what = "IPv4 address";
	if (!s || !*s)
		return gr_error_set(err, EINVAL, "%s: empty; expected an IPv4 address like 10.0.0.1", what);
	const char *why = NULL, *end = NULL;
	uint32_t a;
	if (strnlen(s, IPV4_STR_MAX) >= IPV4_STR_MAX)
		return gr_error_set(err, EINVAL, "%s %s: too long for an IPv4 address (like 10.0.0.1)", what, Q(s));
	if (parse_quad(s, &end, &a, &why) < 0)
		return gr_error_set(err, EINVAL, "%s %s: not an IPv4 address: %s", what, Q(s), why);
	if (*end)
		return gr_error_set(err, EINVAL, "%s %s: not an IPv4 address: unexpected text after the fourth number",
				    what, Q(s));
	*out = a;
	return 0;
}

void ipv4_format(uint32_t a, char buf[IPV4_STR_MAX])
{
	snprintf(buf, IPV4_STR_MAX, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

int ipv4_net_parse(const char *s, const char *what, struct ipv4_net *out, struct gr_error *err)
{
	if (!what)
		what = "subnet";
	if (!s || !*s)
		return gr_error_set(err, EINVAL, "%s: empty; expected a subnet like 10.0.0.0/24", what);
	if (strnlen(s, IPV4_NET_STR_MAX) >= IPV4_NET_STR_MAX)
		return gr_error_set(err, EINVAL, "%s %s: too long for a subnet (like 10.0.0.0/24)", what, Q(s));
	const char *why = NULL, *p = NULL;
	uint32_t a;
	if (parse_quad(s, &p, &a, &why) < 0)
		return gr_error_set(err, EINVAL, "%s %s: not a subnet: %s", what, Q(s), why);
	if (*p != '/')
		return gr_error_set(err, EINVAL, "%s %s: not a subnet: expected ADDRESS/PREFIX, like 10.0.0.0/24",
				    what, Q(s));
	p++;
	unsigned prefix;
	if (*p == '0' && p[1])
		return gr_error_set(err, EINVAL, "%s %s: the prefix length has a leading zero", what, Q(s));
	if (!parse_decimal(&p, 2, &prefix) || *p)
		return gr_error_set(err, EINVAL, "%s %s: the prefix length must be a number from %d to %d", what,
				    Q(s), IPV4_NET_PREFIX_MIN, IPV4_NET_PREFIX_MAX);
	if (prefix < IPV4_NET_PREFIX_MIN || prefix > IPV4_NET_PREFIX_MAX)
		return gr_error_set(err, EINVAL, "%s %s: the prefix length /%u is out of range: it must be from /%d to /%d",
				    what, Q(s), prefix, IPV4_NET_PREFIX_MIN, IPV4_NET_PREFIX_MAX);
	struct ipv4_net n = ipv4_net_of(a, prefix);
	if (n.addr != a) {
		char suggestion[IPV4_NET_STR_MAX];
		ipv4_net_format(&n, suggestion);
		return gr_error_set(err, EINVAL, "%s %s: host bits are set; did you mean %s?", what, Q(s), suggestion);
	}
	*out = n;
	return 0;
}

uint32_t ipv4_net_mask(unsigned prefix)
{
	if (prefix == 0)
		return 0;
	if (prefix >= 32)
		return 0xffffffffu;
	return 0xffffffffu << (32 - prefix);
}

struct ipv4_net ipv4_net_of(uint32_t addr, unsigned prefix)
{
	if (prefix > 32)
		prefix = 32;
	return (struct ipv4_net){ .addr = addr & ipv4_net_mask(prefix), .prefix = prefix };
}

void ipv4_net_format(const struct ipv4_net *n, char buf[IPV4_NET_STR_MAX])
{
	char a[IPV4_STR_MAX];
	ipv4_format(n->addr, a);
	snprintf(buf, IPV4_NET_STR_MAX, "%s/%u", a, n->prefix > 32 ? 32 : n->prefix);
}

bool ipv4_net_contains(const struct ipv4_net *n, uint32_t a)
{
	uint32_t m = ipv4_net_mask(n->prefix);
	return (a & m) == (n->addr & m);
}

bool ipv4_net_overlap(const struct ipv4_net *a, const struct ipv4_net *b)
{
	/* Two prefixes overlap exactly when one contains the other: compare
	 * under the shorter mask. */
	uint32_t m = ipv4_net_mask(a->prefix < b->prefix ? a->prefix : b->prefix);
	return (a->addr & m) == (b->addr & m);
}

uint32_t ipv4_net_gateway(const struct ipv4_net *n)
{
	return (n->addr & ipv4_net_mask(n->prefix)) + 1;
}

uint32_t ipv4_net_broadcast(const struct ipv4_net *n)
{
	return (n->addr & ipv4_net_mask(n->prefix)) | ~ipv4_net_mask(n->prefix);
}

uint32_t ipv4_net_first_host(const struct ipv4_net *n)
{
	return ipv4_net_gateway(n) + 1;
}

uint32_t ipv4_net_last_host(const struct ipv4_net *n)
{
	return ipv4_net_broadcast(n) - 1;
}

int mac_random(uint8_t mac[6], struct gr_error *err)
{
	size_t got = 0;
	while (got < 6) {
		ssize_t r = getrandom(mac + got, 6 - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return gr_error_sys(err, errno, "generating a random MAC address: getrandom");
		}
		got += (size_t)r;
	}
	/* 0x0e: unicast (bit 0 clear), locally administered (bit 1 set), and
	 * recognisably gureum's. */
	mac[0] = 0x0e;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mac_parse(const char *s, uint8_t mac[6], struct gr_error *err)
{
	if (!s || !*s)
		return gr_error_set(err, EINVAL, "MAC address: empty; expected six hex bytes like 0e:12:34:56:78:9a");
	uint8_t m[6];
	if (strnlen(s, MAC_STR_MAX) != MAC_STR_MAX - 1)
		goto bad;
	for (int i = 0; i < 6; i++) {
		const char *p = s + 3 * i;
		int hi = hexval(p[0]), lo = hexval(p[1]);
		if (hi < 0 || lo < 0)
			goto bad;
		if (i < 5 && p[2] != ':')
			goto bad;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(mac, m, 6);
	return 0;
bad:
	return gr_error_set(err, EINVAL, "MAC address %s: expected six two-digit hex bytes separated by colons, like 0e:12:34:56:78:9a",
			    Q(s));
}

void mac_format(const uint8_t mac[6], char buf[MAC_STR_MAX])
{
	snprintf(buf, MAC_STR_MAX, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}
