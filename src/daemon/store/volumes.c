/* The volume tables (store/volumes.h), over the store's one connection
 * (store_db_lock); statements are prepared per call (volume changes are
 * rare). */
#include "daemon/store/volumes.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon/store/sql.h"
#include "daemon/store/store.h"


void store_volume_clear(struct store_volume *v)
{
	if (!v)
		return;
	free(v->name);
	free(v->type);
	free(v->created_at);
	memset(v, 0, sizeof(*v));
}

void store_volume_list_free(struct store_volume *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_volume_clear(&v[i]);
	free(v);
}

void store_attachment_list_free(struct store_attachment *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++) {
		free(a[i].volume);
		free(a[i].instance);
		free(a[i].path);
	}
	free(a);
}

int store_volume_insert(struct store *s, const char *name, const char *type, uint64_t size, struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "INSERT INTO volumes (name, type, size, created_at) VALUES (?1, ?2, ?3, " NOW_SQL ")", &st,
		      err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return gr_error_set(err, EEXIST, "volume %s already exists", name);
	if (rc != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot add the volume");
	return 0;
}

static int read_volume(sqlite3_stmt *st, struct store_volume *v, struct gr_error *err)
{
	v->id = sqlite3_column_int64(st, 0);
	v->name = store_coldup(st, 1);
	v->type = store_coldup(st, 2);
	v->size = (uint64_t)sqlite3_column_int64(st, 3);
	v->created_at = store_coldup(st, 4);
	if (!v->name || !v->type || !v->created_at) {
		store_volume_clear(v);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

#define VOLUME_COLUMNS "id, name, type, size, created_at"

int store_volume_get(struct store *s, const char *name, struct store_volume *out, struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "SELECT " VOLUME_COLUMNS " FROM volumes WHERE name = ?1", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return gr_error_set(err, ENOENT, "volume %s not found", name);
	if (rc != SQLITE_ROW)
		return store_sql_error(s, rc, err, "cannot read the volume");
	return read_volume(st, out, err);
}

int store_volume_list(struct store *s, struct store_volume **out, size_t *n, struct gr_error *err)
{
	*out = NULL;
	*n = 0;
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "SELECT " VOLUME_COLUMNS " FROM volumes ORDER BY name", &st, err);
	if (rc < 0)
		return rc;
	struct store_volume *v = NULL;
	size_t k = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_volume *nv = realloc(v, (k + 1) * sizeof(*v));
		if (!nv) {
			store_volume_list_free(v, k);
			return gr_error_set(err, ENOMEM, "out of memory");
		}
		v = nv;
		memset(&v[k], 0, sizeof(v[k]));
		if ((rc = read_volume(st, &v[k], err)) < 0) {
			store_volume_list_free(v, k);
			return rc;
		}
		k++;
	}
	if (rc != SQLITE_DONE) {
		store_volume_list_free(v, k);
		return store_sql_error(s, rc, err, "cannot list the volumes");
	}
	*out = v;
	*n = k;
	return 0;
}

static int attachments_locked(struct store *s, sqlite3 *db, const char *volume, const char *instance,
			      struct store_attachment **out, size_t *n, struct gr_error *err)
{
	*out = NULL;
	*n = 0;
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
		      "SELECT v.name, i.name, a.path, a.readonly FROM volume_attachments a "
		      "JOIN volumes v ON v.id = a.volume_id JOIN instances i ON i.id = a.instance_id "
		      "WHERE (?1 IS NULL OR v.name = ?1) AND (?2 IS NULL OR i.name = ?2) ORDER BY v.name, i.name",
		      &st, err);
	if (rc < 0)
		return rc;
	if (volume)
		sqlite3_bind_text(st, 1, volume, -1, SQLITE_TRANSIENT);
	if (instance)
		sqlite3_bind_text(st, 2, instance, -1, SQLITE_TRANSIENT);
	struct store_attachment *a = NULL;
	size_t k = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_attachment *na = realloc(a, (k + 1) * sizeof(*a));
		if (!na) {
			store_attachment_list_free(a, k);
			return gr_error_set(err, ENOMEM, "out of memory");
		}
		a = na;
		a[k] = (struct store_attachment){ store_coldup(st, 0), store_coldup(st, 1), store_coldup(st, 2),
						  sqlite3_column_int(st, 3) != 0 };
		k++;
		if (!a[k - 1].volume || !a[k - 1].instance || !a[k - 1].path) {
			store_attachment_list_free(a, k);
			return gr_error_set(err, ENOMEM, "out of memory");
		}
	}
	if (rc != SQLITE_DONE) {
		store_attachment_list_free(a, k);
		return store_sql_error(s, rc, err, "cannot list the attachments");
	}
	*out = a;
	*n = k;
	return 0;
}

