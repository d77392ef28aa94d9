/* gureum-supervisor: a thin command line over supervisor.h.
 *
 *   gureum-supervisor run --state-dir DIR --run-dir DIR --name NAME
 *                         [--lower DIR | --image FINGERPRINT] [--restart POLICY] [--ready-fd N] [--daemonize]
 *                         [--log-max BYTES] [--log-files N] [--no-cgroups]
 *   gureum-supervisor run-engine --state-dir DIR --run-dir DIR --name NAME
 *                         [--restart POLICY] [--ready-fd N] [--daemonize] [--qmp PATH | --vmm-api PATH]
 *                         [--log-max BYTES] [--log-files N] -- /ENGINE [ARGS...]
 *   gureum-supervisor exec --run-dir DIR --name NAME --request-fd N [--console-socket PATH]
 *   gureum-supervisor vm-exec --run-dir DIR --name NAME --request-fd N [--console-socket PATH]
 *
 * run supervises a container, run-engine a VM engine process (engine.h);
 * exec runs a command in a container, vm-exec in a VM through its guest
 * agent (vm_exec.h), both with the same request and descriptors.
 * All first re-execute themselves from a sealed copy (CVE-2019-5736 class)
 * and close every inherited descriptor they were not given. */
#include "daemon/supervisor/supervisor.h"
#include "daemon/supervisor/engine.h"
#include "daemon/supervisor/image.h"
#include "daemon/supervisor/vm_exec.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "container/sealed_exe.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXEC_REQUEST_MAX (4u << 20)   /* 4 MiB: the API's bodies are at most 1 MiB */

static int usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "gureum-supervisor: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage: gureum-supervisor run --state-dir DIR --run-dir DIR --name NAME [--lower DIR | --image FP] "
			"[--restart POLICY] [--ready-fd N] [--daemonize] [--log-max BYTES] [--log-files N] "
			"[--no-cgroups]\n"
			"       gureum-supervisor run-engine --state-dir DIR --run-dir DIR --name NAME [--restart POLICY] "
			"[--ready-fd N] [--daemonize] [--qmp PATH | --vmm-api PATH] [--log-max BYTES] [--log-files N] -- /ENGINE [ARGS...]\n"
			"       gureum-supervisor exec --run-dir DIR --name NAME --request-fd N "
			"[--console-socket PATH]\n"
			"       gureum-supervisor vm-exec --run-dir DIR --name NAME --request-fd N "
			"[--console-socket PATH]\n");
	return 2;
}

