/* The /1.0/images routes (src/daemon/README.md "Images"). Reads answer at
 * once from the store; imports, builds, exports and deletes are async
 * operations (they read or write gigabytes) whose metadata carries
 * {"progress":{"stage","bytes","total"[,"line"]}} while they run and the
 * result at the end.
 *
 * Aliases may hold one '/' ("debian/12"). The server decodes the path before
 * routing (%2F is a '/' by then), so every route that takes an image or an
 * alias has a second pattern with two segments, joined again here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/api/server.h"
#include "daemon/events.h"
#include "daemon/image/builder.h"
#include "daemon/image/export.h"
#include "daemon/image/import.h"
#include "daemon/image/store.h"
#include "daemon/operations.h"
#include "daemon/store/images.h"

#define PROGRESS_INTERVAL_MS 250

/* The image or alias named by the route: one or two segments. */
static void route_ref(const struct http_request *rq, size_t first, char *out, size_t n)
{
	if (rq->route_args[first + 1])
		snprintf(out, n, "%s/%s", rq->route_args[first], rq->route_args[first + 1]);
	else
		snprintf(out, n, "%s", rq->route_args[first]);
}

static bool need_store(struct daemon *d, struct http_reply *rp)
{
	if (d->images)
		return true;
	reply_error(rp, 503, "the image store is not available (see gureumd's log)");
	return false;
}

static void emit_image(struct daemon *d, const char *action, const char *fp, json_t *context)
{
	char source[96];
	snprintf(source, sizeof(source), "/1.0/images/%s", fp);
	json_t *m = json_pack("{s:s, s:s, s:o}", "action", action, "source", source, "context",
			      context ? context : json_object());
	if (m)
		events_emit(d, "lifecycle", m);
}

/* --- progress ----------------------------------------------------------------- */

struct progress {
	struct operation *op;
	uint64_t last_ms;
	char last_stage[32];
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int on_progress(void *ctx, const char *stage, uint64_t bytes, uint64_t total, const char *line)
{
	struct progress *p = ctx;
	if (op_cancelled(p->op))
		return 1;
	uint64_t now = now_ms();
	bool stage_changed = strcmp(stage, p->last_stage) != 0;
	bool done = total && bytes >= total;
	if (!stage_changed && !done && now - p->last_ms < PROGRESS_INTERVAL_MS && !line)
		return 0;
	if (!stage_changed && line && now - p->last_ms < PROGRESS_INTERVAL_MS / 5)
		return 0;
	p->last_ms = now;
	snprintf(p->last_stage, sizeof(p->last_stage), "%s", stage);
	json_t *pr = json_pack("{s:s, s:I, s:I}", "stage", stage, "bytes", (json_int_t)bytes, "total",
			       (json_int_t)total);
	if (pr && line)
		json_object_set_new(pr, "line", json_stringn(line, strnlen(line, 400)));
	if (pr)
		op_set_metadata(p->op, json_pack("{s:o}", "progress", pr));
	return 0;
}

/* --- GET ---------------------------------------------------------------------------- */

static void images_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!need_store(d, rp))
		return;
	json_t *out = NULL;
	struct gr_error err = { 0 };
	int rc = image_store_list(d->images, http_query_bool(rq, "recursion"), &out, &err);
	if (rc < 0)
		reply_gr_error(rp, rc, &err);
	else
		reply_sync(rp, out);
}

static void image_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!need_store(d, rp))
		return;
	char ref[300];
	route_ref(rq, 0, ref, sizeof(ref));
	json_t *out = NULL;
	struct gr_error err = { 0 };
	int rc = image_store_get(d->images, ref, &out, &err);
	if (rc < 0)
		reply_gr_error(rp, rc, &err);
	else
		reply_sync(rp, out);
}

/* --- POST /1.0/images: import, build --------------------------------------------------- */

struct import_arg {
	char *path;                   /* file import */
	char *build;                  /* builder name */
	char **aliases;
};

static void import_arg_free(void *p)
{
	struct import_arg *a = p;
	free(a->path);
	free(a->build);
	gr_strv_free(a->aliases);
	free(a);
}

