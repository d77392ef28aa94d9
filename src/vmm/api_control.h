/* The VMM's end of the control API (src/vmm/README.md, "Control API").
 *
 * gureum-vmm does not serve HTTP itself: for --api-socket it starts
 * gureum-vmm-api (src/vmm/api_main.c, dynamically linked with libmicrohttpd)
 * before the sandbox is applied, passing it the socket path and one end of a
 * SOCK_SEQPACKET socketpair. The API process binds the socket, then sends a
 * hello (ready, or why not); afterwards it turns each HTTP request into one
 * fixed 16-byte request on the socketpair (api_proto.h), which the VMM's I/O
 * thread (event_loop.h) answers from the VM's state: status, pause, resume,
 * stop, metrics. The VMM trusts nothing it receives: anything but a valid
 * request is answered with an error and counted.
 *
 * Lifetime: when the VMM ends it shuts its end down; the API process closes
 * its server, removes the socket file and exits, which the VMM sees as EOF
 * (bounded wait). If the VMM dies without that, the API process gets SIGKILL
 * (PR_SET_PDEATHSIG) and its watcher removes the socket file. */
#ifndef GR_VMM_API_CONTROL_H
#define GR_VMM_API_CONTROL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "common/error.h"
#include "vmm/api_proto.h"
#include "vmm/event_loop.h"
#include "vmm/vm.h"

/* Fills out with one device's counters (name is set by the caller). */
typedef void (*vmm_control_collect_fn)(const void *dev, struct vmm_ctl_device *out);

struct vmm_control_device {
	char name[VMM_CTL_NAME_LEN];
	pthread_mutex_t *lock;         /* taken around collect (the device's MMIO window lock), or NULL */
	vmm_control_collect_fn collect;
	const void *dev;
};

struct vmm_control {
	int fd;                        /* our end of the socketpair; -1: no API */
	pid_t pid;                     /* the API process */
	struct ev_handler h;
	struct ev_loop *loop;          /* set by vmm_control_attach */
	struct vm *vm;
	uint64_t memory;               /* guest RAM, bytes (status) */
	struct vmm_control_device devices[VMM_CTL_MAX_DEVICES];
	size_t n_devices;
	pthread_mutex_t lock;          /* closed, below */
	pthread_cond_t closed_cond;
	bool closed;                   /* the API process has closed its end */
	uint64_t requests, refused;    /* answered, and refused as malformed */
	uint8_t buf[VMM_CTL_MAX_MESSAGE + 1];  /* the I/O thread's, one message at a time */
	uint8_t out[VMM_CTL_MAX_MESSAGE];
	struct vmm_ctl_metrics metrics;
};

/* A control without an API process (vmm_control_close does nothing). */
#define VMM_CONTROL_NONE { .fd = -1, .pid = -1 }

/* The API program: $GUREUM_VMM_API when set, else gureum-vmm-api in the
 * directory of /proc/self/exe. Must be executable. */
int vmm_control_find_program(char *out, size_t size, struct gr_error *err);

/* Starts the API process (program, listening on socket_path) and waits for
 * its hello (at most timeout_ms). On failure nothing is left: the process has
 * ended, the error says why (its own words when it could not bind). Call
 * while the VMM is single-threaded and before the sandbox (fork, exec).
 * Sets SIGCHLD to SIG_IGN for the whole VMM, so the kernel reaps the API
 * process when it ends (the sandboxed VMM may not wait for children). */
int vmm_control_spawn(struct vmm_control *c, const char *program, const char *socket_path, int timeout_ms,
		      struct gr_error *err);

/* Adds a device to the metrics ("devices": {name: {counters}}). */
int vmm_control_add_device(struct vmm_control *c, const char *name, pthread_mutex_t *lock,
			   vmm_control_collect_fn collect, const void *dev, struct gr_error *err);
void vmm_control_collect_blk(const void *blk, struct vmm_ctl_device *out);   /* struct virtio_blk */
void vmm_control_collect_rng(const void *rng, struct vmm_ctl_device *out);   /* struct virtio_rng */
void vmm_control_collect_ged(const void *ged, struct vmm_ctl_device *out);   /* struct ged */
void vmm_control_collect_net(const void *net, struct vmm_ctl_device *out);   /* struct virtio_net */
void vmm_control_collect_vsock(const void *vsock, struct vmm_ctl_device *out); /* struct virtio_vsock */
/* The serial port's or the console's backend (struct chardev; takes its lock):
 * bytes from the host, bytes from the guest, output dropped (nobody
 * connected, or a client too slow), socket clients accepted. */
void vmm_control_collect_chardev(const void *cd, struct vmm_ctl_device *out);
/* The chardev's counters, and input_dropped: input a device reset discarded. */
void vmm_control_collect_console(const void *console, struct vmm_ctl_device *out); /* struct virtio_console */

/* Serves requests for vm on loop's thread from now on. */
int vmm_control_attach(struct vmm_control *c, struct ev_loop *loop, struct vm *vm, uint64_t memory,
		       struct gr_error *err);

/* Answers one request message (exposed for tests): writes the response to
 * out (at least VMM_CTL_MAX_MESSAGE bytes) and returns its length. */
size_t vmm_control_handle(struct vmm_control *c, const void *msg, size_t n, uint8_t *out);

/* Ends the API process: shuts our end down and waits (at most timeout_ms)
 * until it has removed its socket and exited (its end of the channel closes).
 * loop_running: the I/O thread still serves the channel (it sees the EOF);
 * otherwise this thread reads it. Safe on VMM_CONTROL_NONE. */
void vmm_control_close(struct vmm_control *c, bool loop_running, int timeout_ms);

#endif
