/* Networks (network/network.h). */
#include "daemon/network/network.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/network/addr.h"
#include "daemon/network/dnsmasq.h"
#include "daemon/network/netlink.h"
#include "daemon/network/nft.h"
#include "daemon/store/networks.h"
#include "daemon/store/store.h"
#include "daemon/validate.h"

/* Where the default network's subnet is looked for: 10.180.0.0/24, then
 * the next /24s up to 10.254.255.0/24, the first that nothing on the host
 * reaches yet. */
#define DEFAULT_SUBNET_FIRST ((10u << 24) | (180u << 16))
#define DEFAULT_SUBNET_LAST ((10u << 24) | (254u << 16) | (255u << 8))

/* A network that could not be made real, and why (shown by the API). */
struct net_error {
	struct net_error *next;
	char *name;
	char *detail;
};

struct networks {
	pthread_mutex_t mu;
	struct net_error *errors;
	pthread_t supervisor;
	bool supervising;
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv;
	bool stop;
};

static struct networks *nets_of(struct daemon *d)
{
	return d->networks;
}

static void unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}
#define NETS_LOCK(d) \
	_cleanup_(unlockp) pthread_mutex_t *_nl_ = &nets_of(d)->mu; \
	pthread_mutex_lock(_nl_)

static void row_clearp(struct store_network *n)
{
	store_network_clear(n);
}
#define gr_autonet _cleanup_(row_clearp)

/* --- errors shown per network ------------------------------------------------ */

static void set_error(struct networks *n, const char *name, const char *detail)
{
	struct net_error **p = &n->errors;
	while (*p && strcmp((*p)->name, name) != 0)
		p = &(*p)->next;
	if (!detail) {
		if (*p) {
			struct net_error *e = *p;
			*p = e->next;
			free(e->name);
			free(e->detail);
			free(e);
		}
		return;
	}
	if (!*p) {
		struct net_error *e = calloc(1, sizeof(*e));
		if (!e || !(e->name = strdup(name))) {
			free(e);
			return;
		}
		*p = e;
	}
	free((*p)->detail);
	(*p)->detail = strdup(detail);
}

static const char *get_error(struct networks *n, const char *name)
{
	for (struct net_error *e = n->errors; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e->detail ? e->detail : "";
	return NULL;
}

/* --- the host side of one network --------------------------------------------- */

struct dirs {
	char state[4096], run[4096];
};

static void net_dirs(struct daemon *d, const char *name, struct dirs *out)
{
	snprintf(out->state, sizeof(out->state), "%s/networks/%s", d->env.state_dir, name);
	snprintf(out->run, sizeof(out->run), "%s/networks/%s", d->env.run_dir, name);
}

static struct dnsmasq_net dnsmasq_of(const struct store_network *row, const struct dirs *dirs)
{
	return (struct dnsmasq_net){ .name = row->name, .bridge = row->bridge,
				     .subnet = ipv4_net_of(row->subnet, row->prefix), .state_dir = dirs->state,
				     .run_dir = dirs->run };
}

/* Rewrites the network's host files from its NICs. */
static int write_hosts(struct daemon *d, const struct store_network *row, const struct dnsmasq_net *dn,
		       struct gr_error *err)
{
	struct store_nic *nics = NULL;
	size_t n = 0;
	int rc = store_nic_list(d->store, row->name, &nics, &n, err);
	if (rc < 0)
		return rc;
	struct dnsmasq_host *hosts = calloc(n ? n : 1, sizeof(*hosts));
	uint8_t(*macs)[6] = calloc(n ? n : 1, sizeof(*macs));
	if (!hosts || !macs)
		rc = gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if ((rc = mac_parse(nics[i].mac, macs[i], err)) < 0)
			break;
		hosts[i] = (struct dnsmasq_host){ .name = nics[i].instance, .mac = macs[i], .addr = nics[i].ipv4 };
	}
	if (rc == 0)
		rc = dnsmasq_write_hosts(dn, hosts, n, err);
	free(hosts);
	free(macs);
	store_nic_list_free(nics, n);
	return rc;
}