static int op_import(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	struct import_arg *a = arg;
	struct progress p = { .op = op };
	struct image_progress pr = { on_progress, &p };
	struct image_import_result res;
	int rc = a->build ? image_build(d->images, a->build, &pr, &res, err)
			  : image_import(d->images, a->path, (const char *const *)a->aliases, &pr, &res, err);
	if (rc == 0 && a->build) /* a build has its own alias; more may be asked for */
		for (char **al = a->aliases; rc == 0 && al && *al; al++)
			rc = image_store_alias_set(d->images, *al, res.fingerprint, NULL, err);
	if (rc < 0)
		return rc;
	json_t *md = json_pack("{s:s, s:b, s:s}", "fingerprint", res.fingerprint, "already_present", res.already,
			       "format", a->build ? "build" : res.format);
	op_set_metadata(op, md);
	if (!res.already)
		emit_image(d, "image-created", res.fingerprint, NULL);
	return 0;
}

#define FAIL(rc) do { reply_gr_error(rp, (rc), &err); return; } while (0)

static void images_post(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!need_store(d, rp))
		return;
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *key;
	json_t *v, *source = NULL, *aliases = NULL;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "source") == 0)
			source = v;
		else if (strcmp(key, "aliases") == 0)
			aliases = v;
		else
			FAIL(gr_error_set(&err, EINVAL, "unknown key '%.64s' (known: source, aliases)", key));
	}
	if (!json_is_object(source))
		FAIL(gr_error_set(&err, EINVAL, "source: required, e.g. {\"type\":\"file\",\"path\":\"/abs/image.tar\"} "
				  "or {\"type\":\"build\",\"name\":\"busybox\"}"));
	const char *type = NULL, *path = NULL, *name = NULL;
	json_object_foreach(source, key, v) {
		const char **slot = strcmp(key, "type") == 0 ? &type : strcmp(key, "path") == 0 ? &path
								: strcmp(key, "name") == 0 ? &name : NULL;
		if (!slot)
			FAIL(gr_error_set(&err, EINVAL, "source: unknown key '%.64s' (known: type, path, name)", key));
		if (!json_is_string(v))
			FAIL(gr_error_set(&err, EINVAL, "source.%s: must be a string", key));
		*slot = json_string_value(v);
	}
	struct import_arg *a = calloc(1, sizeof(*a));
	if (!a)
		FAIL(gr_error_set(&err, ENOMEM, "out of memory"));
	size_t na = json_is_array(aliases) ? json_array_size(aliases) : 0;
	a->aliases = calloc(na + 1, sizeof(char *));
	int rc = 0;
	if (!a->aliases)
		rc = gr_error_set(&err, ENOMEM, "out of memory");
	else if (aliases && !json_is_array(aliases))
		rc = gr_error_set(&err, EINVAL, "aliases: must be an array of names (or of {\"name\":...})");
	else if (na > 32)
		rc = gr_error_set(&err, EINVAL, "aliases: more than 32");
	for (size_t i = 0; rc == 0 && i < na; i++) {
		json_t *x = json_array_get(aliases, i);
		const char *s = json_is_object(x) ? json_string_value(json_object_get(x, "name")) : json_string_value(x);
		if (!s)
			rc = gr_error_set(&err, EINVAL, "aliases[%zu]: a name or {\"name\":...}", i);
		else if ((rc = image_alias_validate(s, &err)) == 0 && !(a->aliases[i] = strdup(s)))
			rc = gr_error_set(&err, ENOMEM, "out of memory");
	}
	const char *desc = NULL;
	if (rc == 0 && type && strcmp(type, "file") == 0) {
		desc = "Importing image";
		if (!rq->trusted_socket)
			rc = gr_error_set(&err, EACCES, "source.type file: imports of the daemon's files are allowed over "
					  "the unix socket only");
		else if (!path || path[0] != '/')
			rc = gr_error_set(&err, EINVAL, "source.path: an absolute path the daemon can read is required");
		else if (name)
			rc = gr_error_set(&err, EINVAL, "source.name: only for type build");
		else if (!(a->path = strdup(path)))
			rc = gr_error_set(&err, ENOMEM, "out of memory");
	} else if (rc == 0 && type && strcmp(type, "build") == 0) {
		desc = "Building image";
		if (!image_builder_known(name))
			rc = gr_error_set(&err, EINVAL, "source.name: \"%.64s\" is not a builder (busybox, debian/12)",
					  name ? name : "");
		else if (path)
			rc = gr_error_set(&err, EINVAL, "source.path: only for type file");
		else if (!(a->build = strdup(name)))
			rc = gr_error_set(&err, ENOMEM, "out of memory");
	} else if (rc == 0) {
		rc = gr_error_set(&err, EINVAL, "source.type: %s%.64s%s (known: file, build; uploads are not "
				  "supported: import a file the daemon can read)",
				  type ? "\"" : "", type ? type : "missing", type ? "\" is not supported" : "");
	}
	if (rc < 0) {
		import_arg_free(a);
		FAIL(rc);
	}
	struct op_params p = { .description = desc, .klass = "task", .may_cancel = true, .fn = op_import, .arg = a,
			       .free_arg = import_arg_free };
	reply_op_start(d, rp, &p);
}

