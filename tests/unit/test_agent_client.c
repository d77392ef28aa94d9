/* The host side of the guest agent (src/daemon/vm/agent_client.c) and the
 * vm-exec helper (src/daemon/supervisor/vm_exec.c), against the real guest
 * agent (src/guest/init/agent.c) run in a forked child that listens on
 * RUN/instances/vm1/agent.N.sock as QEMU would, and against hand-written
 * fake agents for the connection rules (HELLO, reconnects, port locks).
 * No timing assumptions: waits are bounded generously; the one HELLO
 * timeout exercised is the library's own (a few seconds). The vsock
 * transport (gureum-vmm's vsock.sock and its CONNECT handshake) runs against
 * the real agent behind a stand-in for gureum-vmm, and against fakes for the
 * handshake's answers (good, refused, garbage, none). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "container/terminal.h"
#include "daemon/supervisor/vm_exec.h"
#include "daemon/vm/agent_client.h"
#include "guest/init/agent.h"
#include "guest/init/proto.h"

#define WAIT_MS 20000

/* ---------------------------------------------------------------- a VM's run directory */

struct fake_vm {
	char root[64];           /* RUN */
	char dir[128];           /* RUN/instances/vm1 */
	pid_t pid;               /* the agent (or fake agent) process */
	int stop_w;              /* closing it stops the real agent */
	int shut_r;              /* the shutdown hook writes 'p' or 'r' */
};

static void vm_dirs(struct fake_vm *v)
{
	memset(v, 0, sizeof(*v));
	v->pid = -1;
	v->stop_w = v->shut_r = -1;
	snprintf(v->root, sizeof(v->root), "/tmp/gr-agentc-XXXXXX");
	assert_non_null(mkdtemp(v->root));
	char inst[128];
	snprintf(inst, sizeof(inst), "%s/instances", v->root);
	assert_int_equal(mkdir(inst, 0700), 0);
	snprintf(v->dir, sizeof(v->dir), "%s/vm1", inst);
	assert_int_equal(mkdir(v->dir, 0700), 0);
}

static int listen_port(struct fake_vm *v, int n)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/agent.%d.sock", v->dir, n);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static int shut_w_fd = -1;

static void shutdown_hook(void *ctx, bool reboot)
{
	(void)ctx;
	char c = reboot ? 'r' : 'p';
	if (write(shut_w_fd, &c, 1) < 0)
		_exit(3);
}

static void log_hook(void *ctx, const char *line)
{
	(void)ctx;
	if (getenv("GR_TEST_VERBOSE"))
		fprintf(stderr, "agent: %s\n", line);
}

/* The real agent, serving nports unix sockets (every connection a session). */
static void vm_start_agent(struct fake_vm *v, int nports)
{
	vm_dirs(v);
	int lfd[AGENT_CLIENT_PORTS];
	for (int i = 0; i < nports; i++)
		lfd[i] = listen_port(v, i);
	int stop[2], shut[2];
	assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
	assert_int_equal(pipe2(shut, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(stop[1]);
		close(shut[0]);
		shut_w_fd = shut[1];
		struct agent_hooks hooks = { .shutdown = shutdown_hook, .log = log_hook };
		struct agent *a = NULL;
		struct gr_error err = { 0 };
		if (agent_new(&a, &hooks, &err) < 0)
			_exit(10);
		for (int i = 0; i < nports; i++) {
			char name[32];
			snprintf(name, sizeof(name), "agent.%d", i);
			if (agent_add_listener(a, lfd[i], name, &err) < 0)
				_exit(11);
		}
		agent_set_stop_fd(a, stop[0]);
		int r = agent_run(a, &err);
		agent_free(a);
		_exit(r < 0 ? 13 : 0);
	}
	for (int i = 0; i < nports; i++)
		close(lfd[i]);
	close(stop[0]);
	close(shut[1]);
	v->pid = pid;
	v->stop_w = stop[1];
	v->shut_r = shut[0];
}

static void vm_end(struct fake_vm *v)
{
	if (v->stop_w >= 0)
		close(v->stop_w);
	if (v->pid > 0) {
		int st = 0;
		assert_int_equal(waitpid(v->pid, &st, 0), v->pid);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg("the agent ended with status 0x%x", st);
	}
	if (v->shut_r >= 0)
		close(v->shut_r);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", v->root);
	assert_int_equal(system(cmd), 0);
}

static char *read_fd_all(int fd)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	assert_non_null(b);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	ssize_t r;
	while ((r = read(fd, b + n, cap - n - 1)) > 0) {
		n += (size_t)r;
		if (n + 1 == cap) {
			cap *= 2;
			b = realloc(b, cap);
			assert_non_null(b);
		}
	}
	b[n] = 0;
	return b;
}

