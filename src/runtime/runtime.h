/* gureum-runtime: the OCI runtime command line (runc/crun compatible).
 * One thin file per verb over the container library (src/container). */
#ifndef GR_RUNTIME_H
#define GR_RUNTIME_H

#include <stdbool.h>
#include "common/error.h"
#include "container/container.h"

struct globals {
	const char *root;
	enum cgroup_manager cgroup_manager;
	bool debug;
};

/* Each verb gets argv starting at the verb's own name; returns the process
 * exit status. Errors are reported with runtime_fail(). */
int cmd_create(struct globals *g, int argc, char **argv);
int cmd_start(struct globals *g, int argc, char **argv);
int cmd_state(struct globals *g, int argc, char **argv);
int cmd_kill(struct globals *g, int argc, char **argv);
int cmd_delete(struct globals *g, int argc, char **argv);
int cmd_run(struct globals *g, int argc, char **argv);
int cmd_exec(struct globals *g, int argc, char **argv);
int cmd_list(struct globals *g, int argc, char **argv);
int cmd_ps(struct globals *g, int argc, char **argv);
int cmd_pause(struct globals *g, int argc, char **argv);
int cmd_resume(struct globals *g, int argc, char **argv);
int cmd_update(struct globals *g, int argc, char **argv);
int cmd_spec(struct globals *g, int argc, char **argv);
int cmd_features(struct globals *g, int argc, char **argv);

/* Logs the error (stderr and --log) and returns 1. */
int runtime_fail(const struct gr_error *err);
/* Logs a usage error ("VERB: MESSAGE") and returns 1. */
int runtime_usage(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The single container id argument after the options, or a usage error. */
int runtime_one_id(const char *verb, int argc, char **argv, const char **id);
/* Prints a JSON value (indented) to stdout. */
int runtime_print_json(json_t *j);
/* Parses a decimal int option value; usage error naming the option otherwise. */
int runtime_parse_int(const char *verb, const char *opt, const char *s, int min, int *out);

#endif
