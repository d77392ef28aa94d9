/* The image tables (store/images.h), over the store's one connection
 * (store_db_lock). Statements are prepared per call: image changes are rare
 * and each is a handful of statements. */
#include "daemon/store/images.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "daemon/store/sql.h"
#include "daemon/store/store.h"

static void bind(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

void store_image_clear(struct store_image *i)
{
	free(i->fingerprint);
	free(i->architecture);
	free(i->created_at);
	free(i->source);
	free(i->description);
	memset(i, 0, sizeof(*i));
}

static int exec1(struct store *s, sqlite3 *db, const char *sql, struct gr_error *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		int r = gr_error_set(err, EIO, "database %s: %s: %s", store_path(s), sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return r;
	}
	return 0;
}

static int alias_upsert(struct store *s, sqlite3 *db, const char *name, const char *fp, struct gr_error *err)
{
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
		      "INSERT INTO image_aliases (name, fingerprint) VALUES (?1, ?2) "
		      "ON CONFLICT(name) DO UPDATE SET fingerprint = excluded.fingerprint",
		      &st, err);
	if (rc < 0)
		return rc;
	bind(st, 1, name);
	bind(st, 2, fp);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return gr_error_set(err, ENOENT, "image %s not found", fp);
	return rc == SQLITE_DONE ? 0 : store_sql_error(s, rc, err, "cannot set the alias");
}

int store_image_insert(struct store *s, const struct store_image *img, const char *const *aliases,
		       struct gr_error *err)
{
	DB_LOCK(s);
	int rc = exec1(s, db, "BEGIN IMMEDIATE", err);
	if (rc < 0)
		return rc;
	{
		gr_autofinal sqlite3_stmt *st = NULL;
		if ((rc = store_prep(s, db,
			       "INSERT INTO images (fingerprint, architecture, size, created_at, source, description) "
			       "VALUES (?1, ?2, ?3, coalesce(?4, " NOW_SQL "), ?5, ?6)",
			       &st, err)) < 0)
			goto fail;
		bind(st, 1, img->fingerprint);
		bind(st, 2, img->architecture ? img->architecture : "");
		sqlite3_bind_int64(st, 3, img->size);
		bind(st, 4, img->created_at);
		bind(st, 5, img->source ? img->source : "");
		bind(st, 6, img->description ? img->description : "");
		rc = sqlite3_step(st);
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
			rc = gr_error_set(err, EEXIST, "image %s is already present", img->fingerprint);
			goto fail;
		}
		if (rc != SQLITE_DONE) {
			rc = store_sql_error(s, rc, err, "cannot add the image");
			goto fail;
		}
	}
	for (size_t i = 0; aliases && aliases[i]; i++)
		if ((rc = alias_upsert(s, db, aliases[i], img->fingerprint, err)) < 0)
			goto fail;
	if ((rc = exec1(s, db, "COMMIT", err)) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int store_image_get(struct store *s, const char *fp, struct store_image *out, struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
		      "SELECT fingerprint, architecture, size, created_at, source, description FROM images "
		      "WHERE fingerprint = ?1",
		      &st, err);
	if (rc < 0)
		return rc;
	bind(st, 1, fp);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return gr_error_set(err, ENOENT, "image %s not found", fp);
	if (rc != SQLITE_ROW)
		return store_sql_error(s, rc, err, "cannot read the image");
	memset(out, 0, sizeof(*out));
	out->fingerprint = store_coldup(st, 0);
	out->architecture = store_coldup(st, 1);
	out->size = sqlite3_column_int64(st, 2);
	out->created_at = store_coldup(st, 3);
	out->source = store_coldup(st, 4);
	out->description = store_coldup(st, 5);
	if (!out->fingerprint || !out->architecture || !out->created_at || !out->source || !out->description) {
		store_image_clear(out);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* The first column of every row of a one-parameter query. */
static int strings(struct store *s, const char *sql, const char *arg, char ***out, struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, sql, &st, err);
	if (rc < 0)
		return rc;
	if (arg)
		bind(st, 1, arg);
	size_t len = 0, cap = 8;
	gr_autostrv char **v = calloc(cap, sizeof(char *));
	if (!v)
		return gr_error_set(err, ENOMEM, "out of memory");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len + 2 > cap) {
			char **nv = realloc(v, (cap *= 2) * sizeof(char *));
			if (!nv)
				return gr_error_set(err, ENOMEM, "out of memory");
			v = nv;
		}
		if (!(v[len] = store_coldup(st, 0)))
			return gr_error_set(err, ENOMEM, "out of memory");
		v[++len] = NULL;
	}
	if (rc != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot read the images");
	*out = gr_steal_ptr(v);
	return 0;
}

