/* Unit tests for src/daemon/store: migrations, reopen, a newer schema
 * refused, instance CRUD, unique names, tokens, two threads at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "daemon/store/store.h"

struct fixture {
	char dir[64];
	char db[96];
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/gureum.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(f->s);
	struct gr_error err = { 0 };
	gr_rm_rf(f->dir, &err);
	free(f);
	return 0;
}

static struct store *open_ok(struct fixture *f)
{
	struct gr_error err = { 0 };
	struct store *s = NULL;
	int rc = store_open(f->dir, &s, &err);
	if (rc < 0)
		fail_msg("store_open: %s", err.msg);
	return s;
}

/* Reads one integer with a separate connection (what is really on disk). */
static int64_t query_int(const char *db, const char *sql)
{
	sqlite3 *c = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(db, &c, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(c);
	return v;
}

static char *query_text(const char *db, const char *sql)
{
	sqlite3 *c = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(db, &c, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	char *v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(c);
	return v;
}

static void exec_sql(const char *db, const char *sql)
{
	sqlite3 *c = NULL;
	assert_int_equal(sqlite3_open_v2(db, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(c);
}

static int insert(struct store *s, const char *name, const char *config, const char *command, struct gr_error *err)
{
	json_error_t je;
	gr_autojson json_t *cfg = config ? json_loads(config, 0, &je) : NULL;
	gr_autojson json_t *cmd = command ? json_loads(command, 0, &je) : NULL;
	struct store_instance in = { .name = (char *)name, .type = "container", .image = "busybox",
				     .config = cfg, .command = cmd, .state = STORE_CREATING };
	int64_t id = 0;
	int rc = store_instance_insert(s, &in, &id, err);
	if (rc == 0)
		assert_true(id > 0);
	return rc;
}

static void test_migrations_from_empty(void **state)
{
	struct fixture *f = *state;
	f->s = open_ok(f);
	assert_int_equal(query_int(f->db, "PRAGMA user_version"), store_schema_version());
	assert_true(store_schema_version() >= 1);
	gr_autofree char *mode = query_text(f->db, "PRAGMA journal_mode");
	assert_string_equal(mode, "wal");
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('instances', 'tokens')"), 2);
	/* Owner only: the database holds token hashes. */
	struct stat st;
	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
}

static void test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	f->s = open_ok(f);
	assert_int_equal(insert(f->s, "c1", "{\"limits.cpu\":\"1\"}", "[\"sleep\",\"100\"]", &err), 0);
	store_close(f->s);
	f->s = open_ok(f);
	struct store_instance *i = NULL;
	assert_int_equal(store_instance_get(f->s, "c1", &i, &err), 0);
	assert_string_equal(i->name, "c1");
	assert_string_equal(json_string_value(json_object_get(i->config, "limits.cpu")), "1");
	assert_string_equal(json_string_value(json_array_get(i->command, 1)), "100");
	assert_int_equal(i->state, STORE_CREATING);
	store_instance_free(i);
	assert_int_equal(query_int(f->db, "PRAGMA user_version"), store_schema_version());
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	f->s = open_ok(f);
	store_close(f->s);
	f->s = NULL;
	exec_sql(f->db, "PRAGMA user_version = 999");
	struct gr_error err = { 0 };
	struct store *s = NULL;
	assert_int_equal(store_open(f->dir, &s, &err), -EPROTO);
	assert_null(s);
	assert_non_null(strstr(err.msg, "999"));
	assert_non_null(strstr(err.msg, "newer"));
	/* Untouched. */
	assert_int_equal(query_int(f->db, "PRAGMA user_version"), 999);
}

static void test_partial_migration_resumes(void **state)
{
	/* A database at version 0 that already has a stray table: the migration
	 * fails as a whole and leaves version 0 (nothing half-applied). */
	struct fixture *f = *state;
	exec_sql(f->db, "CREATE TABLE tokens (x)");
	struct gr_error err = { 0 };
	struct store *s = NULL;
	assert_true(store_open(f->dir, &s, &err) < 0);
	assert_non_null(strstr(err.msg, "0001_initial"));
	assert_int_equal(query_int(f->db, "PRAGMA user_version"), 0);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'instances'"), 0);
}

static void test_not_a_database(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	assert_int_equal(gr_write_file_new(f->db, "this is not sqlite, just text that is long enough to matter\n",
					   61, 0600, &err), 0);
	struct store *s = NULL;
	assert_true(store_open(f->dir, &s, &err) < 0);
	assert_non_null(strstr(err.msg, f->db));
}

static void test_crud(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	f->s = open_ok(f);
	assert_int_equal(insert(f->s, "web", NULL, NULL, &err), 0);
	struct store_instance *i = NULL;
	assert_int_equal(store_instance_get(f->s, "web", &i, &err), 0);
	assert_int_equal(json_object_size(i->config), 0);
	assert_null(i->command);
	assert_null(i->last_used_at);
	assert_int_equal(i->exit_code, -1);
	assert_string_equal(i->stop_reason, "");
	assert_int_equal(strlen(i->created_at), 24); /* 2026-01-02T03:04:05.678Z */
	store_instance_free(i);

	assert_int_equal(store_instance_set_state(f->s, "web", STORE_RUNNING, &err), 0);
	assert_int_equal(store_instance_set_stopped(f->s, "web", "exited with 3", 3, &err), 0);
	assert_int_equal(store_instance_get(f->s, "web", &i, &err), 0);
	assert_int_equal(i->state, STORE_RUNNING);
	assert_non_null(i->last_used_at);
	assert_string_equal(i->stop_reason, "exited with 3");
	assert_int_equal(i->exit_code, 3);
	store_instance_free(i);

	assert_int_equal(store_instance_set_state(f->s, "nope", STORE_STOPPED, &err), -ENOENT);
	assert_int_equal(store_instance_get(f->s, "nope", &i, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "nope"));
	assert_int_equal(store_instance_delete(f->s, "web", &err), 0);
	assert_int_equal(store_instance_delete(f->s, "web", &err), -ENOENT);
	assert_int_equal(store_instance_get(f->s, "web", &i, &err), -ENOENT);
}

static void test_unique_names(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	f->s = open_ok(f);
	assert_int_equal(insert(f->s, "c1", NULL, NULL, &err), 0);
	assert_int_equal(insert(f->s, "c1", NULL, NULL, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "already exists"));
	/* The cached statement was reset: the next insert works. */
	assert_int_equal(insert(f->s, "c2", NULL, NULL, &err), 0);
}

static void test_list_sorted_and_names(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	f->s = open_ok(f);
	const char *names[] = { "zeta", "alpha", "m1", "b-2" };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(insert(f->s, names[i], "{\"boot.restart\":\"always\"}", NULL, &err), 0);
	struct store_instance *rows = NULL;
	size_t n = 0;
	assert_int_equal(store_instance_list(f->s, &rows, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(rows[0].name, "alpha");
	assert_string_equal(rows[3].name, "zeta");
	assert_string_equal(json_string_value(json_object_get(rows[2].config, "boot.restart")), "always");
	store_instance_list_free(rows, n);
	gr_autostrv char **v = NULL;
	assert_int_equal(store_instance_names(f->s, &v, &err), 0);
	assert_int_equal(gr_strv_len(v), 4);
	assert_string_equal(v[1], "b-2");
}

static void test_list_many(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	f->s = open_ok(f);
	for (int i = 0; i < 1000; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%04d", i);
		assert_int_equal(insert(f->s, name, "{\"limits.memory\":\"64MiB\"}", "[\"sh\"]", &err), 0);
	}
	struct store_instance *rows = NULL;
	size_t n = 0;
	assert_int_equal(store_instance_list(f->s, &rows, &n, &err), 0);
	assert_int_equal(n, 1000);
	assert_string_equal(rows[999].name, "c0999");
	store_instance_list_free(rows, n);
}

static void test_bad_input_refused(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	f->s = open_ok(f);
	gr_autojson json_t *arr = json_array();
	struct store_instance in = { .name = "x", .type = "container", .image = "busybox", .config = arr };
	assert_int_equal(store_instance_insert(f->s, &in, NULL, &err), -EINVAL);
	/* Hostile names are stored as data, never as SQL. */
	assert_int_equal(insert(f->s, "a'); DROP TABLE instances; --", NULL, NULL, &err), 0);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM instances"), 1);
}

static void test_tokens(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	f->s = open_ok(f);
	assert_int_equal(store_token_check(f->s, "secret-token", &err), -EACCES);
	assert_int_equal(store_token_add(f->s, "secret-token", "laptop", &err), 0);
	assert_int_equal(store_token_add(f->s, "secret-token", "again", &err), -EEXIST);
	assert_int_equal(store_token_check(f->s, "secret-token", &err), 0);
	assert_int_equal(store_token_check(f->s, "secret-tokeN", &err), -EACCES);
	assert_int_equal(store_token_check(f->s, "", &err), -EACCES);
	/* Only the hash is on disk. */
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM tokens WHERE hash LIKE '%secret%' OR description = 'secret-token'"), 0);
	gr_autofree char *hash = query_text(f->db, "SELECT hash FROM tokens");
	/* sha256("secret-token") */
	assert_int_equal(strlen(hash), 64);
	gr_autojson json_t *list = NULL;
	assert_int_equal(store_token_list(f->s, &list, &err), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "description")), "laptop");
	assert_int_equal(store_token_remove(f->s, "abc", &err), -EINVAL);
	assert_int_equal(store_token_remove(f->s, "00000000", &err), hash[0] == '0' && strncmp(hash, "00000000", 8) == 0 ? 0 : -ENOENT);
	char prefix[9];
	memcpy(prefix, hash, 8);
	prefix[8] = '\0';
	assert_int_equal(store_token_remove(f->s, prefix, &err), 0);
	assert_int_equal(store_token_check(f->s, "secret-token", &err), -EACCES);
}

struct worker {
	struct store *s;
	int id;
	int failures;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	struct gr_error err = { 0 };
	for (int i = 0; i < 200; i++) {
		char name[32];
		snprintf(name, sizeof(name), "t%d-%d", w->id, i);
		struct store_instance in = { .name = name, .type = "container", .image = "busybox", .state = STORE_CREATING };
		struct store_instance *got = NULL;
		struct store_instance *rows = NULL;
		size_t n = 0;
		if (store_instance_insert(w->s, &in, NULL, &err) < 0 ||
		    store_instance_set_state(w->s, name, STORE_RUNNING, &err) < 0 ||
		    store_instance_get(w->s, name, &got, &err) < 0 || got->state != STORE_RUNNING ||
		    store_instance_list(w->s, &rows, &n, &err) < 0 || n == 0)
			w->failures++;
		store_instance_free(got);
		store_instance_list_free(rows, n);
		if (i % 2 && store_instance_delete(w->s, name, &err) < 0)
			w->failures++;
	}
	return NULL;
}

static void test_two_threads(void **state)
{
	struct fixture *f = *state;
	f->s = open_ok(f);
	struct worker w[2] = { { f->s, 1, 0 }, { f->s, 2, 0 } };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(w[0].failures, 0);
	assert_int_equal(w[1].failures, 0);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM instances"), 200);
}

static void test_state_names(void **state)
{
	(void)state;
	enum store_state s;
	assert_int_equal(store_state_parse("running", &s), 0);
	assert_int_equal(s, STORE_RUNNING);
	assert_int_equal(store_state_parse("Running", &s), -EINVAL);
	assert_string_equal(store_state_name(STORE_DELETING), "deleting");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations_from_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_migration_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unique_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_sorted_and_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_threads, setup, teardown),
		cmocka_unit_test(test_state_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
