/* /1.0/volumes (volume.h; README "Volumes"):
 *   GET    /1.0/volumes                          URLs, or objects with ?recursion=1
 *   POST   /1.0/volumes {"name","type","size"}   sync: the new volume
 *   GET    /1.0/volumes/NAME
 *   DELETE /1.0/volumes/NAME                     async; 409 naming the instances while attached
 *   POST   /1.0/volumes/NAME/attachments {"instance","path","readonly"}   async
 *   DELETE /1.0/volumes/NAME/attachments/INSTANCE                        async
 * Attach and detach hold the instance's lock and need it stopped: a volume
 * is mounted when its instance starts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "daemon/api/instances.h"
#include "daemon/api/server.h"
#include "daemon/operations.h"
#include "daemon/store/store.h"
#include "daemon/validate.h"
#include "daemon/volume.h"

struct vol_arg {
	char *volume, *instance, *path;
	bool readonly;
};

static void vol_arg_free(void *p)
{
	struct vol_arg *a = p;
	free(a->volume);
	free(a->instance);
	free(a->path);
	free(a);
}

static struct vol_arg *vol_arg_new(const char *volume, const char *instance, const char *path, bool readonly)
{
	struct vol_arg *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->readonly = readonly;
	if (!(a->volume = strdup(volume)) || (instance && !(a->instance = strdup(instance))) ||
	    (path && !(a->path = strdup(path)))) {
		vol_arg_free(a);
		return NULL;
	}
	return a;
}

static void start(struct daemon *d, struct http_reply *rp, const char *description, const char *instance, op_fn fn,
		  struct vol_arg *a)
{
	if (!a) {
		reply_error(rp, 500, "out of memory");
		return;
	}
	struct op_params p = { .description = description, .klass = "task", .instance = instance, .fn = fn,
			       .arg = a, .free_arg = vol_arg_free };
	reply_op_start(d, rp, &p);
}

/* The instance must exist, be a settled container and be stopped. */
/* type (optional): the instance's type. */
static int check_stopped(struct daemon *d, const char *name, const char *doing, char type[32], struct gr_error *err)
{
	struct store_instance *row = NULL;
	int rc = validate_instance_name(name, err);
	if (rc < 0 || (rc = store_instance_get(d->store, name, &row, err)) < 0)
		return rc;
	const struct instance_driver *drv = instance_driver_for(row->type);
	struct instance_spec spec = { .id = row->id, .name = row->name, .type = row->type, .image = row->image,
				      .config = row->config };
	struct instance_status st = { .exit_code = -1 };
	if (type)
		snprintf(type, 32, "%s", row->type);
	if (row->state == STORE_CREATING || row->state == STORE_DELETING)
		rc = gr_error_set(err, EBUSY, "instance %s is being %s", name,
				  row->state == STORE_CREATING ? "created" : "deleted");
	else if (!drv)
		rc = gr_error_set(err, ENOTSUP, "instance %s: no driver for type '%s'", name, row->type);
	else if ((rc = drv->status(&d->env, &spec, &st, err)) == 0 && st.state != INSTANCE_STOPPED)
		rc = gr_error_set(err, EBUSY, "instance %s is %s: stop it first (volumes are %s when it starts)", name,
				  st.state == INSTANCE_PAUSED ? "paused" : "running", doing);
	store_instance_free(row);
	return rc;
}

/* --- operations ------------------------------------------------------------------ */

static int op_delete(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct vol_arg *a = arg;
	return volume_delete(d, a->volume, err);
}

static int op_attach(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct vol_arg *a = arg;
	instance_lock(d, a->instance);
	char type[32];
	int rc = check_stopped(d, a->instance, "mounted", type, err);
	if (rc == 0)
		rc = volume_attach(d, a->volume, a->instance, type, a->path, a->readonly, err);
	instance_unlock(d, a->instance);
	if (rc == 0)
		instance_emit(d, "instance-volume-attached", a->instance,
			      json_pack("{s:s, s:s, s:b}", "volume", a->volume, "path", a->path, "readonly", a->readonly));
	return rc;
}

static int op_detach(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct vol_arg *a = arg;
	instance_lock(d, a->instance);
	int rc = check_stopped(d, a->instance, "unmounted", NULL, err);
	if (rc == 0)
		rc = volume_detach(d, a->volume, a->instance, err);
	instance_unlock(d, a->instance);
	if (rc == 0)
		instance_emit(d, "instance-volume-detached", a->instance, json_pack("{s:s}", "volume", a->volume));
	return rc;
}

/* --- handlers -------------------------------------------------------------------- */

static void get_volumes(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct gr_error err = { 0 };
	gr_autojson json_t *list = NULL;
	int rc = volume_list(d, &list, &err);
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	reply_list(rq, rp, list, "/1.0/volumes");
}

