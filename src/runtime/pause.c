/* pause and resume: freeze and thaw every process of a container. */
#include "runtime.h"

#include <getopt.h>

static int pause_or_resume(const char *verb, struct globals *g, int argc, char **argv, bool pause)
{
	if (getopt_long(argc, argv, "+", (const struct option[]){ { 0 } }, NULL) != -1)
		return runtime_usage(verb, "unknown option \"%s\"", argv[optind - 1]);
	const char *id;
	if (runtime_one_id(verb, argc, argv, &id))
		return 1;
	struct gr_error err = { 0 };
	if (container_pause(g->root, id, pause, &err) < 0)
		return runtime_fail(&err);
	return 0;
}

int cmd_pause(struct globals *g, int argc, char **argv)
{
	return pause_or_resume("pause", g, argc, argv, true);
}

int cmd_resume(struct globals *g, int argc, char **argv)
{
	return pause_or_resume("resume", g, argc, argv, false);
}
