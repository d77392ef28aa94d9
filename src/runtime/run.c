/* run: create + start; in the foreground it returns the container's exit code. */
#include "runtime.h"
#include "create_opts.h"

int cmd_run(struct globals *g, int argc, char **argv)
{
	struct container_opts o;
	bool detach = false;
	if (create_parse("run", g, argc, argv, &o, &detach))
		return 1;
	struct gr_error err = { 0 };
	int code = 0;
	if (container_run(&o, detach, &code, &err) < 0)
		return runtime_fail(&err);
	return code;
}
