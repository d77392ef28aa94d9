/* gureum-supervisor's engine workload (engine.c): a VM engine process such
 * as QEMU run under the same supervision as a container (supervisor.h).
 *
 *   gureum-supervisor run-engine --state-dir DIR --run-dir DIR --name NAME
 *       [--restart POLICY] [--ready-fd N] [--daemonize] [--qmp PATH]
 *       [--log-max BYTES] [--log-files N] -- ENGINE ARGS...
 *
 * ENGINE is an absolute path, executed directly (no shell, no PATH search)
 * with ARGS, the supervisor's environment and / as its directory. Each run
 * gets a new pty, set raw (no echo, no line editing, no signal keys, no
 * output translation: the guest's own terminal does those; QEMU keeps these
 * settings), whose slave is the engine's stdin, stdout and stderr and its
 * controlling terminal, in a session and process group of its own; the
 * supervisor holds the master (output to logs/console.log and the newest
 * console.sock client, client input to the engine: QEMU's `-serial stdio`
 * or `-chardev stdio`). The engine gets PR_SET_PDEATHSIG SIGKILL: it dies
 * with its supervisor. Ready ("ok" on --ready-fd) means the exec succeeded;
 * an exec failure is "error: cannot run the engine PATH: REASON".
 *
 * A stop (SIGTERM to the supervisor) with --qmp: connect to QEMU's QMP
 * socket, {"execute":"qmp_capabilities"}, {"execute":"system_powerdown"}
 * (the ACPI power button); without --qmp, or when the QMP exchange fails
 * (logged), SIGTERM to the engine's process group. Either way SIGKILL to the
 * process group after stop.json's timeout. When the engine exits, whatever
 * is left in its process group is killed. The exit code recorded in
 * exit.json is the engine's. */
#ifndef GR_SUPERVISOR_ENGINE_H
#define GR_SUPERVISOR_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"
#include "daemon/supervisor/supervisor.h"

/* run-engine's command line: argv[0] is "run-engine", then the options
 * ("--flag VALUE" or "--flag=VALUE"), "--" and the engine's argv. Fills o
 * (pointing into argv) and *daemonize. -EINVAL with a message naming the
 * option and the value when it is refused. --ready-fd must name an open
 * descriptor >= 3. */
int supervisor_engine_args(int argc, char **argv, struct supervisor_opts *o, bool *daemonize,
			   struct gr_error *err);

/* ---- QMP (QEMU Machine Protocol): one command on a new connection ----
 *
 * The server greets ({"QMP":{...}}); the client sends
 * {"execute":"qmp_capabilities"}, the server answers {"return":{}}; then the
 * command and its {"return":...} or {"error":{"class","desc"}}. Messages are
 * JSON objects, one per line; {"event":...} messages may come at any time
 * and are skipped. The client never blocks: the supervisor's loop calls
 * qmp_client_io when the descriptor is ready. */

#define QMP_MESSAGE_MAX 16384   /* a longer line ends the exchange */

enum qmp_state { QMP_GREETING, QMP_CAPABILITIES, QMP_COMMAND, QMP_DONE, QMP_FAILED };

struct qmp_client {
	int fd;                     /* owned: closed by qmp_client_close */
	enum qmp_state state;
	char command[64];
	char in[QMP_MESSAGE_MAX];
	size_t in_len;
	char out[128];
	size_t out_len, out_off;
	short events;               /* what qmp_client_io waits for next (0: over) */
	struct gr_error err;        /* why, when QMP_FAILED */
};

/* Connects (non-blocking) to the unix socket at path; a path longer than
 * sun_path is reached through its directory. */
int qmp_connect(const char *path, int *fd, struct gr_error *err);
/* Starts an exchange on fd (taken over) that ends with command (a QMP
 * command without arguments, e.g. "system_powerdown"). */
void qmp_client_init(struct qmp_client *q, int fd, const char *command);
/* One message from the server (a line without its end): advances the
 * state, queueing what to send next. Returns the new state. */
enum qmp_state qmp_client_message(struct qmp_client *q, const char *msg, size_t n);
/* Reads and writes what fd allows given its poll revents (0: just try to
 * send); returns the poll events to wait for next (also kept in q->events),
 * 0 once the exchange is over (QMP_DONE, or QMP_FAILED with q->err set). */
short qmp_client_io(struct qmp_client *q, short revents);
void qmp_client_close(struct qmp_client *q);
/* The same, blocking, for the VM driver's own commands ("stop", "cont"):
 * connects to path, runs command, waits at most timeout_ms. */
int qmp_execute(const char *path, const char *command, int timeout_ms, struct gr_error *err);

#endif