/* --- DELETE /1.0/images/REF ------------------------------------------------------------- */

struct ref_arg {
	char ref[300];
	char path[4096];
};

static int op_delete(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)op;
	struct ref_arg *a = arg;
	char fp[IMAGE_FP_HEX];
	int rc = image_store_resolve(d->images, a->ref, fp, err);
	if (rc < 0 || (rc = image_store_delete(d->images, fp, err)) < 0)
		return rc;
	emit_image(d, "image-deleted", fp, NULL);
	return 0;
}

static void image_delete(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!need_store(d, rp))
		return;
	struct gr_error err = { 0 };
	struct ref_arg *a = calloc(1, sizeof(*a));
	if (!a)
		FAIL(gr_error_set(&err, ENOMEM, "out of memory"));
	route_ref(rq, 0, a->ref, sizeof(a->ref));
	/* 404 and 409 at once; the operation checks again under the store's lock. */
	char fp[IMAGE_FP_HEX];
	gr_autostrv char **users = NULL;
	int rc = image_store_resolve(d->images, a->ref, fp, &err);
	if (rc == 0 && (rc = store_image_users(d->store, fp, &users, &err)) == 0 && users[0])
		rc = gr_error_set(&err, EBUSY, "image %s is used by instance%s %s%s: delete %s first", a->ref,
				  users[1] ? "s" : "", users[0], users[1] ? " and others" : "", users[1] ? "them" : "it");
	if (rc < 0) {
		free(a);
		FAIL(rc);
	}
	snprintf(a->ref, sizeof(a->ref), "%s", fp);
	struct op_params p = { .description = "Deleting image", .klass = "task", .fn = op_delete, .arg = a,
			       .free_arg = free };
	reply_op_start(d, rp, &p);
}

/* --- POST /1.0/images/REF/export ------------------------------------------------------------ */

static int op_export(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	struct ref_arg *a = arg;
	struct progress p = { .op = op };
	struct image_progress pr = { on_progress, &p };
	int rc = image_export(d->images, a->ref, a->path, &pr, err);
	if (rc == 0)
		op_set_metadata(op, json_pack("{s:s}", "path", a->path));
	return rc;
}

static void image_export_post(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!need_store(d, rp))
		return;
	struct gr_error err = { 0 };
	if (!rq->trusted_socket)
		FAIL(gr_error_set(&err, EACCES, "exports to the daemon's files are allowed over the unix socket only"));
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	const char *key, *path = NULL;
	json_t *v;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "path") != 0)
			FAIL(gr_error_set(&err, EINVAL, "unknown key '%.64s' (known: path)", key));
		path = json_string_value(v);
	}
	if (!path || path[0] != '/' || strlen(path) >= 4000)
		FAIL(gr_error_set(&err, EINVAL, "path: an absolute file name is required"));
	struct ref_arg *a = calloc(1, sizeof(*a));
	if (!a)
		FAIL(gr_error_set(&err, ENOMEM, "out of memory"));
	route_ref(rq, 0, a->ref, sizeof(a->ref));
	snprintf(a->path, sizeof(a->path), "%s", path);
	char fp[IMAGE_FP_HEX];
	int rc = image_store_resolve(d->images, a->ref, fp, &err);
	if (rc < 0) {
		free(a);
		FAIL(rc);
	}
	struct op_params p = { .description = "Exporting image", .klass = "task", .may_cancel = true, .fn = op_export,
			       .arg = a, .free_arg = free };
	reply_op_start(d, rp, &p);
}

