/* gureum's nftables table (nft.h): the text, and running it with libnftables. */
#include "daemon/network/nft.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <nftables/libnftables.h>

#include "common/cleanup.h"
#include "daemon/validate.h"

#define Q(s) validate_quote((s), (char[VALIDATE_QUOTE_MAX]){ 0 }, VALIDATE_QUOTE_MAX)

/* The text's head: one transaction that replaces the table whole ("add" makes
 * the "delete" succeed when there is no table yet). */
#define NFT_REPLACE_HEAD "add table inet " NFT_TABLE "\ndelete table inet " NFT_TABLE "\n"

static int check_bridge(const char *name, size_t i, struct gr_error *err)
{
	if (!name || !*name)
		return gr_error_set(err, EINVAL, "nftables: network %zu: empty bridge name", i);
	size_t n = 0;
	for (const char *p = name; *p; p++, n++) {
		if (n == 15)
			return gr_error_set(err, EINVAL, "nftables: bridge name %s: longer than 15 characters", Q(name));
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return gr_error_set(err, EINVAL,
					    "nftables: bridge name %s: only lowercase letters and digits are allowed",
					    Q(name));
	}
	return 0;
}

static int check_inputs(const struct nft_network *nets, size_t n_nets, const struct nft_forward *fw, size_t n_fw,
			struct gr_error *err)
{
	if ((n_nets && !nets) || (n_fw && !fw))
		return gr_error_set(err, EINVAL, "nftables: no array given for %zu networks / %zu forwards", n_nets, n_fw);
	for (size_t i = 0; i < n_nets; i++) {
		int r = check_bridge(nets[i].bridge, i, err);
		if (r < 0)
			return r;
		const struct ipv4_net *s = &nets[i].subnet;
		if (s->prefix < 1 || s->prefix > 32 || ipv4_net_of(s->addr, s->prefix).addr != s->addr) {
			char a[IPV4_STR_MAX];
			ipv4_format(s->addr, a);
			return gr_error_set(err, EINVAL, "nftables: bridge %s: subnet %s/%u is not a network address", nets[i].bridge,
					    a, s->prefix);
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(nets[j].bridge, nets[i].bridge))
				return gr_error_set(err, EINVAL, "nftables: bridge %s is listed twice", Q(nets[i].bridge));
	}
	for (size_t i = 0; i < n_fw; i++) {
		const struct nft_forward *f = &fw[i];
		if (!f->protocol || (strcmp(f->protocol, "tcp") && strcmp(f->protocol, "udp")))
			return gr_error_set(err, EINVAL, "nftables: forward %zu: protocol %s: must be \"tcp\" or \"udp\"", i,
					    Q(f->protocol));
		if (f->host_port == 0 || f->port == 0)
			return gr_error_set(err, EINVAL, "nftables: forward %s %u -> %u: port 0 is not a port", f->protocol,
					    f->host_port, f->port);
		if (f->addr == 0)
			return gr_error_set(err, EINVAL, "nftables: forward %s %u: no target address", f->protocol, f->host_port);
		for (size_t j = 0; j < i; j++)
			if (fw[j].host_port == f->host_port && !strcmp(fw[j].protocol, f->protocol))
				return gr_error_set(err, EINVAL, "nftables: host port %s %u is forwarded twice", f->protocol,
						    f->host_port);
	}
	return 0;
}

static void write_dnat(FILE *o, const struct nft_forward *fw, size_t n_fw)
{
	for (size_t i = 0; i < n_fw; i++) {
		char a[IPV4_STR_MAX];
		ipv4_format(fw[i].addr, a);
		fprintf(o, "\t\tmeta nfproto ipv4 fib daddr type local ip daddr != @gateways %s dport %u dnat ip to %s:%u\n",
			fw[i].protocol, fw[i].host_port, a, fw[i].port);
	}
}

char *nft_ruleset(const struct nft_network *nets, size_t n_nets, const struct nft_forward *fw, size_t n_fw,
		  struct gr_error *err)
{
	if (check_inputs(nets, n_nets, fw, n_fw, err) < 0)
		return NULL;

	gr_autofree char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	if (!o) {
		gr_error_sys(err, errno, "nftables: building the ruleset");
		return NULL;
	}

	fputs(NFT_REPLACE_HEAD, o);
	fputs("table inet " NFT_TABLE " {\n", o);

	/* Every gureum bridge, for the isolation rules. */
	fputs("\tset bridges {\n\t\ttype ifname\n", o);
	if (n_nets) {
		fputs("\t\telements = {", o);
		for (size_t i = 0; i < n_nets; i++)
			fprintf(o, "%s \"%s\"", i ? "," : "", nets[i].bridge);
		fputs(" }\n", o);
	}
	fputs("\t}\n\n", o);
	/* The gateways (the bridges' own addresses): a forward is never taken
	 * on them, so an instance's DNS and DHCP to its gateway cannot be
	 * forwarded to another instance. */
	fputs("\tset gateways {\n\t\ttype ipv4_addr\n", o);
	if (n_nets) {
		fputs("\t\telements = {", o);
		for (size_t i = 0; i < n_nets; i++) {
			char g[IPV4_STR_MAX];
			ipv4_format(ipv4_net_gateway(&nets[i].subnet), g);
			fprintf(o, "%s %s", i ? "," : "", g);
		}
		fputs(" }\n", o);
	}
	fputs("\t}\n\n", o);

