/* The image store: files under STATE/images and rows in the database
 * (store.h explains the layout and the commit order). */
#include "daemon/image/store.h"
#include "daemon/image/vmdisk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/store/images.h"
#include "daemon/store/store.h"

struct image_store {
	pthread_mutex_t mu;
	struct store *db;
	char state_dir[PATH_MAX];
	char images[PATH_MAX];
	char layers[PATH_MAX];
	char tmp[PATH_MAX];
};

static void unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}
#define IS_LOCK(is) _cleanup_(unlockp) pthread_mutex_t *_mu_ = (pthread_mutex_lock(&(is)->mu), &(is)->mu)

/* --- names ------------------------------------------------------------------- */

bool image_fingerprint_valid(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static bool alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int image_alias_validate(const char *name, struct gr_error *err)
{
	if (!name || !*name)
		return gr_error_set(err, EINVAL, "alias: empty (e.g. \"busybox\" or \"debian/12\")");
	size_t len = strlen(name);
	if (len > IMAGE_ALIAS_MAX)
		return gr_error_set(err, EINVAL, "alias \"%.40s...\": longer than %d bytes", name, IMAGE_ALIAS_MAX);
	if (image_fingerprint_valid(name))
		return gr_error_set(err, EINVAL, "alias \"%s\": 64 hex digits would read as a fingerprint", name);
	int segments = 0;
	for (const char *p = name; *p;) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (++segments > 2)
			return gr_error_set(err, EINVAL, "alias \"%s\": at most one '/' (e.g. \"debian/12\")", name);
		if (n == 0 || n > 64 || !alnum(p[0]))
			return gr_error_set(err, EINVAL,
					    "alias \"%.*s\": each part separated by '/' starts with a letter or digit "
					    "and has 1 to 64 characters",
					    IMAGE_ALIAS_MAX, name);
		for (size_t i = 0; i < n; i++)
			if (!alnum(p[i]) && p[i] != '.' && p[i] != '_' && p[i] != '-')
				return gr_error_set(err, EINVAL,
						    "alias \"%.*s\": character '%c' not allowed (letters, digits, "
						    "'.', '_', '-' and one '/')",
						    IMAGE_ALIAS_MAX, name, (p[i] >= 32 && p[i] < 127) ? p[i] : '?');
		if ((n == 7 && strncmp(p, "aliases", 7) == 0) || (n == 6 && strncmp(p, "export", 6) == 0))
			return gr_error_set(err, EINVAL, "alias \"%s\": \"%.*s\" is reserved (an API route name)", name,
					    (int)n, p);
		p += n;
		if (*p == '/') {
			p++;
			if (!*p)
				return gr_error_set(err, EINVAL, "alias \"%s\": ends with '/'", name);
		}
	}
	return 0;
}

/* --- paths, image.json ---------------------------------------------------------- */

