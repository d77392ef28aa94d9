/* Links, addresses and routes over rtnetlink (libmnl), and sysctls (netlink.h). */
#include "daemon/network/netlink.h"
#include "common/cleanup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_tun.h>
#include <linux/veth.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

/* Replies are read into this much: the kernel fills dump messages up to
 * 32 KiB when the reader's buffer allows (libmnl's MNL_SOCKET_DUMP_SIZE). */
#define NL_RECV_SIZE 32768
/* Requests are small: a few names, addresses and nests. */
#define NL_REQ_SIZE 2048

/* One rtnetlink socket, for one call. */
struct nl {
	struct mnl_socket *sock;
	unsigned portid;
	unsigned seq;
	char *buf;                /* NL_RECV_SIZE */
	char ext[256];            /* the kernel's extended ack message of the last request */
};

static void nl_close(struct nl *nl)
{
	if (nl->sock)
		mnl_socket_close(nl->sock);
	nl->sock = NULL;
	free(nl->buf);
	nl->buf = NULL;
}

#define nl_auto _cleanup_(nl_close)

static int nl_open(struct nl *nl, struct gr_error *err)
{
	memset(nl, 0, sizeof(*nl));
	nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->sock)
		return gr_error_sys(err, errno, "cannot open an rtnetlink socket");
	int one = 1;
	/* Both are best effort: without them errors lose their text, or the
	 * kernel echoes the request back in every error. */
	(void)mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one));
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		nl_close(nl);
		return gr_error_sys(err, e, "cannot bind an rtnetlink socket");
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->buf = malloc(NL_RECV_SIZE);
	if (!nl->buf) {
		nl_close(nl);
		return gr_error_set(err, ENOMEM, "out of memory for an rtnetlink buffer");
	}
	unsigned seed;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = (unsigned)getpid();
	nl->seq = seed | 1;
	return 0;
}

/* What mnl_cb_run2 hands every callback. */
struct nl_run {
	struct nl *nl;
	mnl_cb_t cb;              /* data messages (may be NULL) */
	void *data;
	int error;                /* positive errno from the kernel or from cb */
};

struct ext_ack {
	char *msg;
	size_t size;
};

static int ext_ack_attr(const struct nlattr *a, void *data)
{
	struct ext_ack *x = data;
	if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
		snprintf(x->msg, x->size, "%s", mnl_attr_get_str(a));
	return MNL_CB_OK;
}

/* The error code and extended ack TLVs (NLMSGERR_ATTR_MSG) that follow a
 * struct nlmsgerr: after the whole request unless the kernel capped it. */
static int nl_parse_error(const struct nlmsghdr *nlh, int code, size_t hdr, struct nl_run *run)
{
	run->nl->ext[0] = '\0';
	if (code == 0)
		return MNL_CB_STOP;
	if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
		struct ext_ack x = { run->nl->ext, sizeof(run->nl->ext) };
		if (MNL_ALIGN(hdr) < mnl_nlmsg_get_payload_len(nlh))
			(void)mnl_attr_parse(nlh, MNL_ALIGN(hdr), ext_ack_attr, &x);
	}
	run->error = code < 0 ? -code : code;
	return MNL_CB_ERROR;
}

static int nl_cb_error(const struct nlmsghdr *nlh, void *data)
{
	struct nl_run *run = data;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(struct nlmsgerr)) {
		run->error = EBADMSG;
		return MNL_CB_ERROR;
	}
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t hdr = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		hdr += e->msg.nlmsg_len > sizeof(struct nlmsghdr) ? e->msg.nlmsg_len - sizeof(struct nlmsghdr) : 0;
	return nl_parse_error(nlh, e->error, hdr, run);
}

/* The end of a dump; a failed dump carries its error here. */
static int nl_cb_done(const struct nlmsghdr *nlh, void *data)
{
	struct nl_run *run = data;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(int))
		return MNL_CB_STOP;
	int code;
	memcpy(&code, mnl_nlmsg_get_payload(nlh), sizeof(code));
	return nl_parse_error(nlh, code, sizeof(int), run);
}

static int nl_cb_data(const struct nlmsghdr *nlh, void *data)
{
	struct nl_run *run = data;
	return run->cb ? run->cb(nlh, run->data) : MNL_CB_OK;
}

