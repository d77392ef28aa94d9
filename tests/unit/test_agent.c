/* The guest agent (src/guest/init), run on the host: the agent loop in a
 * forked child serving socketpairs (one per "port"), driven frame by frame
 * the way the host side will. Also the frame codec, instance.json, the path
 * rules, and the network ioctls (in a private network namespace).
 * No timing assumptions: every wait is a poll with a generous upper bound. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest/init/agent.h"
#include "guest/init/agent_internal.h"
#include "guest/init/config.h"
#include "guest/init/net.h"
#include "guest/init/proto.h"

#define WAIT_MS 20000   /* upper bound for anything to happen */

/* ---------------------------------------------------------------- helpers */

struct conn {
	int fd;
	struct agent_buf in;
};

struct rframe {
	unsigned type;
	uint8_t *data;
	size_t len;
};

static void rframe_free(struct rframe *f)
{
	free(f->data);
	f->data = NULL;
}

static void write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		assert_true(w > 0);
		b += w;
		n -= (size_t)w;
	}
}

static void send_frame(int fd, unsigned type, const void *payload, size_t n)
{
	uint8_t hdr[AGENT_FRAME_HEADER];
	assert_int_equal(agent_frame_header(hdr, type, n), 0);
	write_all(fd, hdr, sizeof(hdr));
	if (n)
		write_all(fd, payload, n);
}

static void send_json(int fd, unsigned type, const char *json)
{
	send_frame(fd, type, json, strlen(json));
}

/* 1: a frame; 0: EOF; -ETIMEDOUT. */
static int recv_frame(struct conn *c, struct rframe *f)
{
	for (;;) {
		struct agent_frame af;
		enum agent_parse_error why;
		int r = agent_frame_parse(agent_buf_head(&c->in), agent_buf_pending(&c->in), &af, &why, NULL);
		assert_true(r >= 0);
		if (r == 1) {
			assert_true(agent_frame_from_agent(af.type));
			f->type = af.type;
			f->len = af.payload_len;
			f->data = malloc(af.payload_len + 1);
			assert_non_null(f->data);
			memcpy(f->data, af.payload, af.payload_len);
			f->data[af.payload_len] = 0;
			agent_buf_consume(&c->in, af.size);
			return 1;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int pr = poll(&p, 1, WAIT_MS);
		if (pr == 0)
			return -ETIMEDOUT;
		assert_int_equal(agent_buf_reserve(&c->in, 65536), 0);
		ssize_t n = read(c->fd, c->in.data + c->in.len, 65536);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 0;
		assert_true(n > 0);
		c->in.len += (size_t)n;
	}
}

static json_t *recv_json(struct conn *c, unsigned want)
{
	struct rframe f;
	int r = recv_frame(c, &f);
	if (r != 1)
		fail_msg("expected a %s frame, got %s", agent_frame_type_name(want), r == 0 ? "EOF" : "a timeout");
	if (f.type != want)
		fail_msg("expected a %s frame, got %s: %s", agent_frame_type_name(want), agent_frame_type_name(f.type),
			 (char *)f.data);
	json_error_t je;
	json_t *j = json_loadb((char *)f.data, f.len, 0, &je);
	if (!j)
		fail_msg("%s payload is not JSON: %s", agent_frame_type_name(want), (char *)f.data);
	rframe_free(&f);
	return j;
}

static void expect_eof(struct conn *c)
{
	struct rframe f;
	int r = recv_frame(c, &f);
	if (r == 1)
		fail_msg("expected EOF, got %s: %s", agent_frame_type_name(f.type), (char *)f.data);
	assert_int_equal(r, 0);
}

/* An ERROR: returns its message (malloc'd); checks "fatal". */
static char *expect_error(struct conn *c, bool fatal)
{
	json_t *j = recv_json(c, AGENT_ERROR);
	assert_true(json_is_string(json_object_get(j, "error")));
	assert_true(json_is_boolean(json_object_get(j, "fatal")));
	if (json_is_true(json_object_get(j, "fatal")) != fatal)
		fail_msg("expected fatal=%d: %s", fatal, json_string_value(json_object_get(j, "error")));
	char *msg = strdup(json_string_value(json_object_get(j, "error")));
	json_decref(j);
	return msg;
}

static void expect_hello(struct conn *c, const char *port)
{
	json_t *j = recv_json(c, AGENT_HELLO);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), AGENT_PROTO_VERSION);
	assert_string_equal(json_string_value(json_object_get(j, "agent")), "gureum-init");
	if (port)
		assert_string_equal(json_string_value(json_object_get(j, "port")), port);
	json_decref(j);
}

static void health_ok(struct conn *c)
{
	send_json(c->fd, AGENT_REQUEST, "{\"op\":\"health\"}");
	json_t *j = recv_json(c, AGENT_RESPONSE);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
	assert_true(json_is_real(json_object_get(j, "uptime")));
	assert_true(json_string_length(json_object_get(j, "kernel")) > 0);
	json_decref(j);
}

/* Runs an exec to its EXIT: stdout/stderr gathered; returns the EXIT object. */
static json_t *collect(struct conn *c, struct agent_buf *out, struct agent_buf *err)
{
	for (;;) {
		struct rframe f;
		int r = recv_frame(c, &f);
		if (r != 1)
			fail_msg("exec: %s before EXIT", r == 0 ? "EOF" : "timeout");
		if (f.type == AGENT_STDOUT && out)
			assert_int_equal(agent_buf_append(out, f.data, f.len), 0);
		else if (f.type == AGENT_STDERR && err)
			assert_int_equal(agent_buf_append(err, f.data, f.len), 0);
		else if (f.type == AGENT_EXIT) {
			json_t *j = json_loadb((char *)f.data, f.len, 0, NULL);
			assert_non_null(j);
			rframe_free(&f);
			return j;
		} else if (f.type != AGENT_STDOUT && f.type != AGENT_STDERR)
			fail_msg("exec: unexpected %s: %s", agent_frame_type_name(f.type), (char *)f.data);
		rframe_free(&f);
	}
}

/* Reads STDOUT until `needle` has been seen (pty output arrives in pieces). */
static void read_until(struct conn *c, struct agent_buf *out, const char *needle)
{
	for (;;) {
		assert_int_equal(agent_buf_append(out, "", 1), 0);
		out->len--;
		if (strstr((char *)agent_buf_head(out), needle))
			return;
		struct rframe f;
		int r = recv_frame(c, &f);
		if (r != 1)
			fail_msg("waiting for \"%s\": %s; have: %s", needle, r ? "timeout" : "EOF", (char *)agent_buf_head(out));
		if (f.type != AGENT_STDOUT)
			fail_msg("waiting for \"%s\": got %s: %s", needle, agent_frame_type_name(f.type), (char *)f.data);
		assert_int_equal(agent_buf_append(out, f.data, f.len), 0);
		rframe_free(&f);
	}
}

static bool buf_has(struct agent_buf *b, const char *s)
{
	assert_int_equal(agent_buf_append(b, "", 1), 0);
	b->len--;
	return strstr((char *)agent_buf_head(b), s) != NULL;
}

static bool pid_gone(pid_t pid)
{
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return true;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *rp = strrchr(buf, ')');
	return !rp || rp[2] == 'Z' || rp[2] == 'X';
}

