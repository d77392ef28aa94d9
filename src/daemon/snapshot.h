/* Snapshots of container instances: the file state of the instance's
 * overlay upper directory (what it changed over its image), kept under
 *
 *   STATE/instances/NAME/snapshots/SNAP/upper/          a tree_copy of upper/
 *   STATE/instances/NAME/snapshots/SNAP/snapshot.json   {"name","created_at","stateful":false,
 *                                                         "size","files","instance_status"}
 *
 * so deleting the instance (its bundle) deletes its snapshots. A snapshot
 * is made aside (snapshots/.SNAP.tmp-XXXXXX) and renamed into place: it
 * exists whole or not at all; leftovers of a crash are removed by the next
 * snapshot call on that instance.
 *
 * A running container is frozen (the container library's pause: the cgroup
 * freezer) for the copy and thawed afterwards, whatever the copy's outcome;
 * one the user paused stays paused. Restore needs the instance stopped and
 * swaps the copy in for upper/ with one renameat2(RENAME_EXCHANGE), so the
 * instance has either its old or exactly the snapshot's file state.
 *
 * The caller (api/snapshots.c) holds the instance's lock and passes the
 * driver's status. Every function returns 0 or a negative errno, err filled. */
#ifndef GR_DAEMON_SNAPSHOT_H
#define GR_DAEMON_SNAPSHOT_H

#include <jansson.h>
#include <stdbool.h>
#include "common/error.h"
#include "daemon/instance/driver.h"

/* Snapshot names: as instance names (1-63 of [a-z0-9-], not starting or
 * ending with '-'). -EINVAL with a message naming the rule. */
int snapshot_name_check(const char *name, struct gr_error *err);

/* Every snapshot of instance, oldest first: array of snapshot.json objects. */
int snapshot_list(const struct driver_env *env, const char *instance, json_t **out, struct gr_error *err);
/* One (-ENOENT naming it). */
int snapshot_get(const struct driver_env *env, const char *instance, const char *snap, json_t **out,
		 struct gr_error *err);
/* The first free name of snap0, snap1, ... */
int snapshot_next_name(const struct driver_env *env, const char *instance, char out[64], struct gr_error *err);

/* -EEXIST when snap exists, -EBUSY while the instance is starting or
 * restarting (its container comes and goes), -ENOTSUP for a type without
 * snapshots. *out (may be NULL) gets the new snapshot.json. */
int snapshot_create(const struct driver_env *env, const struct instance_spec *spec, const struct instance_status *st,
		    const char *snap, json_t **out, struct gr_error *err);
/* -EBUSY ("stop it first") unless stopped; -ENOENT without that snapshot. */
int snapshot_restore(const struct driver_env *env, const struct instance_spec *spec,
		     const struct instance_status *st, const char *snap, struct gr_error *err);
/* -ENOENT when there is none. */
int snapshot_delete(const struct driver_env *env, const char *instance, const char *snap, struct gr_error *err);

#endif
