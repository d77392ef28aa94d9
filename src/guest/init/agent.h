/* The guest agent: serves the host's requests (health, exec, push, pull,
 * shutdown) on already-open ports, all at once, in one poll loop. The
 * protocol is in docs/guest-agent.md and proto.h.
 *
 * A port is one connection at a time:
 *   AGENT_PORT_VIRTIO  a virtio-serial port (/dev/vportNpM). read() == 0
 *                      means no host is connected; the agent ends the
 *                      port's session and waits for the next connection
 *                      (SIGIO from the driver, not polling).
 *   AGENT_PORT_STREAM  a connected stream socket (an accepted vsock
 *                      connection, or a socketpair in the unit tests).
 *                      EOF ends it for good: the fd is closed.
 *
 * Nothing here prints: diagnostics go to hooks->log (when set). */
#ifndef GR_GUEST_AGENT_H
#define GR_GUEST_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

struct agent;

enum agent_port_kind {
	AGENT_PORT_STREAM,
	AGENT_PORT_VIRTIO,
};

struct agent_hooks {
	/* A shutdown request was answered (its RESPONSE written, or the host
	 * left first): power off or reboot. Without it, shutdown requests
	 * get an ERROR. */
	void (*shutdown)(void *ctx, bool reboot);
	/* hooks->watch_fd (agent_set_watch_fd) is readable: e.g. a uevent
	 * socket saying that virtio ports appeared; may call agent_add_port. */
	void (*watch)(struct agent *a, void *ctx);
	/* Adds members to a health RESPONSE (e.g. the command's state). */
	void (*health)(json_t *resp, void *ctx);
	/* One line of diagnostics (no newline). */
	void (*log)(void *ctx, const char *line);
	void *ctx;
};

/* Blocks SIGIO in the calling thread (the virtio ports signal host
 * connections with it) and ignores SIGPIPE for the process. */
int agent_new(struct agent **out, const struct agent_hooks *hooks, struct gr_error *err);
/* Ends every session (exec processes are killed and reaped), closes every fd it owns. */
void agent_free(struct agent *a);

/* Takes ownership of fd (even on failure). name: the port's name, in HELLO and logs. */
int agent_add_port(struct agent *a, int fd, const char *name, enum agent_port_kind kind,
		   struct gr_error *err);
/* Whether a port of that name is being served (for rescans). */
bool agent_has_port(const struct agent *a, const char *name);
/* A listening stream socket (AF_VSOCK in the VM, AF_UNIX in tests): every
 * accepted connection becomes a STREAM port. Takes ownership of fd. */
int agent_add_listener(struct agent *a, int fd, const char *name, struct gr_error *err);
/* Not owned; -1 to stop watching. */
void agent_set_watch_fd(struct agent *a, int fd);
/* Not owned: when readable (or hung up) agent_run returns 0. */
void agent_set_stop_fd(struct agent *a, int fd);

/* name as execve(2) needs it: itself when it has a '/', else the first
 * executable regular file in env's PATH (a default PATH when env has none).
 * 0, -ENOENT or -ENAMETOOLONG. */
int agent_find_program(const char *name, char *const *env, char *out, size_t n);

/* Serves until no port and no listener is left, or the stop fd fires
 * (returns 0), or poll itself fails (-errno). Sessions still running when
 * it returns are ended by agent_free. */
int agent_run(struct agent *a, struct gr_error *err);

#endif
