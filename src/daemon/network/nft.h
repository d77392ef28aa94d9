/* gureum's nftables rules: one table, `table inet gureum`, that belongs to
 * gureumd alone. It is always written whole, in one atomic transaction
 * (add table; delete table; table inet gureum { ... }), from the database's
 * networks and forwards, so a change, a crash or someone's edit can never
 * leave it half right, and rules outside it are never touched.
 *
 * What the table does (set bridges = every gureum bridge; names are
 * validated, [a-z0-9]{1,15}, and protocols are tcp|udp, before any of it
 * becomes text):
 *  - chain forward (filter, policy accept): for each isolated bridge B,
 *    `iifname B oifname != B oifname @bridges drop` and the same reversed:
 *    an isolated network exchanges nothing with another gureum bridge, in
 *    either direction, while traffic that comes back into B itself (hairpin,
 *    and bridged frames when br_netfilter is active) stays; then traffic
 *    from or to each bridge is accepted;
 *  - chain input (filter, policy accept): DHCP (udp 67) and DNS (udp/tcp 53)
 *    from each bridge accepted (meaningful only next to a table that drops);
 *  - chains prerouting (nat, dstnat: other hosts and instances) and output
 *    (nat, -100: the host itself, 127.0.0.1 included): each forward is
 *    `meta nfproto ipv4 fib daddr type local PROTO dport HOST_PORT dnat ip
 *    to ADDR:PORT`, i.e. HOST_PORT on any local address;
 *  - chain postrouting (nat, srcnat): `ip saddr SUBNET ip daddr != SUBNET
 *    masquerade` for NAT networks; for every bridge, masquerade of a
 *    DNAT'ed connection from its own subnet back into it (an instance
 *    reaching a forward to a neighbour or to itself gets the replies through
 *    the host; to itself it also needs hairpin mode on its bridge port), and
 *    masquerade of 127.0.0.0/8 sources leaving by the bridge (a forward
 *    reached via the host's loopback; needs net.ipv4.conf.B.route_localnet=1).
 * With no networks and no forwards the table still exists, chains empty.
 * Validation also refuses a bridge listed twice, a (protocol, host port)
 * forwarded twice, port 0, address 0.0.0.0 and subnets with host bits set.
 * Uses libnftables (nft's own library) to run the text. */
#ifndef GR_DAEMON_NETWORK_NFT_H
#define GR_DAEMON_NETWORK_NFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"
#include "daemon/network/addr.h"

#define NFT_TABLE "gureum"

struct nft_network {
	const char *bridge;       /* interface name (validated: [a-z0-9]{1,15}) */
	struct ipv4_net subnet;
	bool nat;
	bool isolated;
};

struct nft_forward {
	const char *protocol;     /* "tcp" or "udp" */
	uint16_t host_port;
	uint32_t addr;            /* the instance's address */
	uint16_t port;
};

/* The whole table as nft text (malloc'd), or NULL with err filled. */
char *nft_ruleset(const struct nft_network *nets, size_t n_nets, const struct nft_forward *fw, size_t n_fw,
		  struct gr_error *err);
/* Runs the text (nft_ruleset's; anything not starting with the table's
 * replacement is refused) in one transaction: it applies whole or not at
 * all. err gets nft's messages on one line, with the text's line number. */
int nft_apply(const char *text, struct gr_error *err);
/* Deletes the table; 0 when there is none. */
int nft_remove(struct gr_error *err);

#endif
