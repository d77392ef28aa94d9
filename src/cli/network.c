/* gureum network list|create|info|delete|forward (/1.0/networks):
 *   list [--format table|json|yaml|csv]
 *   create NAME [--subnet CIDR] [--nat] [--isolated]   prints "Network NAME created (SUBNET)"
 *   info NAME                                           the object as YAML
 *   delete NAME
 *   forward add NETWORK HOST_PORT INSTANCE:PORT [tcp|udp]
 *   forward list NETWORK [--format table|json|yaml|csv]
 *   forward delete NETWORK HOST_PORT [tcp|udp]
 * Every argument is checked here before anything is sent (ports 1..65535 in
 * decimal, INSTANCE:PORT split at its last ':', the protocol, the CIDR's
 * syntax); what needs the daemon's knowledge (a free subnet, an existing
 * instance, a port not forwarded yet) comes back as the daemon's message.
 * The routes answer sync; an async answer would be waited for all the same. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

static char *network_path(const char *name, const char *suffix)
{
	gr_autofree char *esc = cli_url_escape(name);
	char *p = NULL;
	if (!esc || asprintf(&p, "/1.0/networks/%s%s", esc, suffix ? suffix : "") < 0)
		return NULL;
	return p;
}

/* METHOD path with body; *md gets the answer's metadata (or the finished
 * operation's, should the daemon answer async). 0 or CLI_EXIT_FAIL after
 * printing the error. */
static int net_request(struct cli *cli, const char *method, const char *path, const json_t *body, json_t **md)
{
	*md = NULL;
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	struct gr_error err = { 0 };
	gr_autojson json_t *env = NULL;
	if (gr_client_call(c, method, path, body, &env, &err) < 0)
		return cli_fail(&err);
	if (strcmp(cli_json_str(env, "type", ""), "async") == 0) {
		gr_autojson json_t *op = NULL;
		if (gr_client_wait(c, cli_json_str(env, "operation", ""), &op, &err) < 0)
			return cli_fail(&err);
		*md = json_incref(json_object_get(op, "metadata"));
	} else {
		*md = json_incref(json_object_get(env, "metadata"));
	}
	return 0;
}

static int no_options(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1)
		return opt == 'h' ? cli_help(cli) : CLI_EXIT_USAGE;
	return -1;
}

/* A port: decimal digits only (no sign, no spaces), 1..65535. */
static bool parse_port(const char *s, long *out)
{
	long v = 0;
	if (!*s)
		return false;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
		if (v > 65535)
			return false;
	}
	if (v < 1)
		return false;
	*out = v;
	return true;
}

/* The protocol operand, when given: tcp or udp. */
static bool valid_protocol(const char *s)
{
	return strcmp(s, "tcp") == 0 || strcmp(s, "udp") == 0;
}

/* "A.B.C.D/N" as far as its syntax goes (N decimal 0..32); the daemon
 * decides which subnets a network may have. */
static bool cidr_syntax_ok(const char *s)
{
	const char *slash = strchr(s, '/');
	if (!slash || slash == s || (size_t)(slash - s) >= INET_ADDRSTRLEN)
		return false;
	char addr[INET_ADDRSTRLEN];
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	struct in_addr a;
	if (inet_pton(AF_INET, addr, &a) != 1)
		return false;
	const char *p = slash + 1;
	if (!*p || strlen(p) > 2)
		return false;
	int n = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		n = n * 10 + (*p - '0');
	}
	return n <= 32;
}

static int net_create(struct cli *cli, int argc, char **argv)
{
	/* Long options only: values past the characters, so that a missing
	 * value is reported as "--subnet", not as a short option. */
	enum { OPT_SUBNET = 0x100, OPT_NAT, OPT_ISOLATED };
	static const struct option longopts[] = {
		{ "subnet", required_argument, NULL, OPT_SUBNET },
		{ "nat", no_argument, NULL, OPT_NAT },
		{ "isolated", no_argument, NULL, OPT_ISOLATED },
		{ 0 },
	};
	const char *subnet = NULL;
	bool nat = false, isolated = false;
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case OPT_SUBNET:
			if (!cidr_syntax_ok(optarg))
				return cli_usage_error(cli, "--subnet %s: expected an IPv4 subnet such as 10.10.0.0/24",
						       optarg);
			subnet = optarg;
			break;
		case OPT_NAT: nat = true; break;
		case OPT_ISOLATED: isolated = true; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(cli, "network create: a network name is needed");
	if (optind + 1 < argc)
		return cli_usage_error(cli, "network create: unexpected argument \"%s\"", argv[optind + 1]);
	const char *name = argv[optind];
	gr_autojson json_t *body = json_pack("{s:s, s:b, s:b}", "name", name, "nat", nat, "isolated", isolated);
	if (!body)
		return cli_usage_error(cli, "network create: the name \"%s\" is not valid UTF-8", name);
	if (subnet && json_object_set_new(body, "subnet", json_string(subnet)) < 0)
		return cli_error("out of memory");
	gr_autojson json_t *md = NULL;
	int r = net_request(cli, "POST", "/1.0/networks", body, &md);
	if (r)
		return r;
	printf("Network %s created (%s)\n", cli_json_str(md, "name", name),
	       cli_json_str(md, "subnet", subnet ? subnet : "?"));
	return 0;
}