static bool wait_gone(pid_t pid)
{
	for (int i = 0; i < WAIT_MS / 5; i++) {
		if (pid_gone(pid))
			return true;
		nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
	}
	return false;
}

/* ------------------------------------------------- the agent, in a child */

#define MAX_TEST_PORTS 8

struct agent_proc {
	pid_t pid;
	struct conn c[MAX_TEST_PORTS];
	int nports;
	int stop_w;     /* closing it stops the agent */
	int shut_r;     /* the shutdown hook writes 'p' or 'r' here */
};

static int shut_w_fd = -1;

static void test_shutdown_hook(void *ctx, bool reboot)
{
	(void)ctx;
	char c = reboot ? 'r' : 'p';
	if (write(shut_w_fd, &c, 1) < 0)
		_exit(3);
}

static void test_log_hook(void *ctx, const char *line)
{
	(void)ctx;
	if (getenv("GR_TEST_VERBOSE"))
		fprintf(stderr, "agent: %s\n", line);
}

static void test_health_hook(json_t *resp, void *ctx)
{
	(void)ctx;
	json_object_set_new(resp, "test", json_true());
}

/* nports socketpairs of `kind`, plus an optional listening socket. */
static void agent_start(struct agent_proc *ap, int nports, enum agent_port_kind kind, int listen_fd)
{
	memset(ap, 0, sizeof(*ap));
	int agent_end[MAX_TEST_PORTS];
	ap->nports = nports;
	for (int i = 0; i < nports; i++) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		ap->c[i].fd = sv[0];
		agent_end[i] = sv[1];
	}
	int stop[2], shut[2];
	assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
	assert_int_equal(pipe2(shut, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < nports; i++)
			close(ap->c[i].fd);
		close(stop[1]);
		close(shut[0]);
		shut_w_fd = shut[1];
		/* The fds open now besides the agent's: after agent_free, no other may be. */
		bool before[1024] = { false };
		for (int fd = 0; fd < 1024; fd++)
			before[fd] = fcntl(fd, F_GETFD) >= 0;
		for (int i = 0; i < nports; i++)
			before[agent_end[i]] = false;
		if (listen_fd >= 0)
			before[listen_fd] = false;
		struct agent_hooks hooks = { .shutdown = test_shutdown_hook, .log = test_log_hook,
					     .health = test_health_hook };
		struct agent *a = NULL;
		struct gr_error err = { 0 };
		if (agent_new(&a, &hooks, &err) < 0)
			_exit(10);
		for (int i = 0; i < nports; i++) {
			char name[32];
			snprintf(name, sizeof(name), "org.gureum.agent.%d", i);
			if (agent_add_port(a, agent_end[i], name, kind, &err) < 0)
				_exit(11);
		}
		if (listen_fd >= 0 && agent_add_listener(a, listen_fd, "unix", &err) < 0)
			_exit(12);
		agent_set_stop_fd(a, stop[0]);
		int r = agent_run(a, &err);
		agent_free(a);
		for (int fd = 0; fd < 1024; fd++)
			if (!before[fd] && fcntl(fd, F_GETFD) >= 0) {
				fprintf(stderr, "agent: fd %d leaked\n", fd);
				_exit(14);
			}
		/* Nor a child: every exec was reaped. */
		if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
			_exit(15);
		close(stop[0]);
		close(shut[1]);
		exit(r < 0 ? 13 : 0);
	}
	for (int i = 0; i < nports; i++)
		close(agent_end[i]);
	if (listen_fd >= 0)
		close(listen_fd);
	close(stop[0]);
	close(shut[1]);
	ap->pid = pid;
	ap->stop_w = stop[1];
	ap->shut_r = shut[0];
}

/* Stops the agent (if still running) and checks that it ended cleanly. */
static void agent_stop(struct agent_proc *ap)
{
	close(ap->stop_w);
	for (int i = 0; i < ap->nports; i++) {
		if (ap->c[i].fd >= 0)
			close(ap->c[i].fd);
		agent_buf_free(&ap->c[i].in);
	}
	int st = 0;
	assert_int_equal(waitpid(ap->pid, &st, 0), ap->pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the agent ended with status 0x%x", st);
	close(ap->shut_r);
}

static void host_close(struct agent_proc *ap, int i)
{
	close(ap->c[i].fd);
	ap->c[i].fd = -1;
}

static int exec_pid(struct conn *c, const char *req)
{
	send_json(c->fd, AGENT_REQUEST, req);
	json_t *j = recv_json(c, AGENT_RESPONSE);
	int pid = (int)json_integer_value(json_object_get(j, "pid"));
	json_decref(j);
	assert_true(pid > 0);
	return pid;
}

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/gr-agent-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int count_temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, ".gureum-push-", 13) == 0)
			n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------ the codec */

static void proto_frames(void **state)
{
	(void)state;
	uint8_t hdr[AGENT_FRAME_HEADER];
	assert_int_equal(agent_frame_header(hdr, AGENT_STDOUT, 3), 0);
	assert_memory_equal(hdr, "\0\0\0\4\4", 5);
	assert_int_equal(agent_frame_header(hdr, AGENT_STDOUT, AGENT_PAYLOAD_MAX), 0);
	assert_int_equal(agent_frame_header(hdr, AGENT_STDOUT, AGENT_PAYLOAD_MAX + 1), -EMSGSIZE);
	assert_int_equal(agent_frame_header(hdr, 0, 1), -EINVAL);
	assert_int_equal(agent_frame_header(hdr, 14, 1), -EINVAL);

	struct agent_buf b = { 0 };
	assert_int_equal(agent_buf_append_frame(&b, AGENT_STDIN, "abc", 3), 0);
	assert_int_equal(agent_buf_append_frame(&b, AGENT_STDIN_EOF, NULL, 0), 0);
	struct agent_frame f;
	enum agent_parse_error why;
	size_t need;
	/* Byte by byte: nothing until the whole frame is there. */
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(agent_frame_parse(agent_buf_head(&b), i, &f, &why, &need), 0);
	assert_int_equal(need, 8);
	assert_int_equal(agent_frame_parse(agent_buf_head(&b), agent_buf_pending(&b), &f, &why, NULL), 1);
	assert_int_equal(f.type, AGENT_STDIN);
	assert_int_equal(f.payload_len, 3);
	assert_memory_equal(f.payload, "abc", 3);
	agent_buf_consume(&b, f.size);
	assert_int_equal(agent_frame_parse(agent_buf_head(&b), agent_buf_pending(&b), &f, &why, NULL), 1);
	assert_int_equal(f.type, AGENT_STDIN_EOF);
	assert_int_equal(f.payload_len, 0);
	agent_buf_consume(&b, f.size);
	assert_int_equal(agent_buf_pending(&b), 0);

	/* Bad headers are refused as soon as the 5 header bytes are there. */
	assert_int_equal(agent_frame_parse((const uint8_t *)"\0\0\0\0\1", 5, &f, &why, NULL), -1);
	assert_int_equal(why, AGENT_PARSE_EMPTY);
	assert_int_equal(agent_frame_parse((const uint8_t *)"\0\x10\0\1\3", 5, &f, &why, NULL), -1);
	assert_int_equal(why, AGENT_PARSE_TOO_BIG);
	assert_int_equal(agent_frame_parse((const uint8_t *)"\0\x10\0\0\3", 5, &f, &why, &need), 0);
	assert_int_equal(need, AGENT_FRAME_MAX + 4);
	assert_int_equal(agent_frame_parse((const uint8_t *)"\0\0\0\1\x63", 5, &f, &why, NULL), -1);
	assert_int_equal(why, AGENT_PARSE_BAD_TYPE);
	assert_int_equal(agent_frame_parse((const uint8_t *)"\0\0\0\1\0", 5, &f, &why, NULL), -1);
	assert_int_equal(why, AGENT_PARSE_BAD_TYPE);

	assert_true(agent_frame_from_host(AGENT_REQUEST));
	assert_false(agent_frame_from_host(AGENT_RESPONSE));
	assert_true(agent_frame_from_agent(AGENT_HELLO));
	assert_false(agent_frame_from_agent(AGENT_STDIN));
	assert_true(agent_frame_from_host(AGENT_FILE_DATA) && agent_frame_from_agent(AGENT_FILE_DATA));
	assert_string_equal(agent_frame_type_name(AGENT_STDIN_EOF), "STDIN_EOF");
	assert_null(agent_frame_type_name(99));
	agent_buf_free(&b);
}

