/* The network tables (store/networks.h), over the store's one connection
 * (store_db_lock). A call holds the connection for its whole work, so the
 * reads and the write of an allocation cannot interleave with another
 * writer (there is only this connection). */
#include "daemon/store/networks.h"

#include <stdio.h>

#include "common/json.h"
#include "daemon/network/addr.h"
#include "daemon/store/sql.h"

void store_network_clear(struct store_network *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->bridge);
	free(n->created_at);
	memset(n, 0, sizeof(*n));
}

void store_network_list_free(struct store_network *n, size_t count)
{
	for (size_t i = 0; n && i < count; i++)
		store_network_clear(&n[i]);
	free(n);
}

void store_nic_clear(struct store_nic *n)
{
	if (!n)
		return;
	free(n->instance);
	free(n->network);
	free(n->mac);
	memset(n, 0, sizeof(*n));
}

void store_nic_list_free(struct store_nic *n, size_t count)
{
	for (size_t i = 0; n && i < count; i++)
		store_nic_clear(&n[i]);
	free(n);
}

void store_forward_list_free(struct store_forward *f, size_t count)
{
	for (size_t i = 0; f && i < count; i++) {
		free(f[i].network);
		free(f[i].protocol);
		free(f[i].instance);
	}
	free(f);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Grows *arr by one zeroed element; NULL when out of memory. */
static void *grow(void **arr, size_t *n, size_t size)
{
	char *a = realloc(*arr, (*n + 1) * size);
	if (!a)
		return NULL;
	*arr = a;
	memset(a + *n * size, 0, size);
	return a + (*n)++ * size;
}

/* --- networks -------------------------------------------------------------- */

int store_network_insert(struct store *s, const struct store_network *in, struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
			    "INSERT INTO networks (name, bridge, subnet, prefix, nat, isolated, created_at) "
			    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, " NOW_SQL ")",
			    &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, in->name);
	bind_text(st, 2, in->bridge);
	sqlite3_bind_int64(st, 3, in->subnet);
	sqlite3_bind_int(st, 4, (int)in->prefix);
	sqlite3_bind_int(st, 5, in->nat);
	sqlite3_bind_int(st, 6, in->isolated);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return gr_error_set(err, EEXIST, "network %s already exists", in->name);
	return rc == SQLITE_DONE ? 0 : store_sql_error(s, rc, err, "cannot add the network");
}

#define NETWORK_COLUMNS "id, name, bridge, subnet, prefix, nat, isolated, created_at"

static int read_network(sqlite3_stmt *st, struct store_network *n, struct gr_error *err)
{
	n->id = sqlite3_column_int64(st, 0);
	n->name = store_coldup(st, 1);
	n->bridge = store_coldup(st, 2);
	n->subnet = (uint32_t)sqlite3_column_int64(st, 3);
	n->prefix = (unsigned)sqlite3_column_int(st, 4);
	n->nat = sqlite3_column_int(st, 5) != 0;
	n->isolated = sqlite3_column_int(st, 6) != 0;
	n->created_at = store_coldup(st, 7);
	if (!n->name || !n->bridge || !n->created_at) {
		store_network_clear(n);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

int store_network_get(struct store *s, const char *name, struct store_network *out, struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "SELECT " NETWORK_COLUMNS " FROM networks WHERE name = ?1", &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return gr_error_set(err, ENOENT, "network %s not found", name);
	if (rc != SQLITE_ROW)
		return store_sql_error(s, rc, err, "cannot read the network");
	return read_network(st, out, err);
}

int store_network_list(struct store *s, struct store_network **out, size_t *n, struct gr_error *err)
{
	*out = NULL;
	*n = 0;
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "SELECT " NETWORK_COLUMNS " FROM networks ORDER BY name", &st, err);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_network *e = grow((void **)out, n, sizeof(**out));
		if (!e) {
			rc = gr_error_set(err, ENOMEM, "out of memory");
			goto fail;
		}
		if ((rc = read_network(st, e, err)) < 0)
			goto fail;
	}
	if (rc == SQLITE_DONE)
		return 0;
	rc = store_sql_error(s, rc, err, "cannot list the networks");
fail:
	store_network_list_free(*out, *n);
	*out = NULL;
	*n = 0;
	return rc;
}

