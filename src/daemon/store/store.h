/* gureumd's database: SQLite in STATE/gureum.db (WAL, foreign keys on,
 * busy timeout). It holds the desired state of every instance and the API
 * tokens; what really runs is the drivers' business (reconcile.c compares the
 * two at start-up).
 *
 * Schema: versioned migrations in the tree (store/migrations.c), applied in
 * order at open, each in its own transaction together with the new
 * PRAGMA user_version; a database whose version is newer than this code
 * knows is refused (-EPROTO), never touched.
 *
 * Threads: one connection guarded by one mutex (handlers on the server
 * thread and operations on worker threads share it). Every call is a short
 * statement or transaction on a small database, so a connection per thread
 * would buy no parallelism SQLite's single writer would not take back, and
 * one connection lets every prepared statement be cached once.
 *
 * Durability: synchronous=NORMAL in WAL mode: a committed transaction
 * survives the process being killed (SIGKILL), and at worst the last ones are
 * rolled back by a power loss, never corrupted.
 *
 * Every function returns 0 or a negative errno with err filled. */
#ifndef GR_DAEMON_STORE_H
#define GR_DAEMON_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

struct store;

/* Desired state of an instance (the instances.state column). */
enum store_state {
	STORE_CREATING,   /* create in progress: rolled back by reconcile if gureumd died */
	STORE_STOPPED,
	STORE_RUNNING,
	STORE_PAUSED,
	STORE_DELETING,   /* delete in progress: finished by reconcile if gureumd died */
};
const char *store_state_name(enum store_state s);
int store_state_parse(const char *s, enum store_state *out);

/* One row of instances. Strings and JSON are owned by the row. */
struct store_instance {
	int64_t id;
	char *name;
	char *type;                   /* "container" */
	char *image;                  /* the image's fingerprint (pinned at creation) */
	char *image_alias;            /* the name it was created from ("" when by fingerprint) */
	json_t *config;               /* object of strings */
	json_t *command;              /* array of strings, or NULL for the image's default */
	enum store_state state;
	char *created_at;             /* RFC 3339, UTC, milliseconds */
	char *last_used_at;           /* NULL when never started */
	char *stop_reason;            /* "" when none */
	int exit_code;                /* -1 when never exited */
};

/* The schema version this code writes (the number of migrations). */
int store_schema_version(void);

/* Opens (creating it if needed) STATE_DIR/gureum.db and migrates it. */
int store_open(const char *state_dir, struct store **out, struct gr_error *err);
/* Same with an explicit file name (tests). */
int store_open_path(const char *db_path, struct store **out, struct gr_error *err);
void store_close(struct store *s);
/* The path of the database (for messages). */
const char *store_path(const struct store *s);

/* Instances. insert: name, type, image, image_alias (NULL: ""), config
 * (object or NULL for {}), command (array or NULL), state are read from *in; *id_out gets the new
 * row's id. -EEXIST when the name is taken. */
int store_instance_insert(struct store *s, const struct store_instance *in, int64_t *id_out, struct gr_error *err);
/* -ENOENT when there is no such instance. *out: free with store_instance_free. */
int store_instance_get(struct store *s, const char *name, struct store_instance **out, struct gr_error *err);
/* Every instance, by name, in one query: *out is an array of *n rows (free
 * with store_instance_list_free). */
int store_instance_list(struct store *s, struct store_instance **out, size_t *n, struct gr_error *err);
/* Just the names (sorted), NULL-terminated (free with gr_strv_free). */
int store_instance_names(struct store *s, char ***out, struct gr_error *err);
/* Sets the desired state; STORE_RUNNING also sets last_used_at to now.
 * -ENOENT when the instance is gone. */
int store_instance_set_state(struct store *s, const char *name, enum store_state state, struct gr_error *err);
/* Records why it last stopped (reason "" clears) and its exit code (-1: none). */
int store_instance_set_stopped(struct store *s, const char *name, const char *reason, int exit_code,
			       struct gr_error *err);
/* -ENOENT when there is no such instance. */
int store_instance_delete(struct store *s, const char *name, struct gr_error *err);

void store_instance_clear(struct store_instance *i);
void store_instance_free(struct store_instance *i);
void store_instance_list_free(struct store_instance *list, size_t n);

/* For the files that keep other tables (store/images.c): the connection,
 * with the store's mutex held until store_db_unlock; statements prepared
 * there are theirs to finalize. store_sql_error words an SQLite failure as
 * the store's own functions do. */
struct sqlite3;
struct sqlite3 *store_db_lock(struct store *s);
void store_db_unlock(struct store *s);
int store_sql_error(struct store *s, int sqlite_rc, struct gr_error *err, const char *what);

/* API tokens (POST /1.0/tokens and the TLS check). Only the SHA-256 of a
 * token is stored (hex). add: -EEXIST if the same token is already there.
 * check: 0 when the token is known, -EACCES when not (err says so without
 * the token). */
int store_token_add(struct store *s, const char *token, const char *description, struct gr_error *err);
int store_token_check(struct store *s, const char *token, struct gr_error *err);
/* Removes the token whose hash starts with the given hex prefix (at least 8
 * characters, matching exactly one): -ENOENT, -EINVAL when ambiguous/short. */
int store_token_remove(struct store *s, const char *hash_prefix, struct gr_error *err);
/* [{"hash":"hex","description","created_at"}] */
int store_token_list(struct store *s, json_t **out, struct gr_error *err);

#endif