static void path_rules(void **state)
{
	(void)state;
	assert_null(agent_path_check("/etc/hosts"));
	assert_null(agent_path_check("/a/..b/c.."));
	assert_null(agent_path_check("/a/./b"));
	assert_non_null(agent_path_check("etc/hosts"));
	assert_non_null(agent_path_check(""));
	assert_non_null(agent_path_check("/"));
	assert_non_null(agent_path_check("/etc/"));
	assert_non_null(agent_path_check("/../etc/passwd"));
	assert_non_null(agent_path_check("/a/../b"));
	assert_non_null(agent_path_check("/a/.."));
	assert_non_null(agent_path_check("//a//..//b"));
	char longp[PATH_MAX + 8];
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	assert_non_null(agent_path_check(longp));
}

static void signal_names(void **state)
{
	(void)state;
	int sig = 0;
	json_t *v = json_string("TERM");
	assert_int_equal(agent_signal_parse(v, &sig), 0);
	assert_int_equal(sig, SIGTERM);
	json_decref(v);
	v = json_string("SIGKILL");
	assert_int_equal(agent_signal_parse(v, &sig), 0);
	assert_int_equal(sig, SIGKILL);
	json_decref(v);
	v = json_integer(10);
	assert_int_equal(agent_signal_parse(v, &sig), 0);
	assert_int_equal(sig, 10);
	json_decref(v);
	v = json_integer(0);
	assert_int_equal(agent_signal_parse(v, &sig), -EINVAL);
	json_decref(v);
	v = json_integer(SIGRTMAX + 1);
	assert_int_equal(agent_signal_parse(v, &sig), -EINVAL);
	json_decref(v);
	v = json_string("NOPE");
	assert_int_equal(agent_signal_parse(v, &sig), -EINVAL);
	json_decref(v);
	assert_int_equal(agent_signal_parse(NULL, &sig), -EINVAL);
}

/* ---------------------------------------------------------- the agent */

static void hello_and_health(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 2, AGENT_PORT_STREAM, -1);
	expect_hello(&ap.c[0], "org.gureum.agent.0");
	expect_hello(&ap.c[1], "org.gureum.agent.1");
	health_ok(&ap.c[0]);
	/* The hook's members are there; a connection serves one request after another. */
	send_json(ap.c[1].fd, AGENT_REQUEST, "{\"op\":\"health\"}");
	json_t *j = recv_json(&ap.c[1], AGENT_RESPONSE);
	assert_true(json_is_true(json_object_get(j, "test")));
	json_decref(j);
	health_ok(&ap.c[1]);
	/* Unknown op and a missing op: request errors, the connection lives on. */
	send_json(ap.c[0].fd, AGENT_REQUEST, "{\"op\":\"dance\"}");
	free(expect_error(&ap.c[0], false));
	send_json(ap.c[0].fd, AGENT_REQUEST, "{\"nop\":1}");
	free(expect_error(&ap.c[0], false));
	health_ok(&ap.c[0]);
	/* Both hosts leave: the agent has nothing left and returns. */
	host_close(&ap, 0);
	host_close(&ap, 1);
	agent_stop(&ap);
}

static void exec_pipes(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 1, AGENT_PORT_STREAM, -1);
	struct conn *c = &ap.c[0];
	expect_hello(c, NULL);
	exec_pid(c, "{\"op\":\"exec\",\"args\":[\"/bin/sh\",\"-c\",\"cat; echo err >&2; test -t 0 || echo notty; exit 3\"]}");
	send_frame(c->fd, AGENT_STDIN, "hello ", 6);
	send_frame(c->fd, AGENT_STDIN, "world\n", 6);
	send_frame(c->fd, AGENT_STDIN_EOF, NULL, 0);
	send_frame(c->fd, AGENT_STDIN, "after eof\n", 10);  /* dropped */
	struct agent_buf out = { 0 }, err = { 0 };
	json_t *exit = collect(c, &out, &err);
	assert_int_equal(json_integer_value(json_object_get(exit, "code")), 3);
	assert_true(json_is_null(json_object_get(exit, "signal")));
	json_decref(exit);
	assert_int_equal(agent_buf_pending(&out), strlen("hello world\nnotty\n"));
	assert_memory_equal(agent_buf_head(&out), "hello world\nnotty\n", agent_buf_pending(&out));
	assert_int_equal(agent_buf_pending(&err), 4);
	assert_memory_equal(agent_buf_head(&err), "err\n", 4);
	/* Input for the finished exec is ignored; the connection takes the next request. */
	send_frame(c->fd, AGENT_STDIN, "late", 4);
	send_json(c->fd, AGENT_SIGNAL, "{\"signal\":9}");
	health_ok(c);
	agent_buf_free(&out);
	agent_buf_free(&err);
	agent_stop(&ap);
}

static void exec_env_cwd_user(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 1, AGENT_PORT_STREAM, -1);
	struct conn *c = &ap.c[0];
	expect_hello(c, NULL);
	bool root = geteuid() == 0;
	char req[512];
	snprintf(req, sizeof(req),
		 "{\"op\":\"exec\",\"args\":[\"sh\",\"-c\",\"pwd; echo $FOO; id -u; id -g; echo $HOME\"],"
		 "\"env\":[\"FOO=bar baz\",\"PATH=/usr/bin:/bin\"],\"cwd\":\"%s\",\"uid\":%u,\"gid\":%u}",
		 tmpdir, root ? 65534 : geteuid(), root ? 65534 : getegid());
	if (root)
		chmod(tmpdir, 0755);
	exec_pid(c, req);
	struct agent_buf out = { 0 };
	json_t *exit = collect(c, &out, NULL);
	assert_int_equal(json_integer_value(json_object_get(exit, "code")), 0);
	json_decref(exit);
	char want[256];
	snprintf(want, sizeof(want), "%s\nbar baz\n%u\n%u\n\n", tmpdir, root ? 65534 : geteuid(),
		 root ? 65534 : getegid());
	assert_int_equal(agent_buf_append(&out, "", 1), 0);
	assert_string_equal((char *)agent_buf_head(&out), want);
	agent_buf_free(&out);
	/* Without env: the default PATH finds sh; HOME is set. */
	exec_pid(c, "{\"op\":\"exec\",\"args\":[\"sh\",\"-c\",\"echo $HOME; echo $PATH\"]}");
	exit = collect(c, &out, NULL);
	json_decref(exit);
	assert_true(buf_has(&out, "/usr/bin"));
	agent_buf_free(&out);
	agent_stop(&ap);
}

