/* Unit tests for src/daemon/api/instances.c and reconcile.c against a fake
 * driver (this file's instance_driver_for, which the linker prefers to the
 * library's): the handlers are called as the server would, operations run on
 * their worker threads, and the fake driver records what was asked of it.
 * Covers validation (400 naming the key), 404, 409, create with rollback on
 * a failing driver, state changes, delete with and without force, exec with
 * recorded output and exit code, and reconciliation after a "crash". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "daemon/image/store.h"
#include "daemon/store/images.h"
#include "daemon/api/instances.h"
#include "daemon/api/server.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/operations.h"
#include "daemon/reconcile.h"
#include "daemon/store/store.h"

/* --- the fake driver ------------------------------------------------------ */

#define MAX_FAKE 16
static struct fake {
	char name[64];
	bool exists;
	enum instance_run_state state;
} fakes[MAX_FAKE];
static pthread_mutex_t fake_mu = PTHREAD_MUTEX_INITIALIZER;
static int fail_create, fail_start, n_remove, n_stop;
static char last_stop[64];
static int last_timeout;
static bool last_force;

static struct fake *fake_find(const char *name, bool add)
{
	for (int i = 0; i < MAX_FAKE; i++)
		if (fakes[i].exists && strcmp(fakes[i].name, name) == 0)
			return &fakes[i];
	if (!add)
		return NULL;
	for (int i = 0; i < MAX_FAKE; i++)
		if (!fakes[i].exists) {
			snprintf(fakes[i].name, sizeof(fakes[i].name), "%s", name);
			fakes[i].exists = true;
			fakes[i].state = INSTANCE_STOPPED;
			return &fakes[i];
		}
	return NULL;
}

#define FAKE_FP "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"