/* Makes the network's bridge, sysctls, host files and dnsmasq real. */
static int apply_one(struct daemon *d, const struct store_network *row, struct gr_error *err)
{
	struct dirs dirs;
	net_dirs(d, row->name, &dirs);
	struct dnsmasq_net dn = dnsmasq_of(row, &dirs);
	struct ipv4_net subnet = ipv4_net_of(row->subnet, row->prefix);
	char key[128];
	snprintf(key, sizeof(key), "net/ipv4/conf/%s/route_localnet", row->bridge);
	struct gr_error e = { 0 };
	bool existed = nl_link_index(row->bridge, &e) > 0;
	int rc = nl_bridge_ensure(row->bridge, ipv4_net_gateway(&subnet), row->prefix, err);
	/* A dnsmasq that outlived its bridge keeps sockets bound to the old
	 * one (a SIGHUP does not rebind DHCP): it starts again below. */
	if (rc == 0 && !existed)
		rc = dnsmasq_stop(&dn, err);
	if (rc == 0)
		rc = net_sysctl_write("net/ipv4/ip_forward", "1", err);
	/* A forward reached from the host's own 127.0.0.1 leaves by the bridge
	 * (nft.c drops what instances send to 127.0.0.0/8). */
	if (rc == 0)
		rc = net_sysctl_write(key, "1", err);
	/* IPv4 networks: no IPv6 on the bridge, so no instance's router
	 * advertisement can give the host a route. */
	snprintf(key, sizeof(key), "net/ipv6/conf/%s/disable_ipv6", row->bridge);
	if (rc == 0 && (rc = net_sysctl_write(key, "1", err)) == -ENOENT)
		rc = 0;
	if (rc == 0 && (rc = gr_mkdir_p(dirs.state, 0700, err)) == 0 && (rc = gr_mkdir_p(dirs.run, 0711, err)) == 0 &&
	    (rc = write_hosts(d, row, &dn, err)) == 0)
		rc = dnsmasq_ensure(&dn, err);
	if (rc < 0)
		return gr_error_prefix(err, "network %s", row->name);
	return 0;
}

/* Takes the network's bridge, dnsmasq and files away. */
static void unapply_one(struct daemon *d, const struct store_network *row)
{
	struct dirs dirs;
	net_dirs(d, row->name, &dirs);
	struct dnsmasq_net dn = dnsmasq_of(row, &dirs);
	struct gr_error e = { 0 };
	if (dnsmasq_stop(&dn, &e) < 0)
		gr_warn("network %s: %s", row->name, e.msg);
	if (nl_link_delete(row->bridge, &e) < 0)
		gr_warn("network %s: %s", row->name, e.msg);
	if (gr_rm_rf(dirs.state, &e) < 0 || gr_rm_rf(dirs.run, &e) < 0)
		gr_warn("network %s: %s", row->name, e.msg);
}

/* Rewrites the whole nftables table from the database. */
static int apply_rules(struct daemon *d, struct gr_error *err)
{
	struct store_network *rows = NULL;
	struct store_forward *fw = NULL;
	size_t n = 0, nf = 0;
	int rc = store_network_list(d->store, &rows, &n, err);
	if (rc == 0)
		rc = store_forward_list(d->store, NULL, &fw, &nf, err);
	struct nft_network *nn = calloc(n ? n : 1, sizeof(*nn));
	struct nft_forward *ff = calloc(nf ? nf : 1, sizeof(*ff));
	if (rc == 0 && (!nn || !ff))
		rc = gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++)
		nn[i] = (struct nft_network){ .bridge = rows[i].bridge, .subnet = ipv4_net_of(rows[i].subnet, rows[i].prefix),
					      .nat = rows[i].nat, .isolated = rows[i].isolated };
	for (size_t i = 0; rc == 0 && i < nf; i++)
		ff[i] = (struct nft_forward){ .protocol = fw[i].protocol, .host_port = fw[i].host_port, .addr = fw[i].addr,
					      .port = fw[i].port };
	if (rc == 0) {
		gr_autofree char *text = nft_ruleset(nn, n, ff, nf, err);
		rc = text ? nft_apply(text, err) : -err->code;
		if (rc < 0)
			gr_error_prefix(err, "nftables table inet " NFT_TABLE);
	}
	free(nn);
	free(ff);
	store_network_list_free(rows, n);
	store_forward_list_free(fw, nf);
	return rc;
}

/* The host end of every instance's veth back on its bridge (a bridge that
 * was made again has no ports). */
