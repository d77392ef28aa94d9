/* The agent's parts (agent.c: ports and frames; agent_exec.c; agent_file.c).
 * Not for use outside src/guest/init. */
#ifndef GR_GUEST_AGENT_INTERNAL_H
#define GR_GUEST_AGENT_INTERNAL_H

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "proto.h"

#define AGENT_READ_CHUNK (64u * 1024)
#define AGENT_WRITE_CHUNK (32u * 1024)  /* virtio_console takes at most 32 KiB per write() */
#define AGENT_OUT_HIGH (256u * 1024)    /* output producers pause above this much pending */
#define AGENT_DRAIN_MAX (4u << 20)      /* at exit, at most this much more output per stream */
#define AGENT_MAX_PORTS 64
#define AGENT_MAX_LISTENERS 4
#define AGENT_MAX_ARGS 4096             /* exec: args and env entries each */

enum port_state {
	PORT_WAITING,   /* virtio: no host connected; woken by SIGIO */
	PORT_OPEN,      /* a connection is being served */
	PORT_DRAINING,  /* virtio, after a fatal error: input discarded until the host leaves */
	PORT_CLOSING,   /* stream, after a fatal error: the ERROR is flushed, then the fd closed */
	PORT_GONE,      /* closed; removed at the end of the loop iteration */
};

enum session_kind {
	SESSION_IDLE,
	SESSION_EXEC,
	SESSION_PUSH,
	SESSION_PULL,
	SESSION_SHUTDOWN,  /* the RESPONSE is being flushed; then hooks->shutdown */
};

struct exec_session {
	pid_t pid;
	int pidfd;
	bool tty;
	int stdin_fd;          /* pipe to the process; -1 with a tty or once closed */
	int out_fd;            /* stdout pipe, or the pty master */
	int err_fd;            /* stderr pipe; -1 with a tty */
	struct agent_buf in;   /* STDIN not yet taken by the process */
	bool in_eof;           /* STDIN_EOF seen: close stdin / send VEOF once `in` is empty */
	bool tty_hup;          /* the pty master read EIO: no process has the terminal open */
};

struct push_session {
	bool discard;          /* refused or failed: FILE_DATA ignored up to FILE_END, no more replies */
	int dirfd, fd;
	char tmpname[64];      /* in dirfd */
	char *name;            /* final name in dirfd */
	char *path;            /* for messages */
	uint32_t mode, uid, gid;
	uint64_t size;
};

struct pull_session {
	int fd;
	char *path;
};

struct agent_port {
	struct agent *agent;
	char name[96];
	int fd;
	enum agent_port_kind kind;
	enum port_state state;
	struct agent_buf in, out;
	enum session_kind session;
	struct exec_session exec;
	struct push_session push;
	struct pull_session pull;
	bool shutdown_reboot;
};

struct agent_listener {
	int fd;
	char name[64];
	unsigned long accepted;
};

struct agent_dying {
	pid_t pid;
	int pidfd;
};

struct agent {
	struct agent_hooks hooks;
	struct agent_port *ports[AGENT_MAX_PORTS];
	size_t nports;
	struct agent_listener listeners[AGENT_MAX_LISTENERS];
	size_t nlisteners;
	struct agent_dying *dying;
	size_t ndying, capdying;
	int sigfd;       /* SIGIO */
	int watch_fd, stop_fd;
};

/* agent.c */
void agent_logf(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queues a frame; on allocation failure the port gets a fatal error. */
void port_queue(struct agent_port *p, unsigned type, const void *payload, size_t n);
/* Queues a JSON frame and drops the reference to j (NULL: out of memory, fatal). */
void port_queue_json(struct agent_port *p, unsigned type, json_t *j);
/* A request failed; the connection stays usable. This is the request's final reply. */
void port_request_error(struct agent_port *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A protocol error: ERROR {"fatal":true}, the session ends, the connection is closed. */
void port_fatal(struct agent_port *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Input processing stopped for backpressure may go on. */
void port_process_input(struct agent_port *p);
/* Hands a killed process to the agent for reaping. */
void agent_reap_later(struct agent *a, pid_t pid, int pidfd);
int agent_pidfd_open(pid_t pid);
/* Parses a control payload as a JSON object; NULL after a fatal error. */
json_t *port_parse_json(struct agent_port *p, const struct agent_frame *f);

/* agent_exec.c */
void exec_start(struct agent_port *p, json_t *req);
void exec_frame(struct agent_port *p, const struct agent_frame *f);
bool exec_input_blocked(const struct agent_port *p);
enum exec_fd { EXEC_FD_STDIN, EXEC_FD_STDOUT, EXEC_FD_STDERR, EXEC_FD_PID };
/* The fd to poll for `which` and its events; -1 when not to be polled now. */
int exec_poll_fd(const struct agent_port *p, enum exec_fd which, short *events);
void exec_event(struct agent_port *p, enum exec_fd which, short revents);
/* Ends the session: the process group is killed and reaped later. */
void exec_abort(struct agent_port *p);
int agent_signal_parse(json_t *v, int *sig);

/* agent_file.c */
void push_start(struct agent_port *p, json_t *req);
void push_frame(struct agent_port *p, const struct agent_frame *f);
void push_abort(struct agent_port *p);
void pull_start(struct agent_port *p, json_t *req);
/* Reads more of the file while the port's output is below AGENT_OUT_HIGH. */
void pull_produce(struct agent_port *p);
void pull_abort(struct agent_port *p);
/* Absolute, no ".." component, no trailing '/', not "/", shorter than PATH_MAX. NULL when fine, else why. */
const char *agent_path_check(const char *path);

#endif
