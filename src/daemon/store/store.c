/* gureumd's database (store.h): one SQLite connection behind one mutex,
 * every statement prepared once (SQLITE_PREPARE_PERSISTENT) and reset after
 * use, migrations applied at open. */
#include "daemon/store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/store/migrations.h"

#define STORE_BUSY_TIMEOUT_MS 5000
#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
#define INSTANCE_COLUMNS \
	"id, name, type, image, config, command, state, created_at, last_used_at, stop_reason, exit_code, image_alias"

enum stmt_id {
	ST_INSERT,
	ST_GET,
	ST_LIST,
	ST_NAMES,
	ST_SET_STATE,
	ST_SET_RUNNING,
	ST_SET_STOPPED,
	ST_DELETE,
	ST_TOKEN_ADD,
	ST_TOKEN_CHECK,
	ST_TOKEN_FIND,
	ST_TOKEN_DELETE,
	ST_TOKEN_LIST,
	ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_INSERT] = "INSERT INTO instances (name, type, image, config, command, state, image_alias, created_at) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, " NOW_SQL ")",
	[ST_GET] = "SELECT " INSTANCE_COLUMNS " FROM instances WHERE name = ?1",
	[ST_LIST] = "SELECT " INSTANCE_COLUMNS " FROM instances ORDER BY name",
	[ST_NAMES] = "SELECT name FROM instances ORDER BY name",
	[ST_SET_STATE] = "UPDATE instances SET state = ?2 WHERE name = ?1",
	[ST_SET_RUNNING] = "UPDATE instances SET state = ?2, last_used_at = " NOW_SQL " WHERE name = ?1",
	[ST_SET_STOPPED] = "UPDATE instances SET stop_reason = ?2, exit_code = ?3 WHERE name = ?1",
	[ST_DELETE] = "DELETE FROM instances WHERE name = ?1",
	[ST_TOKEN_ADD] = "INSERT INTO tokens (hash, description, created_at) VALUES (?1, ?2, " NOW_SQL ")",
	[ST_TOKEN_CHECK] = "SELECT 1 FROM tokens WHERE hash = ?1",
	[ST_TOKEN_FIND] = "SELECT hash FROM tokens WHERE substr(hash, 1, length(?1)) = ?1 LIMIT 2",
	[ST_TOKEN_DELETE] = "DELETE FROM tokens WHERE hash = ?1",
	[ST_TOKEN_LIST] = "SELECT hash, description, created_at FROM tokens ORDER BY id",
};

struct store {
	pthread_mutex_t mu;
	sqlite3 *db;
	sqlite3_stmt *stmts[ST_COUNT];
	char path[PATH_MAX];
};

static const char *const state_names[] = {
	[STORE_CREATING] = "creating", [STORE_STOPPED] = "stopped", [STORE_RUNNING] = "running",
	[STORE_PAUSED] = "paused",     [STORE_DELETING] = "deleting",
};

const char *store_state_name(enum store_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "unknown";
}

int store_state_parse(const char *s, enum store_state *out)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (s && strcmp(s, state_names[i]) == 0) {
			*out = (enum store_state)i;
			return 0;
		}
	return -EINVAL;
}

int store_schema_version(void)
{
	return (int)store_n_migrations;
}

const char *store_path(const struct store *s)
{
	return s->path;
}

/* --- locking and errors ------------------------------------------------- */

static void store_unlockp(struct store **s)
{
	if (*s)
		pthread_mutex_unlock(&(*s)->mu);
}
#define STORE_LOCK(s) \
	_cleanup_(store_unlockp) struct store *_locked_ = (pthread_mutex_lock(&(s)->mu), (s))

static int errno_of(int sqlite_rc)
{
	switch (sqlite_rc & 0xff) {
	case SQLITE_CONSTRAINT:
		return sqlite_rc == SQLITE_CONSTRAINT_UNIQUE || sqlite_rc == SQLITE_CONSTRAINT_PRIMARYKEY ? EEXIST
													   : EINVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EBUSY;
	case SQLITE_NOMEM:
		return ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return EACCES;
	case SQLITE_FULL:
		return ENOSPC;
	case SQLITE_CANTOPEN:
		return ENOENT;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return EUCLEAN;
	default:
		return EIO;
	}
}

