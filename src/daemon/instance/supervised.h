/* What the drivers whose workloads run under gureum-supervisor share (the
 * container driver, container.c, and the VM driver, vm.c): starting the
 * supervisor and reading its report, stopping it, its console socket and
 * log, and small process helpers. The supervisor's files are in
 * supervisor/supervisor.h (struct instance_paths). */
#ifndef GR_DAEMON_INSTANCE_SUPERVISED_H
#define GR_DAEMON_INSTANCE_SUPERVISED_H

#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/error.h"
#include "daemon/instance/driver.h"
#include "daemon/supervisor/supervisor.h"

#define SUPERVISED_START_TIMEOUT_MS 30000   /* for the supervisor's report */
#define SUPERVISED_STOP_GRACE_MS 10000      /* beyond the stop timeout, before the driver kills it itself */

int64_t supervised_now_ms(void);
void supervised_sleep_ms(int ms);
/* A descriptor moved to >= 10 (close-on-exec), so that posix_spawn's dup2
 * onto 0..3 always clears close-on-exec on the copy. */
int supervised_fd_high(int fd);
/* posix_spawn with a clean signal state (gureumd's threads block signals). */
int supervised_spawn(pid_t *pid, const char *path, posix_spawn_file_actions_t *fa, char **argv, bool setsid_,
		     struct gr_error *err);
/* ENV/gureum-supervisor, checked to be executable (out: PATH_MAX bytes). */
int supervised_binary(const struct driver_env *env, char *out, struct gr_error *err);

/* Runs `gureum-supervisor SUBCOMMAND --ready-fd 3 --daemonize ARGS...`
 * (args: the subcommand then its arguments, NULL-terminated) and waits for
 * its report: 0 once it runs
 * the workload, else the reason ("cannot start instance NAME: ..."). */
int supervised_launch(const struct driver_env *env, const char *name, char *const args[], struct gr_error *err);

/* The supervisor's stop: writes stop.json {"timeout"}, SIGTERMs it and waits
 * until it is gone (timeout, or 0 with force, plus a grace). 1 when it is
 * gone, 0 when it did not end in time (the caller kills the workload), 1
 * too when there was none (*had_none set). */
int supervised_stop(const struct instance_paths *p, const char *name, int timeout, bool force, bool *had_none,
		    struct gr_error *err);
/* Waits until the supervisor of p is gone or until (supervised_now_ms clock). */
bool supervised_wait_gone(const struct instance_paths *p, int64_t until);

/* Starts the exec helper `SUP SUBCOMMAND` ("exec" for containers, "vm-exec"
 * for VMs) with request (the exec request's JSON) and fills out: pipes, or
 * (tty) the pty master once the helper sends it (within pty_timeout_ms);
 * the helper's pid. */
int supervised_exec(const struct driver_env *env, const struct instance_paths *p, const char *sup,
		    const char *subcommand, const char *name, const char *request, bool tty, int pty_timeout_ms,
		    struct exec_session *out, struct gr_error *err);

/* A connection to RUN/instances/NAME/console.sock (-EBUSY when not running). */
int supervised_console(const struct instance_paths *p, const char *name, int *fd, struct gr_error *err);
/* STATE/instances/NAME/logs/console.log, malloc'd. */
int supervised_log_path(const struct instance_paths *p, char **path, struct gr_error *err);
/* The two above as driver operations (instance_driver.console, .log_path):
 * the same for every supervised instance type. */
int supervised_console_op(const struct driver_env *env, const struct instance_spec *spec, int *fd,
			  struct gr_error *err);
int supervised_log_path_op(const struct driver_env *env, const struct instance_spec *spec, char **path,
			   struct gr_error *err);
/* Fills st from the supervisor's liveness and exit.json: state RUNNING (or
 * STOPPED without a supervisor), exit code, reason, restarts. The caller
 * refines state (paused, starting). */
void supervised_status(const struct instance_paths *p, struct instance_status *st);
/* Fills st's cpu_ns and memory_bytes with the CPU time and resident memory
 * of the processes under the supervisor whose pid st->supervisor_pid is
 * (the engine and its helpers; a VM's memory is the guest RAM it touched),
 * read from /proc. Nothing running: zeros. */
void supervised_usage(struct instance_status *st);

#endif
