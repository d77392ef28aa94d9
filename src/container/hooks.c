#include "hooks.h"
#include "../common/cleanup.h"
#include "../common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *const empty_env[] = { NULL };

static int run_one(const struct oci_hook *h, const char *name, size_t idx, const char *state_json,
		   struct gr_error *err)
{
	int in[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "hooks.%s[%zu]: pipe", name, idx);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(in[0]);
		close(in[1]);
		return gr_error_sys(err, e, "hooks.%s[%zu]: fork", name, idx);
	}
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		char *const fallback[] = { h->path, NULL };
		execve(h->path, h->args ? h->args : fallback, h->env ? h->env : empty_env);
		_exit(127);
	}
	close(in[0]);
	/* The hook may exit without reading its stdin: SIGPIPE is ignored by
	 * the runtime, so this write just fails with EPIPE. */
	(void)gr_write_all(in[1], state_json, strlen(state_json));
	close(in[1]);

	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int timeout_ms = h->timeout.set ? h->timeout.v * 1000 : -1;
	if (pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int r;
		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		close(pidfd);
		if (r == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return gr_error_set(err, ETIMEDOUT, "hooks.%s[%zu] (%s): timed out after %d s", name, idx,
					    h->path, h->timeout.v);
		}
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return gr_error_sys(err, errno, "hooks.%s[%zu] (%s): waitpid", name, idx, h->path);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return gr_error_set(err, ENOEXEC, "hooks.%s[%zu] (%s): cannot be executed (exit status 127)",
				    name, idx, h->path);
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		return gr_error_set(err, EIO, "hooks.%s[%zu] (%s): exited with status %d", name, idx, h->path,
				    WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return gr_error_set(err, EIO, "hooks.%s[%zu] (%s): killed by signal %d", name, idx, h->path,
				    WTERMSIG(status));
	return 0;
}

int hooks_run(const struct oci_config *c, enum oci_hook_kind kind, const char *state_json,
	      struct gr_error *err)
{
	const struct oci_hook_list *l = &c->hooks[kind];
	for (size_t i = 0; i < l->n; i++) {
		int r = run_one(&l->v[i], oci_hook_names[kind], i, state_json, err);
		if (r < 0)
			return r;
	}
	return 0;
}

void hooks_run_all(const struct oci_config *c, enum oci_hook_kind kind, const char *state_json,
		   void (*warn)(const struct gr_error *err))
{
	const struct oci_hook_list *l = &c->hooks[kind];
	for (size_t i = 0; i < l->n; i++) {
		struct gr_error err = { 0 };
		if (run_one(&l->v[i], oci_hook_names[kind], i, state_json, &err) < 0)
			warn(&err);
	}
}
