/* Networks: gureumd's managed bridges, their addresses (IPAM), NAT,
 * isolation, port forwards, DHCP and DNS (README "Networks").
 *
 * The database (store/networks.h) is the truth; everything on the host is
 * made from it and can be made again: a bridge per network (netlink.h) with
 * the gateway address, one nftables table for all (nft.h, rewritten whole
 * after every change), a dnsmasq per network (dnsmasq.h) whose host files
 * list the network's instances. network_startup makes all of it match the
 * database (a missing bridge, a dead dnsmasq, stale rules, a veth that lost
 * its bridge), creating the default network on the first start; a
 * supervisor thread restarts a dnsmasq that dies.
 *
 * One mutex orders the network calls of a daemon. Every function returns 0
 * or a negative errno with err filled. */
#ifndef GR_DAEMON_NETWORK_NETWORK_H
#define GR_DAEMON_NETWORK_NETWORK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"
#include "daemon/daemon.h"

#define NETWORK_DEFAULT "default"

/* Start-up: the default network when there is no network yet, then every
 * network made real; starts the dnsmasq supervisor. A network that cannot
 * be made real is logged and shown as errored, never fatal. */
int network_startup(struct daemon *d, struct gr_error *err);
/* At gureumd's exit: stops the supervisor thread (bridges, rules and
 * dnsmasq stay: instances keep running). */
void network_shutdown(struct daemon *d);

/* subnet NULL: one chosen that collides with no route or address of the
 * host and no other network. -EEXIST for a taken name. *out (may be NULL):
 * as network_info. */
int network_create(struct daemon *d, const char *name, const char *subnet, bool nat, bool isolated, json_t **out,
		   struct gr_error *err);
/* {"name","bridge","subnet","gateway","nat","isolated","created_at","used_by","status","status_detail"} */
int network_info(struct daemon *d, const char *name, json_t **out, struct gr_error *err);
int network_list(struct daemon *d, json_t **out, struct gr_error *err);
/* -EBUSY naming the instances that use it. */
int network_delete(struct daemon *d, const char *name, struct gr_error *err);

/* {"protocol","host_port","instance","port","address"} */
int network_forward_add(struct daemon *d, const char *network, const char *protocol, uint16_t host_port,
			const char *instance, uint16_t port, json_t **out, struct gr_error *err);
int network_forward_list(struct daemon *d, const char *network, json_t **out, struct gr_error *err);
int network_forward_get(struct daemon *d, const char *network, const char *protocol, uint16_t host_port,
			json_t **out, struct gr_error *err);
int network_forward_delete(struct daemon *d, const char *network, const char *protocol, uint16_t host_port,
			   struct gr_error *err);

/* Instances. Checks the instance config keys "network" and "ipv4.address"
 * against the networks (no side effects). */
int network_instance_check(struct daemon *d, const json_t *config, struct gr_error *err);
/* At create (the instance's row exists): its NIC on the configured network,
 * unless network=none; then the network's DNS names. */
int network_instance_allocate(struct daemon *d, const char *instance, const json_t *config, struct gr_error *err);
/* After an instance was deleted (its NIC and forwards went with its row):
 * the DNS names and the rules follow. */
void network_instance_released(struct daemon *d);
/* The instance's NIC for a driver; -ENOENT when it has none. */
int network_instance_nic(struct daemon *d, const char *instance, struct instance_nic *out, struct gr_error *err);
/* Every instance's NIC, by instance id (lists: two queries for all). */
int network_instance_nics(struct daemon *d, struct instance_nic **out, size_t *n, struct gr_error *err);
/* The NIC of instance id in network_instance_nics' array, or NULL. */
const struct instance_nic *network_nic_find(const struct instance_nic *v, size_t n, int64_t id);

#endif