int store_attachment_list(struct store *s, const char *volume, const char *instance, struct store_attachment **out,
			  size_t *n, struct gr_error *err)
{
	DB_LOCK(s);
	return attachments_locked(s, db, volume, instance, out, n, err);
}

int store_volume_delete(struct store *s, const char *name, struct gr_error *err)
{
	DB_LOCK(s);
	struct store_attachment *a = NULL;
	size_t n = 0;
	int rc = attachments_locked(s, db, name, NULL, &a, &n, err);
	if (rc < 0)
		return rc;
	if (n > 0) {
		char list[512] = "";
		size_t o = 0;
		for (size_t i = 0; i < n && o < sizeof(list); i++)
			o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", a[i].instance);
		store_attachment_list_free(a, n);
		return gr_error_set(err, EBUSY, "volume %s is attached to %s: detach it first", name, list);
	}
	gr_autofinal sqlite3_stmt *st = NULL;
	if ((rc = store_prep(s, db, "DELETE FROM volumes WHERE name = ?1", &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot delete the volume");
	return sqlite3_changes(db) ? 0 : gr_error_set(err, ENOENT, "volume %s not found", name);
}

int store_volume_attach(struct store *s, const char *volume, const char *instance, const char *path, bool readonly,
			struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *q = NULL;
	int rc = store_prep(s, db,
		      "SELECT (SELECT id FROM volumes WHERE name = ?1), (SELECT id FROM instances WHERE name = ?2), "
		      "(SELECT v.name FROM volume_attachments a JOIN volumes v ON v.id = a.volume_id "
		      " JOIN instances i ON i.id = a.instance_id WHERE i.name = ?2 AND (a.path = ?3 OR v.name = ?1))",
		      &q, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(q, 1, volume, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, instance, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, path, -1, SQLITE_TRANSIENT);
	if ((rc = sqlite3_step(q)) != SQLITE_ROW)
		return store_sql_error(s, rc, err, "cannot read the volume");
	if (sqlite3_column_type(q, 0) == SQLITE_NULL)
		return gr_error_set(err, ENOENT, "volume %s not found", volume);
	if (sqlite3_column_type(q, 1) == SQLITE_NULL)
		return gr_error_set(err, ENOENT, "instance %s not found", instance);
	if (sqlite3_column_type(q, 2) != SQLITE_NULL) {
		const char *other = (const char *)sqlite3_column_text(q, 2);
		if (strcmp(other, volume) == 0)
			return gr_error_set(err, EEXIST, "volume %s is already attached to %s", volume, instance);
		return gr_error_set(err, EEXIST, "instance %s already has volume %s at %s", instance, other, path);
	}
	sqlite3_int64 vid = sqlite3_column_int64(q, 0), iid = sqlite3_column_int64(q, 1);
	gr_autofinal sqlite3_stmt *st = NULL;
	if ((rc = store_prep(s, db, "INSERT INTO volume_attachments (volume_id, instance_id, path, readonly) "
			      "VALUES (?1, ?2, ?3, ?4)", &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, vid);
	sqlite3_bind_int64(st, 2, iid);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 4, readonly ? 1 : 0);
	rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return gr_error_set(err, EEXIST, "volume %s is already attached to %s (or the path %s is taken)", volume,
				    instance, path);
	if (rc != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot attach the volume");
	return 0;
}

int store_volume_detach(struct store *s, const char *volume, const char *instance, struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
		      "DELETE FROM volume_attachments WHERE volume_id = (SELECT id FROM volumes WHERE name = ?1) "
		      "AND instance_id = (SELECT id FROM instances WHERE name = ?2)",
		      &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, volume, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, instance, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot detach the volume");
	return sqlite3_changes(db) ? 0
				   : gr_error_set(err, ENOENT, "volume %s is not attached to instance %s", volume, instance);
}
