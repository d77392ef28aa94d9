/* The /1.0/instances routes (README "REST API"): handlers run on the server
 * thread and only read (the store, the driver's status files); every change
 * is an async operation on a worker thread that holds the instance's lock
 * (instance_lock) around its driver calls and database updates.
 *
 * The database holds the desired state; what a GET reports comes from the
 * driver's status (the supervisor's files), so it is what really runs.
 * Checks that make a request impossible now (start a running instance...)
 * answer 409 at once from the handler and are made again under the lock by
 * the operation, which fails with the same message if things changed in
 * between. */
#include "daemon/api/instances.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/api/server.h"
#include "daemon/events.h"
#include "daemon/image/store.h"
#include "daemon/operations.h"
#include "daemon/store/store.h"
#include "daemon/validate.h"
#include "daemon/network/addr.h"
#include "daemon/network/network.h"
#include "daemon/volume.h"

#define DEFAULT_STOP_TIMEOUT 30
#define EXEC_OUTPUT_MAX (1u << 20)
#define EXEC_WS_WAIT_MS 60000
#define LOGS_MAX (64u << 20)
#define NEVER "0001-01-01T00:00:00Z"

/* --- per-instance locks ---------------------------------------------------- */

struct instance_lock {
	struct instance_lock *next;
	char name[INSTANCE_NAME_MAX + 1];
	unsigned users;               /* holders + waiters; the entry goes at 0 */
	bool held;
	pthread_cond_t cv;
};

void instance_lock(struct daemon *d, const char *name)
{
	pthread_mutex_lock(&d->locks_mu);
	struct instance_lock *l;
	for (l = d->locks; l; l = l->next)
		if (strcmp(l->name, name) == 0)
			break;
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l) {
			/* Out of memory: nothing sane to do but wait and retry. */
			pthread_mutex_unlock(&d->locks_mu);
			usleep(10000);
			instance_lock(d, name);
			return;
		}
		snprintf(l->name, sizeof(l->name), "%s", name);
		pthread_cond_init(&l->cv, NULL);
		l->next = d->locks;
		d->locks = l;
	}
	l->users++;
	while (l->held)
		pthread_cond_wait(&l->cv, &d->locks_mu);
	l->held = true;
	pthread_mutex_unlock(&d->locks_mu);
}

void instance_unlock(struct daemon *d, const char *name)
{
	pthread_mutex_lock(&d->locks_mu);
	for (struct instance_lock **pp = &d->locks; *pp; pp = &(*pp)->next) {
		struct instance_lock *l = *pp;
		if (strcmp(l->name, name) != 0)
			continue;
		l->held = false;
		if (--l->users == 0) {
			*pp = l->next;
			pthread_cond_destroy(&l->cv);
			free(l);
		} else {
			pthread_cond_signal(&l->cv);
		}
		break;
	}
	pthread_mutex_unlock(&d->locks_mu);
}

struct held_lock {
	struct daemon *d;
	const char *name;
};
static void held_unlockp(struct held_lock *h)
{
	if (h->d)
		instance_unlock(h->d, h->name);
}
#define INSTANCE_LOCK(d, name) \
	_cleanup_(held_unlockp) struct held_lock _held_ = (instance_lock((d), (name)), (struct held_lock){ (d), (name) })

void instance_emit(struct daemon *d, const char *action, const char *name, json_t *context)
{
	char source[96];
	snprintf(source, sizeof(source), "/1.0/instances/%s", name);
	json_t *m = json_pack("{s:s, s:s, s:o}", "action", action, "source", source, "context",
			      context ? context : json_object());
	if (m)
		events_emit(d, "lifecycle", m);
}

/* --- instances as the driver sees them --------------------------------------- */

/* A database row and the driver's view of it (spec points into row). */
struct loaded {
	struct store_instance *row;
	struct instance_spec spec;
	char **command;
	const struct instance_driver *drv;
	json_t *volumes;              /* volume_mounts(), for the driver's start */
	struct instance_nic nic;      /* spec.nic points here when it has one */
};

static void loaded_clear(struct loaded *l)
{
	store_instance_free(l->row);
	gr_strv_free(l->command);
	json_decref(l->volumes);
	memset(l, 0, sizeof(*l));
}
#define gr_autoloaded _cleanup_(loaded_clear)

static int spec_of(struct store_instance *row, struct loaded *l, struct gr_error *err)
{
	l->row = row;
	l->spec = (struct instance_spec){ .id = row->id, .name = row->name, .type = row->type, .image = row->image,
					  .config = row->config };
	if (row->command) {
		l->command = calloc(json_array_size(row->command) + 1, sizeof(char *));
		if (!l->command)
			return gr_error_set(err, ENOMEM, "out of memory");
		size_t i;
		json_t *v;
		json_array_foreach(row->command, i, v) {
			if (!(l->command[i] = strdup(json_is_string(v) ? json_string_value(v) : "")))
				return gr_error_set(err, ENOMEM, "out of memory");
		}
		l->spec.command = l->command;
	}
	l->drv = instance_driver_for(row->type);
	if (!l->drv)
		return gr_error_set(err, ENOTSUP, "instance %s: no driver for type '%s'", row->name, row->type);
	return 0;
}

static int load(struct daemon *d, const char *name, struct loaded *l, struct gr_error *err)
{
	memset(l, 0, sizeof(*l));
	struct store_instance *row = NULL;
	int rc = store_instance_get(d->store, name, &row, err);
	if (rc < 0 || (rc = spec_of(row, l, err)) < 0)
		return rc;
	/* The attached volumes, mounted by a start. */
	if ((rc = volume_mounts(d, name, &l->volumes, err)) < 0)
		return rc;
	l->spec.volumes = l->volumes;
	/* Its NIC, plugged in by a start. */
	if ((rc = network_instance_nic(d, name, &l->nic, err)) == 0)
		l->spec.nic = &l->nic;
	else if (rc != -ENOENT)
		return rc;
	return 0;
}

static void status_name(const struct store_instance *row, const struct instance_status *st, int st_rc,
			const char **name, int *code)
{
	if (row->state == STORE_CREATING || row->state == STORE_DELETING) {
		*name = "Pending";
		*code = 105;
		return;
	}
	if (st_rc < 0) {
		*name = "Error";
		*code = 112;
		return;
	}
	switch (st->state) {
	case INSTANCE_RUNNING:
		if (st->starting) {
			*name = "Starting";
			*code = 106;
			return;
		}
		*name = "Running"; *code = 103; return;
	case INSTANCE_PAUSED: *name = "Frozen"; *code = 110; return;
	case INSTANCE_STOPPED: *name = "Stopped"; *code = 102; return;
	default: *name = "Error"; *code = 112; return;
	}
}

static int driver_status(struct daemon *d, struct loaded *l, struct instance_status *st, struct gr_error *err)
{
	memset(st, 0, sizeof(*st));
	st->exit_code = -1;
	return l->drv->status(&d->env, &l->spec, st, err);
}

static const char *stop_reason_of(const struct store_instance *row, const struct instance_status *st, int st_rc)
{
	/* Also while the restart policy waits to run it again: why it stopped last. */
	if (st_rc == 0 && (st->state == INSTANCE_STOPPED || st->restarting) && st->stop_reason[0])
		return st->stop_reason;
	return row->stop_reason ? row->stop_reason : "";
}

/* "network": the NIC ({"name","hwaddr","ipv4"}) or null; and while it runs,
 * Incus's "state": {"network": {"eth0": {"hwaddr","addresses":[...]}}}. */
static void add_network(json_t *j, const struct loaded *l, bool running)
{
	if (!l->spec.nic) {
		json_object_set_new(j, "network", json_null());
		return;
	}
	const struct instance_nic *n = l->spec.nic;
	char mac[MAC_STR_MAX], addr[IPV4_STR_MAX], mask[8];
	mac_format(n->mac, mac);
	ipv4_format(n->addr, addr);
	snprintf(mask, sizeof(mask), "%u", n->prefix);
	json_object_set_new(j, "network", json_pack("{s:s, s:s, s:s}", "name", n->network, "hwaddr", mac, "ipv4", addr));
	if (running)
		json_object_set_new(j, "state",
				    json_pack("{s:{s:{s:s, s:[{s:s, s:s, s:s, s:s}]}}}", "network", "eth0", "hwaddr", mac,
					      "addresses", "family", "inet", "address", addr, "netmask", mask, "scope",
					      "global"));
}

