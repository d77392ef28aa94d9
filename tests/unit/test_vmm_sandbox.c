/* Unit tests for src/vmm/sandbox.c: each case forks a child that hardens
 * itself and then tries allowed and forbidden operations; the parent checks
 * how the child ended (exit status, or SIGSYS for a seccomp kill). Also the
 * control API served from a sandboxed child. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/api.h"
#include "vmm/sandbox.h"

/* Runs fn in a child; returns its wait status. The child reports a failed
 * expectation by exiting with the line number. */
static int in_child(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg)); /* _exit: no atexit handlers, no leak checker, under the filter */
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

#define CHECK(c) do { if (!(c)) return __LINE__; } while (0)

static void assert_exited_ok(int st)
{
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "child: %s %d\n", WIFEXITED(st) ? "exited" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void assert_killed_by_seccomp(int st)
{
	if (!WIFSIGNALED(st))
		fprintf(stderr, "child exited with %d instead of being killed\n", WEXITSTATUS(st));
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
}

/* ---- allowed ---- */

static void *thread_fn(void *p)
{
	int *fds = p;
	char c = 't';
	return (void *)(intptr_t)write(fds[1], &c, 1);
}

static int allowed_child(void *arg)
{
	(void)arg;
	int fds[2];
	CHECK(pipe2(fds, O_CLOEXEC) == 0); /* before the filter: pipe2 is not allowed after */
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(devnull >= 0);
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	CHECK(getpid() > 0);
	CHECK(syscall(SYS_gettid) > 0);
	CHECK(write(fds[1], "x", 1) == 1);
	char c;
	CHECK(read(fds[0], &c, 1) == 1 && c == 'x');
	/* Memory: malloc big enough for mmap, realloc (mremap), read/write mappings. */
	char *big = malloc(8 << 20);
	CHECK(big);
	memset(big, 1, 8 << 20);
	big = realloc(big, 16 << 20);
	CHECK(big);
	free(big);
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	CHECK(mprotect(m, 4096, PROT_READ) == 0);
	CHECK(munmap(m, 4096) == 0);
	/* A thread (clone with CLONE_THREAD after clone3 answers ENOSYS), futex, join. */
	pthread_t t;
	CHECK(pthread_create(&t, NULL, thread_fn, fds) == 0);
	void *ret;
	CHECK(pthread_join(t, &ret) == 0 && (intptr_t)ret == 1);
	CHECK(read(fds[0], &c, 1) == 1 && c == 't');
	/* Time, randomness, fstat, fcntl flags. */
	struct timespec ts = { 0, 1000 };
	CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
	CHECK(nanosleep(&(struct timespec){ 0, 1000 }, NULL) == 0);
	char rnd[8];
	CHECK(getrandom(rnd, sizeof(rnd), 0) == sizeof(rnd));
	struct stat st;
	CHECK(fstat(fds[0], &st) == 0 && S_ISFIFO(st.st_mode));
	int fl = fcntl(fds[0], F_GETFL);
	CHECK(fl >= 0 && fcntl(fds[0], F_SETFL, fl | O_NONBLOCK) == 0);
	/* KVM_RUN passes the filter (the kernel then says ENOTTY: not a vCPU). */
	CHECK(ioctl(devnull, KVM_RUN, 0) == -1 && errno == ENOTTY);
	/* virtio-net's offloads, with the bits it uses. */
	CHECK(ioctl(devnull, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) == -1 && errno == ENOTTY);
	CHECK(ioctl(devnull, TUNSETOFFLOAD, 0) == -1 && errno == ENOTTY);
	/* So do the userspace IOAPIC's: its messages and its level-triggered routes. */
	CHECK(ioctl(devnull, KVM_SIGNAL_MSI, 0) == -1 && errno == ENOTTY);
	CHECK(ioctl(devnull, KVM_SET_GSI_ROUTING, 0) == -1 && errno == ENOTTY);
	/* The terminal restored at exit (--serial/--console stdio on a tty). */
	struct termios tio = { 0 };
	CHECK(ioctl(devnull, TCSETS, &tio) == -1 && errno == ENOTTY);
	/* Signals: a handler-less mask change and a tgkill of an ignored signal. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
	CHECK(pthread_kill(pthread_self(), SIGUSR2) == 0);
	return 0;
}

static void test_seccomp_allows(void **state)
{
	(void)state;
	assert_exited_ok(in_child(allowed_child, NULL));
}

/* ---- forbidden: each kills the process ---- */

static char forbidden_path[64];

static int forbid_execve(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	char *argv[] = { "true", NULL };
	execve("/bin/true", argv, NULL);
	return 1;
}

static int forbid_socket(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	socket(AF_INET, SOCK_STREAM, 0);
	return 1;
}

static int forbid_open(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	open(forbidden_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	return 1;
}

static int forbid_kvm_ioctl(void *a)
{
	(void)a;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct gr_error err = { 0 };
	if (fd < 0 || vmm_sandbox_seccomp(&err) < 0)
		return 100;
	ioctl(fd, KVM_CREATE_VCPU, 0);
	return 1;
}

/* TUNSETOFFLOAD with a bit virtio-net never sets (UFO); TUNSETVNETHDRSZ,
 * which is only needed before the sandbox. */
static int forbid_tun_offload_bits(void *a)
{
	(void)a;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct gr_error err = { 0 };
	if (fd < 0 || vmm_sandbox_seccomp(&err) < 0)
		return 100;
	ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_UFO);
	return 1;
}

static int forbid_tun_vnet_hdr_size(void *a)
{
	(void)a;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct gr_error err = { 0 };
	if (fd < 0 || vmm_sandbox_seccomp(&err) < 0)
		return 100;
	int sz = 10;
	ioctl(fd, TUNSETVNETHDRSZ, &sz);
	return 1;
}

static int forbid_exec_mapping(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return 1;
}

static int forbid_fork(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0); /* a new process, not a thread */
	_exit(1); /* (only reached if allowed, in parent and child alike) */
}

static int forbid_dup(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	fcntl(0, F_DUPFD_CLOEXEC, 0);
	return 1;
}

static int forbid_ptrace(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
	return 1;
}

static void test_seccomp_kills(void **state)
{
	(void)state;
	snprintf(forbidden_path, sizeof(forbidden_path), "/tmp/gr-sandbox-%d", (int)getpid());
	unlink(forbidden_path);
	int (*const cases[])(void *) = { forbid_execve, forbid_socket, forbid_open, forbid_kvm_ioctl,
					 forbid_exec_mapping, forbid_fork, forbid_dup, forbid_ptrace,
					 forbid_tun_offload_bits, forbid_tun_vnet_hdr_size };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_killed_by_seccomp(in_child(cases[i], NULL));
	struct stat st;
	assert_int_equal(stat(forbidden_path, &st), -1); /* the file was never created */
}

/* vsock's guest-initiated connections: a unix stream socket and connect are
 * allowed (the kernel answers), other families and types are not. */
static int unix_connect_child(void *a)
{
	const char *path = a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(write(fd, "v", 1) == 1);
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.missing", path);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 && errno == ENOENT);
	return 0;
}

static void test_seccomp_allows_unix_connect(void **state)
{
	(void)state;
	char path[64];
	snprintf(path, sizeof(path), "/tmp/gr-sandbox-unix-%d", (int)getpid());
	unlink(path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_exited_ok(in_child(unix_connect_child, path));
	int c = accept(l, NULL, NULL);
	char b = 0;
	assert_true(c >= 0);
	assert_int_equal(read(c, &b, 1), 1);
	assert_int_equal(b, 'v');
	close(c);
	close(l);
	unlink(path);
}

static int forbid_inet6_socket(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return 1;
}

static int forbid_unix_dgram(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	socket(AF_UNIX, SOCK_DGRAM, 0);
	return 1;
}

static int forbid_bind(void *a)
{
	(void)a;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct gr_error err = { 0 };
	if (fd < 0 || vmm_sandbox_seccomp(&err) < 0)
		return 100;
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "\0gr-sandbox-bind" };
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	return 1;
}

static void test_seccomp_kills_other_sockets(void **state)
{
	(void)state;
	assert_killed_by_seccomp(in_child(forbid_socket, NULL));   /* AF_INET */
	assert_killed_by_seccomp(in_child(forbid_inet6_socket, NULL));
	assert_killed_by_seccomp(in_child(forbid_unix_dgram, NULL));
	assert_killed_by_seccomp(in_child(forbid_bind, NULL));
}

/* With ERRNO(EPERM) as the default action the same calls fail instead. */
static int errno_child(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp_with(SCMP_ACT_ERRNO(EPERM), &err) < 0)
		return 100;
	CHECK(socket(AF_INET, SOCK_STREAM, 0) == -1 && errno == EPERM);
	CHECK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0) == -1 && errno == EPERM);
	CHECK(socket(AF_NETLINK, SOCK_RAW, 0) == -1 && errno == EPERM);
	CHECK(open(forbidden_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) == -1 && errno == EPERM);
	CHECK(syscall(SYS_clone3, NULL, 0) == -1 && errno == ENOSYS);
	CHECK(getpid() > 0);
	return 0;
}

