/* delete: remove a stopped (or created) container; --force kills a running one first. */
#include "runtime.h"

#include <getopt.h>

int cmd_delete(struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = { { "force", no_argument, NULL, 'f' }, { 0 } };
	bool force = false;
	int c;
	while ((c = getopt_long(argc, argv, "+f", opts, NULL)) != -1) {
		if (c != 'f')
			return runtime_usage("delete", "unknown option \"%s\"", argv[optind - 1]);
		force = true;
	}
	const char *id;
	if (runtime_one_id("delete", argc, argv, &id))
		return 1;
	struct gr_error err = { 0 };
	if (container_delete(g->root, id, force, &err) < 0)
		return runtime_fail(&err);
	return 0;
}