static json_t *instance_json(struct daemon *d, struct loaded *l)
{
	struct instance_status st;
	struct gr_error err = { 0 };
	int rc = driver_status(d, l, &st, &err);
	if (rc < 0)
		gr_debug("instance %s: status: %s", l->row->name, err.msg);
	const char *status;
	int code;
	status_name(l->row, &st, rc, &status, &code);
	/* image: the alias it was created from (the fingerprint when none);
	 * image_fingerprint: the image it runs, pinned at creation. */
	json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:O, s:O, s:s, s:s, s:s, s:s, s:s}", "name", l->row->name, "type",
			      l->row->type, "status", status, "status_code", code, "config", l->row->config, "command",
			      l->row->command ? l->row->command : json_null(), "image",
			      l->row->image_alias && *l->row->image_alias ? l->row->image_alias : l->row->image,
			      "created_at", l->row->created_at, "last_used_at",
			      l->row->last_used_at ? l->row->last_used_at : NEVER, "stop_reason",
			      stop_reason_of(l->row, &st, rc), "image_fingerprint", l->row->image);
	if (j)
		add_network(j, l, rc == 0 && (st.state == INSTANCE_RUNNING || st.state == INSTANCE_PAUSED));
	if (j && rc == 0 && st.engine[0])
		json_object_set_new(j, "engine", json_string(st.engine));
	return j;
}

/* --- request helpers ---------------------------------------------------------- */

/* The instance named by the route, with a 400 for a bad name and a 404 for
 * an unknown one. */
static int route_instance(struct daemon *d, const struct http_request *rq, struct http_reply *rp, struct loaded *l)
{
	struct gr_error err = { 0 };
	const char *name = rq->route_args[0];
	int rc = validate_instance_name(name, &err);
	if (rc == 0)
		rc = load(d, name, l, &err);
	if (rc < 0)
		reply_gr_error(rp, rc, &err);
	return rc;
}

static void start_op(struct daemon *d, struct http_reply *rp, const char *description, const char *klass,
		     const char *name, op_fn fn, void *arg, void (*free_arg)(void *))
{
	struct op_params p = { .description = description, .klass = klass, .instance = name, .may_cancel = false,
			       .fn = fn, .arg = arg, .free_arg = free_arg };
	reply_op_start(d, rp, &p);
}

static int query_int(const struct http_request *rq, const char *key, int def)
{
	char buf[32];
	int64_t v;
	if (http_query_get(rq, key, buf, sizeof(buf)) != 1 || gr_parse_i64(buf, &v) < 0 || v < INT_MIN || v > INT_MAX)
		return def;
	return (int)v;
}

static char **strv_from_array(const json_t *a)
{
	char **v = calloc(json_array_size(a) + 1, sizeof(char *));
	if (!v)
		return NULL;
	size_t i;
	json_t *x;
	json_array_foreach(a, i, x) {
		if (!(v[i] = strdup(json_string_value(x)))) {
			gr_strv_free(v);
			return NULL;
		}
	}
	return v;
}

/* --- GET /1.0/instances ------------------------------------------------------- */

static void get_instances(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct gr_error err = { 0 };
	int recursion = query_int(rq, "recursion", 0);
	json_t *out = json_array();
	if (recursion <= 0) {
		gr_autostrv char **names = NULL;
		int rc = store_instance_names(d->store, &names, &err);
		if (rc < 0) {
			json_decref(out);
			reply_gr_error(rp, rc, &err);
			return;
		}
		for (char **n = names; *n; n++) {
			char url[96];
			snprintf(url, sizeof(url), "/1.0/instances/%s", *n);
			json_array_append_new(out, json_string(url));
		}
		reply_sync(rp, out);
		return;
	}
	struct store_instance *rows = NULL;
	size_t n = 0;
	int rc = store_instance_list(d->store, &rows, &n, &err);
	if (rc < 0) {
		json_decref(out);
		reply_gr_error(rp, rc, &err);
		return;
	}
	/* Every NIC in one query, by instance id (as the rows are not). */
	struct instance_nic *nics = NULL;
	size_t n_nics = 0;
	if (network_instance_nics(d, &nics, &n_nics, &err) < 0)
		gr_warn("instances: %s", err.msg);
	for (size_t i = 0; i < n; i++) {
		/* The row moves into a loaded and is freed with it. */
		struct store_instance *row = malloc(sizeof(*row));
		if (!row)
			break;
		*row = rows[i];
		memset(&rows[i], 0, sizeof(rows[i]));
		gr_autoloaded struct loaded l = { 0 };
		if (spec_of(row, &l, &err) < 0) { /* l owns row from here */
			gr_warn("instance %s: %s", row->name, err.msg);
			continue;
		}
		const struct instance_nic *nic = network_nic_find(nics, n_nics, row->id);
		if (nic) {
			l.nic = *nic;
			l.spec.nic = &l.nic;
		}
		json_t *j = instance_json(d, &l);
		if (j)
			json_array_append_new(out, j);
	}
	store_instance_list_free(rows, n);
	free(nics);
	reply_sync(rp, out);
}

/* --- POST /1.0/instances: create ---------------------------------------------- */

struct create_arg {
	char *name;
	bool start;
};

static void create_arg_free(void *p)
{
	struct create_arg *a = p;
	free(a->name);
	free(a);
}

/* Deletes the instance's row (its NIC, forwards and attachments go with
 * it); the networks' DNS names and rules follow. */
static int row_delete(struct daemon *d, const char *name, struct gr_error *err)
{
	int rc = store_instance_delete(d->store, name, err);
	if (rc == 0)
		network_instance_released(d);
	return rc;
}

/* Removes what a failed create made: the workload, its files, the row. */
static void create_rollback(struct daemon *d, struct loaded *l)
{
	struct gr_error e = { 0 };
	if (l->drv) {
		if (l->drv->stop(&d->env, &l->spec, 0, true, &e) < 0)
			gr_debug("rollback of %s: stop: %s", l->spec.name, e.msg);
		if (l->drv->remove(&d->env, &l->spec, &e) < 0)
			gr_warn("rollback of %s: remove: %s", l->spec.name, e.msg);
	}
	if (row_delete(d, l->spec.name, &e) < 0 && e.code != ENOENT)
		gr_warn("rollback of %s: %s", l->spec.name, e.msg);
}

static int op_create(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct create_arg *a = arg;
	INSTANCE_LOCK(d, a->name);
	gr_autoloaded struct loaded l = { 0 };
	int rc = load(d, a->name, &l, err);
	if (rc < 0) {
		if (l.row)
			create_rollback(d, &l);
		else if (rc != -ENOENT)
			row_delete(d, a->name, &(struct gr_error){ 0 });
		return rc;
	}
	if ((rc = l.drv->create(&d->env, &l.spec, err)) < 0 ||
	    (rc = store_instance_set_state(d->store, a->name, STORE_STOPPED, err)) < 0) {
		create_rollback(d, &l);
		return rc;
	}
	if (a->start) {
		if ((rc = l.drv->start(&d->env, &l.spec, err)) < 0 ||
		    (rc = store_instance_set_state(d->store, a->name, STORE_RUNNING, err)) < 0) {
			create_rollback(d, &l);
			return gr_error_prefix(err, "instance %s was created but could not start, so it was removed",
					       a->name);
		}
	}
	instance_emit(d, "instance-created", a->name, NULL);
	if (a->start)
		instance_emit(d, "instance-started", a->name, NULL);
	return 0;
}

#define FAIL(code) do { reply_gr_error(rp, (code), &err); return; } while (0)

