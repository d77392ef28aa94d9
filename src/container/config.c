/* OCI runtime-spec config.json (1.0.0 to 1.2.x) parsed and validated into
 * the structures of config.h. Each error names the JSON path and the value
 * at fault. Unknown keys are ignored (the spec allows extensions), and so
 * are the windows, solaris and vm sections.
 *
 * Ownership: every parser fills a structure that its matching free function
 * can release at any point, so a failed parse is cleaned up by one call. */
#include "config.h"
#include "mountopt.h"
#include "security.h"
#include "../common/cleanup.h"
#include "../common/fs.h"
#include "../common/json.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

const char *const oci_hook_names[OCI_HOOK_KINDS] = {
	[OCI_HOOK_PRESTART] = "prestart",
	[OCI_HOOK_CREATE_RUNTIME] = "createRuntime",
	[OCI_HOOK_CREATE_CONTAINER] = "createContainer",
	[OCI_HOOK_START_CONTAINER] = "startContainer",
	[OCI_HOOK_POSTSTART] = "poststart",
	[OCI_HOOK_POSTSTOP] = "poststop",
};

const char *const oci_ns_names[OCI_NS_TYPES] = {
	[OCI_NS_PID] = "pid", [OCI_NS_NETWORK] = "network", [OCI_NS_MOUNT] = "mount",
	[OCI_NS_IPC] = "ipc", [OCI_NS_UTS] = "uts", [OCI_NS_USER] = "user",
	[OCI_NS_CGROUP] = "cgroup", [OCI_NS_TIME] = "time",
};

const int oci_ns_clone_flags[OCI_NS_TYPES] = {
	[OCI_NS_PID] = CLONE_NEWPID, [OCI_NS_NETWORK] = CLONE_NEWNET, [OCI_NS_MOUNT] = CLONE_NEWNS,
	[OCI_NS_IPC] = CLONE_NEWIPC, [OCI_NS_UTS] = CLONE_NEWUTS, [OCI_NS_USER] = CLONE_NEWUSER,
	[OCI_NS_CGROUP] = CLONE_NEWCGROUP, [OCI_NS_TIME] = CLONE_NEWTIME,
};

const char *const oci_ns_proc_names[OCI_NS_TYPES] = {
	[OCI_NS_PID] = "pid", [OCI_NS_NETWORK] = "net", [OCI_NS_MOUNT] = "mnt",
	[OCI_NS_IPC] = "ipc", [OCI_NS_UTS] = "uts", [OCI_NS_USER] = "user",
	[OCI_NS_CGROUP] = "cgroup", [OCI_NS_TIME] = "time",
};

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

/* Evaluates a getter; returns from the caller on error, else yields 0/1. */
#define TRY(expr) ({ int _r = (expr); if (_r < 0) return _r; _r; })

/* Getter into a GR_OPT(type) field. */
#define GET_OPT(getter, obj, parent, key, opt, err) ({                          \
	int _r = getter((obj), (parent), (key), &(opt).v, (err));               \
	if (_r > 0)                                                             \
		(opt).set = true;                                               \
	_r; })

static int oom(struct gr_error *err)
{
	return gr_error_set(err, ENOMEM, "out of memory");
}

static int missing(struct gr_error *err, const char *parent, const char *key)
{
	char path[GR_JPATH_MAX];
	gr_jpath_key(path, sizeof(path), parent, key);
	return gr_error_set(err, EINVAL, "%s: required field is missing", path);
}

static int not_absolute(struct gr_error *err, const char *path, const char *value)
{
	return gr_error_set(err, EINVAL, "%s: must be an absolute path, got \"%s\"", path, value);
}

static int get_req_strdup(const json_t *obj, const char *parent, const char *key, char **out,
			  struct gr_error *err)
{
	int r = TRY(gr_json_get_strdup(obj, parent, key, out, err));
	return r ? 1 : missing(err, parent, key);
}

/* Optional absolute path. */
static int get_abs_path(const json_t *obj, const char *parent, const char *key, char **out,
			struct gr_error *err)
{
	int r = TRY(gr_json_get_strdup(obj, parent, key, out, err));
	if (r && (*out)[0] != '/') {
		char path[GR_JPATH_MAX];
		gr_jpath_key(path, sizeof(path), parent, key);
		return not_absolute(err, path, *out);
	}
	return r;
}

static int get_req_abs_path(const json_t *obj, const char *parent, const char *key, char **out,
			    struct gr_error *err)
{
	int r = TRY(get_abs_path(obj, parent, key, out, err));
	return r ? 1 : missing(err, parent, key);
}

/* A string array whose entries must all be absolute paths. */
static int get_abs_strv(const json_t *obj, const char *parent, const char *key, char ***out,
			struct gr_error *err)
{
	int r = TRY(gr_json_get_strv(obj, parent, key, out, err));
	for (size_t i = 0; r && (*out)[i]; i++) {
		if ((*out)[i][0] != '/') {
			char base[GR_JPATH_MAX], path[GR_JPATH_MAX];
			gr_jpath_key(base, sizeof(base), parent, key);
			gr_jpath_index(path, sizeof(path), base, i);
			return not_absolute(err, path, (*out)[i]);
		}
	}
	return r;
}

static int get_uint16(const json_t *obj, const char *parent, const char *key, uint16_t *out,
		      struct gr_error *err)
{
	char path[GR_JPATH_MAX];
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	gr_jpath_key(path, sizeof(path), parent, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT16_MAX) {
		gr_autofree char *d = gr_json_describe(v);
		return gr_error_set(err, EINVAL, "%s: expected an integer between 0 and 65535, got %s", path, d);
	}
	*out = (uint16_t)json_integer_value(v);
	return 1;
}

static int get_req_int64(const json_t *obj, const char *parent, const char *key, int64_t *out,
			 struct gr_error *err)
{
	int r = TRY(gr_json_get_int64(obj, parent, key, out, err));
	return r ? 1 : missing(err, parent, key);
}

static int get_req_uint64(const json_t *obj, const char *parent, const char *key, uint64_t *out,
			  struct gr_error *err)
{
	int r = TRY(gr_json_get_uint64(obj, parent, key, out, err));
	return r ? 1 : missing(err, parent, key);
}

static int get_req_uint32(const json_t *obj, const char *parent, const char *key, uint32_t *out,
			  struct gr_error *err)
{
	int r = TRY(gr_json_get_uint32(obj, parent, key, out, err));
	return r ? 1 : missing(err, parent, key);
}

/* An array of objects parsed element by element into a calloc'd C array.
 * On failure the elements parsed so far are released with free_elem. */
typedef int (*elem_parse_fn)(const json_t *obj, const char *path, void *elem, struct gr_error *err);
typedef void (*elem_free_fn)(void *elem);

