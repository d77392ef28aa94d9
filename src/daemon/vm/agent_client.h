/* The host side of the guest agent protocol (docs/guest-agent.md; the
 * frame codec is src/guest/init/proto.h): a connection to the agent of a
 * VM and the requests over it (health, exec, push, pull, shutdown).
 *
 * Two transports; everything after the connection's start is the same:
 *
 * virtio-serial ports (QEMU). QEMU listens on RUN/instances/NAME/
 * agent.N.sock (N = 0..7), one connection per port at a time. A session
 * owns port N by holding an exclusive flock on RUN/instances/NAME/
 * agent.N.lock for its whole life, so concurrent sessions (gureumd's file
 * requests, each exec's helper process) take different ports; a lock goes
 * away with the process that held it.
 *
 * vsock (gureum-vmm: the run directory has vsock.sock). gureum-vmm's
 * hybrid vsock: connect to RUN/instances/NAME/vsock.sock, write
 * "CONNECT 1024\n" (the agent's vsock port), read "OK <host port>\n"
 * (bounded by the HELLO wait below); then the stream is the guest's
 * accepted connection. Connections are independent: no locks, any number
 * at once. A connection closed without an answer (nothing listens on
 * port 1024 yet: the guest is booting) is retried like a missing HELLO;
 * an answer that is not "OK <n>\n" is -EPROTO at once.
 *
 * Connecting follows the protocol's reconnect rule: wait for HELLO with a
 * timeout; on a timeout, an EOF, a first frame that is not HELLO or bytes
 * that are not frames (what an old session left), disconnect, back off
 * (100 ms, doubling) and connect again, all within the caller's deadline.
 * The socket is connected through /proc/self/fd/DIRFD/NAME, so the run
 * directory's length does not matter.
 *
 * Used by gureumd (vm.c: stop, files) and by gureum-supervisor vm-exec.
 * Blocking calls take a timeout in milliseconds: the longest wait for the
 * agent to make progress (not a bound on a whole transfer). Errors: -errno
 * with err filled; an ERROR frame from the agent becomes its message, with
 * an errno guessed from it (ENOENT for "No such file or directory" or "not
 * found", EISDIR, EACCES, ENOTDIR, else EIO); a protocol error is EPROTO and
 * leaves the connection unusable (close it). Nothing here prints. */
#ifndef GR_DAEMON_VM_AGENT_CLIENT_H
#define GR_DAEMON_VM_AGENT_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "guest/init/proto.h"

#define AGENT_CLIENT_PORTS 8              /* agent.0 .. agent.7 (VM_AGENT_PORTS) */
#define AGENT_CLIENT_HELLO_MS 3000        /* first wait for HELLO per connection; doubles per retry */
#define AGENT_CLIENT_HELLO_MAX_MS 12000
#define AGENT_CLIENT_BACKOFF_MS 100       /* between attempts; doubles */
#define AGENT_CLIENT_BACKOFF_MAX_MS 1600
#define AGENT_CLIENT_CHUNK (256u << 10)   /* FILE_DATA / STDIN frames we send */
#define AGENT_CLIENT_VSOCK_SOCK "vsock.sock" /* gureum-vmm's vsock socket in the run directory (VM_VSOCK_SOCK) */
#define AGENT_CLIENT_VSOCK_PORT 1024      /* the agent's vsock port (VM_AGENT_VSOCK_PORT) */
#define AGENT_CLIENT_VSOCK_LINE_MAX 32    /* "OK <u32>\n" fits; gureum-vmm's own limit is 31 + '\n' */

struct agent_client {
	int fd;                       /* the connection, non-blocking; -1 when closed */
	int lock_fd;                  /* agent.N.lock, flock'd; -1 */
	int dir_fd;                   /* RUN/instances/NAME (O_PATH); -1 */
	unsigned port;                /* N, or the guest's vsock port (1024) */
	bool vsock;                   /* connected through gureum-vmm's vsock.sock */
	unsigned long vsock_host_port;/* vsock: the host side's port from "OK <port>" */
	json_t *hello;                /* the agent's HELLO */
	struct agent_buf in;          /* received, not yet taken */
	size_t taken;                 /* bytes of the frame last returned, consumed at the next call */
	struct agent_buf out;         /* queued for the agent */
	bool broken;                  /* a protocol error or a failed transfer: only close it */
};

#define AGENT_CLIENT_INIT { .fd = -1, .lock_fd = -1, .dir_fd = -1 }