static void post_instances(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	static const char *const keys[] = { "name", "type", "source", "config", "command", "start", NULL };
	static const char *const source_keys[] = { "type", "alias", "fingerprint", NULL };
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *name = NULL, *type = "container", *stype = NULL, *alias = NULL, *fpref = NULL;
	json_t *source = NULL, *config = NULL, *command = NULL;
	bool start = false;
	int rc;
	if ((rc = request_check_keys(body, "", keys, &err)) < 0 || (rc = gr_json_get_string(body, "", "name", &name, &err)) < 0 ||
	    (rc = gr_json_get_string(body, "", "type", &type, &err)) < 0 ||
	    (rc = gr_json_get_object(body, "", "source", &source, &err)) < 0 ||
	    (rc = gr_json_get_bool(body, "", "start", &start, &err)) < 0)
		FAIL(rc);
	if (!name) {
		rc = gr_error_set(&err, EINVAL, "name: required (1-63 characters of a-z, 0-9 and '-')");
		FAIL(rc);
	}
	if ((rc = validate_instance_name(name, &err)) < 0)
		FAIL(rc);
	if (!type)
		type = "container";
	const struct instance_driver *drv = instance_driver_for(type);
	if (!drv) {
		char q[VALIDATE_QUOTE_MAX];
		rc = gr_error_set(&err, EINVAL, "type: unknown instance type %s (known: container, virtual-machine)",
				  validate_quote(type, q, sizeof(q)));
		FAIL(rc);
	}
	if (!source) {
		rc = gr_error_set(&err, EINVAL, "source: required, e.g. {\"type\":\"image\",\"alias\":\"busybox\"}");
		FAIL(rc);
	}
	if ((rc = request_check_keys(source, "source", source_keys, &err)) < 0 ||
	    (rc = gr_json_get_string(source, "source", "type", &stype, &err)) < 0 ||
	    (rc = gr_json_get_string(source, "source", "alias", &alias, &err)) < 0 ||
	    (rc = gr_json_get_string(source, "source", "fingerprint", &fpref, &err)) < 0)
		FAIL(rc);
	if (stype && strcmp(stype, "image") != 0) {
		char q[VALIDATE_QUOTE_MAX];
		rc = gr_error_set(&err, EINVAL, "source.type: %s is not supported (only \"image\")",
				  validate_quote(stype, q, sizeof(q)));
		FAIL(rc);
	}
	/* The image: an alias (or a fingerprint, or a unique prefix of one) now
	 * resolved to the fingerprint the instance pins (image/store.h). */
	if ((alias && fpref) || (!alias && !fpref) || (alias && (!*alias || strlen(alias) > 255)) ||
	    (fpref && !*fpref)) {
		char q[VALIDATE_QUOTE_MAX];
		rc = gr_error_set(&err, EINVAL, "source: give one of alias (e.g. \"busybox\") and fingerprint%s%s",
				  alias ? ", not " : "", alias ? validate_quote(alias, q, sizeof(q)) : "");
		FAIL(rc);
	}
	char image_fp[IMAGE_FP_HEX];
	if (!d->images)
		FAIL(gr_error_set(&err, EIO, "the image store is not available (see gureumd's log)"));
	if ((rc = image_store_resolve(d->images, alias ? alias : fpref, image_fp, &err)) < 0)
		FAIL(rc);
	config = json_object_get(body, "config");
	if (config && json_is_null(config))
		config = NULL;
	if ((rc = validate_config(config, &err)) < 0)
		FAIL(rc);
	command = json_object_get(body, "command");
	if (command && (json_is_null(command) || (json_is_array(command) && json_array_size(command) == 0)))
		command = NULL;
	if (command && (rc = validate_command("command", command, &err)) < 0)
		FAIL(rc);

	/* The driver's own checks (the image exists, values it cannot honour). */
	gr_autojson json_t *cfg = config ? json_incref(config) : json_object();
	struct instance_spec spec = { .name = name, .type = type, .image = image_fp, .config = cfg };
	gr_autostrv char **argv = NULL;
	if (command) {
		if (!(argv = strv_from_array(command)))
			FAIL(gr_error_set(&err, ENOMEM, "out of memory"));
		spec.command = argv;
	}
	if ((rc = drv->validate(&d->env, &spec, &err)) < 0 || (rc = network_instance_check(d, cfg, &err)) < 0)
		FAIL(rc);

	/* The row now, on this thread: a taken name is a 409 at once, and two
	 * creates of one name cannot both pass. The operation does the rest. */
	struct store_instance row = { .name = (char *)name, .type = (char *)type, .image = image_fp,
				      .image_alias = (char *)(alias ? alias : ""),
				      .config = cfg, .command = command, .state = STORE_CREATING };
	if ((rc = store_instance_insert(d->store, &row, NULL, &err)) < 0)
		FAIL(rc);
	/* Its address now too: a taken static address is a clear error at once. */
	if ((rc = network_instance_allocate(d, name, cfg, &err)) < 0) {
		row_delete(d, name, &(struct gr_error){ 0 });
		FAIL(rc);
	}
	struct create_arg *a = calloc(1, sizeof(*a));
	if (!a || !(a->name = strdup(name))) {
		free(a);
		row_delete(d, name, &(struct gr_error){ 0 });
		reply_error(rp, 500, "out of memory");
		return;
	}
	a->start = start;
	struct op_params p = { .description = start ? "Creating and starting instance" : "Creating instance",
			       .klass = "task", .instance = name, .fn = op_create, .arg = a, .free_arg = create_arg_free };
	if (reply_op_start(d, rp, &p) < 0)
		row_delete(d, name, &(struct gr_error){ 0 });
}

#undef FAIL

/* --- GET/DELETE /1.0/instances/NAME --------------------------------------------- */

static void get_instance(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	gr_autoloaded struct loaded l = { 0 };
	if (route_instance(d, rq, rp, &l) < 0)
		return;
	json_t *j = instance_json(d, &l);
	if (!j) {
		reply_error(rp, 500, "out of memory");
		return;
	}
	reply_sync(rp, j);
}

/* 409 when a create or delete of the instance is under way. */
static int check_settled(const struct store_instance *row, struct gr_error *err)
{
	if (row->state == STORE_CREATING)
		return gr_error_set(err, EBUSY, "instance %s is being created", row->name);
	if (row->state == STORE_DELETING)
		return gr_error_set(err, EBUSY, "instance %s is being deleted", row->name);
	return 0;
}

struct name_arg {
	char *name;
	char action[16];
	int timeout;
	bool force;
};

static void name_arg_free(void *p)
{
	struct name_arg *a = p;
	free(a->name);
	free(a);
}

static struct name_arg *name_arg_new(const char *name)
{
	struct name_arg *a = calloc(1, sizeof(*a));
	if (a && !(a->name = strdup(name))) {
		free(a);
		return NULL;
	}
	return a;
}

/* Records the last stop's reason and exit code from the driver (after a stop). */
static void record_stop(struct daemon *d, struct loaded *l)
{
	struct instance_status st;
	struct gr_error e = { 0 };
	if (driver_status(d, l, &st, &e) == 0 && st.state == INSTANCE_STOPPED) {
		if (store_instance_set_stopped(d->store, l->spec.name, st.stop_reason, st.exit_code, &e) < 0)
			gr_warn("instance %s: %s", l->spec.name, e.msg);
	}
}

static int op_delete(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct name_arg *a = arg;
	INSTANCE_LOCK(d, a->name);
	gr_autoloaded struct loaded l = { 0 };
	int rc = load(d, a->name, &l, err);
	if (rc < 0 || (rc = check_settled(l.row, err)) < 0)
		return rc;
	struct instance_status st;
	struct gr_error e = { 0 };
	rc = driver_status(d, &l, &st, &e);
	bool active = rc < 0 || st.state != INSTANCE_STOPPED;
	if (active && !a->force)
		return gr_error_set(err, EBUSY, "instance %s is %s: stop it first or delete it with force", a->name,
				    rc < 0 ? "in an unknown state" : st.state == INSTANCE_PAUSED ? "paused" : "running");
	if ((rc = store_instance_set_state(d->store, a->name, STORE_DELETING, err)) < 0)
		return rc;
	if (active && (rc = l.drv->stop(&d->env, &l.spec, 0, true, err)) < 0) {
		store_instance_set_state(d->store, a->name, STORE_STOPPED, &e);
		return gr_error_prefix(err, "cannot delete %s", a->name);
	}
	if ((rc = l.drv->remove(&d->env, &l.spec, err)) < 0) {
		/* Left "deleting": reconcile finishes it at the next start, and
		 * another delete may retry. Mark it stopped so a retry is allowed. */
		store_instance_set_state(d->store, a->name, STORE_STOPPED, &e);
		return gr_error_prefix(err, "cannot delete %s", a->name);
	}
	if ((rc = row_delete(d, a->name, err)) < 0)
		return rc;
	instance_emit(d, "instance-deleted", a->name, NULL);
	return 0;
}

static void delete_instance(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	gr_autoloaded struct loaded l = { 0 };
	if (route_instance(d, rq, rp, &l) < 0)
		return;
	struct gr_error err = { 0 };
	bool force = http_query_bool(rq, "force");
	int rc = check_settled(l.row, &err);
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	struct instance_status st;
	rc = driver_status(d, &l, &st, &err);
	if (!force && (rc < 0 || st.state != INSTANCE_STOPPED)) {
		reply_error(rp, 409, "instance %s is %s: stop it first or delete it with force", l.row->name,
			    rc < 0 ? "in an unknown state" : st.state == INSTANCE_PAUSED ? "paused" : "running");
		return;
	}
	struct name_arg *a = name_arg_new(l.row->name);
	if (!a) {
		reply_error(rp, 500, "out of memory");
		return;
	}
	a->force = force;
	start_op(d, rp, "Deleting instance", "task", l.row->name, op_delete, a, name_arg_free);
}

