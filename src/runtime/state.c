/* state: the OCI state of a container as JSON. */
#include "runtime.h"

#include <getopt.h>

int cmd_state(struct globals *g, int argc, char **argv)
{
	if (getopt_long(argc, argv, "+", (const struct option[]){ { 0 } }, NULL) != -1)
		return runtime_usage("state", "unknown option \"%s\"", argv[optind - 1]);
	const char *id;
	if (runtime_one_id("state", argc, argv, &id))
		return 1;
	struct gr_error err = { 0 };
	struct container_state st;
	if (state_load(g->root, id, &st, &err) < 0)
		return runtime_fail(&err);
	enum container_status s;
	container_status(g->root, &st, &s);
	json_t *j = state_to_json(&st, s);
	int r = runtime_print_json(j);
	json_decref(j);
	state_free(&st);
	return r;
}
