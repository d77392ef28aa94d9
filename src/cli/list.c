/* gureum list [--format table|json|yaml|csv]: the instances
 * (GET /1.0/instances?recursion=1) with name, type, state, IPv4 and
 * creation time. json and yaml print the daemon's objects; csv has no
 * header (one instance per line, for scripts and completion). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

/* IPv4 addresses, once instances have networks: state.network.*.addresses
 * with family inet (Incus's shape); empty until then. */
static char *ipv4_of(const json_t *inst)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	const json_t *net = json_object_get(json_object_get(inst, "state"), "network");
	const char *ifname;
	json_t *iface;
	bool first = true;
	json_object_foreach((json_t *)net, ifname, iface) {
		size_t i;
		json_t *a;
		json_array_foreach(json_object_get(iface, "addresses"), i, a) {
			const char *fam = json_string_value(json_object_get(a, "family"));
			const char *addr = json_string_value(json_object_get(a, "address"));
			if (!fam || !addr || strcmp(fam, "inet") != 0 || strcmp(ifname, "lo") == 0)
				continue;
			fprintf(f, "%s%s (%s)", first ? "" : "\n", addr, ifname);
			first = false;
		}
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

bool cli_list_options(struct cli *cli, int argc, char **argv, enum cli_format *fmt, int *code)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ 0 },
	};
	struct gr_error err = { 0 };
	*fmt = CLI_FORMAT_TABLE;
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "f:", longopts)) != -1) {
		switch (opt) {
		case 'h':
			*code = cli_help(cli);
			return false;
		case 'f':
			if (cli_parse_format(optarg, fmt, &err) < 0) {
				*code = cli_usage_error(cli, "%s", err.msg);
				return false;
			}
			break;
		default:
			*code = CLI_EXIT_USAGE;
			return false;
		}
	}
	return true;
}

int cli_list_fetch(struct cli *cli, const char *path, const char *instance, enum cli_format fmt, json_t **list)
{
	*list = NULL;
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	struct gr_error err = { 0 };
	json_t *l = NULL;
	if (gr_client_query(c, "GET", path, NULL, &l, &err) < 0) {
		if (!instance)
			return cli_fail(&err);
		cli_instance_error(instance, &err);
		return CLI_EXIT_FAIL;
	}
	if (!json_is_array(l)) {
		json_decref(l);
		return cli_error("GET %s: gureumd did not answer with a list", path);
	}
	int printed = cli_print_document(stdout, l, fmt);
	if (printed) {
		json_decref(l);
		return printed < 0 ? cli_error("writing JSON failed") : 0;
	}
	*list = l;
	return -1;
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
	enum cli_format fmt;
	int code;
	if (!cli_list_options(cli, argc, argv, &fmt, &code))
		return code;
	if (optind < argc)
		return cli_usage_error(cli, "unexpected argument \"%s\"", argv[optind]);
	gr_autojson json_t *list = NULL;
	if ((code = cli_list_fetch(cli, "/1.0/instances?recursion=1", NULL, fmt, &list)) >= 0)
		return code;
	static const char *const headers[] = { "NAME", "TYPE", "STATE", "IPV4", "CREATED" };
	struct cli_table *t = fmt == CLI_FORMAT_TABLE ? cli_table_new(5, headers) : NULL;
	if (fmt == CLI_FORMAT_TABLE && !t)
		return cli_error("out of memory");
	size_t i;
	json_t *inst;
	int status = 0;
	json_array_foreach(list, i, inst) {
		char created[64];
		cli_format_timestamp(cli_json_str(inst, "created_at", ""), created, sizeof(created));
		gr_autofree char *ipv4 = ipv4_of(inst);
		const char *status_text = cli_json_str(inst, "status", "");
		const char *row[5] = { cli_json_str(inst, "name", ""), cli_json_str(inst, "type", ""), status_text,
				       ipv4 ? ipv4 : "", created };
		if (fmt == CLI_FORMAT_CSV) {
			/* Machine-readable: the timestamp as the daemon gave it. */
			row[4] = cli_json_str(inst, "created_at", "");
			cli_csv_row(stdout, row, 5);
		} else {
			char upper[64];
			size_t k;
			for (k = 0; status_text[k] && k + 1 < sizeof(upper); k++)
				upper[k] = (char)toupper((unsigned char)status_text[k]);
			upper[k] = '\0';
			row[2] = upper;
			if (cli_table_add(t, row) == 0)
				continue;
			status = cli_error("out of memory");
			break;
		}
	}
	if (t && status == 0)
		cli_table_print(t, stdout);
	cli_table_free(t);
	return status;
}