static void test_seccomp_errno_mode(void **state)
{
	(void)state;
	snprintf(forbidden_path, sizeof(forbidden_path), "/tmp/gr-sandbox-%d", (int)getpid());
	assert_exited_ok(in_child(errno_child, NULL));
	struct stat st;
	assert_int_equal(stat(forbidden_path, &st), -1);
}

/* TSYNC: a thread started before the filter is covered too. */
static int tsync_fds[2];

static void *late_thread(void *p)
{
	(void)p;
	char c;
	if (read(tsync_fds[0], &c, 1) != 1)
		return NULL;
	socket(AF_INET, SOCK_DGRAM, 0);
	return NULL;
}

static int tsync_child(void *a)
{
	(void)a;
	CHECK(pipe2(tsync_fds, O_CLOEXEC) == 0);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, late_thread, NULL) == 0);
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp(&err) < 0)
		return 100;
	CHECK(write(tsync_fds[1], "go", 1) == 1);
	pthread_join(t, NULL);
	return 1;
}

static void test_seccomp_tsync(void **state)
{
	(void)state;
	assert_killed_by_seccomp(in_child(tsync_child, NULL));
}

/* ---- the API served from a sandboxed process ---- */

struct api_child {
	char path[128];
	int ready[2], done[2];
};

static int st_status(void *o, struct vmm_api_status *st, struct gr_error *err)
{
	(void)o; (void)err;
	*st = (struct vmm_api_status){ .state = VMM_API_RUNNING, .vcpus = 1, .memory = 1 << 20, .uptime = 0.25 };
	return 0;
}
static int st_action(void *o, struct gr_error *err) { (void)o; (void)err; return 0; }
static int st_metrics(void *o, json_t *m, struct gr_error *err)
{
	(void)o; (void)err;
	uint64_t c[64] = { [KVM_EXIT_IO] = 5 };
	return vmm_api_metrics_add_exits(m, c, 64);
}
static int st_stop(void *o, unsigned int timeout_ms, struct gr_error *err) { (void)o; (void)timeout_ms; (void)err; return 0; }
static const struct vmm_api_ops st_ops = { st_status, st_action, st_action, st_stop, st_metrics };