static int memfd_with(const char *data, size_t n)
{
	int fd = memfd_create("test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	if (n)
		assert_int_equal(write(fd, data, n), (ssize_t)n);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* ---------------------------------------------------------------- requests */

static void health_push_pull_shutdown(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_start_agent(&v, 1);
	struct agent_client c = AGENT_CLIENT_INIT;
	struct gr_error err = { 0 };
	if (agent_client_connect(&c, v.dir, WAIT_MS, &err) < 0)
		fail_msg("connect: %s", err.msg);
	assert_int_equal(c.port, 0);
	assert_int_equal(json_integer_value(json_object_get(c.hello, "version")), 1);

	json_t *h = NULL;
	assert_int_equal(agent_client_health(&c, WAIT_MS, &h, &err), 0);
	assert_string_equal(json_string_value(json_object_get(h, "status")), "ok");
	json_decref(h);

	/* push: mode and owner applied; the data is the whole of the fd. */
	char path[256], text[200000];
	for (size_t i = 0; i < sizeof(text) - 1; i++)
		text[i] = (char)('a' + i % 26);
	text[sizeof(text) - 1] = 0;
	snprintf(path, sizeof(path), "%s/pushed", v.root);
	int fd = memfd_with(text, strlen(text));
	struct agent_file_meta m = { .mode = 0640, .uid = 1234, .gid = 4321 };
	uint64_t size = 0;
	if (agent_client_push(&c, path, fd, &m, WAIT_MS, &size, &err) < 0)
		fail_msg("push: %s", err.msg);
	close(fd);
	assert_int_equal(size, strlen(text));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 4321);

	/* pull it back. */
	fd = memfd_with(NULL, 0);
	struct agent_file_meta pm;
	if (agent_client_pull(&c, path, fd, 1 << 20, WAIT_MS, &pm, &err) < 0)
		fail_msg("pull: %s", err.msg);
	char *got = read_fd_all(fd);
	assert_string_equal(got, text);
	free(got);
	close(fd);
	assert_int_equal(pm.mode, 0640);
	assert_int_equal(pm.uid, 1234);
	assert_int_equal(pm.size, strlen(text));

	/* Request errors keep the connection usable, with an errno. */
	fd = memfd_with(NULL, 0);
	snprintf(path, sizeof(path), "%s/missing", v.root);
	assert_int_equal(agent_client_pull(&c, path, fd, 1 << 20, WAIT_MS, &pm, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "missing"));
	assert_int_equal(agent_client_pull(&c, v.root, fd, 1 << 20, WAIT_MS, &pm, &err), -EISDIR);
	snprintf(path, sizeof(path), "%s/no-dir/file", v.root);
	int src = memfd_with("x", 1);
	assert_int_equal(agent_client_push(&c, path, src, &m, WAIT_MS, NULL, &err), -ENOENT);
	close(src);
	assert_false(c.broken);
	/* An empty file. */
	snprintf(path, sizeof(path), "%s/empty", v.root);
	src = memfd_with(NULL, 0);
	assert_int_equal(agent_client_push(&c, path, src, &m, WAIT_MS, &size, &err), 0);
	assert_int_equal(size, 0);
	close(src);
	/* Larger than the limit: EFBIG, and the connection is done for. */
	snprintf(path, sizeof(path), "%s/pushed", v.root);
	assert_int_equal(agent_client_pull(&c, path, fd, 1000, WAIT_MS, &pm, &err), -EFBIG);
	assert_true(c.broken);
	close(fd);
	agent_client_close(&c);

	/* A new connection: shutdown is answered, then the hook runs. */
	if (agent_client_connect(&c, v.dir, WAIT_MS, &err) < 0)
		fail_msg("connect again: %s", err.msg);
	assert_int_equal(agent_client_shutdown(&c, false, WAIT_MS, &err), 0);
	char ch = 0;
	struct pollfd p = { .fd = v.shut_r, .events = POLLIN };
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	assert_int_equal(read(v.shut_r, &ch, 1), 1);
	assert_int_equal(ch, 'p');
	agent_client_close(&c);
	vm_end(&v);
}

/* An exec driven frame by frame through the client's queue and parser. */
static void exec_frames(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_start_agent(&v, 1);
	struct agent_client c = AGENT_CLIENT_INIT;
	struct gr_error err = { 0 };
	assert_int_equal(agent_client_connect(&c, v.dir, WAIT_MS, &err), 0);
	json_t *req = json_pack("{s:s, s:[s, s, s]}", "op", "exec", "args", "sh", "-c", "cat; echo e >&2; exit 3");
	assert_int_equal(agent_client_queue_json(&c, AGENT_REQUEST, req, &err), 0);
	json_decref(req);
	struct agent_frame f;
	assert_int_equal(agent_client_recv(&c, &f, WAIT_MS, &err), 1);
	assert_int_equal(f.type, AGENT_RESPONSE);
	assert_int_equal(agent_client_queue(&c, AGENT_STDIN, "hello\n", 6, &err), 0);
	assert_int_equal(agent_client_queue(&c, AGENT_STDIN_EOF, NULL, 0, &err), 0);
	char out[64] = "", errs[64] = "";
	int code = -1;
	while (code < 0) {
		if (agent_client_recv(&c, &f, WAIT_MS, &err) != 1)
			fail_msg("exec: %s", err.msg);
		if (f.type == AGENT_STDOUT)
			strncat(out, (const char *)f.payload, f.payload_len);
		else if (f.type == AGENT_STDERR)
			strncat(errs, (const char *)f.payload, f.payload_len);
		else if (f.type == AGENT_EXIT) {
			json_t *j = agent_frame_json(&f, &err);
			assert_non_null(j);
			code = (int)json_integer_value(json_object_get(j, "code"));
			json_decref(j);
		} else
			fail_msg("unexpected %s", agent_frame_type_name(f.type));
	}
	assert_int_equal(code, 3);
	assert_string_equal(out, "hello\n");
	assert_string_equal(errs, "e\n");
	/* The connection takes the next request. */
	json_t *h = NULL;
	assert_int_equal(agent_client_health(&c, WAIT_MS, &h, &err), 0);
	json_decref(h);
	agent_client_close(&c);
	vm_end(&v);
}

/* ---------------------------------------------------------------- ports and locks */

static void ports_and_locks(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_start_agent(&v, 2);
	struct agent_client a = AGENT_CLIENT_INIT, b = AGENT_CLIENT_INIT, c = AGENT_CLIENT_INIT;
	struct gr_error err = { 0 };
	/* Two sessions at once: two ports, each locked while in use. */
	assert_int_equal(agent_client_connect(&a, v.dir, WAIT_MS, &err), 0);
	assert_int_equal(agent_client_connect(&b, v.dir, WAIT_MS, &err), 0);
	assert_int_equal(a.port, 0);
	assert_int_equal(b.port, 1);
	json_t *h = NULL;
	assert_int_equal(agent_client_health(&b, WAIT_MS, &h, &err), 0);
	json_decref(h);
	assert_int_equal(agent_client_health(&a, WAIT_MS, &h, &err), 0);
	json_decref(h);
	/* Port 0 asked for by name while a holds it: busy. */
	assert_int_equal(agent_client_connect_port(&c, v.dir, 0, 300, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "in use"));
	/* Released by a's close: a new session gets port 0 again. */
	agent_client_close(&a);
	assert_int_equal(agent_client_connect(&c, v.dir, WAIT_MS, &err), 0);
	assert_int_equal(c.port, 0);
	agent_client_close(&c);
	agent_client_close(&b);

	/* Every lock held elsewhere (another open file description): EBUSY in the end. */
	int locks[AGENT_CLIENT_PORTS];
	for (int i = 0; i < AGENT_CLIENT_PORTS; i++) {
		char p[256];
		snprintf(p, sizeof(p), "%s/agent.%d.lock", v.dir, i);
		locks[i] = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		assert_true(locks[i] >= 0);
		assert_int_equal(flock(locks[i], LOCK_EX | LOCK_NB), 0);
	}
	assert_int_equal(agent_client_connect(&c, v.dir, 300, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "all 8 agent ports"));
	for (int i = 0; i < AGENT_CLIENT_PORTS; i++)
		close(locks[i]);

	/* Nothing listening on a port: refused, said so (after the deadline). */
	assert_int_equal(agent_client_connect_port(&c, v.dir, 5, 300, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "agent.5.sock"));
	/* A missing run directory: the VM does not run. */
	char gone[256];
	snprintf(gone, sizeof(gone), "%s/instances/nope", v.root);
	assert_int_equal(agent_client_connect(&c, gone, 300, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "is the VM running"));
	vm_end(&v);
}

/* ---------------------------------------------------------------- the reconnect rule */

/* (In the fake agent's child: failures exit, they do not assert.) */
static void send_raw_frame(int fd, unsigned type, const char *payload)
{
	uint8_t hdr[AGENT_FRAME_HEADER];
	size_t n = payload ? strlen(payload) : 0;
	if (agent_frame_header(hdr, type, n) < 0 || write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
	    (n && write(fd, payload, n) != (ssize_t)n))
		_exit(60);
}

/* Waits for the host to hang up (read() == 0), discarding what it sends. */
static void until_hangup(int fd)
{
	char buf[4096];
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, WAIT_MS) != 1)
			_exit(20);
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return;
	}
}

