/* The control API of gureum-vmm: HTTP/JSON on a unix socket, in the manner of
 * Firecracker's, served by libmicrohttpd from one internal thread.
 *
 *   GET  /vm          200 {"state":"running"|"paused"|"stopping","vcpus":N,
 *                          "memory":BYTES,"uptime":SECONDS}
 *   PUT  /vm/actions  {"action":"pause"|"resume"|"stop"} (stop also takes
 *                     "timeout": seconds, 0..3600, a number: when the guest
 *                     has not powered off by then it is stopped by force;
 *                     VMM_API_STOP_TIMEOUT_DEFAULT_MS without)
 *                     204 (pause, resume), 202 {"state":"stopping"} (stop)
 *   GET  /metrics     200 {...} filled by the get_metrics callback (by convention
 *                     "vm_exits": {reason name: count}, "devices": {name: {...}})
 *
 * Errors are JSON {"error":"..."}: 404 unknown route, 405 wrong method (with
 * Allow), 413 body over VMM_API_MAX_BODY bytes, 400 malformed JSON (with its
 * line, column and byte position), unknown keys or actions (named), a body on
 * a GET; a callback's negative errno becomes 409 (EBUSY, EALREADY,
 * EINPROGRESS: not possible in the current state), 400 (EINVAL), 501
 * (ENOTSUP, ENOSYS) or 500 (anything else), with the callback's message.
 *
 * The API reaches the VM only through struct vmm_api_ops and an opaque
 * pointer, so it is testable without KVM. Callbacks run on the API thread, one
 * at a time (requests are never handled concurrently), and must be safe
 * against the vCPU threads. */
#ifndef GR_VMM_API_H
#define GR_VMM_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

#define VMM_API_MAX_BODY 4096
#define VMM_API_STOP_TIMEOUT_DEFAULT_MS 10000u
#define VMM_API_STOP_TIMEOUT_MAX_S 3600

enum vmm_api_state {
	VMM_API_RUNNING,
	VMM_API_PAUSED,
	VMM_API_STOPPING,
};

struct vmm_api_status {
	enum vmm_api_state state;
	unsigned int vcpus;
	uint64_t memory;       /* guest RAM, bytes */
	double uptime;         /* seconds since the vCPUs started */
};

/* Each returns 0 or a negative errno with err filled (see the status mapping above). */
struct vmm_api_ops {
	int (*get_status)(void *opaque, struct vmm_api_status *st, struct gr_error *err);
	int (*pause)(void *opaque, struct gr_error *err);
	int (*resume)(void *opaque, struct gr_error *err);
	/* Asks the guest to shut down and arranges a forced stop after
	 * timeout_ms (0: at once); returns at once (the API answers 202). */
	int (*stop)(void *opaque, unsigned int timeout_ms, struct gr_error *err);
	/* Adds members to metrics (an empty object). */
	int (*get_metrics)(void *opaque, json_t *metrics, struct gr_error *err);
};

struct vmm_api;

/* Creates the socket at path (sock_file_listen: mode 0600; a stale socket
 * file nobody listens on is replaced, a live one or any other file is an
 * error) and starts
 * serving on a thread of its own. ops and opaque must outlive the server. */
int vmm_api_open(const char *path, const struct vmm_api_ops *ops, void *opaque, struct vmm_api **out,
		 struct gr_error *err);
/* Stops serving, waits for the thread and removes the socket file (if it is
 * still ours). NULL is accepted. */
void vmm_api_close(struct vmm_api *api);

/* For a sandboxed process, whose seccomp filter allows neither lstat nor
 * unlink: sock_file_unlink_at_exit on the socket file (a watcher removes it,
 * if it is still ours, however this process ends). Afterwards vmm_api_close
 * no longer touches the file system. Call it before the filter is loaded. */
int vmm_api_unlink_at_exit(struct vmm_api *api, struct gr_error *err);

/* Name of a KVM_EXIT_* reason, in lower case ("io", "mmio", "hlt", ...);
 * NULL for a number it does not know. */
const char *vmm_api_exit_reason_name(uint32_t reason);
/* metrics["vm_exits"] = {name: count} for the non-zero counts[0..n)
 * (unknown reasons as "exit_N"). Returns 0 or -ENOMEM. */
int vmm_api_metrics_add_exits(json_t *metrics, const uint64_t *counts, size_t n);

#endif
