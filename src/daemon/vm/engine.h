/* VM engines: which one runs a VM on this host, and QEMU's command line.
 *
 * gureum-vmm needs hardware-assisted KVM. /dev/kvm may exist without it:
 * on a PVM host (the kvm_pvm module; no vmx or svm flag in /proc/cpuinfo)
 * small guests run but an unmodified Linux kernel does not boot. There, and
 * where /dev/kvm is missing or cannot be opened, VMs run under QEMU with
 * binary translation (TCG). vm.engine=qemu|gureum-vmm forces one.
 *
 * The QEMU machine is microvm with ACPI (its DSDT describes the virtio-mmio
 * devices, which the cloud kernel finds only that way): the root disk
 * (virtio-blk), the NIC on a tap (virtio-net), a virtio-serial controller
 * with VM_AGENT_PORTS ports named org.gureum.agent.N, each a unix socket
 * QEMU listens on, virtio-rng, the 8250 serial console on QEMU's stdio (the
 * supervisor's pty), and QMP on two unix sockets: qmp.sock for the
 * supervisor's stop, qmp-ctl.sock for the driver (pause, resume). */
#ifndef GR_DAEMON_VM_ENGINE_H
#define GR_DAEMON_VM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

#define VM_AGENT_PORTS 8
#define VM_AGENT_PORT_PREFIX "org.gureum.agent."
#define VM_QEMU "/usr/bin/qemu-system-x86_64"   /* $GUREUM_QEMU overrides (tests) */

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
 * choice). *accel_kvm: QEMU may use KVM (hardware-assisted) instead of TCG.
 * why: one line for logs and `gureum info` ("hardware KVM", "PVM host: QEMU
 * with binary translation", ...). -EINVAL for an unknown name. */
int vm_engine_choose(const struct vm_host *h, const char *forced, enum vm_engine *out, bool *accel_kvm, char *why,
		     size_t why_len, struct gr_error *err);

struct vm_qemu_opts {
	const char *name;            /* instance name (for -name) */
	bool kvm;                    /* accel=kvm (else tcg) */
	unsigned cpus;
	uint64_t memory_mib;
	const char *kernel, *initrd, *cmdline;
	const char *disk;            /* raw root disk */
	const char *tap;             /* tap name, or NULL for no NIC */
	const char *mac;             /* "0e:..." */
	const char *run_dir;         /* RUN/instances/NAME: agent.N.sock, qmp.sock */
};
/* QEMU's argument vector (malloc'd, NULL-terminated; gr_strv_free). */
char **vm_qemu_argv(const struct vm_qemu_opts *o, struct gr_error *err);

#endif
