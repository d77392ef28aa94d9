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
	{
		/* The image store (image/store.h): an image by its fingerprint,
		 * names for it in image_aliases. An instance pins the image it was
		 * made from: instances.image is now its fingerprint (store/images.c
		 * rewrites rows that still hold an alias once that alias exists)
		 * and image_alias the name it was asked for (shown, never used). */
		.name = "0002_images",
		.sql =
		"CREATE TABLE images (\n"
		"  fingerprint TEXT PRIMARY KEY CHECK (length(fingerprint) = 64),\n"
		"  architecture TEXT NOT NULL,\n"
		"  size INTEGER NOT NULL CHECK (size >= 0),\n"
		"  created_at TEXT NOT NULL,\n"
		"  source TEXT NOT NULL DEFAULT '',\n"
		"  description TEXT NOT NULL DEFAULT ''\n"
		");\n"
		"CREATE TABLE image_aliases (\n"
		"  name TEXT PRIMARY KEY,\n"
		"  fingerprint TEXT NOT NULL REFERENCES images(fingerprint) ON DELETE CASCADE\n"
		");\n"
		"CREATE INDEX image_aliases_fingerprint ON image_aliases(fingerprint);\n"
		"ALTER TABLE instances ADD COLUMN image_alias TEXT NOT NULL DEFAULT '';\n"
		"UPDATE instances SET image_alias = image;\n"
		"CREATE INDEX instances_image ON instances(image);\n",
	},
	{
		/* Volumes (volume.h, store/volumes.h): an attachment goes with
		 * its instance; a volume with attachments cannot go. */
		.name = "0003_volumes",
		.sql =
		"CREATE TABLE volumes (\n"
		"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
		"  name TEXT NOT NULL UNIQUE,\n"
		"  type TEXT NOT NULL CHECK (type IN ('dir', 'block')),\n"
		"  size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),\n"
		"  created_at TEXT NOT NULL\n"
		");\n"
		"CREATE TABLE volume_attachments (\n"
		"  volume_id INTEGER NOT NULL REFERENCES volumes(id) ON DELETE RESTRICT,\n"
		"  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,\n"
		"  path TEXT NOT NULL,\n"
		"  readonly INTEGER NOT NULL DEFAULT 0 CHECK (readonly IN (0, 1)),\n"
		"  PRIMARY KEY (volume_id, instance_id),\n"
		"  UNIQUE (instance_id, path)\n"
		");\n"
		"CREATE INDEX volume_attachments_instance ON volume_attachments(instance_id);\n",
	},
	{
		/* Networks (network/network.h, store/networks.h): a NIC (one per
		 * instance, its address from IPAM) goes with its instance and
		 * keeps its network from being deleted; a forward goes with its
		 * instance or network. Addresses are host-order integers. */
		.name = "0004_networks",
		.sql =
		"CREATE TABLE networks (\n"
		"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
		"  name TEXT NOT NULL UNIQUE,\n"
		"  bridge TEXT NOT NULL UNIQUE,\n"
		"  subnet INTEGER NOT NULL CHECK (subnet >= 0 AND subnet < 4294967296),\n"
		"  prefix INTEGER NOT NULL CHECK (prefix BETWEEN 8 AND 30),\n"
		"  nat INTEGER NOT NULL CHECK (nat IN (0, 1)),\n"
		"  isolated INTEGER NOT NULL CHECK (isolated IN (0, 1)),\n"
		"  created_at TEXT NOT NULL\n"
		");\n"
		"CREATE TABLE nics (\n"
		"  instance_id INTEGER PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,\n"
		"  network_id INTEGER NOT NULL REFERENCES networks(id) ON DELETE RESTRICT,\n"
		"  mac TEXT NOT NULL UNIQUE,\n"
		"  ipv4 INTEGER NOT NULL,\n"
		"  static INTEGER NOT NULL CHECK (static IN (0, 1)),\n"
		"  UNIQUE (network_id, ipv4)\n"
		");\n"
		"CREATE TABLE forwards (\n"
		"  protocol TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp')),\n"
		"  host_port INTEGER NOT NULL CHECK (host_port BETWEEN 1 AND 65535),\n"
		"  network_id INTEGER NOT NULL REFERENCES networks(id) ON DELETE CASCADE,\n"
		"  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,\n"
		"  port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),\n"
		"  PRIMARY KEY (protocol, host_port)\n"
		");\n"
		"CREATE INDEX forwards_network ON forwards(network_id);\n"
		"CREATE INDEX forwards_instance ON forwards(instance_id);\n",
	},
};

const size_t store_n_migrations = sizeof(store_migrations) / sizeof(store_migrations[0]);