/* Sends nlh (a request: NLM_F_ACK is added; or an RTM_GET* dump) and reads the
 * replies until the ack, the error or the end of the dump; cb sees each
 * data message and may fail the call by setting errno and returning
 * MNL_CB_ERROR. Returns 0 or -errno; a kernel error's extended ack
 * message is left in nl->ext. */
static int nl_talk(struct nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	/* NLM_F_DUMP's bits mean NLM_F_REPLACE|NLM_F_EXCL in RTM_NEW* requests:
	 * a dump is an RTM_GET* (type % 4 == 2) with both. */
	bool dump = (nlh->nlmsg_type & 3) == 2 && (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
	if (!dump)
		nlh->nlmsg_flags |= NLM_F_ACK;
	unsigned seq = nlh->nlmsg_seq = nl->seq++;
	nl->ext[0] = '\0';
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	static mnl_cb_t ctl[NLMSG_MIN_TYPE] = { /* never written: libmnl takes it non-const */
		[NLMSG_ERROR] = nl_cb_error,
		[NLMSG_DONE] = nl_cb_done,
	};
	struct nl_run run = { nl, cb, data, 0 };
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sock, nl->buf, NL_RECV_SIZE);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		errno = 0;
		int r = mnl_cb_run2(nl->buf, (size_t)n, seq, nl->portid, nl_cb_data, &run, ctl, NLMSG_MIN_TYPE);
		if (r == MNL_CB_STOP)
			return 0;
		if (r == MNL_CB_ERROR) {
			int e = run.error ? run.error : errno;
			return -(e ? e : EPROTO);
		}
	}
}

/* "WHAT: strerror(-r)[: the kernel's message]" */
__attribute__((format(printf, 4, 5)))
static int nl_fail(const struct nl *nl, struct gr_error *err, int r, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (nl && nl->ext[0])
		return gr_error_set(err, -r, "%s: %s: %s", what, strerror(-r), nl->ext);
	return gr_error_set(err, -r, "%s: %s", what, strerror(-r));
}

static struct nlmsghdr *nl_msg(void *buf, uint16_t type, uint16_t flags)
{
	memset(buf, 0, NL_REQ_SIZE);
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	return nlh;
}

/* Kernel rules (dev_valid_name): 1..IFNAMSIZ-1 bytes, not "." or "..", no
 * '/', ':' or white space. */
static int ifname_check(const char *name, const char *what, struct gr_error *err)
{
	size_t n = name ? strlen(name) : 0;
	bool ok = n > 0 && n < IFNAMSIZ && strcmp(name, ".") && strcmp(name, "..");
	for (size_t i = 0; ok && i < n; i++)
		ok = name[i] != '/' && name[i] != ':' && (unsigned char)name[i] > ' ' && name[i] != 0x7f;
	if (!ok)
		return gr_error_set(err, EINVAL,
				    "invalid %s name \"%.32s\": 1-%d characters, not \".\" or \"..\", without '/', ':' or "
				    "spaces",
				    what, name ? name : "", IFNAMSIZ - 1);
	return 0;
}

static uint32_t mask_of(unsigned prefix)
{
	return prefix == 0 ? 0 : prefix >= 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
}

static void ip_str(uint32_t a, char buf[INET_ADDRSTRLEN])
{
	struct in_addr in = { htonl(a) };
	inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
}

/* ---- links ---- */

struct link {
	int index;
	unsigned flags;
	unsigned mtu;
	int master;               /* 0: none */
	char kind[32];            /* IFLA_INFO_KIND, "" when none (lo, physical) */
};

static int linkinfo_attr(const struct nlattr *a, void *data)
{
	struct link *l = data;
	if (mnl_attr_get_type(a) == IFLA_INFO_KIND && mnl_attr_validate(a, MNL_TYPE_STRING) == 0)
		snprintf(l->kind, sizeof(l->kind), "%.*s", (int)strnlen(mnl_attr_get_payload(a),
								       mnl_attr_get_payload_len(a)),
			 (const char *)mnl_attr_get_payload(a));
	return MNL_CB_OK;
}

static int link_attr(const struct nlattr *a, void *data)
{
	struct link *l = data;
	switch (mnl_attr_get_type(a)) {
	case IFLA_MTU:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			l->mtu = mnl_attr_get_u32(a);
		break;
	case IFLA_MASTER:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			l->master = (int)mnl_attr_get_u32(a);
		break;
	case IFLA_LINKINFO:
		if (mnl_attr_validate(a, MNL_TYPE_NESTED) == 0)
			(void)mnl_attr_parse_nested(a, linkinfo_attr, l);
		break;
	}
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct link *l = data;
	if (nlh->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(nlh) < sizeof(struct ifinfomsg))
		return MNL_CB_OK;
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	memset(l, 0, sizeof(*l));
	l->index = ifm->ifi_index;
	l->flags = ifm->ifi_flags;
	(void)mnl_attr_parse(nlh, sizeof(*ifm), link_attr, l);
	return MNL_CB_OK;
}

