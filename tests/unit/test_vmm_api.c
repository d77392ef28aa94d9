/* Unit tests for src/vmm/api.c: the control API served on a temporary unix
 * socket with fake callbacks, driven by real HTTP requests from a tiny client
 * written with plain sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/kvm.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "vmm/api.h"

/* ---- fake VM ---- */

struct fake_vm {
	enum vmm_api_state state;
	int pauses, resumes, stops, metrics_calls;
	unsigned int stop_timeout_ms;
	bool fail_metrics;
};

static int fake_status(void *o, struct vmm_api_status *st, struct gr_error *err)
{
	(void)err;
	struct fake_vm *f = o;
	*st = (struct vmm_api_status){ .state = f->state, .vcpus = 2, .memory = 256ULL << 20, .uptime = 1.5 };
	return 0;
}

static int fake_pause(void *o, struct gr_error *err)
{
	struct fake_vm *f = o;
	if (f->state != VMM_API_RUNNING)
		return gr_error_set(err, EBUSY, "the VM is not running");
	f->state = VMM_API_PAUSED;
	f->pauses++;
	return 0;
}

static int fake_resume(void *o, struct gr_error *err)
{
	struct fake_vm *f = o;
	if (f->state != VMM_API_PAUSED)
		return gr_error_set(err, EBUSY, "the VM is not paused");
	f->state = VMM_API_RUNNING;
	f->resumes++;
	return 0;
}

static int fake_stop(void *o, unsigned int timeout_ms, struct gr_error *err)
{
	struct fake_vm *f = o;
	f->stop_timeout_ms = timeout_ms;
	if (f->state == VMM_API_STOPPING)
		return gr_error_set(err, EALREADY, "the VM is already stopping");
	f->state = VMM_API_STOPPING;
	f->stops++;
	return 0;
}

static int fake_metrics(void *o, json_t *m, struct gr_error *err)
{
	struct fake_vm *f = o;
	f->metrics_calls++;
	if (f->fail_metrics)
		return gr_error_set(err, EIO, "device table unavailable");
	uint64_t counts[64] = { 0 };
	counts[KVM_EXIT_IO] = 42;
	counts[KVM_EXIT_MMIO] = 7;
	counts[KVM_EXIT_HLT] = 1;
	counts[60] = 3;
	if (vmm_api_metrics_add_exits(m, counts, 64) < 0)
		return gr_error_set(err, ENOMEM, "out of memory");
	json_object_set_new(m, "devices", json_pack("{s:{s:i,s:i}}", "serial", "writes", 10, "reads", 0));
	return 0;
}

static const struct vmm_api_ops fake_ops = {
	.get_status = fake_status, .pause = fake_pause, .resume = fake_resume,
	.stop = fake_stop, .get_metrics = fake_metrics,
};