static int f_validate(const struct driver_env *e, const struct instance_spec *s, struct gr_error *err)
{
	(void)e;
	/* The daemon resolved the alias: the driver sees the pinned fingerprint. */
	if (strcmp(s->image, FAKE_FP) != 0)
		return gr_error_set(err, EINVAL, "unexpected image '%s'", s->image);
	return 0;
}
static int f_create(const struct driver_env *e, const struct instance_spec *s, struct gr_error *err)
{
	(void)e;
	if (fail_create)
		return gr_error_set(err, EIO, "fake create failure");
	pthread_mutex_lock(&fake_mu);
	fake_find(s->name, true);
	pthread_mutex_unlock(&fake_mu);
	return 0;
}
static int f_start(const struct driver_env *e, const struct instance_spec *s, struct gr_error *err)
{
	(void)e;
	if (fail_start)
		return gr_error_set(err, EIO, "fake start failure");
	pthread_mutex_lock(&fake_mu);
	struct fake *f = fake_find(s->name, false);
	if (f)
		f->state = INSTANCE_RUNNING;
	pthread_mutex_unlock(&fake_mu);
	return f ? 0 : gr_error_set(err, ENOENT, "not created");
}
static int f_stop(const struct driver_env *e, const struct instance_spec *s, int timeout, bool force,
		  struct gr_error *err)
{
	(void)e;
	(void)err;
	pthread_mutex_lock(&fake_mu);
	struct fake *f = fake_find(s->name, false);
	if (f)
		f->state = INSTANCE_STOPPED;
	n_stop++;
	snprintf(last_stop, sizeof(last_stop), "%s", s->name);
	last_timeout = timeout;
	last_force = force;
	pthread_mutex_unlock(&fake_mu);
	return 0;
}
static int f_set(const struct instance_spec *s, enum instance_run_state st)
{
	pthread_mutex_lock(&fake_mu);
	struct fake *f = fake_find(s->name, false);
	if (f)
		f->state = st;
	pthread_mutex_unlock(&fake_mu);
	return 0;
}
static int f_pause(const struct driver_env *e, const struct instance_spec *s, struct gr_error *err)
{
	(void)e;
	(void)err;
	return f_set(s, INSTANCE_PAUSED);
}
static int f_resume(const struct driver_env *e, const struct instance_spec *s, struct gr_error *err)
{
	(void)e;
	(void)err;
	return f_set(s, INSTANCE_RUNNING);
}
static int f_remove(const struct driver_env *e, const struct instance_spec *s, struct gr_error *err)
{
	(void)e;
	(void)err;
	pthread_mutex_lock(&fake_mu);
	struct fake *f = fake_find(s->name, false);
	if (f)
		f->exists = false;
	n_remove++;
	pthread_mutex_unlock(&fake_mu);
	return 0;
}
static int f_status(const struct driver_env *e, const struct instance_spec *s, struct instance_status *st,
		    struct gr_error *err)
{
	(void)e;
	(void)err;
	pthread_mutex_lock(&fake_mu);
	struct fake *f = fake_find(s->name, false);
	st->state = f ? f->state : INSTANCE_STOPPED;
	st->pid = st->state == INSTANCE_STOPPED ? 0 : 4242;
	if (st->state == INSTANCE_STOPPED)
		snprintf(st->stop_reason, sizeof(st->stop_reason), "exited with 0");
	pthread_mutex_unlock(&fake_mu);
	return 0;
}
/* exec: the command runs on the host with pipes (what a driver hands back). */
static int f_exec(const struct driver_env *e, const struct instance_spec *s, const struct exec_request *req,
		  struct exec_session *out, struct gr_error *err)
{
	(void)e;
	(void)s;
	int in[2], o[2], er[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "pipe");
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(o[1], 1);
		dup2(er[1], 2);
		execvp(req->argv[0], req->argv);
		_exit(127);
	}
	close(in[0]);
	close(o[1]);
	close(er[1]);
	*out = (struct exec_session){ .stdin_fd = in[1], .stdout_fd = o[0], .stderr_fd = er[0], .pty_fd = -1, .pid = pid };
	return 0;
}
static int f_console(const struct driver_env *e, const struct instance_spec *s, int *fd, struct gr_error *err)
{
	(void)e;
	(void)s;
	(void)fd;
	return gr_error_set(err, ENOTSUP, "no console");
}
static char log_file[128];
static int f_log_path(const struct driver_env *e, const struct instance_spec *s, char **path, struct gr_error *err)
{
	(void)e;
	(void)s;
	(void)err;
	*path = strdup(log_file);
	return 0;
}
static int f_scan(const struct driver_env *e, void (*found)(void *, const char *), void *opaque, struct gr_error *err)
{
	(void)e;
	(void)err;
	pthread_mutex_lock(&fake_mu);
	char names[MAX_FAKE][64];
	int n = 0;
	for (int i = 0; i < MAX_FAKE; i++)
		if (fakes[i].exists)
			snprintf(names[n++], 64, "%s", fakes[i].name);
	pthread_mutex_unlock(&fake_mu);
	for (int i = 0; i < n; i++)
		found(opaque, names[i]);
	return 0;
}

static const struct instance_driver fake_driver = {
	.type = "container", .validate = f_validate, .create = f_create, .start = f_start, .stop = f_stop,
	.pause = f_pause, .resume = f_resume, .remove = f_remove, .status = f_status, .exec = f_exec,
	.console = f_console, .log_path = f_log_path, .scan = f_scan,
};

const struct instance_driver *instance_driver_for(const char *type)
{
	return type && strcmp(type, "container") == 0 ? &fake_driver : NULL;
}

/* --- harness ----------------------------------------------------------------- */

