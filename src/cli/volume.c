/* gureum volume create|list|info|delete|attach|detach (/1.0/volumes):
 *   create NAME [--type dir|block] [--size SIZE]
 *   list [--format table|json|yaml|csv]
 *   info NAME
 *   delete NAME...
 *   attach VOLUME INSTANCE PATH [--readonly]
 *   detach VOLUME INSTANCE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

static char *volume_path(const char *name, const char *suffix)
{
	gr_autofree char *esc = cli_url_escape(name);
	char *p = NULL;
	if (!esc || asprintf(&p, "/1.0/volumes/%s%s", esc, suffix ? suffix : "") < 0)
		return NULL;
	return p;
}

/* Options of a subcommand: argv[0] is the subcommand. */
static int vol_create(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 's' },
		{ 0 },
	};
	const char *type = "dir", *size = NULL;
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "t:s:", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 't':
			if (strcmp(optarg, "dir") != 0 && strcmp(optarg, "block") != 0)
				return cli_usage_error(cli, "--type %s: expected dir or block", optarg);
			type = optarg;
			break;
		case 's': size = optarg; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(cli, "volume create: a volume name is needed");
	if (optind + 1 < argc)
		return cli_usage_error(cli, "volume create: unexpected argument \"%s\"", argv[optind + 1]);
	if (strcmp(type, "block") == 0 && !size)
		return cli_usage_error(cli, "volume create: a block volume needs --size (e.g. --size 10GiB)");
	gr_autojson json_t *body = json_pack("{s:s, s:s}", "name", argv[optind], "type", type);
	if (!body)
		return cli_error("out of memory");
	if (size)
		json_object_set_new(body, "size", json_string(size));
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	struct gr_error err = { 0 };
	gr_autojson json_t *md = NULL;
	if (gr_client_query(c, "POST", "/1.0/volumes", body, &md, &err) < 0)
		return cli_fail(&err);
	return 0;
}

static void attached_to(const json_t *v, char *buf, size_t n)
{
	size_t o = 0, i;
	json_t *a;
	buf[0] = '\0';
	json_array_foreach(json_object_get(v, "attachments"), i, a) {
		if (o >= n)
			break;
		o += (size_t)snprintf(buf + o, n - o, "%s%s:%s%s", i ? ", " : "", cli_json_str(a, "instance", ""),
				      cli_json_str(a, "path", ""), json_is_true(json_object_get(a, "readonly")) ? " (ro)" : "");
	}
}

static int vol_list(struct cli *cli, int argc, char **argv)
{
	enum cli_format fmt;
	int code;
	if (!cli_list_options(cli, argc, argv, &fmt, &code))
		return code;
	if (optind < argc)
		return cli_usage_error(cli, "volume list: unexpected argument \"%s\"", argv[optind]);
	gr_autojson json_t *list = NULL;
	if ((code = cli_list_fetch(cli, "/1.0/volumes?recursion=1", NULL, fmt, &list)) >= 0)
		return code;
	static const char *const headers[] = { "NAME", "TYPE", "SIZE", "ATTACHED TO", "CREATED" };
	struct cli_table *t = fmt == CLI_FORMAT_TABLE ? cli_table_new(5, headers) : NULL;
	if (fmt == CLI_FORMAT_TABLE && !t)
		return cli_error("out of memory");
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v) {
		char size[32] = "", created[64], att[1024];
		json_int_t bytes = json_integer_value(json_object_get(v, "size"));
		if (bytes > 0)
			cli_format_size((uint64_t)bytes, size, sizeof(size));
		cli_format_timestamp(cli_json_str(v, "created_at", ""), created, sizeof(created));
		attached_to(v, att, sizeof(att));
		const char *row[5] = { cli_json_str(v, "name", ""), cli_json_str(v, "type", ""), size, att, created };
		if (!t) {
			row[4] = cli_json_str(v, "created_at", "");
			cli_csv_row(stdout, row, 5);
		} else if (cli_table_add(t, row) < 0) {
			cli_table_free(t);
			return cli_error("out of memory");
		}
	}
	if (t)
		cli_table_print(t, stdout);
	cli_table_free(t);
	return 0;
}

