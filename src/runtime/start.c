/* start: run the user process of a created container. */
#include "runtime.h"

#include <getopt.h>

int cmd_start(struct globals *g, int argc, char **argv)
{
	if (getopt_long(argc, argv, "+", (const struct option[]){ { 0 } }, NULL) != -1)
		return runtime_usage("start", "unknown option \"%s\"", argv[optind - 1]);
	struct container_opts o = { .root = g->root, .cgroup_manager = g->cgroup_manager };
	if (runtime_one_id("start", argc, argv, &o.id))
		return 1;
	struct gr_error err = { 0 };
	if (container_start(&o, &err) < 0)
		return runtime_fail(&err);
	return 0;
}