/* The link NAME; -ENODEV (nl->ext set by the kernel) when there is none. */
static int link_get(struct nl *nl, const char *name, struct link *out)
{
	char buf[NL_REQ_SIZE] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = nl_msg(buf, RTM_GETLINK, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	memset(out, 0, sizeof(*out));
	int r = nl_talk(nl, nlh, link_cb, out);
	if (r == 0 && out->index <= 0)
		r = -ENODEV;
	return r;
}

/* Looks NAME up, with a message naming it when it is missing. */
static int link_need(struct nl *nl, const char *name, const char *what, struct link *out, struct gr_error *err)
{
	int r = link_get(nl, name, out);
	if (r == -ENODEV)
		return gr_error_set(err, ENODEV, "there is no %s named %s", what, name);
	if (r < 0)
		return nl_fail(nl, err, r, "cannot look up the %s %s", what, name);
	return 0;
}

/* Sets the link up, and its master when master > 0. */
static int link_set(struct nl *nl, int index, int master)
{
	char buf[NL_REQ_SIZE] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = nl_msg(buf, RTM_NEWLINK, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = index;
	ifm->ifi_flags = IFF_UP;
	ifm->ifi_change = IFF_UP;
	if (master > 0)
		mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
	return nl_talk(nl, nlh, NULL, NULL);
}

/* Hairpin mode on a bridge port: a frame may leave by the port it came in
 * by, so an instance reaches its own port forward through the host's
 * address (the DNAT sends it back to where it came from). */
static int port_hairpin(struct nl *nl, int index)
{
	char buf[NL_REQ_SIZE] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = nl_msg(buf, RTM_SETLINK, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_BRIDGE;
	ifm->ifi_index = index;
	struct nlattr *pi = mnl_attr_nest_start(nlh, IFLA_PROTINFO | NLA_F_NESTED);
	mnl_attr_put_u8(nlh, IFLA_BRPORT_MODE, 1);
	mnl_attr_nest_end(nlh, pi);
	return nl_talk(nl, nlh, NULL, NULL);
}

static int link_up(struct nl *nl, const char *name, struct gr_error *err)
{
	struct link l;
	int r = link_need(nl, name, "network link", &l, err);
	if (r < 0)
		return r;
	if ((r = link_set(nl, l.index, 0)) < 0)
		return nl_fail(nl, err, r, "cannot set link %s up", name);
	return 0;
}

int nl_link_index(const char *name, struct gr_error *err)
{
	int r = ifname_check(name, "network link", err);
	if (r < 0)
		return r;
	nl_auto struct nl nl = { 0 };
	struct link l;
	if ((r = nl_open(&nl, err)) < 0 || (r = link_need(&nl, name, "network link", &l, err)) < 0)
		return r;
	return l.index;
}

/* Adds addr/prefix to the link (kept when it is there already). */
static int addr_add(struct nl *nl, int index, const char *ifname, uint32_t addr, unsigned prefix,
		    struct gr_error *err)
{
	char buf[NL_REQ_SIZE] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = nl_msg(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)index;
	mnl_attr_put_u32(nlh, IFA_LOCAL, htonl(addr));
	mnl_attr_put_u32(nlh, IFA_ADDRESS, htonl(addr));
	if (prefix < 31)
		mnl_attr_put_u32(nlh, IFA_BROADCAST, htonl(addr | ~mask_of(prefix)));
	int r = nl_talk(nl, nlh, NULL, NULL);
	if (r < 0 && r != -EEXIST) {
		char a[INET_ADDRSTRLEN];
		ip_str(addr, a);
		return nl_fail(nl, err, r, "cannot add address %s/%u to %s", a, prefix, ifname);
	}
	return 0;
}

static int addr_check(uint32_t addr, unsigned prefix, const char *what, struct gr_error *err)
{
	if (prefix < 1 || prefix > 32)
		return gr_error_set(err, EINVAL, "invalid prefix length /%u for the %s: 1 to 32", prefix, what);
	if (addr == 0)
		return gr_error_set(err, EINVAL, "invalid %s 0.0.0.0", what);
	return 0;
}

int nl_bridge_ensure(const char *name, uint32_t gw, unsigned prefix, struct gr_error *err)
{
	int r;
	if ((r = ifname_check(name, "bridge", err)) < 0 || (r = addr_check(gw, prefix, "bridge address", err)) < 0)
		return r;
	nl_auto struct nl nl = { 0 };
	if ((r = nl_open(&nl, err)) < 0)
		return r;

	/* A bridge takes the lowest MAC of its ports unless it has one of its
	 * own: give it a fixed random one, so instances' neighbour entries for
	 * the gateway stay right as ports come and go. */
	uint8_t mac[6];
	if (getrandom(mac, sizeof(mac), 0) != (ssize_t)sizeof(mac))
		return gr_error_sys(err, errno ? errno : EIO, "cannot draw a MAC address for bridge %s", name);
	mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02); /* locally administered, unicast */

	char buf[NL_REQ_SIZE] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = nl_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put(nlh, IFLA_ADDRESS, sizeof(mac), mac);
	struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
	mnl_attr_nest_end(nlh, info);
	r = nl_talk(&nl, nlh, NULL, NULL);
	if (r < 0 && r != -EEXIST)
		return nl_fail(&nl, err, r, "cannot create bridge %s", name);

	struct link l;
	if ((r = link_need(&nl, name, "bridge", &l, err)) < 0)
		return r;
	if (strcmp(l.kind, "bridge") != 0)
		return gr_error_set(err, EEXIST,
				    "cannot create bridge %s: a network link of that name exists and is not a bridge (%s%s): "
				    "delete or rename it, or use another bridge name",
				    name, l.kind[0] ? "kind " : "no kind", l.kind);
	if ((r = addr_add(&nl, l.index, name, gw, prefix, err)) < 0)
		return r;
	if ((r = link_set(&nl, l.index, 0)) < 0)
		return nl_fail(&nl, err, r, "cannot set bridge %s up", name);
	return 0;
}

int nl_link_delete(const char *name, struct gr_error *err)
{
	int r = ifname_check(name, "network link", err);
	if (r < 0)
		return r;
	nl_auto struct nl nl = { 0 };
	if ((r = nl_open(&nl, err)) < 0)
		return r;
	char buf[NL_REQ_SIZE] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = nl_msg(buf, RTM_DELLINK, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	r = nl_talk(&nl, nlh, NULL, NULL);
	if (r == -ENODEV)
		return 0;
	if (r < 0)
		return nl_fail(&nl, err, r, "cannot delete network link %s", name);
	return 0;
}

int nl_veth_create(const char *host_name, const char *bridge, int netns_fd, const char *peer_name,
		   const uint8_t peer_mac[6], unsigned mtu, struct gr_error *err)
{
	int r;
	if ((r = ifname_check(host_name, "veth", err)) < 0 || (r = ifname_check(bridge, "bridge", err)) < 0 ||
	    (r = ifname_check(peer_name, "veth peer", err)) < 0)
		return r;
	if (netns_fd < 0)
		return gr_error_set(err, EBADF, "cannot create veth pair %s: no network namespace descriptor for its peer %s",
				    host_name, peer_name);
	nl_auto struct nl nl = { 0 };
	struct link br;
	if ((r = nl_open(&nl, err)) < 0 || (r = link_need(&nl, bridge, "bridge", &br, err)) < 0)
		return gr_error_prefix(err, "cannot create veth pair %s", host_name);
	if (mtu == 0)
		mtu = br.mtu;

	char buf[NL_REQ_SIZE] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = nl_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, host_name);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	struct nlattr *peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* The peer's attributes follow an ifinfomsg of its own. */
	struct ifinfomsg *pifm = mnl_nlmsg_get_payload_tail(nlh);
	memset(pifm, 0, MNL_ALIGN(sizeof(*pifm)));
	pifm->ifi_family = AF_UNSPEC;
	nlh->nlmsg_len += MNL_ALIGN(sizeof(*pifm));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer_name);
	if (peer_mac)
		mnl_attr_put(nlh, IFLA_ADDRESS, 6, peer_mac);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	r = nl_talk(&nl, nlh, NULL, NULL);
	if (r == -EEXIST)
		return gr_error_set(err, EEXIST, "cannot create veth pair %s (peer %s in the instance's namespace): a link "
				    "named %s here or %s there exists already", host_name, peer_name, host_name, peer_name);
	if (r < 0)
		return nl_fail(&nl, err, r, "cannot create veth pair %s (peer %s in the instance's namespace)",
			       host_name, peer_name);

	struct link l;
	if ((r = link_get(&nl, host_name, &l)) < 0)
		(void)nl_fail(&nl, err, r, "cannot look up the new veth %s", host_name);
	else if ((r = link_set(&nl, l.index, br.index)) < 0)
		(void)nl_fail(&nl, err, r, "cannot attach veth %s to bridge %s", host_name, bridge);
	else if ((r = port_hairpin(&nl, l.index)) < 0)
		(void)nl_fail(&nl, err, r, "cannot set hairpin mode on %s", host_name);
	if (r < 0) {
		/* Nothing half-made: deleting one end deletes the pair. */
		struct gr_error ignored;
		(void)nl_link_delete(host_name, &ignored);
		return r;
	}
	return 0;
}

int nl_tap_create(const char *name, const char *bridge, struct gr_error *err)
{
	int r;
	if ((r = ifname_check(name, "tap", err)) < 0 || (r = ifname_check(bridge, "bridge", err)) < 0)
		return r;
	gr_autoclose int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot create tap %s: /dev/net/tun", name);
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	/* The flags the VM engine opens it with (QEMU: vnet_hdr when it can). */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return gr_error_sys(err, errno, "cannot create tap %s", name);
	if (ioctl(fd, TUNSETPERSIST, 1) < 0)
		return gr_error_sys(err, errno, "cannot make tap %s persistent", name);
	if ((r = nl_link_set_master(name, bridge, err)) < 0) {
		(void)ioctl(fd, TUNSETPERSIST, 0); /* the tap goes with fd */
		return r;
	}
	return 0;
}

int nl_link_set_master(const char *name, const char *bridge, struct gr_error *err)
{
	int r;
	if ((r = ifname_check(name, "network link", err)) < 0 || (r = ifname_check(bridge, "bridge", err)) < 0)
		return r;
	nl_auto struct nl nl = { 0 };
	struct link l, br;
	if ((r = nl_open(&nl, err)) < 0 || (r = link_need(&nl, name, "network link", &l, err)) < 0 ||
	    (r = link_need(&nl, bridge, "bridge", &br, err)) < 0)
		return r;
	if ((r = link_set(&nl, l.index, br.index)) < 0)
		return nl_fail(&nl, err, r, "cannot attach %s to bridge %s", name, bridge);
	if ((r = port_hairpin(&nl, l.index)) < 0)
		return nl_fail(&nl, err, r, "cannot set hairpin mode on %s", name);
	return 0;
}

/* ---- work inside another network namespace ---- */

struct ns_job {
	int netns_fd;
	int (*fn)(struct ns_job *job, struct gr_error *err);
	const char *ifname;
	uint32_t addr, gateway;
	unsigned prefix;
	int r;
	struct gr_error err;
};

static void *ns_job_main(void *p)
{
	struct ns_job *j = p;
	if (setns(j->netns_fd, CLONE_NEWNET) < 0)
		j->r = gr_error_sys(&j->err, errno, "cannot enter the network namespace (descriptor %d)", j->netns_fd);
	else
		j->r = j->fn(j, &j->err);
	return NULL;
}

/* Runs job->fn on a new thread that enters job->netns_fd, and waits for it:
 * the namespace goes away with the thread, no caller's thread changes. */
static int ns_run(struct ns_job *j, struct gr_error *err)
{
	if (j->netns_fd < 0)
		return gr_error_set(err, EBADF, "no network namespace descriptor (%d)", j->netns_fd);
	pthread_attr_t attr;
	int e = pthread_attr_init(&attr);
	if (e)
		return gr_error_sys(err, e, "cannot start a thread to work in a network namespace");
	/* Signals stay with the threads that expect them. */
	sigset_t all;
	sigfillset(&all);
	(void)pthread_attr_setsigmask_np(&attr, &all);
	pthread_t t;
	gr_error_clear(&j->err);
	j->r = -EINTR;
	e = pthread_create(&t, &attr, ns_job_main, j);
	pthread_attr_destroy(&attr);
	if (e)
		return gr_error_sys(err, e, "cannot start a thread to work in a network namespace");
	pthread_join(t, NULL);
	if (j->r < 0 && err)
		*err = j->err;
	return j->r;
}

static int job_configure(struct ns_job *j, struct gr_error *err)
{
	nl_auto struct nl nl = { 0 };
	struct link l;
	int r;
	if ((r = nl_open(&nl, err)) < 0 || (r = link_up(&nl, "lo", err)) < 0)
		return r;
	if ((r = link_get(&nl, j->ifname, &l)) == -ENODEV)
		return gr_error_set(err, ENODEV, "there is no network link named %s in the instance's namespace",
				    j->ifname);
	if (r < 0)
		return nl_fail(&nl, err, r, "cannot look up %s in the instance's namespace", j->ifname);
	/* IPv4 only: no IPv6 on the link, so no router advertisement from a
	 * neighbour can route the instance (the sysctl is this thread's
	 * namespace's; a host without IPv6 has none to write). */
	char key[64];
	snprintf(key, sizeof(key), "net/ipv6/conf/%s/disable_ipv6", j->ifname);
	if ((r = net_sysctl_write(key, "1", err)) < 0 && r != -ENOENT)
		return r;
	if ((r = addr_add(&nl, l.index, j->ifname, j->addr, j->prefix, err)) < 0)
		return r;
	/* Up before the route: the gateway must be reachable through the
	 * subnet route that comes with the address on an up link. */
	if ((r = link_set(&nl, l.index, 0)) < 0)
		return nl_fail(&nl, err, r, "cannot set %s up", j->ifname);
	if (j->gateway == 0)
		return 0;

	char buf[NL_REQ_SIZE] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = nl_msg(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET;
	rtm->rtm_dst_len = 0;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put_u32(nlh, RTA_TABLE, RT_TABLE_MAIN);
	mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(j->gateway));
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)l.index);
	if ((r = nl_talk(&nl, nlh, NULL, NULL)) < 0) {
		char g[INET_ADDRSTRLEN];
		ip_str(j->gateway, g);
		return nl_fail(&nl, err, r, "cannot add the default route via %s on %s", g, j->ifname);
	}
	return 0;
}