static int users_locked(struct store *s, sqlite3 *db, const char *name, char ***out, struct gr_error *err)
{
	*out = NULL;
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
			    "SELECT i.name FROM nics c JOIN instances i ON i.id = c.instance_id "
			    "JOIN networks n ON n.id = c.network_id WHERE n.name = ?1 ORDER BY i.name",
			    &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, name);
	char **v = calloc(1, sizeof(char *));
	size_t k = 0;
	while (v && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **nv = realloc(v, (k + 2) * sizeof(char *));
		if (!nv)
			break;
		v = nv;
		v[k + 1] = NULL;
		if (!(v[k] = store_coldup(st, 0)))
			break;
		k++;
	}
	if (!v || rc == SQLITE_ROW) {
		gr_strv_free(v);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	if (rc != SQLITE_DONE) {
		gr_strv_free(v);
		return store_sql_error(s, rc, err, "cannot list the network's instances");
	}
	*out = v;
	return 0;
}

int store_network_users(struct store *s, const char *name, char ***out, struct gr_error *err)
{
	DB_LOCK(s);
	return users_locked(s, db, name, out, err);
}

/* -EBUSY naming the users, when there are. */
static int check_unused_locked(struct store *s, sqlite3 *db, const char *name, struct gr_error *err)
{
	gr_autostrv char **users = NULL;
	int rc = users_locked(s, db, name, &users, err);
	if (rc < 0 || !users[0])
		return rc;
	char list[512] = "";
	size_t o = 0;
	for (size_t i = 0; users[i] && o < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", users[i]);
	return gr_error_set(err, EBUSY, "network %s is used by instance%s %s: delete %s first", name, users[1] ? "s" : "",
			    list, users[1] ? "them" : "it");
}

int store_network_check_unused(struct store *s, const char *name, struct gr_error *err)
{
	DB_LOCK(s);
	return check_unused_locked(s, db, name, err);
}

int store_network_delete(struct store *s, const char *name, struct gr_error *err)
{
	DB_LOCK(s);
	int rc = check_unused_locked(s, db, name, err);
	if (rc < 0)
		return rc;
	gr_autofinal sqlite3_stmt *st = NULL;
	if ((rc = store_prep(s, db, "DELETE FROM networks WHERE name = ?1", &st, err)) < 0)
		return rc;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot delete the network");
	return sqlite3_changes(db) ? 0 : gr_error_set(err, ENOENT, "network %s not found", name);
}

/* --- NICs ------------------------------------------------------------------ */

#define NIC_COLUMNS "c.instance_id, i.name, n.name, c.mac, c.ipv4, c.static"
#define NIC_FROM " FROM nics c JOIN instances i ON i.id = c.instance_id JOIN networks n ON n.id = c.network_id "

static int read_nic(sqlite3_stmt *st, struct store_nic *c, struct gr_error *err)
{
	c->instance_id = sqlite3_column_int64(st, 0);
	c->instance = store_coldup(st, 1);
	c->network = store_coldup(st, 2);
	c->mac = store_coldup(st, 3);
	c->ipv4 = (uint32_t)sqlite3_column_int64(st, 4);
	c->is_static = sqlite3_column_int(st, 5) != 0;
	if (!c->instance || !c->network || !c->mac) {
		store_nic_clear(c);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

int store_nic_allocate(struct store *s, const char *instance, const char *network, const char *mac, uint32_t addr,
		       uint32_t first, uint32_t last, struct gr_error *err)
{
	DB_LOCK(s);
	const bool is_static = addr != 0;
	int64_t net_id, inst_id;
	{
		gr_autofinal sqlite3_stmt *q = NULL;
		int rc = store_prep(s, db,
				    "SELECT (SELECT id FROM networks WHERE name = ?1), "
				    "(SELECT id FROM instances WHERE name = ?2)",
				    &q, err);
		if (rc < 0)
			return rc;
		bind_text(q, 1, network);
		bind_text(q, 2, instance);
		if ((rc = sqlite3_step(q)) != SQLITE_ROW)
			return store_sql_error(s, rc, err, "cannot read the network");
		if (sqlite3_column_type(q, 0) == SQLITE_NULL)
			return gr_error_set(err, ENOENT, "network %s not found", network);
		if (sqlite3_column_type(q, 1) == SQLITE_NULL)
			return gr_error_set(err, ENOENT, "instance %s not found", instance);
		net_id = sqlite3_column_int64(q, 0);
		inst_id = sqlite3_column_int64(q, 1);
	}
	/* The addresses in use, in order: a static one must be free; else the
	 * first gap from first on. */
	{
		gr_autofinal sqlite3_stmt *q = NULL;
		int rc = store_prep(s, db,
				    "SELECT c.ipv4, i.name FROM nics c JOIN instances i ON i.id = c.instance_id "
				    "WHERE c.network_id = ?1 AND c.ipv4 BETWEEN ?2 AND ?3 ORDER BY c.ipv4",
				    &q, err);
		if (rc < 0)
			return rc;
		sqlite3_bind_int64(q, 1, net_id);
		sqlite3_bind_int64(q, 2, first);
		sqlite3_bind_int64(q, 3, last);
		uint64_t next = first;
		bool found = false;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			uint32_t used = (uint32_t)sqlite3_column_int64(q, 0);
			if (addr && used == addr) {
				char a[IPV4_STR_MAX];
				ipv4_format(addr, a);
				return gr_error_set(err, EADDRINUSE, "address %s on network %s is taken by instance %s",
						    a, network, (const char *)sqlite3_column_text(q, 1));
			}
			if (!addr && !found) {
				if (used > next)
					found = true;
				else
					next = (uint64_t)used + 1;
			}
		}
		if (rc != SQLITE_DONE)
			return store_sql_error(s, rc, err, "cannot read the network's addresses");
		if (!addr) {
			if (next > last)
				return gr_error_set(err, ENOSPC, "network %s has no free address left: every one of its "
						    "subnet is taken", network);
			addr = (uint32_t)next;
		}
	}
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "INSERT INTO nics (instance_id, network_id, mac, ipv4, static) VALUES (?1, ?2, ?3, ?4, ?5)",
			    &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, inst_id);
	sqlite3_bind_int64(st, 2, net_id);
	bind_text(st, 3, mac);
	sqlite3_bind_int64(st, 4, addr);
	sqlite3_bind_int(st, 5, is_static);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return gr_error_set(err, EEXIST, "instance %s has a network already", instance);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return gr_error_set(err, EEXIST, "the MAC address %s is in use: try again", mac);
	return rc == SQLITE_DONE ? 0 : store_sql_error(s, rc, err, "cannot add the instance's network");
}

int store_nic_get(struct store *s, const char *instance, struct store_nic *out, struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "SELECT " NIC_COLUMNS NIC_FROM "WHERE i.name = ?1", &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, instance);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return gr_error_set(err, ENOENT, "instance %s has no network", instance);
	if (rc != SQLITE_ROW)
		return store_sql_error(s, rc, err, "cannot read the instance's network");
	return read_nic(st, out, err);
}

