/* Unit tests for src/daemon/network/nft.c: the table's text (what it
 * contains, what it refuses), the text checked by nft's own parser and the
 * kernel (nft -c), and apply/remove for real — all inside a private network
 * namespace the test process enters first, so the host's rules are never
 * touched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nftables/libnftables.h>

#include "common/cleanup.h"
#include "daemon/network/nft.h"

extern char **environ;

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static bool in_private_netns;

static const struct nft_network NETS[] = {
	{ .bridge = "gureum0", .subnet = { IP(10, 180, 0, 0), 24 }, .nat = true, .isolated = false },
	{ .bridge = "gureum1", .subnet = { IP(10, 181, 0, 0), 24 }, .nat = false, .isolated = true },
	{ .bridge = "gr2", .subnet = { IP(192, 168, 7, 4), 30 }, .nat = true, .isolated = true },
};
static const struct nft_forward FWS[] = {
	{ .protocol = "tcp", .host_port = 8080, .addr = IP(10, 180, 0, 2), .port = 80 },
	{ .protocol = "udp", .host_port = 5353, .addr = IP(10, 181, 0, 3), .port = 53 },
	{ .protocol = "udp", .host_port = 8080, .addr = IP(192, 168, 7, 6), .port = 65535 },
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* ---- spawning nft (argument vectors, output captured) ---- */

static const char *nft_path(void)
{
	static const char *const candidates[] = { "/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", NULL };
	for (const char *const *c = candidates; *c; c++)
		if (access(*c, X_OK) == 0)
			return *c;
	return NULL;
}

/* Runs nft with args (NULL-terminated, without argv[0]); returns its exit
 * status (-1 when it did not exit normally); *out gets stdout+stderr. */