int nl_netns_configure(int netns_fd, const char *ifname, uint32_t addr, unsigned prefix, uint32_t gateway,
		       struct gr_error *err)
{
	int r;
	if ((r = ifname_check(ifname, "network link", err)) < 0 || (r = addr_check(addr, prefix, "address", err)) < 0)
		return r;
	struct ns_job j = { .netns_fd = netns_fd, .fn = job_configure, .ifname = ifname, .addr = addr,
			    .prefix = prefix, .gateway = gateway };
	return ns_run(&j, err);
}

static int job_loopback(struct ns_job *j, struct gr_error *err)
{
	(void)j;
	nl_auto struct nl nl = { 0 };
	int r = nl_open(&nl, err);
	return r < 0 ? r : link_up(&nl, "lo", err);
}

int nl_netns_loopback(int netns_fd, struct gr_error *err)
{
	struct ns_job j = { .netns_fd = netns_fd, .fn = job_loopback };
	return ns_run(&j, err);
}

/* ---- what is in use ---- */

struct in_use {
	struct ipv4_net *v;
	size_t n, cap;
};

static int in_use_add(struct in_use *u, uint32_t addr_be, unsigned prefix)
{
	if (prefix > 32)
		return MNL_CB_OK;
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 32;
		struct ipv4_net *v = realloc(u->v, cap * sizeof(*v));
		if (!v) {
			errno = ENOMEM;
			return MNL_CB_ERROR;
		}
		u->v = v;
		u->cap = cap;
	}
	u->v[u->n++] = (struct ipv4_net){ ntohl(addr_be) & mask_of(prefix), prefix };
	return MNL_CB_OK;
}

