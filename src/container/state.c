#include "state.h"
#include "../common/cleanup.h"
#include "../common/fs.h"
#include "../common/json.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *state_status_name(enum container_status s)
{
	static const char *const names[] = { "creating", "created", "running", "paused", "stopped" };
	return names[s];
}

int state_validate_id(const char *id, struct gr_error *err)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0)
		return gr_error_set(err, EINVAL, "a container id is required");
	if (n > 1024)
		return gr_error_set(err, EINVAL, "container id is longer than 1024 characters");
	if (id[0] == '.')
		return gr_error_set(err, EINVAL, "invalid container id \"%s\": must not start with '.'", id);
	for (const char *p = id; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == '+'))
			return gr_error_set(err, EINVAL,
					    "invalid container id \"%s\": only letters, digits and _ . + - are allowed", id);
	}
	return 0;
}

int state_dir_path(const char *root, const char *id, char *out, size_t n, struct gr_error *err)
{
	int r = state_validate_id(id, err);
	if (r < 0)
		return r;
	if (snprintf(out, n, "%s/%s", root, id) >= (int)n)
		return gr_error_set(err, ENAMETOOLONG, "state directory path too long");
	return 0;
}

void state_now_rfc3339(char *buf, size_t n)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t len = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + len, n - len, ".%09ldZ", ts.tv_nsec);
}

int state_save(const char *root, const struct container_state *st, struct gr_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int r = state_dir_path(root, st->id, dir, sizeof(dir), err);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/state.json", dir);
	gr_autojson json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:s}",
					  "id", st->id, "bundle", st->bundle, "rootfs", st->rootfs,
					  "ociVersion", st->oci_version, "pid", (int)st->pid,
					  "startTime", (json_int_t)st->start_time, "created", st->created);
	if (!j)
		return gr_error_set(err, ENOMEM, "cannot build state.json");
	if (st->cgroup_path)
		json_object_set_new(j, "cgroupPath", json_string(st->cgroup_path));
	if (st->annotations)
		json_object_set(j, "annotations", st->annotations);
	if (st->owner)
		json_object_set_new(j, "owner", json_string(st->owner));
	if (st->creating)
		json_object_set_new(j, "creating", json_true());
	gr_autofree char *s = json_dumps(j, JSON_COMPACT);
	if (!s)
		return gr_error_set(err, ENOMEM, "cannot encode state.json");
	return gr_write_file_atomic(path, s, strlen(s), 0600, err);
}

int state_load(const char *root, const char *id, struct container_state *st, struct gr_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	memset(st, 0, sizeof(*st));
	int r = state_dir_path(root, id, dir, sizeof(dir), err);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/state.json", dir);
	if (access(path, F_OK) < 0)
		return gr_error_set(err, ENOENT, "container %s does not exist", id);
	gr_autojson json_t *j = NULL;
	r = gr_json_load_file(path, &j, err);
	if (r < 0)
		return r;
	int64_t pid = 0, start = 0;
	if ((r = gr_json_get_strdup(j, path, "id", &st->id, err)) < 0 ||
	    (r = gr_json_get_strdup(j, path, "bundle", &st->bundle, err)) < 0 ||
	    (r = gr_json_get_strdup(j, path, "rootfs", &st->rootfs, err)) < 0 ||
	    (r = gr_json_get_strdup(j, path, "ociVersion", &st->oci_version, err)) < 0 ||
	    (r = gr_json_get_strdup(j, path, "created", &st->created, err)) < 0 ||
	    (r = gr_json_get_strdup(j, path, "cgroupPath", &st->cgroup_path, err)) < 0 ||
	    (r = gr_json_get_strdup(j, path, "owner", &st->owner, err)) < 0 ||
	    (r = gr_json_get_int64(j, path, "pid", &pid, err)) < 0 ||
	    (r = gr_json_get_int64(j, path, "startTime", &start, err)) < 0 ||
	    (r = gr_json_get_bool(j, path, "creating", &st->creating, err)) < 0) {
		state_free(st);
		return r;
	}
	if (!st->id || !st->bundle || !st->oci_version || !st->created || !st->rootfs) {
		state_free(st);
		return gr_error_set(err, EINVAL, "%s: incomplete state file", path);
	}
	st->pid = (pid_t)pid;
	st->start_time = (uint64_t)start;
	json_t *a = json_object_get(j, "annotations");
	if (json_is_object(a))
		st->annotations = json_incref(a);
	return 0;
}

void state_free(struct container_state *st)
{
	free(st->id);
	free(st->bundle);
	free(st->rootfs);
	free(st->oci_version);
	free(st->created);
	free(st->cgroup_path);
	free(st->owner);
	if (st->annotations)
		json_decref(st->annotations);
	memset(st, 0, sizeof(*st));
}

bool state_pid_alive(const struct container_state *st)
{
	if (st->pid <= 0)
		return false;
	char s = gr_proc_state(st->pid);
	if (s == 0 || s == 'Z' || s == 'X')
		return false;
	uint64_t start;
	if (gr_proc_start_time(st->pid, &start, NULL) < 0)
		return false;
	return start == st->start_time;
}

json_t *state_to_json(const struct container_state *st, enum container_status status)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "ociVersion", st->oci_version,
			      "id", st->id, "status", state_status_name(status),
			      "pid", status == STATUS_STOPPED ? 0 : (int)st->pid, "bundle", st->bundle,
			      "rootfs", st->rootfs, "created", st->created);
	if (!j)
		return NULL;
	json_object_set_new(j, "annotations", st->annotations ? json_incref(st->annotations) : json_object());
	json_object_set_new(j, "owner", json_string(st->owner ? st->owner : ""));
	return j;
}
