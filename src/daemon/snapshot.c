/* Snapshots of container instances (snapshot.h). */
#include "daemon/snapshot.h"
#include "daemon/snapshot_copy.h"
#include "daemon/supervisor/supervisor.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "container/container.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int snapshot_name_check(const char *name, struct gr_error *err)
{
	if (!instance_name_valid(name))
		return gr_error_set(err, EINVAL, "invalid snapshot name \"%.64s\": 1-63 of [a-z0-9-], starting with a "
				    "letter or digit, not ending in '-'", name ? name : "");
	return 0;
}

/* STATE/instances/NAME/snapshots */
static int snaps_dir(const struct driver_env *env, const char *instance, char *out, struct gr_error *err)
{
	struct instance_paths p;
	int r = instance_paths_init(&p, env->state_dir, env->run_dir, instance, err);
	if (r < 0)
		return r;
	if (snprintf(out, PATH_MAX, "%s/snapshots", p.bundle) >= PATH_MAX - 80)
		return gr_error_set(err, ENAMETOOLONG, "state directory path too long");
	return 0;
}

/* Removes what a crash left: .SNAP.tmp-* and .SNAP.del-* entries. */
static void remove_leftovers(const char *dir)
{
	gr_autoclosedir DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX + 256];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] != '.' || (!strstr(e->d_name, ".tmp-") && !strstr(e->d_name, ".del-")))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		(void)gr_rm_rf(path, NULL);
	}
}

static int created_cmp(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	const char *cx = json_string_value(json_object_get(x, "created_at"));
	const char *cy = json_string_value(json_object_get(y, "created_at"));
	int c = strcmp(cx ? cx : "", cy ? cy : "");
	return c ? c
		 : strcmp(json_string_value(json_object_get(x, "name")), json_string_value(json_object_get(y, "name")));
}

int snapshot_get(const struct driver_env *env, const char *instance, const char *snap, json_t **out,
		 struct gr_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 128];
	int r;
	if ((r = snapshot_name_check(snap, err)) < 0 || (r = snaps_dir(env, instance, dir, err)) < 0)
		return r;
	snprintf(path, sizeof(path), "%s/%s/snapshot.json", dir, snap);
	if (access(path, F_OK) < 0)
		return gr_error_set(err, ENOENT, "instance %s has no snapshot %s", instance, snap);
	return gr_json_load_file(path, out, err);
}

int snapshot_list(const struct driver_env *env, const char *instance, json_t **out, struct gr_error *err)
{
	char dir[PATH_MAX];
	int r = snaps_dir(env, instance, dir, err);
	if (r < 0)
		return r;
	gr_autojson json_t *list = json_array();
	if (!list)
		return gr_error_set(err, ENOMEM, "out of memory");
	gr_autoclosedir DIR *d = opendir(dir);
	if (!d && errno != ENOENT)
		return gr_error_sys(err, errno, "cannot read %s", dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!instance_name_valid(e->d_name))
			continue;
		json_t *j = NULL;
		struct gr_error e2 = { 0 };
		if (snapshot_get(env, instance, e->d_name, &j, &e2) < 0) {
			gr_debug("instance %s: snapshot %s: %s", instance, e->d_name, e2.msg);
			continue;
		}
		json_array_append_new(list, j);
	}
	size_t n = json_array_size(list);
	json_t **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(list, i));
	qsort(v, n, sizeof(*v), created_cmp);
	json_array_clear(list);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, v[i]);
	free(v);
	*out = json_incref(list);
	return 0;
}

int snapshot_next_name(const struct driver_env *env, const char *instance, char out[64], struct gr_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	int r = snaps_dir(env, instance, dir, err);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(out, 64, "snap%u", i);
		snprintf(path, sizeof(path), "%s/%s", dir, out);
		if (access(path, F_OK) < 0 && errno == ENOENT)
			return 0;
	}
	return gr_error_set(err, ENOSPC, "instance %s has too many snapshots", instance);
}

