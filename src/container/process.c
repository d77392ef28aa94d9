#include "process.h"
#include "security.h"
#include "../common/cleanup.h"
#include "../common/fs.h"
#include "../common/json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static const char default_path[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static const char *env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);
	for (char *const *e = env; e && *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

int process_find_executable(const char *file, char *const *env, char *out, size_t n, struct gr_error *err)
{
	if (strchr(file, '/')) {
		if (snprintf(out, n, "%s", file) >= (int)n)
			return gr_error_set(err, ENAMETOOLONG, "process.args[0]: path too long");
		return 0;
	}
	const char *path = env_get(env, "PATH");
	if (!path)
		path = default_path;
	int last = ENOENT;
	for (const char *p = path; *p;) {
		const char *colon = strchr(p, ':');
		size_t len = colon ? (size_t)(colon - p) : strlen(p);
		if (snprintf(out, n, "%.*s/%s", (int)len, len ? p : ".", file) < (int)n) {
			struct stat st;
			if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
				if (access(out, X_OK) == 0)
					return 0;
				last = EACCES;
			}
		}
		if (!colon)
			break;
		p = colon + 1;
	}
	return gr_error_set(err, last, "exec: \"%s\": executable file not found in $PATH", file);
}

/* HOME from the container's /etc/passwd, when the config does not set it. */
static char **env_with_home(char *const *env, uid_t uid)
{
	if (env_get(env, "HOME"))
		return NULL;
	char home[PATH_MAX] = "/";
	gr_autofclose FILE *f = fopen("/etc/passwd", "re");
	char line[1024];
	while (f && fgets(line, sizeof(line), f)) {
		char *fields[7] = { 0 };
		char *s = line;
		for (int i = 0; i < 7 && s; i++) {
			fields[i] = s;
			s = strchr(s, ':');
			if (s)
				*s++ = '\0';
		}
		uint64_t id;
		if (fields[5] && fields[2] && gr_parse_u64(fields[2], &id) == 0 && id == uid) {
			snprintf(home, sizeof(home), "%s", fields[5]);
			break;
		}
	}
	size_t n = gr_strv_len(env);
	char **v = calloc(n + 2, sizeof(char *));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = env[i];
	if (asprintf(&v[n], "HOME=%s", home) < 0) {
		free(v);
		return NULL;
	}
	return v;
}

static bool setgroups_allowed(void)
{
	char buf[16] = "";
	gr_autoclose int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && gr_read_all(fd, buf, sizeof(buf) - 1) > 0)
		return strncmp(buf, "deny", 4) != 0;
	return true;
}

static int switch_user(const struct oci_user *u, struct gr_error *err)
{
	if (setgroups_allowed()) {
		gid_t groups[64];
		size_t n = u->n_additional_gids;
		if (n > 64)
			return gr_error_set(err, EINVAL, "process.user.additionalGids: more than 64 groups");
		for (size_t i = 0; i < n; i++)
			groups[i] = u->additional_gids[i];
		if (setgroups(n, groups) < 0)
			return gr_error_sys(err, errno, "process.user.additionalGids: setgroups");
	} else if (u->n_additional_gids) {
		return gr_error_set(err, EPERM, "process.user.additionalGids: setgroups is denied in this user namespace");
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return gr_error_sys(err, errno, "prctl(PR_SET_KEEPCAPS)");
	if (setresgid(u->gid, u->gid, u->gid) < 0)
		return gr_error_sys(err, errno, "process.user.gid: cannot switch to group %u", u->gid);
	if (setresuid(u->uid, u->uid, u->uid) < 0)
		return gr_error_sys(err, errno, "process.user.uid: cannot switch to user %u", u->uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return gr_error_sys(err, errno, "prctl(PR_SET_KEEPCAPS)");
	return 0;
}

/* Marks every descriptor from `first` on close-on-exec, so nothing the
 * runtime's caller left open reaches the container. */
static int cloexec_from(int first, struct gr_error *err)
{
	if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return 0;
	/* Kernels before 5.11: walk /proc/self/fd. */
	gr_autoclosedir DIR *d = opendir("/proc/self/fd");
	if (!d)
		return gr_error_sys(err, errno, "cannot list /proc/self/fd to close inherited descriptors");
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t fd;
		if (gr_parse_u64(e->d_name, &fd) < 0 || fd < (uint64_t)first || (int)fd == dirfd(d))
			continue;
		int flags = fcntl((int)fd, F_GETFD);
		if (flags >= 0 && fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC) < 0)
			return gr_error_sys(err, errno, "cannot mark descriptor %d close-on-exec", (int)fd);
	}
	return 0;
}

int process_exec(const struct oci_process *p, const struct oci_config *c, int preserve_fds,
		 struct gr_error *err)
{
	int r;
	const struct oci_seccomp *seccomp = c->has_linux ? c->linux_.seccomp : NULL;

	/* First, before a seccomp filter could refuse close_range. */
	if ((r = cloexec_from(3 + preserve_fds, err)) < 0)
		return r;

	if (p->cwd && chdir(p->cwd) < 0)
		return gr_error_sys(err, errno, "process.cwd: cannot enter %s", p->cwd);
	if (c->linux_.personality && (r = personality_apply(c->linux_.personality, err)) < 0)
		return r;
	if ((r = rlimits_apply(p->rlimits, p->n_rlimits, err)) < 0)
		return r;
	if (p->oom_score_adj.set) {
		char v[16];
		snprintf(v, sizeof(v), "%d", p->oom_score_adj.v);
		if ((r = gr_write_knob("/proc/self/oom_score_adj", v, err)) < 0)
			return gr_error_prefix(err, "process.oomScoreAdj");
	}
	char exe[PATH_MAX];
	if ((r = process_find_executable(p->args[0], p->env, exe, sizeof(exe), err)) < 0)
		return r;
	gr_autofree char **env = env_with_home(p->env, p->user.uid);

	/* Without no_new_privs the filter needs CAP_SYS_ADMIN to load, so it goes
	 * in now, before the capabilities are dropped (as runc does). */
	if (seccomp && !p->no_new_privileges && (r = seccomp_apply(seccomp, err)) < 0)
		return r;
	if ((r = caps_apply_bounding(&p->caps, err)) < 0)
		return r;
	if ((r = switch_user(&p->user, err)) < 0)
		return r;
	if ((r = caps_apply(&p->caps, err)) < 0)
		return r;
	if (p->user.umask.set)
		umask(p->user.umask.v);
	else
		umask(0022);
	if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return gr_error_sys(err, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
	if (seccomp && p->no_new_privileges && (r = seccomp_apply(seccomp, err)) < 0)
		return r;

	sigset_t none;
	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);

	execve(exe, p->args, env ? env : p->env);
	return gr_error_sys(err, errno, "exec %s", exe);
}