static void reattach_nics(struct daemon *d)
{
	struct store_nic *nics = NULL;
	size_t n = 0;
	struct gr_error e = { 0 };
	if (store_nic_list(d->store, NULL, &nics, &n, &e) < 0) {
		gr_warn("networks: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct instance_nic nic;
		char ifname[16];
		snprintf(ifname, sizeof(ifname), "grv%lld", (long long)nics[i].instance_id);
		if (nl_link_index(ifname, &e) < 0)
			continue; /* not running */
		gr_autonet struct store_network row = { 0 };
		if (store_network_get(d->store, nics[i].network, &row, &e) < 0 ||
		    nl_link_set_master(ifname, row.bridge, &e) < 0)
			gr_warn("instance %s: cannot put %s back on its network: %s", nics[i].instance, ifname, e.msg);
		(void)nic;
	}
	store_nic_list_free(nics, n);
}

/* Every network made real, then the rules. Called with the mutex held. */
static void apply_all(struct daemon *d)
{
	struct networks *nets = nets_of(d);
	struct store_network *rows = NULL;
	size_t n = 0;
	struct gr_error e = { 0 };
	if (store_network_list(d->store, &rows, &n, &e) < 0) {
		gr_log(GR_LOG_ERROR, "networks: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (apply_one(d, &rows[i], &e) < 0) {
			gr_log(GR_LOG_ERROR, "%s", e.msg);
			set_error(nets, rows[i].name, e.msg);
		} else {
			set_error(nets, rows[i].name, NULL);
		}
	}
	if (apply_rules(d, &e) < 0) {
		gr_log(GR_LOG_ERROR, "%s", e.msg);
		for (size_t i = 0; i < n; i++)
			set_error(nets, rows[i].name, e.msg);
	}
	store_network_list_free(rows, n);
	reattach_nics(d);
}

/* --- choosing a subnet and a bridge name -------------------------------------- */

/* -EADDRINUSE naming what subnet collides with. */
static int check_subnet_free(struct daemon *d, const struct ipv4_net *subnet, const struct ipv4_net *host,
			     size_t n_host, struct gr_error *err)
{
	char s[IPV4_NET_STR_MAX], o[IPV4_NET_STR_MAX];
	ipv4_net_format(subnet, s);
	struct store_network *rows = NULL;
	size_t n = 0;
	int rc = store_network_list(d->store, &rows, &n, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct ipv4_net other = ipv4_net_of(rows[i].subnet, rows[i].prefix);
		if (ipv4_net_overlap(subnet, &other)) {
			ipv4_net_format(&other, o);
			rc = gr_error_set(err, EADDRINUSE, "subnet %s overlaps network %s (%s)", s, rows[i].name, o);
		}
	}
	store_network_list_free(rows, n);
	/* The host's own routes and addresses (a bridge of ours is one of the
	 * networks above, already compared). */
	for (size_t i = 0; rc == 0 && i < n_host; i++) {
		if (ipv4_net_overlap(subnet, &host[i])) {
			ipv4_net_format(&host[i], o);
			rc = gr_error_set(err, EADDRINUSE,
					  "subnet %s overlaps %s, which this host already reaches (a route or an "
					  "address): choose another subnet",
					  s, o);
		}
	}
	return rc;
}

/* Not a range with a meaning of its own: "this network" (0/8), loopback,
 * link-local, multicast and the reserved 240/4. */
static int check_subnet_usable(const struct ipv4_net *subnet, struct gr_error *err)
{
	static const struct {
		uint32_t addr;
		unsigned prefix;
		const char *what;
	} reserved[] = {
		{ 0x00000000u, 8, "\"this network\" (0.0.0.0/8)" }, { 0x7f000000u, 8, "loopback (127.0.0.0/8)" },
		{ 0xa9fe0000u, 16, "link-local (169.254.0.0/16)" }, { 0xe0000000u, 4, "multicast (224.0.0.0/4)" },
		{ 0xf0000000u, 4, "reserved (240.0.0.0/4)" },
	};
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		struct ipv4_net r = ipv4_net_of(reserved[i].addr, reserved[i].prefix);
		if (ipv4_net_overlap(subnet, &r)) {
			char s[IPV4_NET_STR_MAX];
			ipv4_net_format(subnet, s);
			return gr_error_set(err, EINVAL, "subnet %s is in the %s range: use a private range such as "
					    "10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16", s, reserved[i].what);
		}
	}
	return 0;
}

static int choose_subnet(struct daemon *d, const struct ipv4_net *host, size_t n_host, struct ipv4_net *out,
			 struct gr_error *err)
{
	for (uint32_t a = DEFAULT_SUBNET_FIRST; a <= DEFAULT_SUBNET_LAST; a += 256) {
		struct ipv4_net c = ipv4_net_of(a, 24);
		struct gr_error e = { 0 };
		int rc = check_subnet_free(d, &c, host, n_host, &e);
		if (rc == 0) {
			*out = c;
			return 0;
		}
		if (rc != -EADDRINUSE)
			return gr_error_set(err, -rc, "%s", e.msg);
	}
	return gr_error_set(err, EADDRINUSE, "no free /24 in 10.180.0.0-10.254.255.0: give a subnet");
}