static int api_child(void *arg)
{
	struct api_child *a = arg;
	struct gr_error err = { 0 };
	struct vmm_api *api;
	close(a->ready[0]);
	close(a->done[1]);
	if (vmm_api_open(a->path, &st_ops, NULL, &api, &err) < 0)
		return 100;
	if (vmm_api_unlink_at_exit(api, &err) < 0)
		return 101;
	if (vmm_sandbox_seccomp_api(&err) < 0)   /* what gureum-vmm-api runs under */
		return 102;
	CHECK(write(a->ready[1], "r", 1) == 1);
	char c;
	while (read(a->done[0], &c, 1) < 0 && errno == EINTR)
		;
	vmm_api_close(api); /* under the filter: stop the thread, leave the file to the watcher */
	return 0;
}

static int http(const char *path, const char *req, char *out, size_t n)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "http: connect %s: %m\n", path);
		return -1;
	}
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		fprintf(stderr, "http: write: %m\n");
		return -1;
	}
	size_t got = 0;
	ssize_t k;
	while (got < n - 1 && (k = read(fd, out + got, n - 1 - got)) > 0)
		got += (size_t)k;
	if (k < 0)
		fprintf(stderr, "http: read: %m\n");
	out[got] = '\0';
	close(fd);
	int status = 0;
	return sscanf(out, "HTTP/1.1 %d", &status) == 1 ? status : -1;
}