void image_store_layer_path(const char *state_dir, const char *hex, char out[PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/images/layers/%s", state_dir, hex);
}

int image_store_read_json(const char *state_dir, const char *fp, json_t **out, struct gr_error *err)
{
	if (!image_fingerprint_valid(fp))
		return gr_error_set(err, EINVAL, "'%.70s' is not a fingerprint", fp ? fp : "");
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/images/%s/image.json", state_dir, fp);
	int rc = gr_json_load_file(path, out, err);
	if (rc == 0 && !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return gr_error_set(err, EINVAL, "%s: not a JSON object", path);
	}
	return rc;
}

/* "sha256:HEX" or HEX -> HEX, or NULL. */
static const char *diffid_hex(const char *s)
{
	if (s && strncmp(s, "sha256:", 7) == 0)
		s += 7;
	return image_fingerprint_valid(s) ? s : NULL;
}

const char *image_store_state_dir(const struct image_store *is)
{
	return is->state_dir;
}

struct store *image_store_db(const struct image_store *is)
{
	return is->db;
}

static int write_image_json(const char *path, json_t *j, struct gr_error *err)
{
	gr_autofree char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return gr_error_set(err, ENOMEM, "cannot encode %s", path);
	return gr_write_file_atomic(path, text, strlen(text), 0644, err);
}

/* image.json's "aliases" as the database has them now. */
static void sync_aliases(struct image_store *is, const char *fp)
{
	struct gr_error err = { 0 };
	gr_autojson json_t *j = NULL;
	gr_autostrv char **aliases = NULL;
	if (image_store_read_json(is->state_dir, fp, &j, &err) < 0 ||
	    store_image_aliases(is->db, fp, &aliases, &err) < 0) {
		gr_warn("image %s: cannot update image.json's aliases: %s", fp, err.msg);
		return;
	}
	json_t *a = json_array();
	for (char **p = aliases; *p; p++)
		json_array_append_new(a, json_string(*p));
	json_object_set_new(j, "aliases", a);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s/image.json", is->images, fp);
	if (write_image_json(path, j, &err) < 0)
		gr_warn("image %s: %s", fp, err.msg);
}

/* --- open: clean-up and consistency ------------------------------------------------ */

/* Adds every layer named by an image.json under images/ to keep (a strv). */
static int referenced_layers(struct image_store *is, const char *skip_fp, char ***keep, struct gr_error *err)
{
	gr_autoclosedir DIR *d = opendir(is->images);
	if (!d)
		return gr_error_sys(err, errno, "cannot read %s", is->images);
	size_t len = 0, cap = 16;
	gr_autostrv char **v = calloc(cap, sizeof(char *));
	if (!v)
		return gr_error_set(err, ENOMEM, "out of memory");
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!image_fingerprint_valid(e->d_name) || (skip_fp && strcmp(e->d_name, skip_fp) == 0))
			continue;
		gr_autojson json_t *j = NULL;
		struct gr_error e2 = { 0 };
		if (image_store_read_json(is->state_dir, e->d_name, &j, &e2) < 0) {
			/* Unreadable: keep everything rather than guess. */
			return gr_error_set(err, EIO, "image %s: %s", e->d_name, e2.msg);
		}
		size_t i;
		json_t *l;
		json_array_foreach(json_object_get(j, "layers"), i, l) {
			const char *hex = diffid_hex(json_string_value(l));
			if (!hex)
				continue;
			if (len + 2 > cap) {
				char **nv = realloc(v, (cap *= 2) * sizeof(char *));
				if (!nv)
					return gr_error_set(err, ENOMEM, "out of memory");
				v = nv;
			}
			if (!(v[len] = strdup(hex)))
				return gr_error_set(err, ENOMEM, "out of memory");
			v[++len] = NULL;
		}
	}
	*keep = gr_steal_ptr(v);
	return 0;
}

/* Removes layers/<hex> that no image (but skip_fp) names. */
static void gc_layers(struct image_store *is, const char *skip_fp)
{
	struct gr_error err = { 0 };
	gr_autostrv char **keep = NULL;
	if (referenced_layers(is, skip_fp, &keep, &err) < 0) {
		gr_warn("image store: layers not collected: %s", err.msg);
		return;
	}
	gr_autoclosedir DIR *d = opendir(is->layers);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		bool used = false;
		for (char **k = keep; *k && !used; k++)
			used = strcmp(*k, e->d_name) == 0;
		if (used)
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", is->layers, e->d_name);
		if (gr_rm_rf(path, &err) < 0)
			gr_warn("image store: %s", err.msg);
		else
			gr_debug("image store: removed unused layer %s", e->d_name);
	}
}