static void exec_refused(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 1, AGENT_PORT_STREAM, -1);
	struct conn *c = &ap.c[0];
	expect_hello(c, NULL);
	static const char *const bad[] = {
		"{\"op\":\"exec\"}",
		"{\"op\":\"exec\",\"args\":[]}",
		"{\"op\":\"exec\",\"args\":[\"\"]}",
		"{\"op\":\"exec\",\"args\":[\"true\", 5]}",
		"{\"op\":\"exec\",\"args\":\"true\"}",
		"{\"op\":\"exec\",\"args\":[\"true\"],\"cwd\":\"tmp\"}",
		"{\"op\":\"exec\",\"args\":[\"true\"],\"env\":[\"NOEQUALS\"]}",
		"{\"op\":\"exec\",\"args\":[\"true\"],\"env\":[\"=x\"]}",
		"{\"op\":\"exec\",\"args\":[\"true\"],\"uid\":-1}",
		"{\"op\":\"exec\",\"args\":[\"true\"],\"uid\":4294967295}",
		"{\"op\":\"exec\",\"args\":[\"true\"],\"tty\":\"yes\"}",
		"{\"op\":\"exec\",\"args\":[\"true\"],\"width\":70000}",
		"{\"op\":\"exec\",\"args\":[\"/nonexistent/prog\"]}",
		"{\"op\":\"exec\",\"args\":[\"no-such-command-gureum\"]}",
		"{\"op\":\"exec\",\"args\":[\"true\"],\"cwd\":\"/nonexistent-dir\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		send_json(c->fd, AGENT_REQUEST, bad[i]);
		char *msg = expect_error(c, false);
		if (i == 12)
			assert_non_null(strstr(msg, "No such file"));
		if (i == 13)
			assert_non_null(strstr(msg, "not found"));
		if (i == 14)
			assert_non_null(strstr(msg, "working directory"));
		free(msg);
	}
	health_ok(c);
	agent_stop(&ap);
}

static void exec_tty(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 1, AGENT_PORT_STREAM, -1);
	struct conn *c = &ap.c[0];
	expect_hello(c, NULL);
	exec_pid(c, "{\"op\":\"exec\",\"args\":[\"/bin/sh\",\"-c\","
		    "\"test -t 0 && echo TTY-$TERM; stty size; read x; stty size; echo got-$x; exit 5\"],"
		    "\"tty\":true,\"width\":100,\"height\":40}");
	struct agent_buf out = { 0 };
	read_until(c, &out, "40 100");
	assert_true(buf_has(&out, "TTY-xterm"));
	send_json(c->fd, AGENT_RESIZE, "{\"width\":120,\"height\":50}");
	send_frame(c->fd, AGENT_STDIN, "abc\n", 4);
	json_t *exit = collect(c, &out, NULL);
	assert_int_equal(json_integer_value(json_object_get(exit, "code")), 5);
	json_decref(exit);
	assert_true(buf_has(&out, "50 120"));
	assert_true(buf_has(&out, "got-abc"));
	agent_buf_free(&out);

	/* STDIN_EOF on a tty is the EOF character: cat ends. */
	exec_pid(c, "{\"op\":\"exec\",\"args\":[\"cat\"],\"tty\":true}");
	send_frame(c->fd, AGENT_STDIN, "line\n", 5);
	send_frame(c->fd, AGENT_STDIN_EOF, NULL, 0);
	exit = collect(c, &out, NULL);
	if (json_integer_value(json_object_get(exit, "code")) != 0) {
		buf_has(&out, "");
		fail_msg("cat with a tty: %s; output: %s", json_dumps(exit, 0), (char *)agent_buf_head(&out));
	}
	json_decref(exit);
	assert_true(buf_has(&out, "line"));
	agent_buf_free(&out);
	agent_stop(&ap);
}

static void exec_signals(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 1, AGENT_PORT_STREAM, -1);
	struct conn *c = &ap.c[0];
	expect_hello(c, NULL);
	exec_pid(c, "{\"op\":\"exec\",\"args\":[\"sleep\",\"1000\"]}");
	send_json(c->fd, AGENT_SIGNAL, "{\"signal\":\"TERM\"}");
	json_t *exit = collect(c, NULL, NULL);
	assert_int_equal(json_integer_value(json_object_get(exit, "code")), 128 + SIGTERM);
	assert_int_equal(json_integer_value(json_object_get(exit, "signal")), SIGTERM);
	json_decref(exit);
	exec_pid(c, "{\"op\":\"exec\",\"args\":[\"sleep\",\"1000\"],\"tty\":true}");
	send_json(c->fd, AGENT_SIGNAL, "{\"signal\":9}");
	exit = collect(c, NULL, NULL);
	assert_int_equal(json_integer_value(json_object_get(exit, "code")), 137);
	assert_int_equal(json_integer_value(json_object_get(exit, "signal")), 9);
	json_decref(exit);
	/* A bad SIGNAL is a protocol error: the exec is killed, the connection closed. */
	int pid = exec_pid(c, "{\"op\":\"exec\",\"args\":[\"sleep\",\"1000\"]}");
	send_json(c->fd, AGENT_SIGNAL, "{\"signal\":\"NOPE\"}");
	free(expect_error(c, true));
	expect_eof(c);
	assert_true(wait_gone(pid));
	agent_stop(&ap);
}

/* Lots of data both ways through cat: flow control, nothing lost or reordered. */
static void exec_big_stream(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 1, AGENT_PORT_STREAM, -1);
	struct conn *c = &ap.c[0];
	expect_hello(c, NULL);
	exec_pid(c, "{\"op\":\"exec\",\"args\":[\"cat\"]}");
	size_t total = 3u << 20;
	uint8_t *data = malloc(total);
	assert_non_null(data);
	for (size_t i = 0; i < total; i++)
		data[i] = (uint8_t)(i * 7 + i / 4099);
	/* Everything to send, framed, in one buffer written as the socket takes it. */
	struct agent_buf tx = { 0 };
	for (size_t off = 0; off < total; off += 100000) {
		size_t n = total - off < 100000 ? total - off : 100000;
		assert_int_equal(agent_buf_append_frame(&tx, AGENT_STDIN, data + off, n), 0);
	}
	assert_int_equal(agent_buf_append_frame(&tx, AGENT_STDIN_EOF, NULL, 0), 0);
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	struct agent_buf out = { 0 };
	json_t *exit = NULL;
	while (!exit) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN | (agent_buf_pending(&tx) ? POLLOUT : 0) };
		assert_true(poll(&p, 1, WAIT_MS) > 0);
		if (p.revents & POLLOUT) {
			ssize_t w = write(c->fd, agent_buf_head(&tx), agent_buf_pending(&tx));
			if (w > 0)
				agent_buf_consume(&tx, (size_t)w);
		}
		if (p.revents & (POLLIN | POLLHUP)) {
			assert_int_equal(agent_buf_reserve(&c->in, 65536), 0);
			ssize_t n = read(c->fd, c->in.data + c->in.len, 65536);
			assert_true(n > 0 || (n < 0 && errno == EAGAIN));
			if (n > 0)
				c->in.len += (size_t)n;
			struct agent_frame f;
			while (agent_frame_parse(agent_buf_head(&c->in), agent_buf_pending(&c->in), &f, NULL, NULL) == 1) {
				if (f.type == AGENT_STDOUT)
					assert_int_equal(agent_buf_append(&out, f.payload, f.payload_len), 0);
				else if (f.type == AGENT_EXIT)
					exit = json_loadb((const char *)f.payload, f.payload_len, 0, NULL);
				else
					fail_msg("unexpected %s", agent_frame_type_name(f.type));
				agent_buf_consume(&c->in, f.size);
			}
		}
	}
	assert_int_equal(json_integer_value(json_object_get(exit, "code")), 0);
	json_decref(exit);
	assert_int_equal(agent_buf_pending(&out), total);
	assert_memory_equal(agent_buf_head(&out), data, total);
	free(data);
	agent_buf_free(&tx);
	agent_buf_free(&out);
	fcntl(c->fd, F_SETFL, 0);
	agent_stop(&ap);
}