static struct daemon D;
static char tmpdir[64];

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_instances.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(log_file, sizeof(log_file), "%s/console.log", tmpdir);
	struct gr_error err = { 0 };
	D.env.state_dir = tmpdir;
	D.env.run_dir = tmpdir;
	D.env.libexec_dir = tmpdir;
	pthread_mutex_init(&D.locks_mu, NULL);
	if (store_open(tmpdir, &D.store, &err) < 0 || events_init(&D, &err) < 0 || operations_init(&D, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	/* An image "busybox" in the store's tables (the fake driver needs no files). */
	struct store_image img = { .fingerprint = FAKE_FP, .architecture = "x86_64", .source = "test" };
	const char *aliases[] = { "busybox", NULL };
	if (image_store_open(tmpdir, D.store, &D.images, &err) < 0 ||
	    store_image_insert(D.store, &img, aliases, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	operations_free(&D);
	events_free(&D);
	image_store_close(D.images);
	store_close(D.store);
	struct gr_error err = { 0 };
	gr_rm_rf(tmpdir, &err);
	return 0;
}

struct resp {
	int status;                   /* HTTP status */
	json_t *env;                  /* the envelope */
	struct http_reply rp;
};

static void resp_clear(struct resp *r)
{
	if (r->rp.envelope)
		json_decref(r->rp.envelope);
	free(r->rp.raw_body);
	if (r->rp.ws)
		ws_relay_discard(r->rp.ws);
	memset(r, 0, sizeof(*r));
}

/* Calls the handler of method+path (route args filled like the server does). */
static struct resp call(const char *method, const char *path, const char *query, const char *body)
{
	const struct route *const tables[] = { instance_routes, snapshot_routes, NULL };
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", path);
	const struct route *r = NULL;
	const char *args[4] = { 0 };
	char allow[64];
	struct resp out = { 0 };
	int rc = route_lookup(tables, method, buf, &r, args, allow, sizeof(allow));
	if (rc < 0) {
		out.status = rc == -ENOENT ? 404 : 405;
		return out;
	}
	struct http_request rq = { .method = method, .path = path, .query = query ? query : "", .body = body ? body : "",
				   .body_len = body ? strlen(body) : 0 };
	memcpy(rq.route_args, args, sizeof(args));
	r->fn(&D, &rq, &out.rp);
	out.env = out.rp.envelope;
	if (out.rp.status)
		out.status = out.rp.status;
	else if (out.env) {
		const char *type = json_string_value(json_object_get(out.env, "type"));
		out.status = strcmp(type, "sync") == 0 ? 200 : strcmp(type, "async") == 0 ? 202
										 : (int)json_integer_value(json_object_get(out.env, "error_code"));
	}
	return out;
}

static const char *error_of(const struct resp *r)
{
	return json_string_value(json_object_get(r->env, "error"));
}

/* Waits for an async reply's operation; returns its final object (new ref). */
static json_t *wait_op(const struct resp *r)
{
	assert_int_equal(r->status, 202);
	const char *id = json_string_value(json_object_get(json_object_get(r->env, "metadata"), "id"));
	assert_non_null(id);
	for (int i = 0; i < 1000; i++) {
		struct operation *op = op_get(&D, id);
		assert_non_null(op);
		bool done = op_done(op);
		json_t *j = done ? op_json(op) : NULL;
		op_put(op);
		if (done)
			return j;
		usleep(10000);
	}
	fail_msg("operation %s did not end", id);
	return NULL;
}

static const char *op_status(json_t *op)
{
	return json_string_value(json_object_get(op, "status"));
}

#define REQ(var, ...) _cleanup_(resp_clear) struct resp var = call(__VA_ARGS__)

static void create(const char *name, bool start)
{
	char body[256];
	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"source\":{\"type\":\"image\",\"alias\":\"busybox\"},\"start\":%s}", name,
		 start ? "true" : "false");
	REQ(r, "POST", "/1.0/instances", NULL, body);
	gr_autojson json_t *op = wait_op(&r);
	assert_string_equal(op_status(op), "Success");
}

static const char *status_of(json_t *instance)
{
	return json_string_value(json_object_get(instance, "status"));
}

/* --- tests ----------------------------------------------------------------------- */

static void test_create_validation(void **state)
{
	(void)state;
	{
		REQ(r, "POST", "/1.0/instances", NULL, "{\"name\":\"Bad_Name\",\"source\":{\"alias\":\"busybox\"}}");
		assert_int_equal(r.status, 400);
		assert_non_null(strstr(error_of(&r), "instance name"));
	}
	{
		REQ(r, "POST", "/1.0/instances", NULL, "{\"name\":\"ok\",\"source\":{\"alias\":\"busybox\"},\"colour\":1}");
		assert_int_equal(r.status, 400);
		assert_non_null(strstr(error_of(&r), "unknown key \"colour\""));
	}
	{
		REQ(r, "POST", "/1.0/instances", NULL,
		    "{\"name\":\"ok\",\"source\":{\"alias\":\"busybox\"},\"config\":{\"limits.memory\":\"10 GB\"}}");
		assert_int_equal(r.status, 400);
		assert_non_null(strstr(error_of(&r), "limits.memory"));
	}
	{
		REQ(r, "POST", "/1.0/instances", NULL, "{\"name\":\"ok\",\"source\":{\"alias\":\"nosuch\"}}");
		assert_int_equal(r.status, 404);
		assert_non_null(strstr(error_of(&r), "image \"nosuch\" not found"));
	}
	{
		REQ(r, "POST", "/1.0/instances", NULL, "{\"name\":\"ok\"}");
		assert_int_equal(r.status, 400);
		assert_non_null(strstr(error_of(&r), "source"));
	}
	{
		REQ(r, "POST", "/1.0/instances", NULL, "{\"name\":\"ok\",\"source\":{\"alias\":\"busybox\"},\"command\":[1]}");
		assert_int_equal(r.status, 400);
		assert_non_null(strstr(error_of(&r), "command[0]"));
	}
	{
		REQ(r, "POST", "/1.0/instances", NULL, "{\"name\":\"ok\",\"type\":\"vm\",\"source\":{\"alias\":\"busybox\"}}");
		assert_int_equal(r.status, 400);
	}
	{
		REQ(r, "GET", "/1.0/instances/ok", NULL, NULL);
		assert_int_equal(r.status, 404);
	}
	{
		REQ(r, "GET", "/1.0/instances/..", NULL, NULL);
		assert_int_equal(r.status, 400);
	}
}

static void test_create_start_stop_delete(void **state)
{
	(void)state;
	create("c1", true);
	{
		REQ(r, "GET", "/1.0/instances/c1", NULL, NULL);
		assert_int_equal(r.status, 200);
		assert_string_equal(status_of(json_object_get(r.env, "metadata")), "Running");
	}
	{
		/* Name taken: 409 at once. */
		REQ(r, "POST", "/1.0/instances", NULL, "{\"name\":\"c1\",\"source\":{\"alias\":\"busybox\"}}");
		assert_int_equal(r.status, 409);
	}
	{
		REQ(r, "PUT", "/1.0/instances/c1/state", NULL, "{\"action\":\"start\"}");
		assert_int_equal(r.status, 409);
		assert_non_null(strstr(error_of(&r), "running"));
	}
	{
		REQ(r, "PUT", "/1.0/instances/c1/state", NULL, "{\"action\":\"resume\"}");
		assert_int_equal(r.status, 409);
	}
	{
		REQ(r, "PUT", "/1.0/instances/c1/state", NULL, "{\"action\":\"jump\"}");
		assert_int_equal(r.status, 400);
	}
	{
		REQ(r, "PUT", "/1.0/instances/c1/state", NULL, "{\"action\":\"stop\",\"timeout\":-5}");
		assert_int_equal(r.status, 400);
	}
	{
		REQ(r, "DELETE", "/1.0/instances/c1", NULL, NULL);
		assert_int_equal(r.status, 409);
	}
	{
		REQ(r, "PUT", "/1.0/instances/c1/state", NULL, "{\"action\":\"pause\"}");
		gr_autojson json_t *op = wait_op(&r);
		assert_string_equal(op_status(op), "Success");
	}
	{
		REQ(r, "GET", "/1.0/instances/c1/state", NULL, NULL);
		assert_string_equal(status_of(json_object_get(r.env, "metadata")), "Frozen");
	}
	{
		REQ(r, "PUT", "/1.0/instances/c1/state", NULL, "{\"action\":\"resume\"}");
		gr_autojson json_t *op = wait_op(&r);
		assert_string_equal(op_status(op), "Success");
	}
	{
		REQ(r, "PUT", "/1.0/instances/c1/state", NULL, "{\"action\":\"stop\",\"timeout\":7,\"force\":true}");
		gr_autojson json_t *op = wait_op(&r);
		assert_string_equal(op_status(op), "Success");
		assert_string_equal(last_stop, "c1");
		assert_int_equal(last_timeout, 7);
		assert_true(last_force);
	}
	{
		REQ(r, "GET", "/1.0/instances/c1/state", NULL, NULL);
		json_t *m = json_object_get(r.env, "metadata");
		assert_string_equal(status_of(m), "Stopped");
		assert_int_equal(json_integer_value(json_object_get(m, "pid")), 0);
	}
	{
		REQ(r, "PUT", "/1.0/instances/c1/state", NULL, "{\"action\":\"stop\"}");
		assert_int_equal(r.status, 409);
	}
	{
		REQ(r, "DELETE", "/1.0/instances/c1", NULL, NULL);
		gr_autojson json_t *op = wait_op(&r);
		assert_string_equal(op_status(op), "Success");
	}
	{
		REQ(r, "GET", "/1.0/instances/c1", NULL, NULL);
		assert_int_equal(r.status, 404);
	}
}

static void test_force_delete(void **state)
{
	(void)state;
	create("c2", true);
	int stops = n_stop;
	REQ(r, "DELETE", "/1.0/instances/c2", "force=1", NULL);
	gr_autojson json_t *op = wait_op(&r);
	assert_string_equal(op_status(op), "Success");
	assert_int_equal(n_stop, stops + 1);
	pthread_mutex_lock(&fake_mu);
	assert_null(fake_find("c2", false));
	pthread_mutex_unlock(&fake_mu);
}

static void test_create_rollback(void **state)
{
	(void)state;
	fail_start = 1;
	{
		REQ(r, "POST", "/1.0/instances", NULL, "{\"name\":\"c3\",\"source\":{\"alias\":\"busybox\"},\"start\":true}");
		gr_autojson json_t *op = wait_op(&r);
		assert_string_equal(op_status(op), "Failure");
		assert_non_null(strstr(json_string_value(json_object_get(op, "err")), "fake start failure"));
	}
	fail_start = 0;
	{
		REQ(r, "GET", "/1.0/instances/c3", NULL, NULL);
		assert_int_equal(r.status, 404);
	}
	pthread_mutex_lock(&fake_mu);
	assert_null(fake_find("c3", false));
	pthread_mutex_unlock(&fake_mu);
	fail_create = 1;
	{
		REQ(r, "POST", "/1.0/instances", NULL, "{\"name\":\"c3\",\"source\":{\"alias\":\"busybox\"}}");
		gr_autojson json_t *op = wait_op(&r);
		assert_string_equal(op_status(op), "Failure");
	}
	fail_create = 0;
	REQ(r, "GET", "/1.0/instances/c3", NULL, NULL);
	assert_int_equal(r.status, 404);
}

static void test_exec_recorded(void **state)
{
	(void)state;
	create("c4", true);
	{
		REQ(r, "POST", "/1.0/instances/c4/exec", NULL,
		    "{\"command\":[\"sh\",\"-c\",\"echo out; echo err >&2; printf '\\\\377'; exit 3\"]}");
		gr_autojson json_t *op = wait_op(&r);
		assert_string_equal(op_status(op), "Success");
		json_t *m = json_object_get(op, "metadata");
		assert_int_equal(json_integer_value(json_object_get(m, "return")), 3);
		assert_string_equal(json_string_value(json_object_get(m, "stdout")), "out\n\xef\xbf\xbd");
		assert_string_equal(json_string_value(json_object_get(m, "stderr")), "err\n");
	}
	{
		/* Killed by a signal: 128 + 9. */
		REQ(r, "POST", "/1.0/instances/c4/exec", NULL, "{\"command\":[\"sh\",\"-c\",\"kill -9 $$\"]}");
		gr_autojson json_t *op = wait_op(&r);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(op, "metadata"), "return")), 137);
	}
	{
		/* More than 1 MiB: capped. */
		REQ(r, "POST", "/1.0/instances/c4/exec", NULL, "{\"command\":[\"head\",\"-c\",\"3000000\",\"/dev/zero\"]}");
		gr_autojson json_t *op = wait_op(&r);
		json_t *m = json_object_get(op, "metadata");
		assert_int_equal(json_integer_value(json_object_get(m, "return")), 0);
		assert_int_equal(json_string_length(json_object_get(m, "stdout")), 1u << 20);
	}
	{
		REQ(r, "POST", "/1.0/instances/c4/exec", NULL, "{\"command\":[\"echo\",\"x\"],\"record-output\":false}");
		gr_autojson json_t *op = wait_op(&r);
		json_t *m = json_object_get(op, "metadata");
		assert_int_equal(json_integer_value(json_object_get(m, "return")), 0);
		assert_null(json_object_get(m, "stdout"));
	}
	{
		REQ(r, "POST", "/1.0/instances", NULL,
		    "{\"name\":\"d1\",\"source\":{\"alias\":\"busybox\"},\"description\":\"x\"}");
		assert_int_equal(r.status, 400);
		assert_non_null(strstr(error_of(&r), "description"));
	}
	{
		REQ(r, "POST", "/1.0/instances/c4/exec", NULL, "{\"command\":[]}");
		assert_int_equal(r.status, 400);
	}
	{
		REQ(r, "POST", "/1.0/instances/c4/exec", NULL, "{\"command\":[\"true\"],\"environment\":{\"A B\":\"x\"}}");
		assert_int_equal(r.status, 400);
	}
	{
		REQ(r, "POST", "/1.0/instances/c4/exec", NULL, "{\"command\":[\"true\"],\"bogus\":true}");
		assert_int_equal(r.status, 400);
		assert_non_null(strstr(error_of(&r), "bogus"));
	}
	REQ(s, "PUT", "/1.0/instances/c4/state", NULL, "{\"action\":\"stop\"}");
	json_decref(wait_op(&s));
	REQ(r, "POST", "/1.0/instances/c4/exec", NULL, "{\"command\":[\"true\"]}");
	assert_int_equal(r.status, 409);
}

