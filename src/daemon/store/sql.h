/* What the table files of the store (images.c, volumes.c, networks.c) share
 * to run statements on the store's one connection: the lock held for a
 * scope (DB_LOCK), statements finalized at scope exit (gr_autofinal), and
 * small column helpers. Private to src/daemon/store. */
#ifndef GR_DAEMON_STORE_SQL_H
#define GR_DAEMON_STORE_SQL_H

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon/store/store.h"

#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

static inline void store_finalizep(sqlite3_stmt **st)
{
	if (*st)
		sqlite3_finalize(*st);
}
#define gr_autofinal _cleanup_(store_finalizep)

struct store_db_hold {
	struct store *s;
	sqlite3 *db;
};
static inline void store_db_releasep(struct store_db_hold *h)
{
	if (h->s)
		store_db_unlock(h->s);
}
/* Declares `sqlite3 *db`, held until the end of the scope. */
#define DB_LOCK(s) \
	_cleanup_(store_db_releasep) struct store_db_hold _h_ = { (s), store_db_lock(s) }; \
	sqlite3 *db = _h_.db

static inline int store_prep(struct store *s, sqlite3 *db, const char *sql, sqlite3_stmt **st, struct gr_error *err)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : store_sql_error(s, rc, err, "cannot prepare a statement");
}

/* A text column as a malloc'd string ("" for NULL); NULL when out of memory. */
static inline char *store_coldup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return strdup(t ? (const char *)t : "");
}

#endif
