/* VM engines: which one runs a VM on this host, and their command lines.
 *
 * gureum-vmm needs hardware-assisted KVM. /dev/kvm may exist without it:
 * on a PVM host (the kvm_pvm module; no vmx or svm flag in /proc/cpuinfo)
 * small guests run but an unmodified Linux kernel does not boot. There, and
 * where /dev/kvm is missing or cannot be opened, VMs run under QEMU with
 * binary translation (TCG); with hardware-assisted KVM under gureum-vmm.
 * vm.engine=qemu|gureum-vmm forces one; gureum-vmm forced on a host without
 * hardware-assisted KVM is refused (it would hang in the guest's boot).
 *
 * The QEMU machine is microvm with ACPI (its DSDT describes the virtio-mmio
 * devices, which the cloud kernel finds only that way): the root disk
 * (virtio-blk), the NIC on a tap (virtio-net), a virtio-serial controller
 * with VM_AGENT_PORTS ports named org.gureum.agent.N, each a unix socket
 * QEMU listens on, virtio-rng, the 8250 serial console on QEMU's stdio (the
 * supervisor's pty), and QMP on two unix sockets: qmp.sock for the
 * supervisor's stop, qmp-ctl.sock for the driver (pause, resume).
 *
 * gureum-vmm (src/vmm/README.md) has the same disk, NIC, rng and serial
 * console (--serial stdio), but no virtio-serial ports: the guest agent is
 * reached through virtio-vsock (--vsock cid=VM_VSOCK_CID,socket=RUN/
 * instances/NAME/vsock.sock: connect, "CONNECT 1024\n", "OK <port>\n"; see
 * vm/agent_client.h), and the supervisor's stop and the driver's pause and
 * resume go through its control API (--api-socket RUN/instances/NAME/
 * vmm-api.sock: PUT /vm/actions). */
#ifndef GR_DAEMON_VM_ENGINE_H
#define GR_DAEMON_VM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

#define VM_AGENT_PORTS 8
#define VM_AGENT_PORT_PREFIX "org.gureum.agent."
#define VM_QEMU "/usr/bin/qemu-system-x86_64"   /* $GUREUM_QEMU overrides (tests) */
#define VM_VSOCK_CID 3                          /* the guest's CID under gureum-vmm (its own namespace: hybrid vsock) */
#define VM_AGENT_VSOCK_PORT 1024                /* the agent's vsock port (instance.json's agent_vsock_port default) */
#define VM_VSOCK_SOCK "vsock.sock"              /* in the run directory: gureum-vmm's vsock, host side */
#define VM_VMM_API_SOCK "vmm-api.sock"          /* in the run directory: gureum-vmm's control API */
#define VM_VSOCK_PATH_MAX 96                    /* gureum-vmm's limit on --vsock socket=PATH */

enum vm_engine { VM_ENGINE_QEMU, VM_ENGINE_GUREUM_VMM };
const char *vm_engine_name(enum vm_engine e);

/* What this host's KVM is. */
struct vm_host {
	bool kvm;            /* /dev/kvm opens read-write */
	bool hw;             /* the CPU has vmx or svm */
	bool pvm;            /* the kvm_pvm module is loaded */
};
/* Reads /dev/kvm, /proc/cpuinfo and /sys/module (root: "" for the host,
 * else a directory holding dev/kvm, proc/cpuinfo, sys/module for tests). */
void vm_host_probe(const char *root, struct vm_host *out);
/* The engine for a VM: forced ("qemu", "gureum-vmm", NULL/"" for the host's
 * choice: gureum-vmm with hardware-assisted KVM, else QEMU with TCG).
 * *accel_kvm: QEMU may use KVM (hardware-assisted) instead of TCG. why: one
 * line for logs and `gureum info` ("gureum-vmm (this host: hardware-assisted
 * KVM)", "qemu with binary translation (TCG) (this host: a PVM host ...)").
 * -EINVAL for an unknown name, and for gureum-vmm forced on a host without
 * hardware-assisted KVM (the message says why: PVM, no /dev/kvm, no vmx/svm). */
int vm_engine_choose(const struct vm_host *h, const char *forced, enum vm_engine *out, bool *accel_kvm, char *why,
		     size_t why_len, struct gr_error *err);

/* What a VM is made of, for either engine. */
/* Disks after the root one: the instance's block volumes. Every disk's
 * virtio-blk serial is "gureum-diskN", N its index (0: the root), under
 * both engines: gureum-init finds them by it. */
#define VM_MAX_VOLUMES 16
#define VM_DISK_SERIAL "gureum-disk%u"   /* guest/init/disks.h GINIT_DISK_SERIAL */
struct vm_disk {
	const char *path;            /* a raw image file */
	bool readonly;
};

struct vm_engine_opts {
	const char *name;            /* instance name (QEMU's -name) */
	bool kvm;                    /* QEMU: accel=kvm (else tcg) */
	unsigned cpus;
	uint64_t memory_mib;
	const char *kernel, *initrd, *cmdline;
	const char *disk;            /* raw root disk */
	const struct vm_disk *volumes; /* VM_MAX_VOLUMES at most */
	size_t nvolumes;
	const char *tap;             /* tap name, or NULL for no NIC */
	const char *mac;             /* "0e:..." */
	const char *run_dir;         /* RUN/instances/NAME: agent.N.sock, qmp.sock (QEMU); vsock.sock,
				      * vmm-api.sock (gureum-vmm) */
	const char *binary;          /* the engine's program: NULL for QEMU's default ($GUREUM_QEMU or
				      * VM_QEMU); gureum-vmm's is required (vm_vmm_binary) */
};
/* QEMU's argument vector (malloc'd, NULL-terminated; gr_strv_free). */
char **vm_qemu_argv(const struct vm_engine_opts *o, struct gr_error *err);
/* gureum-vmm's: --kernel, --initrd, --cmdline, --cpus, --memory, --disk,
 * --rng, --net tap=IF,mac=MAC, --vsock cid=VM_VSOCK_CID,socket=RUN/vsock.sock,
 * --serial stdio, --api-socket RUN/vmm-api.sock. -EINVAL (NULL) for a value
 * its option syntax cannot carry (a ',' in a path) or a run directory too
 * long for its vsock socket (VM_VSOCK_PATH_MAX). */
char **vm_vmm_argv(const struct vm_engine_opts *o, struct gr_error *err);
/* The one for engine e. */
char **vm_engine_argv(enum vm_engine e, const struct vm_engine_opts *o, struct gr_error *err);

/* gureum-vmm's program: $GUREUM_VMM, else next to gureum-supervisor
 * (libexec_dir/gureum-vmm), else the build tree's (libexec_dir/../vmm/
 * gureum-vmm), else the installed one (libexec_dir/../../bin/gureum-vmm:
 * PREFIX/libexec/gureum -> PREFIX/bin). out: PATH_MAX bytes. -ENOENT naming
 * the places looked at. */
int vm_vmm_binary(const char *libexec_dir, char *out, struct gr_error *err);

#endif
