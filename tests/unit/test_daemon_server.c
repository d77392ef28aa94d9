/* gureumd's server pieces without libwebsockets (api/http.c): envelope
 * builders, the errno mapping, route matching, JSON body errors, query
 * parameters. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/api/server.h"

static void reply_free(struct http_reply *rp)
{
	json_decref(rp->envelope);
	rp->envelope = NULL;
}

static void check_keys(json_t *e)
{
	static const char *const keys[] = { "type", "status", "status_code", "operation", "error_code", "error",
					    "metadata" };
	assert_int_equal(json_object_size(e), 7);
	for (size_t i = 0; i < 7; i++)
		assert_non_null(json_object_get(e, keys[i]));
}

static void test_envelope_sync(void **state)
{
	(void)state;
	struct http_reply rp = { 0 };
	reply_sync(&rp, json_pack("{s:i}", "a", 1));
	check_keys(rp.envelope);
	assert_string_equal(json_string_value(json_object_get(rp.envelope, "type")), "sync");
	assert_string_equal(json_string_value(json_object_get(rp.envelope, "status")), "Success");
	assert_int_equal(json_integer_value(json_object_get(rp.envelope, "status_code")), 200);
	assert_int_equal(json_integer_value(json_object_get(rp.envelope, "error_code")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(rp.envelope, "metadata"), "a")), 1);
	/* NULL metadata is JSON null; a second reply replaces the first */
	reply_sync(&rp, NULL);
	assert_true(json_is_null(json_object_get(rp.envelope, "metadata")));
	reply_free(&rp);
}

static void test_envelope_async(void **state)
{
	(void)state;
	struct http_reply rp = { 0 };
	reply_async(&rp, "0b1c", json_pack("{s:s}", "id", "0b1c"));
	check_keys(rp.envelope);
	assert_string_equal(json_string_value(json_object_get(rp.envelope, "type")), "async");
	assert_string_equal(json_string_value(json_object_get(rp.envelope, "status")), "Operation created");
	assert_int_equal(json_integer_value(json_object_get(rp.envelope, "status_code")), 100);
	assert_string_equal(json_string_value(json_object_get(rp.envelope, "operation")), "/1.0/operations/0b1c");
	reply_free(&rp);
}

static void test_envelope_error(void **state)
{
	(void)state;
	struct http_reply rp = { 0 };
	reply_error(&rp, 409, "instance %s is %s", "c1", "running");
	check_keys(rp.envelope);
	assert_string_equal(json_string_value(json_object_get(rp.envelope, "type")), "error");
	assert_string_equal(json_string_value(json_object_get(rp.envelope, "status")), "");
	assert_int_equal(json_integer_value(json_object_get(rp.envelope, "status_code")), 0);
	assert_int_equal(json_integer_value(json_object_get(rp.envelope, "error_code")), 409);
	assert_string_equal(json_string_value(json_object_get(rp.envelope, "error")), "instance c1 is running");
	assert_true(json_is_null(json_object_get(rp.envelope, "metadata")));
	/* a code that is not an HTTP error becomes 500 */
	reply_error(&rp, 200, "x");
	assert_int_equal(json_integer_value(json_object_get(rp.envelope, "error_code")), 500);
	reply_free(&rp);
}

static void test_errno_mapping(void **state)
{
	(void)state;
	static const struct {
		int e, code;
	} map[] = {
		{ ENOENT, 404 }, { EEXIST, 409 }, { EBUSY, 409 },  { EALREADY, 409 }, { EINVAL, 400 },
		{ E2BIG, 400 },  { ERANGE, 400 }, { EPERM, 403 },  { EACCES, 403 },   { ENOTSUP, 501 },
		{ EIO, 500 },    { ENOMEM, 500 }, { ENOSPC, 500 },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		struct http_reply rp = { 0 };
		struct gr_error err = { 0 };
		gr_error_set(&err, map[i].e, "failed with %d", map[i].e);
		reply_gr_error(&rp, -map[i].e, &err);
		assert_int_equal(json_integer_value(json_object_get(rp.envelope, "error_code")), map[i].code);
		assert_string_equal(json_string_value(json_object_get(rp.envelope, "error")), err.msg);
		reply_free(&rp);
	}
	/* no message: strerror */
	struct http_reply rp = { 0 };
	reply_gr_error(&rp, -ENOENT, NULL);
	assert_string_equal(json_string_value(json_object_get(rp.envelope, "error")), strerror(ENOENT));
	reply_free(&rp);
}