static int vol_info(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1)
		return opt == 'h' ? cli_help(cli) : CLI_EXIT_USAGE;
	if (optind + 1 != argc)
		return cli_usage_error(cli, "volume info: one volume name is needed");
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autofree char *path = volume_path(argv[optind], NULL);
	if (!path)
		return cli_error("out of memory");
	struct gr_error err = { 0 };
	gr_autojson json_t *v = NULL;
	if (gr_client_query(c, "GET", path, NULL, &v, &err) < 0)
		return cli_fail(&err);
	char size[32] = "", created[64];
	json_int_t bytes = json_integer_value(json_object_get(v, "size"));
	cli_format_timestamp(cli_json_str(v, "created_at", ""), created, sizeof(created));
	printf("Name: %s\nType: %s\n", cli_json_str(v, "name", ""), cli_json_str(v, "type", ""));
	if (bytes > 0) {
		cli_format_size((uint64_t)bytes, size, sizeof(size));
		printf("Size: %s\n", size);
	}
	printf("Created: %s\n", created);
	size_t i;
	json_t *a;
	json_t *att = json_object_get(v, "attachments");
	printf("Attached to:%s\n", json_array_size(att) ? "" : " (none)");
	json_array_foreach(att, i, a)
		printf("  %s at %s%s\n", cli_json_str(a, "instance", ""), cli_json_str(a, "path", ""),
		       json_is_true(json_object_get(a, "readonly")) ? " (read-only)" : "");
	return 0;
}

static int run_ops(struct cli *cli, const char *method, char **paths, json_t *const *bodies, char **names, int n)
{
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	int status = 0;
	for (int i = 0; i < n; i++) {
		struct gr_error err = { 0 };
		gr_autojson json_t *op = NULL;
		if (gr_client_run_operation(c, method, paths[i], bodies ? bodies[i] : NULL, &op, &err) < 0) {
			if (names && !strstr(err.msg, names[i]))
				cli_error("%s: %s", names[i], err.msg);
			else
				cli_fail(&err);
			status = CLI_EXIT_FAIL;
		}
	}
	return status;
}

static int vol_delete(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1)
		return opt == 'h' ? cli_help(cli) : CLI_EXIT_USAGE;
	if (optind >= argc)
		return cli_usage_error(cli, "volume delete: at least one volume name is needed");
	int n = argc - optind, status = 0;
	for (int i = 0; i < n; i++) {
		gr_autofree char *path = volume_path(argv[optind + i], NULL);
		if (!path)
			return cli_error("out of memory");
		if (run_ops(cli, "DELETE", &path, NULL, &argv[optind + i], 1) != 0)
			status = CLI_EXIT_FAIL;
	}
	return status;
}

static int vol_attach(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "readonly", no_argument, NULL, 'r' },
		{ 0 },
	};
	bool ro = false;
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "r", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 'r': ro = true; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind != 3)
		return cli_usage_error(cli, "volume attach: VOLUME INSTANCE PATH are needed");
	gr_autofree char *path = volume_path(argv[optind], "/attachments");
	gr_autojson json_t *body = json_pack("{s:s, s:s, s:b}", "instance", argv[optind + 1], "path", argv[optind + 2],
					     "readonly", ro);
	if (!path || !body)
		return cli_error("out of memory");
	return run_ops(cli, "POST", &path, &body, NULL, 1);
}

static int vol_detach(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1)
		return opt == 'h' ? cli_help(cli) : CLI_EXIT_USAGE;
	if (argc - optind != 2)
		return cli_usage_error(cli, "volume detach: VOLUME INSTANCE are needed");
	gr_autofree char *inst = cli_url_escape(argv[optind + 1]);
	gr_autofree char *suffix = NULL;
	if (!inst || asprintf(&suffix, "/attachments/%s", inst) < 0)
		return cli_error("out of memory");
	gr_autofree char *path = volume_path(argv[optind], suffix);
	if (!path)
		return cli_error("out of memory");
	return run_ops(cli, "DELETE", &path, NULL, NULL, 1);
}

int cmd_volume(struct cli *cli, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct cli *, int, char **);
	} subs[] = {
		{ "create", vol_create }, { "list", vol_list }, { "info", vol_info },
		{ "delete", vol_delete }, { "attach", vol_attach }, { "detach", vol_detach },
	};
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return argc < 2 ? cli_usage_error(cli, "a subcommand is needed (create, list, info, delete, attach, detach)")
				: cli_help(cli);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0) {
			optind = 0;
			return subs[i].fn(cli, argc - 1, argv + 1);
		}
	return cli_usage_error(cli, "unknown subcommand \"%s\" (create, list, info, delete, attach, detach)", argv[1]);
}
