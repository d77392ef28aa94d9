/* The engine's control client (src/daemon/supervisor/qmp.c, engine.h) on
 * gureum-vmm's API transport: the request it sends, the answers it takes
 * (split, with or without a body, refusals, not HTTP), the blocking
 * engine_ctl_execute against a fake API server, and run-engine's
 * --vmm-api option. (QMP has its tests in test_supervisor.c.) No timing
 * assumptions: the one timeout exercised is the caller's own bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/supervisor/engine.h"

#define WAIT_MS 20000

static void peer_send(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void api_pair(struct qmp_client *q, int *peer, const char *action, int timeout_s)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	vmm_api_client_init(q, sv[0], action, timeout_s);
	*peer = sv[1];
}

/* Everything the client sent so far. */
static char *peer_recv(int fd, char *buf, size_t n)
{
	ssize_t k = recv(fd, buf, n - 1, MSG_DONTWAIT);
	buf[k > 0 ? k : 0] = '\0';
	return buf;
}

static void test_request(void **state)
{
	(void)state;
	static struct qmp_client q;
	int peer;
	char buf[512];
	api_pair(&q, &peer, "stop", 30);
	assert_int_equal(q.transport, ENGINE_CTL_VMM_API);
	assert_int_equal(q.events, POLLOUT);
	/* Sent at the first chance; then it waits for the answer. */
	assert_int_equal(qmp_client_io(&q, POLLOUT), POLLIN);
	assert_string_equal(peer_recv(peer, buf, sizeof(buf)),
			    "PUT /vm/actions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
			    "Content-Length: 30\r\nConnection: close\r\n\r\n{\"action\":\"stop\",\"timeout\":30}");
	/* 202 with a body, in pieces. */
	peer_send(peer, "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n");
	assert_int_equal(qmp_client_io(&q, POLLIN), POLLIN);
	assert_int_equal(q.state, QMP_COMMAND);
	peer_send(peer, "content-length: 20\r\n\r\n{\"state\":");
	assert_int_equal(qmp_client_io(&q, POLLIN), POLLIN);
	peer_send(peer, "\"stopping\"}");
	assert_int_equal(qmp_client_io(&q, POLLIN), 0);
	assert_int_equal(q.state, QMP_DONE);
	assert_int_equal(q.http_status, 202);
	qmp_client_close(&q);
	close(peer);

	/* A stop's timeout is capped at gureum-vmm's 3600 s; pause and resume have none. */
	api_pair(&q, &peer, "stop", 100000);
	qmp_client_io(&q, POLLOUT);
	assert_non_null(strstr(peer_recv(peer, buf, sizeof(buf)), "{\"action\":\"stop\",\"timeout\":3600}"));
	qmp_client_close(&q);
	close(peer);
	api_pair(&q, &peer, "pause", -1);
	qmp_client_io(&q, POLLOUT);
	assert_non_null(strstr(peer_recv(peer, buf, sizeof(buf)), "Content-Length: 18\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n{\"action\":\"pause\"}"));
	qmp_client_close(&q);
	close(peer);
}

/* The answer alone, as it arrived in q.in. */
static enum qmp_state answer(struct qmp_client *q, const char *text, bool eof)
{
	memset(q, 0, sizeof(*q));
	q->fd = -1;
	q->transport = ENGINE_CTL_VMM_API;
	q->state = QMP_COMMAND;
	snprintf(q->command, sizeof(q->command), "pause");
	size_t n = strlen(text);
	memcpy(q->in, text, n);
	q->in_len = n;
	return vmm_api_client_answer(q, eof);
}

