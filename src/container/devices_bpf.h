/* Device access control on cgroup v2: an eBPF program of type
 * BPF_PROG_TYPE_CGROUP_DEVICE attached to the container's cgroup.
 *
 * cgroup v2 has no devices.allow/devices.deny; the kernel instead runs the
 * BPF_CGROUP_DEVICE programs attached to a cgroup (and to its ancestors) on
 * every open and mknod of a device node, and refuses the access when one of
 * them returns 0.
 *
 * The OCI rule list is read with the cgroup v1 semantics, as runc does: it is
 * replayed, in order, on an emulated v1 devices cgroup that starts out denying
 * everything. A type 'a' rule resets it to allow-all or deny-all (dropping the
 * rules before it); any other rule adds an exception to the default or
 * removes access bits from an existing one. A rule that would remove part of
 * a wider wildcard exception ("punch a hole", which v1 silently ignores) is
 * refused, as runc refuses it. The program then checks the remaining
 * exceptions (all of them of the opposite action to the default):
 *   - default deny: the access is allowed when one exception covers every
 *     requested access bit (an O_RDWR open needs both r and w in one rule);
 *   - default allow: the access is denied when an exception shares any
 *     requested access bit with it (so a "deny w" also refuses O_RDWR opens,
 *     as v1 does).
 * and otherwise returns the default. */
#ifndef GR_DEVICES_BPF_H
#define GR_DEVICES_BPF_H

#include <stddef.h>
#include "../common/error.h"
#include "config.h"

struct bpf_insn; /* <linux/bpf.h> */

/* Translates rules[0..n) into a program (malloc'd array of *len
 * instructions). Errors name the rule, e.g. "linux.resources.devices[2].access:
 * ...". An empty list gives a program that denies every device. */
int devices_bpf_build(const struct oci_device_rule *rules, size_t n, struct bpf_insn **prog, size_t *len,
		      struct gr_error *err);

/* Loads prog and attaches it to the cgroup directory cgroup_dirfd
 * (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI). Device filters this code attached
 * there before (recognised by their program name) are detached after the new
 * one is in place, so the cgroup is never without a filter. Filters attached
 * by others are left alone (they can only restrict further). When the kernel
 * rejects the program, the error carries the start of the verifier log. */
int devices_bpf_attach(int cgroup_dirfd, const struct bpf_insn *prog, size_t len, struct gr_error *err);

/* The program name given to our filters (at most 15 characters). */
#define DEVICES_BPF_PROG_NAME "gureum_devices"

#endif