static void now_rfc3339(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

static int check_container(const struct instance_spec *spec, struct gr_error *err)
{
	if (!spec->type || strcmp(spec->type, "container") != 0)
		return gr_error_set(err, ENOTSUP, "instance %s: snapshots of %s instances are not supported", spec->name,
				    spec->type ? spec->type : "?");
	return 0;
}

int snapshot_create(const struct driver_env *env, const struct instance_spec *spec, const struct instance_status *st,
		    const char *snap, json_t **out, struct gr_error *err)
{
	struct instance_paths p;
	char dir[PATH_MAX], final[PATH_MAX + 80], tmp[PATH_MAX + 80], copy[PATH_MAX + 96], meta[PATH_MAX + 96];
	int r;
	if ((r = check_container(spec, err)) < 0 || (r = snapshot_name_check(snap, err)) < 0 ||
	    (r = instance_paths_init(&p, env->state_dir, env->run_dir, spec->name, err)) < 0 ||
	    (r = snaps_dir(env, spec->name, dir, err)) < 0)
		return r;
	if (st->state == INSTANCE_RUNNING && st->starting)
		return gr_error_set(err, EBUSY, "instance %s is %s: try again once it runs, or stop it", spec->name,
				    st->restarting ? "waiting to be restarted" : "starting");
	if (st->state == INSTANCE_UNKNOWN)
		return gr_error_set(err, EBUSY, "instance %s is in an unknown state", spec->name);
	if ((r = gr_mkdir_p(dir, 0700, err)) < 0)
		return r;
	remove_leftovers(dir);
	snprintf(final, sizeof(final), "%s/%s", dir, snap);
	if (access(final, F_OK) == 0)
		return gr_error_set(err, EEXIST, "instance %s already has a snapshot %s", spec->name, snap);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp-XXXXXX", dir, snap);
	if (!mkdtemp(tmp))
		return gr_error_sys(err, errno, "cannot create a directory in %s", dir);
	snprintf(copy, sizeof(copy), "%s/upper", tmp);
	snprintf(meta, sizeof(meta), "%s/snapshot.json", tmp);

	/* Running: frozen for the copy (a container the user paused already is). */
	bool froze = false;
	if (st->state == INSTANCE_RUNNING) {
		if ((r = container_pause(p.containers, spec->name, true, err)) < 0) {
			(void)gr_rm_rf(tmp, NULL);
			return gr_error_prefix(err, "cannot freeze instance %s for its snapshot", spec->name);
		}
		froze = true;
	}
	struct tree_copy_stats cs = { 0 };
	r = tree_copy(p.upper, copy, &cs, err);
	if (froze) {
		struct gr_error terr = { 0 };
		if (container_pause(p.containers, spec->name, false, &terr) < 0) {
			gr_warn("instance %s: cannot thaw it after its snapshot: %s", spec->name, terr.msg);
			if (r == 0) {
				*err = terr;
				r = gr_error_prefix(err, "snapshot %s was not kept: instance %s could not be thawed",
						    snap, spec->name);
			}
		}
	}
	if (r < 0) {
		(void)gr_rm_rf(tmp, NULL);
		return r;
	}
	char created[64];
	now_rfc3339(created, sizeof(created));
	const char *was = st->state == INSTANCE_RUNNING ? "Running" : st->state == INSTANCE_PAUSED ? "Frozen" : "Stopped";
	gr_autojson json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:I, s:s}", "name", snap, "created_at", created,
					  "stateful", 0, "size", (json_int_t)cs.bytes, "files", (json_int_t)cs.entries,
					  "instance_status", was);
	gr_autofree char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	if (!text) {
		(void)gr_rm_rf(tmp, NULL);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	if ((r = gr_write_file_atomic(meta, text, strlen(text), 0600, err)) < 0) {
		(void)gr_rm_rf(tmp, NULL);
		return r;
	}
	chmod(tmp, 0700);
	if (rename(tmp, final) < 0) {
		int e = errno;
		(void)gr_rm_rf(tmp, NULL);
		if (e == EEXIST || e == ENOTEMPTY)
			return gr_error_set(err, EEXIST, "instance %s already has a snapshot %s", spec->name, snap);
		return gr_error_sys(err, e, "cannot rename %s to %s", tmp, final);
	}
	if (out)
		*out = json_incref(j);
	return 0;
}

