/* Where an instance's files are, and whether its supervisor lives. */
#include "daemon/supervisor/supervisor.h"
#include "common/cleanup.h"
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool instance_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > 63 || name[0] == '-' || name[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

static int join(char *out, const char *a, const char *b, const char *c, struct gr_error *err)
{
	int n = snprintf(out, PATH_MAX, "%s%s%s", a, b, c ? c : "");
	if (n < 0 || n >= PATH_MAX)
		return gr_error_set(err, ENAMETOOLONG, "path too long: %s%s%s", a, b, c ? c : "");
	return 0;
}

int instance_paths_init(struct instance_paths *p, const char *state_dir, const char *run_dir, const char *name,
			struct gr_error *err)
{
	if (!instance_name_valid(name))
		return gr_error_set(err, EINVAL, "invalid instance name \"%s\": 1-63 of [a-z0-9-], starting with a "
				    "letter or digit, not ending in '-'", name ? name : "");
	if (!state_dir || state_dir[0] != '/' || !run_dir || run_dir[0] != '/')
		return gr_error_set(err, EINVAL, "the state and run directories must be absolute paths");
	int r;
	if ((r = join(p->bundle, state_dir, "/instances/", name, err)) < 0 ||
	    (r = join(p->config, p->bundle, "/config.json", NULL, err)) < 0 ||
	    (r = join(p->rootfs, p->bundle, "/rootfs", NULL, err)) < 0 ||
	    (r = join(p->upper, p->bundle, "/upper", NULL, err)) < 0 ||
	    (r = join(p->work, p->bundle, "/work", NULL, err)) < 0 ||
	    (r = join(p->log_dir, p->bundle, "/logs", NULL, err)) < 0 ||
	    (r = join(p->log, p->log_dir, "/console.log", NULL, err)) < 0 ||
	    (r = join(p->containers, run_dir, "/containers", NULL, err)) < 0 ||
	    (r = join(p->run, run_dir, "/instances/", name, err)) < 0 ||
	    (r = join(p->pid_file, p->run, "/supervisor.pid", NULL, err)) < 0 ||
	    (r = join(p->console_sock, p->run, "/console.sock", NULL, err)) < 0 ||
	    (r = join(p->stop_file, p->run, "/stop.json", NULL, err)) < 0 ||
	    (r = join(p->exit_file, p->run, "/exit.json", NULL, err)) < 0)
		return r;
	return 0;
}

bool supervisor_alive(const struct instance_paths *p, pid_t *pid)
{
	*pid = 0;
	gr_autoclose int fd = open(p->pid_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
		return false;
	/* Locked: alive. The pid (once written) must still be that process. */
	char buf[64] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long long v = 0;
	unsigned long long start = 0;
	if (n > 0 && sscanf(buf, "%lld %llu", &v, &start) == 2 && v > 0) {
		uint64_t now = 0;
		if (gr_proc_start_time((pid_t)v, &now, NULL) == 0 && now == start)
			*pid = (pid_t)v;
	}
	return true;
}
