/* gureumd's operations (operations.c) and event hub (events.c), without
 * the server: status transitions and codes, metadata, failure, cancel,
 * retention, the websocket class's relay hand-over, operation events, event
 * filters and the dropping of slow subscribers. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/api/server.h"
#include "daemon/events.h"
#include "daemon/operations.h"

static struct daemon g_d;

static int setup(void **state)
{
	(void)state;
	memset(&g_d, 0, sizeof(g_d));
	struct gr_error err = { 0 };
	assert_int_equal(events_init(&g_d, &err), 0);
	assert_int_equal(operations_init(&g_d, &err), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	operations_free(&g_d);
	assert_null(g_d.ops);
	events_free(&g_d);
	return 0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static json_t *wait_done(const char *id)
{
	struct operation *op = op_get(&g_d, id);
	assert_non_null(op);
	for (int i = 0; i < 5000 && !op_done(op); i++)
		usleep(1000);
	assert_true(op_done(op));
	json_t *j = op_json(op);
	op_put(op);
	return j;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int code(json_t *o)
{
	return (int)json_integer_value(json_object_get(o, "status_code"));
}

/* Reads one event line (blocking up to 5 s). */
static json_t *read_event(int fd)
{
	char line[8192];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) <= 0)
			return NULL;
		ssize_t r = read(fd, line + n, 1);
		if (r <= 0)
			return NULL;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	return json_loads(line, 0, NULL);
}

static int work_ok(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)d, (void)arg, (void)err;
	op_set_metadata(op, json_pack("{s:i}", "return", 0));
	return 0;
}

static void test_success(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	int evfd;
	assert_int_equal(events_subscribe(&g_d, "operation", &evfd, &err), 0);
	struct op_params p = { .description = "Doing it", .klass = "task", .instance = "c1", .fn = work_ok };
	const char *id;
	json_t *j;
	assert_int_equal(op_start(&g_d, &p, &id, &j, &err), 0);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(id[14], '4');   /* UUID v4 */
	assert_string_equal(str(j, "id"), id);
	assert_string_equal(str(j, "class"), "task");
	assert_string_equal(str(j, "description"), "Doing it");
	assert_int_equal(code(j), 103);
	assert_string_equal(str(j, "status"), "Running");
	assert_false(json_is_true(json_object_get(j, "may_cancel")));
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_object_get(j, "resources"), "instances"), 0)),
			    "/1.0/instances/c1");
	assert_non_null(strstr(str(j, "created_at"), "Z"));
	json_decref(j);
	char saved[37];
	snprintf(saved, sizeof(saved), "%s", id);
	j = wait_done(saved);
	assert_int_equal(code(j), 200);
	assert_string_equal(str(j, "status"), "Success");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "metadata"), "return")), 0);
	assert_string_equal(str(j, "err"), "");
	json_decref(j);

	/* events: created (Running), metadata, Success */
	const int want[] = { 103, 103, 200 };
	for (int i = 0; i < 3; i++) {
		json_t *ev = read_event(evfd);
		assert_non_null(ev);
		assert_string_equal(str(ev, "type"), "operation");
		assert_non_null(str(ev, "timestamp"));
		assert_string_equal(str(json_object_get(ev, "metadata"), "id"), saved);
		assert_int_equal(code(json_object_get(ev, "metadata")), want[i]);
		json_decref(ev);
	}
	close(evfd);

	/* listed */
	json_t *urls = operations_list(&g_d, false);
	char url[128];
	snprintf(url, sizeof(url), "/1.0/operations/%s", saved);
	assert_string_equal(json_string_value(json_array_get(urls, 0)), url);
	json_decref(urls);
	json_t *objs = operations_list(&g_d, true);
	assert_string_equal(str(json_array_get(objs, 0), "id"), saved);
	json_decref(objs);
}

static int work_fail(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)d, (void)op, (void)arg;
	return gr_error_set(err, EIO, "the disk is on fire");
}

static void test_failure(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct op_params p = { .description = "Failing", .fn = work_fail };
	const char *id;
	assert_int_equal(op_start(&g_d, &p, &id, NULL, &err), 0);
	json_t *j = wait_done(id);
	assert_int_equal(code(j), 400);
	assert_string_equal(str(j, "status"), "Failure");
	assert_string_equal(str(j, "err"), "the disk is on fire");
	assert_string_equal(str(j, "class"), "task");
	json_decref(j);
}

static int work_until_cancel(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)d, (void)arg;
	for (int i = 0; i < 10000; i++) {
		if (op_cancelled(op))
			return gr_error_set(err, ECANCELED, "cancelled");
		usleep(1000);
	}
	return 0;
}

static int freed_args;
static void free_arg(void *a)
{
	(void)a;
	freed_args++;
}