/* The host leaves during an exec: its process group is killed and reaped. */
static void disconnect_kills_exec(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 3, AGENT_PORT_STREAM, -1);
	for (int i = 0; i < 3; i++)
		expect_hello(&ap.c[i], NULL);
	/* A shell with a background child in its process group. */
	int pid = exec_pid(&ap.c[0], "{\"op\":\"exec\",\"args\":[\"sh\",\"-c\",\"sleep 1000 & echo $!; wait\"]}");
	struct agent_buf out = { 0 };
	read_until(&ap.c[0], &out, "\n");
	int bg = atoi((char *)agent_buf_head(&out));
	assert_true(bg > 0);
	agent_buf_free(&out);
	int tpid = exec_pid(&ap.c[1], "{\"op\":\"exec\",\"args\":[\"sleep\",\"1000\"],\"tty\":true}");
	host_close(&ap, 0);
	host_close(&ap, 1);
	assert_true(wait_gone(pid));
	assert_true(wait_gone(bg));
	assert_true(wait_gone(tpid));
	/* The other port is still served. */
	health_ok(&ap.c[2]);
	agent_stop(&ap);
}

/* A virtio port's host leaving (read() == 0) resets the session; the port stays. */
static void virtio_port_reset(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 2, AGENT_PORT_VIRTIO, -1);
	expect_hello(&ap.c[0], NULL);
	expect_hello(&ap.c[1], NULL);
	int pid = exec_pid(&ap.c[0], "{\"op\":\"exec\",\"args\":[\"sleep\",\"1000\"]}");
	/* Half-close: the agent reads EOF, as from a virtio port with no host. */
	shutdown(ap.c[0].fd, SHUT_WR);
	assert_true(wait_gone(pid));
	health_ok(&ap.c[1]);
	/* A protocol error on a virtio port: ERROR, then input is discarded until the host leaves. */
	write_all(ap.c[1].fd, "\0\0\0\2\x63x", 6);  /* type 99 */
	free(expect_error(&ap.c[1], true));
	send_json(ap.c[1].fd, AGENT_REQUEST, "{\"op\":\"health\"}");  /* discarded */
	shutdown(ap.c[1].fd, SHUT_WR);
	/* The ports stay (virtio): only the stop fd ends the agent. */
	agent_stop(&ap);
}

static void bad_frames_close_only_their_connection(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 8, AGENT_PORT_STREAM, -1);
	for (int i = 0; i < 8; i++)
		expect_hello(&ap.c[i], NULL);
	int pid = exec_pid(&ap.c[6], "{\"op\":\"exec\",\"args\":[\"sleep\",\"1000\"]}");
	write_all(ap.c[0].fd, "\0\0\0\0\1", 5);                      /* length 0 */
	write_all(ap.c[1].fd, "\0\0\0\1\x63", 5);                     /* unknown type 99 */
	send_json(ap.c[2].fd, AGENT_REQUEST, "{\"op\":\"health\"");   /* bad JSON */
	write_all(ap.c[3].fd, "\0\x10\0\1\1", 5);                     /* 1 MiB + 1: too big */
	send_json(ap.c[4].fd, AGENT_RESPONSE, "{}");                  /* an agent-only type */
	send_json(ap.c[5].fd, AGENT_REQUEST, "[1,2]");                /* not an object */
	send_json(ap.c[6].fd, AGENT_REQUEST, "{\"op\":\"health\"}");  /* a request during an exec */
	for (int i = 0; i < 7; i++) {
		char *msg = expect_error(&ap.c[i], true);
		if (i == 3)
			assert_non_null(strstr(msg, "1 MiB"));
		free(msg);
		expect_eof(&ap.c[i]);
	}
	assert_true(wait_gone(pid));
	/* FILE_DATA with no push, NUL in JSON: also fatal. */
	health_ok(&ap.c[7]);
	send_frame(ap.c[7].fd, AGENT_REQUEST, "{\"op\":\"he\0lth\"}", 15);
	free(expect_error(&ap.c[7], true));
	expect_eof(&ap.c[7]);
	agent_stop(&ap);
}

static void push_file(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 1, AGENT_PORT_STREAM, -1);
	struct conn *c = &ap.c[0];
	expect_hello(c, NULL);
	char path[128], req[256];
	snprintf(path, sizeof(path), "%s/pushed", tmpdir);
	/* Over an existing file, which is replaced whole. */
	FILE *f = fopen(path, "w");
	fputs("old content that is longer", f);
	fclose(f);
	snprintf(req, sizeof(req), "{\"op\":\"push\",\"path\":\"%s\",\"mode\":%d,\"uid\":%u,\"gid\":%u}", path, 0640,
		 geteuid(), getegid());
	send_json(c->fd, AGENT_REQUEST, req);
	send_frame(c->fd, AGENT_FILE_DATA, "hello ", 6);
	send_frame(c->fd, AGENT_FILE_DATA, "", 0);
	send_frame(c->fd, AGENT_FILE_DATA, "world", 5);
	send_frame(c->fd, AGENT_FILE_END, NULL, 0);
	json_t *j = recv_json(c, AGENT_RESPONSE);
	assert_int_equal(json_integer_value(json_object_get(j, "size")), 11);
	json_decref(j);
	char buf[64] = "";
	f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	assert_string_equal(buf, "hello world");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(count_temp_files(tmpdir), 0);

	/* A big file, default mode; a symlink at the path is replaced, not followed. */
	char target[128];
	snprintf(target, sizeof(target), "%s/target", tmpdir);
	close(open(target, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/link", tmpdir);
	assert_int_equal(symlink(target, path), 0);
	snprintf(req, sizeof(req), "{\"op\":\"push\",\"path\":\"%s\"}", path);
	send_json(c->fd, AGENT_REQUEST, req);
	size_t total = 0;
	uint8_t *chunk = malloc(AGENT_PAYLOAD_MAX);
	memset(chunk, 'x', AGENT_PAYLOAD_MAX);
	for (int i = 0; i < 3; i++, total += AGENT_PAYLOAD_MAX)
		send_frame(c->fd, AGENT_FILE_DATA, chunk, AGENT_PAYLOAD_MAX);
	free(chunk);
	send_frame(c->fd, AGENT_FILE_END, NULL, 0);
	j = recv_json(c, AGENT_RESPONSE);
	assert_int_equal(json_integer_value(json_object_get(j, "size")), (json_int_t)total);
	json_decref(j);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, (off_t)total);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0);
	agent_stop(&ap);
}