struct fx {
	char dir[64];
	char path[128];
	struct fake_vm vm;
	struct vmm_api *api;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct gr_error err = { 0 };
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/gr-api-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/api.sock", f->dir);
	if (vmm_api_open(f->path, &fake_ops, &f->vm, &f->api, &err) < 0) {
		fprintf(stderr, "vmm_api_open: %s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	vmm_api_close(f->api);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- a tiny HTTP client ---- */

struct resp {
	int status;
	char headers[2048];
	char body[8192];
	json_t *json;
};

static int client_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return; /* the server may close early (413) */
		buf += w;
		n -= (size_t)w;
	}
}

/* Reads the whole response (the server closes: we send Connection: close). */
static void read_response(int fd, struct resp *r)
{
	static char raw[16384];
	size_t n = 0;
	for (;;) {
		ssize_t k = recv(fd, raw + n, sizeof(raw) - 1 - n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (n == sizeof(raw) - 1)
			break;
	}
	raw[n] = '\0';
	memset(r, 0, sizeof(*r));
	assert_true(sscanf(raw, "HTTP/1.1 %d ", &r->status) == 1);
	char *sep = strstr(raw, "\r\n\r\n");
	assert_non_null(sep);
	size_t hl = (size_t)(sep - raw);
	assert_true(hl < sizeof(r->headers));
	memcpy(r->headers, raw, hl);
	snprintf(r->body, sizeof(r->body), "%s", sep + 4);
	if (r->body[0])
		r->json = json_loads(r->body, 0, NULL);
}

static void request_raw(const char *path, const char *raw, size_t n, struct resp *r)
{
	gr_autoclose int fd = client_connect(path);
	send_all(fd, raw, n);
	read_response(fd, r);
}

static void request(struct fx *f, const char *method, const char *url, const char *body, struct resp *r)
{
	char buf[16384];
	int n;
	if (body)
		n = snprintf(buf, sizeof(buf),
			     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n%s",
			     method, url, strlen(body), body);
	else
		n = snprintf(buf, sizeof(buf), "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", method,
			     url);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	request_raw(f->path, buf, (size_t)n, r);
}

static void resp_free(struct resp *r)
{
	json_decref(r->json);
	r->json = NULL;
}

static const char *error_of(struct resp *r)
{
	assert_non_null(r->json);
	const char *e = json_string_value(json_object_get(r->json, "error"));
	assert_non_null(e);
	return e;
}

static void assert_error(struct fx *f, const char *method, const char *url, const char *body, int status,
			 const char *needle)
{
	struct resp r;
	request(f, method, url, body, &r);
	if (r.status != status || !strstr(error_of(&r), needle))
		fprintf(stderr, "%s %s: got %d %s\n", method, url, r.status, r.body);
	assert_int_equal(r.status, status);
	assert_non_null(strstr(r.headers, "application/json"));
	assert_non_null(strstr(error_of(&r), needle));
	resp_free(&r);
}

/* ---- routes ---- */

static void test_get_vm(void **state)
{
	struct fx *f = *state;
	struct resp r;
	request(f, "GET", "/vm", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers, "Content-Type: application/json"));
	assert_non_null(r.json);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "running");
	assert_int_equal(json_integer_value(json_object_get(r.json, "vcpus")), 2);
	assert_int_equal(json_integer_value(json_object_get(r.json, "memory")), 256 << 20);
	assert_true(json_real_value(json_object_get(r.json, "uptime")) == 1.5);
	assert_int_equal(json_object_size(r.json), 4);
	resp_free(&r);
}

static void test_actions(void **state)
{
	struct fx *f = *state;
	struct resp r;
	request(f, "PUT", "/vm/actions", "{\"action\":\"pause\"}", &r);
	assert_int_equal(r.status, 204);
	assert_string_equal(r.body, "");
	assert_int_equal(f->vm.pauses, 1);
	request(f, "GET", "/vm", NULL, &r);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "paused");
	resp_free(&r);

	/* Not possible in this state: 409 with the callback's message. */
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"pause\"}", 409, "pause: the VM is not running");

	request(f, "PUT", "/vm/actions", " { \"action\" : \"resume\" } ", &r);
	assert_int_equal(r.status, 204);
	assert_int_equal(f->vm.resumes, 1);
	request(f, "GET", "/vm", NULL, &r);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "running");
	resp_free(&r);

	request(f, "PUT", "/vm/actions", "{\"action\":\"stop\"}", &r);
	assert_int_equal(r.status, 202);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "stopping");
	resp_free(&r);
	assert_int_equal(f->vm.stops, 1);
	assert_int_equal(f->vm.stop_timeout_ms, VMM_API_STOP_TIMEOUT_DEFAULT_MS); /* no timeout: the default */
	request(f, "GET", "/vm", NULL, &r);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "stopping");
	resp_free(&r);
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"stop\"}", 409, "already stopping");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"resume\"}", 409, "not paused");
}

