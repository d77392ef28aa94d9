/* Container state kept under --root: ROOT/ID/state.json (what the runtime
 * needs after its own process is gone), ROOT/ID/config.json (the config the
 * container was created with) and ROOT/ID/start.sock (where a created init
 * waits for "start"; the init removes it just before it runs the process).
 * The status is computed, never trusted: a pid counts only while its start
 * time matches the recorded one. */
#ifndef GR_STATE_H
#define GR_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "../common/error.h"

#define STATE_DEFAULT_ROOT "/run/gureum-runtime"

struct container_state {
	char *id;
	char *bundle;
	char *rootfs;
	char *oci_version;
	pid_t pid;
	uint64_t start_time;
	char *created;      /* RFC 3339, UTC */
	char *cgroup_path;  /* NULL when cgroups are disabled */
	bool creating;      /* create has not finished yet */
	json_t *annotations;
	char *owner;
};

enum container_status { STATUS_CREATING, STATUS_CREATED, STATUS_RUNNING, STATUS_PAUSED, STATUS_STOPPED };
const char *state_status_name(enum container_status s);

/* Container ids: 1-1024 characters of [A-Za-z0-9_.+-], not starting with '.'. */
int state_validate_id(const char *id, struct gr_error *err);
/* ROOT/ID into out (PATH_MAX). */
int state_dir_path(const char *root, const char *id, char *out, size_t n, struct gr_error *err);

int state_save(const char *root, const struct container_state *st, struct gr_error *err);
/* -ENOENT with "container ID does not exist" when there is no such container. */
int state_load(const char *root, const char *id, struct container_state *st, struct gr_error *err);
void state_free(struct container_state *st);

/* Is the recorded process still the container's (alive, not a zombie, same start time)? */
bool state_pid_alive(const struct container_state *st);

/* The OCI state document: ociVersion, id, status, pid, bundle, annotations, created (and rootfs, owner). */
json_t *state_to_json(const struct container_state *st, enum container_status status);

/* Current time as RFC 3339 with nanoseconds. */
void state_now_rfc3339(char *buf, size_t n);

#endif
