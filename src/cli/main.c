/* gureum: the command-line client of gureumd. Global options, the command
 * table, help and errors; each command group lives in its own file. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

#ifndef GUREUM_VERSION
#define GUREUM_VERSION "unknown"
#endif

static const char state_help[] =
	"  --timeout N   stop: seconds to wait after SIGTERM before SIGKILL (default: the daemon's, 30)\n"
	"  -f, --force   stop: SIGKILL at once\n";

static const struct cli_command commands[] = {
	{ "launch", cmd_launch, "IMAGE [NAME] [--vm] [-c KEY=VALUE]... [-- COMMAND [ARG]...]",
	  "create an instance from an image and start it",
	  "  -c, --config KEY=VALUE  instance config (limits.cpu, limits.memory, limits.processes,\n"
	  "                          environment.NAME, boot.restart, network=NAME|none,\n"
	  "                          ipv4.address); repeatable\n"
	  "  -e, --empty             create it without starting it\n"
	  "      --vm                a virtual machine (its own kernel) instead of a container;\n"
	  "                          VM keys: limits.cpu (vCPUs), limits.memory, root.size,\n"
	  "                          vm.engine=qemu|gureum-vmm, vm.kernel=PATH\n"
	  "Without NAME a name is made up. Prints the instance's name.\n" },
	{ "list", cmd_list, "[--format table|json|yaml|csv]",
	  "list the instances",
	  "  -f, --format FORMAT  table (default), json, yaml or csv (no header)\n" },
	{ "info", cmd_info, "NAME", "show an instance's state and resource use", "" },
	{ "start", cmd_state, "NAME...", "start instances", "" },
	{ "stop", cmd_state, "[--timeout N] [--force] NAME...", "stop instances", state_help },
	{ "restart", cmd_state, "[--timeout N] [--force] NAME...", "restart instances", state_help },
	{ "pause", cmd_state, "NAME...", "freeze instances", "" },
	{ "resume", cmd_state, "NAME...", "thaw paused instances", "" },
	{ "delete", cmd_delete, "[--force] NAME...", "delete instances",
	  "  -f, --force  stop a running instance first\n" },
	{ "exec", cmd_exec, "NAME [-t|-T] [--env K=V]... [--cwd DIR] [--user UID[:GID]] -- COMMAND [ARG]...",
	  "run a command in an instance; its exit code is gureum's",
	  "  -t, --tty        a terminal (default when stdin and stdout are terminals)\n"
	  "  -T, --no-tty     no terminal: stdout and stderr stay separate\n"
	  "      --env K=V    an environment variable (repeatable)\n"
	  "      --cwd DIR    working directory\n"
	  "      --user UID[:GID]  user and group ids\n"
	  "stdin is relayed; its end is passed on. A signal that stops gureum (INT, TERM, HUP,\n"
	  "QUIT) is forwarded to the command without a terminal.\n" },
	{ "file", cmd_file, "push|pull ...", "copy a file into or out of a running instance",
	  "  push [--mode MODE] [--uid N] [--gid N] LOCAL NAME/PATH\n"
	  "                          LOCAL (- for stdin) becomes PATH in instance NAME, replaced\n"
	  "                          atomically; PATH ending in / gets LOCAL's name; --mode (octal)\n"
	  "                          defaults to LOCAL's (0644 for stdin), --uid and --gid to 0\n"
	  "  pull NAME/PATH LOCAL    PATH of instance NAME into LOCAL (- for stdout; a directory\n"
	  "                          gets PATH's name); a new file gets PATH's permissions\n"
	  "Containers and VMs alike (a VM through its guest agent); files up to 64 MiB.\n" },
	{ "logs", cmd_logs, "[-f] NAME", "print an instance's console log",
	  "  -f, --follow  keep printing what the instance writes (Ctrl-C to stop)\n" },
	{ "console", cmd_console, "NAME", "attach to an instance's console",
	  "Detach with Ctrl-a q; Ctrl-a Ctrl-a sends a Ctrl-a.\n" },
	{ "monitor", cmd_monitor, "[--type lifecycle,operation]", "print events, one JSON object per line",
	  "  --type TYPES  a comma-separated list of lifecycle, operation (default: all)\n" },
	{ "image", cmd_image, "import|build|export|list|info|delete|alias ...", "manage images",
	  "  import FILE|DIR [--alias NAME]...   an OCI image layout (directory or tarball), a\n"
	  "                                      docker-archive (podman save) or a rootfs tarball\n"
	  "                                      (gzip, xz, zstd); prints the fingerprint\n"
	  "  build busybox|debian/12             busybox from busybox-static; debian/12 with\n"
	  "                                      debootstrap from the host's Debian mirror\n"
	  "  export NAME FILE                    an OCI image layout tarball (podman load -i FILE)\n"
	  "  list [--format table|json|yaml|csv]\n"
	  "  info NAME\n"
	  "  delete NAME...                      refused while instances use it\n"
	  "  alias add NAME TARGET               creates or moves an alias\n"
	  "  alias delete NAME | alias list\n"
	  "NAME: an alias (busybox, debian/12), a fingerprint or a unique prefix of one.\n"
	  "Progress goes to stderr while an import, build or export runs.\n" },
	{ "volume", cmd_volume, "create|list|info|delete|attach|detach ...", "manage volumes",
	  "  create NAME [--type dir|block] [--size SIZE]   a directory volume (default), or a sparse\n"
	  "                                                 block volume of SIZE (10GiB...) for VMs\n"
	  "  list [--format table|json|yaml|csv]\n"
	  "  info NAME\n"
	  "  delete NAME...                                 refused while attached\n"
	  "  attach VOLUME INSTANCE PATH [--readonly]       mounted at PATH from the instance's next start\n"
	  "  detach VOLUME INSTANCE\n"
	  "Attach and detach need the instance stopped.\n" },
	{ "snapshot", cmd_snapshot, "create|list|restore|delete INSTANCE [NAME]", "snapshot an instance's files",
	  "  create INSTANCE [NAME]   running instances are frozen for the copy; prints the name\n"
	  "  list INSTANCE [--format table|json|yaml|csv]\n"
	  "  restore INSTANCE NAME    brings back exactly that file state; the instance must be stopped\n"
	  "  delete INSTANCE NAME...\n" },
	{ "network", cmd_network, "list|create|info|delete|forward ...", "manage networks and port forwards",
	  "  list [--format table|json|yaml|csv]\n"
	  "  create NAME [--subnet CIDR] [--nat] [--isolated]\n"
	  "                          a bridge with DHCP and DNS; without --subnet a free one is chosen;\n"
	  "                          --nat: instances reach outside through the host's address;\n"
	  "                          --isolated: no traffic with other gureum networks\n"
	  "  info NAME\n"
	  "  delete NAME             refused while instances use it\n"
	  "  forward add NETWORK HOST_PORT INSTANCE:PORT [tcp|udp]\n"
	  "                          the host's HOST_PORT (tcp by default) to the instance's PORT\n"
	  "  forward list NETWORK [--format table|json|yaml|csv]\n"
	  "  forward delete NETWORK HOST_PORT [tcp|udp]\n"
	  "Instances join a network at creation: -c network=NAME (default: default; none: no\n"
	  "network), -c ipv4.address=A.B.C.D for a fixed address.\n" },
	{ "query", cmd_query, "[-X METHOD] PATH [BODY]", "send a raw API request",
	  "  -X, --request METHOD  GET (default; POST with a BODY), POST, PUT, PATCH, DELETE\n"
	  "      --raw             print the whole envelope instead of its metadata\n"
	  "      --wait            wait for an async operation and print it\n"
	  "BODY is JSON, or - to read it from stdin. `gureum query METHOD PATH [BODY]` works too.\n"
	  "Exits 1 when gureumd answers with an error.\n" },
};

static const struct cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static const char global_help[] =
	"Global options (before or after the command):\n"
	"  --socket PATH               gureumd's unix socket (env GUREUM_SOCKET, default " GR_DEFAULT_SOCKET ")\n"
	"  --remote https://HOST:PORT  a gureumd over TLS instead (env GUREUM_REMOTE)\n"
	"  --token TOKEN               bearer token for --remote (env GUREUM_TOKEN)\n"
	"  --accept-certificate SHA256 the remote's certificate fingerprint (env GUREUM_ACCEPT_CERTIFICATE)\n"
	"  --server-cert FILE          or: the remote's certificate (PEM) (env GUREUM_SERVER_CERT)\n"
	"  --debug                     libwebsockets' log on stderr\n"
	"  -h, --help                  help (of a command after it)\n"
	"      --version               the version\n";

static void print_usage(FILE *out)
{
	fprintf(out, "Usage: gureum [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n%s\nSee gureum COMMAND --help and man gureum.\n", global_help);
}

int cli_help(const struct cli *cli)
{
	const struct cli_command *c = find_command(cli->command);
	if (!c) {
		print_usage(stdout);
		return 0;
	}
	printf("Usage: gureum %s %s\n\n%s.\n", c->name, c->synopsis, c->summary);
	if (c->help && *c->help)
		printf("\n%s", c->help);
	printf("\n%s", global_help);
	return 0;
}

int cli_error(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("gureum: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
}

int cli_fail(const struct gr_error *err)
{
	return cli_error("%s", err->msg[0] ? err->msg : strerror(err->code ? err->code : EIO));
}

int cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "gureum %s: ", cli->command ? cli->command : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see gureum %s%s--help)\n", cli->command ? cli->command : "", cli->command ? " " : "");
	return CLI_EXIT_USAGE;
}

static void apply_env(struct cli *cli);

struct gr_client *cli_client(struct cli *cli)
{
	if (cli->client)
		return cli->client;
	struct gr_error err = { 0 };
	apply_env(cli);
	if (gr_client_new(&cli->opts, &cli->client, &err) < 0) {
		cli_fail(&err);
		cli->client = NULL;
	}
	return cli->client;
}

char *cli_instance_path(const char *name, const char *suffix)
{
	gr_autofree char *esc = cli_url_escape(name);
	char *path = NULL;
	if (!esc || asprintf(&path, "/1.0/instances/%s%s", esc, suffix ? suffix : "") < 0)
		return NULL;
	return path;
}

int cli_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cli_dashdash(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0)
			return i;
	return argc;
}

json_t *cli_argv_json(const struct cli *cli, char **argv, int from, int to)
{
	json_t *a = json_array();
	if (!a) {
		cli_error("out of memory");
		return NULL;
	}
	for (int i = from; i < to; i++) {
		if (json_array_append_new(a, json_string(argv[i])) < 0) {
			json_decref(a);
			cli_usage_error(cli, "the argument \"%s\" is not valid UTF-8", argv[i]);
			return NULL;
		}
	}
	return a;
}

enum {
	OPT_SOCKET = 0x1000, OPT_REMOTE, OPT_TOKEN, OPT_ACCEPT_CERT, OPT_SERVER_CERT, OPT_DEBUG,
	OPT_HELP, OPT_VERSION,
};

static const struct option global_options[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "remote", required_argument, NULL, OPT_REMOTE },
	{ "token", required_argument, NULL, OPT_TOKEN },
	{ "accept-certificate", required_argument, NULL, OPT_ACCEPT_CERT },
	{ "server-cert", required_argument, NULL, OPT_SERVER_CERT },
	{ "debug", no_argument, NULL, OPT_DEBUG },
	{ "help", no_argument, NULL, OPT_HELP },
};
#define NGLOBAL (sizeof(global_options) / sizeof(global_options[0]))

static bool socket_given;

/* The environment fills what the command line did not give; --socket on
 * the command line wins over GUREUM_REMOTE. */