static int parse_array(const json_t *obj, const char *parent, const char *key, size_t size,
		       elem_parse_fn parse, elem_free_fn free_elem, void **out, size_t *n_out,
		       struct gr_error *err)
{
	json_t *arr;
	int r = TRY(gr_json_get_array(obj, parent, key, &arr, err));
	if (r == 0)
		return 0;
	size_t n = json_array_size(arr);
	if (n == 0)
		return 0;
	char base[GR_JPATH_MAX], path[GR_JPATH_MAX];
	gr_jpath_key(base, sizeof(base), parent, key);
	gr_autofree char *v = calloc(n, size);
	if (!v)
		return oom(err);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(arr, i);
		gr_jpath_index(path, sizeof(path), base, i);
		if (!json_is_object(e)) {
			gr_autofree char *d = gr_json_describe(e);
			r = gr_error_set(err, EINVAL, "%s: expected an object, got %s", path, d);
		} else {
			r = parse(e, path, v + i * size, err);
		}
		if (r < 0) {
			if (free_elem)
				for (size_t j = 0; j <= i; j++)
					free_elem(v + j * size);
			return r;
		}
	}
	*out = gr_steal_ptr(v);
	*n_out = n;
	return 1;
}

#define PARSE_ARRAY(obj, parent, key, arr, n, parse, free_elem, err) ({                 \
	void *_p = NULL;                                                                 \
	size_t _n = 0;                                                                   \
	int _r = parse_array((obj), (parent), (key), sizeof(*(arr)), (parse), (free_elem), \
			     &_p, &_n, (err));                                           \
	if (_r > 0) {                                                                    \
		(arr) = _p;                                                              \
		(n) = _n;                                                                \
	}                                                                                \
	_r; })

static void kv_free(struct oci_kv *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
	free(v);
}

/* An object of string values ("annotations", "linux.sysctl", ...). */
static int parse_string_map(const json_t *obj, const char *parent, const char *key,
			    struct oci_kv **out, size_t *n_out, struct gr_error *err)
{
	json_t *map;
	int r = TRY(gr_json_get_object(obj, parent, key, &map, err));
	if (r == 0 || json_object_size(map) == 0)
		return 0;
	char base[GR_JPATH_MAX], path[GR_JPATH_MAX];
	gr_jpath_key(base, sizeof(base), parent, key);
	struct oci_kv *v = calloc(json_object_size(map), sizeof(*v));
	if (!v)
		return oom(err);
	size_t n = 0;
	const char *k;
	json_t *val;
	json_object_foreach(map, k, val) {
		const char *s;
		gr_jpath_key(path, sizeof(path), base, k);
		r = gr_json_as_string(val, path, &s, err);
		if (r >= 0) {
			v[n].key = strdup(k);
			v[n].value = strdup(s);
			n++;
			if (!v[n - 1].key || !v[n - 1].value)
				r = oom(err);
		}
		if (r < 0) {
			kv_free(v, n);
			return r;
		}
	}
	*out = v;
	*n_out = n;
	return 1;
}

static int idmap_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_idmap *m = elem;
	TRY(get_req_uint32(obj, path, "containerID", &m->container_id, err));
	TRY(get_req_uint32(obj, path, "hostID", &m->host_id, err));
	TRY(get_req_uint32(obj, path, "size", &m->size, err));
	return 0;
}

static int parse_idmaps(const json_t *obj, const char *parent, const char *key,
			struct oci_idmap **out, size_t *n, struct gr_error *err)
{
	return PARSE_ARRAY(obj, parent, key, *out, *n, idmap_parse, NULL, err);
}

/* ---------------------------------------------------------------------------
 * ociVersion
 * ------------------------------------------------------------------------- */

static bool parse_version_number(const char **p, unsigned long *out)
{
	const char *s = *p;
	if (*s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno)
		return false;
	*p = end;
	return true;
}

int oci_version_check(const char *version, struct gr_error *err)
{
	unsigned long major, minor, patch;
	const char *p = version;

	if (!version)
		return gr_error_set(err, EINVAL, "ociVersion: required field is missing");
	if (!parse_version_number(&p, &major) || *p++ != '.' ||
	    !parse_version_number(&p, &minor) || *p++ != '.' ||
	    !parse_version_number(&p, &patch) ||
	    (*p != '\0' && ((*p != '-' && *p != '+') || p[1] == '\0')))
		return gr_error_set(err, EINVAL,
				    "ociVersion: invalid version \"%s\" (expected MAJOR.MINOR.PATCH, for example \"1.2.0\")",
				    version);
	if (major != 1 || minor > 2)
		return gr_error_set(err, EINVAL, "ociVersion: unsupported version \"%s\" (supported: 1.0.0 to 1.2.x)",
				    version);
	return 0;
}

/* ---------------------------------------------------------------------------
 * mounts
 * ------------------------------------------------------------------------- */

static void mount_free(void *elem)
{
	struct oci_mount *m = elem;
	free(m->destination);
	free(m->type);
	free(m->source);
	gr_strv_free(m->options);
	free(m->data);
	free(m->uid_mappings);
	free(m->gid_mappings);
	memset(m, 0, sizeof(*m));
}

static int mount_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_mount *m = elem;
	char opath[GR_JPATH_MAX];

	TRY(get_req_abs_path(obj, path, "destination", &m->destination, err));
	TRY(gr_json_get_strdup(obj, path, "type", &m->type, err));
	TRY(gr_json_get_strdup(obj, path, "source", &m->source, err));
	TRY(gr_json_get_strv(obj, path, "options", &m->options, err));
	gr_jpath_key(opath, sizeof(opath), path, "options");
	TRY(mount_options_parse(m->options, opath, m, err));
	if (m->type && strcmp(m->type, "bind") == 0) {
		m->bind = true;
		m->flags |= MS_BIND;
	}
	TRY(parse_idmaps(obj, path, "uidMappings", &m->uid_mappings, &m->n_uid_mappings, err));
	TRY(parse_idmaps(obj, path, "gidMappings", &m->gid_mappings, &m->n_gid_mappings, err));
	return 0;
}

/* ---------------------------------------------------------------------------
 * process
 * ------------------------------------------------------------------------- */

static int check_env(char *const *env, const char *parent, const char *key, struct gr_error *err)
{
	for (size_t i = 0; env && env[i]; i++) {
		if (!strchr(env[i], '=') || env[i][0] == '=') {
			char base[GR_JPATH_MAX], path[GR_JPATH_MAX];
			gr_jpath_key(base, sizeof(base), parent, key);
			gr_jpath_index(path, sizeof(path), base, i);
			return gr_error_set(err, EINVAL, "%s: expected NAME=VALUE, got \"%s\"", path, env[i]);
		}
	}
	return 0;
}