static void test_stop_timeout(void **state)
{
	struct fx *f = *state;
	static const struct { const char *body; unsigned int ms; } ok[] = {
		{ "{\"action\":\"stop\",\"timeout\":0}", 0 },
		{ "{\"timeout\":2.5,\"action\":\"stop\"}", 2500 },
		{ "{\"action\":\"stop\",\"timeout\":0.0004}", 0 },
		{ "{\"action\":\"stop\",\"timeout\":3600}", 3600000 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct resp r;
		f->vm.state = VMM_API_RUNNING;
		request(f, "PUT", "/vm/actions", ok[i].body, &r);
		assert_int_equal(r.status, 202);
		resp_free(&r);
		assert_int_equal(f->vm.stop_timeout_ms, ok[i].ms);
	}
	int stops = f->vm.stops;
	f->vm.state = VMM_API_RUNNING;
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"stop\",\"timeout\":-1}", 400,
		     "timeout: expected a number of seconds from 0 to 3600, got -1");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"stop\",\"timeout\":3600.5}", 400, "from 0 to 3600");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"stop\",\"timeout\":1e300}", 400, "from 0 to 3600");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"stop\",\"timeout\":\"10\"}", 400, "got \"10\"");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"stop\",\"timeout\":null}", 400, "got null");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"pause\",\"timeout\":1}", 400, "only the stop action");
	assert_int_equal(f->vm.stops, stops);
	assert_int_equal(f->vm.pauses, 0);
}

static void test_metrics(void **state)
{
	struct fx *f = *state;
	struct resp r;
	request(f, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(r.json);
	json_t *ex = json_object_get(r.json, "vm_exits");
	assert_int_equal(json_integer_value(json_object_get(ex, "io")), 42);
	assert_int_equal(json_integer_value(json_object_get(ex, "mmio")), 7);
	assert_int_equal(json_integer_value(json_object_get(ex, "hlt")), 1);
	assert_int_equal(json_integer_value(json_object_get(ex, "exit_60")), 3);
	assert_int_equal(json_object_size(ex), 4); /* zero counts are left out */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(r.json, "devices"), "serial"),
							   "writes")), 10);
	resp_free(&r);

	f->vm.fail_metrics = true;
	assert_error(f, "GET", "/metrics", NULL, 500, "metrics: device table unavailable");
}

static void test_exit_names(void **state)
{
	(void)state;
	assert_string_equal(vmm_api_exit_reason_name(KVM_EXIT_IO), "io");
	assert_string_equal(vmm_api_exit_reason_name(KVM_EXIT_SYSTEM_EVENT), "system_event");
	assert_string_equal(vmm_api_exit_reason_name(KVM_EXIT_INTERNAL_ERROR), "internal_error");
	assert_null(vmm_api_exit_reason_name(19)); /* PAPR: not x86 */
	assert_null(vmm_api_exit_reason_name(1000));
}

/* ---- errors ---- */

static void test_not_found(void **state)
{
	struct fx *f = *state;
	assert_error(f, "GET", "/", NULL, 404, "no such route: /");
	assert_error(f, "GET", "/vm/", NULL, 404, "no such route: /vm/");
	assert_error(f, "GET", "/machine-config", NULL, 404, "/machine-config");
	assert_error(f, "PUT", "/vm/action", "{\"action\":\"stop\"}", 404, "/vm/action");
	assert_int_equal(f->vm.stops, 0);
}

static void test_method_not_allowed(void **state)
{
	struct fx *f = *state;
	struct resp r;
	request(f, "POST", "/vm", "{}", &r);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.headers, "Allow: GET"));
	assert_non_null(strstr(error_of(&r), "method POST is not allowed on /vm"));
	resp_free(&r);
	request(f, "GET", "/vm/actions", NULL, &r);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.headers, "Allow: PUT"));
	resp_free(&r);
	assert_error(f, "DELETE", "/metrics", NULL, 405, "DELETE");
	assert_error(f, "POST", "/vm/actions", "{\"action\":\"stop\"}", 405, "use PUT");
	assert_int_equal(f->vm.stops, 0);
}

