/* gureum-supervisor: one per running instance (see src/daemon/README.md):
 * a container, or a VM's engine process (engine.h). main.c is a thin
 * command line over this library, so
 * the pure parts (paths, restart policy and back-off, log rotation, exit.json)
 * are unit-tested and the container driver shares the paths and the exit.json
 * decoder.
 *
 * Files of instance NAME:
 *   STATE/instances/NAME/config.json   the OCI bundle's config (root.path "rootfs")
 *   STATE/instances/NAME/rootfs/       where the supervisor mounts the overlay
 *   STATE/instances/NAME/upper, work/  the overlay's writable layer
 *   STATE/instances/NAME/logs/console.log (+ .1, .2)
 *   RUN/containers/NAME/               the container library's state
 *   RUN/instances/NAME/supervisor.pid  "PID STARTTIME\n", write-locked (OFD lock) while it lives
 *   RUN/instances/NAME/console.sock    console attach (raw bytes both ways), with a pty
 *   RUN/instances/NAME/stop.json       {"timeout":SECONDS}: read on SIGTERM
 *   RUN/instances/NAME/exit.json       the last exit, written atomically after every exit
 * An engine (VM) instance uses only logs/, supervisor.pid, console.sock,
 * stop.json and exit.json of these. */
#ifndef GR_SUPERVISOR_H
#define GR_SUPERVISOR_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/error.h"

/* ---- paths ---- */

struct instance_paths {
	char bundle[PATH_MAX];      /* STATE/instances/NAME */
	char config[PATH_MAX];      /* bundle/config.json */
	char rootfs[PATH_MAX];      /* bundle/rootfs */
	char upper[PATH_MAX];       /* bundle/upper */
	char work[PATH_MAX];        /* bundle/work */
	char log_dir[PATH_MAX];     /* bundle/logs */
	char log[PATH_MAX];         /* bundle/logs/console.log */
	char containers[PATH_MAX];  /* RUN/containers (the container library's root) */
	char run[PATH_MAX];         /* RUN/instances/NAME */
	char pid_file[PATH_MAX];    /* run/supervisor.pid */
	char console_sock[PATH_MAX];/* run/console.sock */
	char stop_file[PATH_MAX];   /* run/stop.json */
	char exit_file[PATH_MAX];   /* run/exit.json */
};

/* Fills p; ENAMETOOLONG when a path does not fit, EINVAL for a name that is
 * not an instance name ([a-z0-9][a-z0-9-]{0,62}, no trailing '-'). */
int instance_paths_init(struct instance_paths *p, const char *state_dir, const char *run_dir, const char *name,
			struct gr_error *err);
/* Is name a valid instance name? */
bool instance_name_valid(const char *name);

/* ---- restart policy (boot.restart) and back-off ---- */

enum restart_mode { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };
struct restart_policy {
	enum restart_mode mode;
	unsigned max;               /* on-failure:N: at most N restarts; 0 = no limit */
};

#define RESTART_BACKOFF_MIN_MS 100u     /* first delay */
#define RESTART_BACKOFF_MAX_MS 10000u   /* doubling stops here */
#define RESTART_BACKOFF_RESET_MS 10000u /* a run this long resets the back-off */

/* "no", "on-failure", "on-failure:N" (1 <= N <= 1000000), "always"; errors
 * name the value and what is accepted. NULL or "" is "no". */
int restart_policy_parse(const char *s, struct restart_policy *p, struct gr_error *err);
/* Should an exit with exit_code (128+signal when killed) be followed by a
 * restart, given restarts_done so far? (A stop request never restarts: the
 * caller checks that.) */
bool restart_wanted(const struct restart_policy *p, int exit_code, unsigned restarts_done);
/* The delay before the next restart: *failures counts the consecutive runs
 * shorter than RESTART_BACKOFF_RESET_MS; a longer run resets it. Updates
 * *failures and returns 100 ms, 200 ms, 400 ms ... capped at 10 s. */
unsigned restart_backoff_next(unsigned *failures, uint64_t ran_ms);

/* ---- the log: console.log, rotated to .1 .. .(keep-1) ---- */

#define SUPERVISOR_LOG_MAX (1024u * 1024u) /* bytes per file */
#define SUPERVISOR_LOG_FILES 3u            /* console.log, .1, .2 */