static void apply_env(struct cli *cli)
{
	const char *v;
	if (!cli->opts.remote && !socket_given && (v = getenv("GUREUM_REMOTE")) && *v)
		cli->opts.remote = v;
	if (!cli->opts.socket_path && (v = getenv("GUREUM_SOCKET")) && *v)
		cli->opts.socket_path = v;
	if (!cli->opts.token && (v = getenv("GUREUM_TOKEN")) && *v)
		cli->opts.token = v;
	if (!cli->opts.fingerprint && !cli->opts.server_cert) {
		if ((v = getenv("GUREUM_ACCEPT_CERTIFICATE")) && *v)
			cli->opts.fingerprint = v;
		else if ((v = getenv("GUREUM_SERVER_CERT")) && *v)
			cli->opts.server_cert = v;
	}
}

static void apply_global(struct cli *cli, int opt, const char *arg)
{
	switch (opt) {
	case OPT_SOCKET: cli->opts.socket_path = arg; socket_given = true; break;
	case OPT_REMOTE: cli->opts.remote = arg; break;
	case OPT_TOKEN: cli->opts.token = arg; break;
	case OPT_ACCEPT_CERT: cli->opts.fingerprint = arg; break;
	case OPT_SERVER_CERT: cli->opts.server_cert = arg; break;
	case OPT_DEBUG: cli->opts.debug = true; break;
	}
}