/* "gureumN" with the lowest N that no network and no link has. */
static int choose_bridge(struct daemon *d, char out[16], struct gr_error *err)
{
	struct store_network *rows = NULL;
	size_t n = 0;
	int rc = store_network_list(d->store, &rows, &n, err);
	if (rc < 0)
		return rc;
	rc = -ENOSPC;
	for (unsigned k = 0; k < 100000 && rc == -ENOSPC; k++) {
		snprintf(out, 16, "gureum%u", k);
		bool taken = false;
		for (size_t i = 0; i < n && !taken; i++)
			taken = strcmp(rows[i].bridge, out) == 0;
		struct gr_error e = { 0 };
		if (!taken && nl_link_index(out, &e) == -ENODEV)
			rc = 0;
	}
	store_network_list_free(rows, n);
	return rc == 0 ? 0 : gr_error_set(err, ENOSPC, "no free bridge name gureumN");
}

/* --- networks ------------------------------------------------------------------ */

static json_t *network_json(struct daemon *d, const struct store_network *row)
{
	struct ipv4_net subnet = ipv4_net_of(row->subnet, row->prefix);
	char s[IPV4_NET_STR_MAX], gw[IPV4_STR_MAX];
	ipv4_net_format(&subnet, s);
	ipv4_format(ipv4_net_gateway(&subnet), gw);
	gr_autostrv char **users = NULL;
	struct gr_error e = { 0 };
	json_t *used_by = json_array();
	if (store_network_users(d->store, row->name, &users, &e) == 0)
		for (size_t i = 0; users[i]; i++) {
			char url[128];
			snprintf(url, sizeof(url), "/1.0/instances/%s", users[i]);
			json_array_append_new(used_by, json_string(url));
		}
	const char *detail = get_error(nets_of(d), row->name);
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:o, s:s, s:s}", "name", row->name, "bridge", row->bridge,
			 "subnet", s, "gateway", gw, "nat", row->nat, "isolated", row->isolated, "created_at",
			 row->created_at, "used_by", used_by ? used_by : json_array(), "status",
			 detail ? "Errored" : "Created", "status_detail", detail ? detail : "");
}

/* keep: a network that cannot be made real stays (errored, with the reason;
 * the default one at start-up), instead of being taken back. */
