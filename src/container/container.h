/* The container lifecycle of the OCI runtime-spec (creating, created,
 * running, stopped), shared by gureum-runtime and, later, gureumd.
 *
 * create: the runtime forks an intermediate process that joins namespaces
 * given by path, unshares the new ones (user first, so the runtime can write
 * its id maps) and forks the container's init. Init builds the rootfs,
 * pivots into it and waits on ROOT/ID/start.sock; "start" connects there,
 * init runs the startContainer hooks and execs the process. An exec failure
 * is reported back over that connection; success closes it (close-on-exec). */
#ifndef GR_CONTAINER_H
#define GR_CONTAINER_H

#include <stdbool.h>
#include <sys/types.h>
#include "../common/error.h"
#include "config.h"
#include "state.h"

enum cgroup_manager { CGROUP_MANAGER_CGROUPFS, CGROUP_MANAGER_DISABLED };

struct container_opts {
	const char *root;            /* state root (--root) */
	const char *id;
	const char *bundle;          /* NULL: the current directory */
	const char *pid_file;
	const char *console_socket;
	bool no_pivot;
	bool no_new_keyring;
	int preserve_fds;
	bool keep;                   /* run: keep the stopped container instead of deleting it */
	enum cgroup_manager cgroup_manager;
};

int container_create(const struct container_opts *o, struct gr_error *err);
int container_start(const struct container_opts *o, struct gr_error *err);
/* create + start; unless detach, waits and puts the exit code (128+signal
 * when killed) in *exit_code, then deletes the container. */
int container_run(const struct container_opts *o, bool detach, int *exit_code, struct gr_error *err);

int container_status(const char *root, const struct container_state *st, enum container_status *out);
int container_kill(const char *root, const char *id, int sig, bool all, struct gr_error *err);
int container_delete(const char *root, const char *id, bool force, struct gr_error *err);
int container_pause(const char *root, const char *id, bool pause, struct gr_error *err);
int container_update(const char *root, const char *id, const struct oci_resources *r, struct gr_error *err);
/* pids in the container (cgroup, or just the init when cgroups are disabled). */
int container_pids(const char *root, const char *id, pid_t **pids, size_t *n, struct gr_error *err);

struct exec_opts {
	struct oci_process *process;  /* the process to run (owned by the caller) */
	const char *console_socket;
	const char *pid_file;
	bool detach;
	int preserve_fds;
};
int container_exec(const char *root, const char *id, const struct exec_opts *o, int *exit_code,
		   struct gr_error *err);

/* Loads the config a container was created with. */
int container_load_config(const char *root, const char *id, struct oci_config **out, struct gr_error *err);

/* Parses a signal name or number ("KILL", "SIGKILL", "9"). */
int container_parse_signal(const char *s, int *sig);

#endif