int store_image_list(struct store *s, char ***out, struct gr_error *err)
{
	return strings(s, "SELECT fingerprint FROM images ORDER BY created_at, fingerprint", NULL, out, err);
}

int store_image_users(struct store *s, const char *fp, char ***out, struct gr_error *err)
{
	return strings(s, "SELECT name FROM instances WHERE image = ?1 ORDER BY name", fp, out, err);
}

int store_image_aliases(struct store *s, const char *fp, char ***out, struct gr_error *err)
{
	return strings(s, "SELECT name FROM image_aliases WHERE fingerprint = ?1 ORDER BY name", fp, out, err);
}

int store_alias_get(struct store *s, const char *name, char fp[65], struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "SELECT fingerprint FROM image_aliases WHERE name = ?1", &st, err);
	if (rc < 0)
		return rc;
	bind(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(fp, 65, "%s", (const char *)sqlite3_column_text(st, 0));
		return 0;
	}
	if (rc == SQLITE_DONE)
		return gr_error_set(err, ENOENT, "alias %s not found", name);
	return store_sql_error(s, rc, err, "cannot read the alias");
}

int store_image_resolve(struct store *s, const char *ref, unsigned min_prefix, char fp[65], struct gr_error *err)
{
	if (store_alias_get(s, ref, fp, NULL) == 0)
		return 0;
	size_t len = strlen(ref);
	bool hex = len > 0 && len <= 64 && strspn(ref, "0123456789abcdef") == len;
	if (!hex || len < min_prefix)
		return gr_error_set(err, ENOENT, "image \"%.*s\" not found (no such alias%s)", 128, ref,
				    hex ? ", and too short a fingerprint prefix" : "");
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "SELECT fingerprint FROM images WHERE substr(fingerprint, 1, length(?1)) = ?1 LIMIT 2",
		      &st, err);
	if (rc < 0)
		return rc;
	bind(st, 1, ref);
	int found = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (found++ == 0)
			snprintf(fp, 65, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	if (rc != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot look the image up");
	if (found == 0)
		return gr_error_set(err, ENOENT, "image %s not found (no such alias or fingerprint)", ref);
	if (found > 1)
		return gr_error_set(err, EINVAL, "fingerprint prefix %s is ambiguous: give more digits", ref);
	return 0;
}

int store_image_delete(struct store *s, const char *fp, struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "DELETE FROM images WHERE fingerprint = ?1", &st, err);
	if (rc < 0)
		return rc;
	bind(st, 1, fp);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot delete the image");
	return sqlite3_changes(db) ? 0 : gr_error_set(err, ENOENT, "image %s not found", fp);
}

int store_alias_set(struct store *s, const char *name, const char *fp, struct gr_error *err)
{
	DB_LOCK(s);
	return alias_upsert(s, db, name, fp, err);
}

int store_alias_delete(struct store *s, const char *name, struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "DELETE FROM image_aliases WHERE name = ?1", &st, err);
	if (rc < 0)
		return rc;
	bind(st, 1, name);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot delete the alias");
	return sqlite3_changes(db) ? 0 : gr_error_set(err, ENOENT, "alias %s not found", name);
}

int store_instances_pin_images(struct store *s, int *changed, struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
		      "UPDATE instances SET image = (SELECT fingerprint FROM image_aliases WHERE name = instances.image) "
		      "WHERE image NOT IN (SELECT fingerprint FROM images) "
		      "AND image IN (SELECT name FROM image_aliases)",
		      &st, err);
	if (rc < 0)
		return rc;
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot pin the instances' images");
	if (changed)
		*changed = sqlite3_changes(db);
	return 0;
}
