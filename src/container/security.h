/* Process security settings applied just before the container process runs:
 * capabilities, seccomp (libseccomp), rlimits, personality, no_new_privs. */
#ifndef GR_SECURITY_H
#define GR_SECURITY_H

#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include "../common/error.h"
#include "config.h"

/* Capability name ("CAP_SYS_ADMIN") to number; -1 when unknown. */
int caps_from_name(const char *name);
/* Capability number to name ("CAP_SYS_ADMIN"); NULL when unknown. */
const char *caps_to_name(int cap);
/* Converts a list of names to a bit mask; an unknown name is an error naming
 * `path[i]` and the value. */
int caps_list_to_mask(char *const *names, const char *path, uint64_t *mask, struct gr_error *err);
/* Highest capability the running kernel knows (from /proc/sys/kernel/cap_last_cap). */
int caps_last_cap(void);
/* Bounding set of the calling process as a mask. */
uint64_t caps_current_bounding(void);

/* Applies the five sets. Each requested set is intersected with the caller's
 * bounding set (a capability the host does not grant, such as a missing
 * CAP_SYS_RESOURCE, is dropped with a debug message rather than failing).
 * Call after the uid/gid switch, with PR_SET_KEEPCAPS set before it. */
int caps_apply(const struct oci_capabilities *c, struct gr_error *err);
/* Only the bounding-set part of caps_apply. Dropping from the bounding set
 * needs CAP_SETPCAP, so callers that switch to another user do this first. */
int caps_apply_bounding(const struct oci_capabilities *c, struct gr_error *err);

/* Builds the libseccomp filter for a config (not loaded). Unknown syscall
 * names are skipped (as runc and crun do); unknown actions, architectures,
 * operators and flags are errors naming linux.seccomp.... */
int seccomp_build(const struct oci_seccomp *s, scmp_filter_ctx *out, struct gr_error *err);
/* Builds and loads the filter into the calling thread (after no_new_privs or
 * with CAP_SYS_ADMIN). Flags from the config are honoured. */
int seccomp_apply(const struct oci_seccomp *s, struct gr_error *err);
/* Names of the supported actions/operators/architectures/flags, for "features". */
extern const char *const seccomp_action_names[];
extern const char *const seccomp_operator_names[];
extern const char *const seccomp_arch_names[];
extern const char *const seccomp_flag_names[];

/* setrlimit for each; errors name the limit ("process.rlimits[1] RLIMIT_NOFILE: ..."). */
int rlimits_apply(const struct oci_rlimit *v, size_t n, struct gr_error *err);
/* RLIMIT_* name to number; -1 when unknown. */
int rlimit_from_name(const char *name);

/* Applies linux.personality (LINUX or LINUX32). */
int personality_apply(const struct oci_personality *p, struct gr_error *err);

#endif