static void test_cancel(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct op_params p = { .description = "Long", .may_cancel = true, .fn = work_until_cancel,
			       .arg = &freed_args, .free_arg = free_arg };
	const char *id;
	assert_int_equal(op_start(&g_d, &p, &id, NULL, &err), 0);
	char saved[37];
	snprintf(saved, sizeof(saved), "%s", id);
	struct operation *op = op_get(&g_d, saved);
	json_t *j = op_json(op);
	assert_true(json_is_true(json_object_get(j, "may_cancel")));
	json_decref(j);
	assert_int_equal(op_cancel(&g_d, saved, &err), 0);
	j = wait_done(saved);
	assert_int_equal(code(j), 401);
	assert_string_equal(str(j, "status"), "Cancelled");
	json_decref(j);
	op_put(op);
	/* ended: cancelling again is refused, unknown ids too */
	assert_int_equal(op_cancel(&g_d, saved, &err), -EALREADY);
	assert_int_equal(op_cancel(&g_d, "nope", &err), -ENOENT);

	/* not cancellable */
	struct op_params q = { .description = "Stubborn", .may_cancel = false, .fn = work_until_cancel };
	assert_int_equal(op_start(&g_d, &q, &id, NULL, &err), 0);
	snprintf(saved, sizeof(saved), "%s", id);
	assert_int_equal(op_cancel(&g_d, saved, &err), -EPERM);
	assert_non_null(strstr(err.msg, "cannot be cancelled"));
	/* operations_free (teardown) cancels it anyway and waits for it */
}

static void test_retention(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct op_params p = { .description = "Quick", .fn = work_ok, .arg = &freed_args, .free_arg = free_arg };
	const char *id;
	int before = freed_args;
	assert_int_equal(op_start(&g_d, &p, &id, NULL, &err), 0);
	char saved[37];
	snprintf(saved, sizeof(saved), "%s", id);
	json_decref(wait_done(saved));
	uint64_t now = mono_ms();
	assert_int_equal(operations_purge(&g_d, now + 4 * 60 * 1000), 0);
	struct operation *op = op_get(&g_d, saved);
	assert_non_null(op);
	op_put(op);
	assert_int_equal(operations_purge(&g_d, now + 5 * 60 * 1000 + 1000), 1);
	assert_null(op_get(&g_d, saved));
	assert_int_equal(freed_args, before + 1);
}

struct ws_work {
	int timeout_ms;
	int wait_rc;
	int peer[2];                  /* the test's ends of the relay's pipes */
};

static int work_ws(struct daemon *d, struct operation *op, void *arg, struct gr_error *err)
{
	(void)d, (void)err;
	struct ws_work *w = arg;
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		return -errno;
	struct ws_relay *r = calloc(1, sizeof(*r));
	*r = (struct ws_relay){ .mode = WS_CHANNELS, .to_fd = -1, .from_fd = -1,
				.chan_fd = { in[1], out[0], -1 } };
	w->peer[0] = in[0];
	w->peer[1] = out[1];
	op_set_ws_relay(op, r);
	w->wait_rc = op_ws_wait(op, w->timeout_ms);
	return 0;
}

static void test_websocket_class(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	/* 1: a client takes the relay */
	struct ws_work w = { .timeout_ms = 5000, .wait_rc = 1 };
	struct op_params p = { .description = "Executing", .klass = "websocket", .fn = work_ws, .arg = &w };
	const char *id;
	json_t *j;
	assert_int_equal(op_start(&g_d, &p, &id, &j, &err), 0);
	char saved[37];
	snprintf(saved, sizeof(saved), "%s", id);
	const char *url = str(json_object_get(j, "metadata"), "websocket");
	assert_non_null(url);
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "/1.0/operations/%s/websocket?secret=", saved);
	assert_memory_equal(url, prefix, strlen(prefix));
	char secret[80];
	snprintf(secret, sizeof(secret), "%s", url + strlen(prefix));
	assert_int_equal(strlen(secret), 64);
	json_decref(j);

	struct operation *op = op_get(&g_d, saved);
	struct ws_relay *relay = NULL;
	assert_int_equal(op_ws_claim(op, "wrong", &relay), -EACCES);
	char almost[80];
	snprintf(almost, sizeof(almost), "%s", secret);
	almost[63] ^= 1;
	assert_int_equal(op_ws_claim(op, almost, &relay), -EACCES);
	int rc;
	for (int i = 0; i < 5000 && (rc = op_ws_claim(op, secret, &relay)) == 0; i++)
		usleep(1000);
	assert_int_equal(rc, 1);
	assert_non_null(relay);
	assert_int_equal(relay->mode, WS_CHANNELS);
	struct ws_relay *again = NULL;
	assert_int_equal(op_ws_claim(op, secret, &again), -EALREADY);
	assert_null(again);
	json_decref(wait_done(saved));
	assert_int_equal(w.wait_rc, 0);
	/* the relay's descriptors are ours now: they work */
	assert_int_equal(write(w.peer[1], "x", 1), 1);
	char c;
	assert_int_equal(read(relay->chan_fd[1], &c, 1), 1);
	ws_relay_discard(relay);
	close(w.peer[0]);
	close(w.peer[1]);
	op_put(op);

	/* 2: nobody comes: -ETIMEDOUT, the relay's descriptors are closed */
	struct ws_work w2 = { .timeout_ms = 50, .wait_rc = 1 };
	p.arg = &w2;
	assert_int_equal(op_start(&g_d, &p, &id, NULL, &err), 0);
	snprintf(saved, sizeof(saved), "%s", id);
	json_decref(wait_done(saved));
	assert_int_equal(w2.wait_rc, -ETIMEDOUT);
	char buf[4];
	assert_int_equal(read(w2.peer[0], buf, sizeof(buf)), 0);   /* EOF: the write end is closed */
	close(w2.peer[0]);
	close(w2.peer[1]);
	op = op_get(&g_d, saved);
	snprintf(secret, sizeof(secret), "%s", op_ws_secret(op));
	assert_int_equal(op_ws_claim(op, secret, &relay), -ENOENT);
	op_put(op);

	/* a task has no websocket */
	struct op_params t = { .description = "Task", .fn = work_ok };
	assert_int_equal(op_start(&g_d, &t, &id, NULL, &err), 0);
	op = op_get(&g_d, id);
	assert_string_equal(op_ws_secret(op), "");
	assert_int_equal(op_ws_claim(op, "", &relay), -ENOENT);
	op_put(op);
}