static int net_list(struct cli *cli, int argc, char **argv)
{
	enum cli_format fmt;
	int code;
	if (!cli_list_options(cli, argc, argv, &fmt, &code))
		return code;
	if (optind < argc)
		return cli_usage_error(cli, "network list: unexpected argument \"%s\"", argv[optind]);
	gr_autojson json_t *list = NULL;
	if ((code = cli_list_fetch(cli, "/1.0/networks?recursion=1", NULL, fmt, &list)) >= 0)
		return code;
	static const char *const headers[] = { "NAME", "BRIDGE", "SUBNET", "NAT", "ISOLATED", "USED BY" };
	struct cli_table *t = fmt == CLI_FORMAT_TABLE ? cli_table_new(6, headers) : NULL;
	if (fmt == CLI_FORMAT_TABLE && !t)
		return cli_error("out of memory");
	bool table = t != NULL;
	size_t i;
	json_t *n;
	int status = 0;
	json_array_foreach(list, i, n) {
		char used[32];
		bool nat = json_is_true(json_object_get(n, "nat"));
		bool isolated = json_is_true(json_object_get(n, "isolated"));
		snprintf(used, sizeof(used), "%zu", json_array_size(json_object_get(n, "used_by")));
		/* The table for people (YES/NO), CSV for scripts (true/false). */
		const char *row[6] = { cli_json_str(n, "name", ""), cli_json_str(n, "bridge", ""),
				       cli_json_str(n, "subnet", ""),
				       table ? (nat ? "YES" : "NO") : (nat ? "true" : "false"),
				       table ? (isolated ? "YES" : "NO") : (isolated ? "true" : "false"), used };
		if (!table) {
			cli_csv_row(stdout, row, 6);
		} else if (cli_table_add(t, row) < 0) {
			status = cli_error("out of memory");
			break;
		}
	}
	if (t && status == 0)
		cli_table_print(t, stdout);
	cli_table_free(t);
	return status;
}

static int net_info(struct cli *cli, int argc, char **argv)
{
	int r = no_options(cli, argc, argv);
	if (r >= 0)
		return r;
	if (optind >= argc)
		return cli_usage_error(cli, "network info: a network name is needed");
	if (optind + 1 < argc)
		return cli_usage_error(cli, "network info: unexpected argument \"%s\"", argv[optind + 1]);
	gr_autofree char *path = network_path(argv[optind], NULL);
	if (!path)
		return cli_error("out of memory");
	gr_autojson json_t *md = NULL;
	if ((r = net_request(cli, "GET", path, NULL, &md)) != 0)
		return r;
	cli_yaml_dump(stdout, md, 0);
	return 0;
}

static int net_delete(struct cli *cli, int argc, char **argv)
{
	int r = no_options(cli, argc, argv);
	if (r >= 0)
		return r;
	if (optind >= argc)
		return cli_usage_error(cli, "network delete: a network name is needed");
	if (optind + 1 < argc)
		return cli_usage_error(cli, "network delete: unexpected argument \"%s\"", argv[optind + 1]);
	gr_autofree char *path = network_path(argv[optind], NULL);
	if (!path)
		return cli_error("out of memory");
	gr_autojson json_t *md = NULL;
	return net_request(cli, "DELETE", path, NULL, &md);
}

/* --- forwards ---------------------------------------------------------------------------- */

/* HOST_PORT and the optional protocol after it, shared by add and delete
 * (argv[first] is HOST_PORT, argv[proto] the protocol when proto < argc). */
static int forward_port_args(struct cli *cli, const char *verb, int argc, char **argv, int first, int proto,
			     long *host_port, const char **protocol)
{
	if (!parse_port(argv[first], host_port))
		return cli_usage_error(cli, "network forward %s: HOST_PORT \"%s\": expected a port number from 1 to 65535",
				       verb, argv[first]);
	*protocol = "tcp";
	if (proto < argc) {
		if (!valid_protocol(argv[proto]))
			return cli_usage_error(cli, "network forward %s: protocol \"%s\": expected tcp or udp", verb,
					       argv[proto]);
		*protocol = argv[proto];
	}
	return -1;
}