static void now_rfc3339(char *buf, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	size_t o = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + o, n - o, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* A row for an image directory whose commit was cut short after its rename. */
static void adopt(struct image_store *is, const char *fp)
{
	struct gr_error err = { 0 };
	gr_autojson json_t *j = NULL;
	if (image_store_read_json(is->state_dir, fp, &j, &err) < 0) {
		gr_warn("image store: %s has no readable image.json (%s): removed", fp, err.msg);
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", is->images, fp);
		(void)gr_rm_rf(path, NULL);
		return;
	}
	struct store_image row = {
		.fingerprint = (char *)fp,
		.architecture = (char *)json_string_value(json_object_get(j, "architecture")),
		.size = json_integer_value(json_object_get(j, "size")),
		.created_at = (char *)json_string_value(json_object_get(j, "created_at")),
		.source = (char *)json_string_value(json_object_get(j, "source")),
		.description = (char *)json_string_value(json_object_get(j, "description")),
	};
	/* Aliases only when free: another image may have taken them since. */
	const char *aliases[16] = { 0 };
	size_t n = 0, i;
	json_t *a;
	char other[IMAGE_FP_HEX];
	json_array_foreach(json_object_get(j, "aliases"), i, a) {
		const char *s = json_string_value(a);
		if (n < 15 && s && image_alias_validate(s, NULL) == 0 && store_alias_get(is->db, s, other, NULL) < 0)
			aliases[n++] = s;
	}
	if (store_image_insert(is->db, &row, aliases, &err) < 0)
		gr_warn("image store: cannot record %s: %s", fp, err.msg);
	else
		gr_info("image store: recorded image %s found without its row", fp);
	sync_aliases(is, fp);
}

static int reconcile(struct image_store *is, struct gr_error *err)
{
	gr_autostrv char **rows = NULL;
	int rc = store_image_list(is->db, &rows, err);
	if (rc < 0)
		return rc;
	char path[PATH_MAX];
	for (char **r = rows; *r; r++) {
		snprintf(path, sizeof(path), "%s/%s/image.json", is->images, *r);
		if (access(path, F_OK) == 0)
			continue;
		gr_warn("image store: image %s has no directory: its row is removed", *r);
		struct gr_error e = { 0 };
		if (store_image_delete(is->db, *r, &e) < 0)
			gr_warn("image store: %s", e.msg);
	}
	gr_autoclosedir DIR *d = opendir(is->images);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!image_fingerprint_valid(e->d_name))
			continue;
		bool known = false;
		for (char **r = rows; *r && !known; r++)
			known = strcmp(*r, e->d_name) == 0;
		if (!known)
			adopt(is, e->d_name);
	}
	gc_layers(is, NULL);
	int changed = 0;
	if ((rc = store_instances_pin_images(is->db, &changed, err)) < 0)
		return rc;
	if (changed)
		gr_info("image store: %d instance(s) now pin their image by fingerprint", changed);
	return 0;
}

int image_store_open(const char *state_dir, struct store *db, struct image_store **out, struct gr_error *err)
{
	struct image_store *is = calloc(1, sizeof(*is));
	if (!is)
		return gr_error_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&is->mu, NULL);
	is->db = db;
	if (snprintf(is->state_dir, sizeof(is->state_dir), "%s", state_dir) >= (int)sizeof(is->state_dir) - 200) {
		image_store_close(is);
		return gr_error_set(err, ENAMETOOLONG, "state directory path too long");
	}
	snprintf(is->images, sizeof(is->images), "%s/images", state_dir);
	snprintf(is->layers, sizeof(is->layers), "%s/layers", is->images);
	snprintf(is->tmp, sizeof(is->tmp), "%s/tmp", is->images);
	int rc;
	if ((rc = gr_mkdir_p(is->images, 0700, err)) < 0 || (rc = gr_rm_rf(is->tmp, err)) < 0 ||
	    (rc = gr_mkdir_p(is->tmp, 0700, err)) < 0 || (rc = gr_mkdir_p(is->layers, 0755, err)) < 0) {
		image_store_close(is);
		return rc;
	}
	/* The overlay's lower layers are reached through images/: containers'
	 * processes never see these paths, but the kernel needs them traversable. */
	chmod(is->images, 0711);
	if ((rc = reconcile(is, err)) < 0) {
		image_store_close(is);
		return rc;
	}
	/* VM disk caches a crash left half-made, or of images gone since. */
	struct gr_error verr = { 0 };
	if (vmdisk_cache_sweep(state_dir, &verr) < 0)
		gr_warn("image store: VM disk cache: %s", verr.msg);
	*out = is;
	return 0;
}

void image_store_close(struct image_store *is)
{
	if (!is)
		return;
	pthread_mutex_destroy(&is->mu);
	free(is);
}

int image_store_stage(struct image_store *is, char out[PATH_MAX], struct gr_error *err)
{
	snprintf(out, PATH_MAX, "%s/XXXXXX", is->tmp);
	if (!mkdtemp(out)) {
		/* tmp/ itself may have been removed by hand. */
		if (errno != ENOENT || gr_mkdir_p(is->tmp, 0700, NULL) < 0 ||
		    (snprintf(out, PATH_MAX, "%s/XXXXXX", is->tmp), !mkdtemp(out)))
			return gr_error_sys(err, errno, "cannot create a staging directory in %s", is->tmp);
	}
	return 0;
}

