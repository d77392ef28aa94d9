/* /1.0/instances/NAME/snapshots (snapshot.h; README "Snapshots"):
 *   GET    .../snapshots                 URLs, or objects with ?recursion=1
 *   POST   .../snapshots {"name"?}       async; name defaults to the first free snapN
 *   GET    .../snapshots/SNAP
 *   DELETE .../snapshots/SNAP            async
 *   POST   .../snapshots/SNAP/restore    async; the instance must be stopped
 * Handlers check what they can at once (400/404/409); the operations hold
 * the instance's lock and check again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "daemon/api/instances.h"
#include "daemon/api/server.h"
#include "daemon/operations.h"
#include "daemon/snapshot.h"
#include "daemon/store/store.h"
#include "daemon/validate.h"

/* The instance as the driver needs it: the row and a spec pointing into it. */
struct snap_inst {
	struct store_instance *row;
	struct instance_spec spec;
	const struct instance_driver *drv;
};

static void snap_inst_clear(struct snap_inst *i)
{
	store_instance_free(i->row);
	memset(i, 0, sizeof(*i));
}

static int snap_inst_load(struct daemon *d, const char *name, struct snap_inst *i, struct gr_error *err)
{
	memset(i, 0, sizeof(*i));
	int rc = validate_instance_name(name, err);
	if (rc < 0 || (rc = store_instance_get(d->store, name, &i->row, err)) < 0)
		return rc;
	if (i->row->state == STORE_CREATING || i->row->state == STORE_DELETING)
		return gr_error_set(err, EBUSY, "instance %s is being %s", name,
				    i->row->state == STORE_CREATING ? "created" : "deleted");
	i->spec = (struct instance_spec){ .id = i->row->id, .name = i->row->name, .type = i->row->type,
					  .image = i->row->image, .config = i->row->config };
	i->drv = instance_driver_for(i->row->type);
	if (!i->drv)
		return gr_error_set(err, ENOTSUP, "instance %s: no driver for type '%s'", name, i->row->type);
	return 0;
}

static int snap_inst_status(struct daemon *d, struct snap_inst *i, struct instance_status *st, struct gr_error *err)
{
	memset(st, 0, sizeof(*st));
	st->exit_code = -1;
	return i->drv->status(&d->env, &i->spec, st, err);
}

struct snap_arg {
	char *instance, *snap;
};

static void snap_arg_free(void *p)
{
	struct snap_arg *a = p;
	free(a->instance);
	free(a->snap);
	free(a);
}

static void emit(struct daemon *d, const char *action, const char *instance, const char *snap)
{
	instance_emit(d, action, instance, json_pack("{s:s}", "snapshot", snap));
}

static int op_snapshot_create(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	struct snap_arg *a = arg;
	instance_lock(d, a->instance);
	_cleanup_(snap_inst_clear) struct snap_inst i = { 0 };
	struct instance_status st;
	json_t *j = NULL;
	int rc = snap_inst_load(d, a->instance, &i, err);
	if (rc == 0 && (rc = snap_inst_status(d, &i, &st, err)) == 0)
		rc = snapshot_create(&d->env, &i.spec, &st, a->snap, &j, err);
	instance_unlock(d, a->instance);
	if (rc < 0)
		return rc;
	op_set_metadata(op, j);
	emit(d, "instance-snapshot-created", a->instance, a->snap);
	return 0;
}

static int op_snapshot_restore(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct snap_arg *a = arg;
	instance_lock(d, a->instance);
	_cleanup_(snap_inst_clear) struct snap_inst i = { 0 };
	struct instance_status st;
	int rc = snap_inst_load(d, a->instance, &i, err);
	if (rc == 0 && (rc = snap_inst_status(d, &i, &st, err)) == 0)
		rc = snapshot_restore(&d->env, &i.spec, &st, a->snap, err);
	instance_unlock(d, a->instance);
	if (rc < 0)
		return rc;
	emit(d, "instance-snapshot-restored", a->instance, a->snap);
	return 0;
}

static int op_snapshot_delete(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct snap_arg *a = arg;
	instance_lock(d, a->instance);
	_cleanup_(snap_inst_clear) struct snap_inst i = { 0 };
	int rc = snap_inst_load(d, a->instance, &i, err);
	if (rc == 0)
		rc = snapshot_delete(&d->env, a->instance, a->snap, err);
	instance_unlock(d, a->instance);
	if (rc < 0)
		return rc;
	emit(d, "instance-snapshot-deleted", a->instance, a->snap);
	return 0;
}

static void start(struct daemon *d, struct http_reply *rp, const char *description, const char *instance,
		  const char *snap, op_fn fn)
{
	struct snap_arg *a = calloc(1, sizeof(*a));
	if (!a || !(a->instance = strdup(instance)) || !(a->snap = strdup(snap))) {
		if (a)
			free(a->instance);
		free(a);
		reply_error(rp, 500, "out of memory");
		return;
	}
	struct op_params p = { .description = description, .klass = "task", .instance = instance, .fn = fn,
			       .arg = a, .free_arg = snap_arg_free };
	reply_op_start(d, rp, &p);
}