static int user_parse(const json_t *obj, const char *path, struct oci_user *u, struct gr_error *err)
{
	json_t *arr;
	TRY(gr_json_get_uint32(obj, path, "uid", &u->uid, err));
	TRY(gr_json_get_uint32(obj, path, "gid", &u->gid, err));
	TRY(GET_OPT(gr_json_get_uint32, obj, path, "umask", u->umask, err));
	TRY(gr_json_get_strdup(obj, path, "username", &u->username, err));
	if (TRY(gr_json_get_array(obj, path, "additionalGids", &arr, err)) && json_array_size(arr)) {
		char base[GR_JPATH_MAX], ipath[GR_JPATH_MAX];
		size_t n = json_array_size(arr);
		gr_jpath_key(base, sizeof(base), path, "additionalGids");
		u->additional_gids = calloc(n, sizeof(uint32_t));
		if (!u->additional_gids)
			return oom(err);
		u->n_additional_gids = n;
		for (size_t i = 0; i < n; i++) {
			gr_jpath_index(ipath, sizeof(ipath), base, i);
			TRY(gr_json_as_uint32(json_array_get(arr, i), ipath, &u->additional_gids[i], err));
		}
	}
	return 0;
}

static int caps_parse(const json_t *obj, const char *path, struct oci_capabilities *c, struct gr_error *err)
{
	static const char *const names[] = { "bounding", "effective", "inheritable", "permitted", "ambient" };
	char ***sets[] = { &c->bounding, &c->effective, &c->inheritable, &c->permitted, &c->ambient };

	for (size_t s = 0; s < sizeof(names) / sizeof(names[0]); s++) {
		char ***set = sets[s];
		if (!TRY(gr_json_get_strv(obj, path, names[s], set, err)))
			continue;
		for (size_t i = 0; (*set)[i]; i++) {
			if (caps_from_name((*set)[i]) < 0) {
				char base[GR_JPATH_MAX], ipath[GR_JPATH_MAX];
				gr_jpath_key(base, sizeof(base), path, names[s]);
				gr_jpath_index(ipath, sizeof(ipath), base, i);
				return gr_error_set(err, EINVAL, "%s: unknown capability \"%s\"", ipath, (*set)[i]);
			}
		}
	}
	return 0;
}

static void rlimit_free(void *elem)
{
	struct oci_rlimit *r = elem;
	free(r->type);
	r->type = NULL;
}

static int rlimit_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_rlimit *rl = elem;
	TRY(get_req_strdup(obj, path, "type", &rl->type, err));
	rl->resource = rlimit_from_name(rl->type);
	if (rl->resource < 0)
		return gr_error_set(err, EINVAL, "%s.type: unknown resource \"%s\"", path, rl->type);
	TRY(get_req_uint64(obj, path, "soft", &rl->soft, err));
	TRY(get_req_uint64(obj, path, "hard", &rl->hard, err));
	return 0;
}

static int io_priority_parse(const json_t *obj, const char *path, struct oci_process *p, struct gr_error *err)
{
	static const struct { const char *name; int cls; } classes[] = {
		{ "IOPRIO_CLASS_RT", 1 }, { "IOPRIO_CLASS_BE", 2 }, { "IOPRIO_CLASS_IDLE", 3 },
	};
	const char *cls;
	int32_t prio = 0;

	if (!TRY(gr_json_get_string(obj, path, "class", &cls, err)))
		return missing(err, path, "class");
	p->io_priority_class = -1;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strcmp(cls, classes[i].name) == 0)
			p->io_priority_class = classes[i].cls;
	if (p->io_priority_class < 0)
		return gr_error_set(err, EINVAL,
				    "%s.class: unknown class \"%s\" (expected IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)",
				    path, cls);
	TRY(gr_json_get_int32(obj, path, "priority", &prio, err));
	if (prio < 0 || prio > 7)
		return gr_error_set(err, EINVAL, "%s.priority: must be between 0 and 7, got %" PRId32, path, prio);
	p->io_priority = prio;
	p->has_io_priority = true;
	return 0;
}

static int process_parse(const json_t *obj, const char *path, struct oci_process *p, struct gr_error *err)
{
	json_t *o;

	TRY(gr_json_get_bool(obj, path, "terminal", &p->terminal, err));
	if (TRY(gr_json_get_object(obj, path, "consoleSize", &o, err))) {
		char cpath[GR_JPATH_MAX];
		gr_jpath_key(cpath, sizeof(cpath), path, "consoleSize");
		TRY(get_req_uint32(o, cpath, "height", &p->console_size.v.height, err));
		TRY(get_req_uint32(o, cpath, "width", &p->console_size.v.width, err));
		p->console_size.set = true;
	}

	TRY(gr_json_get_strdup(obj, path, "commandLine", &p->command_line, err));
	if (!TRY(gr_json_get_strv(obj, path, "args", &p->args, err)))
		return missing(err, path, "args");
	if (!p->args[0]) {
		char apath[GR_JPATH_MAX];
		gr_jpath_key(apath, sizeof(apath), path, "args");
		return gr_error_set(err, EINVAL, "%s: must contain at least the program to run", apath);
	}
	TRY(get_req_abs_path(obj, path, "cwd", &p->cwd, err));
	TRY(gr_json_get_strv(obj, path, "env", &p->env, err));
	TRY(check_env(p->env, path, "env", err));

	if (TRY(gr_json_get_object(obj, path, "user", &o, err))) {
		char upath[GR_JPATH_MAX];
		gr_jpath_key(upath, sizeof(upath), path, "user");
		TRY(user_parse(o, upath, &p->user, err));
	}

	if (TRY(gr_json_get_object(obj, path, "capabilities", &o, err))) {
		char cpath[GR_JPATH_MAX];
		gr_jpath_key(cpath, sizeof(cpath), path, "capabilities");
		TRY(caps_parse(o, cpath, &p->caps, err));
		p->has_caps = true;
	}

	TRY(PARSE_ARRAY(obj, path, "rlimits", p->rlimits, p->n_rlimits, rlimit_parse, rlimit_free, err));
	for (size_t i = 0; i < p->n_rlimits; i++) {
		for (size_t j = 0; j < i; j++) {
			if (p->rlimits[i].resource == p->rlimits[j].resource) {
				char rpath[GR_JPATH_MAX];
				gr_jpath_key(rpath, sizeof(rpath), path, "rlimits");
				return gr_error_set(err, EINVAL, "%s: \"%s\" listed twice", rpath, p->rlimits[i].type);
			}
		}
	}

	TRY(gr_json_get_bool(obj, path, "noNewPrivileges", &p->no_new_privileges, err));
	int32_t adj;
	if (TRY(gr_json_get_int32(obj, path, "oomScoreAdj", &adj, err))) {
		if (adj < -1000 || adj > 1000)
			return gr_error_set(err, EINVAL, "%s.oomScoreAdj: must be between -1000 and 1000, got %" PRId32,
					    path, adj);
		p->oom_score_adj.set = true;
		p->oom_score_adj.v = adj;
	}
	TRY(gr_json_get_strdup(obj, path, "apparmorProfile", &p->apparmor_profile, err));
	TRY(gr_json_get_strdup(obj, path, "selinuxLabel", &p->selinux_label, err));

	if (TRY(gr_json_get_object(obj, path, "ioPriority", &o, err))) {
		char ipath[GR_JPATH_MAX];
		gr_jpath_key(ipath, sizeof(ipath), path, "ioPriority");
		TRY(io_priority_parse(o, ipath, p, err));
	}
	return 0;
}

