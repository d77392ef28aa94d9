/* IPv4 addresses, subnets and MAC addresses: parsing, formatting and the
 * arithmetic IPAM needs. Pure functions (no I/O). Addresses are uint32_t in
 * host byte order. */
#ifndef GR_DAEMON_NETWORK_ADDR_H
#define GR_DAEMON_NETWORK_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

#define IPV4_STR_MAX 16           /* "255.255.255.255" + NUL */
#define IPV4_NET_STR_MAX 19       /* "255.255.255.255/32" + NUL */
#define MAC_STR_MAX 18            /* "aa:bb:cc:dd:ee:ff" + NUL */

/* The prefixes a gureum network may have: /8 (16 M addresses) to /30 (the
 * gateway and one instance). */
#define IPV4_NET_PREFIX_MIN 8
#define IPV4_NET_PREFIX_MAX 30

struct ipv4_net {
	uint32_t addr;            /* the network address (host bits zero) */
	unsigned prefix;          /* 0..32 */
};

/* Strict dotted quad: four decimal parts 0..255, no leading zeros (so "010"
 * cannot mean octal), nothing else (no spaces). what names the value in
 * messages ("ipv4.address"); on failure *out is untouched. */
int ipv4_parse(const char *s, const char *what, uint32_t *out, struct gr_error *err);
void ipv4_format(uint32_t a, char buf[IPV4_STR_MAX]);

/* "A.B.C.D/N" with N in IPV4_NET_PREFIX_MIN..MAX and the host bits zero
 * (else the error suggests the network address: "did you mean 10.1.2.0/24?"). */
int ipv4_net_parse(const char *s, const char *what, struct ipv4_net *out, struct gr_error *err);
/* Any prefix 0..32 and host bits cleared: for routes read from the kernel. */
struct ipv4_net ipv4_net_of(uint32_t addr, unsigned prefix);
void ipv4_net_format(const struct ipv4_net *n, char buf[IPV4_NET_STR_MAX]);

uint32_t ipv4_net_mask(unsigned prefix);
bool ipv4_net_contains(const struct ipv4_net *n, uint32_t a);
bool ipv4_net_overlap(const struct ipv4_net *a, const struct ipv4_net *b);
/* The gateway is the first host address (.1 of a /24), the bridge's own. */
uint32_t ipv4_net_gateway(const struct ipv4_net *n);
uint32_t ipv4_net_broadcast(const struct ipv4_net *n);
/* The addresses instances may have: gateway + 1 .. broadcast - 1 (meant for
 * prefixes up to /30; for /31 and /32 first > last). */
uint32_t ipv4_net_first_host(const struct ipv4_net *n);
uint32_t ipv4_net_last_host(const struct ipv4_net *n);

/* A random locally administered unicast MAC (first octet 0x0e). */
int mac_random(uint8_t mac[6], struct gr_error *err);
/* Exactly "xx:xx:xx:xx:xx:xx", hex in either case; checks the form only. */
int mac_parse(const char *s, uint8_t mac[6], struct gr_error *err);
void mac_format(const uint8_t mac[6], char buf[MAC_STR_MAX]);

#endif