/* What a fake agent does on its Nth connection. */
enum fake_step { STEP_SILENT, STEP_OLD_OUTPUT, STEP_GARBAGE, STEP_EOF, STEP_HELLO, STEP_HELLO_V2 };

static pid_t fake_agent(struct fake_vm *v, const enum fake_step *steps, int nsteps)
{
	int lfd = listen_port(v, 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < nsteps; i++) {
			struct pollfd p = { .fd = lfd, .events = POLLIN };
			if (poll(&p, 1, WAIT_MS) != 1)
				_exit(30 + i);
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				_exit(50);
			switch (steps[i]) {
			case STEP_SILENT:
				until_hangup(fd);
				break;
			case STEP_OLD_OUTPUT:
				send_raw_frame(fd, AGENT_STDOUT, "output of an old session");
				until_hangup(fd);
				break;
			case STEP_GARBAGE:
				if (write(fd, "\0\0\0\0\x04junk", 9) != 9)
					_exit(61);
				until_hangup(fd);
				break;
			case STEP_EOF:
				break;
			case STEP_HELLO_V2:
				send_raw_frame(fd, AGENT_HELLO, "{\"version\":2,\"agent\":\"future\"}");
				until_hangup(fd);
				break;
			case STEP_HELLO: {
				send_raw_frame(fd, AGENT_HELLO, "{\"version\":1,\"agent\":\"fake\",\"port\":\"agent.0\"}");
				/* One health request. */
				char buf[256];
				ssize_t n = read(fd, buf, sizeof(buf));
				if (n < 5 || buf[4] != AGENT_REQUEST)
					_exit(51);
				send_raw_frame(fd, AGENT_RESPONSE, "{\"status\":\"ok\"}");
				until_hangup(fd);
				break;
			}
			}
			close(fd);
		}
		_exit(0);
	}
	close(lfd);
	return pid;
}

