/* Hardening of gureum-vmm once the machine is set up (src/vmm/README.md,
 * "Hardening"): every capability dropped, then a seccomp allow-list on every
 * thread.
 *
 * Order in main: open /dev/kvm, files, taps and sockets; build the VM;
 * vmm_sandbox_drop_caps() while still single-threaded (capability sets are
 * per thread); start the API server; vmm_sandbox_seccomp() (all threads,
 * TSYNC); vm_run(). */
#ifndef GR_VMM_SANDBOX_H
#define GR_VMM_SANDBOX_H

#include <stdint.h>
#include "common/error.h"

/* Empties the bounding set (when we hold CAP_SETPCAP; without it the set
 * cannot be changed, and no_new_privs makes it moot), the ambient set, and
 * the effective, permitted and inheritable sets, and sets no_new_privs.
 * Fails with EBUSY if the process already has more than one thread. */
int vmm_sandbox_drop_caps(struct gr_error *err);

/* Loads the allow-list with SECCOMP_FILTER_FLAG_TSYNC (every thread of the
 * process); anything else kills the whole process with SIGSYS. */
int vmm_sandbox_seccomp(struct gr_error *err);

/* The same filter with another default action (a libseccomp SCMP_ACT_*):
 * SCMP_ACT_ERRNO(EPERM) or SCMP_ACT_LOG for debugging, and for tests. */
int vmm_sandbox_seccomp_with(uint32_t default_action, struct gr_error *err);

/* The API process's allow-list (gureum-vmm-api, after its socket is bound
 * and its watcher forked; every thread, TSYNC; anything else kills it):
 * libmicrohttpd's epoll loop and connections, the channel to the VMM,
 * memory without PROT_EXEC, futexes, clocks, exit. No open, socket, bind,
 * connect, ioctl, exec, fork or clone. */
int vmm_sandbox_seccomp_api(struct gr_error *err);
int vmm_sandbox_seccomp_api_with(uint32_t default_action, struct gr_error *err);

#endif
