/* Listening unix sockets (sock_cleanup.c): mode 0600, stale sockets replaced,
 * live sockets and other files refused, removal by the watcher at exit (also
 * when the owner is killed) and never of a file that is no longer ours. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/sock_cleanup.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/gr-sockc-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_in_dir(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", dir, name);
}

static bool exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

/* Waits up to 2 s for p to disappear. */
static bool gone_soon(const char *p)
{
	for (int i = 0; i < 200; i++) {
		if (!exists(p))
			return true;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	return false;
}

static void listens_with_mode_0600(void **state)
{
	(void)state;
	char p[128];
	path_in_dir(p, sizeof(p), "a.sock");
	struct sock_file sf;
	struct gr_error err = { 0 };
	mode_t old = umask(0);
	int fd = sock_file_listen(&sf, "--serial socket", p, 1, &err);
	umask(old);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	/* A client can connect. */
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, p);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(c);
	/* A second listener on a live socket is refused and leaves it alone. */
	struct sock_file sf2;
	assert_int_equal(sock_file_listen(&sf2, "--serial socket", p, 1, &err), -EADDRINUSE);
	assert_non_null(strstr(err.msg, "--serial socket"));
	assert_non_null(strstr(err.msg, "another process is listening"));
	assert_true(exists(p));
	close(fd);
	sock_file_remove(&sf);
	assert_false(exists(p));
	sock_file_remove(&sf); /* again: nothing */
}

static void replaces_a_stale_socket(void **state)
{
	(void)state;
	char p[128];
	path_in_dir(p, sizeof(p), "stale.sock");
	struct gr_error err = { 0 };
	struct sock_file sf;
	int fd = sock_file_listen(&sf, "x", p, 1, &err);
	assert_true(fd >= 0);
	close(fd); /* the file stays, nobody listens */
	assert_true(exists(p));
	struct sock_file sf2;
	fd = sock_file_listen(&sf2, "x", p, 1, &err);
	assert_true(fd >= 0);
	/* The first owner's record no longer matches the file: not removed. */
	sock_file_remove(&sf);
	assert_true(exists(p));
	sock_file_remove(&sf2);
	assert_false(exists(p));
	close(fd);
}

static void refuses_bad_paths(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct sock_file sf;
	char p[128];
	path_in_dir(p, sizeof(p), "regular");
	int f = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(f >= 0);
	close(f);
	assert_int_equal(sock_file_listen(&sf, "--console socket", p, 1, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "not a socket"));
	assert_true(exists(p));
	assert_int_equal(sock_file_listen(&sf, "x", "", 1, &err), -EINVAL);
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(sock_file_listen(&sf, "x", longp, 1, &err), -ENAMETOOLONG);
	assert_int_equal(sock_file_listen(&sf, "x", "/nonexistent-dir/x.sock", 1, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "bind"));
}

/* The owner is a child that forks the watcher and then dies as told. */
static void watcher_removes_on(int how)
{
	char p[128];
	path_in_dir(p, sizeof(p), "w.sock");
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gr_error err = { 0 };
		struct sock_file sf;
		int fd = sock_file_listen(&sf, "x", p, 1, &err);
		if (fd < 0 || sock_file_unlink_at_exit(&sf, &err) < 0 || sock_file_unlink_at_exit(&sf, &err) < 0)
			_exit(1);
		if (!exists(p))
			_exit(3);
		(void)!write(ready[1], "r", 1);
		if (how == 0) {
			sock_file_remove(&sf);
			_exit(0);
		}
		if (how == 1)
			_exit(0);
		pause(); /* killed */
		_exit(2);
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	if (how == 2)
		kill(pid, SIGKILL);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (how == 2)
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	else
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(gone_soon(p));
}

static void watcher_removes_after_close(void **state) { (void)state; watcher_removes_on(0); }
static void watcher_removes_after_exit(void **state) { (void)state; watcher_removes_on(1); }
static void watcher_removes_after_sigkill(void **state) { (void)state; watcher_removes_on(2); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(listens_with_mode_0600),
		cmocka_unit_test(replaces_a_stale_socket),
		cmocka_unit_test(refuses_bad_paths),
		cmocka_unit_test(watcher_removes_after_close),
		cmocka_unit_test(watcher_removes_after_exit),
		cmocka_unit_test(watcher_removes_after_sigkill),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