static void h_a(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	(void)d, (void)rq, (void)rp;
}
static void h_b(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	(void)d, (void)rq, (void)rp;
}

static const struct route t1[] = {
	{ "GET", "/", h_a },
	{ "GET", "/1.0/instances", h_a },
	{ "POST", "/1.0/instances", h_b },
	{ "GET", "/1.0/instances/{}", h_a },
	{ "DELETE", "/1.0/instances/{}", h_b },
	{ "PUT", "/1.0/instances/{}/state", h_b },
	{ 0 },
};
static const struct route t2[] = {
	{ "GET", "/1.0/operations/{}/wait", h_a },
	{ "GET", "/1.0/x/{}/y/{}", h_b },
	{ "GET", "/1.0/instances/{}/state", h_a },
	{ 0 },
};
static const struct route *const tables[] = { t1, t2, NULL };

static int lookup(const char *method, const char *path, const struct route **r, const char *args[4], char *allow)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	return route_lookup(tables, method, buf, r, args, allow, 64);
}

static void test_routes(void **state)
{
	(void)state;
	const struct route *r;
	const char *args[4];
	char allow[64];
	assert_int_equal(lookup("GET", "/", &r, args, allow), 0);
	assert_ptr_equal(r, &t1[0]);
	assert_int_equal(lookup("POST", "/1.0/instances", &r, args, allow), 0);
	assert_ptr_equal(r->fn, h_b);
	/* trailing slash */
	assert_int_equal(lookup("GET", "/1.0/instances/", &r, args, allow), 0);
	assert_ptr_equal(r, &t1[1]);
	/* one variable segment */
	assert_int_equal(lookup("GET", "/1.0/instances/c1", &r, args, allow), 0);
	assert_ptr_equal(r, &t1[3]);
	assert_string_equal(args[0], "c1");
	/* a later table */
	assert_int_equal(lookup("GET", "/1.0/instances/c2/state", &r, args, allow), 0);
	assert_ptr_equal(r, &t2[2]);
	assert_string_equal(args[0], "c2");
	assert_int_equal(lookup("GET", "/1.0/x/a/y/b", &r, args, allow), 0);
	assert_string_equal(args[0], "a");
	assert_string_equal(args[1], "b");
	/* 405 with every method of the path, across tables */
	assert_int_equal(lookup("POST", "/1.0/instances/c1/state", &r, args, allow), -EOPNOTSUPP);
	assert_string_equal(allow, "PUT, GET");
	assert_int_equal(lookup("PATCH", "/1.0/instances/c1", &r, args, allow), -EOPNOTSUPP);
	assert_string_equal(allow, "GET, DELETE");
	/* 404: unknown, too long, too short, empty segments */
	assert_int_equal(lookup("GET", "/1.0/nothing", &r, args, allow), -ENOENT);
	assert_int_equal(lookup("GET", "/1.0/instances/c1/state/x", &r, args, allow), -ENOENT);
	assert_int_equal(lookup("GET", "/1.0/x/a/y", &r, args, allow), -ENOENT);
	assert_int_equal(lookup("GET", "/1.0//c1", &r, args, allow), -ENOENT);
	assert_int_equal(lookup("GET", "/1.0/instances//", &r, args, allow), -ENOENT);
	assert_int_equal(lookup("GET", "relative", &r, args, allow), -ENOENT);
	assert_int_equal(lookup("GET", "/1.0/instances/c1/state/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o", &r, args, allow),
			 -ENOENT);
}

