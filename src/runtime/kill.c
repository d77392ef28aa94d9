/* kill: send a signal (default SIGTERM) to the init, or with --all to every process. */
#include "runtime.h"

#include <getopt.h>
#include <signal.h>

int cmd_kill(struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' }, { 0 } };
	bool all = false;
	int c;
	while ((c = getopt_long(argc, argv, "+a", opts, NULL)) != -1) {
		if (c != 'a')
			return runtime_usage("kill", "unknown option \"%s\"", argv[optind - 1]);
		all = true;
	}
	if (optind >= argc)
		return runtime_usage("kill", "a container id is required");
	const char *id = argv[optind];
	int sig = SIGTERM;
	if (optind + 1 < argc) {
		if (optind + 2 < argc)
			return runtime_usage("kill", "unexpected argument \"%s\"", argv[optind + 2]);
		if (container_parse_signal(argv[optind + 1], &sig) < 0)
			return runtime_usage("kill", "unknown signal \"%s\"", argv[optind + 1]);
	}
	struct gr_error err = { 0 };
	if (container_kill(g->root, id, sig, all, &err) < 0)
		return runtime_fail(&err);
	return 0;
}