struct rotlog {
	char path[PATH_MAX];
	int fd;
	uint64_t size, max_size;
	unsigned files;
};
/* Opens (appends to) path; the directory must exist. */
int rotlog_open(struct rotlog *l, const char *path, uint64_t max_size, unsigned files, struct gr_error *err);
/* Appends; no file grows beyond max_size (data is split across a rotation). */
int rotlog_write(struct rotlog *l, const void *buf, size_t n, struct gr_error *err);
void rotlog_close(struct rotlog *l);
/* A terminal's "\r\n" as "\n" (the log is text; the console keeps the raw
 * bytes). A '\r' at the end of in is held back in *pending_cr until the next
 * call shows what follows it. out needs room for n + 1 bytes; returns its length. */
size_t log_crlf_filter(const char *in, size_t n, char *out, bool *pending_cr);

/* ---- exit.json ---- */

struct exit_info {
	int exit_code;              /* exit code, 128 + signal when killed, -1 when it never ran */
	int signal;                 /* the killing signal, else 0 */
	char reason[192];           /* "exited with 3", "killed by SIGKILL", "stopped: ...", "failed to start: ..." */
	unsigned restarts;          /* restarts done by the policy since the supervisor started */
	bool stopped;               /* ended by a stop request */
	bool restarting;            /* the supervisor will restart it after a back-off */
	char exited_at[64];         /* RFC 3339 */
};

/* Fills code, signal and reason from a wait status; stopped prefixes "stopped: ". */
void exit_info_from_status(struct exit_info *e, int wstatus, bool stopped);
/* A start that failed: code -1, reason "failed to start: MSG". */
void exit_info_failed_start(struct exit_info *e, const char *msg);
json_t *exit_info_to_json(const struct exit_info *e);
int exit_info_from_json(const json_t *j, struct exit_info *e, struct gr_error *err);
int exit_info_write(const char *path, const struct exit_info *e, struct gr_error *err);
/* -ENOENT (err untouched) when there is no file. */
int exit_info_read(const char *path, struct exit_info *e, struct gr_error *err);

/* ---- supervisor.pid ---- */

/* Is a supervisor alive for these paths? *pid gets its pid (0 when none).
 * Alive means: the pid file is write-locked (the lock dies with the
 * supervisor) and, when the file holds a pid, that process has the recorded
 * start time. */
bool supervisor_alive(const struct instance_paths *p, pid_t *pid);

/* ---- running ---- */

struct supervisor_opts {
	const char *state_dir, *run_dir, *name;
	const char *lower;          /* image rootfs: overlay lowerdir; NULL: bundle/rootfs as it is */
	const char *image;          /* image fingerprint: its layers (image.json) are the lowerdirs
				     * (instead of lower) */
	struct restart_policy restart;
	int ready_fd;               /* gets "ok\n" once running, or "error: MESSAGE\n"; -1: none */
	uint64_t log_max;           /* 0: SUPERVISOR_LOG_MAX */
	unsigned log_files;         /* 0: SUPERVISOR_LOG_FILES */
	bool no_cgroups;            /* tests on hosts without cgroups */
	/* run-engine (engine.h): a VM engine process instead of a container;
	 * lower, image and no_cgroups are then unused. */
	char *const *engine_argv;   /* NULL-terminated, [0] an absolute path; NULL: a container */
	const char *qmp;            /* the engine's QMP socket: a stop sends system_powerdown through it
				     * (NULL: a stop sends SIGTERM) */
	const char *vmm_api;        /* or gureum-vmm's control API socket: a stop sends its "stop" action */
};

/* Runs the instance's workload (its container, or its engine when
 * engine_argv is set) until it ends without a restart or is stopped
 * (SIGTERM), then removes its state (a container's) and exits cleanly.
 * Returns 0, or a negative errno when the first start failed (reported
 * through ready_fd too). Installs signal handling for the process. */
int supervisor_run(const struct supervisor_opts *o, struct gr_error *err);

/* The exec helper: runs a process in the running container of NAME.
 * req (JSON): {"args":[...],"env":["K=V"...],"cwd":S,"uid":N,"gid":N,
 * "terminal":bool,"width":N,"height":N}; the process inherits stdio (or,
 * with a terminal, its pty master is sent to console_socket). Returns the
 * process's exit code (128 + signal), or a negative errno. */
int supervisor_exec(const char *containers_root, const char *name, const json_t *req,
		    const char *console_socket, struct gr_error *err);

#endif