/* --- aliases ------------------------------------------------------------------------------ */

static void aliases_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	(void)rq;
	if (!need_store(d, rp))
		return;
	struct gr_error err = { 0 };
	gr_autostrv char **fps = NULL;
	int rc = store_image_list(d->store, &fps, &err);
	if (rc < 0)
		FAIL(rc);
	json_t *out = json_array();
	for (char **f = fps; *f; f++) {
		gr_autostrv char **names = NULL;
		if (store_image_aliases(d->store, *f, &names, &err) < 0)
			continue;
		for (char **nm = names; *nm; nm++)
			json_array_append_new(out, json_pack("{s:s, s:s}", "name", *nm, "target", *f));
	}
	reply_sync(rp, out);
}

static void alias_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!need_store(d, rp))
		return;
	char name[300], fp[IMAGE_FP_HEX];
	route_ref(rq, 0, name, sizeof(name));
	struct gr_error err = { 0 };
	int rc = store_alias_get(d->store, name, fp, &err);
	if (rc < 0)
		FAIL(rc);
	reply_sync(rp, json_pack("{s:s, s:s}", "name", name, "target", fp));
}

static void aliases_post(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!need_store(d, rp))
		return;
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *key, *name = NULL, *target = NULL;
	json_t *v;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "name") == 0)
			name = json_string_value(v);
		else if (strcmp(key, "target") == 0)
			target = json_string_value(v);
		else if (strcmp(key, "description") != 0)
			FAIL(gr_error_set(&err, EINVAL, "unknown key '%.64s' (known: name, target)", key));
	}
	if (!name || !target)
		FAIL(gr_error_set(&err, EINVAL, "name and target (an image's fingerprint or alias) are required"));
	char moved[IMAGE_FP_HEX] = "", fp[IMAGE_FP_HEX];
	int rc = image_store_alias_set(d->images, name, target, moved, &err);
	if (rc < 0)
		FAIL(rc);
	image_store_resolve(d->images, name, fp, &err);
	emit_image(d, "image-alias-created", fp, json_pack("{s:s}", "name", name));
	json_t *out = json_pack("{s:s, s:s}", "name", name, "target", fp);
	if (moved[0])
		json_object_set_new(out, "moved_from", json_string(moved));
	reply_sync(rp, out);
}

static void alias_delete(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!need_store(d, rp))
		return;
	char name[300];
	route_ref(rq, 0, name, sizeof(name));
	struct gr_error err = { 0 };
	int rc = image_store_alias_remove(d->images, name, &err);
	if (rc < 0)
		FAIL(rc);
	reply_sync(rp, json_object());
}

#undef FAIL

const struct route image_routes[] = {
	{ "GET", "/1.0/images", images_get },
	{ "POST", "/1.0/images", images_post },
	{ "GET", "/1.0/images/aliases", aliases_get },
	{ "POST", "/1.0/images/aliases", aliases_post },
	{ "GET", "/1.0/images/aliases/{}", alias_get },
	{ "GET", "/1.0/images/aliases/{}/{}", alias_get },
	{ "DELETE", "/1.0/images/aliases/{}", alias_delete },
	{ "DELETE", "/1.0/images/aliases/{}/{}", alias_delete },
	{ "POST", "/1.0/images/{}/export", image_export_post },
	{ "POST", "/1.0/images/{}/{}/export", image_export_post },
	{ "GET", "/1.0/images/{}", image_get },
	{ "DELETE", "/1.0/images/{}", image_delete },
	{ "GET", "/1.0/images/{}/{}", image_get },
	{ "DELETE", "/1.0/images/{}/{}", image_delete },
	{ 0 },
};