static void test_list_and_logs(void **state)
{
	(void)state;
	create("l1", false);
	create("l2", false);
	{
		REQ(r, "GET", "/1.0/instances", NULL, NULL);
		json_t *m = json_object_get(r.env, "metadata");
		bool found = false;
		size_t i;
		json_t *v;
		json_array_foreach(m, i, v) if (strcmp(json_string_value(v), "/1.0/instances/l1") == 0) found = true;
		assert_true(found);
	}
	{
		REQ(r, "GET", "/1.0/instances", "recursion=1", NULL);
		json_t *m = json_object_get(r.env, "metadata");
		assert_true(json_array_size(m) >= 2);
		assert_non_null(json_object_get(json_array_get(m, 0), "status"));
	}
	struct gr_error err = { 0 };
	char rotated[160];
	snprintf(rotated, sizeof(rotated), "%s.1", log_file);
	assert_int_equal(gr_write_file_atomic(rotated, "old\n", 4, 0600, &err), 0);
	assert_int_equal(gr_write_file_atomic(log_file, "new\n", 4, 0600, &err), 0);
	REQ(r, "GET", "/1.0/instances/l1/logs", NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.rp.raw_len, 8);
	assert_memory_equal(r.rp.raw_body, "old\nnew\n", 8);
	REQ(f, "GET", "/1.0/instances/l1/logs", "follow=1", NULL);
	assert_int_equal(f.status, 400); /* not a WebSocket request */
}

