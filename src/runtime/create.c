/* create: set up a container that waits for "start". Also holds the
 * option parsing shared with "run". */
#include "runtime.h"
#include "create_opts.h"

#include <getopt.h>
#include <string.h>

int create_parse(const char *verb, struct globals *g, int argc, char **argv, struct container_opts *o,
		 bool *detach)
{
	enum { OPT_PID_FILE = 256, OPT_CONSOLE, OPT_NO_PIVOT, OPT_NO_KEYRING, OPT_PRESERVE, OPT_KEEP,
	       OPT_NO_SUBREAPER };
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },
		{ "pid-file", required_argument, NULL, OPT_PID_FILE },
		{ "console-socket", required_argument, NULL, OPT_CONSOLE },
		{ "no-pivot", no_argument, NULL, OPT_NO_PIVOT },
		{ "no-new-keyring", no_argument, NULL, OPT_NO_KEYRING },
		{ "preserve-fds", required_argument, NULL, OPT_PRESERVE },
		{ "detach", no_argument, NULL, 'd' },
		{ "keep", no_argument, NULL, OPT_KEEP },
		{ "no-subreaper", no_argument, NULL, OPT_NO_SUBREAPER },
		{ 0 },
	};
	*o = (struct container_opts){ .root = g->root, .cgroup_manager = g->cgroup_manager };
	int c;
	while ((c = getopt_long(argc, argv, "+b:d", opts, NULL)) != -1) {
		switch (c) {
		case 'b': o->bundle = optarg; break;
		case OPT_PID_FILE: o->pid_file = optarg; break;
		case OPT_CONSOLE: o->console_socket = optarg; break;
		case OPT_NO_PIVOT: o->no_pivot = true; break;
		case OPT_NO_KEYRING: o->no_new_keyring = true; break;
		case OPT_PRESERVE:
			if (runtime_parse_int(verb, "--preserve-fds", optarg, 0, &o->preserve_fds))
				return 1;
			break;
		case 'd':
			if (!detach)
				return runtime_usage(verb, "unknown option --detach");
			*detach = true;
			break;
		case OPT_KEEP:
			if (!detach)
				return runtime_usage(verb, "unknown option --keep");
			o->keep = true;
			break;
		case OPT_NO_SUBREAPER:
			break;
		default:
			return runtime_usage(verb, "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	return runtime_one_id(verb, argc, argv, &o->id);
}

int cmd_create(struct globals *g, int argc, char **argv)
{
	struct container_opts o;
	if (create_parse("create", g, argc, argv, &o, NULL))
		return 1;
	struct gr_error err = { 0 };
	if (container_create(&o, &err) < 0)
		return runtime_fail(&err);
	return 0;
}