int snapshot_restore(const struct driver_env *env, const struct instance_spec *spec,
		     const struct instance_status *st, const char *snap, struct gr_error *err)
{
	struct instance_paths p;
	char dir[PATH_MAX], src[PATH_MAX + 96], tmp[PATH_MAX + 80];
	int r;
	if ((r = check_container(spec, err)) < 0 || (r = snapshot_name_check(snap, err)) < 0 ||
	    (r = instance_paths_init(&p, env->state_dir, env->run_dir, spec->name, err)) < 0 ||
	    (r = snaps_dir(env, spec->name, dir, err)) < 0)
		return r;
	if (st->state != INSTANCE_STOPPED)
		return gr_error_set(err, EBUSY, "instance %s is %s: stop it first (a snapshot is restored into a stopped "
				    "instance)", spec->name, st->state == INSTANCE_PAUSED ? "paused" : "running");
	snprintf(src, sizeof(src), "%s/%s/upper", dir, snap);
	struct stat sst;
	if (lstat(src, &sst) < 0 || !S_ISDIR(sst.st_mode))
		return gr_error_set(err, ENOENT, "instance %s has no snapshot %s", spec->name, snap);
	remove_leftovers(p.bundle); /* .upper.tmp-* of an interrupted restore */
	/* The copy is made next to upper/ (same file system: renames, reflinks). */
	snprintf(tmp, sizeof(tmp), "%s/.upper.tmp-XXXXXX", p.bundle);
	if (!mkdtemp(tmp))
		return gr_error_sys(err, errno, "cannot create a directory in %s", p.bundle);
	rmdir(tmp); /* tree_copy makes it */
	if ((r = tree_copy(src, tmp, NULL, err)) < 0)
		return gr_error_prefix(err, "cannot restore snapshot %s of %s", snap, spec->name);
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, p.upper, RENAME_EXCHANGE) < 0) {
		int e = errno;
		if (e == ENOENT && rename(tmp, p.upper) == 0)
			return 0; /* there was no upper/ */
		(void)gr_rm_rf(tmp, NULL);
		return gr_error_sys(err, e, "cannot put the copy of snapshot %s in place of %s", snap, p.upper);
	}
	/* tmp is the old state now. */
	struct gr_error rerr = { 0 };
	if (gr_rm_rf(tmp, &rerr) < 0)
		gr_warn("instance %s: cannot remove its previous upper directory: %s", spec->name, rerr.msg);
	return 0;
}

int snapshot_delete(const struct driver_env *env, const char *instance, const char *snap, struct gr_error *err)
{
	char dir[PATH_MAX], final[PATH_MAX + 80], del[PATH_MAX + 80];
	int r;
	if ((r = snapshot_name_check(snap, err)) < 0 || (r = snaps_dir(env, instance, dir, err)) < 0)
		return r;
	snprintf(final, sizeof(final), "%s/%s", dir, snap);
	if (access(final, F_OK) < 0)
		return gr_error_set(err, ENOENT, "instance %s has no snapshot %s", instance, snap);
	/* Gone at once (rename), then removed. */
	snprintf(del, sizeof(del), "%s/.%s.del-XXXXXX", dir, snap);
	if (!mkdtemp(del))
		return gr_error_sys(err, errno, "cannot create a directory in %s", dir);
	if (rename(final, del) < 0) {
		int e = errno;
		rmdir(del);
		return gr_error_sys(err, e, "cannot remove snapshot %s of %s", snap, instance);
	}
	return gr_rm_rf(del, err);
}