/* Connects to the agent of the VM whose run directory is dir: through
 * vsock.sock when it is there (gureum-vmm), else to a free port (try
 * agent.0 .. agent.7; all busy, or no port answering with HELLO, is
 * retried until timeout_ms has passed). c must be AGENT_CLIENT_INIT or
 * closed. -EBUSY: every port in use; -ETIMEDOUT: no HELLO (or no answer to
 * CONNECT) in time; -ECONNREFUSED/-ENOENT: nothing listens (the VM is not
 * running, or its agent is not listening yet); -EPROTO: vsock.sock
 * answered CONNECT with something else than "OK <port>". */
int agent_client_connect(struct agent_client *c, const char *dir, int timeout_ms, struct gr_error *err);
/* The same on virtio-serial port N only (tests, tools; never vsock). */
int agent_client_connect_port(struct agent_client *c, const char *dir, unsigned port, int timeout_ms,
			      struct gr_error *err);
/* Disconnects and releases the port; c can be connected again. */
void agent_client_close(struct agent_client *c);

/* ---- frames (for sessions driven by the caller, such as an exec) ---- */

/* Queues a frame (0, -EMSGSIZE, -ENOMEM). */
int agent_client_queue(struct agent_client *c, unsigned type, const void *payload, size_t len, struct gr_error *err);
/* Queues a frame whose payload is obj as compact JSON. */
int agent_client_queue_json(struct agent_client *c, unsigned type, const json_t *obj, struct gr_error *err);
/* Writes queued bytes without blocking: 0 (all written or EAGAIN), -errno
 * (the connection failed). */
int agent_client_write_some(struct agent_client *c, struct gr_error *err);
/* Writes everything queued, waiting up to timeout_ms for each progress. */
int agent_client_flush(struct agent_client *c, int timeout_ms, struct gr_error *err);
static inline size_t agent_client_out_pending(const struct agent_client *c) { return agent_buf_pending(&c->out); }
/* One non-blocking read: > 0 bytes read, 0 at EOF, -EAGAIN, -errno. */
ssize_t agent_client_read_some(struct agent_client *c, struct gr_error *err);
/* The next complete frame already read, if any: 1 with *f (its payload
 * points into c's buffer and stays valid until the next call on c), 0 when
 * none is complete, -EPROTO when the bytes are not frames or the frame is
 * of a type the agent does not send. */
int agent_client_next(struct agent_client *c, struct agent_frame *f, struct gr_error *err);
/* Blocking: flushes what is queued, then waits up to timeout_ms for the
 * next frame. -ECONNRESET at EOF, -ETIMEDOUT. */
int agent_client_recv(struct agent_client *c, struct agent_frame *f, int timeout_ms, struct gr_error *err);

/* A frame's JSON payload (an object), or NULL with err set (EPROTO). */
json_t *agent_frame_json(const struct agent_frame *f, struct gr_error *err);
/* An ERROR frame as an error: its message, an errno guessed from it
 * (EPROTO when fatal; the connection is then marked broken). Returns -code. */
int agent_client_error_frame(struct agent_client *c, const struct agent_frame *f, struct gr_error *err);

/* ---- requests ---- */

/* health: the RESPONSE object (a new reference). */
int agent_client_health(struct agent_client *c, int timeout_ms, json_t **out, struct gr_error *err);
/* shutdown (reboot: a reboot instead): 0 once the agent answered; the VM
 * then powers off on its own. */
int agent_client_shutdown(struct agent_client *c, bool reboot, int timeout_ms, struct gr_error *err);

struct agent_file_meta {
	uint32_t mode, uid, gid;      /* mode: the permission bits (07777) */
	uint64_t size;
};

/* push: the file at path (absolute) in the guest becomes the bytes read
 * from fd (to its end), with meta's mode, uid, gid; *size (optional) gets
 * the size the agent wrote. */
int agent_client_push(struct agent_client *c, const char *path, int fd, const struct agent_file_meta *meta,
		      int timeout_ms, uint64_t *size, struct gr_error *err);
/* pull: the file at path is written to fd; meta gets its mode, uid, gid
 * and the size it had when opened. -EFBIG (the connection is then broken)
 * when it is, or grows, larger than max bytes. */
int agent_client_pull(struct agent_client *c, const char *path, int fd, uint64_t max, int timeout_ms,
		      struct agent_file_meta *meta, struct gr_error *err);

/* An errno for an agent's error message (see above). */
int agent_error_errno(const char *msg);

#endif