static void expect_exit0(pid_t pid)
{
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the fake agent ended with status 0x%x", st);
}

static void hello_rule(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_dirs(&v);
	/* No HELLO in time, an old session's output, bytes that are not
	 * frames, an EOF: each is a disconnect and a new attempt. */
	const enum fake_step steps[] = { STEP_SILENT, STEP_OLD_OUTPUT, STEP_GARBAGE, STEP_EOF, STEP_HELLO };
	pid_t pid = fake_agent(&v, steps, 5);
	struct agent_client c = AGENT_CLIENT_INIT;
	struct gr_error err = { 0 };
	if (agent_client_connect(&c, v.dir, 4 * WAIT_MS, &err) < 0)
		fail_msg("connect: %s", err.msg);
	assert_string_equal(json_string_value(json_object_get(c.hello, "agent")), "fake");
	json_t *h = NULL;
	assert_int_equal(agent_client_health(&c, WAIT_MS, &h, &err), 0);
	json_decref(h);
	agent_client_close(&c);
	expect_exit0(pid);

	/* Another protocol version: refused at once, said so. */
	char sock[256];
	snprintf(sock, sizeof(sock), "%s/agent.0.sock", v.dir);
	unlink(sock);
	const enum fake_step v2[] = { STEP_HELLO_V2 };
	pid = fake_agent(&v, v2, 1);
	assert_int_equal(agent_client_connect(&c, v.dir, WAIT_MS, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err.msg, "version 2"));
	agent_client_close(&c);
	expect_exit0(pid);

	/* An agent that never says HELLO: ETIMEDOUT at the deadline. */
	unlink(sock);
	const enum fake_step silent[] = { STEP_SILENT };
	pid = fake_agent(&v, silent, 1);
	assert_int_equal(agent_client_connect_port(&c, v.dir, 0, 500, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "HELLO"));
	agent_client_close(&c);
	expect_exit0(pid);
	v.pid = -1;
	vm_end(&v);
}

/* ---------------------------------------------------------------- vsock (gureum-vmm) */

static int listen_vsock_sock(struct fake_vm *v, const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", v->dir, name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

/* (In a child.) Reads one line a byte at a time, as gureum-vmm does: 0 when it is exactly want. */
static int read_connect_line(int fd, const char *want)
{
	char line[64];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, WAIT_MS) != 1 || read(fd, line + n, 1) != 1)
			return -1;
		if (line[n++] == '\n')
			break;
	}
	line[n] = 0;
	return strcmp(line, want) == 0 ? 0 : -1;
}

static int vsock_listen_fd = -1;
static unsigned long vsock_accepted;

/* The agent's watch hook standing in for gureum-vmm and the guest's
 * listener: accepts on vsock.sock, answers the CONNECT line, and serves the
 * connection as an accepted vsock stream. */