	/* Before anything else sees them (raw, ahead of conntrack): nothing
	 * from an instance to the host's loopback addresses (the bridges have
	 * route_localnet for the forwards reached from 127.0.0.1, which must
	 * not open the host's loopback-only services to instances), and no
	 * IPv6 router advertisement from an instance. */
	fputs("\tchain raw_prerouting {\n\t\ttype filter hook prerouting priority raw; policy accept;\n", o);
	if (n_nets) {
		fputs("\t\tiifname @bridges ip daddr 127.0.0.0/8 drop\n", o);
		fputs("\t\tiifname @bridges icmpv6 type nd-router-advert drop\n", o);
	}
	/* Instance to instance on one bridge (bridged, but br_netfilter hands
	 * it to these hooks): no connection tracking, which nothing here needs
	 * (the gateway's traffic, NAT's and forwards' stay tracked). */
	for (size_t i = 0; i < n_nets; i++) {
		char s[IPV4_NET_STR_MAX], g[IPV4_STR_MAX];
		ipv4_net_format(&nets[i].subnet, s);
		ipv4_format(ipv4_net_gateway(&nets[i].subnet), g);
		fprintf(o, "\t\tiifname \"%s\" ip saddr %s ip daddr %s ip daddr != %s notrack\n", nets[i].bridge, s, s, g);
	}
	fputs("\t}\n\n", o);

	/* forward: an isolated bridge exchanges nothing with another gureum
	 * bridge (traffic routed back to the same bridge, hairpin, stays). */
	fputs("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n", o);
	for (size_t i = 0; i < n_nets; i++) {
		if (!nets[i].isolated)
			continue;
		const char *b = nets[i].bridge;
		fprintf(o, "\t\tiifname \"%s\" oifname != \"%s\" oifname @bridges drop\n", b, b);
		fprintf(o, "\t\toifname \"%s\" iifname != \"%s\" iifname @bridges drop\n", b, b);
	}
	/* A NAT network is private: from outside the gureum bridges, only
	 * replies and forwards (DNAT) come in. */
	for (size_t i = 0; i < n_nets; i++) {
		if (!nets[i].nat)
			continue;
		const char *b = nets[i].bridge;
		fprintf(o, "\t\toifname \"%s\" iifname != @bridges ct state established,related accept\n", b);
		fprintf(o, "\t\toifname \"%s\" iifname != @bridges ct status dnat accept\n", b);
		fprintf(o, "\t\toifname \"%s\" iifname != @bridges drop\n", b);
	}
	if (n_nets) {
		fputs("\t\tiifname @bridges accept\n", o);
		fputs("\t\toifname @bridges accept\n", o);
	}
	fputs("\t}\n\n", o);

	/* input: DHCP and DNS (dnsmasq) from each bridge. */
	fputs("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n", o);
	for (size_t i = 0; i < n_nets; i++) {
		fprintf(o, "\t\tiifname \"%s\" udp dport 67 accept\n", nets[i].bridge);
		fprintf(o, "\t\tiifname \"%s\" meta l4proto { tcp, udp } th dport 53 accept\n", nets[i].bridge);
	}
	fputs("\t}\n\n", o);

	/* Forwards: from other hosts and instances (prerouting), and from the
	 * host itself, loopback included (output). */
	fputs("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n", o);
	write_dnat(o, fw, n_fw);
	fputs("\t}\n\n", o);
	fputs("\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n", o);
	write_dnat(o, fw, n_fw);
	fputs("\t}\n\n", o);

	/* postrouting: masquerade out of NAT networks; masquerade a forward's
	 * traffic that comes back into its own subnet (hairpin: an instance
	 * reaching a forward to a neighbour, or to itself, must see the
	 * replies come from the host); masquerade loopback sources leaving by a
	 * bridge (the host reaching a forward via 127.0.0.1). */
	fputs("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n", o);
	for (size_t i = 0; i < n_nets; i++) {
		char s[IPV4_NET_STR_MAX];
		ipv4_net_format(&nets[i].subnet, s);
		const char *b = nets[i].bridge;
		if (nets[i].nat)
			fprintf(o, "\t\tip saddr %s ip daddr != %s masquerade\n", s, s);
		fprintf(o, "\t\toifname \"%s\" ip saddr %s ip daddr %s ct status dnat masquerade\n", b, s, s);
		fprintf(o, "\t\toifname \"%s\" ip saddr 127.0.0.0/8 masquerade\n", b);
	}
	fputs("\t}\n}\n", o);

	if (fclose(o) != 0) {
		gr_error_sys(err, errno ? errno : ENOMEM, "nftables: building the ruleset");
		return NULL;
	}
	return gr_steal_ptr(buf);
}

