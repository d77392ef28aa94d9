/* The guest's network, by ioctls (no library): lo up; the interface with the
 * configured MAC (or the first one that is not lo) up with its address and
 * default route; /etc/resolv.conf; a DHCP client when no address is given. */
#ifndef GR_GUEST_NET_H
#define GR_GUEST_NET_H

#include <stddef.h>

#include "common/error.h"
#include "config.h"

/* The interface with that MAC (NULL: the first one that is not lo and not a
 * loopback), waiting up to timeout_ms for it to appear. */
int net_find_interface(const unsigned char *mac, char *ifname, size_t n, int timeout_ms, struct gr_error *err);
int net_link_up(const char *ifname, struct gr_error *err);
/* Address, netmask, up, then the default route through the gateway (if any). */
int net_configure(const char *ifname, const struct ginit_network *net, struct gr_error *err);
/* "nameserver X" lines, written atomically (a symlink there is replaced). */
int net_write_resolv_conf(const char *path, const struct ginit_network *net, struct gr_error *err);

#endif
