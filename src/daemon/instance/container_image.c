/* The image under a container instance (container.h): which lower layers
 * its overlay stacks, and what the image's config (Env, Cmd, Entrypoint,
 * WorkingDir, User) and the instance's volumes add to its config.json. */
#include "daemon/instance/container.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

void container_image_clear(struct container_image *img)
{
	image_layers_free(&img->layers);
	memset(img, 0, sizeof(*img));
}

int container_image_resolve(const char *state_dir, const char *ref, struct container_image *out,
			    struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	if (image_hex_valid(ref)) {
		int r = image_layers_load(state_dir, ref, &out->layers, err);
		if (r < 0)
			return r == -ENOENT ? gr_error_prefix(err, "image %.12s", ref) : r;
		snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", ref);
		return 0;
	}
	/* Instances pin their image's fingerprint (image/store.h); the daemon
	 * rewrites older rows that named an alias at start-up. */
	return gr_error_set(err, ENOENT, "image \"%.70s\" is not a fingerprint of the image store", ref ? ref : "");
}

/* ---- the image's config ---- */

/* The topmost file at relative path rel ("etc/passwd") in the layers,
 * honouring whiteouts (a 0/0 character device) and opaque directories of
 * the layers above; never follows a symbolic link. -ENOENT when absent. */