static int run_nft(const char *const *args, char **out)
{
	const char *path = nft_path();
	assert_non_null(path);
	const char *argv[16] = { "nft" };
	size_t n = 1;
	for (; args[n - 1]; n++) {
		assert_true(n < N(argv) - 1);
		argv[n] = args[n - 1];
	}
	argv[n] = NULL;

	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	pid_t pid;
	int r = posix_spawn(&pid, path, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	assert_int_equal(r, 0);

	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	assert_non_null(buf);
	for (;;) {
		if (cap - len < 1024) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		ssize_t k = read(pfd[0], buf + len, cap - len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	buf[len] = '\0';
	close(pfd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	if (out)
		*out = buf;
	else
		free(buf);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* nft -c -f FILE: nft parses the text and the kernel validates the
 * transaction, which is then aborted (nothing changes). */
static int nft_check(const char *text, char **out)
{
	char path[] = "/tmp/test_nft.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	int r = run_nft((const char *const[]){ "-c", "-f", path, NULL }, out);
	unlink(path);
	return r;
}

static char *list_table(const char *family_table_name, int *status)
{
	char *out = NULL;
	char fam[32], name[64];
	assert_int_equal(sscanf(family_table_name, "%31s %63s", fam, name), 2);
	*status = run_nft((const char *const[]){ "list", "table", fam, name, NULL }, &out);
	return out;
}

/* ---- (a) the text ---- */

static void test_text_empty(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	gr_autofree char *t = nft_ruleset(NULL, 0, NULL, 0, &err);
	assert_non_null(t);
	/* One transaction that replaces the table whole. */
	assert_true(strncmp(t, "add table inet gureum\ndelete table inet gureum\ntable inet gureum {\n", 67) == 0);
	assert_non_null(strstr(t, "type filter hook forward priority filter; policy accept;"));
	assert_non_null(strstr(t, "type filter hook input priority filter; policy accept;"));
	assert_non_null(strstr(t, "type nat hook prerouting priority dstnat; policy accept;"));
	assert_non_null(strstr(t, "type nat hook output priority -100; policy accept;"));
	assert_non_null(strstr(t, "type nat hook postrouting priority srcnat; policy accept;"));
	assert_null(strstr(t, "elements"));
	assert_null(strstr(t, "masquerade"));
	assert_null(strstr(t, "dnat"));
	assert_null(strstr(t, "drop"));
}

static void test_text_rules(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	gr_autofree char *t = nft_ruleset(NETS, N(NETS), FWS, N(FWS), &err);
	assert_non_null(t);

	assert_non_null(strstr(t, "elements = { \"gureum0\", \"gureum1\", \"gr2\" }"));
	/* Isolation: isolated bridges only, both directions, not themselves. */
	assert_non_null(strstr(t, "iifname \"gureum1\" oifname != \"gureum1\" oifname @bridges drop\n"));
	assert_non_null(strstr(t, "oifname \"gureum1\" iifname != \"gureum1\" iifname @bridges drop\n"));
	assert_non_null(strstr(t, "iifname \"gr2\" oifname != \"gr2\" oifname @bridges drop\n"));
	assert_non_null(strstr(t, "oifname \"gr2\" iifname != \"gr2\" iifname @bridges drop\n"));
	assert_null(strstr(t, "iifname \"gureum0\" oifname != "));
	assert_int_equal(count(t, "@bridges drop\n"), 4 + 2); /* isolation, both ways, for gureum1 and gr2; the two NAT networks */
	/* NAT networks are private: from outside the bridges, only replies and forwards. */
	assert_non_null(strstr(t, "oifname \"gureum0\" iifname != @bridges ct status dnat accept\n"));
	assert_non_null(strstr(t, "oifname \"gureum0\" iifname != @bridges drop\n"));
	assert_null(strstr(t, "oifname \"gureum1\" iifname != @bridges drop\n"));
	/* Raw: nothing from instances to the host's loopback, no router advertisements. */
	assert_non_null(strstr(t, "iifname @bridges ip daddr 127.0.0.0/8 drop\n"));
	assert_non_null(strstr(t, "iifname @bridges icmpv6 type nd-router-advert drop\n"));
	/* Instance to instance on a bridge is not tracked; the gateway's traffic is. */
	assert_non_null(strstr(t, "iifname \"gureum0\" ip saddr 10.180.0.0/24 ip daddr 10.180.0.0/24 ip daddr != 10.180.0.1 notrack\n"));
	/* Forwards are never taken on a gateway. */
	assert_non_null(strstr(t, "set gateways {\n\t\ttype ipv4_addr\n\t\telements = { 10.180.0.1, 10.181.0.1, 192.168.7.5 }\n"));

	/* NAT networks only. */
	assert_non_null(strstr(t, "ip saddr 10.180.0.0/24 ip daddr != 10.180.0.0/24 masquerade\n"));
	assert_non_null(strstr(t, "ip saddr 192.168.7.4/30 ip daddr != 192.168.7.4/30 masquerade\n"));
	assert_null(strstr(t, "ip saddr 10.181.0.0/24 ip daddr != "));
	for (size_t i = 0; i < N(NETS); i++) {
		char line[128];
		snprintf(line, sizeof(line), "oifname \"%s\" ip saddr 127.0.0.0/8 masquerade\n", NETS[i].bridge);
		assert_non_null(strstr(t, line));
		snprintf(line, sizeof(line), "iifname \"%s\" udp dport 67 accept\n", NETS[i].bridge);
		assert_non_null(strstr(t, line));
		snprintf(line, sizeof(line), "iifname \"%s\" meta l4proto { tcp, udp } th dport 53 accept\n", NETS[i].bridge);
		assert_non_null(strstr(t, line));
	}
	assert_non_null(strstr(t, "oifname \"gureum1\" ip saddr 10.181.0.0/24 ip daddr 10.181.0.0/24 ct status dnat masquerade\n"));

	/* Each forward in prerouting and in output. */
	assert_int_equal(count(t, "meta nfproto ipv4 fib daddr type local ip daddr != @gateways tcp dport 8080 dnat ip to 10.180.0.2:80\n"), 2);
	assert_int_equal(count(t, "meta nfproto ipv4 fib daddr type local ip daddr != @gateways udp dport 5353 dnat ip to 10.181.0.3:53\n"), 2);
	assert_int_equal(count(t, "meta nfproto ipv4 fib daddr type local ip daddr != @gateways udp dport 8080 dnat ip to 192.168.7.6:65535\n"), 2);
	const char *pre = strstr(t, "chain prerouting"), *outc = strstr(t, "chain output"),
		   *post = strstr(t, "chain postrouting");
	assert_non_null(pre);
	assert_non_null(outc);
	assert_non_null(post);
	const char *d1 = strstr(pre, "dnat ip to 10.180.0.2:80"), *d2 = strstr(outc, "dnat ip to 10.180.0.2:80");
	assert_true(d1 && d1 < outc);
	assert_true(d2 && d2 < post);
}

static void test_text_refuses(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	const char *bad_bridges[] = { "", "Gureum0", "gureum-0", "gureum_0", "a b", "x\"; flush ruleset",
				      "abcdefghijklmnop", "br\n0", "br0\"", "gur.0", "é", "br0 ", NULL };
	for (const char **b = bad_bridges; *b; b++) {
		struct nft_network n = NETS[0];
		n.bridge = *b;
		gr_error_clear(&err);
		assert_null(nft_ruleset(&n, 1, NULL, 0, &err));
		assert_int_equal(err.code, EINVAL);
		assert_null(strchr(err.msg, '\n'));
	}
	struct nft_network nb = NETS[0];
	nb.bridge = NULL;
	assert_null(nft_ruleset(&nb, 1, NULL, 0, &err));
	nb.bridge = "abcdefghijklmno"; /* 15: the longest */
	gr_autofree char *ok = nft_ruleset(&nb, 1, NULL, 0, &err);
	assert_non_null(ok);
	nb.bridge = "x\"; flush ruleset";
	assert_null(nft_ruleset(&nb, 1, NULL, 0, &err));
	assert_non_null(strstr(err.msg, "bridge name"));
	assert_non_null(strstr(err.msg, "flush ruleset")); /* the value is named */

	const char *bad_protos[] = { "", "TCP", "sctp", "tcp ", "tcp; flush ruleset", "tcp\n", "icmp", NULL };
	for (const char **p = bad_protos; *p; p++) {
		struct nft_forward f = FWS[0];
		f.protocol = *p;
		gr_error_clear(&err);
		assert_null(nft_ruleset(NETS, N(NETS), &f, 1, &err));
		assert_int_equal(err.code, EINVAL);
		assert_non_null(strstr(err.msg, "protocol"));
	}
	struct nft_forward f = FWS[0];
	f.protocol = NULL;
	assert_null(nft_ruleset(NETS, N(NETS), &f, 1, &err));
	f = FWS[0];
	f.host_port = 0;
	assert_null(nft_ruleset(NETS, N(NETS), &f, 1, &err));
	f = FWS[0];
	f.port = 0;
	assert_null(nft_ruleset(NETS, N(NETS), &f, 1, &err));
	f = FWS[0];
	f.addr = 0;
	assert_null(nft_ruleset(NETS, N(NETS), &f, 1, &err));

	/* The same host port and protocol twice: ambiguous. */
	struct nft_forward twice[2] = { FWS[0], FWS[0] };
	twice[1].addr = IP(10, 180, 0, 9);
	assert_null(nft_ruleset(NETS, N(NETS), twice, 2, &err));
	assert_non_null(strstr(err.msg, "twice"));
	/* The same bridge twice. */
	struct nft_network dup[2] = { NETS[0], NETS[1] };
	dup[1].bridge = "gureum0";
	assert_null(nft_ruleset(dup, 2, NULL, 0, &err));
	assert_non_null(strstr(err.msg, "twice"));
	/* Subnets must be network addresses with a sane prefix. */
	struct nft_network s = NETS[0];
	s.subnet.addr = IP(10, 180, 0, 1);
	assert_null(nft_ruleset(&s, 1, NULL, 0, &err));
	s.subnet = (struct ipv4_net){ IP(10, 0, 0, 0), 33 };
	assert_null(nft_ruleset(&s, 1, NULL, 0, &err));
	s.subnet = (struct ipv4_net){ 0, 0 };
	assert_null(nft_ruleset(&s, 1, NULL, 0, &err));
	/* Counts without arrays. */
	assert_null(nft_ruleset(NULL, 1, NULL, 0, &err));
	assert_null(nft_ruleset(NULL, 0, NULL, 2, &err));

	/* nft_apply runs only text that replaces the table whole. */
	assert_int_equal(nft_apply("flush ruleset\n", &err), -EINVAL);
	assert_int_equal(nft_apply("add table inet gureum\n", &err), -EINVAL);
	assert_int_equal(nft_apply(NULL, &err), -EINVAL);
}

/* ---- (b) nft's parser and the kernel's validation (check mode) ---- */

static void test_nft_check(void **state)
{
	(void)state;
	if (!in_private_netns) {
		skip();
		return;
	}
	struct gr_error err = { 0 };
	gr_autofree char *empty = nft_ruleset(NULL, 0, NULL, 0, &err);
	gr_autofree char *full = nft_ruleset(NETS, N(NETS), FWS, N(FWS), &err);
	gr_autofree char *nets_only = nft_ruleset(NETS, N(NETS), NULL, 0, &err);
	gr_autofree char *fw_only = nft_ruleset(NULL, 0, FWS, N(FWS), &err);
	const char *texts[] = { empty, full, nets_only, fw_only };
	for (size_t i = 0; i < N(texts); i++) {
		assert_non_null(texts[i]);
		gr_autofree char *out = NULL;
		int r = nft_check(texts[i], &out);
		if (r != 0)
			fprintf(stderr, "nft -c refused:\n%s\n--- text ---\n%s\n", out, texts[i]);
		assert_int_equal(r, 0);
	}
	/* The check is real: a broken text fails it. */
	gr_autofree char *out = NULL;
	assert_int_not_equal(nft_check("table inet gureum {\n\tchain x {\n\t\tbogus rule\n\t}\n}\n", &out), 0);
	assert_non_null(strstr(out, "rror"));
	/* Nothing was created by the checks. */
	int st;
	gr_autofree char *l = list_table("inet gureum", &st);
	assert_int_not_equal(st, 0);
}

/* ---- (c) apply and remove, for real, in the private namespace ---- */

static void test_apply_remove(void **state)
{
	(void)state;
	if (!in_private_netns) {
		skip();
		return;
	}
	struct gr_error err = { 0 };
	int st;

	/* Someone else's table, which must survive everything below. */
	{
		char *o = NULL;
		assert_int_equal(run_nft((const char *const[]){ "add", "table", "inet", "other", NULL }, &o), 0);
		free(o);
		assert_int_equal(run_nft((const char *const[]){ "add", "chain", "inet", "other", "c",
								"{ type filter hook forward priority 0; policy accept; }", NULL },
					 &o),
				 0);
		free(o);
		assert_int_equal(run_nft((const char *const[]){ "add", "rule", "inet", "other", "c", "iifname", "gureum0",
								"counter", "accept", NULL },
					 &o),
				 0);
		free(o);
	}

	/* Removing when there is no table: fine. */
	assert_int_equal(nft_remove(&err), 0);

	gr_autofree char *full = nft_ruleset(NETS, N(NETS), FWS, N(FWS), &err);
	assert_non_null(full);
	if (nft_apply(full, &err) != 0)
		fail_msg("nft_apply: %s", err.msg);
	gr_autofree char *l1 = list_table("inet gureum", &st);
	assert_int_equal(st, 0);
	assert_non_null(strstr(l1, "iifname \"gureum1\" oifname != \"gureum1\" oifname @bridges drop"));
	assert_non_null(strstr(l1, "ip saddr 10.180.0.0/24 ip daddr != 10.180.0.0/24 masquerade"));
	assert_non_null(strstr(l1, "oifname \"gr2\" ip saddr 127.0.0.0/8 masquerade"));
	assert_non_null(strstr(l1, "iifname \"gureum0\" udp dport 67 accept"));
	assert_non_null(strstr(l1, "th dport 53 accept"));
	assert_int_equal(count(l1, "tcp dport 8080 dnat ip to 10.180.0.2:80"), 2);
	assert_int_equal(count(l1, "udp dport 5353 dnat ip to 10.181.0.3:53"), 2);
	assert_non_null(strstr(l1, "\"gureum1\""));

	/* Applying again with another set replaces it whole. */
	const struct nft_network nets2[] = {
		{ .bridge = "gureum5", .subnet = { IP(10, 185, 0, 0), 16 }, .nat = true, .isolated = false },
	};
	const struct nft_forward fws2[] = { { .protocol = "tcp", .host_port = 2222, .addr = IP(10, 185, 3, 4), .port = 22 } };
	gr_autofree char *second = nft_ruleset(nets2, N(nets2), fws2, N(fws2), &err);
	assert_non_null(second);
	if (nft_apply(second, &err) != 0)
		fail_msg("nft_apply: %s", err.msg);
	gr_autofree char *l2 = list_table("inet gureum", &st);
	assert_int_equal(st, 0);
	assert_non_null(strstr(l2, "ip saddr 10.185.0.0/16 ip daddr != 10.185.0.0/16 masquerade"));
	assert_int_equal(count(l2, "tcp dport 2222 dnat ip to 10.185.3.4:22"), 2);
	assert_null(strstr(l2, "gureum0"));
	assert_null(strstr(l2, "gureum1"));
	assert_null(strstr(l2, "10.180."));
	assert_null(strstr(l2, "8080"));
	assert_null(strstr(l2, "oifname @bridges drop"));

	/* A transaction that fails changes nothing: the table stays as it was. */
	const char *broken = "add table inet gureum\ndelete table inet gureum\ntable inet gureum {\n"
			     "\tchain forward {\n\t\ttype filter hook forward priority filter;\n\t\tbogus\n\t}\n}\n";
	gr_error_clear(&err);
	assert_true(nft_apply(broken, &err) < 0);
	assert_non_null(strstr(err.msg, "nftables"));
	assert_non_null(strstr(err.msg, "rror"));
	assert_non_null(strstr(err.msg, "line 6:")); /* where, and what */
	assert_non_null(strstr(err.msg, "bogus"));
	assert_null(strchr(err.msg, '\n'));
	assert_null(strchr(err.msg, '^'));
	gr_autofree char *l3 = list_table("inet gureum", &st);
	assert_int_equal(st, 0);
	assert_string_equal(l3, l2);

	/* The empty table. */
	gr_autofree char *empty = nft_ruleset(NULL, 0, NULL, 0, &err);
	assert_int_equal(nft_apply(empty, &err), 0);
	gr_autofree char *l4 = list_table("inet gureum", &st);
	assert_int_equal(st, 0);
	assert_non_null(strstr(l4, "chain postrouting"));
	assert_null(strstr(l4, "masquerade"));

	/* The other table was never touched. */
	gr_autofree char *o1 = list_table("inet other", &st);
	assert_int_equal(st, 0);
	assert_non_null(strstr(o1, "iifname \"gureum0\" counter"));

	/* Remove, twice. */
	assert_int_equal(nft_remove(&err), 0);
	gr_autofree char *l5 = list_table("inet gureum", &st);
	assert_int_not_equal(st, 0);
	assert_int_equal(nft_remove(&err), 0);
	gr_autofree char *o2 = list_table("inet other", &st);
	assert_int_equal(st, 0);
	assert_string_equal(o2, o1);

	/* Apply after remove works. */
	assert_int_equal(nft_apply(full, &err), 0);
	gr_autofree char *l6 = list_table("inet gureum", &st);
	assert_int_equal(st, 0);
	assert_string_equal(l6, l1);
	assert_int_equal(nft_remove(&err), 0);
}

/* A forward works end to end for the host itself (the output chain): with
 * lo up, a connection to 127.0.0.1:HOST_PORT reaches a listener on
 * 127.0.0.1:PORT. Loopback connects complete synchronously: no timing. */
static void test_forward_dnat_loopback(void **state)
{
	(void)state;
	if (!in_private_netns) {
		skip();
		return;
	}
	struct gr_error err = { 0 };
	/* lo is down in a new namespace. */
	const char *ip = NULL;
	for (const char *const *c = (const char *const[]){ "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", NULL }; *c; c++)
		if (access(*c, X_OK) == 0) {
			ip = *c;
			break;
		}
	if (!ip) {
		fprintf(stderr, "test_nft: no ip program (package iproute2): skipping the loopback forward test\n");
		skip();
		return;
	}
	pid_t pid;
	const char *argv[] = { "ip", "link", "set", "lo", "up", NULL };
	assert_int_equal(posix_spawn(&pid, ip, NULL, NULL, (char *const *)argv, environ), 0);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	gr_autoclose int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(IP(127, 0, 0, 1)) };
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t sl = sizeof(sa);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
	uint16_t port = ntohs(sa.sin_port);
	assert_int_equal(listen(ls, 4), 0);
	uint16_t host_port = port == 8080 ? 8081 : 8080;

	/* Without the table: nothing listens on host_port. */
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(IP(127, 0, 0, 1)),
				  .sin_port = htons(host_port) };
	{
		gr_autoclose int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(c, (struct sockaddr *)&to, sizeof(to)), -1);
		assert_int_equal(errno, ECONNREFUSED);
	}
	const struct nft_forward f = { .protocol = "tcp", .host_port = host_port, .addr = IP(127, 0, 0, 1), .port = port };
	gr_autofree char *t = nft_ruleset(NULL, 0, &f, 1, &err);
	assert_non_null(t);
	if (nft_apply(t, &err) != 0)
		fail_msg("nft_apply: %s", err.msg);
	{
		gr_autoclose int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(c, (struct sockaddr *)&to, sizeof(to)), 0);
		gr_autoclose int a = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		assert_true(a >= 0);
		assert_int_equal(write(c, "hi", 2), 2);
		char b[3] = { 0 };
		assert_int_equal(read(a, b, 2), 2);
		assert_string_equal(b, "hi");
	}
	/* Removed: refused again. */
	assert_int_equal(nft_remove(&err), 0);
	{
		gr_autoclose int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(c, (struct sockaddr *)&to, sizeof(to)), -1);
		assert_int_equal(errno, ECONNREFUSED);
	}
}

int main(void)
{
	/* Before anything else, while single-threaded: a network namespace of
	 * our own, so nothing here can touch the host's nftables rules. */
	if (unshare(CLONE_NEWNET) == 0) {
		in_private_netns = true;
	} else if (errno == EPERM) {
		fprintf(stderr, "test_nft: unshare(CLONE_NEWNET): %s: skipping the nft -c and apply/remove tests "
				"(they need CAP_SYS_ADMIN to run in a private network namespace)\n",
			strerror(errno));
	} else {
		fprintf(stderr, "test_nft: unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 1;
	}
	if (in_private_netns && !nft_path()) {
		fprintf(stderr, "test_nft: the nft program is not installed (package nftables)\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_empty),
		cmocka_unit_test(test_text_rules),
		cmocka_unit_test(test_text_refuses),
		cmocka_unit_test(test_nft_check),
		cmocka_unit_test(test_apply_remove),
		cmocka_unit_test(test_forward_dnat_loopback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