static void test_answers(void **state)
{
	(void)state;
	static struct qmp_client q;
	/* 204: no body to wait for. */
	assert_int_equal(answer(&q, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", false), QMP_DONE);
	assert_int_equal(q.http_status, 204);
	/* 200 without Content-Length: the body runs to the end of the connection. */
	assert_int_equal(answer(&q, "HTTP/1.1 200 OK\r\n\r\n{}", false), QMP_COMMAND);
	assert_int_equal(answer(&q, "HTTP/1.1 200 OK\r\n\r\n{}", true), QMP_DONE);
	/* Headers not complete yet. */
	assert_int_equal(answer(&q, "HTTP/1.1 204 No Con", false), QMP_COMMAND);
	/* Refusals: the API's error, an errno for its status. */
	assert_int_equal(answer(&q, "HTTP/1.1 409 Conflict\r\nContent-Length: 27\r\n\r\n{\"error\":\"already paused\"}\n",
				false), QMP_FAILED);
	assert_int_equal(q.err.code, EBUSY);
	assert_string_equal(q.err.msg, "gureum-vmm's API: pause refused (409): already paused");
	assert_int_equal(answer(&q, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 9\r\n\r\nno json\r\n", false),
			 QMP_FAILED);
	assert_int_equal(q.err.code, EIO);
	assert_non_null(strstr(q.err.msg, "refused (500): no json"));
	/* Not HTTP; nothing; cut short. */
	assert_int_equal(answer(&q, "{\"QMP\": {}}\r\n\r\n", false), QMP_FAILED);
	assert_int_equal(q.err.code, EPROTO);
	assert_non_null(strstr(q.err.msg, "not an HTTP answer to pause"));
	assert_int_equal(answer(&q, "HTTP/1.1 2x0 OK\r\n\r\n", false), QMP_FAILED);
	assert_int_equal(q.err.code, EPROTO);
	assert_int_equal(answer(&q, "", true), QMP_FAILED);
	assert_int_equal(q.err.code, ECONNRESET);
	assert_non_null(strstr(q.err.msg, "closed without an answer to pause"));
	assert_int_equal(answer(&q, "HTTP/1.1 202 Accepted\r\nContent-Length: 50\r\n\r\n{", true), QMP_FAILED);
	assert_int_equal(q.err.code, ECONNRESET);
	assert_int_equal(answer(&q, "HTTP/1.1 202 Accepted\r\nContent-Length: -1\r\n\r\n", false), QMP_FAILED);
	assert_int_equal(q.err.code, EPROTO);
	/* Once over, more input changes nothing. */
	assert_int_equal(vmm_api_client_answer(&q, false), QMP_FAILED);
}

/* ---- against a fake API server on a unix socket ---- */

enum fake_answer { ANSWER_204, ANSWER_409, ANSWER_NONE };

struct fake_api {
	char dir[64], path[128];
	pid_t pid;
	int rep_r;   /* the request the fake got */
};

static void fake_api_start(struct fake_api *f, enum fake_answer a)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/gr-engctl-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/vmm-api.sock", f->dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 2), 0);
	int rep[2];
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		close(rep[0]);
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			_exit(2);
		/* The whole request: headers and a body of Content-Length bytes. */
		char req[1024];
		size_t n = 0;
		for (;;) {
			struct pollfd p = { .fd = c, .events = POLLIN };
			if (poll(&p, 1, WAIT_MS) != 1)
				_exit(3);
			ssize_t k = read(c, req + n, sizeof(req) - 1 - n);
			if (k <= 0)
				_exit(4);
			n += (size_t)k;
			req[n] = 0;
			char *end = strstr(req, "\r\n\r\n");
			char *cl = strstr(req, "Content-Length: ");
			if (end && cl && n >= (size_t)(end + 4 - req) + (size_t)atoi(cl + 16))
				break;
		}
		if (write(rep[1], req, n) != (ssize_t)n)
			_exit(5);
		close(rep[1]);
		const char *ans = a == ANSWER_204 ? "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
				  : a == ANSWER_409 ? "HTTP/1.1 409 Conflict\r\nContent-Length: 24\r\n\r\n"
						      "{\"error\":\"not paused\"}\r\n"
						    : NULL;
		if (!ans) {
			/* Never answers: waits for the client to go. */
			char b[64];
			while (read(c, b, sizeof(b)) > 0)
				;
			_exit(0);
		}
		if (write(c, ans, strlen(ans)) != (ssize_t)strlen(ans))
			_exit(6);
		_exit(0);
	}
	close(l);
	close(rep[1]);
	f->rep_r = rep[0];
}

static char *fake_api_end(struct fake_api *f)
{
	int st = 0;
	assert_int_equal(waitpid(f->pid, &st, 0), f->pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the fake API ended with status 0x%x", st);
	static char req[1024];
	ssize_t n = read(f->rep_r, req, sizeof(req) - 1);
	req[n > 0 ? n : 0] = 0;
	close(f->rep_r);
	unlink(f->path);
	rmdir(f->dir);
	return req;
}

static void test_execute(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct fake_api f;

	fake_api_start(&f, ANSWER_204);
	if (engine_ctl_execute(ENGINE_CTL_VMM_API, f.path, "pause", WAIT_MS, &err) < 0)
		fail_msg("%s", err.msg);
	char *req = fake_api_end(&f);
	assert_non_null(strstr(req, "PUT /vm/actions HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "\r\n\r\n{\"action\":\"pause\"}"));

	fake_api_start(&f, ANSWER_409);
	assert_int_equal(engine_ctl_execute(ENGINE_CTL_VMM_API, f.path, "resume", WAIT_MS, &err), -EBUSY);
	assert_string_equal(err.msg, "gureum-vmm's API: resume refused (409): not paused");
	fake_api_end(&f);

	fake_api_start(&f, ANSWER_NONE);
	assert_int_equal(engine_ctl_execute(ENGINE_CTL_VMM_API, f.path, "pause", 300, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "gureum-vmm's API pause at "));
	assert_non_null(strstr(err.msg, "no answer within 300 ms"));
	fake_api_end(&f);

	/* Nobody listening: named as the API's socket, not QMP's. */
	assert_int_equal(engine_ctl_execute(ENGINE_CTL_VMM_API, "/nonexistent/vmm-api.sock", "pause", 300, &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "cannot connect to gureum-vmm's API at /nonexistent/vmm-api.sock"));
}

/* ---- run-engine --vmm-api ---- */

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })

static int engine_args(char **argv, struct supervisor_opts *o, bool *d, struct gr_error *err)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	return supervisor_engine_args(argc, argv, o, d, err);
}

static void test_engine_option(void **state)
{
	(void)state;
	struct supervisor_opts o;
	bool d;
	struct gr_error err = { 0 };
	assert_int_equal(engine_args(ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v",
					  "--vmm-api=/r/instances/v/vmm-api.sock", "--", "/e"), &o, &d, &err), 0);
	assert_string_equal(o.vmm_api, "/r/instances/v/vmm-api.sock");
	assert_null(o.qmp);
	assert_int_equal(engine_args(ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v",
					  "--vmm-api", "vmm-api.sock", "--", "/e"), &o, &d, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--vmm-api: \"vmm-api.sock\" is not an absolute path"));
	assert_int_equal(engine_args(ARGV("run-engine", "--state-dir", "/s", "--run-dir", "/r", "--name", "v",
					  "--vmm-api", "/a.sock", "--qmp", "/q.sock", "--", "/e"), &o, &d, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--qmp and --vmm-api"));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_execute),
		cmocka_unit_test(test_engine_option),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