int store_nic_list(struct store *s, const char *network, struct store_nic **out, size_t *n, struct gr_error *err)
{
	*out = NULL;
	*n = 0;
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db, "SELECT " NIC_COLUMNS NIC_FROM "WHERE ?1 IS NULL OR n.name = ?1 ORDER BY c.ipv4",
			    &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, network);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_nic *e = grow((void **)out, n, sizeof(**out));
		if (!e) {
			rc = gr_error_set(err, ENOMEM, "out of memory");
			goto fail;
		}
		if ((rc = read_nic(st, e, err)) < 0)
			goto fail;
	}
	if (rc == SQLITE_DONE)
		return 0;
	rc = store_sql_error(s, rc, err, "cannot list the NICs");
fail:
	store_nic_list_free(*out, *n);
	*out = NULL;
	*n = 0;
	return rc;
}

/* --- forwards -------------------------------------------------------------- */

int store_forward_insert(struct store *s, const char *network, const char *protocol, uint16_t host_port,
			 const char *instance, uint16_t port, struct gr_error *err)
{
	DB_LOCK(s);
	int64_t net_id, inst_id;
	{
		gr_autofinal sqlite3_stmt *q = NULL;
		int rc = store_prep(s, db,
				    "SELECT (SELECT id FROM networks WHERE name = ?1), "
				    "(SELECT c.instance_id FROM nics c JOIN instances i ON i.id = c.instance_id "
				    " JOIN networks n ON n.id = c.network_id WHERE i.name = ?2 AND n.name = ?1), "
				    "(SELECT n.name || ' to ' || i.name || ':' || f.port FROM forwards f "
				    " JOIN networks n ON n.id = f.network_id JOIN instances i ON i.id = f.instance_id "
				    " WHERE f.protocol = ?3 AND f.host_port = ?4)",
				    &q, err);
		if (rc < 0)
			return rc;
		bind_text(q, 1, network);
		bind_text(q, 2, instance);
		bind_text(q, 3, protocol);
		sqlite3_bind_int(q, 4, host_port);
		if ((rc = sqlite3_step(q)) != SQLITE_ROW)
			return store_sql_error(s, rc, err, "cannot read the forwards");
		if (sqlite3_column_type(q, 0) == SQLITE_NULL)
			return gr_error_set(err, ENOENT, "network %s not found", network);
		if (sqlite3_column_type(q, 1) == SQLITE_NULL)
			return gr_error_set(err, ENOENT, "instance %s is not on network %s", instance, network);
		if (sqlite3_column_type(q, 2) != SQLITE_NULL)
			return gr_error_set(err, EEXIST, "%s port %u is forwarded already (network %s)", protocol,
					    host_port, (const char *)sqlite3_column_text(q, 2));
		net_id = sqlite3_column_int64(q, 0);
		inst_id = sqlite3_column_int64(q, 1);
	}
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
			    "INSERT INTO forwards (protocol, host_port, network_id, instance_id, port) "
			    "VALUES (?1, ?2, ?3, ?4, ?5)",
			    &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, protocol);
	sqlite3_bind_int(st, 2, host_port);
	sqlite3_bind_int64(st, 3, net_id);
	sqlite3_bind_int64(st, 4, inst_id);
	sqlite3_bind_int(st, 5, port);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : store_sql_error(s, rc, err, "cannot add the forward");
}