static int parse(const char *body, json_t **out, struct http_reply *rp)
{
	struct http_request rq = { .method = "POST", .path = "/", .query = "", .body = body,
				   .body_len = strlen(body) };
	return request_json(&rq, out, rp);
}

static const char *error_of(struct http_reply *rp)
{
	return json_string_value(json_object_get(rp->envelope, "error"));
}

static void test_request_json(void **state)
{
	(void)state;
	struct http_reply rp = { 0 };
	json_t *j = NULL;
	assert_int_equal(parse("{\"a\": [1, 2]}", &j, &rp), 0);
	assert_non_null(j);
	assert_null(rp.envelope);
	json_decref(j);

	assert_int_equal(parse("{\"a\": x}", &j, &rp), -EINVAL);
	assert_null(j);
	assert_int_equal(json_integer_value(json_object_get(rp.envelope, "error_code")), 400);
	assert_non_null(strstr(error_of(&rp), "line 1, column 7, position 7"));
	reply_free(&rp);

	assert_int_equal(parse("{\n\"a\": 1,\n\"a\": 2}", &j, &rp), -EINVAL);
	assert_non_null(strstr(error_of(&rp), "line 3"));
	assert_non_null(strstr(error_of(&rp), "duplicate"));
	reply_free(&rp);

	assert_int_equal(parse("[1]", &j, &rp), -EINVAL);
	assert_non_null(strstr(error_of(&rp), "JSON object"));
	reply_free(&rp);

	assert_int_equal(parse("", &j, &rp), -EINVAL);
	assert_non_null(strstr(error_of(&rp), "JSON object"));
	reply_free(&rp);

	/* NUL inside the body: jansson refuses it by position */
	struct http_request rq = { .method = "POST", .path = "/", .query = "", .body = "{\"a\":\0}", .body_len = 7 };
	assert_int_equal(request_json(&rq, &j, &rp), -EINVAL);
	assert_non_null(strstr(error_of(&rp), "position"));
	reply_free(&rp);
}

static void test_query(void **state)
{
	(void)state;
	char v[16];
	struct http_request rq = { .query = "force=1&recursion&timeout=2.5&name=a%20b%2Bc&x=&long=0123456789abcdefXYZ" };
	assert_int_equal(http_query_get(&rq, "force", v, sizeof(v)), 1);
	assert_string_equal(v, "1");
	assert_int_equal(http_query_get(&rq, "recursion", v, sizeof(v)), 1);
	assert_string_equal(v, "");
	assert_int_equal(http_query_get(&rq, "timeout", v, sizeof(v)), 1);
	assert_string_equal(v, "2.5");
	assert_int_equal(http_query_get(&rq, "name", v, sizeof(v)), 1);
	assert_string_equal(v, "a b+c");
	assert_int_equal(http_query_get(&rq, "x", v, sizeof(v)), 1);
	assert_string_equal(v, "");
	assert_int_equal(http_query_get(&rq, "missing", v, sizeof(v)), 0);
	assert_int_equal(http_query_get(&rq, "long", v, sizeof(v)), -E2BIG);
	assert_int_equal(http_query_get(&rq, "forc", v, sizeof(v)), 0);
	assert_true(http_query_bool(&rq, "force"));
	assert_true(http_query_bool(&rq, "recursion"));
	assert_false(http_query_bool(&rq, "timeout"));
	assert_false(http_query_bool(&rq, "missing"));
	struct http_request empty = { .query = "" };
	assert_int_equal(http_query_get(&empty, "a", v, sizeof(v)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_sync), cmocka_unit_test(test_envelope_async),
		cmocka_unit_test(test_envelope_error), cmocka_unit_test(test_errno_mapping),
		cmocka_unit_test(test_routes),        cmocka_unit_test(test_request_json),
		cmocka_unit_test(test_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