static void test_bad_json(void **state)
{
	struct fx *f = *state;
	assert_error(f, "PUT", "/vm/actions", "{\"action\": pause}", 400, "malformed JSON at line 1, column 16 (byte 16)");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"pause\"", 400, "malformed JSON");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"pause\"}}", 400, "byte 19");
	assert_error(f, "PUT", "/vm/actions", "\"pause\"", 400, "must be a JSON object");
	assert_error(f, "PUT", "/vm/actions", "[]", 400, "must be a JSON object");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"pause\",\"action\":\"stop\"}", 400, "duplicate");
	assert_int_equal(f->vm.pauses + f->vm.stops, 0);
}

static void test_bad_fields(void **state)
{
	struct fx *f = *state;
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"reboot\"}", 400, "unknown action \"reboot\"");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"pause\",\"force\":true}", 400, "unknown key \"force\"");
	assert_error(f, "PUT", "/vm/actions", "{\"action_type\":\"Pause\"}", 400, "unknown key \"action_type\"");
	assert_error(f, "PUT", "/vm/actions", "{}", 400, "missing key \"action\"");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":1}", 400, "action: expected a string, got 1");
	assert_error(f, "PUT", "/vm/actions", "{\"action\":\"PAUSE\"}", 400, "unknown action \"PAUSE\"");
	assert_error(f, "PUT", "/vm/actions", "", 400, "needs a body");
	assert_error(f, "GET", "/vm", "{}", 400, "takes no body");
	assert_int_equal(f->vm.pauses + f->vm.stops, 0);
}

static void test_body_limit(void **state)
{
	struct fx *f = *state;
	/* Exactly 4096 bytes: accepted. */
	static char body[VMM_API_MAX_BODY + 2];
	const char *doc = "{\"action\":\"pause\"}";
	memset(body, ' ', VMM_API_MAX_BODY);
	memcpy(body, doc, strlen(doc));
	body[VMM_API_MAX_BODY] = '\0';
	struct resp r;
	request(f, "PUT", "/vm/actions", body, &r);
	assert_int_equal(r.status, 204);
	assert_int_equal(f->vm.pauses, 1);
	/* One more byte: 413, and the callback is not reached. */
	body[VMM_API_MAX_BODY] = ' ';
	body[VMM_API_MAX_BODY + 1] = '\0';
	memcpy(body, "{\"action\":\"resume\"}", 19);
	assert_error(f, "PUT", "/vm/actions", body, 413, "larger than 4096 bytes");
	/* A huge declared length is refused before any body is read. */
	const char *big = "PUT /vm/actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 99999999999\r\n\r\n";
	request_raw(f->path, big, strlen(big), &r);
	assert_int_equal(r.status, 413);
	resp_free(&r);
	/* Chunked, so no Content-Length: refused while reading. */
	char chunked[16384];
	size_t n = (size_t)snprintf(chunked, sizeof(chunked),
				    "PUT /vm/actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 5; i++) {
		n += (size_t)snprintf(chunked + n, sizeof(chunked) - n, "400\r\n");
		memset(chunked + n, ' ', 0x400);
		n += 0x400;
		n += (size_t)snprintf(chunked + n, sizeof(chunked) - n, "\r\n");
	}
	n += (size_t)snprintf(chunked + n, sizeof(chunked) - n, "0\r\n\r\n");
	request_raw(f->path, chunked, n, &r);
	assert_int_equal(r.status, 413);
	assert_non_null(strstr(error_of(&r), "larger than 4096"));
	resp_free(&r);
	assert_int_equal(f->vm.resumes, 0);
	/* The server still answers. */
	request(f, "GET", "/vm", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

/* ---- concurrency ---- */

struct client_arg {
	const char *path;
	int ok;
};

static void *client_thread(void *p)
{
	struct client_arg *a = p;
	const char *req = "GET /vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	for (int i = 0; i < 50; i++) {
		struct resp r;
		request_raw(a->path, req, strlen(req), &r);
		if (r.status == 200 && r.json && json_object_get(r.json, "vcpus"))
			a->ok++;
		resp_free(&r);
	}
	return NULL;
}

static void test_two_clients(void **state)
{
	struct fx *f = *state;
	/* A slow client holding a half-sent request does not block another one. */
	gr_autoclose int slow = client_connect(f->path);
	const char *part = "PUT /vm/actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 17\r\n\r\n{\"action\"";
	send_all(slow, part, strlen(part));
	struct resp r;
	request(f, "GET", "/vm", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	send_all(slow, ":\"stop\"}", 8);
	read_response(slow, &r);
	assert_int_equal(r.status, 202);
	resp_free(&r);
	assert_int_equal(f->vm.stops, 1);

	/* Two clients hammering at once. */
	struct client_arg a = { f->path, 0 }, b = { f->path, 0 };
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, client_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, client_thread, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.ok, 50);
	assert_int_equal(b.ok, 50);
}

/* ---- the socket file ---- */

static void test_socket_mode_and_removal(void **state)
{
	(void)state;
	char dir[] = "/tmp/gr-api-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/s", dir);
	mode_t old = umask(0); /* the mode must not depend on the umask */
	struct fake_vm vm = { 0 };
	struct vmm_api *api = NULL;
	struct gr_error err = { 0 };
	assert_int_equal(vmm_api_open(path, &fake_ops, &vm, &api, &err), 0);
	umask(old);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	vmm_api_close(api);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(rmdir(dir), 0);
}