/* The API process's own filter: no thread creation, sockets, files or ioctls. */
static int api_forbid_socket(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp_api(&err) < 0)
		return 100;
	socket(AF_UNIX, SOCK_STREAM, 0);
	return 1;
}

static int api_forbid_open(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp_api(&err) < 0)
		return 100;
	open("/dev/null", O_RDONLY | O_CLOEXEC);
	return 1;
}

static int api_forbid_thread(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp_api(&err) < 0)
		return 100;
	pthread_t t;
	int fds[2] = { -1, -1 };
	pthread_create(&t, NULL, thread_fn, fds);   /* clone3 and clone are both refused */
	return 1;
}

static int api_forbid_ioctl(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp_api(&err) < 0)
		return 100;
	ioctl(0, TCGETS, NULL);
	return 1;
}

static int api_forbid_exec(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp_api(&err) < 0)
		return 100;
	char *argv[] = { "true", NULL };
	execve("/bin/true", argv, NULL);
	return 1;
}

static int api_allowed(void *a)
{
	(void)a;
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	struct gr_error err = { 0 };
	if (vmm_sandbox_seccomp_api(&err) < 0)
		return 100;
	CHECK(send(sv[0], "req", 3, MSG_NOSIGNAL) == 3);
	char buf[8];
	CHECK(recv(sv[1], buf, sizeof(buf), MSG_TRUNC | MSG_DONTWAIT) == 3);
	struct pollfd p = { .fd = sv[1], .events = POLLRDHUP };
	CHECK(shutdown(sv[0], SHUT_WR) == 0);
	CHECK(poll(&p, 1, 1000) == 1 && (p.revents & POLLRDHUP));
	void *m = malloc(1 << 20);
	CHECK(m);
	free(m);
	CHECK(prctl(PR_SET_NAME, "api") == 0);
	CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);
	return 0;
}

static void test_api_process_filter(void **state)
{
	(void)state;
	assert_exited_ok(in_child(api_allowed, NULL));
	int (*const cases[])(void *) = { api_forbid_socket, api_forbid_open, api_forbid_thread, api_forbid_ioctl,
					 api_forbid_exec };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_killed_by_seccomp(in_child(cases[i], NULL));
}

