/* An instance's end of a network, for the drivers: a container's network
 * namespace, bound at RUN/netns/NAME, with eth0 (a veth whose host end is
 * on the network's bridge) configured by netlink, or only loopback for an
 * instance without a network. The namespace outlives the container's
 * processes (a restart keeps it) until netif_container_down. */
#ifndef GR_DAEMON_NETWORK_INSTANCE_H
#define GR_DAEMON_NETWORK_INSTANCE_H

#include "common/error.h"
#include "daemon/instance/driver.h"

/* RUN/netns/NAME, malloc'd. */
char *netif_netns_path(const struct driver_env *env, const char *name);
/* Makes the namespace afresh (a stale one from an earlier run is removed
 * first) with eth0 per nic, or loopback only when nic is NULL. On failure
 * nothing is left. */
int netif_container_up(const struct driver_env *env, const char *name, const struct instance_nic *nic,
		       struct gr_error *err);
/* Removes the host end of the veth and the namespace. Idempotent. */
int netif_container_down(const struct driver_env *env, const char *name, const struct instance_nic *nic,
			 struct gr_error *err);
/* Writes STATE/instances/NAME/resolv.conf (the network's DNS, or none) and
 * hosts (localhost, the instance's own name), for bind mounts. */
int netif_write_etc(const struct driver_env *env, const char *name, const struct instance_nic *nic,
		    struct gr_error *err);

#endif
