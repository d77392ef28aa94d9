/* Links, addresses and routes over rtnetlink (libmnl), and sysctls.
 *
 * Every call works in the network namespace of the calling thread (gureumd
 * lives in the host's, or in a test's), except the ones taking a netns file
 * descriptor: those do their work on a short-lived thread that enters that
 * namespace (setns is per thread), so the caller's threads never change
 * namespace. Each call opens its own netlink socket: callers may run on any
 * thread. Every function returns 0 or a negative errno with err filled;
 * kernel errors carry the extended ack message when the kernel gives one. */
#ifndef GR_DAEMON_NETWORK_NETLINK_H
#define GR_DAEMON_NETWORK_NETLINK_H

#include <stddef.h>
#include <stdint.h>
#include "common/error.h"
#include "daemon/network/addr.h"

/* Names of links are checked as the kernel does (1-15 bytes, not "." or
 * "..", no '/', ':' or white space): -EINVAL otherwise. */

/* The interface index (> 0), or -ENODEV when there is no such link (err filled). */
int nl_link_index(const char *name, struct gr_error *err);

/* Makes the bridge NAME exist and be up, with gw/prefix among its addresses
 * (other addresses are left alone; a missing one is added). A link of that
 * name that is not a bridge: -EEXIST. A bridge it creates gets a random
 * locally administered MAC of its own, so the gateway's MAC does not follow
 * its ports as they come and go. prefix 1..32, gw not 0. Idempotent. */
int nl_bridge_ensure(const char *name, uint32_t gw, unsigned prefix, struct gr_error *err);

/* Deletes the link (a bridge, a veth pair by either end, a tap). 0 when
 * there is none. */
int nl_link_delete(const char *name, struct gr_error *err);

/* A veth pair: host_name stays here, attached to bridge (a port) and up;
 * its peer is created directly inside the namespace netns_fd as peer_name,
 * with peer_mac (NULL: the kernel's random one), and left down
 * (nl_netns_configure brings it up). mtu 0: the bridge's. -EEXIST when
 * host_name exists here (or peer_name there); -ENODEV when there is no
 * bridge. When the pair cannot be attached it is deleted again: on failure
 * nothing is left. */
int nl_veth_create(const char *host_name, const char *bridge, int netns_fd, const char *peer_name,
		   const uint8_t peer_mac[6], unsigned mtu, struct gr_error *err);

/* A persistent tap NAME (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, owned by
 * root) for a VM engine to open by name, attached to bridge (a port, in
 * hairpin mode) and up. -EEXIST... as the kernel says when NAME exists with
 * other flags; on failure nothing is left. nl_link_delete removes it. */
int nl_tap_create(const char *name, const char *bridge, struct gr_error *err);

/* Attaches the link to bridge (as a port) and sets it up (drift repair). */
int nl_link_set_master(const char *name, const char *bridge, struct gr_error *err);

/* Inside the namespace netns_fd: lo up; ifname gets addr/prefix and is set
 * up; a default route via gateway (none when gateway is 0), replacing the
 * main table's default route. Idempotent (a restart may run it again).
 * -ENODEV when ifname is not in the namespace; -EINVAL when netns_fd is not
 * a network namespace. */
int nl_netns_configure(int netns_fd, const char *ifname, uint32_t addr, unsigned prefix, uint32_t gateway,
		       struct gr_error *err);

/* Inside the namespace netns_fd: just lo up (network=none). */
int nl_netns_loopback(int netns_fd, struct gr_error *err);

/* Every IPv4 destination this namespace already reaches: the destinations
 * of the routes in every table (unicast routes only, not the default route
 * 0.0.0.0/0), and the subnet of every address (and of its peer on
 * point-to-point links). Host byte order, host bits cleared; duplicates are
 * possible. *out: malloc'd array of *n (NULL when *n is 0); free() it. */
int nl_ipv4_in_use(struct ipv4_net **out, size_t *n, struct gr_error *err);

/* Writes /proc/sys/KEY (KEY like "net/ipv4/ip_forward" or
 * "net/ipv4/conf/gureum0/route_localnet"); the namespace is the caller's.
 * A KEY starting with '/' or containing ".." is refused (-EINVAL); a
 * missing key is -ENOENT. */
int net_sysctl_write(const char *key, const char *value, struct gr_error *err);

#endif
