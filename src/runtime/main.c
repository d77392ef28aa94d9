/* gureum-runtime entry point: global flags, then one verb. */
#include "runtime.h"
#include "common/log.h"
#include "container/sealed_exe.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef GUREUM_VERSION
#define GUREUM_VERSION "0.1.0"
#endif

static const struct {
	const char *name;
	int (*fn)(struct globals *, int, char **);
	const char *help;
} verbs[] = {
	{ "create", cmd_create, "create a container (it waits for start)" },
	{ "start", cmd_start, "run the user process of a created container" },
	{ "state", cmd_state, "print the state of a container as JSON" },
	{ "kill", cmd_kill, "send a signal to a container's init (or all its processes)" },
	{ "delete", cmd_delete, "delete a container and everything it held" },
	{ "run", cmd_run, "create and start a container" },
	{ "exec", cmd_exec, "run a new process inside a container" },
	{ "list", cmd_list, "list containers" },
	{ "ps", cmd_ps, "list the processes of a container" },
	{ "pause", cmd_pause, "freeze every process of a container" },
	{ "resume", cmd_resume, "thaw a paused container" },
	{ "update", cmd_update, "change the resource limits of a container" },
	{ "spec", cmd_spec, "write a default config.json" },
	{ "features", cmd_features, "print the features this runtime supports (JSON)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: gureum-runtime [global options] COMMAND [options] ...\n\n"
		   "An OCI runtime (runtime-spec 1.0 to 1.2), compatible with runc and crun.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].help);
	fprintf(f, "\nGlobal options:\n"
		   "  --root DIR                  state directory (default " STATE_DEFAULT_ROOT ")\n"
		   "  --log FILE                  also write log messages to FILE\n"
		   "  --log-format text|json      format of the --log file (default text)\n"
		   "  --debug                     log debug messages\n"
		   "  --cgroup-manager cgroupfs|systemd|disabled\n"
		   "                              how cgroups are managed (default cgroupfs; systemd is not supported)\n"
		   "  --systemd-cgroup            same as --cgroup-manager systemd (not supported)\n"
		   "  --version, --help\n");
}

int main(int argc, char **argv)
{
	struct globals g = { .root = STATE_DEFAULT_ROOT, .cgroup_manager = CGROUP_MANAGER_CGROUPFS };
	const char *log_path = NULL;
	enum gr_log_format log_format = GR_LOG_TEXT;
	bool systemd = false;
	enum { OPT_ROOT = 256, OPT_LOG, OPT_LOG_FORMAT, OPT_DEBUG, OPT_SYSTEMD, OPT_CGMGR, OPT_ROOTLESS };
	static const struct option opts[] = {
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
		{ "debug", no_argument, NULL, OPT_DEBUG },
		{ "systemd-cgroup", no_argument, NULL, OPT_SYSTEMD },
		{ "cgroup-manager", required_argument, NULL, OPT_CGMGR },
		{ "rootless", required_argument, NULL, OPT_ROOTLESS },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	/* Hooks may exit without reading their stdin; such writes just fail. */
	signal(SIGPIPE, SIG_IGN);

	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT: g.root = optarg; break;
		case OPT_LOG: log_path = optarg; break;
		case OPT_LOG_FORMAT:
			if (gr_log_format_parse(optarg, &log_format) < 0)
				return runtime_usage("gureum-runtime", "--log-format: expected text or json, got \"%s\"", optarg);
			break;
		case OPT_DEBUG: g.debug = true; break;
		case OPT_SYSTEMD: systemd = true; break;
		case OPT_CGMGR:
			if (strcmp(optarg, "cgroupfs") == 0)
				g.cgroup_manager = CGROUP_MANAGER_CGROUPFS;
			else if (strcmp(optarg, "disabled") == 0)
				g.cgroup_manager = CGROUP_MANAGER_DISABLED;
			else if (strcmp(optarg, "systemd") == 0)
				systemd = true;
			else
				return runtime_usage("gureum-runtime",
						     "--cgroup-manager: expected cgroupfs, systemd or disabled, got \"%s\"", optarg);
			break;
		case OPT_ROOTLESS:
			if (strcmp(optarg, "true") == 0)
				return runtime_usage("gureum-runtime", "--rootless true: rootless containers are not supported yet");
			break;
		case 'v':
			printf("gureum-runtime version " GUREUM_VERSION "\nspec: 1.2.0\n");
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return runtime_usage("gureum-runtime", "unknown global option \"%s\"", argv[optind - 1]);
		}
	}
	struct gr_error err = { 0 };
	if (gr_log_open(log_path, log_format, g.debug, &err) < 0) {
		fprintf(stderr, "error: %s\n", err.msg);
		return 1;
	}
	if (systemd)
		return runtime_usage("gureum-runtime",
				     "the systemd cgroup manager is not supported; use --cgroup-manager cgroupfs "
				     "(or disabled)");
	if (optind >= argc) {
		usage(stderr);
		return 1;
	}
	const char *verb = argv[optind];
	/* Verbs that start processes inside a container never let them see
	 * this binary's file (see container/sealed_exe.h). */
	if ((strcmp(verb, "create") == 0 || strcmp(verb, "run") == 0 || strcmp(verb, "exec") == 0) &&
	    sealed_exe_reexec("gureum-runtime", argv, &err) < 0)
		return runtime_fail(&err);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verbs[i].name, verb) == 0) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;
			optind = 0; /* reset getopt for the verb (0 also re-reads "+") */
			return verbs[i].fn(&g, sub_argc, sub_argv);
		}
	return runtime_usage("gureum-runtime", "unknown command \"%s\" (see --help)", verb);
}