void image_store_unstage(const char *staging)
{
	struct gr_error err = { 0 };
	if (staging && staging[0] && gr_rm_rf(staging, &err) < 0)
		gr_warn("image store: %s", err.msg);
}

/* --- commit ------------------------------------------------------------------------- */

static int check_aliases_free(struct image_store *is, const char *fp, const char *const *aliases,
			      struct gr_error *err)
{
	for (size_t i = 0; aliases && aliases[i]; i++) {
		int rc = image_alias_validate(aliases[i], err);
		if (rc < 0)
			return rc;
		char other[IMAGE_FP_HEX];
		if (store_alias_get(is->db, aliases[i], other, NULL) == 0 && strcmp(other, fp) != 0)
			return gr_error_set(err, EEXIST,
					    "alias %s already names image %.12s (move it with `gureum image alias add "
					    "%s IMAGE`, or choose another name)",
					    aliases[i], other, aliases[i]);
	}
	return 0;
}

static int commit_locked(struct image_store *is, const char *staging, const struct image_meta *meta,
			 const char *const *aliases, bool *already, struct gr_error *err)
{
	const char *fp = meta->fingerprint;
	if (!image_fingerprint_valid(fp))
		return gr_error_set(err, EINVAL, "internal: bad fingerprint");
	int rc = check_aliases_free(is, fp, aliases, err);
	if (rc < 0)
		return rc;
	struct store_image row = { 0 };
	struct gr_error e = { 0 };
	int got = store_image_get(is->db, fp, &row, &e);
	if (got < 0 && got != -ENOENT) {
		/* Not "absent": a database error must not let the commit below
		 * replace (and collect the layers of) an image that exists. */
		*err = e;
		return got;
	}
	if (got == 0) {
		store_image_clear(&row);
		*already = true;
		for (size_t i = 0; aliases && aliases[i]; i++)
			if ((rc = store_alias_set(is->db, aliases[i], fp, err)) < 0)
				return rc;
		if (aliases && aliases[0])
			sync_aliases(is, fp);
		return 0;
	}
	*already = false;
	char src[PATH_MAX], dst[PATH_MAX];
	/* Layers the store lacks. */
	for (size_t i = 0; i < meta->n_layers; i++) {
		const char *hex = meta->layers[i];
		if (!image_fingerprint_valid(hex))
			return gr_error_set(err, EINVAL, "internal: bad layer id");
		snprintf(dst, sizeof(dst), "%s/%s", is->layers, hex);
		if (access(dst, F_OK) == 0)
			continue;
		snprintf(src, sizeof(src), "%s/layers/%s", staging, hex);
		if (rename(src, dst) < 0)
			return gr_error_sys(err, errno, "cannot move layer %s into the store", hex);
	}
	/* image.json, then the image directory: the commit point. */
	char created[64];
	now_rfc3339(created, sizeof(created));
	json_t *al = json_array(), *ly = json_array();
	for (size_t i = 0; aliases && aliases[i]; i++)
		json_array_append_new(al, json_string(aliases[i]));
	for (size_t i = 0; i < meta->n_layers; i++) {
		char id[80];
		snprintf(id, sizeof(id), "sha256:%s", meta->layers[i]);
		json_array_append_new(ly, json_string(id));
	}
	gr_autojson json_t *j = json_pack("{s:s, s:o, s:s, s:I, s:s, s:s, s:s, s:o, s:O}", "fingerprint", fp, "aliases",
					  al, "architecture", meta->architecture ? meta->architecture : "", "size",
					  (json_int_t)meta->size, "created_at", created, "source",
					  meta->source ? meta->source : "", "description",
					  meta->description ? meta->description : "", "layers", ly, "config",
					  meta->config ? meta->config : json_object());
	if (!j)
		return gr_error_set(err, ENOMEM, "cannot encode image.json");
	if (!meta->config) /* json_pack's O took a reference of a new object */
		json_decref(json_object_get(j, "config"));
	char imgdir[PATH_MAX];
	snprintf(imgdir, sizeof(imgdir), "%s/image", staging);
	if (mkdir(imgdir, 0755) < 0 && errno != EEXIST)
		return gr_error_sys(err, errno, "cannot create %s", imgdir);
	snprintf(src, sizeof(src), "%s/image.json", imgdir);
	if ((rc = write_image_json(src, j, err)) < 0)
		return rc;
	snprintf(dst, sizeof(dst), "%s/%s", is->images, fp);
	if (access(dst, F_OK) == 0) /* a directory without a row: what a crash left; ours is verified */
		(void)gr_rm_rf(dst, NULL);
	if (rename(imgdir, dst) < 0)
		return gr_error_sys(err, errno, "cannot move image %s into the store", fp);
	row = (struct store_image){ .fingerprint = (char *)fp, .architecture = (char *)meta->architecture,
				    .size = (int64_t)meta->size, .created_at = created, .source = (char *)meta->source,
				    .description = (char *)meta->description };
	if ((rc = store_image_insert(is->db, &row, aliases, err)) < 0) {
		(void)gr_rm_rf(dst, NULL);
		gc_layers(is, NULL);
		return rc;
	}
	return 0;
}