static void vsock_watch(struct agent *a, void *ctx)
{
	(void)ctx;
	int fd = accept4(vsock_listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (read_connect_line(fd, "CONNECT 1024\n") < 0)
		_exit(40);
	char ok[32];
	int n = snprintf(ok, sizeof(ok), "OK %lu\n", 1073741824ul + vsock_accepted);
	if (write(fd, ok, (size_t)n) != n)
		_exit(41);
	char name[32];
	snprintf(name, sizeof(name), "vsock:1024#%lu", ++vsock_accepted);
	struct gr_error err = { 0 };
	if (agent_add_port(a, fd, name, AGENT_PORT_STREAM, &err) < 0)
		_exit(42);
}

/* A VM as gureum-vmm's: vsock.sock (or the socket `name`) only, the real agent behind it. */
static void vm_start_vsock_agent_at(struct fake_vm *v, const char *name)
{
	vm_dirs(v);
	int lfd = listen_vsock_sock(v, name);
	int stop[2], shut[2];
	assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
	assert_int_equal(pipe2(shut, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(stop[1]);
		close(shut[0]);
		shut_w_fd = shut[1];
		vsock_listen_fd = lfd;
		struct agent_hooks hooks = { .shutdown = shutdown_hook, .log = log_hook, .watch = vsock_watch };
		struct agent *a = NULL;
		struct gr_error err = { 0 };
		if (agent_new(&a, &hooks, &err) < 0)
			_exit(10);
		agent_set_watch_fd(a, lfd);
		agent_set_stop_fd(a, stop[0]);
		int r = agent_run(a, &err);
		agent_free(a);
		_exit(r < 0 ? 13 : 0);
	}
	close(lfd);
	close(stop[0]);
	close(shut[1]);
	v->pid = pid;
	v->stop_w = stop[1];
	v->shut_r = shut[0];
}

static void vm_start_vsock_agent(struct fake_vm *v)
{
	vm_start_vsock_agent_at(v, "vsock.sock");
}

static void *rename_later(void *arg)
{
	struct fake_vm *v = arg;
	char from[300], to[300];
	snprintf(from, sizeof(from), "%s/vsock.later", v->dir);
	snprintf(to, sizeof(to), "%s/vsock.sock", v->dir);
	nanosleep(&(struct timespec){ .tv_nsec = 300 * 1000 * 1000 }, NULL);
	if (rename(from, to) < 0)
		abort();
	return NULL;
}

/* A VM just started: gureum-vmm makes vsock.sock only once it runs, after
 * the client began looking. The client still finds it. */
static void vsock_appears_late(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_start_vsock_agent_at(&v, "vsock.later");
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, rename_later, &v), 0);
	struct agent_client a = AGENT_CLIENT_INIT;
	struct gr_error err = { 0 };
	int r = agent_client_connect(&a, v.dir, WAIT_MS, &err);
	pthread_join(t, NULL);
	if (r < 0)
		fail_msg("connect: %s", err.msg);
	assert_true(a.vsock);
	assert_int_equal(a.lock_fd, -1);
	agent_client_close(&a);
	vm_end(&v);
}

static void vsock_sessions(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_start_vsock_agent(&v);
	struct agent_client a = AGENT_CLIENT_INIT, b = AGENT_CLIENT_INIT;
	struct gr_error err = { 0 };
	if (agent_client_connect(&a, v.dir, WAIT_MS, &err) < 0)
		fail_msg("connect: %s", err.msg);
	assert_true(a.vsock);
	assert_int_equal(a.port, 1024);
	assert_int_equal(a.vsock_host_port, 1073741824ul);
	assert_string_equal(json_string_value(json_object_get(a.hello, "port")), "vsock:1024#1");
	/* A second session at once: its own connection, no port lock. */
	if (agent_client_connect(&b, v.dir, WAIT_MS, &err) < 0)
		fail_msg("connect: %s", err.msg);
	assert_string_equal(json_string_value(json_object_get(b.hello, "port")), "vsock:1024#2");
	assert_int_equal(b.lock_fd, -1);
	char lock[256];
	snprintf(lock, sizeof(lock), "%s/agent.0.lock", v.dir);
	assert_int_equal(access(lock, F_OK), -1);
	/* An exec waiting for its stdin on one, requests on the other meanwhile. */
	json_t *req = json_pack("{s:s, s:[s,s,s]}", "op", "exec", "args", "sh", "-c", "read x; echo got-$x");
	assert_int_equal(agent_client_queue_json(&a, AGENT_REQUEST, req, &err), 0);
	json_decref(req);
	struct agent_frame f;
	assert_int_equal(agent_client_recv(&a, &f, WAIT_MS, &err), 1);
	assert_int_equal(f.type, AGENT_RESPONSE);
	json_t *h = NULL;
	assert_int_equal(agent_client_health(&b, WAIT_MS, &h, &err), 0);
	assert_string_equal(json_string_value(json_object_get(h, "status")), "ok");
	json_decref(h);
	assert_int_equal(agent_client_queue(&a, AGENT_STDIN, "go\n", 3, &err), 0);
	char out[64] = "";
	for (;;) {
		assert_int_equal(agent_client_recv(&a, &f, WAIT_MS, &err), 1);
		if (f.type == AGENT_STDOUT)
			strncat(out, (const char *)f.payload, f.payload_len);
		if (f.type == AGENT_EXIT)
			break;
	}
	assert_string_equal(out, "got-go\n");
	agent_client_close(&a);
	agent_client_close(&b);
	vm_end(&v);
}

/* What a fake gureum-vmm does with each connection (the last step repeats). */
enum vsock_step { VS_OK, VS_REFUSE, VS_GARBAGE, VS_NO_LINE, VS_SILENT };