void oci_process_free(struct oci_process *p)
{
	if (!p)
		return;
	free(p->cwd);
	gr_strv_free(p->env);
	gr_strv_free(p->args);
	free(p->command_line);
	free(p->user.additional_gids);
	free(p->user.username);
	gr_strv_free(p->caps.bounding);
	gr_strv_free(p->caps.effective);
	gr_strv_free(p->caps.inheritable);
	gr_strv_free(p->caps.permitted);
	gr_strv_free(p->caps.ambient);
	for (size_t i = 0; i < p->n_rlimits; i++)
		rlimit_free(&p->rlimits[i]);
	free(p->rlimits);
	free(p->apparmor_profile);
	free(p->selinux_label);
	memset(p, 0, sizeof(*p));
}

static void process_freep(struct oci_process *p) { oci_process_free(p); }

int oci_process_parse(const json_t *obj, const char *path, struct oci_process *out, struct gr_error *err)
{
	_cleanup_(process_freep) struct oci_process p = { 0 };

	if (!json_is_object(obj)) {
		gr_autofree char *d = gr_json_describe(obj);
		return gr_error_set(err, EINVAL, "%s: expected an object, got %s", path, d);
	}
	TRY(process_parse(obj, path, &p, err));
	*out = p;
	memset(&p, 0, sizeof(p));
	return 0;
}

/* ---------------------------------------------------------------------------
 * hooks
 * ------------------------------------------------------------------------- */

static void hook_free(void *elem)
{
	struct oci_hook *h = elem;
	free(h->path);
	gr_strv_free(h->args);
	gr_strv_free(h->env);
	memset(h, 0, sizeof(*h));
}

static int hook_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_hook *h = elem;
	TRY(get_req_abs_path(obj, path, "path", &h->path, err));
	TRY(gr_json_get_strv(obj, path, "args", &h->args, err));
	TRY(gr_json_get_strv(obj, path, "env", &h->env, err));
	TRY(check_env(h->env, path, "env", err));
	if (TRY(GET_OPT(gr_json_get_int32, obj, path, "timeout", h->timeout, err)) && h->timeout.v <= 0)
		return gr_error_set(err, EINVAL, "%s.timeout: must be greater than zero, got %d", path, h->timeout.v);
	return 0;
}

static void hook_list_free(struct oci_hook_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		hook_free(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ---------------------------------------------------------------------------
 * linux.resources
 * ------------------------------------------------------------------------- */

static int device_rule_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_device_rule *d = elem;
	const char *type;

	if (!TRY(gr_json_get_bool(obj, path, "allow", &d->allow, err)))
		return missing(err, path, "allow");
	d->type = 'a';
	if (TRY(gr_json_get_string(obj, path, "type", &type, err))) {
		if (strcmp(type, "a") && strcmp(type, "c") && strcmp(type, "b"))
			return gr_error_set(err, EINVAL, "%s.type: unknown device type \"%s\" (expected a, c or b)",
					    path, type);
		d->type = type[0];
	}
	d->major = d->minor = -1;
	TRY(gr_json_get_int64(obj, path, "major", &d->major, err));
	TRY(gr_json_get_int64(obj, path, "minor", &d->minor, err));
	if (d->major < -1)
		return gr_error_set(err, EINVAL, "%s.major: must be -1 (any) or a device number, got %" PRId64,
				    path, d->major);
	if (d->minor < -1)
		return gr_error_set(err, EINVAL, "%s.minor: must be -1 (any) or a device number, got %" PRId64,
				    path, d->minor);
	if (TRY(gr_json_get_strdup(obj, path, "access", &d->access, err))) {
		const char *a = d->access;
		bool seen[3] = { false, false, false };
		for (size_t i = 0; a[i]; i++) {
			const char *k = strchr("rwm", a[i]);
			if (!k || seen[k - "rwm"])
				return gr_error_set(err, EINVAL,
						    "%s.access: invalid access \"%s\" (expected a combination of r, w and m)",
						    path, a);
			seen[k - "rwm"] = true;
		}
	}
	return 0;
}

static void device_rule_free(void *elem)
{
	struct oci_device_rule *d = elem;
	free(d->access);
	d->access = NULL;
}

static int weight_device_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_weight_device *w = elem;
	TRY(get_req_int64(obj, path, "major", &w->major, err));
	TRY(get_req_int64(obj, path, "minor", &w->minor, err));
	TRY(GET_OPT(get_uint16, obj, path, "weight", w->weight, err));
	TRY(GET_OPT(get_uint16, obj, path, "leafWeight", w->leaf_weight, err));
	return 0;
}

static int throttle_device_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_throttle_device *t = elem;
	TRY(get_req_int64(obj, path, "major", &t->major, err));
	TRY(get_req_int64(obj, path, "minor", &t->minor, err));
	TRY(get_req_uint64(obj, path, "rate", &t->rate, err));
	return 0;
}

static int hugepage_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_hugepage_limit *h = elem;
	TRY(get_req_strdup(obj, path, "pageSize", &h->page_size, err));
	TRY(get_req_uint64(obj, path, "limit", &h->limit, err));
	return 0;
}

static void hugepage_free(void *elem)
{
	struct oci_hugepage_limit *h = elem;
	free(h->page_size);
	h->page_size = NULL;
}

static int priority_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_kv *kv = elem;
	uint32_t prio;
	TRY(get_req_strdup(obj, path, "name", &kv->key, err));
	TRY(get_req_uint32(obj, path, "priority", &prio, err));
	if (asprintf(&kv->value, "%" PRIu32, prio) < 0) {
		kv->value = NULL;
		return oom(err);
	}
	return 0;
}