int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
	       const struct option *longopts)
{
	struct option all[32];
	size_t n = 0;
	for (const struct option *o = longopts; o && o->name && n < 32 - NGLOBAL - 1; o++)
		all[n++] = *o;
	for (size_t i = 0; i < NGLOBAL; i++)
		all[n++] = global_options[i];
	all[n] = (struct option){ 0 };
	char shorts[64];
	/* Leading ':' reports a missing argument as ':'; 'h' is help. */
	snprintf(shorts, sizeof(shorts), ":%sh", shortopts ? shortopts : "");
	opterr = 0;
	for (;;) {
		int prev = optind;
		int opt = getopt_long(argc, argv, shorts, all, NULL);
		if (opt >= OPT_SOCKET && opt < OPT_HELP) {
			apply_global(cli, opt, optarg);
			continue;
		}
		if (opt == OPT_HELP || opt == 'h')
			return 'h';
		if (opt == '?') {
			if (optopt)
				cli_usage_error(cli, "unknown option -%c", optopt);
			else
				cli_usage_error(cli, "unknown option %s", argv[optind - 1 >= prev ? optind - 1 : prev]);
			return '?';
		}
		if (opt == ':') {
			if (optopt && optopt < 0x100)
				cli_usage_error(cli, "option -%c needs a value", optopt);
			else
				cli_usage_error(cli, "option %s needs a value", argv[optind - 1]);
			return '?';
		}
		return opt;
	}
}

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	signal(SIGPIPE, SIG_IGN);

	/* Global options before the command; stop at the first operand. */
	static const struct option pre[] = {
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	struct option all[NGLOBAL + 2];
	size_t n = 0;
	for (size_t i = 0; i < NGLOBAL; i++)
		all[n++] = global_options[i];
	all[n++] = pre[0];
	all[n] = (struct option){ 0 };
	opterr = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, "+:h", all, NULL)) != -1) {
		if (opt == OPT_VERSION) {
			printf("gureum %s\n", GUREUM_VERSION);
			return 0;
		}
		if (opt == OPT_HELP || opt == 'h') {
			print_usage(stdout);
			return 0;
		}
		if (opt == '?') {
			fprintf(stderr, "gureum: unknown option %s (see gureum --help)\n", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
		if (opt == ':') {
			fprintf(stderr, "gureum: option %s needs a value (see gureum --help)\n", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
		apply_global(&cli, opt, optarg);
	}
	if (optind >= argc) {
		print_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *name = argv[optind];
	const struct cli_command *c = find_command(name);
	if (!c) {
		if (strcmp(name, "help") == 0) {
			if (optind + 1 < argc && find_command(argv[optind + 1])) {
				cli.command = argv[optind + 1];
				return cli_help(&cli);
			}
			print_usage(stdout);
			return 0;
		}
		fprintf(stderr, "gureum: unknown command \"%s\" (see gureum --help)\n", name);
		return CLI_EXIT_USAGE;
	}
	cli.command = c->name;

	/* The command parses from its own name on (argv[0] = the command). */
	int cargc = argc - optind;
	char **cargv = argv + optind;
	optind = 0; /* full re-initialization of getopt for the command */

	int status = c->run(&cli, cargc, cargv);

	gr_client_free(cli.client);
	if (fflush(stdout) != 0 && status == 0)
		status = cli_error("writing to stdout: %s", strerror(errno));
	return status;
}