/* Reports on rep: 'c' per CONNECT line as expected, 'x' for another one. */
static pid_t fake_vsock(struct fake_vm *v, const enum vsock_step *steps, int nsteps, int *rep_r)
{
	int lfd = listen_vsock_sock(v, "vsock.sock");
	int rep[2];
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(rep[0]);
		for (int i = 0;; i++) {
			struct pollfd p = { .fd = lfd, .events = POLLIN };
			if (poll(&p, 1, WAIT_MS) != 1)
				_exit(0);   /* the test is over */
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				_exit(50);
			char ok = read_connect_line(fd, "CONNECT 1024\n") == 0 ? 'c' : 'x';
			if (write(rep[1], &ok, 1) != 1)
				_exit(51);
			switch (steps[i < nsteps ? i : nsteps - 1]) {
			case VS_OK:
				/* The answer and the agent's HELLO in one write. */
				if (write(fd, "OK 1073741999\n", 14) != 14)
					_exit(52);
				send_raw_frame(fd, AGENT_HELLO, "{\"version\":1,\"agent\":\"fake\",\"port\":\"vsock:1024#1\"}");
				until_hangup(fd);
				break;
			case VS_REFUSE:
				break;   /* nothing listens in the guest: closed */
			case VS_GARBAGE:
				if (write(fd, "ERR no\n", 7) != 7)
					_exit(53);
				until_hangup(fd);
				break;
			case VS_NO_LINE: {
				char junk[40];
				memset(junk, 'A', sizeof(junk));
				if (write(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk))
					_exit(54);
				until_hangup(fd);
				break;
			}
			case VS_SILENT:
				until_hangup(fd);
				break;
			}
			close(fd);
		}
	}
	close(lfd);
	close(rep[1]);
	*rep_r = rep[0];
	return pid;
}

/* Ends the fake (it exits once nobody connects for a while: killed instead)
 * and checks every CONNECT line it got; returns how many. */
static int fake_vsock_end(struct fake_vm *v, pid_t pid, int rep_r)
{
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	char buf[256];
	ssize_t n = read(rep_r, buf, sizeof(buf));
	close(rep_r);
	assert_true(n >= 0);
	for (ssize_t i = 0; i < n; i++)
		assert_int_equal(buf[i], 'c');
	char sock[256];
	snprintf(sock, sizeof(sock), "%s/vsock.sock", v->dir);
	unlink(sock);
	return (int)n;
}

static void vsock_handshake_rules(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_dirs(&v);
	struct agent_client c = AGENT_CLIENT_INIT;
	struct gr_error err = { 0 };
	int rep;

	/* Refused while the guest boots, then the answer (with HELLO right behind it). */
	const enum vsock_step boot[] = { VS_REFUSE, VS_REFUSE, VS_OK };
	pid_t pid = fake_vsock(&v, boot, 3, &rep);
	if (agent_client_connect(&c, v.dir, 4 * WAIT_MS, &err) < 0)
		fail_msg("connect: %s", err.msg);
	assert_true(c.vsock);
	assert_int_equal(c.vsock_host_port, 1073741999ul);
	assert_string_equal(json_string_value(json_object_get(c.hello, "agent")), "fake");
	agent_client_close(&c);
	assert_int_equal(fake_vsock_end(&v, pid, rep), 3);

	/* Refused until the deadline: said so. */
	const enum vsock_step refuse[] = { VS_REFUSE };
	pid = fake_vsock(&v, refuse, 1, &rep);
	assert_int_equal(agent_client_connect(&c, v.dir, 300, &err), -ECONNREFUSED);
	assert_non_null(strstr(err.msg, "vsock port 1024 refused the connection"));
	agent_client_close(&c);
	assert_true(fake_vsock_end(&v, pid, rep) >= 1);

	/* Another answer: -EPROTO at once (no retry), showing it. */
	const enum vsock_step garbage[] = { VS_GARBAGE };
	pid = fake_vsock(&v, garbage, 1, &rep);
	assert_int_equal(agent_client_connect(&c, v.dir, WAIT_MS, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "answered CONNECT 1024 with \"ERR no\""));
	agent_client_close(&c);
	assert_int_equal(fake_vsock_end(&v, pid, rep), 1);

	/* No end of line within the limit: the same. */
	const enum vsock_step noline[] = { VS_NO_LINE };
	pid = fake_vsock(&v, noline, 1, &rep);
	assert_int_equal(agent_client_connect(&c, v.dir, WAIT_MS, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "no end of line"));
	agent_client_close(&c);
	assert_int_equal(fake_vsock_end(&v, pid, rep), 1);

	/* No answer at all: ETIMEDOUT at the deadline. */
	const enum vsock_step silent[] = { VS_SILENT };
	pid = fake_vsock(&v, silent, 1, &rep);
	assert_int_equal(agent_client_connect(&c, v.dir, 500, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "no answer to CONNECT 1024"));
	agent_client_close(&c);
	assert_true(fake_vsock_end(&v, pid, rep) >= 1);

	/* vsock.sock gone with its VM: nothing listens. */
	assert_int_equal(agent_client_connect_port(&c, v.dir, 0, 200, &err), -ENOENT);
	v.pid = -1;
	vm_end(&v);
}

/* ---------------------------------------------------------------- the vm-exec helper */

struct helper {
	pid_t pid;
	int in_w, out_r, err_r;
};