struct attrs4 {
	const struct nlattr *a[RTA_MAX > IFA_MAX ? RTA_MAX + 1 : IFA_MAX + 1];
	int max;
};

static int attrs4_cb(const struct nlattr *a, void *data)
{
	struct attrs4 *t = data;
	int type = mnl_attr_get_type(a);
	if (type <= t->max && mnl_attr_get_payload_len(a) >= 4)
		t->a[type] = a;
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type != RTM_NEWROUTE || mnl_nlmsg_get_payload_len(nlh) < sizeof(struct rtmsg))
		return MNL_CB_OK;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	/* Local and broadcast routes come with addresses (counted below);
	 * the default route reaches everything and so reserves nothing. */
	if (rtm->rtm_family != AF_INET || rtm->rtm_type != RTN_UNICAST || rtm->rtm_dst_len == 0)
		return MNL_CB_OK;
	struct attrs4 t = { .max = RTA_MAX };
	(void)mnl_attr_parse(nlh, sizeof(*rtm), attrs4_cb, &t);
	if (!t.a[RTA_DST])
		return MNL_CB_OK;
	return in_use_add(data, mnl_attr_get_u32(t.a[RTA_DST]), rtm->rtm_dst_len);
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(nlh) < sizeof(struct ifaddrmsg))
		return MNL_CB_OK;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	if (ifa->ifa_family != AF_INET)
		return MNL_CB_OK;
	struct attrs4 t = { .max = IFA_MAX };
	(void)mnl_attr_parse(nlh, sizeof(*ifa), attrs4_cb, &t);
	int r = MNL_CB_OK;
	if (t.a[IFA_LOCAL])
		r = in_use_add(data, mnl_attr_get_u32(t.a[IFA_LOCAL]), ifa->ifa_prefixlen);
	/* IFA_ADDRESS differs from IFA_LOCAL on point-to-point links: the peer. */
	if (r == MNL_CB_OK && t.a[IFA_ADDRESS] &&
	    (!t.a[IFA_LOCAL] || mnl_attr_get_u32(t.a[IFA_ADDRESS]) != mnl_attr_get_u32(t.a[IFA_LOCAL])))
		r = in_use_add(data, mnl_attr_get_u32(t.a[IFA_ADDRESS]), ifa->ifa_prefixlen);
	return r;
}

