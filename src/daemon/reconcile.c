/* Start-up reconciliation (reconcile.h): the database's desired state meets
 * what the drivers report. Workloads are never stopped or killed here except
 * the ones of a create or delete that gureumd was in the middle of (their
 * rows say "creating" or "deleting"): those operations are finished the way
 * they would have ended. */
#include "daemon/reconcile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "daemon/api/instances.h"
#include "daemon/store/store.h"

struct known {
	struct store_instance *rows;
	size_t n;
	const char *type;
	struct daemon *d;
	unsigned unknown;
};

static void found(void *opaque, const char *name)
{
	struct known *k = opaque;
	for (size_t i = 0; i < k->n; i++)
		if (k->rows[i].name && strcmp(k->rows[i].name, name) == 0 && strcmp(k->rows[i].type, k->type) == 0)
			return;
	k->unknown++;
	gr_warn("reconcile: a %s workload named '%s' exists on this host but not in the database: left alone "
		"(remove it by hand if it is not wanted)",
		k->type, name);
	instance_emit(k->d, "instance-unknown", name, json_pack("{s:s}", "type", k->type));
}

static void spec_fill(const struct store_instance *row, struct instance_spec *spec, char ***command)
{
	*spec = (struct instance_spec){ .id = row->id, .name = row->name, .type = row->type, .image = row->image,
					.config = row->config };
	*command = NULL;
	if (row->command) {
		char **v = calloc(json_array_size(row->command) + 1, sizeof(char *));
		size_t i;
		json_t *x;
		if (v)
			json_array_foreach(row->command, i, x) v[i] = strdup(json_string_value(x) ? json_string_value(x) : "");
		*command = v;
		spec->command = v;
	}
}

/* Finishes an interrupted create (rolled back) or delete: the workload goes,
 * then the row. */
static void finish_removal(struct daemon *d, const struct instance_driver *drv, const struct store_instance *row,
			   const struct instance_spec *spec)
{
	struct gr_error err = { 0 };
	bool creating = row->state == STORE_CREATING;
	if (drv) {
		if (drv->stop(&d->env, spec, 0, true, &err) < 0)
			gr_debug("reconcile: %s: stop: %s", row->name, err.msg);
		if (drv->remove(&d->env, spec, &err) < 0) {
			gr_warn("reconcile: %s: cannot remove what an interrupted %s left: %s (kept as %s)", row->name,
				creating ? "create" : "delete", err.msg, store_state_name(row->state));
			return;
		}
	}
	if (store_instance_delete(d->store, row->name, &err) < 0 && err.code != ENOENT) {
		gr_warn("reconcile: %s: %s", row->name, err.msg);
		return;
	}
	gr_info("reconcile: %s: %s", row->name,
		creating ? "an interrupted create was rolled back" : "an interrupted delete was finished");
	instance_emit(d, "instance-deleted", row->name,
		      json_pack("{s:s}", "reason", creating ? "interrupted create rolled back" : "interrupted delete finished"));
}

static void reconcile_one(struct daemon *d, const struct store_instance *row)
{
	const struct instance_driver *drv = instance_driver_for(row->type);
	struct instance_spec spec;
	gr_autostrv char **command = NULL;
	spec_fill(row, &spec, &command);
	instance_lock(d, row->name);
	if (row->state == STORE_CREATING || row->state == STORE_DELETING) {
		finish_removal(d, drv, row, &spec);
		instance_unlock(d, row->name);
		return;
	}
	if (!drv) {
		gr_warn("reconcile: %s: no driver for type '%s': left as it is", row->name, row->type);
		instance_unlock(d, row->name);
		return;
	}
	struct instance_status st = { .exit_code = -1 };
	struct gr_error err = { 0 };
	if (drv->status(&d->env, &spec, &st, &err) < 0 || st.state == INSTANCE_UNKNOWN) {
		gr_warn("reconcile: %s: its state cannot be determined%s%s: left as it is", row->name,
			err.msg[0] ? ": " : "", err.msg);
		instance_unlock(d, row->name);
		return;
	}
	enum store_state real = st.state == INSTANCE_RUNNING ? STORE_RUNNING
			       : st.state == INSTANCE_PAUSED ? STORE_PAUSED
							     : STORE_STOPPED;
	if (real != row->state) {
		if (store_instance_set_state(d->store, row->name, real, &err) < 0) {
			gr_warn("reconcile: %s: %s", row->name, err.msg);
		} else if (real == STORE_STOPPED) {
			const char *reason = st.stop_reason[0] ? st.stop_reason : "its supervisor is gone";
			store_instance_set_stopped(d->store, row->name, reason, st.exit_code, &err);
			gr_info("reconcile: %s was %s and is now stopped (%s)", row->name, store_state_name(row->state),
				reason);
			instance_emit(d, "instance-stopped", row->name, json_pack("{s:s}", "reason", reason));
		} else {
			gr_info("reconcile: %s is %s (the database said %s)", row->name, store_state_name(real),
				store_state_name(row->state));
		}
	} else if (real == STORE_STOPPED && st.stop_reason[0] && strcmp(st.stop_reason, row->stop_reason) != 0) {
		store_instance_set_stopped(d->store, row->name, st.stop_reason, st.exit_code, &err);
	}
	instance_unlock(d, row->name);
}

int reconcile(struct daemon *d, struct gr_error *err)
{
	struct store_instance *rows = NULL;
	size_t n = 0;
	int rc = store_instance_list(d->store, &rows, &n, err);
	if (rc < 0)
		return gr_error_prefix(err, "reconcile");
	for (size_t i = 0; i < n; i++)
		reconcile_one(d, &rows[i]);
	store_instance_list_free(rows, n);

	/* Workloads nobody knows: listed against the database as it is now. */
	if ((rc = store_instance_list(d->store, &rows, &n, err)) < 0)
		return gr_error_prefix(err, "reconcile");
	static const char *const types[] = { "container", "virtual-machine" };
	unsigned unknown = 0;
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		const struct instance_driver *drv = instance_driver_for(types[t]);
		if (!drv || !drv->scan)
			continue;
		struct known k = { .rows = rows, .n = n, .type = types[t], .d = d };
		struct gr_error e = { 0 };
		if (drv->scan(&d->env, found, &k, &e) < 0)
			gr_warn("reconcile: cannot list the %s workloads: %s", types[t], e.msg);
		unknown += k.unknown;
	}
	gr_info("reconcile: %zu instance%s in the database, %u unknown workload%s", n, n == 1 ? "" : "s", unknown,
		unknown == 1 ? "" : "s");
	store_instance_list_free(rows, n);
	return 0;
}