/* supervisor_vm_exec in a child whose stdio are pipes (as gureumd spawns it). */
static void helper_start(struct helper *h, struct fake_vm *v, const char *req_json, const char *console)
{
	int in[2], out[2], er[2];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(er, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(er[1], 2);
		/* Nothing else of the test's (the other pipe ends, the agent's stop pipe). */
		close_range(3, ~0u, 0);
		json_t *req = json_loads(req_json, 0, NULL);
		if (!req)
			_exit(99);
		struct gr_error err = { 0 };
		int code = supervisor_vm_exec(v->root, "vm1", req, console, &err);
		json_decref(req);
		if (code < 0) {
			fprintf(stderr, "vm-exec: %s\n", err.msg);
			_exit(err.code == ENOENT ? 127 : 126);
		}
		_exit(code);
	}
	close(in[0]);
	close(out[1]);
	close(er[1]);
	*h = (struct helper){ .pid = pid, .in_w = in[1], .out_r = out[0], .err_r = er[0] };
}

/* Reads fd to its end (EOF or EIO). */
static char *slurp(int fd)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	assert_non_null(b);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, WAIT_MS) != 1)
			fail_msg("no end of output (got: %.*s)", (int)n, b);
		ssize_t r = read(fd, b + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n + 1 >= cap) {
			cap *= 2;
			b = realloc(b, cap);
			assert_non_null(b);
		}
	}
	b[n] = 0;
	return b;
}

/* What is in fd now (for failure messages). */
static const char *pending_text(int fd)
{
	static char buf[4096];
	buf[0] = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (fd >= 0 && poll(&p, 1, 0) == 1) {
		ssize_t r = read(fd, buf, sizeof(buf) - 1);
		buf[r > 0 ? r : 0] = 0;
	}
	return buf;
}

/* Reads fd until needle has been seen; returns what was read. errfd: shown on failure. */
static char *read_until_or(int fd, const char *needle, int errfd)
{
	size_t cap = 65536, n = 0;
	char *b = calloc(1, cap);
	assert_non_null(b);
	while (!strstr(b, needle)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, WAIT_MS) != 1)
			fail_msg("\"%s\" not seen (got: %s; stderr: %s)", needle, b, pending_text(errfd));
		ssize_t r = read(fd, b + n, cap - n - 1);
		if (r <= 0)
			fail_msg("end of output before \"%s\" (got: %s; stderr: %s)", needle, b, pending_text(errfd));
		n += (size_t)r;
		b[n] = 0;
		assert_true(n + 1 < cap);
	}
	return b;
}

static char *read_until(int fd, const char *needle)
{
	return read_until_or(fd, needle, -1);
}