static void push_refused(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 2, AGENT_PORT_STREAM, -1);
	struct conn *c = &ap.c[0];
	expect_hello(c, NULL);
	expect_hello(&ap.c[1], NULL);
	char reqs[8][256];
	snprintf(reqs[0], 256, "{\"op\":\"push\",\"path\":\"relative/file\"}");
	snprintf(reqs[1], 256, "{\"op\":\"push\",\"path\":\"%s/../escape\"}", tmpdir);
	snprintf(reqs[2], 256, "{\"op\":\"push\",\"path\":\"%s/\"}", tmpdir);
	snprintf(reqs[3], 256, "{\"op\":\"push\",\"path\":\"%s/no/such/dir/f\"}", tmpdir);
	snprintf(reqs[4], 256, "{\"op\":\"push\",\"path\":\"%s\"}", tmpdir);  /* a directory */
	snprintf(reqs[5], 256, "{\"op\":\"push\",\"path\":\"%s/f\",\"mode\":65535}", tmpdir);
	snprintf(reqs[6], 256, "{\"op\":\"push\"}");
	snprintf(reqs[7], 256, "{\"op\":\"push\",\"path\":42}");
	for (int i = 0; i < 8; i++) {
		send_json(c->fd, AGENT_REQUEST, reqs[i]);
		/* The data the host sends anyway is skipped up to FILE_END. */
		send_frame(c->fd, AGENT_FILE_DATA, "data", 4);
		send_frame(c->fd, AGENT_FILE_END, NULL, 0);
		free(expect_error(c, false));
	}
	health_ok(c);
	char esc[128];
	snprintf(esc, sizeof(esc), "%s/../escape", tmpdir);
	assert_int_equal(access(esc, F_OK), -1);
	assert_int_equal(count_temp_files(tmpdir), 0);

	/* A frame over 1 MiB is refused as soon as its header is seen. */
	char req[256];
	snprintf(req, sizeof(req), "{\"op\":\"push\",\"path\":\"%s/big\"}", tmpdir);
	send_json(ap.c[1].fd, AGENT_REQUEST, req);
	write_all(ap.c[1].fd, "\0\x10\0\1\x0a", 5);
	free(expect_error(&ap.c[1], true));
	expect_eof(&ap.c[1]);
	assert_int_equal(count_temp_files(tmpdir), 0);
	snprintf(esc, sizeof(esc), "%s/big", tmpdir);
	assert_int_equal(access(esc, F_OK), -1);
	agent_stop(&ap);
}

static void push_abandoned(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 2, AGENT_PORT_STREAM, -1);
	expect_hello(&ap.c[0], NULL);
	expect_hello(&ap.c[1], NULL);
	char req[256];
	snprintf(req, sizeof(req), "{\"op\":\"push\",\"path\":\"%s/half\"}", tmpdir);
	send_json(ap.c[0].fd, AGENT_REQUEST, req);
	send_frame(ap.c[0].fd, AGENT_FILE_DATA, "partial", 7);
	/* Once the agent answers on the other port, it has read this one too (one loop). */
	health_ok(&ap.c[1]);
	host_close(&ap, 0);
	bool clean = false;
	for (int i = 0; i < WAIT_MS / 5 && !clean; i++) {
		clean = count_temp_files(tmpdir) == 0;
		if (!clean)
			nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
	}
	assert_true(clean);
	char p[128];
	snprintf(p, sizeof(p), "%s/half", tmpdir);
	assert_int_equal(access(p, F_OK), -1);
	agent_stop(&ap);
}

static void pull_file(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 1, AGENT_PORT_STREAM, -1);
	struct conn *c = &ap.c[0];
	expect_hello(c, NULL);
	char path[128], req[256];
	snprintf(path, sizeof(path), "%s/pullme", tmpdir);
	size_t total = 700 * 1024 + 13;
	uint8_t *data = malloc(total);
	for (size_t i = 0; i < total; i++)
		data[i] = (uint8_t)(i ^ (i >> 9));
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	write_all(fd, data, total);
	fchmod(fd, 0751);
	close(fd);
	snprintf(req, sizeof(req), "{\"op\":\"pull\",\"path\":\"%s\"}", path);
	send_json(c->fd, AGENT_REQUEST, req);
	json_t *j = recv_json(c, AGENT_RESPONSE);
	assert_int_equal(json_integer_value(json_object_get(j, "mode")), 0751);
	assert_int_equal(json_integer_value(json_object_get(j, "size")), (json_int_t)total);
	json_decref(j);
	struct agent_buf got = { 0 };
	for (;;) {
		struct rframe f;
		assert_int_equal(recv_frame(c, &f), 1);
		if (f.type == AGENT_FILE_END) {
			rframe_free(&f);
			break;
		}
		assert_int_equal(f.type, AGENT_FILE_DATA);
		assert_true(f.len <= AGENT_PAYLOAD_MAX);
		assert_int_equal(agent_buf_append(&got, f.data, f.len), 0);
		rframe_free(&f);
	}
	assert_int_equal(agent_buf_pending(&got), total);
	assert_memory_equal(agent_buf_head(&got), data, total);
	agent_buf_free(&got);
	free(data);
	/* An empty file: RESPONSE, then FILE_END at once. */
	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	snprintf(req, sizeof(req), "{\"op\":\"pull\",\"path\":\"%s\"}", path);
	send_json(c->fd, AGENT_REQUEST, req);
	json_decref(recv_json(c, AGENT_RESPONSE));
	struct rframe f;
	assert_int_equal(recv_frame(c, &f), 1);
	assert_int_equal(f.type, AGENT_FILE_END);
	rframe_free(&f);
	/* Refused: missing, a directory, relative, "..", a FIFO. */
	char fifo[128];
	snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	const char *bad[] = { "/nonexistent-gureum-file", tmpdir, "relative", "/tmp/../etc/passwd", fifo };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(req, sizeof(req), "{\"op\":\"pull\",\"path\":\"%s\"}", bad[i]);
		send_json(c->fd, AGENT_REQUEST, req);
		char *msg = expect_error(c, false);
		if (i == 0)
			assert_non_null(strstr(msg, "No such file"));
		free(msg);
	}
	health_ok(c);
	agent_stop(&ap);
}