static int sql_error(struct store *s, int rc, struct gr_error *err, const char *what)
{
	return gr_error_set(err, errno_of(rc), "database %s: %s: %s", s->path, what,
			    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

/* A cached statement, reset and unbound after use by the cleanup below. */
static void stmt_resetp(sqlite3_stmt **st)
{
	if (*st) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
	}
}
#define gr_autoreset _cleanup_(stmt_resetp)

static int stmt_get(struct store *s, enum stmt_id id, sqlite3_stmt **out, struct gr_error *err)
{
	if (!s->stmts[id]) {
		int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[id], NULL);
		if (rc != SQLITE_OK)
			return sql_error(s, rc, err, "cannot prepare a statement");
	}
	*out = s->stmts[id];
	return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows; *changes gets the rows touched. */
static int stmt_exec(struct store *s, sqlite3_stmt *st, int *changes, struct gr_error *err, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_error(s, rc, err, what);
	if (changes)
		*changes = sqlite3_changes(s->db);
	return 0;
}

/* --- open, migrations ----------------------------------------------------- */

static int exec_sql(struct store *s, const char *sql, struct gr_error *err, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		int r = gr_error_set(err, errno_of(rc), "database %s: %s: %s", s->path, what,
				     msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return r;
	}
	return 0;
}

static int user_version(struct store *s, int *out, struct gr_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = sql_error(s, rc, err, "cannot read the schema version");
		sqlite3_finalize(st);
		return r;
	}
	*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

static int migrate(struct store *s, struct gr_error *err)
{
	/* BEGIN IMMEDIATE: two daemons (which the run-dir lock prevents anyway)
	 * or a daemon and a tool cannot both migrate the same version. */
	int rc = exec_sql(s, "BEGIN IMMEDIATE", err, "cannot begin the migration");
	if (rc < 0)
		return rc;
	int version = 0;
	rc = user_version(s, &version, err);
	if (rc == 0 && version > (int)store_n_migrations)
		rc = gr_error_set(err, EPROTO,
				  "database %s has schema version %d, newer than this gureumd knows (%zu): "
				  "it was written by a newer gureumd; run that one or restore a backup",
				  s->path, version, store_n_migrations);
	if (rc == 0 && version < 0)
		rc = gr_error_set(err, EPROTO, "database %s has an invalid schema version %d", s->path, version);
	if (rc < 0 || version == (int)store_n_migrations) {
		sqlite3_exec(s->db, rc < 0 ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
		return rc;
	}
	for (size_t i = (size_t)version; i < store_n_migrations; i++) {
		char pragma[64];
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %zu", i + 1);
		if (i > (size_t)version && (rc = exec_sql(s, "BEGIN IMMEDIATE", err, "cannot begin a migration")) < 0)
			return gr_error_prefix(err, "migration %s", store_migrations[i].name);
		if ((rc = exec_sql(s, store_migrations[i].sql, err, store_migrations[i].name)) < 0 ||
		    (rc = exec_sql(s, pragma, err, "cannot set the schema version")) < 0 ||
		    (rc = exec_sql(s, "COMMIT", err, "cannot commit")) < 0) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return gr_error_prefix(err, "migration %s", store_migrations[i].name);
		}
		gr_info("database %s: migrated to schema version %zu (%s)", s->path, i + 1, store_migrations[i].name);
	}
	return 0;
}

int store_open_path(const char *db_path, struct store **out, struct gr_error *err)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return gr_error_set(err, ENOMEM, "out of memory");
	if (snprintf(s->path, sizeof(s->path), "%s", db_path) >= (int)sizeof(s->path)) {
		free(s);
		return gr_error_set(err, ENAMETOOLONG, "database path too long: %s", db_path);
	}
	pthread_mutex_init(&s->mu, NULL);
	/* Owner only (it holds token hashes); SQLite gives the -wal and -shm
	 * files the database's mode. */
	int fd = open(db_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int rc = gr_error_sys(err, errno, "database %s: cannot open", db_path);
		store_close(s);
		return rc;
	}
	close(fd);
	/* FULLMUTEX on top of our mutex costs nothing measurable and keeps the
	 * connection safe should a caller ever bypass it. */
	int rc = sqlite3_open_v2(db_path, &s->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX |
					 SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
				 NULL);
	if (rc != SQLITE_OK) {
		rc = sql_error(s, rc, err, "cannot open");
		store_close(s);
		return rc;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	/* journal_mode returns a row: "wal" when it took. */
	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		rc = rc == SQLITE_ROW ? gr_error_set(err, EIO, "database %s: cannot switch to WAL mode (got %s)",
						     db_path, (const char *)sqlite3_column_text(st, 0))
				      : sql_error(s, rc, err, "cannot switch to WAL mode");
		sqlite3_finalize(st);
		store_close(s);
		return rc;
	}
	sqlite3_finalize(st);
	if ((rc = exec_sql(s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;", err, "cannot configure")) <
		    0 ||
	    (rc = migrate(s, err)) < 0) {
		store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

int store_open(const char *state_dir, struct store **out, struct gr_error *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/gureum.db", state_dir) >= (int)sizeof(path))
		return gr_error_set(err, ENAMETOOLONG, "state directory path too long: %s", state_dir);
	return store_open_path(path, out, err);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
	if (s->db && sqlite3_close(s->db) != SQLITE_OK)
		gr_warn("database %s: close: %s", s->path, sqlite3_errmsg(s->db));
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* --- instances ------------------------------------------------------------ */

void store_instance_clear(struct store_instance *i)
{
	if (!i)
		return;
	free(i->name);
	free(i->type);
	free(i->image);
	free(i->image_alias);
	free(i->created_at);
	free(i->last_used_at);
	free(i->stop_reason);
	if (i->config)
		json_decref(i->config);
	if (i->command)
		json_decref(i->command);
	memset(i, 0, sizeof(*i));
}

void store_instance_free(struct store_instance *i)
{
	store_instance_clear(i);
	free(i);
}

void store_instance_list_free(struct store_instance *list, size_t n)
{
	if (!list)
		return;
	for (size_t k = 0; k < n; k++)
		store_instance_clear(&list[k]);
	free(list);
}

static char *col_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? strdup((const char *)t) : NULL;
}

/* The current row (INSTANCE_COLUMNS order) into *i. */
static int read_instance(struct store *s, sqlite3_stmt *st, struct store_instance *i, struct gr_error *err)
{
	memset(i, 0, sizeof(*i));
	i->id = sqlite3_column_int64(st, 0);
	i->name = col_strdup(st, 1);
	i->type = col_strdup(st, 2);
	i->image = col_strdup(st, 3);
	i->created_at = col_strdup(st, 7);
	i->last_used_at = col_strdup(st, 8);
	i->stop_reason = col_strdup(st, 9);
	i->exit_code = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 10);
	i->image_alias = col_strdup(st, 11);
	if (!i->name || !i->type || !i->image || !i->image_alias || !i->created_at || !i->stop_reason ||
	    (sqlite3_column_type(st, 8) != SQLITE_NULL && !i->last_used_at)) {
		store_instance_clear(i);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	const char *state = (const char *)sqlite3_column_text(st, 6);
	if (store_state_parse(state, &i->state) < 0) {
		int r = gr_error_set(err, EUCLEAN, "database %s: instance %s has an unknown state '%s'", s->path,
				     i->name, state ? state : "(null)");
		store_instance_clear(i);
		return r;
	}
	json_error_t jerr;
	const char *config = (const char *)sqlite3_column_text(st, 4);
	i->config = json_loads(config ? config : "{}", JSON_REJECT_DUPLICATES, &jerr);
	if (!i->config || !json_is_object(i->config)) {
		int r = gr_error_set(err, EUCLEAN, "database %s: instance %s: config is not a JSON object", s->path,
				     i->name);
		store_instance_clear(i);
		return r;
	}
	const char *command = (const char *)sqlite3_column_text(st, 5);
	if (command) {
		i->command = json_loads(command, 0, &jerr);
		if (!i->command || !json_is_array(i->command)) {
			int r = gr_error_set(err, EUCLEAN, "database %s: instance %s: command is not a JSON array",
					     s->path, i->name);
			store_instance_clear(i);
			return r;
		}
	}
	return 0;
}

int store_instance_insert(struct store *s, const struct store_instance *in, int64_t *id_out, struct gr_error *err)
{
	if (!in->name || !in->type || !in->image)
		return gr_error_set(err, EINVAL, "instance insert: name, type and image are required");
	if (in->config && !json_is_object(in->config))
		return gr_error_set(err, EINVAL, "instance %s: config must be an object", in->name);
	if (in->command && !json_is_array(in->command))
		return gr_error_set(err, EINVAL, "instance %s: command must be an array", in->name);
	gr_autofree char *config = in->config ? json_dumps(in->config, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
	gr_autofree char *command = in->command ? json_dumps(in->command, JSON_COMPACT) : NULL;
	if (!config || (in->command && !command))
		return gr_error_set(err, ENOMEM, "out of memory");
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	int rc = stmt_get(s, ST_INSERT, &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, in->name);
	bind_text(st, 2, in->type);
	bind_text(st, 3, in->image);
	bind_text(st, 4, config);
	bind_text(st, 5, command);
	bind_text(st, 6, store_state_name(in->state));
	bind_text(st, 7, in->image_alias ? in->image_alias : "");
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_CONSTRAINT_UNIQUE)
			return gr_error_set(err, EEXIST, "an instance named '%s' already exists", in->name);
		return sql_error(s, rc, err, "cannot add the instance");
	}
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int store_instance_get(struct store *s, const char *name, struct store_instance **out, struct gr_error *err)
{
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	int rc = stmt_get(s, ST_GET, &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return gr_error_set(err, ENOENT, "instance '%s' not found", name);
	if (rc != SQLITE_ROW)
		return sql_error(s, rc, err, "cannot read the instance");
	struct store_instance *i = calloc(1, sizeof(*i));
	if (!i)
		return gr_error_set(err, ENOMEM, "out of memory");
	if ((rc = read_instance(s, st, i, err)) < 0) {
		free(i);
		return rc;
	}
	*out = i;
	return 0;
}

int store_instance_list(struct store *s, struct store_instance **out, size_t *n, struct gr_error *err)
{
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	int rc = stmt_get(s, ST_LIST, &st, err);
	if (rc < 0)
		return rc;
	struct store_instance *list = NULL;
	size_t len = 0, cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct store_instance *nl = realloc(list, ncap * sizeof(*nl));
			if (!nl) {
				store_instance_list_free(list, len);
				return gr_error_set(err, ENOMEM, "out of memory");
			}
			list = nl;
			cap = ncap;
		}
		if ((rc = read_instance(s, st, &list[len], err)) < 0) {
			store_instance_list_free(list, len);
			return rc;
		}
		len++;
	}
	if (rc != SQLITE_DONE) {
		store_instance_list_free(list, len);
		return sql_error(s, rc, err, "cannot list the instances");
	}
	*out = list;
	*n = len;
	return 0;
}

int store_instance_names(struct store *s, char ***out, struct gr_error *err)
{
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	int rc = stmt_get(s, ST_NAMES, &st, err);
	if (rc < 0)
		return rc;
	gr_autostrv char **v = calloc(1, sizeof(char *));
	size_t len = 0, cap = 1;
	if (!v)
		return gr_error_set(err, ENOMEM, "out of memory");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len + 1 >= cap) {
			char **nv = realloc(v, cap * 2 * sizeof(char *));
			if (!nv)
				return gr_error_set(err, ENOMEM, "out of memory");
			v = nv;
			cap *= 2;
		}
		if (!(v[len] = col_strdup(st, 0)))
			return gr_error_set(err, ENOMEM, "out of memory");
		v[++len] = NULL;
	}
	if (rc != SQLITE_DONE)
		return sql_error(s, rc, err, "cannot list the instances");
	*out = gr_steal_ptr(v);
	return 0;
}

int store_instance_set_state(struct store *s, const char *name, enum store_state state, struct gr_error *err)
{
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	int rc = stmt_get(s, state == STORE_RUNNING ? ST_SET_RUNNING : ST_SET_STATE, &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, name);
	bind_text(st, 2, store_state_name(state));
	int changes = 0;
	if ((rc = stmt_exec(s, st, &changes, err, "cannot update the instance")) < 0)
		return rc;
	return changes ? 0 : gr_error_set(err, ENOENT, "instance '%s' not found", name);
}

int store_instance_set_stopped(struct store *s, const char *name, const char *reason, int exit_code,
			       struct gr_error *err)
{
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	int rc = stmt_get(s, ST_SET_STOPPED, &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, name);
	bind_text(st, 2, reason ? reason : "");
	if (exit_code < 0)
		sqlite3_bind_null(st, 3);
	else
		sqlite3_bind_int(st, 3, exit_code);
	int changes = 0;
	if ((rc = stmt_exec(s, st, &changes, err, "cannot update the instance")) < 0)
		return rc;
	return changes ? 0 : gr_error_set(err, ENOENT, "instance '%s' not found", name);
}

int store_instance_delete(struct store *s, const char *name, struct gr_error *err)
{
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	int rc = stmt_get(s, ST_DELETE, &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, name);
	int changes = 0;
	if ((rc = stmt_exec(s, st, &changes, err, "cannot delete the instance")) < 0)
		return rc;
	return changes ? 0 : gr_error_set(err, ENOENT, "instance '%s' not found", name);
}

/* --- for the other tables' files ------------------------------------------- */

struct sqlite3 *store_db_lock(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	return s->db;
}

void store_db_unlock(struct store *s)
{
	pthread_mutex_unlock(&s->mu);
}

int store_sql_error(struct store *s, int sqlite_rc, struct gr_error *err, const char *what)
{
	return sql_error(s, sqlite_rc, err, what);
}

/* --- tokens --------------------------------------------------------------- */

static int token_hash(const char *token, char hex[65], struct gr_error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (!token || !*token)
		return gr_error_set(err, EINVAL, "empty token");
	if (!EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL) || len != 32)
		return gr_error_set(err, EIO, "SHA-256 failed");
	for (unsigned i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int store_token_add(struct store *s, const char *token, const char *description, struct gr_error *err)
{
	char hex[65];
	int rc = token_hash(token, hex, err);
	if (rc < 0)
		return rc;
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	if ((rc = stmt_get(s, ST_TOKEN_ADD, &st, err)) < 0)
		return rc;
	bind_text(st, 1, hex);
	bind_text(st, 2, description ? description : "");
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return gr_error_set(err, EEXIST, "this token already exists");
	if (rc != SQLITE_DONE)
		return sql_error(s, rc, err, "cannot add the token");
	return 0;
}

int store_token_check(struct store *s, const char *token, struct gr_error *err)
{
	char hex[65];
	if (!token || !*token)
		return gr_error_set(err, EACCES, "no token given");
	int rc = token_hash(token, hex, err);
	if (rc < 0)
		return rc;
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	if ((rc = stmt_get(s, ST_TOKEN_CHECK, &st, err)) < 0)
		return rc;
	bind_text(st, 1, hex);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return gr_error_set(err, EACCES, "unknown token");
	return sql_error(s, rc, err, "cannot check the token");
}

int store_token_remove(struct store *s, const char *prefix, struct gr_error *err)
{
	size_t len = prefix ? strlen(prefix) : 0;
	if (len < 8 || len > 64 || strspn(prefix, "0123456789abcdef") != len)
		return gr_error_set(err, EINVAL, "token hash prefix '%.70s': expected 8 to 64 lowercase hex digits",
				    prefix ? prefix : "");
	STORE_LOCK(s);
	char hash[65] = "";
	{
		gr_autoreset sqlite3_stmt *st = NULL;
		int rc = stmt_get(s, ST_TOKEN_FIND, &st, err);
		if (rc < 0)
			return rc;
		bind_text(st, 1, prefix);
		int found = 0;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			snprintf(hash, sizeof(hash), "%s", (const char *)sqlite3_column_text(st, 0));
			found++;
		}
		if (rc != SQLITE_DONE)
			return sql_error(s, rc, err, "cannot look the token up");
		if (found == 0)
			return gr_error_set(err, ENOENT, "no token with hash %s", prefix);
		if (found > 1)
			return gr_error_set(err, EINVAL, "token hash prefix %s is ambiguous: give more digits", prefix);
	}
	gr_autoreset sqlite3_stmt *st = NULL;
	int rc = stmt_get(s, ST_TOKEN_DELETE, &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, hash);
	return stmt_exec(s, st, NULL, err, "cannot delete the token");
}

int store_token_list(struct store *s, json_t **out, struct gr_error *err)
{
	STORE_LOCK(s);
	gr_autoreset sqlite3_stmt *st = NULL;
	int rc = stmt_get(s, ST_TOKEN_LIST, &st, err);
	if (rc < 0)
		return rc;
	gr_autojson json_t *list = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *t = json_pack("{s:s, s:s, s:s}", "hash", (const char *)sqlite3_column_text(st, 0), "description",
				      (const char *)sqlite3_column_text(st, 1), "created_at",
				      (const char *)sqlite3_column_text(st, 2));
		if (!t || json_array_append_new(list, t) < 0)
			return gr_error_set(err, ENOMEM, "out of memory");
	}
	if (rc != SQLITE_DONE)
		return sql_error(s, rc, err, "cannot list the tokens");
	*out = gr_steal_ptr(list);
	return 0;
}