static void test_event_filter(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	unsigned m;
	assert_int_equal(events_parse_filter("", &m, &err), 0);
	assert_int_equal(m, 7);
	assert_int_equal(events_parse_filter("lifecycle", &m, &err), 0);
	assert_int_equal(m, 1);
	assert_int_equal(events_parse_filter("operation,lifecycle", &m, &err), 0);
	assert_int_equal(m, 3);
	assert_int_equal(events_parse_filter("lifecycle,nope", &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'nope'"));
	assert_int_equal(events_parse_filter("lifecycl", &m, &err), -EINVAL);

	int lfd, ofd;
	assert_int_equal(events_subscribe(&g_d, "lifecycle", &lfd, &err), 0);
	assert_int_equal(events_subscribe(&g_d, "operation", &ofd, &err), 0);
	events_emit(&g_d, "lifecycle", json_pack("{s:s}", "action", "instance-started"));
	events_emit(&g_d, "operation", json_pack("{s:s}", "id", "x"));
	json_t *ev = read_event(lfd);
	assert_string_equal(str(json_object_get(ev, "metadata"), "action"), "instance-started");
	json_decref(ev);
	ev = read_event(ofd);
	assert_string_equal(str(json_object_get(ev, "metadata"), "id"), "x");
	json_decref(ev);
	/* nothing else arrived on either */
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = ofd, .events = POLLIN } };
	assert_int_equal(poll(p, 2, 50), 0);
	close(lfd);
	close(ofd);
	/* readers gone: the next emit drops both */
	events_emit(&g_d, "lifecycle", NULL);
	events_emit(&g_d, "operation", NULL);
	assert_int_equal(events_subscribers(&g_d), 0);
}

static void test_slow_subscriber_dropped(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	int slow, fast;
	assert_int_equal(events_subscribe(&g_d, "", &slow, &err), 0);
	assert_int_equal(events_subscribe(&g_d, "", &fast, &err), 0);
	int cap = fcntl(slow, F_GETPIPE_SZ);
	assert_true(cap >= 64 * 1024);
	char big[4000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	int sent = 0;
	char drain[65536];
	while (events_subscribers(&g_d) == 2 && sent < 100000) {
		events_emit(&g_d, "logging", json_pack("{s:s}", "message", big));
		sent++;
		while (read(fast, drain, sizeof(drain)) > 0)   /* the fast one keeps up */
			;
	}
	assert_int_equal(events_subscribers(&g_d), 1);
	/* the pipe holds cap bytes in page-sized slots: a 4000-byte line takes one */
	assert_true((size_t)sent * 4096 >= (size_t)cap);
	/* the slow one reads what fit, then EOF */
	ssize_t n, total = 0;
	while ((n = read(slow, drain, sizeof(drain))) > 0)
		total += n;
	assert_int_equal(n, 0);
	assert_true(total > 0 && total <= cap);
	close(slow);
	/* the fast one still gets events */
	events_emit(&g_d, "lifecycle", json_pack("{s:s}", "action", "after"));
	json_t *ev = read_event(fast);
	assert_non_null(ev);
	assert_string_equal(str(json_object_get(ev, "metadata"), "action"), "after");
	json_decref(ev);
	close(fast);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);     /* as gureumd does (events.h) */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_websocket_class, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_subscriber_dropped, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
