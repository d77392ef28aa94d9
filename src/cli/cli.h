/* The gureum CLI: shared state of one invocation and the entry point of each
 * command group (one file each: launch.c, list.c, info.c, state.c, delete.c,
 * exec.c, logs.c, console.c, monitor.c, query.c). A command returns the
 * process's exit status: 0, CLI_EXIT_FAIL after printing one line to stderr,
 * CLI_EXIT_USAGE for a bad command line, or (exec) the command's own. */
#ifndef GR_CLI_CLI_H
#define GR_CLI_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include "cli/client.h"
#include "cli/format.h"
#include "common/error.h"

#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

struct cli {
	struct gr_client_opts opts;
	struct gr_client *client;   /* made on first use */
	const char *command;        /* "launch", ... */
};

struct cli_command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
	const char *synopsis;       /* "IMAGE [NAME] [-c KEY=VALUE]... [-- COMMAND...]" */
	const char *summary;        /* one line */
	const char *help;           /* the options, after the synopsis */
};

/* The client, connected on first use. NULL after printing the error. */
struct gr_client *cli_client(struct cli *cli);

/* "gureum: MESSAGE" on stderr; returns CLI_EXIT_FAIL. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail(const struct gr_error *err);
/* "gureum COMMAND: MESSAGE (see gureum COMMAND --help)"; returns CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the command's help on stdout; returns 0. */
int cli_help(const struct cli *cli);

/* getopt_long over the command's options plus the global ones (--socket,
 * --remote, --token, --accept-certificate, --server-cert, --debug), which it
 * handles itself, and --help/-h, for which it returns 'h'. Returns the next
 * option, -1 at the end (argv[optind] is the first operand), or '?' after
 * printing a usage error. Options come before "--"; after it everything
 * is an operand. */
int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
	       const struct option *longopts);

/* The index of the first "--" in argv (argc when there is none). Commands
 * that take a command line (launch, exec) run cli_getopt over argv[0..that)
 * only, because getopt's reordering hides where "--" was. */
int cli_dashdash(int argc, char **argv);
/* argv[from..to) as a JSON array of strings; NULL after printing a usage
 * error (an argument that is not UTF-8). */
json_t *cli_argv_json(const struct cli *cli, char **argv, int from, int to);

/* The path of an instance ("/1.0/instances/NAME" + suffix), with NAME
 * percent-encoded. NULL when out of memory. */
char *cli_instance_path(const char *name, const char *suffix);

/* A failure about one instance: the daemon's message, prefixed with
 * "NAME: " unless it names the instance already. */
void cli_instance_error(const char *name, const struct gr_error *err);
/* The start of every list command (list.c). cli_list_options parses
 * [-f|--format FORMAT] and --help: true when the caller goes on (optind at
 * the positional arguments), false with *code set when it is done.
 * cli_list_fetch GETs path (a list expected; errors name instance when not
 * NULL) and prints it itself when fmt is json or yaml: -1 with *list set when
 * the caller prints the rows (table, csv), else the exit code. */
bool cli_list_options(struct cli *cli, int argc, char **argv, enum cli_format *fmt, int *code);
int cli_list_fetch(struct cli *cli, const char *path, const char *instance, enum cli_format fmt, json_t **list);
/* METHOD cli_instance_path(NAME, suffix) with body for each of names[0..n),
 * all first, then waits for each operation (state.c). Every failure is
 * reported through cli_instance_error; returns 0 or CLI_EXIT_FAIL if any. */
int cli_instances_run(struct gr_client *c, const char *method, const char *suffix, const json_t *body,
		      char **names, int n);

/* Writes all of buf to fd (retrying short writes and EINTR). 0 or -errno. */
int cli_write_all(int fd, const void *buf, size_t len);

/* Commands. */
int cmd_launch(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_info(struct cli *cli, int argc, char **argv);
int cmd_state(struct cli *cli, int argc, char **argv);     /* start stop restart pause resume */
int cmd_delete(struct cli *cli, int argc, char **argv);
int cmd_exec(struct cli *cli, int argc, char **argv);
int cmd_logs(struct cli *cli, int argc, char **argv);
int cmd_console(struct cli *cli, int argc, char **argv);
int cmd_monitor(struct cli *cli, int argc, char **argv);
int cmd_query(struct cli *cli, int argc, char **argv);
int cmd_volume(struct cli *cli, int argc, char **argv);   /* create list info delete attach detach */
int cmd_snapshot(struct cli *cli, int argc, char **argv); /* create list restore delete */
int cmd_network(struct cli *cli, int argc, char **argv);  /* list create info delete forward */
int cmd_image(struct cli *cli, int argc, char **argv);    /* import build export list info delete alias */
int cmd_file(struct cli *cli, int argc, char **argv);     /* push pull */

/* Terminal helpers (term.c): raw mode that is restored on every exit path
 * (normal return, error, fatal signal, exit()). */
int cli_term_raw(int fd, struct gr_error *err);
void cli_term_restore(void);
/* Width and height of the terminal on fd; 0 when unknown. */
void cli_term_size(int fd, unsigned *width, unsigned *height);
/* Blocks SIGINT, SIGTERM, SIGHUP and the further signals given (the list
 * ends with 0), the old mask saved in *old, and returns a signalfd for them
 * (non-blocking, close-on-exec); -1 after restoring the mask and printing
 * the error. The caller restores *old when its session ends. */
int cli_signalfd(sigset_t *old, ...);

#endif
