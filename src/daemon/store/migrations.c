/* Schema migrations, in order (migrations.h). Each runs inside one
 * transaction with the PRAGMA user_version that records it, so a crash in
 * the middle leaves the previous version intact. */
#include "daemon/store/migrations.h"

const struct store_migration store_migrations[] = {
	{
		.name = "0001_initial",
		.sql =
		"CREATE TABLE instances (\n"
		"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
		"  name TEXT NOT NULL UNIQUE,\n"
		"  type TEXT NOT NULL,\n"
		"  image TEXT NOT NULL,\n"
		"  config TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config) AND json_type(config) = 'object'),\n"
		"  command TEXT CHECK (command IS NULL OR (json_valid(command) AND json_type(command) = 'array')),\n"
		"  state TEXT NOT NULL CHECK (state IN ('creating', 'stopped', 'running', 'paused', 'deleting')),\n"
		"  created_at TEXT NOT NULL,\n"
		"  last_used_at TEXT,\n"
		"  stop_reason TEXT NOT NULL DEFAULT '',\n"
		"  exit_code INTEGER\n"
		");\n"
		"CREATE TABLE tokens (\n"
		"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
		"  hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),\n"
		"  description TEXT NOT NULL DEFAULT '',\n"
		"  created_at TEXT NOT NULL\n"
		");\n",
	},
};

const size_t store_n_migrations = sizeof(store_migrations) / sizeof(store_migrations[0]);