int image_store_commit(struct image_store *is, const char *staging, const struct image_meta *meta,
		       const char *const *aliases, bool *already, struct gr_error *err)
{
	bool dummy;
	int rc;
	{
		IS_LOCK(is);
		rc = commit_locked(is, staging, meta, aliases, already ? already : &dummy, err);
	}
	image_store_unstage(staging);
	return rc;
}

/* --- queries --------------------------------------------------------------------------- */

int image_store_resolve(struct image_store *is, const char *ref, char fp[IMAGE_FP_HEX], struct gr_error *err)
{
	if (!ref || !*ref || strlen(ref) > 256)
		return gr_error_set(err, EINVAL, "image: expected an alias or a fingerprint");
	int rc = store_image_resolve(is->db, ref, IMAGE_PREFIX_MIN, fp, err);
	if (rc == -ENOENT && image_fingerprint_valid(ref)) {
		/* An image directory put there by hand (or by tests) after start-up:
		 * recorded now, as start-up would. */
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s/image.json", is->images, ref);
		if (access(path, F_OK) == 0) {
			adopt(is, ref);
			rc = store_image_resolve(is->db, ref, IMAGE_PREFIX_MIN, fp, err);
		}
	}
	return rc;
}

static json_t *strv_urls(char **v, const char *prefix)
{
	json_t *a = json_array();
	for (char **p = v; p && *p; p++)
		json_array_append_new(a, json_sprintf("%s%s", prefix, *p));
	return a;
}

static int image_json(struct image_store *is, const char *fp, json_t **out, struct gr_error *err)
{
	struct store_image row = { 0 };
	int rc = store_image_get(is->db, fp, &row, err);
	if (rc < 0)
		return rc;
	gr_autostrv char **aliases = NULL, **users = NULL;
	gr_autojson json_t *file = NULL;
	struct gr_error e = { 0 };
	if ((rc = store_image_aliases(is->db, fp, &aliases, err)) < 0 ||
	    (rc = store_image_users(is->db, fp, &users, err)) < 0) {
		store_image_clear(&row);
		return rc;
	}
	if (image_store_read_json(is->state_dir, fp, &file, &e) < 0)
		gr_warn("image %s: %s", fp, e.msg);
	json_t *al = json_array();
	for (char **p = aliases; *p; p++)
		json_array_append_new(al, json_pack("{s:s}", "name", *p));
	json_t *layers = file ? json_object_get(file, "layers") : NULL;
	json_t *config = file ? json_object_get(file, "config") : NULL;
	*out = json_pack("{s:s, s:o, s:s, s:s, s:I, s:s, s:s, s:s, s:O, s:O, s:o}", "fingerprint", fp, "aliases", al,
			 "type", "container", "architecture", row.architecture, "size", (json_int_t)row.size,
			 "created_at", row.created_at, "source", row.source, "description", row.description, "layers",
			 layers ? layers : json_array(), "config", config ? config : json_object(), "used_by",
			 strv_urls(users, "/1.0/instances/"));
	/* The O's above took references of the temporaries when there was no file. */
	if (*out && !layers)
		json_decref(json_object_get(*out, "layers"));
	if (*out && !config)
		json_decref(json_object_get(*out, "config"));
	store_image_clear(&row);
	return *out ? 0 : gr_error_set(err, ENOMEM, "out of memory");
}

