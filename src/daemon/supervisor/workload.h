/* Inside gureum-supervisor: the state of one supervisor and the interface of
 * the workload it runs (internal to src/daemon/supervisor).
 *
 * The run loop (supervisor.c) owns what every workload shares: the pid file
 * and its lock, signals, the output's relay to the rotated log and to the
 * newest console.sock client (client input to the pty), reaping, exit.json,
 * the restart policy with its back-off, and the stop's timeout (stop.json).
 * A workload says how one run starts, how it is asked to stop and how it is
 * killed:
 *   container_workload (container_workload.c): an OCI container through the
 *     container library, its rootfs an overlay mounted in the supervisor's
 *     own mount namespace;
 *   engine_workload (engine.c): a VM engine process (QEMU, gureum-vmm) on a
 *     pty, asked to stop through QMP (system_powerdown) or SIGTERM. */
#ifndef GR_SUPERVISOR_WORKLOAD_H
#define GR_SUPERVISOR_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include "daemon/supervisor/supervisor.h"

struct sup;
struct qmp_client;

struct workload_ops {
	const char *what;   /* "container", "engine": in the log's notes */
	/* Once, before the first start (the log is open; console.sock is made
	 * after it when s->terminal is set). NULL: nothing. */
	int (*prepare)(struct sup *s, struct gr_error *err);
	/* One run. On success s->init is the process whose end ends the run and
	 * s->out_fd (non-blocking) its output: the pty master when s->terminal
	 * (client input is written to it), else a pipe. On failure nothing of the
	 * run is left and s->init is 0. */
	int (*start)(struct sup *s, struct gr_error *err);
	/* A stop request (SIGTERM to the supervisor) while a run goes on, before
	 * the loop applies timeout_s: 0 kills it right after this call, else
	 * kill() follows at the deadline unless it ended. first: the first
	 * request (later ones may only shorten the deadline). */
	void (*request_stop)(struct sup *s, int timeout_s, bool first);
	/* Ends the run now: SIGKILL to every process of it. */
	void (*kill)(struct sup *s);
	/* s->init exited and is not reaped yet (its pid still names its process
	 * group). NULL: nothing. */
	void (*exited)(struct sup *s);
	/* After each run (reaped, output drained). NULL: nothing. */
	void (*finish)(struct sup *s);
	/* Once, at the end. NULL: nothing. */
	void (*cleanup)(struct sup *s);
	/* A descriptor of the workload's own for the loop to poll: returns it
	 * and sets *events, or -1 for none now; poll_event is called with its
	 * revents. NULL: none. */
	int (*poll_fd)(struct sup *s, short *events);
	void (*poll_event)(struct sup *s, short revents);
};

extern const struct workload_ops container_workload;
extern const struct workload_ops engine_workload;

struct sup {
	const struct supervisor_opts *o;
	const struct workload_ops *ops;
	struct instance_paths p;
	int pid_fd, run_dirfd, sig_fd, console_lfd, client_fd, out_fd;
	bool terminal;
	pid_t init;
	struct rotlog log;
	bool log_ok;
	bool pending_cr;            /* log_crlf_filter's state (terminal output) */
	bool log_midline;           /* the workload's last logged byte was not a newline */
	char held[2048];            /* our notes while the workload's line is unfinished */
	size_t held_len;
	bool stop_requested;
	int64_t kill_deadline;      /* ms (monotonic) when the workload gets SIGKILL; -1: none */
	bool exited;
	int wstatus;
	bool mounted;               /* container: its rootfs overlay is mounted */
	struct qmp_client *qmp;     /* engine: the stop's QMP exchange while it goes on */
};

int64_t sup_now_ms(void);
/* A message of the supervisor itself in the instance's log. */
void sup_note(struct sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the workload's unfinished log line (if any) and writes the notes
 * held back meanwhile. */
void sup_log_end_line(struct sup *s);
/* A unix socket address for NAME in the run directory (through
 * /proc/self/fd, so a long --run-dir cannot overflow sun_path). */
void sup_run_sock_addr(const struct sup *s, const char *name, struct sockaddr_un *a);
/* Listens (mode 0600) on NAME in the run directory, replacing a stale one. */
int sup_listen_run_sock(struct sup *s, const char *name, int *out, struct gr_error *err);

#endif