static int create_locked(struct daemon *d, const char *name, const char *subnet_s, bool nat, bool isolated, bool keep,
			 json_t **out, struct gr_error *err)
{
	int rc = validate_instance_name(name, err);
	if (rc < 0)
		return gr_error_prefix(err, "network name");
	gr_autonet struct store_network existing = { 0 };
	struct gr_error e = { 0 };
	if (store_network_get(d->store, name, &existing, &e) == 0)
		return gr_error_set(err, EEXIST, "network %s already exists", name);
	struct ipv4_net subnet;
	gr_autofree struct ipv4_net *host = NULL;
	size_t n_host = 0;
	if (subnet_s && ((rc = ipv4_net_parse(subnet_s, "subnet", &subnet, err)) < 0 ||
			 (rc = check_subnet_usable(&subnet, err)) < 0))
		return rc;
	if ((rc = nl_ipv4_in_use(&host, &n_host, err)) < 0)
		return rc;
	if (subnet_s)
		rc = check_subnet_free(d, &subnet, host, n_host, err);
	else
		rc = choose_subnet(d, host, n_host, &subnet, err);
	if (rc < 0)
		return rc;
	struct store_network row = { .name = (char *)name, .subnet = subnet.addr, .prefix = subnet.prefix, .nat = nat,
				     .isolated = isolated };
	char bridge[16];
	if ((rc = choose_bridge(d, bridge, err)) < 0)
		return rc;
	row.bridge = bridge;
	if ((rc = store_network_insert(d->store, &row, err)) < 0)
		return rc;
	gr_autonet struct store_network made = { 0 };
	if ((rc = store_network_get(d->store, name, &made, err)) == 0 && (rc = apply_one(d, &made, err)) == 0)
		rc = apply_rules(d, err);
	if (rc < 0 && keep && made.name) {
		set_error(nets_of(d), name, err->msg);
		return rc;
	}
	if (rc < 0) {
		/* Nothing half-made: the bridge, dnsmasq and the row go again. */
		if (made.name)
			unapply_one(d, &made);
		if (store_network_delete(d->store, name, &e) < 0)
			gr_warn("network %s: %s", name, e.msg);
		if (apply_rules(d, &e) < 0)
			gr_warn("%s", e.msg);
		return rc;
	}
	char s[IPV4_NET_STR_MAX];
	ipv4_net_format(&subnet, s);
	gr_info("network %s created: bridge %s, subnet %s%s%s", name, bridge, s, nat ? ", NAT" : "",
		isolated ? ", isolated" : "");
	if (out && !(*out = network_json(d, &made)))
		return gr_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int network_create(struct daemon *d, const char *name, const char *subnet, bool nat, bool isolated, json_t **out,
		   struct gr_error *err)
{
	NETS_LOCK(d);
	return create_locked(d, name, subnet, nat, isolated, false, out, err);
}

int network_info(struct daemon *d, const char *name, json_t **out, struct gr_error *err)
{
	NETS_LOCK(d);
	gr_autonet struct store_network row = { 0 };
	int rc = store_network_get(d->store, name, &row, err);
	if (rc < 0)
		return rc;
	if (!(*out = network_json(d, &row)))
		return gr_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int network_list(struct daemon *d, json_t **out, struct gr_error *err)
{
	NETS_LOCK(d);
	struct store_network *rows = NULL;
	size_t n = 0;
	int rc = store_network_list(d->store, &rows, &n, err);
	if (rc < 0)
		return rc;
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, network_json(d, &rows[i])) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	store_network_list_free(rows, n);
	if (!arr)
		return gr_error_set(err, ENOMEM, "out of memory");
	*out = arr;
	return 0;
}

int network_delete(struct daemon *d, const char *name, struct gr_error *err)
{
	NETS_LOCK(d);
	gr_autonet struct store_network row = { 0 };
	int rc = store_network_get(d->store, name, &row, err);
	if (rc < 0)
		return rc;
	if ((rc = store_network_check_unused(d->store, name, err)) < 0)
		return rc;
	/* The host's side first: a bridge that cannot go keeps its row (and
	 * the delete can be tried again). */
	struct dirs dirs;
	net_dirs(d, row.name, &dirs);
	struct dnsmasq_net dn = dnsmasq_of(&row, &dirs);
	if ((rc = dnsmasq_stop(&dn, err)) < 0 || (rc = nl_link_delete(row.bridge, err)) < 0)
		return gr_error_prefix(err, "cannot delete network %s", name);
	if ((rc = store_network_delete(d->store, name, err)) < 0)
		return rc;
	unapply_one(d, &row);
	set_error(nets_of(d), name, NULL);
	struct gr_error e = { 0 };
	if (apply_rules(d, &e) < 0)
		gr_log(GR_LOG_ERROR, "%s", e.msg);
	gr_info("network %s deleted", name);
	return 0;
}

/* --- forwards ------------------------------------------------------------------ */

static json_t *forward_json(const struct store_forward *f)
{
	char a[IPV4_STR_MAX];
	ipv4_format(f->addr, a);
	return json_pack("{s:s, s:i, s:s, s:i, s:s}", "protocol", f->protocol, "host_port", (int)f->host_port,
			 "instance", f->instance, "port", (int)f->port, "address", a);
}

static int forwards_json(struct daemon *d, const char *network, const char *protocol, uint16_t host_port,
			 json_t **out, struct gr_error *err)
{
	gr_autonet struct store_network row = { 0 };
	int rc = store_network_get(d->store, network, &row, err);
	if (rc < 0)
		return rc;
	struct store_forward *fw = NULL;
	size_t n = 0;
	if ((rc = store_forward_list(d->store, network, &fw, &n, err)) < 0)
		return rc;
	json_t *arr = protocol ? NULL : json_array();
	for (size_t i = 0; i < n; i++) {
		if (protocol) {
			if (strcmp(fw[i].protocol, protocol) == 0 && fw[i].host_port == host_port)
				arr = forward_json(&fw[i]);
		} else if (arr) {
			json_array_append_new(arr, forward_json(&fw[i]));
		}
	}
	store_forward_list_free(fw, n);
	if (!arr)
		return protocol ? gr_error_set(err, ENOENT, "network %s has no %s forward of port %u", network, protocol,
					       host_port)
				: gr_error_set(err, ENOMEM, "out of memory");
	*out = arr;
	return 0;
}

static int check_forward(const char *protocol, uint16_t host_port, uint16_t port, struct gr_error *err)
{
	if (!protocol || (strcmp(protocol, "tcp") != 0 && strcmp(protocol, "udp") != 0))
		return gr_error_set(err, EINVAL, "protocol: expected tcp or udp");
	if (host_port == 0 || port == 0)
		return gr_error_set(err, EINVAL, "%s: a port is 1 to 65535", host_port == 0 ? "host_port" : "port");
	return 0;
}

int network_forward_add(struct daemon *d, const char *network, const char *protocol, uint16_t host_port,
			const char *instance, uint16_t port, json_t **out, struct gr_error *err)
{
	int rc = check_forward(protocol, host_port, port, err);
	if (rc < 0)
		return rc;
	NETS_LOCK(d);
	if ((rc = store_forward_insert(d->store, network, protocol, host_port, instance, port, err)) < 0)
		return rc;
	if ((rc = apply_rules(d, err)) < 0) {
		struct gr_error e = { 0 };
		store_forward_delete(d->store, network, protocol, host_port, &e);
		if (apply_rules(d, &e) < 0)
			gr_warn("%s", e.msg);
		return rc;
	}
	return out ? forwards_json(d, network, protocol, host_port, out, err) : 0;
}

int network_forward_list(struct daemon *d, const char *network, json_t **out, struct gr_error *err)
{
	NETS_LOCK(d);
	return forwards_json(d, network, NULL, 0, out, err);
}

int network_forward_get(struct daemon *d, const char *network, const char *protocol, uint16_t host_port,
			json_t **out, struct gr_error *err)
{
	int rc = check_forward(protocol, host_port, 1, err);
	if (rc < 0)
		return rc;
	NETS_LOCK(d);
	return forwards_json(d, network, protocol, host_port, out, err);
}

int network_forward_delete(struct daemon *d, const char *network, const char *protocol, uint16_t host_port,
			   struct gr_error *err)
{
	int rc = check_forward(protocol, host_port, 1, err);
	if (rc < 0)
		return rc;
	NETS_LOCK(d);
	gr_autonet struct store_network row = { 0 };
	if ((rc = store_network_get(d->store, network, &row, err)) < 0 ||
	    (rc = store_forward_delete(d->store, network, protocol, host_port, err)) < 0)
		return rc;
	return apply_rules(d, err);
}

/* --- instances ------------------------------------------------------------------ */

/* The network an instance config names ("network", default "default"), or
 * NULL for none; *addr: "ipv4.address" or 0. */
static int config_network(const json_t *config, const char **network, uint32_t *addr, struct gr_error *err)
{
	const char *net = json_string_value(json_object_get(config, "network"));
	const char *a = json_string_value(json_object_get(config, "ipv4.address"));
	*network = !net ? NETWORK_DEFAULT : strcmp(net, "none") == 0 ? NULL : net;
	*addr = 0;
	if (net && strcmp(net, "none") != 0 && validate_instance_name(net, err) < 0)
		return gr_error_prefix(err, "config.network");
	if (a && !*network)
		return gr_error_set(err, EINVAL, "config.ipv4.address: an instance with network=none has no address");
	if (a)
		return ipv4_parse(a, "config.ipv4.address", addr, err);
	return 0;
}

static int check_locked(struct daemon *d, const json_t *config, struct store_network *row, uint32_t *addr,
			const char **network, struct gr_error *err)
{
	int rc = config_network(config, network, addr, err);
	if (rc < 0 || !*network)
		return rc;
	if ((rc = store_network_get(d->store, *network, row, err)) < 0) {
		if (rc == -ENOENT && !json_object_get(config, "network"))
			return gr_error_set(err, ENOENT, "network %s does not exist: give -c network=NAME (an existing "
					    "network) or -c network=none", NETWORK_DEFAULT);
		return rc == -ENOENT ? gr_error_set(err, ENOENT, "config.network: network %s does not exist", *network)
				     : rc;
	}
	struct ipv4_net subnet = ipv4_net_of(row->subnet, row->prefix);
	if (*addr && (*addr < ipv4_net_first_host(&subnet) || *addr > ipv4_net_last_host(&subnet))) {
		char a[IPV4_STR_MAX], s[IPV4_NET_STR_MAX], f[IPV4_STR_MAX], l[IPV4_STR_MAX];
		ipv4_format(*addr, a);
		ipv4_net_format(&subnet, s);
		ipv4_format(ipv4_net_first_host(&subnet), f);
		ipv4_format(ipv4_net_last_host(&subnet), l);
		return gr_error_set(err, EINVAL, "config.ipv4.address: %s is not an instance address of network %s (%s): "
				    "use %s to %s", a, *network, s, f, l);
	}
	return 0;
}

int network_instance_check(struct daemon *d, const json_t *config, struct gr_error *err)
{
	if (!d->networks)
		return 0; /* networks not started (unit tests of the routes) */
	NETS_LOCK(d);
	gr_autonet struct store_network row = { 0 };
	uint32_t addr;
	const char *network;
	return check_locked(d, config, &row, &addr, &network, err);
}

/* The network's host files again, and dnsmasq told. */
static void refresh_hosts(struct daemon *d, const struct store_network *row)
{
	struct dirs dirs;
	net_dirs(d, row->name, &dirs);
	struct dnsmasq_net dn = dnsmasq_of(row, &dirs);
	struct gr_error e = { 0 };
	if (write_hosts(d, row, &dn, &e) < 0 || dnsmasq_ensure(&dn, &e) < 0)
		gr_warn("network %s: DNS names: %s", row->name, e.msg);
}

static int allocate_locked(struct daemon *d, const char *instance, const json_t *config, struct gr_error *err);

int network_instance_allocate(struct daemon *d, const char *instance, const json_t *config, struct gr_error *err)
{
	if (!d->networks)
		return 0;
	NETS_LOCK(d);
	return allocate_locked(d, instance, config, err);
}

static int allocate_locked(struct daemon *d, const char *instance, const json_t *config, struct gr_error *err)
{
	gr_autonet struct store_network row = { 0 };
	uint32_t addr;
	const char *network;
	int rc = check_locked(d, config, &row, &addr, &network, err);
	if (rc < 0 || !network)
		return rc;
	struct ipv4_net subnet = ipv4_net_of(row.subnet, row.prefix);
	uint8_t mac[6];
	char m[MAC_STR_MAX];
	if ((rc = mac_random(mac, err)) < 0)
		return rc;
	mac_format(mac, m);
	if ((rc = store_nic_allocate(d->store, instance, network, m, addr, ipv4_net_first_host(&subnet),
				     ipv4_net_last_host(&subnet), err)) < 0)
		return rc;
	refresh_hosts(d, &row);
	return 0;
}

void network_instance_released(struct daemon *d)
{
	if (!d->networks)
		return; /* before start-up (reconcile): network_startup writes everything */
	NETS_LOCK(d);
	struct store_network *rows = NULL;
	size_t n = 0;
	struct gr_error e = { 0 };
	if (store_network_list(d->store, &rows, &n, &e) < 0) {
		gr_warn("networks: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++)
		refresh_hosts(d, &rows[i]);
	store_network_list_free(rows, n);
	if (apply_rules(d, &e) < 0)
		gr_warn("%s", e.msg);
}

/* The driver's view of a NIC row on its network. */
static int nic_of(const struct store_nic *nic, const struct store_network *row, struct instance_nic *out,
		  struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	int rc = mac_parse(nic->mac, out->mac, err);
	if (rc < 0)
		return rc;
	struct ipv4_net subnet = ipv4_net_of(row->subnet, row->prefix);
	out->instance_id = nic->instance_id;
	snprintf(out->network, sizeof(out->network), "%s", row->name);
	snprintf(out->bridge, sizeof(out->bridge), "%s", row->bridge);
	snprintf(out->host_ifname, sizeof(out->host_ifname), "grv%lld", (long long)nic->instance_id);
	out->addr = nic->ipv4;
	out->prefix = row->prefix;
	out->gateway = ipv4_net_gateway(&subnet);
	return 0;
}

int network_instance_nic(struct daemon *d, const char *instance, struct instance_nic *out, struct gr_error *err)
{
	struct store_nic nic = { 0 };
	int rc = store_nic_get(d->store, instance, &nic, err);
	if (rc < 0)
		return rc;
	gr_autonet struct store_network row = { 0 };
	if ((rc = store_network_get(d->store, nic.network, &row, err)) == 0)
		rc = nic_of(&nic, &row, out, err);
	store_nic_clear(&nic);
	return rc;
}

static int by_instance_id(const void *a, const void *b)
{
	int64_t x = ((const struct instance_nic *)a)->instance_id, y = ((const struct instance_nic *)b)->instance_id;
	return (x > y) - (x < y);
}

const struct instance_nic *network_nic_find(const struct instance_nic *v, size_t n, int64_t id)
{
	struct instance_nic key = { .instance_id = id };
	return n ? bsearch(&key, v, n, sizeof(*v), by_instance_id) : NULL;
}

int network_instance_nics(struct daemon *d, struct instance_nic **out, size_t *n, struct gr_error *err)
{
	*out = NULL;
	*n = 0;
	struct store_nic *nics = NULL;
	struct store_network *rows = NULL;
	size_t n_nics = 0, n_rows = 0;
	int rc = store_nic_list(d->store, NULL, &nics, &n_nics, err);
	if (rc == 0)
		rc = store_network_list(d->store, &rows, &n_rows, err);
	struct instance_nic *v = calloc(n_nics ? n_nics : 1, sizeof(*v));
	if (rc == 0 && !v)
		rc = gr_error_set(err, ENOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; rc == 0 && i < n_nics; i++)
		for (size_t j = 0; j < n_rows; j++)
			if (strcmp(rows[j].name, nics[i].network) == 0 && nic_of(&nics[i], &rows[j], &v[k], err) == 0)
				k++;
	store_nic_list_free(nics, n_nics);
	store_network_list_free(rows, n_rows);
	if (rc < 0) {
		free(v);
		return rc;
	}
	qsort(v, k, sizeof(*v), by_instance_id);
	*out = v;
	*n = k;
	return 0;
}

/* --- start-up and the dnsmasq supervisor ---------------------------------------- */

/* Every second: a network whose dnsmasq died gets a new one. */
static void *supervise(void *arg)
{
	struct daemon *d = arg;
	struct networks *nets = nets_of(d);
	for (;;) {
		pthread_mutex_lock(&nets->stop_mu);
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 1;
		while (!nets->stop && pthread_cond_timedwait(&nets->stop_cv, &nets->stop_mu, &until) == 0)
			;
		bool stop = nets->stop;
		pthread_mutex_unlock(&nets->stop_mu);
		if (stop)
			return NULL;
		NETS_LOCK(d);
		struct store_network *rows = NULL;
		size_t n = 0;
		struct gr_error e = { 0 };
		if (store_network_list(d->store, &rows, &n, &e) < 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			struct dirs dirs;
			net_dirs(d, rows[i].name, &dirs);
			struct dnsmasq_net dn = dnsmasq_of(&rows[i], &dirs);
			const char *was = get_error(nets, rows[i].name);
			if (was) {
				/* Errored: try to make it real again (the cause may
				 * have gone); log only a new reason. */
				if (apply_one(d, &rows[i], &e) == 0 && apply_rules(d, &e) == 0) {
					gr_info("network %s: repaired", rows[i].name);
					set_error(nets, rows[i].name, NULL);
				} else if (strcmp(was, e.msg) != 0) {
					gr_log(GR_LOG_ERROR, "%s", e.msg);
					set_error(nets, rows[i].name, e.msg);
				}
				continue;
			}
			if (dnsmasq_pid(&dn) > 0)
				continue;
			gr_warn("network %s: dnsmasq is not running: starting it again", rows[i].name);
			if (dnsmasq_ensure(&dn, &e) < 0) {
				gr_log(GR_LOG_ERROR, "network %s: %s", rows[i].name, e.msg);
				set_error(nets, rows[i].name, e.msg);
			}
		}
		store_network_list_free(rows, n);
	}
}

/* Instances made before networks existed (no NIC row) get the one their
 * config asks for (the default network unless network=none), from their
 * next start on. */
static void give_nics(struct daemon *d)
{
	struct store_instance *rows = NULL;
	size_t n = 0;
	struct gr_error e = { 0 };
	if (store_instance_list(d->store, &rows, &n, &e) < 0) {
		gr_warn("networks: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_nic nic = { 0 };
		int rc = store_nic_get(d->store, rows[i].name, &nic, &e);
		store_nic_clear(&nic);
		if (rc != -ENOENT)
			continue;
		const char *net = json_string_value(json_object_get(rows[i].config, "network"));
		if (net && strcmp(net, "none") == 0)
			continue;
		if (allocate_locked(d, rows[i].name, rows[i].config, &e) < 0)
			gr_warn("instance %s: no network: %s", rows[i].name, e.msg);
		else
			gr_info("instance %s: joined network %s", rows[i].name, net ? net : NETWORK_DEFAULT);
	}
	store_instance_list_free(rows, n);
}

int network_startup(struct daemon *d, struct gr_error *err)
{
	struct networks *nets = calloc(1, sizeof(*nets));
	if (!nets)
		return gr_error_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&nets->mu, NULL);
	pthread_mutex_init(&nets->stop_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&nets->stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	d->networks = nets;
	{
		NETS_LOCK(d);
		struct store_network *rows = NULL;
		size_t n = 0;
		int rc = store_network_list(d->store, &rows, &n, err);
		store_network_list_free(rows, n);
		if (rc < 0)
			return rc;
		struct gr_error e = { 0 };
		/* The first start (no network at all): the default one. */
		if (n == 0 && create_locked(d, NETWORK_DEFAULT, NULL, true, false, true, NULL, &e) < 0)
			gr_log(GR_LOG_ERROR, "the default network: %s", e.msg);
		give_nics(d);
		apply_all(d);
	}
	if (pthread_create(&nets->supervisor, NULL, supervise, d) == 0)
		nets->supervising = true;
	else
		gr_warn("networks: cannot start the dnsmasq supervisor thread");
	return 0;
}

void network_shutdown(struct daemon *d)
{
	struct networks *nets = nets_of(d);
	if (!nets)
		return;
	if (nets->supervising) {
		pthread_mutex_lock(&nets->stop_mu);
		nets->stop = true;
		pthread_cond_signal(&nets->stop_cv);
		pthread_mutex_unlock(&nets->stop_mu);
		pthread_join(nets->supervisor, NULL);
	}
	while (nets->errors)
		set_error(nets, nets->errors->name, NULL);
	pthread_mutex_destroy(&nets->mu);
	pthread_mutex_destroy(&nets->stop_mu);
	pthread_cond_destroy(&nets->stop_cv);
	free(nets);
	d->networks = NULL;
}
