/* The last steps before the container's process (init or exec) runs:
 * cwd, personality, rlimits, user and groups, capabilities, umask,
 * no_new_privs, seccomp, then execve. Shared by create and exec. */
#ifndef GR_PROCESS_H
#define GR_PROCESS_H

#include "../common/error.h"
#include "config.h"

/* Never returns on success. preserve_fds descriptors after stdio stay open;
 * every other descriptor is closed on exec. */
int process_exec(const struct oci_process *p, const struct oci_config *c, int preserve_fds,
		 struct gr_error *err);

/* Finds args[0] in PATH (from env, or the default PATH) like execvp; fills out. */
int process_find_executable(const char *file, char *const *env, char *out, size_t n, struct gr_error *err);

#endif
