/* The schema's history: migration i (1-based) takes a database from
 * user_version i-1 to i. Append only: a released migration never changes. */
#ifndef GR_DAEMON_STORE_MIGRATIONS_H
#define GR_DAEMON_STORE_MIGRATIONS_H

#include <stddef.h>

struct store_migration {
	const char *name;
	const char *sql;              /* one or more statements */
};

extern const struct store_migration store_migrations[];
extern const size_t store_n_migrations;

#endif
