/* gureum delete [--force] NAME...: DELETE /1.0/instances/NAME (?force=1
 * stops a running one first); all requests first, then the waits. */
#include "cli/cli.h"


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
	return cli_instances_run(c, "DELETE", force ? "?force=1" : NULL, NULL, argv + optind, argc - optind);
}