static void kv_elem_free(void *elem)
{
	struct oci_kv *kv = elem;
	free(kv->key);
	free(kv->value);
	kv->key = kv->value = NULL;
}

/* rdma: { "mlx5_1": { "hcaHandles": 3, "hcaObjects": 10000 } } -> value
 * "hca_handle=3 hca_object=10000" (the cgroup v2 rdma.max syntax). */
static int rdma_parse(const json_t *obj, const char *parent, struct oci_resources *r, struct gr_error *err)
{
	json_t *map;
	if (!TRY(gr_json_get_object(obj, parent, "rdma", &map, err)) || json_object_size(map) == 0)
		return 0;
	char base[GR_JPATH_MAX], path[GR_JPATH_MAX];
	gr_jpath_key(base, sizeof(base), parent, "rdma");
	r->rdma = calloc(json_object_size(map), sizeof(*r->rdma));
	if (!r->rdma)
		return oom(err);
	const char *k;
	json_t *val;
	json_object_foreach(map, k, val) {
		GR_OPT(uint32_t) handles = { 0 }, objects = { 0 };
		gr_jpath_key(path, sizeof(path), base, k);
		if (!json_is_object(val)) {
			gr_autofree char *d = gr_json_describe(val);
			return gr_error_set(err, EINVAL, "%s: expected an object, got %s", path, d);
		}
		TRY(GET_OPT(gr_json_get_uint32, val, path, "hcaHandles", handles, err));
		TRY(GET_OPT(gr_json_get_uint32, val, path, "hcaObjects", objects, err));
		struct oci_kv *kv = &r->rdma[r->n_rdma++];
		char hbuf[32] = "", obuf[32] = "";
		if (handles.set)
			snprintf(hbuf, sizeof(hbuf), "hca_handle=%" PRIu32, handles.v);
		if (objects.set)
			snprintf(obuf, sizeof(obuf), "hca_object=%" PRIu32, objects.v);
		kv->key = strdup(k);
		if (asprintf(&kv->value, "%s%s%s", hbuf, handles.set && objects.set ? " " : "", obuf) < 0)
			kv->value = NULL;
		if (!kv->key || !kv->value)
			return oom(err);
	}
	return 0;
}

static int memory_parse(const json_t *obj, const char *path, struct oci_resources *r, struct gr_error *err)
{
	TRY(GET_OPT(gr_json_get_int64, obj, path, "limit", r->memory.limit, err));
	TRY(GET_OPT(gr_json_get_int64, obj, path, "reservation", r->memory.reservation, err));
	TRY(GET_OPT(gr_json_get_int64, obj, path, "swap", r->memory.swap, err));
	TRY(GET_OPT(gr_json_get_int64, obj, path, "kernel", r->memory.kernel, err));
	TRY(GET_OPT(gr_json_get_int64, obj, path, "kernelTCP", r->memory.kernel_tcp, err));
	if (TRY(GET_OPT(gr_json_get_uint64, obj, path, "swappiness", r->memory.swappiness, err)) &&
	    r->memory.swappiness.v > 100)
		return gr_error_set(err, EINVAL, "%s.swappiness: must be between 0 and 100, got %" PRIu64,
				    path, r->memory.swappiness.v);
	TRY(GET_OPT(gr_json_get_bool, obj, path, "disableOOMKiller", r->memory.disable_oom_killer, err));
	TRY(GET_OPT(gr_json_get_bool, obj, path, "useHierarchy", r->memory.use_hierarchy, err));
	TRY(GET_OPT(gr_json_get_bool, obj, path, "checkBeforeUpdate", r->memory.check_before_update, err));
	return 0;
}

static int cpu_parse(const json_t *obj, const char *path, struct oci_resources *r, struct gr_error *err)
{
	TRY(GET_OPT(gr_json_get_uint64, obj, path, "shares", r->cpu.shares, err));
	TRY(GET_OPT(gr_json_get_int64, obj, path, "quota", r->cpu.quota, err));
	TRY(GET_OPT(gr_json_get_uint64, obj, path, "burst", r->cpu.burst, err));
	TRY(GET_OPT(gr_json_get_uint64, obj, path, "period", r->cpu.period, err));
	TRY(GET_OPT(gr_json_get_int64, obj, path, "realtimeRuntime", r->cpu.realtime_runtime, err));
	TRY(GET_OPT(gr_json_get_uint64, obj, path, "realtimePeriod", r->cpu.realtime_period, err));
	TRY(gr_json_get_strdup(obj, path, "cpus", &r->cpu.cpus, err));
	TRY(gr_json_get_strdup(obj, path, "mems", &r->cpu.mems, err));
	TRY(GET_OPT(gr_json_get_int64, obj, path, "idle", r->cpu.idle, err));
	return 0;
}

static int blkio_parse(const json_t *obj, const char *path, struct oci_resources *r, struct gr_error *err)
{
	TRY(GET_OPT(get_uint16, obj, path, "weight", r->blkio.weight, err));
	TRY(GET_OPT(get_uint16, obj, path, "leafWeight", r->blkio.leaf_weight, err));
	TRY(PARSE_ARRAY(obj, path, "weightDevice", r->blkio.weight_device, r->blkio.n_weight_device,
			weight_device_parse, NULL, err));
	TRY(PARSE_ARRAY(obj, path, "throttleReadBpsDevice", r->blkio.throttle_read_bps,
			r->blkio.n_throttle_read_bps, throttle_device_parse, NULL, err));
	TRY(PARSE_ARRAY(obj, path, "throttleWriteBpsDevice", r->blkio.throttle_write_bps,
			r->blkio.n_throttle_write_bps, throttle_device_parse, NULL, err));
	TRY(PARSE_ARRAY(obj, path, "throttleReadIOPSDevice", r->blkio.throttle_read_iops,
			r->blkio.n_throttle_read_iops, throttle_device_parse, NULL, err));
	TRY(PARSE_ARRAY(obj, path, "throttleWriteIOPSDevice", r->blkio.throttle_write_iops,
			r->blkio.n_throttle_write_iops, throttle_device_parse, NULL, err));
	return 0;
}

/* Calls fn on obj[key] when it is an object, with the path of the member. */
static int with_object(const json_t *obj, const char *parent, const char *key,
		       int (*fn)(const json_t *, const char *, struct oci_resources *, struct gr_error *),
		       struct oci_resources *r, struct gr_error *err)
{
	json_t *o;
	if (!TRY(gr_json_get_object(obj, parent, key, &o, err)))
		return 0;
	char path[GR_JPATH_MAX];
	gr_jpath_key(path, sizeof(path), parent, key);
	return fn(o, path, r, err);
}