static int dump4(struct nl *nl, uint16_t type, mnl_cb_t cb, struct in_use *u)
{
	char buf[NL_REQ_SIZE] __attribute__((aligned(8)));
	struct nlmsghdr *nlh = nl_msg(buf, type, NLM_F_DUMP);
	if (type == RTM_GETROUTE) {
		struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
		rtm->rtm_family = AF_INET; /* rtm_table 0: every table */
	} else {
		struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
		ifa->ifa_family = AF_INET;
	}
	return nl_talk(nl, nlh, cb, u);
}

int nl_ipv4_in_use(struct ipv4_net **out, size_t *n, struct gr_error *err)
{
	*out = NULL;
	*n = 0;
	int r = 0;
	/* A dump that races a change is flagged (EINTR by libmnl): start over,
	 * on a new socket (the old one still holds the rest of that dump). */
	for (int attempt = 0; attempt < 10; attempt++) {
		struct in_use u = { 0 };
		nl_auto struct nl nl = { 0 };
		if ((r = nl_open(&nl, err)) < 0)
			return r;
		const char *what = "routes";
		r = dump4(&nl, RTM_GETROUTE, route_cb, &u);
		if (r == 0) {
			what = "addresses";
			r = dump4(&nl, RTM_GETADDR, addr_cb, &u);
		}
		if (r == 0) {
			*out = u.v;
			*n = u.n;
			return 0;
		}
		free(u.v);
		if (r != -EINTR)
			return nl_fail(&nl, err, r, "cannot list the IPv4 %s in use", what);
	}
	return nl_fail(NULL, err, r, "cannot list the IPv4 routes and addresses in use: they kept changing");
}

/* ---- sysctls ---- */

int net_sysctl_write(const char *key, const char *value, struct gr_error *err)
{
	if (!key || !*key || key[0] == '/' || strstr(key, ".."))
		return gr_error_set(err, EINVAL, "invalid sysctl key \"%.128s\": a relative path under /proc/sys "
				    "(net/ipv4/ip_forward) without \"..\"", key ? key : "");
	if (!value)
		return gr_error_set(err, EINVAL, "no value for sysctl %s", key);
	char path[512];
	if (snprintf(path, sizeof(path), "/proc/sys/%s", key) >= (int)sizeof(path))
		return gr_error_set(err, ENAMETOOLONG, "sysctl key too long: %.64s...", key);
	gr_autoclose int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open %s to set it to %s", path, value);
	size_t len = strlen(value);
	ssize_t w = write(fd, value, len);
	if (w < 0)
		return gr_error_sys(err, errno, "cannot set %s to %s", path, value);
	if ((size_t)w != len)
		return gr_error_set(err, EIO, "cannot set %s to %s: short write (%zd of %zu bytes)", path, value, w, len);
	return 0;
}