static int parse_fd(const char *s, int *out)
{
	uint64_t v;
	if (gr_parse_u64(s, &v) < 0 || v < 3 || v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

/* Closes every descriptor from 3 up, except keep (-1: none). */
static void close_inherited(int keep)
{
	if (keep < 3) {
		close_range(3, ~0u, 0);
		return;
	}
	if (keep > 3)
		close_range(3, (unsigned)keep - 1, 0);
	close_range((unsigned)keep + 1, ~0u, 0);
}

/* The end of run and run-engine: alone, in the background when asked. */
static int run_supervisor(const struct supervisor_opts *op, bool daemonize)
{
	struct supervisor_opts o = *op;
	struct gr_error err = { 0 };
	close_inherited(o.ready_fd);
	if (daemonize) {
		/* Not the starter's child: the starter waits for this fork's parent. */
		pid_t pid = fork();
		if (pid < 0) {
			perror("gureum-supervisor: fork");
			return 1;
		}
		if (pid > 0)
			_exit(0);
	}
	if (getsid(0) != getpid())
		(void)setsid();
	if (chdir("/") < 0)
		return 1;
	umask(022);
	if (supervisor_run(&o, &err) < 0) {
		fprintf(stderr, "gureum-supervisor: %s\n", err.msg);
		return 1;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	enum { O_STATE = 256, O_RUN, O_NAME, O_LOWER, O_RESTART, O_READY, O_DAEMON, O_LOGMAX, O_LOGFILES, O_NOCG, O_IMAGE };
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, O_STATE }, { "run-dir", required_argument, NULL, O_RUN },
		{ "name", required_argument, NULL, O_NAME }, { "lower", required_argument, NULL, O_LOWER },
		{ "restart", required_argument, NULL, O_RESTART }, { "ready-fd", required_argument, NULL, O_READY },
		{ "daemonize", no_argument, NULL, O_DAEMON }, { "log-max", required_argument, NULL, O_LOGMAX },
		{ "log-files", required_argument, NULL, O_LOGFILES }, { "no-cgroups", no_argument, NULL, O_NOCG },
		{ "image", required_argument, NULL, O_IMAGE }, { 0 },
	};
	struct supervisor_opts o = { .ready_fd = -1 };
	bool daemonize = false;
	struct gr_error err = { 0 };
	uint64_t v;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case O_STATE: o.state_dir = optarg; break;
		case O_RUN: o.run_dir = optarg; break;
		case O_NAME: o.name = optarg; break;
		case O_LOWER: o.lower = optarg; break;
		case O_IMAGE:
			if (!image_hex_valid(optarg))
				return usage("--image: \"%s\" is not an image fingerprint (64 hex digits)", optarg);
			o.image = optarg;
			break;
		case O_RESTART:
			if (restart_policy_parse(optarg, &o.restart, &err) < 0)
				return usage("%s", err.msg);
			break;
		case O_READY:
			if (parse_fd(optarg, &o.ready_fd) < 0 || fcntl(o.ready_fd, F_GETFD) < 0)
				return usage("--ready-fd: \"%s\" is not an open descriptor >= 3", optarg);
			break;
		case O_DAEMON: daemonize = true; break;
		case O_LOGMAX:
			if (gr_parse_u64(optarg, &v) < 0 || v < 4096 || v > (1ull << 40))
				return usage("--log-max: expected bytes from 4096, got \"%s\"", optarg);
			o.log_max = v;
			break;
		case O_LOGFILES:
			if (gr_parse_u64(optarg, &v) < 0 || v < 1 || v > 100)
				return usage("--log-files: expected 1 to 100, got \"%s\"", optarg);
			o.log_files = (unsigned)v;
			break;
		case O_NOCG: o.no_cgroups = true; break;
		default: return usage("run: unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage("run: unexpected argument \"%s\"", argv[optind]);
	if (!o.state_dir || !o.run_dir || !o.name)
		return usage("run: --state-dir, --run-dir and --name are required%s", "");
	if (!instance_name_valid(o.name))
		return usage("--name: \"%s\" is not an instance name ([a-z0-9][a-z0-9-]*, at most 63)", o.name);
	if (o.lower && o.image)
		return usage("run: --lower and --image exclude each other%s", "");
	return run_supervisor(&o, daemonize);
}

static int cmd_run_engine(int argc, char **argv)
{
	struct supervisor_opts o;
	bool daemonize = false;
	struct gr_error err = { 0 };
	if (supervisor_engine_args(argc, argv, &o, &daemonize, &err) < 0)
		return usage("%s", err.msg);
	return run_supervisor(&o, daemonize);
}

/* The options of exec and vm-exec, and the request read from --request-fd. */
struct exec_cmdline {
	const char *run_dir, *name, *console;
	json_t *req;
};

/* 0, or the exit status to return (usage: 2; a bad request: 126). */
static int exec_cmdline_parse(const char *what, int argc, char **argv, struct exec_cmdline *out)
{
	enum { O_RUN = 256, O_NAME, O_REQ, O_CONSOLE };
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, O_RUN }, { "name", required_argument, NULL, O_NAME },
		{ "request-fd", required_argument, NULL, O_REQ }, { "console-socket", required_argument, NULL, O_CONSOLE },
		{ 0 },
	};
	int req_fd = -1, c;
	*out = (struct exec_cmdline){ 0 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case O_RUN: out->run_dir = optarg; break;
		case O_NAME: out->name = optarg; break;
		case O_REQ:
			if (parse_fd(optarg, &req_fd) < 0 || fcntl(req_fd, F_GETFD) < 0)
				return usage("--request-fd: \"%s\" is not an open descriptor >= 3", optarg);
			break;
		case O_CONSOLE: out->console = optarg; break;
		default: {
			char m[128];
			snprintf(m, sizeof(m), "%s: unknown option \"%.64s\"", what, argv[optind - 1]);
			return usage("%s", m);
		}
		}
	}
	if (!out->run_dir || !out->name || req_fd < 0) {
		char m[128];
		snprintf(m, sizeof(m), "%s: --run-dir, --name and --request-fd are required", what);
		return usage("%s", m);
	}
	if (!instance_name_valid(out->name))
		return usage("--name: \"%s\" is not an instance name", out->name);
	close_inherited(req_fd);
	struct gr_error err = { 0 };
	/* The whole request (the API takes bodies up to 1 MiB, so a command or
	 * environment may be far larger than any fixed buffer), from offset 0:
	 * the daemon wrote it into a memfd whose offset is at its end. */
	gr_autofree char *text = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= EXEC_REQUEST_MAX) {
				fprintf(stderr, "gureum-supervisor: %s: the request is over %u bytes\n", what, EXEC_REQUEST_MAX);
				close(req_fd);
				return 126;
			}
			cap = cap ? cap * 2 : 65536;
			char *t = realloc(text, cap);
			if (!t) {
				fprintf(stderr, "gureum-supervisor: %s: out of memory\n", what);
				close(req_fd);
				return 126;
			}
			text = t;
		}
		ssize_t n = pread(req_fd, text + len, cap - 1 - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "gureum-supervisor: %s: cannot read the request: %s\n", what, strerror(errno));
			close(req_fd);
			return 126;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(req_fd);
	text[len] = '\0';
	if (strlen(out->run_dir) + 64 >= PATH_MAX) {
		fprintf(stderr, "gureum-supervisor: %s: --run-dir too long\n", what);
		return 126;
	}
	if (gr_json_load_string("exec request", text, &out->req, &err) < 0) {
		fprintf(stderr, "gureum-supervisor: %s\n", err.msg);
		return 126;
	}
	return 0;
}