static int fwd_add(struct cli *cli, int argc, char **argv)
{
	int r = no_options(cli, argc, argv);
	if (r >= 0)
		return r;
	int n = argc - optind;
	if (n < 3)
		return cli_usage_error(cli, "network forward add: NETWORK HOST_PORT INSTANCE:PORT [tcp|udp] are needed");
	if (n > 4)
		return cli_usage_error(cli, "network forward add: unexpected argument \"%s\"", argv[optind + 4]);
	const char *network = argv[optind];
	long host_port, port;
	const char *protocol;
	if ((r = forward_port_args(cli, "add", argc, argv, optind + 1, optind + 3, &host_port, &protocol)) >= 0)
		return r;
	const char *target = argv[optind + 2];
	const char *colon = strrchr(target, ':');
	if (!colon)
		return cli_usage_error(cli, "network forward add: \"%s\": expected INSTANCE:PORT, such as c1:80", target);
	if (colon == target)
		return cli_usage_error(cli, "network forward add: \"%s\": the instance name before ':' is missing",
				       target);
	if (!parse_port(colon + 1, &port))
		return cli_usage_error(cli, "network forward add: \"%s\": the port after ':' must be a number from 1 to 65535",
				       target);
	gr_autofree char *instance = strndup(target, (size_t)(colon - target));
	gr_autofree char *path = network_path(network, "/forwards");
	if (!instance || !path)
		return cli_error("out of memory");
	gr_autojson json_t *body = json_pack("{s:s, s:I, s:s, s:I}", "protocol", protocol, "host_port",
					     (json_int_t)host_port, "instance", instance, "port", (json_int_t)port);
	if (!body)
		return cli_usage_error(cli, "network forward add: the instance name \"%s\" is not valid UTF-8", instance);
	gr_autojson json_t *md = NULL;
	return net_request(cli, "POST", path, body, &md);
}

static int fwd_list(struct cli *cli, int argc, char **argv)
{
	enum cli_format fmt;
	int code;
	if (!cli_list_options(cli, argc, argv, &fmt, &code))
		return code;
	if (optind >= argc)
		return cli_usage_error(cli, "network forward list: a network name is needed");
	if (optind + 1 < argc)
		return cli_usage_error(cli, "network forward list: unexpected argument \"%s\"", argv[optind + 1]);
	gr_autofree char *path = network_path(argv[optind], "/forwards");
	if (!path)
		return cli_error("out of memory");
	gr_autojson json_t *list = NULL;
	if ((code = cli_list_fetch(cli, path, NULL, fmt, &list)) >= 0)
		return code;
	static const char *const headers[] = { "PROTOCOL", "HOST PORT", "INSTANCE", "PORT", "ADDRESS" };
	struct cli_table *t = fmt == CLI_FORMAT_TABLE ? cli_table_new(5, headers) : NULL;
	if (fmt == CLI_FORMAT_TABLE && !t)
		return cli_error("out of memory");
	size_t i;
	json_t *f;
	int status = 0;
	json_array_foreach(list, i, f) {
		char host_port[16], port[16];
		snprintf(host_port, sizeof(host_port), "%lld", (long long)json_integer_value(json_object_get(f, "host_port")));
		snprintf(port, sizeof(port), "%lld", (long long)json_integer_value(json_object_get(f, "port")));
		const char *row[5] = { cli_json_str(f, "protocol", ""), host_port, cli_json_str(f, "instance", ""), port,
				       cli_json_str(f, "address", "") };
		if (!t) {
			cli_csv_row(stdout, row, 5);
		} else if (cli_table_add(t, row) < 0) {
			status = cli_error("out of memory");
			break;
		}
	}
	if (t && status == 0)
		cli_table_print(t, stdout);
	cli_table_free(t);
	return status;
}

static int fwd_delete(struct cli *cli, int argc, char **argv)
{
	int r = no_options(cli, argc, argv);
	if (r >= 0)
		return r;
	int n = argc - optind;
	if (n < 2)
		return cli_usage_error(cli, "network forward delete: NETWORK HOST_PORT [tcp|udp] are needed");
	if (n > 3)
		return cli_usage_error(cli, "network forward delete: unexpected argument \"%s\"", argv[optind + 3]);
	long host_port;
	const char *protocol;
	if ((r = forward_port_args(cli, "delete", argc, argv, optind + 1, optind + 2, &host_port, &protocol)) >= 0)
		return r;
	gr_autofree char *suffix = NULL;
	if (asprintf(&suffix, "/forwards/%s/%ld", protocol, host_port) < 0)
		return cli_error("out of memory");
	gr_autofree char *path = network_path(argv[optind], suffix);
	if (!path)
		return cli_error("out of memory");
	gr_autojson json_t *md = NULL;
	return net_request(cli, "DELETE", path, NULL, &md);
}

static int net_forward(struct cli *cli, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct cli *, int, char **);
	} subs[] = {
		{ "add", fwd_add }, { "list", fwd_list }, { "delete", fwd_delete },
	};
	if (argc < 2)
		return cli_usage_error(cli, "network forward: add, list or delete is needed");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cli_help(cli);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0) {
			optind = 0;
			return subs[i].fn(cli, argc - 1, argv + 1);
		}
	return cli_usage_error(cli, "network forward: unknown subcommand \"%s\" (add, list, delete)", argv[1]);
}

int cmd_network(struct cli *cli, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct cli *, int, char **);
	} subs[] = {
		{ "list", net_list }, { "create", net_create }, { "info", net_info },
		{ "delete", net_delete }, { "forward", net_forward },
	};
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return argc < 2 ? cli_usage_error(cli, "a subcommand is needed (list, create, info, delete, forward)")
				: cli_help(cli);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0) {
			optind = 0;
			return subs[i].fn(cli, argc - 1, argv + 1);
		}
	return cli_usage_error(cli, "unknown subcommand \"%s\" (list, create, info, delete, forward)", argv[1]);
}