static void test_stale_socket_replaced(void **state)
{
	(void)state;
	char dir[] = "/tmp/gr-api-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/s", dir);
	/* A socket file left by a dead process: bound, never listening, closed. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	struct fake_vm vm = { 0 };
	struct vmm_api *api = NULL;
	struct gr_error err = { 0 };
	assert_int_equal(vmm_api_open(path, &fake_ops, &vm, &api, &err), 0);
	struct resp r;
	const char *req = "GET /vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	request_raw(path, req, strlen(req), &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	vmm_api_close(api);
	assert_int_equal(rmdir(dir), 0);
}

static void test_live_socket_refused(void **state)
{
	struct fx *f = *state;
	struct fake_vm vm2 = { 0 };
	struct vmm_api *api2 = NULL;
	struct gr_error err = { 0 };
	assert_int_equal(vmm_api_open(f->path, &fake_ops, &vm2, &api2, &err), -EADDRINUSE);
	assert_null(api2);
	assert_non_null(strstr(err.msg, "another process is listening"));
	assert_non_null(strstr(err.msg, f->path));
	/* The first server is untouched. */
	struct resp r;
	request(f, "GET", "/vm", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

static void test_bad_paths(void **state)
{
	(void)state;
	char dir[] = "/tmp/gr-api-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/file", dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("keep me", fp);
	fclose(fp);
	struct fake_vm vm = { 0 };
	struct vmm_api *api = NULL;
	struct gr_error err = { 0 };
	/* A regular file is never removed. */
	assert_int_equal(vmm_api_open(path, &fake_ops, &vm, &api, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "not a socket"));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 7);
	unlink(path);
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(vmm_api_open(longp, &fake_ops, &vm, &api, &err), -ENAMETOOLONG);
	snprintf(path, sizeof(path), "%s/no/such/dir/s", dir);
	assert_int_equal(vmm_api_open(path, &fake_ops, &vm, &api, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "bind"));
	struct vmm_api_ops partial = fake_ops;
	partial.stop = NULL;
	snprintf(path, sizeof(path), "%s/s", dir);
	assert_int_equal(vmm_api_open(path, &partial, &vm, &api, &err), -EINVAL);
	assert_int_equal(rmdir(dir), 0);
	vmm_api_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_vm, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_actions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stop_timeout, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_metrics, fx_setup, fx_teardown),
		cmocka_unit_test(test_exit_names),
		cmocka_unit_test_setup_teardown(test_not_found, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_method_not_allowed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_json, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_fields, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_body_limit, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_two_clients, fx_setup, fx_teardown),
		cmocka_unit_test(test_socket_mode_and_removal),
		cmocka_unit_test(test_stale_socket_replaced),
		cmocka_unit_test_setup_teardown(test_live_socket_refused, fx_setup, fx_teardown),
		cmocka_unit_test(test_bad_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