static int cmd_exec(int argc, char **argv)
{
	struct exec_cmdline x;
	int r = exec_cmdline_parse("exec", argc, argv, &x);
	if (r != 0)
		return r;
	gr_autojson json_t *req = x.req;
	struct gr_error err = { 0 };
	char root[PATH_MAX];
	snprintf(root, sizeof(root), "%s/containers", x.run_dir);
	int code = supervisor_exec(root, x.name, req, x.console, &err);
	if (code < 0) {
		fprintf(stderr, "gureum-supervisor: exec: %s\n", err.msg);
		return err.code == ENOENT ? 127 : 126;
	}
	return code;
}

static int cmd_vm_exec(int argc, char **argv)
{
	struct exec_cmdline x;
	int r = exec_cmdline_parse("vm-exec", argc, argv, &x);
	if (r != 0)
		return r;
	gr_autojson json_t *req = x.req;
	struct gr_error err = { 0 };
	int code = supervisor_vm_exec(x.run_dir, x.name, req, x.console, &err);
	if (code < 0) {
		fprintf(stderr, "gureum-supervisor: vm-exec: %s\n", err.msg);
		return err.code == ENOENT ? 127 : 126;
	}
	return code;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage("a command is required (run, run-engine, exec or vm-exec)%s", "");
	struct gr_error err = { 0 };
	/* run and exec put processes into a container (run-engine too: one binary). */
	if (sealed_exe_reexec("gureum-supervisor", argv, &err) < 0) {
		fprintf(stderr, "gureum-supervisor: %s\n", err.msg);
		return 1;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "run-engine") == 0)
		return cmd_run_engine(argc - 1, argv + 1);
	if (strcmp(argv[1], "exec") == 0)
		return cmd_exec(argc - 1, argv + 1);
	if (strcmp(argv[1], "vm-exec") == 0)
		return cmd_vm_exec(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0) {
		usage("%s", "help");
		return 0;
	}
	return usage("unknown command \"%s\" (run, run-engine, exec or vm-exec)", argv[1]);
}
