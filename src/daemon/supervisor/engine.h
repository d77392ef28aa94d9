/* gureum-supervisor's engine workload (engine.c): a VM engine process such
 * as QEMU run under the same supervision as a container (supervisor.h).
 *
 *   gureum-supervisor run-engine --state-dir DIR --run-dir DIR --name NAME
 *       [--restart POLICY] [--ready-fd N] [--daemonize] [--qmp PATH | --vmm-api PATH]
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
 * A stop (SIGTERM to the supervisor) presses the guest's ACPI power button
 * through the engine's control socket: with --qmp, QEMU's QMP
 * ({"execute":"qmp_capabilities"}, {"execute":"system_powerdown"}); with
 * --vmm-api, gureum-vmm's control API (PUT /vm/actions {"action":"stop",
 * "timeout":T}, T the stop's timeout: gureum-vmm then forces the stop
 * itself, exit 6). Without either, or when the exchange fails (logged),
 * SIGTERM to the engine's process group. Either way SIGKILL to the process
 * group after stop.json's timeout. When the engine exits, whatever
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

/* ---- the engine's control socket: one command on a new connection ----
 *
 * Two transports behind one client (struct qmp_client, named after the
 * first), so that the supervisor's stop and the driver's pause and resume
 * have one code path whichever engine runs:
 *
 * QMP (QEMU Machine Protocol). The server greets ({"QMP":{...}}); the
 * client sends {"execute":"qmp_capabilities"}, the server answers
 * {"return":{}}; then the command and its {"return":...} or
 * {"error":{"class","desc"}}. Messages are JSON objects, one per line;
 * {"event":...} messages may come at any time and are skipped.
 *
 * gureum-vmm's control API (src/vmm/README.md, "Control API"): HTTP/1.1 on
 * a unix socket. The client sends PUT /vm/actions {"action":A} (stop:
 * {"action":"stop","timeout":T}) with Connection: close; a 2xx answer is
 * success, anything else a failure carrying the answer's {"error"}.
 *
 * The client never blocks: the supervisor's loop calls qmp_client_io when
 * the descriptor is ready. */

#define QMP_MESSAGE_MAX 16384   /* a longer line (QMP) or answer (HTTP) ends the exchange */

enum engine_ctl { ENGINE_CTL_QMP, ENGINE_CTL_VMM_API };
enum qmp_state { QMP_GREETING, QMP_CAPABILITIES, QMP_COMMAND, QMP_DONE, QMP_FAILED };

struct qmp_client {
	int fd;                     /* owned: closed by qmp_client_close */
	enum engine_ctl transport;
	enum qmp_state state;       /* the API: QMP_COMMAND until the answer, then DONE or FAILED */
	char command[64];           /* QMP's command, or the API's action */
	char in[QMP_MESSAGE_MAX];
	size_t in_len;
	char out[256];
	size_t out_len, out_off;
	short events;               /* what qmp_client_io waits for next (0: over) */
	int http_status;            /* the API's answer (0: none yet) */
	struct gr_error err;        /* why, when QMP_FAILED */
};

/* Connects (non-blocking) to the unix socket at path; a path longer than
 * sun_path is reached through its directory. (qmp_connect: the QMP one.) */
int engine_ctl_connect(enum engine_ctl transport, const char *path, int *fd, struct gr_error *err);
int qmp_connect(const char *path, int *fd, struct gr_error *err);
/* Starts a QMP exchange on fd (taken over) that ends with command (a QMP
 * command without arguments, e.g. "system_powerdown"). */
void qmp_client_init(struct qmp_client *q, int fd, const char *command);
/* Starts an API exchange on fd (taken over): action "pause", "resume" or
 * "stop" (then with timeout_s, 0 to 3600; < 0: gureum-vmm's default). */
void vmm_api_client_init(struct qmp_client *q, int fd, const char *action, int timeout_s);
/* QMP: one message from the server (a line without its end): advances the
 * state, queueing what to send next. Returns the new state. */
enum qmp_state qmp_client_message(struct qmp_client *q, const char *msg, size_t n);
/* The API: what has arrived of the answer (q->in), eof when the server
 * closed: QMP_DONE (2xx), QMP_FAILED (another status, or not HTTP; q->err
 * says which), or QMP_COMMAND while incomplete. */
enum qmp_state vmm_api_client_answer(struct qmp_client *q, bool eof);
/* Reads and writes what fd allows given its poll revents (0: just try to
 * send); returns the poll events to wait for next (also kept in q->events),
 * 0 once the exchange is over (QMP_DONE, or QMP_FAILED with q->err set). */
short qmp_client_io(struct qmp_client *q, short revents);
void qmp_client_close(struct qmp_client *q);
/* The same, blocking, for the VM driver's own commands: connects to path,
 * runs command (QMP: "stop", "cont"; the API: "pause", "resume"), waits at
 * most timeout_ms. */
int engine_ctl_execute(enum engine_ctl transport, const char *path, const char *command, int timeout_ms,
		       struct gr_error *err);
static inline int qmp_execute(const char *path, const char *command, int timeout_ms, struct gr_error *err)
{
	return engine_ctl_execute(ENGINE_CTL_QMP, path, command, timeout_ms, err);
}

#endif