static int pids_parse(const json_t *obj, const char *path, struct oci_resources *r, struct gr_error *err)
{
	TRY(GET_OPT(gr_json_get_int64, obj, path, "limit", r->pids.limit, err));
	return 0;
}

static int network_parse(const json_t *obj, const char *path, struct oci_resources *r, struct gr_error *err)
{
	TRY(GET_OPT(gr_json_get_uint32, obj, path, "classID", r->network.class_id, err));
	TRY(PARSE_ARRAY(obj, path, "priorities", r->network.priorities, r->network.n_priorities,
			priority_parse, kv_elem_free, err));
	return 0;
}

static int resources_parse(const json_t *obj, const char *path, struct oci_resources *r, struct gr_error *err)
{
	TRY(PARSE_ARRAY(obj, path, "devices", r->devices, r->n_devices, device_rule_parse, device_rule_free, err));
	TRY(with_object(obj, path, "memory", memory_parse, r, err));
	TRY(with_object(obj, path, "cpu", cpu_parse, r, err));
	TRY(with_object(obj, path, "pids", pids_parse, r, err));
	TRY(with_object(obj, path, "blockIO", blkio_parse, r, err));
	TRY(PARSE_ARRAY(obj, path, "hugepageLimits", r->hugepage_limits, r->n_hugepage_limits,
			hugepage_parse, hugepage_free, err));
	TRY(with_object(obj, path, "network", network_parse, r, err));
	TRY(rdma_parse(obj, path, r, err));
	TRY(parse_string_map(obj, path, "unified", &r->unified, &r->n_unified, err));
	return 0;
}

void oci_resources_free(struct oci_resources *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_devices; i++)
		device_rule_free(&r->devices[i]);
	free(r->devices);
	free(r->cpu.cpus);
	free(r->cpu.mems);
	free(r->blkio.weight_device);
	free(r->blkio.throttle_read_bps);
	free(r->blkio.throttle_write_bps);
	free(r->blkio.throttle_read_iops);
	free(r->blkio.throttle_write_iops);
	for (size_t i = 0; i < r->n_hugepage_limits; i++)
		hugepage_free(&r->hugepage_limits[i]);
	free(r->hugepage_limits);
	kv_free(r->network.priorities, r->network.n_priorities);
	kv_free(r->rdma, r->n_rdma);
	kv_free(r->unified, r->n_unified);
	memset(r, 0, sizeof(*r));
}

static void resources_freep(struct oci_resources *r) { oci_resources_free(r); }

int oci_resources_parse(const json_t *obj, const char *path, struct oci_resources *out, struct gr_error *err)
{
	_cleanup_(resources_freep) struct oci_resources r = { 0 };

	if (!json_is_object(obj)) {
		gr_autofree char *d = gr_json_describe(obj);
		return gr_error_set(err, EINVAL, "%s: expected an object, got %s", path, d);
	}
	TRY(resources_parse(obj, path, &r, err));
	*out = r;
	memset(&r, 0, sizeof(r));
	return 0;
}

/* ---------------------------------------------------------------------------
 * linux.seccomp
 * ------------------------------------------------------------------------- */

static int seccomp_arg_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	static const char *const ops[] = {
		[SC_OP_NE] = "SCMP_CMP_NE", [SC_OP_LT] = "SCMP_CMP_LT", [SC_OP_LE] = "SCMP_CMP_LE",
		[SC_OP_EQ] = "SCMP_CMP_EQ", [SC_OP_GE] = "SCMP_CMP_GE", [SC_OP_GT] = "SCMP_CMP_GT",
		[SC_OP_MASKED_EQ] = "SCMP_CMP_MASKED_EQ",
	};
	struct oci_seccomp_arg *a = elem;
	const char *op;

	TRY(get_req_uint32(obj, path, "index", &a->index, err));
	if (a->index >= 6)
		return gr_error_set(err, EINVAL, "%s.index: must be between 0 and 5, got %" PRIu32, path, a->index);
	TRY(get_req_uint64(obj, path, "value", &a->value, err));
	TRY(gr_json_get_uint64(obj, path, "valueTwo", &a->value_two, err));
	if (!TRY(gr_json_get_string(obj, path, "op", &op, err)))
		return missing(err, path, "op");
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(op, ops[i]) == 0) {
			a->op = (enum oci_seccomp_op)i;
			return 0;
		}
	}
	return gr_error_set(err, EINVAL, "%s.op: unknown operator \"%s\"", path, op);
}

static void seccomp_rule_free(void *elem)
{
	struct oci_seccomp_rule *s = elem;
	gr_strv_free(s->names);
	free(s->action);
	free(s->args);
	memset(s, 0, sizeof(*s));
}

static int seccomp_rule_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_seccomp_rule *s = elem;
	if (!TRY(gr_json_get_strv(obj, path, "names", &s->names, err)))
		return missing(err, path, "names");
	if (!s->names[0])
		return gr_error_set(err, EINVAL, "%s.names: must list at least one system call", path);
	TRY(get_req_strdup(obj, path, "action", &s->action, err));
	TRY(GET_OPT(gr_json_get_uint32, obj, path, "errnoRet", s->errno_ret, err));
	TRY(PARSE_ARRAY(obj, path, "args", s->args, s->n_args, seccomp_arg_parse, NULL, err));
	return 0;
}

static void seccomp_free(struct oci_seccomp *s)
{
	if (!s)
		return;
	free(s->default_action);
	gr_strv_free(s->architectures);
	gr_strv_free(s->flags);
	free(s->listener_path);
	free(s->listener_metadata);
	for (size_t i = 0; i < s->n_syscalls; i++)
		seccomp_rule_free(&s->syscalls[i]);
	free(s->syscalls);
	free(s);
}

static int seccomp_parse(const json_t *obj, const char *path, struct oci_seccomp *s, struct gr_error *err)
{
	TRY(get_req_strdup(obj, path, "defaultAction", &s->default_action, err));
	TRY(GET_OPT(gr_json_get_uint32, obj, path, "defaultErrnoRet", s->default_errno_ret, err));
	TRY(gr_json_get_strv(obj, path, "architectures", &s->architectures, err));
	TRY(gr_json_get_strv(obj, path, "flags", &s->flags, err));
	TRY(get_abs_path(obj, path, "listenerPath", &s->listener_path, err));
	TRY(gr_json_get_strdup(obj, path, "listenerMetadata", &s->listener_metadata, err));
	TRY(PARSE_ARRAY(obj, path, "syscalls", s->syscalls, s->n_syscalls, seccomp_rule_parse,
			seccomp_rule_free, err));
	return 0;
}

/* ---------------------------------------------------------------------------
 * linux
 * ------------------------------------------------------------------------- */