int store_forward_delete(struct store *s, const char *network, const char *protocol, uint16_t host_port,
			 struct gr_error *err)
{
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
			    "DELETE FROM forwards WHERE protocol = ?2 AND host_port = ?3 AND "
			    "network_id = (SELECT id FROM networks WHERE name = ?1)",
			    &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, network);
	bind_text(st, 2, protocol);
	sqlite3_bind_int(st, 3, host_port);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_sql_error(s, rc, err, "cannot delete the forward");
	return sqlite3_changes(db) ? 0
				   : gr_error_set(err, ENOENT, "network %s has no %s forward of port %u", network,
						  protocol, host_port);
}

int store_forward_list(struct store *s, const char *network, struct store_forward **out, size_t *n,
		       struct gr_error *err)
{
	*out = NULL;
	*n = 0;
	DB_LOCK(s);
	gr_autofinal sqlite3_stmt *st = NULL;
	int rc = store_prep(s, db,
			    "SELECT n.name, f.protocol, f.host_port, i.name, f.port, c.ipv4 FROM forwards f "
			    "JOIN networks n ON n.id = f.network_id JOIN instances i ON i.id = f.instance_id "
			    "JOIN nics c ON c.instance_id = f.instance_id "
			    "WHERE ?1 IS NULL OR n.name = ?1 ORDER BY f.protocol, f.host_port",
			    &st, err);
	if (rc < 0)
		return rc;
	bind_text(st, 1, network);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_forward *f = grow((void **)out, n, sizeof(**out));
		if (!f) {
			rc = gr_error_set(err, ENOMEM, "out of memory");
			goto fail;
		}
		f->network = store_coldup(st, 0);
		f->protocol = store_coldup(st, 1);
		f->host_port = (uint16_t)sqlite3_column_int(st, 2);
		f->instance = store_coldup(st, 3);
		f->port = (uint16_t)sqlite3_column_int(st, 4);
		f->addr = (uint32_t)sqlite3_column_int64(st, 5);
		if (!f->network || !f->protocol || !f->instance) {
			rc = gr_error_set(err, ENOMEM, "out of memory");
			goto fail;
		}
	}
	if (rc == SQLITE_DONE)
		return 0;
	rc = store_sql_error(s, rc, err, "cannot list the forwards");
fail:
	store_forward_list_free(*out, *n);
	*out = NULL;
	*n = 0;
	return rc;
}