static int layers_open(const struct image_layers *l, const char *dir, const char *file, int *fd)
{
	for (size_t i = l->n; i-- > 0;) {
		char p[PATH_MAX];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s/%s", l->layers_dir, l->hex[i], dir);
		if (lstat(p, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				return -ENOENT; /* a whiteout, a file or a link hides what is below */
			snprintf(p, sizeof(p), "%s/%s/%s/%s", l->layers_dir, l->hex[i], dir, file);
			if (lstat(p, &st) == 0) {
				if (!S_ISREG(st.st_mode))
					return -ENOENT;
				*fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
				return *fd < 0 ? -errno : 0;
			}
			char x[64];
			snprintf(p, sizeof(p), "%s/%s/%s", l->layers_dir, l->hex[i], dir);
			if (lgetxattr(p, "trusted.overlay.opaque", x, sizeof(x)) == 1 && x[0] == 'y')
				return -ENOENT;
		}
	}
	return -ENOENT;
}

/* Finds name (or, numeric, the id) in a passwd/group file: field 2 (the id)
 * and, for passwd, field 3 (the primary group). */
static int db_lookup(const struct image_layers *l, const char *file, const char *name, long *id, long *gid)
{
	gr_autoclose int fd = -1;
	if (layers_open(l, "etc", file, &fd) < 0)
		return -ENOENT;
	gr_autofclose FILE *f = fdopen(fd, "r");
	if (!f)
		return -errno;
	fd = -1;
	char line[1024];
	while (fgets(line, sizeof(line), f)) {
		/* strsep: an empty field ("app::1000:...", no password) counts. */
		char *rest = line, *fields[4] = { 0 };
		for (int k = 0; rest && k < 4; k++)
			fields[k] = strsep(&rest, ":\n");
		if (!fields[0] || !fields[2] || !fields[2][0])
			continue;
		if (strcmp(fields[0], name) == 0) {
			*id = strtol(fields[2], NULL, 10);
			if (gid)
				*gid = fields[3] ? strtol(fields[3], NULL, 10) : 0;
			return 0;
		}
	}
	return -ENOENT;
}

static bool numeric(const char *s, long *out)
{
	uint64_t v;
	if (gr_parse_u64(s, &v) < 0 || v > 0xfffffffeull)
		return false;
	*out = (long)v;
	return true;
}

/* "user", "uid", "user:group", "uid:gid" (Docker's User), names from the
 * image's /etc/passwd and /etc/group. */
static int resolve_user(const struct image_layers *l, const char *spec, long *uid, long *gid, struct gr_error *err)
{
	char user[256], group[256] = "";
	if (snprintf(user, sizeof(user), "%s", spec) >= (int)sizeof(user))
		return gr_error_set(err, EINVAL, "the image's User is too long");
	char *colon = strchr(user, ':');
	if (colon) {
		*colon = '\0';
		snprintf(group, sizeof(group), "%s", colon + 1);
	}
	long pgid = 0;
	if (numeric(user, uid)) {
		/* A numeric uid's primary group, if the image names it. */
		gr_autoclose int fd = -1;
		if (!group[0] && layers_open(l, "etc", "passwd", &fd) == 0) {
			gr_autofclose FILE *f = fdopen(fd, "r");
			char line[1024];
			if (f)
				fd = -1;
			while (f && fgets(line, sizeof(line), f)) {
				unsigned long u, g;
				char *p = strchr(line, ':');
				if (p && (p = strchr(p + 1, ':')) && sscanf(p + 1, "%lu:%lu", &u, &g) == 2 &&
				    (long)u == *uid) {
					pgid = (long)g;
					break;
				}
			}
		}
	} else if (db_lookup(l, "passwd", user, uid, &pgid) < 0) {
		return gr_error_set(err, EINVAL, "the image's User \"%s\": no such user in its /etc/passwd", spec);
	}
	*gid = pgid;
	if (group[0] && !numeric(group, gid) && db_lookup(l, "group", group, gid, NULL) < 0)
		return gr_error_set(err, EINVAL, "the image's User \"%s\": no such group in its /etc/group", spec);
	return 0;
}

static int env_set(json_t *env, const char *kv, bool replace)
{
	size_t klen = strcspn(kv, "=");
	size_t i;
	json_t *e;
	json_array_foreach(env, i, e) {
		const char *es = json_string_value(e);
		if (es && strncmp(es, kv, klen) == 0 && es[klen] == '=')
			return replace ? json_array_set_new(env, i, json_string(kv)) : 0;
	}
	return json_array_append_new(env, json_string(kv));
}

int container_config_apply_image(json_t *cfg, const struct instance_spec *spec, const struct container_image *img,
				 struct gr_error *err)
{
	const json_t *ic = img->layers.config;
	if (!img->fingerprint[0] || !ic)
		return 0;
	json_t *process = json_object_get(cfg, "process");
	json_t *env = json_object_get(process, "env");
	if (!json_is_object(process) || !json_is_array(env))
		return gr_error_set(err, EINVAL, "config.json has no process.env");
	size_t i;
	json_t *v;
	/* Env: the image's replace the defaults (PATH...), the instance's
	 * environment.* replace the image's. */
	json_array_foreach(json_object_get(ic, "Env"), i, v) {
		const char *kv = json_string_value(v);
		const char *eq = kv ? strchr(kv, '=') : NULL;
		if (!eq || eq == kv)
			continue;
		char key[256];
		if (snprintf(key, sizeof(key), "environment.%.*s", (int)(eq - kv), kv) >= (int)sizeof(key))
			continue;
		if (spec->config && json_object_get(spec->config, key))
			continue;
		if (env_set(env, kv, true) < 0)
			return gr_error_set(err, ENOMEM, "out of memory");
	}
	/* The default command: Entrypoint + Cmd, when the instance has none. */
	if (!spec->command || !spec->command[0]) {
		json_t *args = json_array();
		if (!args)
			return gr_error_set(err, ENOMEM, "out of memory");
		json_t *ep = json_object_get(ic, "Entrypoint");
		if (json_is_array(ep))
			json_array_extend(args, ep);
		json_t *cmd = json_object_get(ic, "Cmd");
		if (json_is_array(cmd))
			json_array_extend(args, cmd);
		if (json_array_size(args) > 0 && json_string_length(json_array_get(args, 0)) > 0)
			json_object_set_new(process, "args", args);
		else
			json_decref(args);
	}
	const char *wd = json_string_value(json_object_get(ic, "WorkingDir"));
	if (wd && *wd) {
		if (wd[0] != '/')
			return gr_error_set(err, EINVAL, "the image's WorkingDir \"%s\" is not an absolute path", wd);
		json_object_set_new(process, "cwd", json_string(wd));
	}
	const char *user = json_string_value(json_object_get(ic, "User"));
	if (user && *user) {
		long uid, gid;
		int r = resolve_user(&img->layers, user, &uid, &gid, err);
		if (r < 0)
			return r;
		json_object_set_new(process, "user", json_pack("{s:I,s:I}", "uid", (json_int_t)uid, "gid", (json_int_t)gid));
	}
	return 0;
}

int container_config_add_volumes(json_t *cfg, const json_t *volumes, struct gr_error *err)
{
	json_t *mounts = json_object_get(cfg, "mounts");
	if (!json_is_array(mounts))
		return gr_error_set(err, EINVAL, "config.json has no mounts");
	size_t i;
	json_t *v;
	json_array_foreach((json_t *)volumes, i, v) {
		const char *src = json_string_value(json_object_get(v, "source"));
		const char *dst = json_string_value(json_object_get(v, "path"));
		bool ro = json_is_true(json_object_get(v, "readonly"));
		if (!src || !dst || src[0] != '/' || dst[0] != '/')
			return gr_error_set(err, EINVAL, "volume %zu: source and path must be absolute", i);
		json_t *m = json_pack("{s:s, s:s, s:s, s:[s,s,s,s,s]}", "destination", dst, "type", "bind", "source", src,
				      "options", "rbind", ro ? "ro" : "rw", "nosuid", "nodev", "rprivate");
		if (!m || json_array_append_new(mounts, m) < 0)
			return gr_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

int container_config_add_network(json_t *cfg, const char *netns, const char *bundle, struct gr_error *err)
{
	size_t i;
	json_t *ns;
	bool found = false;
	json_array_foreach(json_object_get(json_object_get(cfg, "linux"), "namespaces"), i, ns) {
		const char *type = json_string_value(json_object_get(ns, "type"));
		if (type && strcmp(type, "network") == 0) {
			json_object_set_new(ns, "path", json_string(netns));
			found = true;
		}
	}
	json_t *mounts = json_object_get(cfg, "mounts");
	if (!found || !json_is_array(mounts))
		return gr_error_set(err, EINVAL, "config.json has no network namespace or no mounts");
	static const char *const files[] = { "resolv.conf", "hosts" };
	for (i = 0; i < 2; i++) {
		char src[PATH_MAX], dst[32];
		snprintf(src, sizeof(src), "%s/%s", bundle, files[i]);
		snprintf(dst, sizeof(dst), "/etc/%s", files[i]);
		json_t *m = json_pack("{s:s, s:s, s:s, s:[s,s,s,s,s]}", "destination", dst, "type", "bind", "source", src,
				      "options", "bind", "rw", "nosuid", "nodev", "rprivate");
		if (!m || json_array_append_new(mounts, m) < 0)
			return gr_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}