static void test_reconcile(void **state)
{
	(void)state;
	/* A create interrupted by a crash: row "creating", workload made. */
	struct gr_error err = { 0 };
	struct store_instance in = { .name = "half", .type = "container", .image = FAKE_FP, .state = STORE_CREATING };
	assert_int_equal(store_instance_insert(D.store, &in, NULL, &err), 0);
	pthread_mutex_lock(&fake_mu);
	fake_find("half", true);
	/* A workload the database does not know. */
	fake_find("stranger", true)->state = INSTANCE_RUNNING;
	pthread_mutex_unlock(&fake_mu);
	/* An instance that died while gureumd was away. */
	create("died", true);
	f_set(&(struct instance_spec){ .name = "died" }, INSTANCE_STOPPED);
	int events_fd = -1;
	assert_int_equal(events_subscribe(&D, "lifecycle", &events_fd, &err), 0);
	assert_int_equal(reconcile(&D, &err), 0);
	struct store_instance *row = NULL;
	assert_int_equal(store_instance_get(D.store, "half", &row, &err), -ENOENT);
	pthread_mutex_lock(&fake_mu);
	assert_null(fake_find("half", false));
	assert_non_null(fake_find("stranger", false)); /* never touched */
	assert_int_equal(fake_find("stranger", false)->state, INSTANCE_RUNNING);
	pthread_mutex_unlock(&fake_mu);
	assert_int_equal(store_instance_get(D.store, "died", &row, &err), 0);
	assert_int_equal(row->state, STORE_STOPPED);
	assert_string_equal(row->stop_reason, "exited with 0");
	store_instance_free(row);
	char buf[8192] = "";
	usleep(50000);
	fcntl(events_fd, F_SETFL, O_NONBLOCK);
	ssize_t n = read(events_fd, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "instance-unknown"));
	assert_non_null(strstr(buf, "/1.0/instances/stranger"));
	close(events_fd);
}