static int helper_wait(struct helper *h)
{
	int st = 0;
	assert_int_equal(waitpid(h->pid, &st, 0), h->pid);
	if (h->in_w >= 0)
		close(h->in_w);
	close(h->out_r);
	close(h->err_r);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void vm_exec_pipes(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_start_agent(&v, 4);   /* (the agent takes 4 listeners) */
	struct helper h;

	/* stdin to the command, its stdout and stderr apart, its exit code; the
	 * environment is the agent's defaults with the request's over them. */
	helper_start(&h, &v, "{\"args\":[\"sh\",\"-c\",\"cat; echo $FOO-$HOME >&2; exit 7\"],\"env\":[\"FOO=bar\"],"
			     "\"uid\":0,\"gid\":0}", NULL);
	assert_int_equal(write(h.in_w, "to stdin\n", 9), 9);
	close(h.in_w);
	h.in_w = -1;
	char *out = slurp(h.out_r), *err = slurp(h.err_r);
	assert_string_equal(out, "to stdin\n");
	assert_string_equal(err, "bar-/root\n");
	free(out);
	free(err);
	assert_int_equal(helper_wait(&h), 7);

	/* A signal sent to the helper goes to the command. */
	helper_start(&h, &v, "{\"args\":[\"sh\",\"-c\",\"echo ready; exec sleep 1000\"]}", NULL);
	free(read_until_or(h.out_r, "ready", h.err_r));
	assert_int_equal(kill(h.pid, SIGTERM), 0);
	assert_int_equal(helper_wait(&h), 128 + SIGTERM);

	/* A command that does not exist: said on stderr, 127. */
	helper_start(&h, &v, "{\"args\":[\"no-such-command\"],\"cwd\":\"/\"}", NULL);
	close(h.in_w);
	h.in_w = -1;
	err = slurp(h.err_r);
	assert_non_null(strstr(err, "no-such-command"));
	assert_non_null(strstr(err, "not found"));
	free(err);
	assert_int_equal(helper_wait(&h), 127);

	/* A large output: all of it, in order. */
	helper_start(&h, &v, "{\"args\":[\"sh\",\"-c\",\"head -c 3000000 /dev/zero | tr '\\\\0' x\"]}", NULL);
	out = slurp(h.out_r);
	assert_int_equal(strlen(out), 3000000);
	assert_int_equal(strspn(out, "x"), 3000000);
	free(out);
	assert_int_equal(helper_wait(&h), 0);

	/* Bad requests never reach the agent. */
	helper_start(&h, &v, "{\"args\":[]}", NULL);
	err = slurp(h.err_r);
	assert_non_null(strstr(err, "args"));
	free(err);
	assert_int_equal(helper_wait(&h), 126);
	vm_end(&v);
}

static void vm_exec_tty(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_start_agent(&v, 4);   /* (the agent takes 4 listeners) */
	char console[256];
	snprintf(console, sizeof(console), "%s/console.sock", v.root);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", console);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 1), 0);

	struct helper h;
	helper_start(&h, &v,
		     "{\"args\":[\"sh\",\"-c\",\"[ -t 0 ] && echo TTY-$TERM; stty size; read x; stty size; "
		     "echo got-$x; exit 5\"],\"terminal\":true,\"width\":100,\"height\":40}",
		     console);
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(conn >= 0);
	int master = -1;
	struct gr_error err = { 0 };
	assert_int_equal(terminal_recv_fd(conn, &master, &err), 0);
	close(conn);
	/* The size given is the terminal's, here and in the guest. */
	struct winsize ws;
	assert_int_equal(ioctl(master, TIOCGWINSZ, &ws), 0);
	assert_int_equal(ws.ws_col, 100);
	assert_int_equal(ws.ws_row, 40);
	char *out = read_until(master, "40 100");
	assert_non_null(strstr(out, "TTY-xterm"));
	free(out);
	/* A resize of the master reaches the guest's terminal (SIGWINCH ->
	 * RESIZE) before the line typed after it. */
	ws = (struct winsize){ .ws_row = 50, .ws_col = 120 };
	assert_int_equal(ioctl(master, TIOCSWINSZ, &ws), 0);
	assert_int_equal(write(master, "abc\r", 4), 4);
	out = slurp(master);
	assert_non_null(strstr(out, "50 120"));
	assert_non_null(strstr(out, "got-abc"));
	free(out);
	close(master);
	assert_int_equal(helper_wait(&h), 5);

	/* A command that cannot start: the terminal was sent, the reason is on
	 * stderr, the code 127. */
	helper_start(&h, &v, "{\"args\":[\"no-such-command\"],\"terminal\":true}", console);
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_int_equal(terminal_recv_fd(conn, &master, &err), 0);
	close(conn);
	char *e = slurp(h.err_r);
	assert_non_null(strstr(e, "not found"));
	free(e);
	assert_int_equal(helper_wait(&h), 127);
	close(master);
	close(lfd);
	vm_end(&v);
}

/* The agent's connection ends mid-exec (the VM stopped): 137, said on stderr. */
static void vm_exec_agent_gone(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_start_agent(&v, 4);   /* (the agent takes 4 listeners) */
	struct helper h;
	helper_start(&h, &v, "{\"args\":[\"sh\",\"-c\",\"echo ready; exec sleep 1000\"]}", NULL);
	free(read_until_or(h.out_r, "ready", h.err_r));
	/* The whole agent goes (its sessions end, their commands are killed). */
	close(v.stop_w);
	v.stop_w = -1;
	char *e = slurp(h.err_r);
	assert_non_null(strstr(e, "connection ended"));
	free(e);
	assert_int_equal(helper_wait(&h), 137);
	vm_end(&v);
}

/* The vm-exec helper through gureum-vmm's vsock: the same session. */
static void vm_exec_over_vsock(void **state)
{
	(void)state;
	struct fake_vm v;
	vm_start_vsock_agent(&v);
	struct helper h;
	helper_start(&h, &v, "{\"args\":[\"sh\",\"-c\",\"cat; echo e >&2; exit 5\"]}", NULL);
	assert_int_equal(write(h.in_w, "over vsock\n", 11), 11);
	close(h.in_w);
	h.in_w = -1;
	char *out = slurp(h.out_r), *err = slurp(h.err_r);
	assert_string_equal(out, "over vsock\n");
	assert_string_equal(err, "e\n");
	free(out);
	free(err);
	assert_int_equal(helper_wait(&h), 5);
	vm_end(&v);
}

static void error_errno(void **state)
{
	(void)state;
	assert_int_equal(agent_error_errno("pull /x: No such file or directory"), ENOENT);
	assert_int_equal(agent_error_errno("exec: foo: command not found (PATH=/bin)"), ENOENT);
	assert_int_equal(agent_error_errno("pull /etc: is a directory"), EISDIR);
	assert_int_equal(agent_error_errno("push /x: rename: Is a directory"), EISDIR);
	assert_int_equal(agent_error_errno("push /x: chown 1:1: Operation not permitted"), EACCES);
	assert_int_equal(agent_error_errno("pull /dev/null: not a regular file"), EINVAL);
	assert_int_equal(agent_error_errno("something else"), EIO);
	assert_int_equal(agent_error_errno(NULL), EIO);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(error_errno),
		cmocka_unit_test(health_push_pull_shutdown),
		cmocka_unit_test(exec_frames),
		cmocka_unit_test(ports_and_locks),
		cmocka_unit_test(hello_rule),
		cmocka_unit_test(vsock_sessions),
		cmocka_unit_test(vsock_appears_late),
		cmocka_unit_test(vsock_handshake_rules),
		cmocka_unit_test(vm_exec_over_vsock),
		cmocka_unit_test(vm_exec_pipes),
		cmocka_unit_test(vm_exec_tty),
		cmocka_unit_test(vm_exec_agent_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
