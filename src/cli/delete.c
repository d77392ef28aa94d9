/* gureum delete [--force] NAME...: DELETE /1.0/instances/NAME (?force=1
 * stops a running one first); all requests first, then the waits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/cleanup.h"


int cmd_delete(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ 0 },
	};
	bool force = false;
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "f", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 'f': force = true; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(cli, "at least one instance name is needed");
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	int n = argc - optind, status = 0;
	struct gr_error err = { 0 };
	gr_autofree char **ops = calloc((size_t)n, sizeof(*ops));
	if (!ops)
		return cli_error("out of memory");
	for (int i = 0; i < n; i++) {
		const char *name = argv[optind + i];
		gr_autofree char *path = cli_instance_path(name, force ? "?force=1" : NULL);
		gr_autojson json_t *env = NULL;
		if (!path)
			return cli_error("out of memory");
		gr_error_clear(&err);
		if (gr_client_call(c, "DELETE", path, NULL, &env, &err) < 0) {
			cli_instance_error(name, &err);
			status = CLI_EXIT_FAIL;
			continue;
		}
		const char *url = json_string_value(json_object_get(env, "operation"));
		if (url && *url)
			ops[i] = strdup(url);
	}
	for (int i = 0; i < n; i++) {
		if (!ops[i])
			continue;
		gr_autojson json_t *op = NULL;
		gr_error_clear(&err);
		if (gr_client_wait(c, ops[i], &op, &err) < 0) {
			cli_instance_error(argv[optind + i], &err);
			status = CLI_EXIT_FAIL;
		}
		free(ops[i]);
	}
	return status;
}
