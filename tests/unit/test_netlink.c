/* Unit tests for src/daemon/network/netlink.c and netns.c, in a private
 * network namespace and a private mount namespace (main() unshares both
 * before cmocka runs: the initial namespaces are never touched): bridges
 * (create, idempotent, a second address, a non-bridge of the same name
 * refused), named namespaces (create, EEXIST, open of a non-namespace,
 * remove), a veth pair into a namespace configured from outside and
 * checked from inside (MAC, MTU, lo, address, default route) with TCP
 * traffic through the bridge both ways, link delete (either end; a missing
 * link), set_master, a failing attach leaving nothing, loopback only,
 * what is in use (every table; no local/broadcast/default routes), extended
 * ack messages, sysctls. Checks from inside a namespace run in a forked
 * child that setns()es into it. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN);
 * skipped when unshare(CLONE_NEWNET) is not permitted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "daemon/network/netlink.h"
#include "daemon/network/netns.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static const char *skip_reason;     /* unshare not permitted */
static char setup_failure[256];     /* anything else: every test fails with it */
static char tmpdir[64];             /* a tmpfs, in our private mount namespace */

static void need_private_netns(void)
{
	if (skip_reason) {
		print_message("SKIP: %s\n", skip_reason);
		skip();
	}
	if (setup_failure[0])
		fail_msg("%s", setup_failure);
}

static const char *tmp_path(const char *name)
{
	static char p[4][160];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
	return p[k];
}

/* ---- a few rtnetlink queries of the test's own, to check what the code did ---- */

struct qlink {
	int index;
	unsigned flags;
	unsigned mtu;
	int master;
	uint8_t mac[6];
	char kind[32];
};

static int q_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	struct mnl_socket *s = mnl_socket_open(NETLINK_ROUTE);
	if (!s)
		return -errno;
	if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(s);
		return -e;
	}
	unsigned portid = mnl_socket_get_portid(s);
	nlh->nlmsg_seq = 4242;
	if (!(nlh->nlmsg_type == RTM_GETROUTE && (nlh->nlmsg_flags & NLM_F_DUMP)))
		nlh->nlmsg_flags |= NLM_F_ACK;
	int r = -EIO;
	if (mnl_socket_sendto(s, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
	} else {
		static char buf[32768];
		for (;;) {
			ssize_t n = mnl_socket_recvfrom(s, buf, sizeof(buf));
			if (n < 0) {
				r = -errno;
				break;
			}
			int c = mnl_cb_run(buf, (size_t)n, 4242, portid, cb, data);
			if (c <= MNL_CB_STOP) {
				r = c < 0 ? -errno : 0;
				break;
			}
		}
	}
	mnl_socket_close(s);
	return r;
}

static int q_linkinfo_attr(const struct nlattr *a, void *data)
{
	struct qlink *l = data;
	if (mnl_attr_get_type(a) == IFLA_INFO_KIND)
		snprintf(l->kind, sizeof(l->kind), "%s", mnl_attr_get_str(a));
	return MNL_CB_OK;
}

static int q_link_attr(const struct nlattr *a, void *data)
{
	struct qlink *l = data;
	switch (mnl_attr_get_type(a)) {
	case IFLA_MTU:
		l->mtu = mnl_attr_get_u32(a);
		break;
	case IFLA_MASTER:
		l->master = (int)mnl_attr_get_u32(a);
		break;
	case IFLA_ADDRESS:
		if (mnl_attr_get_payload_len(a) == 6)
			memcpy(l->mac, mnl_attr_get_payload(a), 6);
		break;
	case IFLA_LINKINFO:
		mnl_attr_parse_nested(a, q_linkinfo_attr, l);
		break;
	}
	return MNL_CB_OK;
}

static int q_link_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	struct qlink *l = data;
	l->index = ifm->ifi_index;
	l->flags = ifm->ifi_flags;
	mnl_attr_parse(nlh, sizeof(*ifm), q_link_attr, l);
	return MNL_CB_OK;
}