/* A restore asked for while the instance is being deleted (or created) is a
 * 409: route_snapshot lets such an instance through without its driver. */
static void test_snapshot_restore_while_deleting(void **state)
{
	(void)state;
	create("snapbusy", false);
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/instances/snapbusy/snapshots/s1", tmpdir);
	struct gr_error err = { 0 };
	assert_int_equal(gr_mkdir_p(dir, 0700, &err), 0);
	char file[300];
	snprintf(file, sizeof(file), "%s/snapshot.json", dir);
	assert_int_equal(gr_write_file_atomic(file, "{\"name\":\"s1\"}", 13, 0600, &err), 0);
	assert_int_equal(store_instance_set_state(D.store, "snapbusy", STORE_DELETING, &err), 0);
	{
		REQ(r, "POST", "/1.0/instances/snapbusy/snapshots/s1/restore", NULL, NULL);
		assert_int_equal(r.status, 409);
		assert_non_null(strstr(error_of(&r), "being deleted"));
	}
	assert_int_equal(store_instance_set_state(D.store, "snapbusy", STORE_STOPPED, &err), 0);
	REQ(del, "DELETE", "/1.0/instances/snapbusy", NULL, NULL);
	gr_autojson json_t *op = wait_op(&del);
	assert_string_equal(op_status(op), "Success");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_validation),
		cmocka_unit_test(test_create_start_stop_delete),
		cmocka_unit_test(test_force_delete),
		cmocka_unit_test(test_create_rollback),
		cmocka_unit_test(test_exec_recorded),
		cmocka_unit_test(test_list_and_logs),
		cmocka_unit_test(test_reconcile),
		cmocka_unit_test(test_snapshot_restore_while_deleting),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
