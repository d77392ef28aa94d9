/* gureum snapshot create|list|restore|delete (/1.0/instances/NAME/snapshots):
 *   create INSTANCE [NAME]    prints the snapshot's name (made up when not given)
 *   list INSTANCE [--format table|json|yaml|csv]
 *   restore INSTANCE NAME     the instance must be stopped
 *   delete INSTANCE NAME... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

static char *snap_path(const char *instance, const char *snap, const char *suffix)
{
	gr_autofree char *esc = snap ? cli_url_escape(snap) : NULL;
	gr_autofree char *tail = NULL;
	if ((snap && !esc) || asprintf(&tail, "/snapshots%s%s%s", snap ? "/" : "", snap ? esc : "", suffix ? suffix : "") < 0)
		return NULL;
	return cli_instance_path(instance, tail);
}

static int no_options(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1)
		return opt == 'h' ? cli_help(cli) : CLI_EXIT_USAGE;
	return -1;
}

static int snap_create(struct cli *cli, int argc, char **argv)
{
	int r = no_options(cli, argc, argv);
	if (r >= 0)
		return r;
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage_error(cli, "snapshot create: INSTANCE [NAME]");
	const char *inst = argv[optind];
	gr_autofree char *path = snap_path(inst, NULL, NULL);
	gr_autojson json_t *body = argc - optind == 2 ? json_pack("{s:s}", "name", argv[optind + 1]) : json_object();
	if (!path || !body)
		return cli_error("out of memory");
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	struct gr_error err = { 0 };
	gr_autojson json_t *op = NULL;
	if (gr_client_run_operation(c, "POST", path, body, &op, &err) < 0) {
		cli_instance_error(inst, &err);
		return CLI_EXIT_FAIL;
	}
	printf("%s\n", cli_json_str(json_object_get(op, "metadata"), "name", argc - optind == 2 ? argv[optind + 1] : ""));
	return 0;
}

static int snap_list(struct cli *cli, int argc, char **argv)
{
	enum cli_format fmt;
	int code;
	if (!cli_list_options(cli, argc, argv, &fmt, &code))
		return code;
	if (argc - optind != 1)
		return cli_usage_error(cli, "snapshot list: one instance name is needed");
	const char *inst = argv[optind];
	gr_autofree char *path = snap_path(inst, NULL, "?recursion=1");
	if (!path)
		return cli_error("out of memory");
	gr_autojson json_t *list = NULL;
	if ((code = cli_list_fetch(cli, path, inst, fmt, &list)) >= 0)
		return code;
	static const char *const headers[] = { "NAME", "CREATED", "SIZE", "FILES", "TAKEN WHILE" };
	struct cli_table *t = fmt == CLI_FORMAT_TABLE ? cli_table_new(5, headers) : NULL;
	if (fmt == CLI_FORMAT_TABLE && !t)
		return cli_error("out of memory");
	size_t i;
	json_t *s;
	json_array_foreach(list, i, s) {
		char created[64], size[32], files[32];
		cli_format_timestamp(cli_json_str(s, "created_at", ""), created, sizeof(created));
		cli_format_size((uint64_t)json_integer_value(json_object_get(s, "size")), size, sizeof(size));
		snprintf(files, sizeof(files), "%lld", (long long)json_integer_value(json_object_get(s, "files")));
		const char *row[5] = { cli_json_str(s, "name", ""), created, size, files, cli_json_str(s, "instance_status", "") };
		if (!t) {
			row[1] = cli_json_str(s, "created_at", "");
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

static int snap_restore_delete(struct cli *cli, int argc, char **argv, bool restore)
{
	int r = no_options(cli, argc, argv);
	if (r >= 0)
		return r;
	if (argc - optind < 2 || (restore && argc - optind != 2))
		return cli_usage_error(cli, restore ? "snapshot restore: INSTANCE NAME" : "snapshot delete: INSTANCE NAME...");
	const char *inst = argv[optind];
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	int status = 0;
	for (int i = optind + 1; i < argc; i++) {
		gr_autofree char *path = snap_path(inst, argv[i], restore ? "/restore" : NULL);
		if (!path)
			return cli_error("out of memory");
		struct gr_error err = { 0 };
		gr_autojson json_t *op = NULL;
		if (gr_client_run_operation(c, restore ? "POST" : "DELETE", path, NULL, &op, &err) < 0) {
			cli_instance_error(inst, &err);
			status = CLI_EXIT_FAIL;
		}
	}
	return status;
}

static int snap_restore(struct cli *cli, int argc, char **argv)
{
	return snap_restore_delete(cli, argc, argv, true);
}

static int snap_delete(struct cli *cli, int argc, char **argv)
{
	return snap_restore_delete(cli, argc, argv, false);
}

int cmd_snapshot(struct cli *cli, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct cli *, int, char **);
	} subs[] = {
		{ "create", snap_create }, { "list", snap_list }, { "restore", snap_restore }, { "delete", snap_delete },
	};
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return argc < 2 ? cli_usage_error(cli, "a subcommand is needed (create, list, restore, delete)")
				: cli_help(cli);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0) {
			optind = 0;
			return subs[i].fn(cli, argc - 1, argv + 1);
		}
	return cli_usage_error(cli, "unknown subcommand \"%s\" (create, list, restore, delete)", argv[1]);
}
