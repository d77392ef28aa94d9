/* The agent process in the VM (forked by PID 1): serves every virtio-serial
 * port named like cfg->agent_port (found in /sys/class/virtio-ports, and
 * again on each uevent, since the host names ports after they appear), and
 * a vsock listener on cfg->agent_vsock_port where vsock works. */
#ifndef GR_GUEST_AGENT_VM_H
#define GR_GUEST_AGENT_VM_H

#include <stdbool.h>

#include "config.h"

/* status_fd: the read end of PID 1's pipe with "CODE SIGNAL\n" once the
 * command has ended (-1 in image-init mode). pid1_is_us: gureum-init stays
 * PID 1, so a shutdown request is a signal to it (SIGRTMIN+4 power-off,
 * SIGRTMIN+5 reboot); otherwise the image's own poweroff/reboot is run.
 * Never returns. */
void agent_vm_run(const struct ginit_config *cfg, int status_fd, bool pid1_is_us) __attribute__((noreturn));

#endif