static void post_volumes(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	static const char *const keys[] = { "name", "type", "size", NULL };
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *name = NULL, *type = NULL;
	uint64_t size = 0;
	/* The getters return 1 for a member that is there, 0 for one that is not. */
	int rc = request_check_keys(body, "", keys, &err);
	if (rc == 0 && (rc = gr_json_get_string(body, "", "name", &name, &err)) >= 0 &&
	    (rc = gr_json_get_string(body, "", "type", &type, &err)) >= 0) {
		rc = 0;
		json_t *s = json_object_get(body, "size");
		if (json_is_string(s))
			rc = validate_size("size", json_string_value(s), &size, &err);
		else if (json_is_integer(s) && json_integer_value(s) >= 0)
			size = (uint64_t)json_integer_value(s);
		else if (s && !json_is_null(s))
			rc = gr_error_set(&err, EINVAL, "size: expected bytes or a size with a unit (\"10GiB\")");
	}
	if (rc == 0 && !name)
		rc = gr_error_set(&err, EINVAL, "name: required (1-63 characters of a-z, 0-9 and '-')");
	gr_autojson json_t *out = NULL;
	if (rc == 0)
		rc = volume_create(d, name, type ? type : "dir", size, &out, &err);
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	reply_sync(rp, json_incref(out));
}

static void get_volume(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct gr_error err = { 0 };
	json_t *out = NULL;
	int rc = volume_info(d, rq->route_args[0], &out, &err);
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	reply_sync(rp, out);
}

static void delete_volume(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct gr_error err = { 0 };
	gr_autojson json_t *info = NULL;
	int rc = volume_info(d, rq->route_args[0], &info, &err);
	if (rc == 0 && json_array_size(json_object_get(info, "attachments")) > 0) {
		char list[512] = "";
		size_t o = 0, i;
		json_t *a;
		json_array_foreach(json_object_get(info, "attachments"), i, a) {
			if (o < sizeof(list))
				o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
						      json_string_value(json_object_get(a, "instance")));
		}
		rc = gr_error_set(&err, EBUSY, "volume %s is attached to %s: detach it first", rq->route_args[0], list);
	}
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	start(d, rp, "Deleting volume", NULL, op_delete, vol_arg_new(rq->route_args[0], NULL, NULL, false));
}

static void post_attachments(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	static const char *const keys[] = { "instance", "path", "readonly", NULL };
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *instance = NULL, *path = NULL;
	bool readonly = false;
	gr_autojson json_t *info = NULL;
	int rc = request_check_keys(body, "", keys, &err);
	if (rc == 0 && (rc = gr_json_get_string(body, "", "instance", &instance, &err)) >= 0 &&
	    (rc = gr_json_get_string(body, "", "path", &path, &err)) >= 0 &&
	    (rc = gr_json_get_bool(body, "", "readonly", &readonly, &err)) >= 0)
		rc = 0;
	if (rc == 0 && !instance)
		rc = gr_error_set(&err, EINVAL, "instance: required");
	if (rc == 0 && !path)
		rc = gr_error_set(&err, EINVAL, "path: required (where the volume appears in the instance)");
	char itype[32];
	if (rc == 0 && (rc = volume_path_check(path, &err)) == 0 &&
	    (rc = volume_info(d, rq->route_args[0], &info, &err)) == 0 &&
	    (rc = check_stopped(d, instance, "mounted", itype, &err)) == 0) {
		const char *type = json_string_value(json_object_get(info, "type"));
		rc = volume_fits(rq->route_args[0], type ? type : "", itype, &err);
	}
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	start(d, rp, "Attaching volume", instance, op_attach, vol_arg_new(rq->route_args[0], instance, path, readonly));
}

static void delete_attachment(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct gr_error err = { 0 };
	gr_autojson json_t *info = NULL;
	const char *instance = rq->route_args[1];
	int rc = volume_info(d, rq->route_args[0], &info, &err);
	if (rc == 0 && (rc = validate_instance_name(instance, &err)) == 0) {
		bool found = false;
		size_t i;
		json_t *a;
		json_array_foreach(json_object_get(info, "attachments"), i, a)
			found = found || strcmp(json_string_value(json_object_get(a, "instance")), instance) == 0;
		if (!found)
			rc = gr_error_set(&err, ENOENT, "volume %s is not attached to instance %s", rq->route_args[0],
					  instance);
	}
	if (rc == 0)
		rc = check_stopped(d, instance, "unmounted", NULL, &err);
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	start(d, rp, "Detaching volume", instance, op_detach, vol_arg_new(rq->route_args[0], instance, NULL, false));
}

const struct route volume_routes[] = {
	{ "GET", "/1.0/volumes", get_volumes },
	{ "POST", "/1.0/volumes", post_volumes },
	{ "GET", "/1.0/volumes/{}", get_volume },
	{ "DELETE", "/1.0/volumes/{}", delete_volume },
	{ "POST", "/1.0/volumes/{}/attachments", post_attachments },
	{ "DELETE", "/1.0/volumes/{}/attachments/{}", delete_attachment },
	{ 0 },
};