/* nft's messages on one line: caret lines dropped, the file name in
 * locations ("/proc/self/fd/5:6:3-9: Error: ...") replaced by "line 6:
 * Error: ...", lines joined by " | ". */
static void one_line(const char *in, const char *path, char *out, size_t size)
{
	size_t o = 0, plen = path ? strlen(path) : 0;
	const char *p = in ? in : "";
	while (*p && o + 1 < size) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		size_t k = strspn(p, " \t^~");
		const char *line = p;
		if (plen && n > plen && !strncmp(p, path, plen) && p[plen] == ':') {
			/* "PATH:LINE:COLS: " -> "line LINE: " */
			const char *num = p + plen + 1, *colon = strchr(num, ':');
			if (colon && colon < p + n) {
				size_t m = (size_t)(colon - num);
				int w = snprintf(out + o, size - o, "%sline %.*s:", o ? " | " : "", (int)m, num);
				if (w > 0)
					o = (size_t)w < size - o ? o + (size_t)w : size - 1;
				const char *rest = strchr(colon + 1, ':');
				line = rest && rest < p + n ? rest + 1 : colon + 1;
				k = 0;
				n -= (size_t)(line - p);
				for (size_t i = 0; i < n && o + 1 < size; i++)
					out[o++] = (line[i] == '\t' || (unsigned char)line[i] < 0x20) ? ' ' : line[i];
				p = line + n + (nl ? 1 : 0);
				continue;
			}
		}
		if (n > 0 && k < n) {
			if (o && o + 3 < size) {
				memcpy(out + o, " | ", 3);
				o += 3;
			}
			for (size_t i = k; i < n && o + 1 < size; i++)
				out[o++] = (line[i] == '\t' || (unsigned char)line[i] < 0x20) ? ' ' : line[i];
		}
		p += n + (nl ? 1 : 0);
	}
	out[o] = '\0';
}

static int errno_of(const char *msg)
{
	static const struct {
		const char *text;
		int code;
	} known[] = {
		{ "Operation not permitted", EPERM },
		{ "Permission denied", EACCES },
		{ "Operation not supported", EOPNOTSUPP },
		{ "No such file or directory", ENOENT },
		{ "Device or resource busy", EBUSY },
		{ "Cannot allocate memory", ENOMEM },
		{ "Protocol not supported", EPROTONOSUPPORT },
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (msg && strstr(msg, known[i].text))
			return known[i].code;
	return EINVAL;
}

static void nft_ctx_freep(struct nft_ctx **c)
{
	if (*c)
		nft_ctx_free(*c);
}

/* Runs text as one transaction. The text goes through a memfd and
 * nft_run_cmd_from_filename: for buffers, libnftables 1.0.6 reports every
 * error at line 1, for a file at the right line (and echoes that line). */
static int run(const char *text, const char *doing, struct gr_error *err)
{
	_cleanup_(nft_ctx_freep) struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!ctx)
		return gr_error_set(err, ENOMEM, "nftables: %s: cannot create a libnftables context", doing);
	if (nft_ctx_buffer_output(ctx) != 0 || nft_ctx_buffer_error(ctx) != 0)
		return gr_error_set(err, ENOMEM, "nftables: %s: cannot buffer libnftables' messages", doing);

	char path[64] = "";
	gr_autoclose int fd = memfd_create("gureum-nft", MFD_CLOEXEC);
	if (fd >= 0) {
		size_t len = strlen(text), off = 0;
		while (off < len) {
			ssize_t w = write(fd, text + off, len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (off < len || access(path, R_OK) != 0)
			path[0] = '\0'; /* no /proc: the buffer will do */
	}
	int r = path[0] ? nft_run_cmd_from_filename(ctx, path) : nft_run_cmd_from_buffer(ctx, text);
	if (r != 0) {
		const char *emsg = nft_ctx_get_error_buffer(ctx);
		char line[GR_ERROR_MSG_MAX];
		one_line(emsg, path, line, sizeof(line));
		int code = errno_of(emsg);
		return gr_error_set(err, code, "nftables: %s failed: %s%s", doing, line[0] ? line : "(no message from nft)",
				    code == EPERM ? " (gureumd needs CAP_NET_ADMIN)" : "");
	}
	return 0;
}

int nft_apply(const char *text, struct gr_error *err)
{
	if (!text)
		return gr_error_set(err, EINVAL, "nftables: no ruleset to apply");
	/* Only text that replaces our table whole (nft_ruleset's). */
	if (strncmp(text, NFT_REPLACE_HEAD, strlen(NFT_REPLACE_HEAD)) != 0)
		return gr_error_set(err, EINVAL, "nftables: refusing a ruleset that does not replace table inet %s whole",
				    NFT_TABLE);
	return run(text, "replacing table inet " NFT_TABLE, err);
}

int nft_remove(struct gr_error *err)
{
	return run(NFT_REPLACE_HEAD, "deleting table inet " NFT_TABLE, err);
}