/* The link NAME in the calling process's namespace: 0 or -ENODEV. */
static int q_link(const char *name, struct qlink *out)
{
	char buf[1024] __attribute__((aligned(8))) = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	memset(out, 0, sizeof(*out));
	return q_talk(nlh, q_link_cb, out);
}

static int q_link_down(int index)
{
	char buf[1024] __attribute__((aligned(8))) = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = index;
	ifm->ifi_change = IFF_UP;
	return q_talk(nlh, NULL, NULL);
}

/* ip route add DST/PREFIX dev INDEX table TABLE */
static int q_route_add(uint32_t dst, unsigned prefix, int index, uint32_t table)
{
	char buf[1024] __attribute__((aligned(8))) = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET;
	rtm->rtm_dst_len = (unsigned char)prefix;
	rtm->rtm_table = RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_LINK;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	mnl_attr_put_u32(nlh, RTA_DST, htonl(dst));
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)index);
	return q_talk(nlh, NULL, NULL);
}

struct qdefault {
	int found;
	uint32_t gateway;
	int oif;
};

static int q_route_attr(const struct nlattr *a, void *data)
{
	struct qdefault *d = data;
	if (mnl_attr_get_type(a) == RTA_GATEWAY)
		d->gateway = ntohl(mnl_attr_get_u32(a));
	else if (mnl_attr_get_type(a) == RTA_OIF)
		d->oif = (int)mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

static int q_route_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct qdefault *d = data;
	if (rtm->rtm_family == AF_INET && rtm->rtm_dst_len == 0 && rtm->rtm_type == RTN_UNICAST &&
	    rtm->rtm_table == RT_TABLE_MAIN) {
		d->found++;
		mnl_attr_parse(nlh, sizeof(*rtm), q_route_attr, d);
	}
	return MNL_CB_OK;
}

/* The default routes of the main table. */
static int q_default_route(struct qdefault *d)
{
	char buf[1024] __attribute__((aligned(8))) = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET;
	memset(d, 0, sizeof(*d));
	return q_talk(nlh, q_route_cb, d);
}

/* ---- helpers ---- */

static bool in_use_has(const struct ipv4_net *v, size_t n, uint32_t addr, unsigned prefix)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].addr == addr && v[i].prefix == prefix)
			return true;
	return false;
}

static ino_t netns_ino_of_thread(void)
{
	struct stat st;
	assert_int_equal(stat("/proc/thread-self/ns/net", &st), 0);
	return st.st_ino;
}

/* Runs fn in a forked child that enters the namespace; returns its exit
 * status (fn's value), or a value above 200 when it could not run. */
static int in_netns(int netns_fd, int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setns(netns_fd, CLONE_NEWNET) < 0)
			_exit(201);
		_exit(fn(arg));
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 202;
}

static int make_netns(const char *name)
{
	struct gr_error err = { 0 };
	int r = netns_create(tmp_path(name), &err);
	if (r < 0)
		fail_msg("netns_create %s: %s", name, err.msg);
	int fd = netns_open(tmp_path(name), &err);
	if (fd < 0)
		fail_msg("netns_open %s: %s", name, err.msg);
	return fd;
}

static void drop_netns(const char *name, int fd)
{
	struct gr_error err = { 0 };
	close(fd);
	assert_int_equal(netns_remove(tmp_path(name), &err), 0);
}

/* ---- bridges ---- */