/* --- /1.0/instances/NAME/state ---------------------------------------------------- */

static void get_state(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	gr_autoloaded struct loaded l = { 0 };
	if (route_instance(d, rq, rp, &l) < 0)
		return;
	struct instance_status st;
	struct gr_error err = { 0 };
	int rc = driver_status(d, &l, &st, &err);
	const char *status;
	int code;
	status_name(l.row, &st, rc, &status, &code);
	bool stopped = rc < 0 || st.state == INSTANCE_STOPPED;
	if (!stopped && l.drv->usage) {
		struct gr_error uerr = { 0 };
		if (l.drv->usage(&d->env, &l.spec, &st, &uerr) < 0)
			gr_debug("instance %s: usage: %s", l.row->name, uerr.msg);
	}
	int exit_code = rc == 0 && st.exit_code >= 0 ? st.exit_code : l.row->exit_code;
	json_t *j = json_pack("{s:s, s:i, s:I, s:{s:I}, s:{s:I}, s:I, s:o, s:s, s:I}", "status", status, "status_code",
			      code, "pid", (json_int_t)(stopped ? 0 : st.pid), "cpu", "usage",
			      (json_int_t)(rc < 0 ? 0 : st.cpu_ns), "memory", "usage",
			      (json_int_t)(rc < 0 ? 0 : st.memory_bytes), "processes",
			      (json_int_t)(rc < 0 ? 0 : st.pids), "exit_code",
			      exit_code >= 0 ? json_integer(exit_code) : json_null(), "stop_reason",
			      stop_reason_of(l.row, &st, rc), "restarts", (json_int_t)(rc < 0 ? 0 : st.restarts));
	if (j && rc < 0)
		json_object_set_new(j, "error", json_string(err.msg));
	if (!j) {
		reply_error(rp, 500, "out of memory");
		return;
	}
	reply_sync(rp, j);
}

/* Whether action can run on an instance in state st: 0 or -EBUSY naming why not. */
static int check_action(const char *name, const char *action, int st_rc, const struct instance_status *st,
			const struct gr_error *st_err, struct gr_error *err)
{
	if (st_rc < 0)
		return gr_error_set(err, EBUSY, "instance %s: its state cannot be determined: %s", name, st_err->msg);
	enum instance_run_state s = st->state;
	const char *now = s == INSTANCE_RUNNING ? (st->restarting ? "waiting to be restarted" : st->starting ? "starting" : "running")
			  : s == INSTANCE_PAUSED ? "paused" : s == INSTANCE_STOPPED ? "stopped" : "in an unknown state";
	bool ok;
	if (strcmp(action, "start") == 0)
		ok = s == INSTANCE_STOPPED;
	else if (strcmp(action, "stop") == 0)
		ok = s == INSTANCE_RUNNING || s == INSTANCE_PAUSED;
	else if (strcmp(action, "restart") == 0)
		ok = s == INSTANCE_RUNNING || s == INSTANCE_PAUSED;
	else if (strcmp(action, "pause") == 0)
		ok = s == INSTANCE_RUNNING && !st->starting;
	else if (strcmp(action, "resume") == 0)
		ok = s == INSTANCE_PAUSED;
	else
		return gr_error_set(err, EINVAL, "unknown action %s", action);
	if (!ok)
		return gr_error_set(err, EBUSY, "cannot %s instance %s: it is %s", action, name, now);
	return 0;
}

static int op_state(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct name_arg *a = arg;
	INSTANCE_LOCK(d, a->name);
	gr_autoloaded struct loaded l = { 0 };
	int rc = load(d, a->name, &l, err);
	if (rc < 0 || (rc = check_settled(l.row, err)) < 0)
		return rc;
	struct instance_status st;
	struct gr_error st_err = { 0 };
	int st_rc = driver_status(d, &l, &st, &st_err);
	if ((rc = check_action(a->name, a->action, st_rc, &st, &st_err, err)) < 0)
		return rc;
	const struct instance_driver *drv = l.drv;
	const char *event;
	if (strcmp(a->action, "start") == 0) {
		if ((rc = drv->start(&d->env, &l.spec, err)) < 0)
			return rc;
		rc = store_instance_set_state(d->store, a->name, STORE_RUNNING, err);
		event = "instance-started";
	} else if (strcmp(a->action, "stop") == 0) {
		if ((rc = drv->stop(&d->env, &l.spec, a->timeout, a->force, err)) < 0)
			return rc;
		rc = store_instance_set_state(d->store, a->name, STORE_STOPPED, err);
		record_stop(d, &l);
		event = "instance-stopped";
	} else if (strcmp(a->action, "restart") == 0) {
		if ((rc = drv->stop(&d->env, &l.spec, a->timeout, a->force, err)) < 0)
			return rc;
		record_stop(d, &l);
		if ((rc = drv->start(&d->env, &l.spec, err)) < 0) {
			store_instance_set_state(d->store, a->name, STORE_STOPPED, &st_err);
			return gr_error_prefix(err, "instance %s stopped but did not start again", a->name);
		}
		rc = store_instance_set_state(d->store, a->name, STORE_RUNNING, err);
		event = "instance-restarted";
	} else if (strcmp(a->action, "pause") == 0) {
		if ((rc = drv->pause(&d->env, &l.spec, err)) < 0)
			return rc;
		rc = store_instance_set_state(d->store, a->name, STORE_PAUSED, err);
		event = "instance-paused";
	} else {
		if ((rc = drv->resume(&d->env, &l.spec, err)) < 0)
			return rc;
		rc = store_instance_set_state(d->store, a->name, STORE_RUNNING, err);
		event = "instance-resumed";
	}
	if (rc < 0)
		return rc;
	instance_emit(d, event, a->name, NULL);
	return 0;
}