static void listener_connections(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/agent.sock", tmpdir);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	assert_int_equal(bind(l, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(l, 4), 0);
	struct agent_proc ap;
	agent_start(&ap, 0, AGENT_PORT_STREAM, l);
	for (int i = 1; i <= 3; i++) {
		struct conn c = { .fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
		assert_int_equal(connect(c.fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
		char name[32];
		snprintf(name, sizeof(name), "unix#%d", i);
		expect_hello(&c, name);
		health_ok(&c);
		close(c.fd);
		agent_buf_free(&c.in);
	}
	agent_stop(&ap);
}

/* Connections accepted from a listener (vsock in the VM) are independent
 * sessions, served at once: an exec waiting on one while the others take
 * requests; a fatal error or a hang-up on one ends only that one (its exec
 * killed), and the listener keeps accepting. */
static void listener_concurrent_sessions(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/vsock.sock", tmpdir);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	assert_int_equal(bind(l, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(l, 8), 0);
	struct agent_proc ap;
	agent_start(&ap, 0, AGENT_PORT_STREAM, l);
	struct conn c[4];
	for (int i = 0; i < 4; i++) {
		c[i] = (struct conn){ .fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
		assert_int_equal(connect(c[i].fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	}
	/* Every one says HELLO first, all open at once. */
	for (int i = 0; i < 4; i++) {
		char name[32];
		snprintf(name, sizeof(name), "unix#%d", i + 1);
		expect_hello(&c[i], name);
	}
	int waiting = exec_pid(&c[0], "{\"op\":\"exec\",\"args\":[\"sh\",\"-c\",\"read x; echo got-$x\"]}");
	int sleeper = exec_pid(&c[1], "{\"op\":\"exec\",\"args\":[\"sleep\",\"1000\"]}");
	health_ok(&c[2]);
	health_ok(&c[3]);
	/* A bad frame on one: its ERROR, its end; the others go on. */
	write_all(c[3].fd, "\0\0\0\x02\xc8x", 6);   /* type 200 */
	free(expect_error(&c[3], true));
	expect_eof(&c[3]);
	/* Hanging up kills that connection's exec only. */
	close(c[1].fd);
	assert_true(wait_gone(sleeper));
	health_ok(&c[2]);
	send_frame(c[0].fd, AGENT_STDIN, "go\n", 3);
	struct agent_buf out = { 0 };
	json_t *ex = collect(&c[0], &out, NULL);
	assert_int_equal(json_integer_value(json_object_get(ex, "code")), 0);
	json_decref(ex);
	assert_true(buf_has(&out, "got-go\n"));
	agent_buf_free(&out);
	assert_true(wait_gone(waiting));
	/* Still accepting. */
	struct conn late = { .fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
	assert_int_equal(connect(late.fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	expect_hello(&late, "unix#5");
	health_ok(&late);
	for (int i = 0; i < 4; i++) {
		if (i != 1)
			close(c[i].fd);
		agent_buf_free(&c[i].in);
	}
	close(late.fd);
	agent_buf_free(&late.in);
	agent_stop(&ap);
}

static void shutdown_request(void **state)
{
	(void)state;
	struct agent_proc ap;
	agent_start(&ap, 2, AGENT_PORT_STREAM, -1);
	expect_hello(&ap.c[0], NULL);
	expect_hello(&ap.c[1], NULL);
	send_json(ap.c[0].fd, AGENT_REQUEST, "{\"op\":\"shutdown\",\"reboot\":\"no\"}");
	free(expect_error(&ap.c[0], false));
	send_json(ap.c[0].fd, AGENT_REQUEST, "{\"op\":\"shutdown\",\"reboot\":true}");
	json_decref(recv_json(&ap.c[0], AGENT_RESPONSE));
	struct pollfd p = { .fd = ap.shut_r, .events = POLLIN };
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	char c = 0;
	assert_int_equal(read(ap.shut_r, &c, 1), 1);
	assert_int_equal(c, 'r');
	send_json(ap.c[1].fd, AGENT_REQUEST, "{\"op\":\"shutdown\"}");
	json_decref(recv_json(&ap.c[1], AGENT_RESPONSE));
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	assert_int_equal(read(ap.shut_r, &c, 1), 1);
	assert_int_equal(c, 'p');
	agent_stop(&ap);
}

/* ------------------------------------------------------ instance.json */

static void config_full(void **state)
{
	(void)state;
	struct ginit_config c;
	struct gr_error err = { 0 };
	const char *j = "{\"hostname\":\"vm-1.example\",\"command\":[\"/bin/sh\",\"-c\",\"echo hi\"],"
			"\"env\":[\"A=1\",\"B=two words\"],\"cwd\":\"/srv\","
			"\"network\":{\"address\":\"10.0.3.7/24\",\"gateway\":\"10.0.3.1\",\"dns\":\"10.0.3.1\","
			"\"mac\":\"52:54:00:AB:cd:01\"},\"agent_port\":\"org.gureum.agent.0\"}";
	assert_int_equal(ginit_config_parse(j, &c, &err), 0);
	assert_string_equal(c.hostname, "vm-1.example");
	assert_string_equal(c.command[2], "echo hi");
	assert_null(c.command[3]);
	assert_string_equal(c.env[1], "B=two words");
	assert_string_equal(c.cwd, "/srv");
	assert_true(c.has_network);
	char a[16];
	inet_ntop(AF_INET, &c.net.address, a, sizeof(a));
	assert_string_equal(a, "10.0.3.7");
	assert_int_equal(c.net.prefix, 24);
	assert_true(c.net.has_gateway);
	assert_int_equal(c.net.ndns, 1);
	assert_true(c.net.has_mac);
	assert_memory_equal(c.net.mac, "\x52\x54\x00\xab\xcd\x01", 6);
	assert_string_equal(c.root, "/dev/vda");
	assert_string_equal(c.rootfstype, "ext4");
	assert_string_equal(c.init, "/sbin/init");
	assert_int_equal(c.agent_vsock_port, 1024);
	ginit_config_free(&c);

	/* The minimum: everything defaulted; command null is the image's init. */
	assert_int_equal(ginit_config_parse("{\"command\":null,\"network\":null}", &c, &err), 0);
	assert_null(c.hostname);
	assert_null(c.command);
	assert_non_null(c.env);
	assert_null(c.env[0]);
	assert_false(c.has_network);
	assert_string_equal(c.cwd, "/");
	assert_string_equal(c.agent_port, "org.gureum.agent.0");
	ginit_config_free(&c);

	assert_int_equal(ginit_config_parse("{\"network\":{\"address\":\"192.168.1.2/30\",\"dns\":[\"1.1.1.1\",\"8.8.8.8\"]},"
					    "\"agent_vsock_port\":0}", &c, &err), 0);
	assert_int_equal(c.net.ndns, 2);
	assert_false(c.net.has_gateway);
	assert_false(c.net.has_mac);
	assert_int_equal(c.agent_vsock_port, 0);
	ginit_config_free(&c);
}

static void config_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"not json",
		"[]",
		"{\"hostname\":\"bad host\"}",
		"{\"hostname\":\"\"}",
		"{\"hostname\":\"-x\"}",
		"{\"hostname\":5}",
		"{\"command\":[]}",
		"{\"command\":[\"\"]}",
		"{\"command\":\"/bin/sh\"}",
		"{\"env\":[\"NOEQ\"]}",
		"{\"cwd\":\"relative\"}",
		"{\"network\":{}}",
		"{\"network\":{\"address\":\"10.0.0.1\"}}",
		"{\"network\":{\"address\":\"10.0.0.1/33\"}}",
		"{\"network\":{\"address\":\"10.0.0.300/24\"}}",
		"{\"network\":{\"address\":\"10.0.0.1/24\",\"gateway\":\"x\"}}",
		"{\"network\":{\"address\":\"10.0.0.1/24\",\"mac\":\"52:54:00:ab:cd\"}}",
		"{\"network\":{\"address\":\"10.0.0.1/24\",\"dns\":[\"1.1.1.1\",\"1.1.1.2\",\"1.1.1.3\",\"1.1.1.4\"]}}",
		"{\"network\":{\"address\":\"10.0.0.1/24\",\"dns\":5}}",
		"{\"network\":\"dhcp\"}",
		"{\"agent_port\":\"../x\"}",
		"{\"agent_vsock_port\":-1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ginit_config c;
		struct gr_error err = { 0 };
		if (ginit_config_parse(bad[i], &c, &err) >= 0)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err.msg[0] != 0);
	}
}

static void config_helpers(void **state)
{
	(void)state;
	assert_true(ginit_agent_port_match("org.gureum.agent.0", "org.gureum.agent.0"));
	assert_true(ginit_agent_port_match("org.gureum.agent.0", "org.gureum.agent.7"));
	assert_true(ginit_agent_port_match("org.gureum.agent.0", "org.gureum.agent.15"));
	assert_false(ginit_agent_port_match("org.gureum.agent.0", "org.gureum.agent."));
	assert_false(ginit_agent_port_match("org.gureum.agent.0", "org.gureum.agent.1x"));
	assert_false(ginit_agent_port_match("org.gureum.agent.0", "org.gureum.agent.1234"));
	assert_false(ginit_agent_port_match("org.gureum.agent.0", "org.qemu.guest_agent.0"));
	assert_true(ginit_agent_port_match("agent", "agent"));
	assert_false(ginit_agent_port_match("agent", "agent1"));
	struct in_addr a;
	unsigned p;
	assert_int_equal(ginit_parse_cidr("10.1.2.3/0", &a, &p), 0);
	assert_int_equal(p, 0);
	assert_int_equal(ginit_parse_cidr("10.1.2.3/", &a, &p), -EINVAL);
	assert_int_equal(ginit_parse_cidr("10.1.2.3/1a", &a, &p), -EINVAL);
	assert_int_equal(ginit_parse_cidr("/24", &a, &p), -EINVAL);
	unsigned char mac[6];
	assert_int_equal(ginit_parse_mac("00:11:22:33:44:5f", mac), 0);
	assert_int_equal(mac[5], 0x5f);
	assert_int_equal(ginit_parse_mac("00:11:22:33:44:5g", mac), -EINVAL);
	assert_int_equal(ginit_parse_mac("00-11-22-33-44-55", mac), -EINVAL);
	char prog[256];
	char *env[] = { "PATH=/nonexistent:/bin:/usr/bin", NULL };
	assert_int_equal(agent_find_program("sh", env, prog, sizeof(prog)), 0);
	assert_true(strcmp(prog, "/bin/sh") == 0);
	assert_int_equal(agent_find_program("no-such-prog-gureum", env, prog, sizeof(prog)), -ENOENT);
	assert_int_equal(agent_find_program("./x", env, prog, sizeof(prog)), 0);
	assert_string_equal(prog, "./x");
}

/* The ioctls on lo (MAC 00:00:00:00:00:00) in a private network namespace. */
static void net_in_netns(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* A sysfs of its own, so /sys/class/net shows this namespace's links. */
		if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("sysfs", "/sys", "sysfs", 0, NULL) < 0)
			_exit(77);
		struct ginit_network n = { .has_mac = true, .prefix = 24, .has_gateway = true };
		inet_pton(AF_INET, "10.9.8.7", &n.address);
		inet_pton(AF_INET, "10.9.8.1", &n.gateway);
		char ifname[32];
		struct gr_error err = { 0 };
		if (net_find_interface(n.mac, ifname, sizeof(ifname), 0, &err) < 0 || strcmp(ifname, "lo") != 0)
			_exit(1);
		/* As gureum-init does: lo up first (127.0.0.1 appears; SIOCSIFADDR then replaces it). */
		if (net_link_up("lo", &err) < 0)
			_exit(11);
		if (net_configure(ifname, &n, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			_exit(2);
		}
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct ifreq ifr = { 0 };
		strcpy(ifr.ifr_name, "lo");
		if (ioctl(s, SIOCGIFADDR, &ifr) < 0 ||
		    ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr != n.address.s_addr)
			_exit(3);
		if (ioctl(s, SIOCGIFNETMASK, &ifr) < 0 ||
		    ((struct sockaddr_in *)&ifr.ifr_netmask)->sin_addr.s_addr != htonl(0xffffff00))
			_exit(4);
		if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || !(ifr.ifr_flags & IFF_UP))
			_exit(5);
		FILE *f = fopen("/proc/net/route", "r");
		char line[256];
		bool gw = false;
		while (f && fgets(line, sizeof(line), f)) {
			char dev[32];
			unsigned dst, g;
			if (sscanf(line, "%31s %x %x", dev, &dst, &g) == 3 && dst == 0 && g == n.gateway.s_addr)
				gw = true;
		}
		if (!gw)
			_exit(6);
		if (net_find_interface(NULL, ifname, sizeof(ifname), 0, &err) != -ENODEV)
			_exit(7);
		/* resolv.conf, written atomically over a symlink. */
		char rc[128], link[128];
		snprintf(rc, sizeof(rc), "%s/resolv.conf", tmpdir);
		snprintf(link, sizeof(link), "%s/elsewhere", tmpdir);
		if (symlink(link, rc) < 0)
			_exit(8);
		n.ndns = 2;
		inet_pton(AF_INET, "1.1.1.1", &n.dns[0]);
		inet_pton(AF_INET, "9.9.9.9", &n.dns[1]);
		if (net_write_resolv_conf(rc, &n, &err) < 0)
			_exit(9);
		struct stat st;
		char buf[128] = "";
		FILE *r = fopen(rc, "r");
		size_t len = r ? fread(buf, 1, sizeof(buf) - 1, r) : 0;
		buf[len] = 0;
		if (lstat(rc, &st) < 0 || !S_ISREG(st.st_mode) || access(link, F_OK) == 0 ||
		    strcmp(buf, "nameserver 1.1.1.1\nnameserver 9.9.9.9\n") != 0)
			_exit(10);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77) {
		skip();
		return;
	}
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(proto_frames),
		cmocka_unit_test(path_rules),
		cmocka_unit_test(signal_names),
		cmocka_unit_test(config_full),
		cmocka_unit_test(config_bad),
		cmocka_unit_test(config_helpers),
		cmocka_unit_test_setup_teardown(net_in_netns, setup_dir, teardown_dir),
		cmocka_unit_test(hello_and_health),
		cmocka_unit_test(exec_pipes),
		cmocka_unit_test_setup_teardown(exec_env_cwd_user, setup_dir, teardown_dir),
		cmocka_unit_test(exec_refused),
		cmocka_unit_test(exec_tty),
		cmocka_unit_test(exec_signals),
		cmocka_unit_test(exec_big_stream),
		cmocka_unit_test(disconnect_kills_exec),
		cmocka_unit_test(virtio_port_reset),
		cmocka_unit_test(bad_frames_close_only_their_connection),
		cmocka_unit_test_setup_teardown(push_file, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(push_refused, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(push_abandoned, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(pull_file, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(listener_connections, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(listener_concurrent_sessions, setup_dir, teardown_dir),
		cmocka_unit_test(shutdown_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