static void test_bridge(void **state)
{
	(void)state;
	need_private_netns();
	struct gr_error err = { 0 };
	struct qlink l, br;

	assert_int_equal(nl_link_index("gr-br0", &err), -ENODEV);
	assert_non_null(strstr(err.msg, "gr-br0"));

	int r = nl_bridge_ensure("gr-br0", IP(10, 99, 0, 1), 24, &err);
	if (r < 0)
		fail_msg("nl_bridge_ensure: %s", err.msg);
	assert_int_equal(q_link("gr-br0", &br), 0);
	assert_string_equal(br.kind, "bridge");
	assert_true(br.flags & IFF_UP);
	assert_int_equal(br.mac[0] & 0x03, 0x02); /* its own MAC: locally administered, unicast */
	uint8_t mac[6];
	memcpy(mac, br.mac, 6);
	assert_int_equal(nl_link_index("gr-br0", &err), br.index);

	/* Again: nothing changes, nothing fails. */
	assert_int_equal(nl_bridge_ensure("gr-br0", IP(10, 99, 0, 1), 24, &err), 0);
	assert_int_equal(q_link("gr-br0", &l), 0);
	assert_int_equal(l.index, br.index);
	assert_memory_equal(l.mac, mac, 6);

	/* Down (drift): ensure sets it up again. */
	assert_int_equal(q_link_down(br.index), 0);
	assert_int_equal(q_link("gr-br0", &l), 0);
	assert_false(l.flags & IFF_UP);
	assert_int_equal(nl_bridge_ensure("gr-br0", IP(10, 99, 0, 1), 24, &err), 0);
	assert_int_equal(q_link("gr-br0", &l), 0);
	assert_true(l.flags & IFF_UP);

	/* Another address is added next to the first. */
	assert_int_equal(nl_bridge_ensure("gr-br0", IP(10, 98, 0, 1), 16, &err), 0);
	struct ipv4_net *v = NULL;
	size_t n = 0;
	r = nl_ipv4_in_use(&v, &n, &err);
	if (r < 0)
		fail_msg("nl_ipv4_in_use: %s", err.msg);
	assert_true(in_use_has(v, n, IP(10, 99, 0, 0), 24));
	assert_true(in_use_has(v, n, IP(10, 98, 0, 0), 16));
	free(v);

	/* Refused: bad names and addresses. */
	assert_int_equal(nl_bridge_ensure("gr-br0", IP(10, 99, 0, 1), 33, &err), -EINVAL);
	assert_int_equal(nl_bridge_ensure("gr-br0", 0, 24, &err), -EINVAL);
	assert_int_equal(nl_bridge_ensure("abcdefghijklmnop", IP(10, 99, 0, 1), 24, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "abcdefghijklmnop"));
	assert_int_equal(nl_bridge_ensure("a/b", IP(10, 99, 0, 1), 24, &err), -EINVAL);
	assert_int_equal(nl_bridge_ensure("", IP(10, 99, 0, 1), 24, &err), -EINVAL);
	assert_int_equal(nl_bridge_ensure(NULL, IP(10, 99, 0, 1), 24, &err), -EINVAL);
	assert_int_equal(nl_link_index("a b", &err), -EINVAL);

	/* A link of that name that is not a bridge: -EEXIST, saying so. */
	int fd = make_netns("ns-nb");
	static const uint8_t pmac[6] = { 0x0e, 1, 2, 3, 4, 5 };
	r = nl_veth_create("gr-nb", "gr-br0", fd, "eth0", pmac, 0, &err);
	if (r < 0)
		fail_msg("nl_veth_create: %s", err.msg);
	assert_int_equal(nl_bridge_ensure("gr-nb", IP(10, 97, 0, 1), 24, &err), -EEXIST);
	print_message("refused: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "gr-nb"));
	assert_non_null(strstr(err.msg, "not a bridge"));
	assert_non_null(strstr(err.msg, "veth"));
	assert_int_equal(q_link("gr-nb", &l), 0);
	assert_string_equal(l.kind, "veth"); /* untouched */

	assert_int_equal(nl_link_delete("gr-nb", &err), 0);
	drop_netns("ns-nb", fd);
	assert_int_equal(nl_link_delete("gr-br0", &err), 0);
	assert_int_equal(q_link("gr-br0", &l), -ENODEV);
}

/* ---- what is in use ---- */

static void test_ipv4_in_use(void **state)
{
	(void)state;
	need_private_netns();
	struct gr_error err = { 0 };
	struct qlink br;

	assert_int_equal(nl_bridge_ensure("gr-br5", IP(10, 95, 3, 1), 24, &err), 0);
	assert_int_equal(q_link("gr-br5", &br), 0);
	/* A route in a table of its own (as policy routing would add). */
	assert_int_equal(q_route_add(IP(10, 55, 0, 0), 16, br.index, 100), 0);

	struct ipv4_net *v = NULL;
	size_t n = 0;
	int r = nl_ipv4_in_use(&v, &n, &err);
	if (r < 0)
		fail_msg("nl_ipv4_in_use: %s", err.msg);
	assert_true(in_use_has(v, n, IP(10, 95, 3, 0), 24));  /* the address's subnet (and its route) */
	assert_true(in_use_has(v, n, IP(10, 55, 0, 0), 16));  /* table 100 */
	for (size_t i = 0; i < n; i++) {
		uint32_t mask = v[i].prefix ? ~(0xffffffffu >> v[i].prefix) : 0;
		assert_int_equal(v[i].addr & ~mask, 0);          /* host bits cleared */
		assert_true(v[i].prefix > 0);                    /* no default route */
		/* local (10.95.3.1/32) and broadcast (10.95.3.255/32) routes are not counted */
		assert_int_not_equal(v[i].prefix, 32);
	}
	free(v);
	assert_int_equal(nl_link_delete("gr-br5", &err), 0);
}

/* ---- namespaces ---- */

static void test_netns(void **state)
{
	(void)state;
	need_private_netns();
	struct gr_error err = { 0 };
	ino_t mine = netns_ino_of_thread();
	const char *p = tmp_path("ns1");

	int r = netns_create(p, &err);
	if (r < 0)
		fail_msg("netns_create: %s", err.msg);
	assert_int_equal(netns_ino_of_thread(), mine); /* no thread of ours moved */

	int fd = netns_open(p, &err);
	if (fd < 0)
		fail_msg("netns_open: %s", err.msg);
	assert_int_equal(ioctl(fd, NS_GET_NSTYPE), CLONE_NEWNET);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_not_equal(st.st_ino, mine);               /* a new namespace */
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	int fd2 = netns_open(p, &err);
	struct stat st2;
	assert_true(fd2 >= 0);
	assert_int_equal(fstat(fd2, &st2), 0);
	assert_int_equal(st2.st_ino, st.st_ino);             /* the same one, kept by the bind mount */
	close(fd2);

	assert_int_equal(netns_create(p, &err), -EEXIST);
	assert_non_null(strstr(err.msg, p));
	fd2 = netns_open(p, &err);                           /* still there, untouched */
	assert_true(fd2 >= 0);
	close(fd2);

	/* Not namespaces. */
	const char *f = tmp_path("plain");
	int pf = open(f, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(pf >= 0);
	close(pf);
	assert_int_equal(netns_open(f, &err), -EINVAL);
	assert_non_null(strstr(err.msg, f));
	assert_int_equal(netns_open(tmpdir, &err), -EINVAL);
	assert_int_equal(netns_open(tmp_path("absent"), &err), -ENOENT);
	assert_int_equal(netns_open("/proc/self/ns/uts", &err), -EINVAL); /* a namespace, not a network one */

	/* A directory that does not exist: nothing is left. */
	assert_int_equal(netns_create(tmp_path("nodir/ns"), &err), -ENOENT);
	assert_int_equal(access(tmp_path("nodir"), F_OK), -1);

	/* Remove: the path goes, the namespace lives on while fd holds it. */
	assert_int_equal(netns_remove(p, &err), 0);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(netns_open(p, &err), -ENOENT);
	assert_int_equal(netns_remove(p, &err), 0);          /* again: nothing to do */
	r = nl_netns_loopback(fd, &err);
	if (r < 0)
		fail_msg("nl_netns_loopback after remove: %s", err.msg);
	close(fd);

	/* A plain file (a create that died before its mount) is removed too. */
	assert_int_equal(netns_remove(f, &err), 0);
	assert_int_equal(access(f, F_OK), -1);

	/* Created twice over the same path after a remove: fine. */
	assert_int_equal(netns_create(p, &err), 0);
	assert_int_equal(netns_remove(p, &err), 0);
	assert_int_equal(netns_ino_of_thread(), mine);
}

/* ---- veth pairs, configuration from outside, traffic ---- */

struct inside {
	uint8_t mac[6];
	unsigned mtu;
	uint32_t addr, gateway, net;
	unsigned prefix;
	uint16_t port;            /* the listener on the bridge's address */
};

/* In the instance's namespace: the configuration is there, and TCP to the
 * bridge's address works both ways. Exit codes name the failed check. */
static int check_inside(void *arg)
{
	const struct inside *in = arg;
	struct qlink l;
	if (q_link("eth0", &l) < 0)
		return 1;
	if (memcmp(l.mac, in->mac, 6) != 0)
		return 2;
	if (!(l.flags & IFF_UP))
		return 3;
	if (l.mtu != in->mtu)
		return 4;
	if (q_link("lo", &l) < 0 || !(l.flags & IFF_UP))
		return 5;
	struct gr_error err = { 0 };
	struct ipv4_net *v = NULL;
	size_t n = 0;
	if (nl_ipv4_in_use(&v, &n, &err) < 0)
		return 6;
	bool ok = in_use_has(v, n, in->net, in->prefix);
	for (size_t i = 0; i < n; i++)
		ok = ok && v[i].prefix > 0;
	free(v);
	if (!ok)
		return 7;
	struct qdefault d;
	if (q_default_route(&d) < 0 || d.found != 1 || d.gateway != in->gateway)
		return 8;
	int idx = nl_link_index("eth0", &err);
	if (idx < 0 || d.oif != idx)
		return 9;

	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return 10;
	struct timeval tv = { 20, 0 };        /* a broken path fails instead of hanging */
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(in->port),
				  .sin_addr.s_addr = htonl(in->gateway) };
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return 11;
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	if (getsockname(s, (struct sockaddr *)&me, &ml) < 0 || ntohl(me.sin_addr.s_addr) != in->addr)
		return 12;
	char c = 'p';
	if (write(s, &c, 1) != 1)
		return 13;
	if (read(s, &c, 1) != 1 || c != 'q')
		return 14;
	close(s);
	return 0;
}

static int check_gone(void *arg)
{
	struct qlink l;
	return q_link(arg, &l) == -ENODEV ? 0 : 1;
}

static int delete_inside(void *arg)
{
	struct gr_error err = { 0 };
	return nl_link_delete(arg, &err) == 0 ? 0 : 1;
}

static void test_veth(void **state)
{
	(void)state;
	need_private_netns();
	struct gr_error err = { 0 };
	struct qlink br, l;
	int r;

	assert_int_equal(nl_bridge_ensure("gr-br1", IP(10, 77, 0, 1), 24, &err), 0);
	assert_int_equal(q_link("gr-br1", &br), 0);
	int fd = make_netns("ns-veth");
	ino_t mine = netns_ino_of_thread();

	struct inside in = { .mac = { 0x0e, 0x11, 0x22, 0x33, 0x44, 0x55 }, .mtu = br.mtu,
			     .addr = IP(10, 77, 0, 2), .gateway = IP(10, 77, 0, 1), .net = IP(10, 77, 0, 0),
			     .prefix = 24 };
	r = nl_veth_create("gr-v1", "gr-br1", fd, "eth0", in.mac, 0, &err);
	if (r < 0)
		fail_msg("nl_veth_create: %s", err.msg);
	assert_int_equal(q_link("gr-v1", &l), 0);
	assert_string_equal(l.kind, "veth");
	assert_int_equal(l.master, br.index);                /* a port of the bridge */
	assert_true(l.flags & IFF_UP);
	assert_int_equal(l.mtu, br.mtu);                     /* mtu 0: the bridge's */
	assert_int_equal(q_link("eth0", &l), -ENODEV);       /* the peer is not here */

	/* The same host name again. */
	assert_int_equal(nl_veth_create("gr-v1", "gr-br1", fd, "eth1", in.mac, 0, &err), -EEXIST);
	print_message("refused: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "gr-v1"));
	assert_int_equal(in_netns(fd, check_gone, "eth1"), 0); /* no peer made */

	/* Configured from outside, twice (a restart does it again). */
	for (int i = 0; i < 2; i++) {
		r = nl_netns_configure(fd, "eth0", in.addr, 24, in.gateway, &err);
		if (r < 0)
			fail_msg("nl_netns_configure (%d): %s", i, err.msg);
	}
	assert_int_equal(netns_ino_of_thread(), mine);

	/* A listener on the bridge's address, here. */
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(in.gateway) };
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ls, 4), 0);
	socklen_t sl = sizeof(sa);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
	in.port = ntohs(sa.sin_port);
	struct timeval tv = { 20, 0 };                       /* a broken path fails instead of hanging */
	setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setns(fd, CLONE_NEWNET) < 0)
			_exit(201);
		_exit(check_inside(&in));
	}
	struct sockaddr_in peer;
	socklen_t pl = sizeof(peer);
	int cs = accept4(ls, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
	int accept_errno = errno;
	char c = 0;
	if (cs >= 0) {
		setsockopt(cs, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (read(cs, &c, 1) == 1 && c == 'p') {
			c = 'q';
			assert_int_equal(write(cs, &c, 1), 1);
		}
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("check inside the namespace failed with %d (see check_inside); accept: %s", WEXITSTATUS(status),
			 cs < 0 ? strerror(accept_errno) : "ok");
	assert_true(cs >= 0);
	assert_int_equal(ntohl(peer.sin_addr.s_addr), in.addr);
	close(cs);
	close(ls);

	/* Deleting the host end deletes the peer; a missing link is no error. */
	assert_int_equal(nl_link_delete("gr-v1", &err), 0);
	assert_int_equal(q_link("gr-v1", &l), -ENODEV);
	assert_int_equal(in_netns(fd, check_gone, "eth0"), 0);
	assert_int_equal(nl_link_delete("gr-v1", &err), 0);
	assert_int_equal(nl_link_delete("gr-nothing", &err), 0);
	assert_int_equal(nl_link_delete("bad/name", &err), -EINVAL);

	/* An explicit MTU; deleting the peer's end (from inside) deletes the host end. */
	assert_int_equal(nl_veth_create("gr-v1", "gr-br1", fd, "eth0", in.mac, 1400, &err), 0);
	assert_int_equal(q_link("gr-v1", &l), 0);
	assert_int_equal(l.mtu, 1400);
	assert_int_equal(in_netns(fd, check_gone, "eth0"), 1); /* there now */
	assert_int_equal(in_netns(fd, delete_inside, "eth0"), 0);
	assert_int_equal(q_link("gr-v1", &l), -ENODEV);
	drop_netns("ns-veth", fd);
	assert_int_equal(nl_link_delete("gr-br1", &err), 0);
}

static int check_peer_gone(void *arg)
{
	(void)arg;
	struct qlink l;
	return q_link("eth1", &l) == -ENODEV && q_link("eth2", &l) == -ENODEV ? 0 : 1;
}

static void test_veth_failures(void **state)
{
	(void)state;
	need_private_netns();
	struct gr_error err = { 0 };
	struct qlink l;
	assert_int_equal(nl_bridge_ensure("gr-br6", IP(10, 96, 0, 1), 24, &err), 0);
	int fd = make_netns("ns-fail");
	static const uint8_t mac[6] = { 0x0e, 9, 9, 9, 9, 9 };

	/* No such bridge: nothing is made. */
	assert_int_equal(nl_veth_create("gr-v4", "gr-nobr", fd, "eth1", mac, 0, &err), -ENODEV);
	print_message("refused: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "gr-nobr"));
	assert_int_equal(q_link("gr-v4", &l), -ENODEV);

	/* Attaching fails (lo takes no ports): the pair is deleted again. */
	int r = nl_veth_create("gr-v3", "lo", fd, "eth2", mac, 1500, &err);
	assert_true(r < 0);
	print_message("refused: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "cannot attach veth gr-v3 to bridge lo"));
	assert_int_equal(q_link("gr-v3", &l), -ENODEV);

	/* Bad names, bad descriptors. */
	assert_int_equal(nl_veth_create("gr/v", "gr-br6", fd, "eth1", mac, 0, &err), -EINVAL);
	assert_int_equal(nl_veth_create("gr-v5", "gr-br6", fd, "", mac, 0, &err), -EINVAL);
	assert_int_equal(nl_veth_create("gr-v5", "gr-br6", -1, "eth1", mac, 0, &err), -EBADF);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);      /* not a namespace */
	assert_true(null >= 0);
	r = nl_veth_create("gr-v5", "gr-br6", null, "eth1", mac, 0, &err);
	assert_true(r < 0);
	assert_int_equal(q_link("gr-v5", &l), -ENODEV);
	assert_int_equal(in_netns(fd, check_peer_gone, NULL), 0);

	/* nl_netns_configure: no such link; a gateway outside the subnet gets
	 * the kernel's own explanation (extended ack). */
	assert_int_equal(nl_netns_configure(fd, "eth9", IP(10, 96, 0, 2), 24, IP(10, 96, 0, 1), &err), -ENODEV);
	assert_non_null(strstr(err.msg, "eth9"));
	assert_int_equal(nl_veth_create("gr-v6", "gr-br6", fd, "eth1", mac, 0, &err), 0);
	r = nl_netns_configure(fd, "eth1", IP(10, 96, 0, 2), 24, IP(10, 9, 9, 9), &err);
	assert_true(r < 0);
	print_message("refused: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "10.9.9.9"));
	assert_non_null(strstr(err.msg, "eth1"));
	assert_non_null(strstr(err.msg, "invalid gateway")); /* the kernel's NLMSGERR_ATTR_MSG */
	assert_int_equal(nl_netns_configure(fd, "eth1", IP(10, 96, 0, 2), 40, 0, &err), -EINVAL);
	assert_int_equal(nl_netns_configure(-1, "eth1", IP(10, 96, 0, 2), 24, 0, &err), -EBADF);
	assert_int_equal(nl_netns_configure(null, "eth1", IP(10, 96, 0, 2), 24, 0, &err), -EINVAL);
	close(null);

	assert_int_equal(nl_link_delete("gr-v6", &err), 0);
	drop_netns("ns-fail", fd);
	assert_int_equal(nl_link_delete("gr-br6", &err), 0);
}

static void test_set_master(void **state)
{
	(void)state;
	need_private_netns();
	struct gr_error err = { 0 };
	struct qlink l, b2, b3;
	assert_int_equal(nl_bridge_ensure("gr-br2", IP(10, 66, 0, 1), 24, &err), 0);
	assert_int_equal(nl_bridge_ensure("gr-br3", IP(10, 65, 0, 1), 24, &err), 0);
	assert_int_equal(q_link("gr-br2", &b2), 0);
	assert_int_equal(q_link("gr-br3", &b3), 0);
	int fd = make_netns("ns-master");
	static const uint8_t mac[6] = { 0x0e, 7, 7, 7, 7, 7 };
	assert_int_equal(nl_veth_create("gr-v2", "gr-br2", fd, "eth0", mac, 0, &err), 0);
	assert_int_equal(q_link("gr-v2", &l), 0);
	assert_int_equal(l.master, b2.index);

	/* Drift: down and on another bridge; set_master repairs both. */
	assert_int_equal(q_link_down(l.index), 0);
	int r = nl_link_set_master("gr-v2", "gr-br3", &err);
	if (r < 0)
		fail_msg("nl_link_set_master: %s", err.msg);
	assert_int_equal(q_link("gr-v2", &l), 0);
	assert_int_equal(l.master, b3.index);
	assert_true(l.flags & IFF_UP);
	assert_int_equal(nl_link_set_master("gr-v2", "gr-br3", &err), 0); /* again */

	assert_int_equal(nl_link_set_master("gr-none", "gr-br3", &err), -ENODEV);
	assert_non_null(strstr(err.msg, "gr-none"));
	assert_int_equal(nl_link_set_master("gr-v2", "gr-nobr", &err), -ENODEV);
	assert_non_null(strstr(err.msg, "gr-nobr"));

	assert_int_equal(nl_link_delete("gr-v2", &err), 0);
	drop_netns("ns-master", fd);
	assert_int_equal(nl_link_delete("gr-br2", &err), 0);
	assert_int_equal(nl_link_delete("gr-br3", &err), 0);
}

static int check_lo(void *arg)
{
	int want_up = *(int *)arg;
	struct qlink l;
	if (q_link("lo", &l) < 0)
		return 1;
	return !!(l.flags & IFF_UP) == want_up ? 0 : 2;
}

static void test_loopback(void **state)
{
	(void)state;
	need_private_netns();
	struct gr_error err = { 0 };
	ino_t mine = netns_ino_of_thread();
	int fd = make_netns("ns-lo");
	int down = 0, up = 1;
	assert_int_equal(in_netns(fd, check_lo, &down), 0);   /* a new namespace: lo is down */
	int r = nl_netns_loopback(fd, &err);
	if (r < 0)
		fail_msg("nl_netns_loopback: %s", err.msg);
	assert_int_equal(in_netns(fd, check_lo, &up), 0);
	assert_int_equal(nl_netns_loopback(fd, &err), 0);     /* again */
	assert_int_equal(netns_ino_of_thread(), mine);

	assert_int_equal(nl_netns_loopback(-1, &err), -EBADF);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(null >= 0);
	r = nl_netns_loopback(null, &err);
	close(null);
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err.msg, "network namespace"));
	drop_netns("ns-lo", fd);
}

/* ---- sysctls ---- */

static void test_sysctl(void **state)
{
	(void)state;
	need_private_netns();
	struct gr_error err = { 0 };
	char buf[16] = { 0 };
	int r = net_sysctl_write("net/ipv4/ip_forward", "1", &err);
	if (r < 0)
		fail_msg("net_sysctl_write: %s", err.msg);
	int f = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY);
	assert_true(f >= 0);
	assert_true(read(f, buf, sizeof(buf) - 1) > 0);
	close(f);
	assert_string_equal(buf, "1\n");
	assert_int_equal(net_sysctl_write("net/ipv4/ip_forward", "0", &err), 0);
	assert_int_equal(net_sysctl_write("net/ipv4/conf/lo/route_localnet", "1", &err), 0);

	assert_int_equal(net_sysctl_write("../x", "1", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "../x"));
	assert_int_equal(net_sysctl_write("net/../../etc/passwd", "1", &err), -EINVAL);
	assert_int_equal(net_sysctl_write("/proc/sys/net/ipv4/ip_forward", "1", &err), -EINVAL);
	assert_int_equal(net_sysctl_write("", "1", &err), -EINVAL);
	assert_int_equal(net_sysctl_write(NULL, "1", &err), -EINVAL);
	assert_int_equal(net_sysctl_write("net/ipv4/ip_forward", NULL, &err), -EINVAL);
	assert_int_equal(net_sysctl_write("net/ipv4/no_such_key", "1", &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no_such_key"));
	assert_int_equal(net_sysctl_write("net/ipv4/ip_forward", "banana", &err), -EINVAL);
}

/* ---- private namespaces for the whole run ---- */

static void enter_private_namespaces(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		if (errno == EPERM) {
			skip_reason = "unshare(CLONE_NEWNET) is not permitted (run as root, with CAP_SYS_ADMIN)";
			return;
		}
		snprintf(setup_failure, sizeof(setup_failure), "unshare(CLONE_NEWNET): %s", strerror(errno));
		return;
	}
	/* Bind mounts of namespaces stay in a mount namespace of our own. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(setup_failure, sizeof(setup_failure), "private mount namespace: %s", strerror(errno));
		return;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-netlink-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		snprintf(setup_failure, sizeof(setup_failure), "mkdtemp: %s", strerror(errno));
		tmpdir[0] = '\0';
		return;
	}
	if (mount("tmpfs", tmpdir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=1m") < 0)
		snprintf(setup_failure, sizeof(setup_failure), "tmpfs on %s: %s", tmpdir, strerror(errno));
}

int main(void)
{
	enter_private_namespaces();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bridge),
		cmocka_unit_test(test_ipv4_in_use),
		cmocka_unit_test(test_netns),
		cmocka_unit_test(test_veth),
		cmocka_unit_test(test_veth_failures),
		cmocka_unit_test(test_set_master),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_sysctl),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (tmpdir[0]) {
		(void)umount2(tmpdir, MNT_DETACH);
		(void)rmdir(tmpdir);
	}
	return rc;
}