static void test_api_under_seccomp(void **state)
{
	(void)state;
	static struct api_child a;
	char dir[] = "/tmp/gr-sandbox-XXXXXX";
	assert_non_null(mkdtemp(dir));
	snprintf(a.path, sizeof(a.path), "%s/api.sock", dir);
	assert_int_equal(pipe2(a.ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(a.done, O_CLOEXEC), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(api_child(&a));
	close(a.ready[1]);
	close(a.done[0]);
	char c;
	assert_int_equal(read(a.ready[0], &c, 1), 1);
	char buf[4096] = "";
	assert_int_equal(http(a.path, "GET /vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof(buf)), 200);
	assert_non_null(strstr(buf, "\"state\":\"running\""));
	assert_int_equal(http(a.path, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof(buf)),
			 200);
	assert_non_null(strstr(buf, "\"io\":5"));
	assert_int_equal(http(a.path, "PUT /vm/actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 17\r\n\r\n"
				      "{\"action\":\"stop\"}", buf, sizeof(buf)), 202);
	assert_int_equal(http(a.path, "PUT /vm/actions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n"
				      "{]", buf, sizeof(buf)), 400);
	assert_int_equal(http(a.path, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof(buf)), 404);
	/* A keep-alive connection with two requests, one after the other. */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a.path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	const char *r1 = "GET /vm HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(write(fd, r1, strlen(r1)), (ssize_t)strlen(r1));
	size_t got = 0;
	buf[0] = '\0';
	while (!strstr(buf, "}") && got < sizeof(buf) - 1) { /* the body ends the response */
		ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
		assert_true(k > 0);
		got += (size_t)k;
		buf[got] = '\0';
	}
	assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
	assert_null(strstr(buf, "Connection: close"));
	const char *r2 = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	assert_int_equal(write(fd, r2, strlen(r2)), (ssize_t)strlen(r2));
	got = 0;
	ssize_t k;
	while ((k = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)k;
	buf[got] = '\0';
	close(fd);
	assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
	assert_non_null(strstr(buf, "\"io\":5"));
	close(a.done[1]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_exited_ok(st);
	/* The watcher removes the socket once the child is gone. */
	struct stat sb;
	int tries = 0;
	while (lstat(a.path, &sb) == 0 && tries++ < 500)
		usleep(10000);
	assert_int_equal(lstat(a.path, &sb), -1);
	assert_int_equal(rmdir(dir), 0);
}

/* The watcher also cleans up after a process killed outright. */
static void test_socket_removed_after_sigkill(void **state)
{
	(void)state;
	static struct api_child a;
	char dir[] = "/tmp/gr-sandbox-XXXXXX";
	assert_non_null(mkdtemp(dir));
	snprintf(a.path, sizeof(a.path), "%s/api.sock", dir);
	assert_int_equal(pipe2(a.ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(a.done, O_CLOEXEC), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(api_child(&a));
	close(a.ready[1]);
	close(a.done[0]);
	char c;
	assert_int_equal(read(a.ready[0], &c, 1), 1);
	struct stat sb;
	assert_int_equal(lstat(a.path, &sb), 0);
	kill(pid, SIGKILL);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	int tries = 0;
	while (lstat(a.path, &sb) == 0 && tries++ < 500)
		usleep(10000);
	assert_int_equal(lstat(a.path, &sb), -1);
	close(a.done[1]);
	close(a.ready[0]);
	assert_int_equal(rmdir(dir), 0);
}

/* ---- capabilities ---- */

static int caps_child(void *a)
{
	(void)a;
	struct gr_error err = { 0 };
	int r = vmm_sandbox_drop_caps(&err);
	if (r < 0) {
		fprintf(stderr, "drop_caps: %s\n", err.msg);
		return 100;
	}
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	CHECK(syscall(SYS_capget, &h, d) == 0);
	for (int i = 0; i < 2; i++)
		CHECK(d[i].effective == 0 && d[i].permitted == 0 && d[i].inheritable == 0);
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
	for (int c = 0; c <= CAP_LAST_CAP; c++)
		CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) <= 0);
	/* The bounding set is empty when we could change it (we held CAP_SETPCAP). */
	if (geteuid() == 0) {
		for (int c = 0; c <= CAP_LAST_CAP; c++)
			CHECK(prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 0);
		/* And root without capabilities is just a user: no chown of someone else's file. */
		CHECK(setuid(1) == -1 && errno == EPERM);
	}
	return 0;
}

static void test_drop_caps(void **state)
{
	(void)state;
	assert_exited_ok(in_child(caps_child, NULL));
}

static void *sleeper(void *p)
{
	int *fd = p;
	char c;
	(void)!read(*fd, &c, 1);
	return NULL;
}

static int caps_threads_child(void *a)
{
	(void)a;
	int fds[2];
	CHECK(pipe(fds) == 0);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, sleeper, &fds[0]) == 0);
	struct gr_error err = { 0 };
	int r = vmm_sandbox_drop_caps(&err);
	CHECK(r == -EBUSY && strstr(err.msg, "2 threads"));
	CHECK(write(fds[1], "x", 1) == 1);
	pthread_join(t, NULL);
	return 0;
}

static void test_drop_caps_refuses_threads(void **state)
{
	(void)state;
	assert_exited_ok(in_child(caps_threads_child, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seccomp_allows),
		cmocka_unit_test(test_seccomp_kills),
		cmocka_unit_test(test_seccomp_allows_unix_connect),
		cmocka_unit_test(test_seccomp_kills_other_sockets),
		cmocka_unit_test(test_seccomp_errno_mode),
		cmocka_unit_test(test_seccomp_tsync),
		cmocka_unit_test(test_api_process_filter),
		cmocka_unit_test(test_api_under_seccomp),
		cmocka_unit_test(test_socket_removed_after_sigkill),
		cmocka_unit_test(test_drop_caps),
		cmocka_unit_test(test_drop_caps_refuses_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