static int device_parse(const json_t *obj, const char *path, void *elem, struct gr_error *err)
{
	struct oci_device *d = elem;
	const char *type;

	if (!TRY(gr_json_get_string(obj, path, "type", &type, err)))
		return missing(err, path, "type");
	if (strlen(type) != 1 || !strchr("cbup", type[0]))
		return gr_error_set(err, EINVAL, "%s.type: unknown device type \"%s\" (expected c, b, u or p)",
				    path, type);
	d->type = type[0];
	TRY(get_req_abs_path(obj, path, "path", &d->path, err));
	if (d->type != 'p') {
		TRY(get_req_int64(obj, path, "major", &d->major, err));
		TRY(get_req_int64(obj, path, "minor", &d->minor, err));
	} else {
		TRY(gr_json_get_int64(obj, path, "major", &d->major, err));
		TRY(gr_json_get_int64(obj, path, "minor", &d->minor, err));
	}
	if (d->major < 0 || d->minor < 0)
		return gr_error_set(err, EINVAL, "%s.%s: must not be negative, got %" PRId64, path,
				    d->major < 0 ? "major" : "minor", d->major < 0 ? d->major : d->minor);
	TRY(GET_OPT(gr_json_get_uint32, obj, path, "fileMode", d->file_mode, err));
	TRY(GET_OPT(gr_json_get_uint32, obj, path, "uid", d->uid, err));
	TRY(GET_OPT(gr_json_get_uint32, obj, path, "gid", d->gid, err));
	return 0;
}

static void device_free(void *elem)
{
	struct oci_device *d = elem;
	free(d->path);
	d->path = NULL;
}

static int namespaces_parse(const json_t *obj, const char *parent, struct oci_linux *l, struct gr_error *err)
{
	json_t *arr;
	if (!TRY(gr_json_get_array(obj, parent, "namespaces", &arr, err)))
		return 0;
	char base[GR_JPATH_MAX], path[GR_JPATH_MAX];
	gr_jpath_key(base, sizeof(base), parent, "namespaces");
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		const char *type;
		int t = -1;
		gr_jpath_index(path, sizeof(path), base, i);
		if (!json_is_object(e)) {
			gr_autofree char *d = gr_json_describe(e);
			return gr_error_set(err, EINVAL, "%s: expected an object, got %s", path, d);
		}
		if (!TRY(gr_json_get_string(e, path, "type", &type, err)))
			return missing(err, path, "type");
		for (int k = 0; k < OCI_NS_TYPES; k++)
			if (strcmp(type, oci_ns_names[k]) == 0)
				t = k;
		if (t < 0)
			return gr_error_set(err, EINVAL, "%s.type: unknown namespace type \"%s\"", path, type);
		if (l->ns[t].requested)
			return gr_error_set(err, EINVAL, "%s: \"%s\" listed twice", base, type);
		l->ns[t].requested = true;
		TRY(get_abs_path(e, path, "path", &l->ns[t].path, err));
	}
	return 0;
}

static int personality_parse(const json_t *obj, const char *path, struct oci_personality *p, struct gr_error *err)
{
	TRY(get_req_strdup(obj, path, "domain", &p->domain, err));
	if (strcmp(p->domain, "LINUX") && strcmp(p->domain, "LINUX32"))
		return gr_error_set(err, EINVAL, "%s.domain: unknown domain \"%s\" (expected LINUX or LINUX32)",
				    path, p->domain);
	TRY(gr_json_get_strv(obj, path, "flags", &p->flags, err));
	return 0;
}

static void personality_free(struct oci_personality *p)
{
	if (!p)
		return;
	free(p->domain);
	gr_strv_free(p->flags);
	free(p);
}

static int time_offsets_parse(const json_t *obj, const char *parent, struct oci_linux *l, struct gr_error *err)
{
	json_t *map;
	if (!TRY(gr_json_get_object(obj, parent, "timeOffsets", &map, err)))
		return 0;
	char base[GR_JPATH_MAX], path[GR_JPATH_MAX];
	gr_jpath_key(base, sizeof(base), parent, "timeOffsets");
	const char *k;
	json_t *v;
	json_object_foreach(map, k, v) {
		struct oci_time_offset *t;
		gr_jpath_key(path, sizeof(path), base, k);
		if (strcmp(k, "monotonic") == 0)
			t = &l->time_monotonic;
		else if (strcmp(k, "boottime") == 0)
			t = &l->time_boottime;
		else
			return gr_error_set(err, EINVAL, "%s: unknown clock \"%s\" (expected monotonic or boottime)",
					    base, k);
		if (!json_is_object(v)) {
			gr_autofree char *d = gr_json_describe(v);
			return gr_error_set(err, EINVAL, "%s: expected an object, got %s", path, d);
		}
		TRY(gr_json_get_int64(v, path, "secs", &t->secs, err));
		TRY(gr_json_get_uint32(v, path, "nanosecs", &t->nanosecs, err));
		if (t->nanosecs >= 1000000000u)
			return gr_error_set(err, EINVAL, "%s.nanosecs: must be below 1000000000, got %" PRIu32,
					    path, t->nanosecs);
		t->set = true;
	}
	if ((l->time_monotonic.set || l->time_boottime.set) && !l->ns[OCI_NS_TIME].requested)
		return gr_error_set(err, EINVAL,
				    "%s: requires a time namespace (add {\"type\": \"time\"} to %s.namespaces)",
				    base, parent);
	return 0;
}

