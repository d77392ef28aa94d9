/* A character backend for the serial port and virtio-console: where a
 * device's output goes and where its input comes from. One piece of code for
 * both devices; the spec is the same for --serial and --console:
 *
 *   stdio        output to stdout; input from stdin (a terminal is put in raw
 *                mode, ISIG kept so ^C still stops the VMM, and restored at
 *                close; a stdin that cannot be polled, like /dev/null or a
 *                regular file, gives no input; end of file ends the input)
 *   file=PATH    output to PATH (created or truncated, mode 0644); no input
 *   socket=PATH  a unix stream socket the VMM listens on (mode 0600, see
 *                sock_cleanup.h; removed at exit even after SIGKILL). One
 *                client at a time: a second connection is closed at once.
 *                Output while nobody is connected goes to a ring of
 *                CHARDEV_RING bytes (the most recent ones) that is replayed
 *                to the next client; output a client does not read fast
 *                enough (its socket buffer is full) is dropped, never waited
 *                for. Input is what the client sends.
 *   none         output discarded, no input
 *
 * Input goes through the VMM's I/O thread: the handlers take the device's
 * lock (given to chardev_attach) around the callbacks, so ops->room and
 * ops->input run under it. When the device has no room the chardev stops
 * polling (ev_loop_mod 0) until the device calls chardev_resume_input, under
 * the same lock. Lock order: device lock, then the chardev's own lock (which
 * guards the output descriptors and the ring). */
#ifndef GR_VMM_CHARDEV_H
#define GR_VMM_CHARDEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>
#include "common/error.h"
#include "vmm/event_loop.h"
#include "vmm/sock_cleanup.h"

#define CHARDEV_RING 4096
#define CHARDEV_READ_MAX 512    /* bytes taken per input event */

enum chardev_kind { CHARDEV_NONE, CHARDEV_STDIO, CHARDEV_FILE, CHARDEV_SOCKET };

struct chardev_ops {
	/* Bytes the device can take now (0: stop reading for now). */
	size_t (*room)(void *opaque);
	/* n bytes of input, n <= what room returned. */
	void (*input)(void *opaque, const uint8_t *buf, size_t n);
};

struct chardev {
	enum chardev_kind kind;
	const char *what;            /* "--serial", "--console": for errors */
	int out_fd;                  /* stdio, file; -1 otherwise */
	int in_fd;                   /* stdio: stdin; -1 otherwise */
	int listen_fd, client_fd;    /* socket */
	struct sock_file sock;
	struct ev_handler in_h;      /* stdin or the client */
	struct ev_handler listen_h;
	struct ev_loop *loop;        /* set by chardev_attach */
	const struct chardev_ops *ops;
	void *opaque;
	bool in_registered, in_paused; /* under the device lock */
	pthread_mutex_t lock;        /* out_fd writes, client_fd, ring */
	uint8_t ring[CHARDEV_RING];
	size_t ring_start, ring_len;
	bool tty_raw;
	struct termios tty_saved;
	uint64_t bytes_in, bytes_out, bytes_dropped, clients;  /* metrics */
};

/* Parses a spec: "stdio", "none", "file=PATH", "socket=PATH" (PATH not
 * empty). *path points into spec. -EINVAL with a message naming what. */
int chardev_parse(const char *what, const char *spec, enum chardev_kind *kind, const char **path,
		  struct gr_error *err);

/* Opens the backend (files, the listening socket, the terminal mode): before
 * the sandbox. spec NULL means "stdio". On failure nothing is left behind. */
int chardev_open(struct chardev *cd, const char *what, const char *spec, struct gr_error *err);
/* For a socket: forks the watcher that removes the file at exit (before the
 * seccomp filter). No-op for the other kinds. */
int chardev_unlink_at_exit(struct chardev *cd, struct gr_error *err);
/* Starts taking input on loop (before the loop starts). lock is the device's
 * lock; ops may be NULL for an output-only device. */
int chardev_attach(struct chardev *cd, struct ev_loop *loop, pthread_mutex_t *lock, const struct chardev_ops *ops,
		   void *opaque, struct gr_error *err);
/* Output (any thread). Never blocks on a socket client. */
void chardev_write(struct chardev *cd, const uint8_t *buf, size_t n);
/* The device has room again: polls for input again if it had stopped.
 * Call with the device lock held. */
void chardev_resume_input(struct chardev *cd);
/* Restores the terminal, closes the descriptors, removes the socket file
 * (through the watcher when there is one). Stop the loop first. */
void chardev_close(struct chardev *cd);

#endif