static void put_state(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	static const char *const keys[] = { "action", "timeout", "force", "stateful", NULL };
	static const char *const descriptions[][2] = {
		{ "start", "Starting instance" }, { "stop", "Stopping instance" },
		{ "restart", "Restarting instance" }, { "pause", "Freezing instance" },
		{ "resume", "Unfreezing instance" },
	};
	gr_autoloaded struct loaded l = { 0 };
	if (route_instance(d, rq, rp, &l) < 0)
		return;
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *action = NULL;
	int64_t timeout = DEFAULT_STOP_TIMEOUT;
	bool force = false, stateful = false;
	int rc;
	if ((rc = request_check_keys(body, "", keys, &err)) < 0 ||
	    (rc = gr_json_get_string(body, "", "action", &action, &err)) < 0 ||
	    (rc = gr_json_get_int64(body, "", "timeout", &timeout, &err)) < 0 ||
	    (rc = gr_json_get_bool(body, "", "force", &force, &err)) < 0 ||
	    (rc = gr_json_get_bool(body, "", "stateful", &stateful, &err)) < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	const char *desc = NULL;
	for (size_t i = 0; action && i < sizeof(descriptions) / sizeof(descriptions[0]); i++)
		if (strcmp(action, descriptions[i][0]) == 0)
			desc = descriptions[i][1];
	if (!desc) {
		char q[VALIDATE_QUOTE_MAX];
		reply_error(rp, 400, "action: %s%s (start, stop, restart, pause, resume)",
			    action ? validate_quote(action, q, sizeof(q)) : "required",
			    action ? " is not an action" : "");
		return;
	}
	if (timeout == -1)
		timeout = DEFAULT_STOP_TIMEOUT;
	if (timeout < 0 || timeout > 86400) {
		reply_error(rp, 400, "timeout: %lld is out of range (0 to 86400 seconds, -1 for the default %d)",
			    (long long)timeout, DEFAULT_STOP_TIMEOUT);
		return;
	}
	if (stateful) {
		reply_error(rp, 501, "stateful: stateful stop and start are not supported");
		return;
	}
	if ((rc = check_settled(l.row, &err)) < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	struct instance_status st;
	struct gr_error st_err = { 0 };
	int st_rc = driver_status(d, &l, &st, &st_err);
	if ((rc = check_action(l.row->name, action, st_rc, &st, &st_err, &err)) < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	struct name_arg *a = name_arg_new(l.row->name);
	if (!a) {
		reply_error(rp, 500, "out of memory");
		return;
	}
	snprintf(a->action, sizeof(a->action), "%s", action);
	a->timeout = (int)timeout;
	a->force = force;
	start_op(d, rp, desc, "task", l.row->name, op_state, a, name_arg_free);
}

/* --- exec ---------------------------------------------------------------------------- */

struct exec_ctx {
	atomic_int refs;
	char *name;
	char **argv, **env;
	char *cwd;
	uint32_t uid, gid;
	bool tty, websocket, record;
	unsigned width, height;
	/* While the process runs (control messages from the service thread). */
	pthread_mutex_t mu;
	pid_t pid;                    /* 0 once reaped */
	int pty_fd;                   /* our own descriptor for resizes, -1 */
};

static void exec_ctx_unref(void *p)
{
	struct exec_ctx *c = p;
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	free(c->name);
	gr_strv_free(c->argv);
	gr_strv_free(c->env);
	free(c->cwd);
	if (c->pty_fd >= 0)
		close(c->pty_fd);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void exec_control(void *opaque, json_t *msg)
{
	struct exec_ctx *c = opaque;
	json_t *resize = json_object_get(msg, "resize");
	json_t *sig = json_object_get(msg, "signal");
	pthread_mutex_lock(&c->mu);
	if (json_is_object(resize) && c->pty_fd >= 0) {
		json_int_t w = json_integer_value(json_object_get(resize, "width"));
		json_int_t h = json_integer_value(json_object_get(resize, "height"));
		if (w > 0 && w <= 65535 && h > 0 && h <= 65535) {
			struct winsize ws = { .ws_row = (unsigned short)h, .ws_col = (unsigned short)w };
			if (ioctl(c->pty_fd, TIOCSWINSZ, &ws) < 0)
				gr_debug("exec in %s: resize: %s", c->name, strerror(errno));
		}
	}
	if (json_is_integer(sig) && c->pid > 0) {
		json_int_t n = json_integer_value(sig);
		if (n >= 1 && n <= SIGRTMAX && kill(c->pid, (int)n) < 0)
			gr_debug("exec in %s: signal %lld: %s", c->name, (long long)n, strerror(errno));
	}
	pthread_mutex_unlock(&c->mu);
}

static void exec_closed(void *opaque)
{
	exec_ctx_unref(opaque);
}

/* Waits for the exec's process: its exit code (128 + signal when killed). */
static int exec_reap(struct exec_ctx *c, pid_t pid)
{
	siginfo_t si = { 0 };
	/* WNOWAIT: the pid stays ours until control messages can no longer use it. */
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&c->mu);
	c->pid = 0;
	pthread_mutex_unlock(&c->mu);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

/* Bytes as a JSON string: invalid UTF-8 becomes U+FFFD. */
static json_t *utf8_string(const unsigned char *s, size_t n)
{
	char *out = malloc(n * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0, i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		bool ok = len > 0 && i + len <= n;
		for (size_t k = 1; ok && k < len; k++)
			ok = (s[i + k] & 0xc0) == 0x80;
		if (ok && len > 1) {
			uint32_t cp = len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 0x07u);
			for (size_t k = 1; k < len; k++)
				cp = (cp << 6) | (s[i + k] & 0x3fu);
			ok = !((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
			       cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff));
		}
		if (ok && len == 1 && c == 0)
			ok = true; /* jansson's json_stringn takes NUL bytes */
		if (ok) {
			memcpy(out + o, s + i, len);
			o += len;
			i += len;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	json_t *j = json_stringn(out, o);
	free(out);
	return j;
}

struct capture {
	int fd;
	unsigned char *buf;
	size_t len;
	bool done;
};

/* Reads the output until both streams end (or, once the process exited, until
 * they are quiet: a daemonized child may keep them open forever). */
static void exec_record(struct exec_ctx *c, pid_t pid, struct capture cap[2])
{
	bool exited = false;
	struct timespec quiet_since = { 0 };
	for (;;) {
		struct pollfd p[2];
		int n = 0, which[2];
		for (int i = 0; i < 2; i++)
			if (!cap[i].done) {
				p[n] = (struct pollfd){ .fd = cap[i].fd, .events = POLLIN };
				which[n++] = i;
			}
		if (n == 0)
			break;
		int r = poll(p, (nfds_t)n, 100);
		if (r < 0 && errno != EINTR)
			break;
		bool got = false;
		for (int k = 0; k < n && r > 0; k++) {
			if (!p[k].revents)
				continue;
			struct capture *cp = &cap[which[k]];
			unsigned char tmp[65536];
			ssize_t len = read(cp->fd, tmp, sizeof(tmp));
			if (len < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (len <= 0) { /* EOF, or EIO from a pty whose other side closed */
				cp->done = true;
				continue;
			}
			got = true;
			size_t keep = cp->len + (size_t)len > EXEC_OUTPUT_MAX ? EXEC_OUTPUT_MAX - cp->len : (size_t)len;
			if (keep) {
				memcpy(cp->buf + cp->len, tmp, keep);
				cp->len += keep;
			}
		}
		if (!exited) {
			siginfo_t si = { 0 };
			int w = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
			if ((w == 0 && si.si_pid == pid) || (w < 0 && errno == ECHILD))
				exited = true;
			if (exited)
				clock_gettime(CLOCK_MONOTONIC, &quiet_since);
		}
		if (exited) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (got)
				quiet_since = now;
			else if ((now.tv_sec - quiet_since.tv_sec) * 1000 + (now.tv_nsec - quiet_since.tv_nsec) / 1000000 > 200)
				break;
		}
	}
	(void)c;
}

static int op_exec(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	struct exec_ctx *c = arg;
	struct exec_session s = { .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .pty_fd = -1 };
	int rc;
	{
		/* The lock covers starting the process, not its whole life: a
		 * shell left open must not block a stop of its instance. */
		INSTANCE_LOCK(d, c->name);
		gr_autoloaded struct loaded l = { 0 };
		if ((rc = load(d, c->name, &l, err)) < 0 || (rc = check_settled(l.row, err)) < 0)
			return rc;
		struct instance_status st;
		struct gr_error st_err = { 0 };
		rc = driver_status(d, &l, &st, &st_err);
		if (rc < 0 || st.state != INSTANCE_RUNNING || st.starting)
			return gr_error_set(err, EBUSY, "instance %s is not running", c->name);
		struct exec_request req = { .argv = c->argv, .env = c->env, .cwd = c->cwd, .uid = c->uid,
					    .gid = c->gid, .tty = c->tty, .width = c->width, .height = c->height };
		if ((rc = l.drv->exec(&d->env, &l.spec, &req, &s, err)) < 0)
			return rc;
	}
	json_t *cmd = json_array();
	for (char **a = c->argv; *a; a++)
		json_array_append_new(cmd, json_string(*a));
	instance_emit(d, "instance-exec", c->name, json_pack("{s:o}", "command", cmd));
	pthread_mutex_lock(&c->mu);
	c->pid = s.pid;
	if (s.pty_fd >= 0)
		c->pty_fd = fcntl(s.pty_fd, F_DUPFD_CLOEXEC, 3);
	pthread_mutex_unlock(&c->mu);

	if (c->websocket) {
		struct ws_relay *relay = calloc(1, sizeof(*relay));
		if (!relay) {
			kill(s.pid, SIGKILL);
			exec_reap(c, s.pid);
			for (int *fd = &s.stdin_fd; fd <= &s.pty_fd; fd++)
				if (*fd >= 0)
					close(*fd);
			return gr_error_set(err, ENOMEM, "out of memory");
		}
		relay->mode = WS_CHANNELS;
		relay->to_fd = relay->from_fd = -1;
		if (c->tty) {
			relay->chan_fd[0] = s.pty_fd;
			relay->chan_fd[1] = s.pty_fd;
			relay->chan_fd[2] = s.stderr_fd; /* errors starting the process, -1 */
		} else {
			relay->chan_fd[0] = s.stdin_fd;
			relay->chan_fd[1] = s.stdout_fd;
			relay->chan_fd[2] = s.stderr_fd;
		}
		relay->control = exec_control;
		relay->closed = exec_closed;
		relay->opaque = c;
		atomic_fetch_add(&c->refs, 1); /* the relay's */
		op_set_ws_relay(op, relay);
		rc = op_ws_wait(op, EXEC_WS_WAIT_MS);
		if (rc < 0) {
			exec_ctx_unref(c); /* closed() will not come */
			pthread_mutex_lock(&c->mu);
			if (c->pid > 0)
				kill(c->pid, SIGKILL);
			pthread_mutex_unlock(&c->mu);
			exec_reap(c, s.pid);
			return rc == -ETIMEDOUT
				       ? gr_error_set(err, ETIMEDOUT, "no client connected to the exec's websocket within %d s",
						      EXEC_WS_WAIT_MS / 1000)
				       : gr_error_set(err, -rc, "the exec's websocket was not used: %s", strerror(-rc));
		}
		int code = exec_reap(c, s.pid);
		op_set_metadata(op, json_pack("{s:i}", "return", code));
		return 0;
	}

	/* Recorded output: stdin is at its end at once. */
	if (s.stdin_fd >= 0)
		close(s.stdin_fd);
	struct capture cap[2] = {
		{ .fd = c->tty ? s.pty_fd : s.stdout_fd, .buf = malloc(EXEC_OUTPUT_MAX) },
		{ .fd = s.stderr_fd, .buf = malloc(EXEC_OUTPUT_MAX) },
	};
	for (int i = 0; i < 2; i++)
		cap[i].done = cap[i].fd < 0;
	if (!cap[0].buf || !cap[1].buf) {
		kill(s.pid, SIGKILL);
		for (int i = 0; i < 2; i++)
			cap[i].done = true;
	}
	exec_record(c, s.pid, cap);
	int code = exec_reap(c, s.pid);
	for (int i = 0; i < 2; i++)
		if (cap[i].fd >= 0)
			close(cap[i].fd);
	json_t *out = cap[0].buf ? utf8_string(cap[0].buf, cap[0].len) : json_string("");
	json_t *errs = cap[1].buf ? utf8_string(cap[1].buf, cap[1].len) : json_string("");
	free(cap[0].buf);
	free(cap[1].buf);
	if (!c->record) { /* "record-output": false: drained, not kept */
		json_decref(out);
		json_decref(errs);
		op_set_metadata(op, json_pack("{s:i}", "return", code));
		return 0;
	}
	op_set_metadata(op, json_pack("{s:i, s:o, s:o}", "return", code, "stdout", out ? out : json_string(""),
				      "stderr", errs ? errs : json_string("")));
	return 0;
}

static void post_exec(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	static const char *const keys[] = { "command", "environment", "cwd", "user", "group", "interactive",
					    "width", "height", "wait-for-websocket", "record-output", NULL };
	gr_autoloaded struct loaded l = { 0 };
	if (route_instance(d, rq, rp, &l) < 0)
		return;
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *cwd = NULL;
	uint32_t uid = 0, gid = 0, width = 80, height = 24;
	bool interactive = false, wait_ws = false, record = true;
	json_t *command = json_object_get(body, "command"), *env = json_object_get(body, "environment");
	int rc;
	if ((rc = request_check_keys(body, "", keys, &err)) < 0 || (rc = gr_json_get_string(body, "", "cwd", &cwd, &err)) < 0 ||
	    (rc = gr_json_get_uint32(body, "", "user", &uid, &err)) < 0 ||
	    (rc = gr_json_get_uint32(body, "", "group", &gid, &err)) < 0 ||
	    (rc = gr_json_get_uint32(body, "", "width", &width, &err)) < 0 ||
	    (rc = gr_json_get_uint32(body, "", "height", &height, &err)) < 0 ||
	    (rc = gr_json_get_bool(body, "", "interactive", &interactive, &err)) < 0 ||
	    (rc = gr_json_get_bool(body, "", "wait-for-websocket", &wait_ws, &err)) < 0 ||
	    (rc = gr_json_get_bool(body, "", "record-output", &record, &err)) < 0 ||
	    (rc = validate_command("command", command, &err)) < 0 ||
	    (rc = validate_environment("environment", env, &err)) < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	if (cwd && (cwd[0] != '/' || strlen(cwd) >= PATH_MAX)) {
		char q[VALIDATE_QUOTE_MAX];
		reply_error(rp, 400, "cwd: %s must be an absolute path", validate_quote(cwd, q, sizeof(q)));
		return;
	}
	if (uid == UINT32_MAX || gid == UINT32_MAX) {
		reply_error(rp, 400, "%s: 4294967295 is not a valid id", uid == UINT32_MAX ? "user" : "group");
		return;
	}
	if (interactive && (width == 0 || width > 65535 || height == 0 || height > 65535)) {
		reply_error(rp, 400, "width and height: must be from 1 to 65535 (got %u x %u)", width, height);
		return;
	}
	if ((rc = check_settled(l.row, &err)) < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	struct instance_status st;
	rc = driver_status(d, &l, &st, &err);
	if (rc < 0 || st.state != INSTANCE_RUNNING || st.starting) {
		reply_error(rp, 409, "instance %s is %s: exec needs it running", l.row->name,
			    rc < 0 ? "in an unknown state" : st.state == INSTANCE_PAUSED ? "paused"
			    : st.restarting ? "waiting to be restarted" : st.starting ? "starting" : "stopped");
		return;
	}
	struct exec_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		reply_error(rp, 500, "out of memory");
		return;
	}
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->mu, NULL);
	c->pty_fd = -1;
	c->name = strdup(l.row->name);
	c->argv = strv_from_array(command);
	c->cwd = cwd ? strdup(cwd) : NULL;
	c->uid = uid;
	c->gid = gid;
	c->tty = interactive;
	c->websocket = wait_ws;
	c->record = record;
	c->width = width;
	c->height = height;
	bool oom = !c->name || !c->argv || (cwd && !c->cwd);
	if (env && json_object_size(env)) {
		c->env = calloc(json_object_size(env) + 1, sizeof(char *));
		const char *k;
		json_t *v;
		size_t i = 0;
		if (!c->env)
			oom = true;
		else
			json_object_foreach(env, k, v) {
				if (asprintf(&c->env[i], "%s=%s", k, json_string_value(v)) < 0) {
					c->env[i] = NULL;
					oom = true;
					break;
				}
				i++;
			}
	}
	if (oom) {
		exec_ctx_unref(c);
		reply_error(rp, 500, "out of memory");
		return;
	}
	start_op(d, rp, "Executing command", wait_ws ? "websocket" : "task", l.row->name, op_exec, c, exec_ctx_unref);
}

/* --- console ----------------------------------------------------------------------------- */

static void get_console(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	gr_autoloaded struct loaded l = { 0 };
	if (route_instance(d, rq, rp, &l) < 0)
		return;
	if (!rq->websocket) {
		reply_error(rp, 400, "the console is a WebSocket: connect with an Upgrade: websocket request");
		return;
	}
	struct gr_error err = { 0 };
	struct instance_status st;
	int rc = driver_status(d, &l, &st, &err);
	if (rc < 0 || st.state == INSTANCE_STOPPED) {
		reply_error(rp, 409, "instance %s is %s: no console to attach to", l.row->name,
			    rc < 0 ? "in an unknown state" : "stopped");
		return;
	}
	int fd = -1;
	if ((rc = l.drv->console(&d->env, &l.spec, &fd, &err)) < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	struct ws_relay *relay = calloc(1, sizeof(*relay));
	if (!relay) {
		close(fd);
		reply_error(rp, 500, "out of memory");
		return;
	}
	*relay = (struct ws_relay){ .mode = WS_RAW, .to_fd = fd, .from_fd = fd, .chan_fd = { -1, -1, -1 } };
	rp->ws = relay;
}

/* --- logs -------------------------------------------------------------------------------- */

/* Appends the rotated logs (oldest first) and the current one to *buf. */
static int read_logs(const char *path, char **out, size_t *out_len, struct gr_error *err)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;
	for (int k = 9; k >= 0; k--) {
		char p[PATH_MAX];
		if (k)
			snprintf(p, sizeof(p), "%s.%d", path, k);
		else
			snprintf(p, sizeof(p), "%s", path);
		gr_autoclose int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			free(buf);
			return gr_error_sys(err, errno, "cannot open the log %s", p);
		}
		for (;;) {
			if (len == cap) {
				if (cap >= LOGS_MAX)
					break;
				size_t ncap = cap ? cap * 2 : 65536;
				char *nb = realloc(buf, ncap + 1);
				if (!nb) {
					free(buf);
					return gr_error_set(err, ENOMEM, "out of memory");
				}
				buf = nb;
				cap = ncap;
			}
			ssize_t n = read(fd, buf + len, cap - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				int e = errno;
				free(buf);
				return gr_error_sys(err, e, "cannot read the log %s", p);
			}
			if (n == 0)
				break;
			len += (size_t)n;
		}
	}
	if (!buf && !(buf = malloc(1)))
		return gr_error_set(err, ENOMEM, "out of memory");
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

/* A follower: a thread that copies the log (rotated files, then the current
 * one as it grows, across rotations) into a pipe the server relays. */
struct follow {
	atomic_int refs;
	char *path;
	int out_fd;                   /* the pipe's write end */
	int stop_fd;                  /* eventfd: the connection is gone */
};

static void follow_unref(struct follow *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	free(f->path);
	if (f->out_fd >= 0)
		close(f->out_fd);
	if (f->stop_fd >= 0)
		close(f->stop_fd);
	free(f);
}

static void follow_closed(void *opaque)
{
	struct follow *f = opaque;
	uint64_t one = 1;
	if (write(f->stop_fd, &one, sizeof(one)) < 0)
		gr_debug("logs follow: wake: %s", strerror(errno));
	follow_unref(f);
}

/* Writes all of buf to the pipe unless the client left: false then. */
static bool follow_write(struct follow *f, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(f->out_fd, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return false;
		struct pollfd p[2] = { { .fd = f->out_fd, .events = POLLOUT }, { .fd = f->stop_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return false;
		if (p[1].revents)
			return false;
		if (p[0].revents & (POLLERR | POLLHUP))
			return false;
	}
	return true;
}

/* Copies fd from its offset to its end; false when the client left. */
static bool follow_drain(struct follow *f, int fd)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		if (!follow_write(f, buf, (size_t)n))
			return false;
	}
}

static void *follow_thread(void *arg)
{
	struct follow *f = arg;
	gr_autofree char *dir = strdup(f->path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		*slash = '\0';
	gr_autoclose int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (in >= 0 && dir && inotify_add_watch(in, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF) < 0)
		gr_debug("logs follow: inotify on %s: %s", dir, strerror(errno));
	/* Everything so far (rotated files first), then the current file as it grows. */
	gr_autofree char *sofar = NULL;
	size_t sofar_len = 0;
	struct gr_error err = { 0 };
	gr_autoclose int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat cur = { 0 };
	if (fd >= 0)
		fstat(fd, &cur);
	/* The rotated files, then the current one from its start. */
	if (read_logs(f->path, &sofar, &sofar_len, &err) == 0) {
		/* read_logs includes the current file: send the rotated part only
		 * and let the descriptor send the rest, so nothing is duplicated. */
		size_t rotated = sofar_len >= (size_t)cur.st_size ? sofar_len - (size_t)cur.st_size : 0;
		if (fd < 0)
			rotated = sofar_len;
		if (!follow_write(f, sofar, rotated))
			goto out;
	}
	for (;;) {
		if (fd >= 0 && !follow_drain(f, fd))
			break;
		/* Rotated or recreated: finish the old file, continue with the new one. */
		struct stat now;
		if (stat(f->path, &now) == 0) {
			if (fd < 0 || now.st_ino != cur.st_ino || now.st_dev != cur.st_dev) {
				if (fd >= 0 && !follow_drain(f, fd))
					break;
				gr_closep(&fd);
				fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
				if (fd >= 0)
					fstat(fd, &cur);
				continue;
			}
		} else if (errno == ENOENT && access(dir ? dir : "/", F_OK) < 0) {
			break; /* the instance is gone */
		}
		struct pollfd p[3] = { { .fd = f->stop_fd, .events = POLLIN },
				       { .fd = in, .events = POLLIN },
				       { .fd = f->out_fd, .events = 0 } };
		if (poll(p, 3, 1000) < 0 && errno != EINTR)
			break;
		if (p[0].revents || (p[2].revents & (POLLERR | POLLHUP)))
			break;
		if (p[1].revents) {
			char ev[4096];
			while (read(in, ev, sizeof(ev)) > 0)
				;
		}
	}
out:
	follow_unref(f);
	return NULL;
}

static void get_logs(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	gr_autoloaded struct loaded l = { 0 };
	if (route_instance(d, rq, rp, &l) < 0)
		return;
	struct gr_error err = { 0 };
	gr_autofree char *path = NULL;
	int rc = l.drv->log_path(&d->env, &l.spec, &path, &err);
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	bool follow = http_query_bool(rq, "follow");
	if (follow && !rq->websocket) {
		reply_error(rp, 400, "follow: following the log needs a WebSocket (Upgrade: websocket)");
		return;
	}
	if (!follow) {
		char *buf = NULL;
		size_t len = 0;
		if ((rc = read_logs(path, &buf, &len, &err)) < 0) {
			reply_gr_error(rp, rc, &err);
			return;
		}
		rp->status = 200;
		rp->content_type = "text/plain; charset=utf-8";
		rp->raw_body = buf;
		rp->raw_len = len;
		return;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		reply_error(rp, 500, "cannot make a pipe: %s", strerror(errno));
		return;
	}
	struct follow *f = calloc(1, sizeof(*f));
	struct ws_relay *relay = calloc(1, sizeof(*relay));
	int stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!f || !relay || stop < 0 || !(f->path = strdup(path))) {
		close(p[0]);
		close(p[1]);
		if (stop >= 0)
			close(stop);
		if (f)
			free(f->path);
		free(f);
		free(relay);
		reply_error(rp, 500, "out of memory");
		return;
	}
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	atomic_init(&f->refs, 2); /* the thread and the relay */
	f->out_fd = p[1];
	f->stop_fd = stop;
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, follow_thread, f);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		close(p[0]);
		f->refs = 1;
		follow_unref(f);
		free(relay);
		reply_error(rp, 500, "cannot start the log follower: %s", strerror(rc));
		return;
	}
	*relay = (struct ws_relay){ .mode = WS_RAW, .to_fd = -1, .from_fd = p[0], .chan_fd = { -1, -1, -1 },
				    .closed = follow_closed, .opaque = f };
	rp->ws = relay;
}

/* --- files ------------------------------------------------------------------------------ */

/* GET/POST /1.0/instances/NAME/files?path=/ABS/PATH: a file's bytes, its
 * mode and owner in X-Gureum-Mode (octal), X-Gureum-Uid, X-Gureum-Gid (as
 * Incus's X-Incus-* headers). The work is an operation on a worker thread
 * (the instance's lock held around the driver call); the request is
 * answered when it ends (a deferred reply), with the bytes or the error.
 * Files move through memory: INSTANCE_FILE_MAX (64 MiB) at most. */
struct file_ctx {
	atomic_int refs;
	char *name, *path;
	bool push;
	int fd;                       /* push: the body (memfd); pull: -1 */
	struct file_meta meta;
	struct operation *op;         /* the deferred reply's reference */
	/* Set by the operation before it ends. */
	int rc;
	struct gr_error err;
	char *data;                   /* pull: the bytes */
	size_t len;
};

static void file_ctx_unref(void *p)
{
	struct file_ctx *c = p;
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	free(c->name);
	free(c->path);
	if (c->fd >= 0)
		close(c->fd);
	free(c->data);
	free(c);
}

/* The deferred reply's end (answered, or the client left): its reference
 * to the operation goes (the operation holds the context until it is
 * purged), and the pulled bytes with it once the operation is over. */
static void file_deferred_free(void *p)
{
	struct file_ctx *c = p;
	struct operation *op = gr_steal_ptr(c->op);
	if (op) {
		if (op_done(op)) {
			free(c->data);
			c->data = NULL;
		}
		op_put(op);
	}
	file_ctx_unref(c);
}

/* The same rules as the guest agent's (docs/guest-agent.md), plus no "."
 * component: absolute, not "/", no trailing '/', no "." or "..". */
static const char *file_path_check(const char *path)
{
	size_t n = strlen(path);
	if (path[0] != '/')
		return "must be an absolute path";
	if (n >= PATH_MAX)
		return "is too long";
	if (n == 1)
		return "is the root directory";
	if (path[n - 1] == '/')
		return "must not end with '/'";
	for (const char *c = path; *c;) {
		while (*c == '/')
			c++;
		const char *end = strchrnul(c, '/');
		if ((end - c == 1 && c[0] == '.') || (end - c == 2 && c[0] == '.' && c[1] == '.'))
			return "must not have a \".\" or \"..\" component";
		c = end;
	}
	return NULL;
}

static int file_op(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct file_ctx *c = arg;
	int rc;
	gr_autoclose int mfd = -1;
	{
		INSTANCE_LOCK(d, c->name);
		gr_autoloaded struct loaded l = { 0 };
		if ((rc = load(d, c->name, &l, err)) < 0 || (rc = check_settled(l.row, err)) < 0) {
			/* (rc set) */
		} else if (!l.drv->file_push || !l.drv->file_pull) {
			rc = gr_error_set(err, ENOTSUP, "instance %s: its type has no files API", c->name);
		} else if (c->push) {
			if (lseek(c->fd, 0, SEEK_SET) < 0)
				rc = gr_error_sys(err, errno, "cannot rewind the file's data");
			else
				rc = l.drv->file_push(&d->env, &l.spec, c->path, c->fd, &c->meta, err);
		} else if ((mfd = memfd_create("gureum-pull", MFD_CLOEXEC)) < 0) {
			rc = gr_error_sys(err, errno, "memfd_create");
		} else {
			rc = l.drv->file_pull(&d->env, &l.spec, c->path, mfd, INSTANCE_FILE_MAX, &c->meta, err);
		}
	}
	if (rc == 0 && !c->push) {
		off_t len = lseek(mfd, 0, SEEK_END);
		c->data = len >= 0 ? malloc((size_t)len + 1) : NULL;
		if (!c->data)
			rc = gr_error_set(err, ENOMEM, "out of memory for %lld bytes", (long long)len);
		else if (pread(mfd, c->data, (size_t)len, 0) != len)
			rc = gr_error_sys(err, errno, "cannot read the pulled file back");
		else
			c->len = (size_t)len;
	}
	if (rc == 0)
		instance_emit(d, c->push ? "instance-file-pushed" : "instance-file-retrieved", c->name,
			      json_pack("{s:s}", "path", c->path));
	c->rc = rc;
	if (rc < 0)
		c->err = *err;
	return rc;
}

static bool file_poll(struct daemon *d, void *opaque, struct http_reply *rp, bool timed_out)
{
	(void)d;
	(void)timed_out;
	struct file_ctx *c = opaque;
	if (!op_done(c->op))
		return false;
	if (c->rc < 0) {
		int code = -c->rc;
		if (code == EISDIR || code == ENOTDIR || code == ELOOP || code == EXDEV)
			reply_error(rp, 400, "%s", c->err.msg);
		else if (code == EFBIG)
			reply_error(rp, 413, "%s", c->err.msg);
		else
			reply_gr_error(rp, c->rc, &c->err);
		return true;
	}
	if (c->push) {
		reply_sync(rp, json_object());
		return true;
	}
	char mode[16], uid[16], gid[16];
	snprintf(mode, sizeof(mode), "%04o", c->meta.mode & 07777);
	snprintf(uid, sizeof(uid), "%u", c->meta.uid);
	snprintf(gid, sizeof(gid), "%u", c->meta.gid);
	rp->status = 200;
	rp->content_type = "application/octet-stream";
	rp->raw_body = gr_steal_ptr(c->data);
	rp->raw_len = c->len;
	rp->headers = json_pack("{s:s, s:s, s:s, s:s}", "X-Gureum-Type", "file", "X-Gureum-Mode", mode,
				"X-Gureum-Uid", uid, "X-Gureum-Gid", gid);
	return true;
}

/* A header's number: 1 set, 0 absent, -1 after a 400 in rp. */
static int header_u32(const struct http_request *rq, struct http_reply *rp, const char *name, int base,
		      uint32_t max, uint32_t *out)
{
	char v[32];
	int rc = http_header_get(rq, name, v, sizeof(v));
	if (rc == 0)
		return 0;
	char *end = NULL;
	errno = 0;
	unsigned long long n = rc > 0 && v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, base) : 0;
	if (rc < 0 || !end || *end || errno || n > max) {
		reply_error(rp, 400, "%s: \"%s\" is not %s from 0 to %s", name, rc < 0 ? "..." : v,
			    base == 8 ? "an octal mode" : "a number", base == 8 ? "07777" : "4294967294");
		return -1;
	}
	*out = (uint32_t)n;
	return 1;
}

static void files_common(struct daemon *d, const struct http_request *rq, struct http_reply *rp, bool push)
{
	gr_autoloaded struct loaded l = { 0 };
	if (route_instance(d, rq, rp, &l) < 0)
		return;
	char path[PATH_MAX + 1];
	int rc = http_query_get(rq, "path", path, sizeof(path));
	if (rc <= 0) {
		reply_error(rp, 400, rc == 0 ? "path: the file's path in the instance is required (?path=/ABSOLUTE/PATH)"
					     : "path: too long");
		return;
	}
	const char *why = file_path_check(path);
	if (why) {
		char q[VALIDATE_QUOTE_MAX];
		reply_error(rp, 400, "path: %s %s", validate_quote(path, q, sizeof(q)), why);
		return;
	}
	struct file_meta meta = { .mode = 0644 };
	if (push) {
		char type[32];
		if (http_header_get(rq, "X-Gureum-Type", type, sizeof(type)) != 0 && strcmp(type, "file") != 0) {
			reply_error(rp, 400, "X-Gureum-Type: only \"file\" can be pushed");
			return;
		}
		if (header_u32(rq, rp, "X-Gureum-Mode", 8, 07777, &meta.mode) < 0 ||
		    header_u32(rq, rp, "X-Gureum-Uid", 10, 4294967294u, &meta.uid) < 0 ||
		    header_u32(rq, rp, "X-Gureum-Gid", 10, 4294967294u, &meta.gid) < 0)
			return;
	}
	struct gr_error err = { 0 };
	if ((rc = check_settled(l.row, &err)) < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	struct instance_status st;
	rc = driver_status(d, &l, &st, &err);
	if (rc < 0 || st.state == INSTANCE_STOPPED || (st.state == INSTANCE_RUNNING && st.starting)) {
		reply_error(rp, 409, "instance %s is %s: files need it running", l.row->name,
			    rc < 0 ? "in an unknown state" : st.state == INSTANCE_STOPPED ? "stopped" : "starting");
		return;
	}
	struct file_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		reply_error(rp, 500, "out of memory");
		return;
	}
	atomic_init(&c->refs, 2); /* the operation's and the deferred reply's */
	c->fd = -1;
	c->push = push;
	c->meta = meta;
	c->name = strdup(l.row->name);
	c->path = strdup(path);
	bool oom = !c->name || !c->path;
	if (!oom && push) {
		c->fd = memfd_create("gureum-push", MFD_CLOEXEC);
		if (c->fd < 0 || gr_write_all(c->fd, rq->body, rq->body_len) < 0) {
			atomic_store(&c->refs, 1);
			file_ctx_unref(c);
			reply_error(rp, 500, "cannot keep the file's data: %s", strerror(errno));
			return;
		}
	}
	struct http_deferred *df = oom ? NULL : calloc(1, sizeof(*df));
	if (!df) {
		atomic_store(&c->refs, 1);
		file_ctx_unref(c);
		reply_error(rp, 500, "out of memory");
		return;
	}
	struct op_params p = { .description = push ? "Pushing a file" : "Pulling a file", .klass = "task",
			       .instance = l.row->name, .fn = file_op, .arg = c, .free_arg = file_ctx_unref };
	const char *id = NULL;
	json_t *opj = NULL;
	if ((rc = op_start(d, &p, &id, &opj, &err)) < 0) {
		/* op_start dropped the operation's reference. */
		file_ctx_unref(c);
		free(df);
		reply_gr_error(rp, rc, &err);
		return;
	}
	json_decref(opj);
	c->op = op_get(d, id);
	if (!c->op) {
		file_ctx_unref(c);
		free(df);
		reply_error(rp, 500, "the file operation vanished");
		return;
	}
	df->poll = file_poll;
	df->free_opaque = file_deferred_free;
	df->opaque = c;
	rp->deferred = df;
}

static void get_files(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	files_common(d, rq, rp, false);
}

static void post_files(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	files_common(d, rq, rp, true);
}

const struct route instance_routes[] = {
	{ "GET", "/1.0/instances", get_instances },
	{ "POST", "/1.0/instances", post_instances },
	{ "GET", "/1.0/instances/{}", get_instance },
	{ "DELETE", "/1.0/instances/{}", delete_instance },
	{ "GET", "/1.0/instances/{}/state", get_state },
	{ "PUT", "/1.0/instances/{}/state", put_state },
	{ "POST", "/1.0/instances/{}/exec", post_exec },
	{ "GET", "/1.0/instances/{}/console", get_console },
	{ "GET", "/1.0/instances/{}/logs", get_logs },
	{ "GET", "/1.0/instances/{}/files", get_files },
	{ "POST", "/1.0/instances/{}/files", post_files, INSTANCE_FILE_MAX },
	{ 0 },
};