static int linux_parse(const json_t *obj, const char *path, struct oci_linux *l, struct gr_error *err)
{
	json_t *o;
	char sub[GR_JPATH_MAX];

	TRY(namespaces_parse(obj, path, l, err));
	TRY(parse_idmaps(obj, path, "uidMappings", &l->uid_mappings, &l->n_uid_mappings, err));
	TRY(parse_idmaps(obj, path, "gidMappings", &l->gid_mappings, &l->n_gid_mappings, err));
	if (l->ns[OCI_NS_USER].requested && !l->ns[OCI_NS_USER].path) {
		if (l->n_uid_mappings == 0)
			return gr_error_set(err, EINVAL, "%s.uidMappings: required when a new user namespace is requested",
					    path);
		if (l->n_gid_mappings == 0)
			return gr_error_set(err, EINVAL, "%s.gidMappings: required when a new user namespace is requested",
					    path);
	}
	TRY(PARSE_ARRAY(obj, path, "devices", l->devices, l->n_devices, device_parse, device_free, err));
	TRY(gr_json_get_strdup(obj, path, "cgroupsPath", &l->cgroups_path, err));

	if (TRY(gr_json_get_object(obj, path, "resources", &o, err))) {
		gr_jpath_key(sub, sizeof(sub), path, "resources");
		TRY(oci_resources_parse(o, sub, &l->resources, err));
		l->has_resources = true;
	}
	TRY(parse_string_map(obj, path, "sysctl", &l->sysctl, &l->n_sysctl, err));

	if (TRY(gr_json_get_object(obj, path, "seccomp", &o, err))) {
		gr_jpath_key(sub, sizeof(sub), path, "seccomp");
		l->seccomp = calloc(1, sizeof(*l->seccomp));
		if (!l->seccomp)
			return oom(err);
		TRY(seccomp_parse(o, sub, l->seccomp, err));
	}

	if (TRY(gr_json_get_strdup(obj, path, "rootfsPropagation", &l->rootfs_propagation, err)) &&
	    mount_propagation_parse(l->rootfs_propagation, &l->rootfs_propagation_flags) < 0)
		return gr_error_set(err, EINVAL,
				    "%s.rootfsPropagation: unknown propagation \"%s\" (expected shared, slave, private or unbindable, optionally prefixed with r)",
				    path, l->rootfs_propagation);

	TRY(get_abs_strv(obj, path, "maskedPaths", &l->masked_paths, err));
	TRY(get_abs_strv(obj, path, "readonlyPaths", &l->readonly_paths, err));
	TRY(gr_json_get_strdup(obj, path, "mountLabel", &l->mount_label, err));

	if (TRY(gr_json_get_object(obj, path, "personality", &o, err))) {
		gr_jpath_key(sub, sizeof(sub), path, "personality");
		l->personality = calloc(1, sizeof(*l->personality));
		if (!l->personality)
			return oom(err);
		TRY(personality_parse(o, sub, l->personality, err));
	}

	TRY(time_offsets_parse(obj, path, l, err));

	if (TRY(gr_json_get_object(obj, path, "intelRdt", &o, err))) {
		gr_jpath_key(sub, sizeof(sub), path, "intelRdt");
		l->has_intel_rdt = true;
		TRY(gr_json_get_strdup(o, sub, "closID", &l->intel_rdt_clos, err));
	}
	return 0;
}

static void linux_free(struct oci_linux *l)
{
	for (int i = 0; i < OCI_NS_TYPES; i++)
		free(l->ns[i].path);
	free(l->uid_mappings);
	free(l->gid_mappings);
	for (size_t i = 0; i < l->n_devices; i++)
		device_free(&l->devices[i]);
	free(l->devices);
	free(l->cgroups_path);
	oci_resources_free(&l->resources);
	kv_free(l->sysctl, l->n_sysctl);
	seccomp_free(l->seccomp);
	free(l->rootfs_propagation);
	gr_strv_free(l->masked_paths);
	gr_strv_free(l->readonly_paths);
	free(l->mount_label);
	personality_free(l->personality);
	free(l->intel_rdt_clos);
	memset(l, 0, sizeof(*l));
}

/* ---------------------------------------------------------------------------
 * The whole document
 * ------------------------------------------------------------------------- */

void oci_config_free(struct oci_config *c)
{
	if (!c)
		return;
	free(c->oci_version);
	free(c->root_path);
	for (size_t i = 0; i < c->n_mounts; i++)
		mount_free(&c->mounts[i]);
	free(c->mounts);
	oci_process_free(&c->process);
	free(c->hostname);
	free(c->domainname);
	for (int k = 0; k < OCI_HOOK_KINDS; k++)
		hook_list_free(&c->hooks[k]);
	kv_free(c->annotations, c->n_annotations);
	linux_free(&c->linux_);
	if (c->json)
		json_decref(c->json);
	free(c);
}

static void config_freep(struct oci_config **c) { oci_config_free(*c); }

static int config_parse(json_t *json, struct oci_config *c, struct gr_error *err)
{
	json_t *o;

	if (!TRY(gr_json_get_strdup(json, "", "ociVersion", &c->oci_version, err)))
		return missing(err, "", "ociVersion");
	TRY(oci_version_check(c->oci_version, err));

	if (!TRY(gr_json_get_object(json, "", "root", &o, err)))
		return missing(err, "", "root");
	TRY(get_req_strdup(o, "root", "path", &c->root_path, err));
	if (c->root_path[0] == '\0')
		return gr_error_set(err, EINVAL, "root.path: must not be empty");
	TRY(gr_json_get_bool(o, "root", "readonly", &c->root_readonly, err));

	TRY(PARSE_ARRAY(json, "", "mounts", c->mounts, c->n_mounts, mount_parse, mount_free, err));

	if (TRY(gr_json_get_object(json, "", "process", &o, err))) {
		TRY(oci_process_parse(o, "process", &c->process, err));
		c->has_process = true;
	}

	TRY(gr_json_get_strdup(json, "", "hostname", &c->hostname, err));
	TRY(gr_json_get_strdup(json, "", "domainname", &c->domainname, err));

	if (TRY(gr_json_get_object(json, "", "hooks", &o, err))) {
		for (int k = 0; k < OCI_HOOK_KINDS; k++)
			TRY(PARSE_ARRAY(o, "hooks", oci_hook_names[k], c->hooks[k].v, c->hooks[k].n,
					hook_parse, hook_free, err));
	}

	TRY(parse_string_map(json, "", "annotations", &c->annotations, &c->n_annotations, err));

	if (TRY(gr_json_get_object(json, "", "linux", &o, err))) {
		TRY(linux_parse(o, "linux", &c->linux_, err));
		c->has_linux = true;
	}
	/* "windows", "solaris" and "vm" belong to other platforms: ignored. */
	return 0;
}

int oci_config_parse(json_t *json, struct oci_config **out, struct gr_error *err)
{
	_cleanup_(config_freep) struct oci_config *c = NULL;

	if (!json_is_object(json)) {
		gr_autofree char *d = gr_json_describe(json);
		return gr_error_set(err, EINVAL, "config: expected a JSON object, got %s", d);
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return oom(err);
	TRY(config_parse(json, c, err));
	c->json = json_incref(json);
	*out = gr_steal_ptr(c);
	return 0;
}

int oci_config_load(const char *path, struct oci_config **out, struct gr_error *err)
{
	gr_autofree char *file = NULL;
	gr_autojson json_t *json = NULL;
	struct stat st;

	if (stat(path, &st) < 0)
		return gr_error_sys(err, errno, "cannot read %s", path);
	if (S_ISDIR(st.st_mode)) {
		if (asprintf(&file, "%s/config.json", path) < 0) {
			file = NULL;
			return oom(err);
		}
	} else {
		file = strdup(path);
		if (!file)
			return oom(err);
	}
	TRY(gr_json_load_file(file, &json, err));
	int r = oci_config_parse(json, out, err);
	if (r < 0)
		return gr_error_prefix(err, "%s", file);
	return 0;
}