int image_store_get(struct image_store *is, const char *ref, json_t **out, struct gr_error *err)
{
	char fp[IMAGE_FP_HEX];
	int rc = image_store_resolve(is, ref, fp, err);
	return rc < 0 ? rc : image_json(is, fp, out, err);
}

int image_store_list(struct image_store *is, bool recursion, json_t **out, struct gr_error *err)
{
	gr_autostrv char **fps = NULL;
	int rc = store_image_list(is->db, &fps, err);
	if (rc < 0)
		return rc;
	if (!recursion) {
		*out = strv_urls(fps, "/1.0/images/");
		return 0;
	}
	json_t *a = json_array();
	for (char **p = fps; *p; p++) {
		json_t *j = NULL;
		struct gr_error e = { 0 };
		if (image_json(is, *p, &j, &e) == 0)
			json_array_append_new(a, j);
		else if (e.code != ENOENT) /* deleted meanwhile: skipped */
			gr_warn("image %s: %s", *p, e.msg);
	}
	*out = a;
	return 0;
}

/* --- delete, aliases ----------------------------------------------------------------------- */

int image_store_delete(struct image_store *is, const char *ref, struct gr_error *err)
{
	IS_LOCK(is);
	char fp[IMAGE_FP_HEX];
	int rc = image_store_resolve(is, ref, fp, err);
	if (rc < 0)
		return rc;
	gr_autostrv char **users = NULL;
	if ((rc = store_image_users(is->db, fp, &users, err)) < 0)
		return rc;
	if (users[0]) {
		char list[512] = "";
		size_t o = 0, n = gr_strv_len(users);
		for (size_t i = 0; i < n && o < sizeof(list) - 64; i++)
			o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", users[i]);
		return gr_error_set(err, EBUSY, "image %s (%.12s) is used by instance%s %s: delete %s first", ref, fp,
				    n > 1 ? "s" : "", list, n > 1 ? "them" : "it");
	}
	if ((rc = store_image_delete(is->db, fp, err)) < 0)
		return rc;
	/* Renamed aside first: a crash midway leaves tmp/, not half an image. */
	char dir[PATH_MAX], aside[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/%s", is->images, fp);
	if ((rc = image_store_stage(is, aside, err)) < 0)
		return rc;
	strncat(aside, "/image", sizeof(aside) - strlen(aside) - 1);
	if (rename(dir, aside) < 0)
		gr_warn("image %s: cannot move %s aside: %s", fp, dir, strerror(errno));
	*strrchr(aside, '/') = '\0';
	image_store_unstage(aside);
	struct gr_error verr = { 0 };
	if (vmdisk_cache_remove(is->state_dir, fp, &verr) < 0) /* its VM disks: a warning, the image is gone */
		gr_warn("image %s: %s", fp, verr.msg);
	gc_layers(is, NULL);
	return 0;
}

int image_store_alias_set(struct image_store *is, const char *name, const char *ref,
			  char moved_from[IMAGE_FP_HEX], struct gr_error *err)
{
	int rc = image_alias_validate(name, err);
	if (rc < 0)
		return rc;
	IS_LOCK(is);
	char fp[IMAGE_FP_HEX], old[IMAGE_FP_HEX] = "";
	if ((rc = image_store_resolve(is, ref, fp, err)) < 0)
		return rc;
	if (store_alias_get(is->db, name, old, NULL) < 0)
		old[0] = '\0';
	if ((rc = store_alias_set(is->db, name, fp, err)) < 0)
		return rc;
	if (old[0] && strcmp(old, fp) != 0)
		sync_aliases(is, old);
	sync_aliases(is, fp);
	if (moved_from)
		snprintf(moved_from, IMAGE_FP_HEX, "%s", strcmp(old, fp) != 0 ? old : "");
	return 0;
}

int image_store_alias_remove(struct image_store *is, const char *name, struct gr_error *err)
{
	IS_LOCK(is);
	char fp[IMAGE_FP_HEX];
	int rc = store_alias_get(is->db, name, fp, err);
	if (rc < 0)
		return rc;
	if ((rc = store_alias_delete(is->db, name, err)) < 0)
		return rc;
	sync_aliases(is, fp);
	return 0;
}