/* --- handlers ------------------------------------------------------------------ */

static void get_snapshots(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct gr_error err = { 0 };
	_cleanup_(snap_inst_clear) struct snap_inst i = { 0 };
	gr_autojson json_t *list = NULL;
	int rc = snap_inst_load(d, rq->route_args[0], &i, &err);
	if (rc == -EBUSY)
		rc = 0; /* being created or deleted: what is there is listed */
	if (rc < 0 || (rc = snapshot_list(&d->env, rq->route_args[0], &list, &err)) < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "/1.0/instances/%s/snapshots", rq->route_args[0]);
	reply_list(rq, rp, list, prefix);
}

static void post_snapshots(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *name = NULL, *key;
	json_t *v;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "name") != 0) {
			char q[VALIDATE_QUOTE_MAX];
			reply_error(rp, 400, "unknown key %s (known: name)", validate_quote(key, q, sizeof(q)));
			return;
		}
	}
	_cleanup_(snap_inst_clear) struct snap_inst i = { 0 };
	int rc = gr_json_get_string(body, "", "name", &name, &err); /* 1: there, 0: not */
	if (rc >= 0)
		rc = snap_inst_load(d, rq->route_args[0], &i, &err);
	char gen[64];
	if (rc == 0 && !name && (rc = snapshot_next_name(&d->env, i.row->name, gen, &err)) == 0)
		name = gen;
	if (rc == 0)
		rc = snapshot_name_check(name, &err);
	json_t *existing = NULL;
	if (rc == 0 && snapshot_get(&d->env, i.row->name, name, &existing, &(struct gr_error){ 0 }) == 0) {
		json_decref(existing);
		rc = gr_error_set(&err, EEXIST, "instance %s already has a snapshot %s", i.row->name, name);
	}
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	start(d, rp, "Snapshotting instance", i.row->name, name, op_snapshot_create);
}

/* The instance and the snapshot named by the route, 400/404 answered. */
static int route_snapshot(struct daemon *d, const struct http_request *rq, struct http_reply *rp, json_t **snap,
			  struct snap_inst *i)
{
	struct gr_error err = { 0 };
	int rc = snap_inst_load(d, rq->route_args[0], i, &err);
	if (rc == 0 || rc == -EBUSY) {
		rc = snapshot_name_check(rq->route_args[1], &err);
		if (rc == 0)
			rc = snapshot_get(&d->env, rq->route_args[0], rq->route_args[1], snap, &err);
	}
	if (rc < 0)
		reply_gr_error(rp, rc, &err);
	return rc;
}

static void get_snapshot(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	_cleanup_(snap_inst_clear) struct snap_inst i = { 0 };
	json_t *snap = NULL;
	if (route_snapshot(d, rq, rp, &snap, &i) < 0)
		return;
	reply_sync(rp, snap);
}

static void delete_snapshot(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	_cleanup_(snap_inst_clear) struct snap_inst i = { 0 };
	gr_autojson json_t *snap = NULL;
	if (route_snapshot(d, rq, rp, &snap, &i) < 0)
		return;
	start(d, rp, "Deleting snapshot", rq->route_args[0], rq->route_args[1], op_snapshot_delete);
}

static void restore_snapshot(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	_cleanup_(snap_inst_clear) struct snap_inst i = { 0 };
	gr_autojson json_t *snap = NULL;
	if (route_snapshot(d, rq, rp, &snap, &i) < 0)
		return;
	if (!i.drv) { /* route_snapshot lets an instance being created or deleted through */
		reply_error(rp, 409, "instance %s is being %s", i.row->name,
			    i.row->state == STORE_CREATING ? "created" : "deleted");
		return;
	}
	struct gr_error err = { 0 };
	struct instance_status st;
	int rc = snap_inst_status(d, &i, &st, &err);
	if (rc == 0 && st.state != INSTANCE_STOPPED)
		rc = gr_error_set(&err, EBUSY, "instance %s is %s: stop it first (a snapshot is restored into a stopped "
				  "instance)", i.row->name, st.state == INSTANCE_PAUSED ? "paused" : "running");
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	start(d, rp, "Restoring snapshot", rq->route_args[0], rq->route_args[1], op_snapshot_restore);
}

const struct route snapshot_routes[] = {
	{ "GET", "/1.0/instances/{}/snapshots", get_snapshots },
	{ "POST", "/1.0/instances/{}/snapshots", post_snapshots },
	{ "GET", "/1.0/instances/{}/snapshots/{}", get_snapshot },
	{ "DELETE", "/1.0/instances/{}/snapshots/{}", delete_snapshot },
	{ "POST", "/1.0/instances/{}/snapshots/{}/restore", restore_snapshot },
	{ 0 },
};
