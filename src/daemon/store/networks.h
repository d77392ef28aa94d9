/* The network tables of gureumd's database (migration 0004_networks):
 * networks by name; nics, one per instance that has a network, with its MAC
 * and its address (IPAM: unique per network, kept across restarts, freed
 * with the instance); forwards, unique by protocol and host port on the
 * whole host, going with their instance or network. Only network.c calls
 * these, under its own mutex. Addresses are host-order integers. Every
 * function returns 0 or a negative errno with err filled. */
#ifndef GR_DAEMON_STORE_NETWORKS_H
#define GR_DAEMON_STORE_NETWORKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

struct store;

struct store_network {
	int64_t id;
	char *name;
	char *bridge;
	uint32_t subnet;              /* network address */
	unsigned prefix;
	bool nat, isolated;
	char *created_at;
};

struct store_nic {
	int64_t instance_id;
	char *instance;
	char *network;
	char *mac;                    /* "0e:..." */
	uint32_t ipv4;
	bool is_static;
};

struct store_forward {
	char *network;
	char *protocol;               /* "tcp" | "udp" */
	uint16_t host_port;
	char *instance;
	uint16_t port;
	uint32_t addr;                /* the instance's address */
};

void store_network_clear(struct store_network *n);
void store_network_list_free(struct store_network *n, size_t count);
void store_nic_clear(struct store_nic *n);
void store_nic_list_free(struct store_nic *n, size_t count);
void store_forward_list_free(struct store_forward *f, size_t count);

/* -EEXIST when the name or the bridge is taken. */
int store_network_insert(struct store *s, const struct store_network *in, struct gr_error *err);
/* -ENOENT when there is none. */
int store_network_get(struct store *s, const char *name, struct store_network *out, struct gr_error *err);
int store_network_list(struct store *s, struct store_network **out, size_t *n, struct gr_error *err);
/* The names of the instances with a NIC on it, sorted (NULL-terminated;
 * gr_strv_free). */
int store_network_users(struct store *s, const char *name, char ***out, struct gr_error *err);
/* -EBUSY naming the instances that use it; 0 when none does. */
int store_network_check_unused(struct store *s, const char *name, struct gr_error *err);
/* -ENOENT; -EBUSY naming the instances that use it. */
int store_network_delete(struct store *s, const char *name, struct gr_error *err);

/* Gives the instance a NIC on the network with this MAC, in one
 * transaction: addr 0 takes the lowest free address of first..last, else
 * addr must be free (-EADDRINUSE naming its holder). -ENOSPC when the
 * subnet is full, -ENOENT for an unknown instance or network. */
int store_nic_allocate(struct store *s, const char *instance, const char *network, const char *mac, uint32_t addr,
		       uint32_t first, uint32_t last, struct gr_error *err);
/* -ENOENT when the instance has no NIC. */
int store_nic_get(struct store *s, const char *instance, struct store_nic *out, struct gr_error *err);
/* The NICs on a network (NULL: all), by address. */
int store_nic_list(struct store *s, const char *network, struct store_nic **out, size_t *n, struct gr_error *err);

/* -EEXIST when PROTOCOL/HOST_PORT is forwarded already (naming where);
 * -ENOENT for an unknown network or instance, or an instance without a NIC
 * on that network. */
int store_forward_insert(struct store *s, const char *network, const char *protocol, uint16_t host_port,
			 const char *instance, uint16_t port, struct gr_error *err);
/* -ENOENT when there is no such forward on that network. */
int store_forward_delete(struct store *s, const char *network, const char *protocol, uint16_t host_port,
			 struct gr_error *err);
/* The forwards of a network (NULL: all), by protocol then host port. */
int store_forward_list(struct store *s, const char *network, struct store_forward **out, size_t *n,
		       struct gr_error *err);

#endif
