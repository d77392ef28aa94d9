/* An instance's end of a network (network/instance.h). */
#include "daemon/network/instance.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "daemon/network/dnsmasq.h"
#include "daemon/network/netlink.h"
#include "daemon/network/netns.h"

char *netif_netns_path(const struct driver_env *env, const char *name)
{
	char *p = NULL;
	return asprintf(&p, "%s/netns/%s", env->run_dir, name) < 0 ? NULL : p;
}

int netif_container_down(const struct driver_env *env, const char *name, const struct instance_nic *nic,
			 struct gr_error *err)
{
	int rc = 0;
	if (nic && (rc = nl_link_delete(nic->host_ifname, err)) < 0)
		return rc;
	gr_autofree char *path = netif_netns_path(env, name);
	if (!path)
		return gr_error_set(err, ENOMEM, "out of memory");
	return netns_remove(path, err);
}

int netif_container_up(const struct driver_env *env, const char *name, const struct instance_nic *nic,
		       struct gr_error *err)
{
	gr_autofree char *path = netif_netns_path(env, name);
	gr_autofree char *dir = NULL;
	if (!path || asprintf(&dir, "%s/netns", env->run_dir) < 0)
		return gr_error_set(err, ENOMEM, "out of memory");
	int rc = gr_mkdir_p(dir, 0700, err);
	/* What an earlier run left (a crash, a container that exited on its
	 * own) goes first: the network is made afresh at every start. */
	if (rc == 0)
		rc = netif_container_down(env, name, nic, err);
	if (rc == 0)
		rc = netns_create(path, err);
	if (rc < 0)
		return gr_error_prefix(err, "instance %s: network", name);
	gr_autoclose int fd = netns_open(path, err);
	if (fd < 0)
		rc = fd;
	else if (!nic)
		rc = nl_netns_loopback(fd, err);
	else if ((rc = nl_veth_create(nic->host_ifname, nic->bridge, fd, "eth0", nic->mac, 0, err)) == 0)
		rc = nl_netns_configure(fd, "eth0", nic->addr, nic->prefix, nic->gateway, err);
	if (rc < 0) {
		struct gr_error e = { 0 };
		netif_container_down(env, name, nic, &e);
		return gr_error_prefix(err, "instance %s: network%s%s", name, nic ? " " : "", nic ? nic->network : "");
	}
	return 0;
}

int netif_write_etc(const struct driver_env *env, const char *name, const struct instance_nic *nic,
		    struct gr_error *err)
{
	gr_autofree char *resolv = NULL, *hosts = NULL, *rpath = NULL, *hpath = NULL;
	char gw[IPV4_STR_MAX] = "", addr[IPV4_STR_MAX] = "";
	if (nic) {
		ipv4_format(nic->gateway, gw);
		ipv4_format(nic->addr, addr);
	}
	if (asprintf(&resolv, nic ? "nameserver %s\nsearch " DNSMASQ_DOMAIN "\n" : "%s", gw) < 0 ||
	    asprintf(&hosts, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n",
		     nic ? addr : "127.0.1.1", name) < 0 ||
	    asprintf(&rpath, "%s/instances/%s/resolv.conf", env->state_dir, name) < 0 ||
	    asprintf(&hpath, "%s/instances/%s/hosts", env->state_dir, name) < 0)
		return gr_error_set(err, ENOMEM, "out of memory");
	int rc = gr_write_file_atomic(rpath, resolv, strlen(resolv), 0644, err);
	if (rc == 0)
		rc = gr_write_file_atomic(hpath, hosts, strlen(hosts), 0644, err);
	return rc;
}
