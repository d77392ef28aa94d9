/* The container driver (driver.h): instances as OCI containers run by the
 * container library under one gureum-supervisor each.
 *
 * Files: see supervisor/supervisor.h. The rootfs is an overlay of the image's
 * rootfs (lower, shared, never written) and the instance's upper/work
 * directories; the supervisor mounts it in a mount namespace of its own at
 * start, so a launch copies nothing and a dead supervisor leaves no mount on
 * the host. config.json is generated from the instance (container_config.c)
 * at create and again at every start, so it follows the database.
 *
 * Everything here is rebuilt from files on each call: gureumd keeps nothing
 * in memory about running instances. */
#include "daemon/instance/container.h"
#include "daemon/instance/supervised.h"
#include "daemon/network/instance.h"
#include "daemon/supervisor/supervisor.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "container/cgroup.h"
#include "container/container.h"
#include "container/terminal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


extern char **environ;



static int paths_for(const struct driver_env *env, const struct instance_spec *spec, struct instance_paths *p,
		     struct gr_error *err)
{
	return instance_paths_init(p, env->state_dir, env->run_dir, spec->name, err);
}




/* ---- validate, create ---- */

static int container_validate(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	gr_autojson json_t *cfg = NULL;
	_cleanup_(container_image_clear) struct container_image img = { 0 };
	int r = container_config_generate(spec, NULL, &cfg, err);
	if (r < 0)
		return r;
	if ((r = container_image_resolve(env->state_dir, spec->image, &img, err)) < 0)
		return r;
	return container_config_apply_image(cfg, spec, &img, err);
}

/* config.json: the instance's, the image's config, the volumes. */
static int write_config(const struct driver_env *env, const struct instance_paths *p, const char *dir,
			const struct instance_spec *spec, const struct container_image *img, const char *netns,
			struct gr_error *err)
{
	gr_autojson json_t *cfg = NULL;
	char parent[96];
	container_cgroup_parent(env->run_dir, parent, sizeof(parent));
	int r = container_config_generate(spec, parent, &cfg, err);
	if (r < 0 || (r = container_config_apply_image(cfg, spec, img, err)) < 0 ||
	    (spec->volumes && (r = container_config_add_volumes(cfg, spec->volumes, err)) < 0))
		return r;
	/* A start: the network namespace netif_container_up made, and the
	 * instance's resolv.conf and hosts. */
	if (netns && (r = container_config_add_network(cfg, netns, p->bundle, err)) < 0)
		return r;
	gr_autofree char *text = json_dumps(cfg, JSON_INDENT(2));
	if (!text)
		return gr_error_set(err, ENOMEM, "cannot encode config.json");
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/config.json", dir ? dir : p->bundle);
	return gr_write_file_atomic(path, text, strlen(text), 0600, err);
}

static void remove_tmp_bundles(const char *instances, const char *name)
{
	gr_autoclosedir DIR *d = opendir(instances);
	struct dirent *e;
	char prefix[96], path[PATH_MAX];
	snprintf(prefix, sizeof(prefix), ".%s.tmp-", name);
	while (d && (e = readdir(d)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
			snprintf(path, sizeof(path), "%s/%s", instances, e->d_name);
			(void)gr_rm_rf(path, NULL);
		}
}

static int container_create_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	struct instance_paths p;
	char instances[PATH_MAX], tmp[PATH_MAX], sub[PATH_MAX];
	_cleanup_(container_image_clear) struct container_image img = { 0 };
	int r;
	if ((r = paths_for(env, spec, &p, err)) < 0 || (r = container_validate(env, spec, err)) < 0 ||
	    (r = container_image_resolve(env->state_dir, spec->image, &img, err)) < 0)
		return r;
	snprintf(instances, sizeof(instances), "%s/instances", env->state_dir);
	if ((r = gr_mkdir_p(instances, 0700, err)) < 0)
		return r;
	remove_tmp_bundles(instances, spec->name);
	/* The bundle is made aside and renamed into place: all or nothing. A
	 * bundle already there is what a failed delete left of this name
	 * (the daemon holds the name): replaced. */
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp-XXXXXX", instances, spec->name) >= (int)sizeof(tmp) ||
	    !mkdtemp(tmp))
		return gr_error_sys(err, errno, "cannot create a directory in %s", instances);
	chmod(tmp, 0700);
	static const char *const dirs[] = { "rootfs", "upper", "work", "logs" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(sub, sizeof(sub), "%s/%s", tmp, dirs[i]);
		if (mkdir(sub, i < 2 ? 0755 : 0700) < 0) {
			r = gr_error_sys(err, errno, "cannot create %s", sub);
			goto fail;
		}
	}
	if ((r = write_config(env, &p, tmp, spec, &img, NULL, err)) < 0)
		goto fail;
	if (access(p.bundle, F_OK) == 0 && (r = gr_rm_rf(p.bundle, err)) < 0)
		goto fail;
	if (rename(tmp, p.bundle) < 0) {
		r = gr_error_sys(err, errno, "cannot rename %s to %s", tmp, p.bundle);
		goto fail;
	}
	return 0;
fail:
	(void)gr_rm_rf(tmp, NULL);
	return r;
}

/* ---- status ---- */

/* The container library's view: status and init pid; STOPPED when absent. */
static void container_view(const struct instance_paths *p, const char *name, enum container_status *s, pid_t *pid,
			   char **cgroup_path)
{
	*s = STATUS_STOPPED;
	*pid = 0;
	if (cgroup_path)
		*cgroup_path = NULL;
	_cleanup_(state_free) struct container_state st = { 0 };
	if (state_load(p->containers, name, &st, NULL) < 0)
		return;
	container_status(p->containers, &st, s);
	if (*s != STATUS_STOPPED)
		*pid = st.pid;
	if (cgroup_path && st.cgroup_path)
		*cgroup_path = strdup(st.cgroup_path);
}

static int container_status_(const struct driver_env *env, const struct instance_spec *spec,
			     struct instance_status *out, struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	supervised_status(&p, out);
	bool alive = out->supervisor_pid > 0;
	enum container_status cs;
	container_view(&p, spec->name, &cs, &out->pid, NULL);
	switch (cs) {
	case STATUS_RUNNING:
		out->state = INSTANCE_RUNNING;
		break;
	case STATUS_CREATED:
	case STATUS_CREATING:
		/* The container is being made: its command does not run yet. */
		out->state = INSTANCE_RUNNING;
		out->starting = true;
		break;
	case STATUS_PAUSED:
		out->state = INSTANCE_PAUSED;
		break;
	case STATUS_STOPPED:
		/* A living supervisor between two runs (back-off) or starting:
		 * meant to run, not running. */
		out->state = alive ? INSTANCE_RUNNING : INSTANCE_STOPPED;
		out->starting = alive;
		break;
	}
	out->restarting = out->starting && out->restarting;
	return 0;
}

static int container_usage_(const struct driver_env *env, const struct instance_spec *spec,
			    struct instance_status *out, struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	enum container_status cs;
	pid_t pid;
	gr_autofree char *cg = NULL;
	container_view(&p, spec->name, &cs, &pid, &cg);
	if (!cg || cs == STATUS_STOPPED)
		return 0;
	const struct cgroup_layout *l = cgroup_layout_cached(err);
	if (!l)
		return -err->code;
	struct cgroup_stats cst;
	if ((r = cgroup_stats(l, cg, &cst, err)) < 0)
		return r;
	out->cpu_ns = cst.cpu_ns;
	out->memory_bytes = cst.memory_bytes;
	out->pids = cst.pids;
	return 0;
}

/* ---- start ---- */



/* gureum-supervisor run ... for the instance. */
static int launch(const struct driver_env *env, const struct instance_spec *spec, const struct container_image *img,
		  struct gr_error *err)
{
	const char *restart = spec->config ? json_string_value(json_object_get(spec->config, "boot.restart")) : NULL;
	struct restart_policy rp;
	int r = restart_policy_parse(restart, &rp, err);
	if (r < 0)
		return r;
	char *const args[] = { (char *)"run", (char *)"--state-dir", (char *)env->state_dir, (char *)"--run-dir",
			       (char *)env->run_dir, (char *)"--name", (char *)spec->name,
			       img->fingerprint[0] ? (char *)"--image" : (char *)"--lower",
			       (char *)(img->fingerprint[0] ? img->fingerprint : img->lower), (char *)"--restart",
			       (char *)(restart ? restart : "no"), NULL };
	return supervised_launch(env, spec->name, args, err);
}

static int container_start_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	struct instance_paths p;
	char sup[PATH_MAX];
	_cleanup_(container_image_clear) struct container_image img = { 0 };
	int r;
	if ((r = paths_for(env, spec, &p, err)) < 0 || (r = supervised_binary(env, sup, err)) < 0)
		return r;
	pid_t spid;
	if (supervisor_alive(&p, &spid))
		return gr_error_set(err, EBUSY, "instance %s is already running (supervisor pid %d)", spec->name,
				    (int)spid);
	if (access(p.bundle, F_OK) < 0)
		return gr_error_set(err, ENOENT, "instance %s has no bundle at %s (was it created?)", spec->name,
				    p.bundle);
	gr_autofree char *netns = netif_netns_path(env, spec->name);
	if (!netns)
		return gr_error_set(err, ENOMEM, "out of memory");
	if ((r = container_image_resolve(env->state_dir, spec->image, &img, err)) < 0 ||
	    (r = netif_container_up(env, spec->name, spec->nic, err)) < 0)
		return r;
	if ((r = netif_write_etc(env, spec->name, spec->nic, err)) < 0 ||
	    (r = write_config(env, &p, NULL, spec, &img, netns, err)) < 0 ||
	    (r = launch(env, spec, &img, err)) < 0) {
		struct gr_error e = { 0 };
		if (netif_container_down(env, spec->name, spec->nic, &e) < 0)
			gr_warn("instance %s: %s", spec->name, e.msg);
		return r;
	}
	return 0;
}

/* ---- stop ---- */


static int stop_workload(const struct driver_env *env, const struct instance_spec *spec, int timeout, bool force,
			 struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	if (timeout < 0)
		timeout = 0;
	pid_t pid;
	bool none;
	if ((r = supervised_stop(&p, spec->name, timeout, force, &none, err)) < 0)
		return r;
	if (r == 1 && !none)
		return 0;
	if (r == 0) {
		/* It did not end in time: its container is killed from here. */
		supervisor_alive(&p, &pid);
		(void)container_kill(p.containers, spec->name, SIGKILL, true, NULL);
		if (supervised_wait_gone(&p, supervised_now_ms() + SUPERVISED_STOP_GRACE_MS))
			return 0;
		return gr_error_set(err, ETIMEDOUT, "the supervisor of %s (pid %d) did not stop", spec->name, (int)pid);
	}
	/* No supervisor (it was killed): the container itself, if any. */
	enum container_status cs;
	container_view(&p, spec->name, &cs, &pid, NULL);
	if (cs == STATUS_STOPPED) {
		struct gr_error derr = { 0 };
		(void)container_delete(p.containers, spec->name, true, &derr);
		return 0;
	}
	if (!force && pid > 0) {
		(void)container_pause(p.containers, spec->name, false, NULL);
		kill(pid, SIGTERM);
		int64_t end = supervised_now_ms() + (int64_t)timeout * 1000;
		while (supervised_now_ms() < end && gr_proc_state(pid) && gr_proc_state(pid) != 'Z')
			supervised_sleep_ms(10);
	}
	if ((r = container_delete(p.containers, spec->name, true, err)) < 0)
		return r;
	struct exit_info ex = { .exit_code = 128 + SIGKILL, .signal = SIGKILL, .stopped = true };
	exit_info_from_status(&ex, SIGKILL, true);
	snprintf(ex.reason, sizeof(ex.reason), "stopped: killed (its supervisor was gone)");
	(void)exit_info_write(p.exit_file, &ex, NULL);
	return 0;
}

/* The workload, then its network (namespace and veth). */
static int container_stop_(const struct driver_env *env, const struct instance_spec *spec, int timeout, bool force,
			   struct gr_error *err)
{
	int r = stop_workload(env, spec, timeout, force, err);
	return r < 0 ? r : netif_container_down(env, spec->name, spec->nic, err);
}

/* ---- pause, resume, remove ---- */

static int container_pause_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	return r < 0 ? r : container_pause(p.containers, spec->name, true, err);
}

static int container_resume_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	return r < 0 ? r : container_pause(p.containers, spec->name, false, err);
}

/* The instances' cgroup parent (/gureum, or /gureum-HASH for another run
 * directory) is removed from every hierarchy once empty: rmdir fails with
 * EBUSY/ENOTEMPTY while an instance still has a cgroup under it, which is
 * fine. A start racing with this recreates it (cgroup_create retries when an
 * ancestor vanishes under it). */
static void remove_cgroup_parent(const struct driver_env *env)
{
	char parent[96];
	container_cgroup_parent(env->run_dir, parent, sizeof(parent));
	struct cgroup_layout l;
	if (cgroup_layout_detect(NULL, &l, NULL) < 0)
		return;
	for (size_t i = 0; i <= l.n_v1; i++) {
		const char *mount = i < l.n_v1 ? l.v1[i].mount : l.unified_mount;
		char dir[PATH_MAX];
		if (!mount || snprintf(dir, sizeof(dir), "%s%s", mount, parent) >= (int)sizeof(dir))
			continue;
		if (rmdir(dir) < 0 && errno != ENOENT && errno != EBUSY && errno != ENOTEMPTY)
			gr_debug("cannot remove the cgroup %s: %s", dir, strerror(errno));
	}
	cgroup_layout_free(&l);
}

static void container_cleanup_(const struct driver_env *env)
{
	remove_cgroup_parent(env);
}

static int container_remove_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	pid_t pid;
	if (supervisor_alive(&p, &pid))
		return gr_error_set(err, EBUSY, "instance %s is running (supervisor pid %d): stop it first", spec->name,
				    (int)pid);
	if ((r = container_delete(p.containers, spec->name, true, err)) < 0 && r != -ENOENT)
		return r;
	gr_error_clear(err);
	if ((r = netif_container_down(env, spec->name, spec->nic, err)) < 0)
		return r;
	char instances[PATH_MAX];
	snprintf(instances, sizeof(instances), "%s/instances", env->state_dir);
	remove_tmp_bundles(instances, spec->name);
	if ((r = gr_rm_rf(p.bundle, err)) < 0 || (r = gr_rm_rf(p.run, err)) < 0)
		return r;
	remove_cgroup_parent(env);
	return 0;
}

/* ---- exec ---- */

static json_t *exec_request_json(const struct exec_request *req)
{
	json_t *args = json_array(), *env = json_array();
	for (char **a = req->argv; a && *a; a++)
		json_array_append_new(args, json_string(*a));
	for (char **e = req->env; e && *e; e++)
		json_array_append_new(env, json_string(*e));
	json_t *j = json_pack("{s:o, s:o, s:I, s:I, s:b, s:I, s:I}", "args", args, "env", env, "uid",
			      (json_int_t)req->uid, "gid", (json_int_t)req->gid, "terminal", req->tty, "width",
			      (json_int_t)req->width, "height", (json_int_t)req->height);
	if (j && req->cwd)
		json_object_set_new(j, "cwd", json_string(req->cwd));
	return j;
}

static int container_exec_(const struct driver_env *env, const struct instance_spec *spec,
			   const struct exec_request *req, struct exec_session *out, struct gr_error *err)
{
	struct instance_paths p;
	char sup[PATH_MAX];
	int r;
	*out = (struct exec_session){ .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .pty_fd = -1, .pid = 0 };
	if ((r = paths_for(env, spec, &p, err)) < 0 || (r = supervised_binary(env, sup, err)) < 0)
		return r;
	if (!req->argv || !req->argv[0] || !req->argv[0][0])
		return gr_error_set(err, EINVAL, "exec: a command is required");
	enum container_status cs;
	pid_t init;
	container_view(&p, spec->name, &cs, &init, NULL);
	if (cs == STATUS_PAUSED)
		return gr_error_set(err, EBUSY, "instance %s is paused: resume it first", spec->name);
	if (cs != STATUS_RUNNING)
		return gr_error_set(err, EBUSY, "instance %s is not running", spec->name);
	gr_autojson json_t *rq = exec_request_json(req);
	gr_autofree char *text = rq ? json_dumps(rq, JSON_COMPACT) : NULL;
	if (!text)
		return gr_error_set(err, ENOMEM, "cannot encode the exec request");
	return supervised_exec(env, &p, sup, "exec", spec->name, text, req->tty, 10000, out, err);
}

/* ---- files ---- */

/* The root directory of the running (or paused) container, as its init
 * sees it: /proc/PID/root, opened through /proc/PID after the container
 * was seen running with that pid, then seen again (a pid reused in between
 * fails the second look; the /proc/PID descriptor stops working once its
 * process is gone). */
static int container_root_fd(const struct driver_env *env, const struct instance_spec *spec, int *out,
			     struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	enum container_status cs, cs2;
	pid_t init, init2;
	container_view(&p, spec->name, &cs, &init, NULL);
	if ((cs != STATUS_RUNNING && cs != STATUS_PAUSED) || init <= 0)
		return gr_error_set(err, EBUSY, "instance %s is not running", spec->name);
	char proc[32];
	snprintf(proc, sizeof(proc), "/proc/%d", (int)init);
	gr_autoclose int pfd = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
	container_view(&p, spec->name, &cs2, &init2, NULL);
	if (pfd < 0 || init2 != init || (cs2 != STATUS_RUNNING && cs2 != STATUS_PAUSED))
		return gr_error_set(err, EBUSY, "instance %s is not running", spec->name);
	int fd = openat(pfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? gr_error_set(err, EBUSY, "instance %s is not running", spec->name)
							 : gr_error_sys(err, errno, "cannot open the root of %s", spec->name);
	*out = fd;
	return 0;
}

/* Copies in to out until in's end (at most max bytes when max is not 0:
 * 1 when there was more). 0, 1 or -errno (*which: 0 reading, 1 writing). */
static int copy_fd(int in, int out, uint64_t max, int *which)
{
	gr_autofree char *buf = malloc(1u << 18);
	if (!buf)
		return -ENOMEM;
	uint64_t total = 0;
	for (;;) {
		ssize_t n = read(in, buf, 1u << 18);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*which = 0;
			return -errno;
		}
		if (n == 0)
			return 0;
		total += (uint64_t)n;
		if (max && total > max)
			return 1;
		int r = gr_write_all(out, buf, (size_t)n);
		if (r < 0) {
			*which = 1;
			return r;
		}
	}
}

static int container_file_push_(const struct driver_env *env, const struct instance_spec *spec, const char *path,
				int fd, const struct file_meta *meta, struct gr_error *err)
{
	gr_autoclose int root = -1, dir = -1, tmp = -1;
	int r = container_root_fd(env, spec, &root, err);
	if (r < 0)
		return r;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	gr_autofree char *dirpath = strndup(path, slash && slash != path ? (size_t)(slash - path) : 1);
	if (!dirpath)
		return gr_error_set(err, ENOMEM, "out of memory");
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return gr_error_set(err, EINVAL, "push %s: not a file name", path);
	if ((dir = gr_open_in_root(root, dirpath, O_PATH | O_DIRECTORY)) < 0)
		return gr_error_sys(err, -dir, "push %s: cannot open the directory %s in %s", path, dirpath, spec->name);
	char tmpname[64];
	uint64_t rnd = 0;
	for (int tries = 0; tmp < 0; tries++) {
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			rnd = (uint64_t)supervised_now_ms() * 2654435761u + (uint64_t)tries;
		snprintf(tmpname, sizeof(tmpname), ".gureum-push-%016llx", (unsigned long long)rnd);
		tmp = openat(dir, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (tmp < 0 && (errno != EEXIST || tries >= 16))
			return gr_error_sys(err, errno, "push %s: cannot create a temporary file in %s", path, dirpath);
	}
	int which = 0;
	if ((r = copy_fd(fd, tmp, 0, &which)) < 0)
		r = gr_error_sys(err, -r, "push %s: cannot %s the data", path, which ? "write" : "read");
	else if (fchown(tmp, meta->uid, meta->gid) < 0)
		r = gr_error_sys(err, errno, "push %s: chown %u:%u", path, meta->uid, meta->gid);
	else if (fchmod(tmp, meta->mode & 07777) < 0)
		r = gr_error_sys(err, errno, "push %s: chmod %o", path, meta->mode & 07777);
	else if (fsync(tmp) < 0)
		r = gr_error_sys(err, errno, "push %s: fsync", path);
	else if (renameat(dir, tmpname, dir, base) < 0)
		r = errno == EISDIR ? gr_error_set(err, EISDIR, "push %s: is a directory", path)
				    : gr_error_sys(err, errno, "push %s: rename", path);
	if (r < 0)
		(void)unlinkat(dir, tmpname, 0);
	return r;
}

static int container_file_pull_(const struct driver_env *env, const struct instance_spec *spec, const char *path,
				int fd, uint64_t max, struct file_meta *meta, struct gr_error *err)
{
	gr_autoclose int root = -1, pfd = -1, in = -1;
	int r = container_root_fd(env, spec, &root, err);
	if (r < 0)
		return r;
	/* O_PATH first: a device or FIFO is refused without being opened. */
	if ((pfd = gr_open_in_root(root, path, O_PATH)) < 0)
		return gr_error_sys(err, -pfd, "pull %s", path);
	struct stat st;
	if (fstat(pfd, &st) < 0)
		return gr_error_sys(err, errno, "pull %s", path);
	if (S_ISDIR(st.st_mode))
		return gr_error_set(err, EISDIR, "pull %s: is a directory", path);
	if (!S_ISREG(st.st_mode))
		return gr_error_set(err, EINVAL, "pull %s: not a regular file", path);
	if ((uint64_t)st.st_size > max)
		return gr_error_set(err, EFBIG, "pull %s: the file has %lld bytes, more than the limit of %llu", path,
				    (long long)st.st_size, (unsigned long long)max);
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
	if ((in = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return gr_error_sys(err, errno, "pull %s", path);
	*meta = (struct file_meta){ .mode = st.st_mode & 07777, .uid = st.st_uid, .gid = st.st_gid,
				    .size = (uint64_t)st.st_size };
	int which = 0;
	if ((r = copy_fd(in, fd, max, &which)) < 0)
		return gr_error_sys(err, -r, "pull %s: cannot %s the data", path, which ? "write" : "read");
	if (r == 1)
		return gr_error_set(err, EFBIG, "pull %s: the file grew beyond the limit of %llu bytes", path,
				    (unsigned long long)max);
	return 0;
}

/* ---- scan ---- */

struct names {
	char **v;
	size_t n;
};

static void names_add(struct names *ns, const char *name)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return;
	char **nv = realloc(ns->v, (ns->n + 1) * sizeof(char *));
	if (!nv)
		return;
	ns->v = nv;
	if ((ns->v[ns->n] = strdup(name)))
		ns->n++;
}

static int container_scan_(const struct driver_env *env, void (*found)(void *opaque, const char *name), void *opaque,
			   struct gr_error *err)
{
	(void)err;
	struct names ns = { 0 };
	char dir[PATH_MAX];
	const char *const subs[] = { "instances", "containers" };
	for (size_t k = 0; k < 2; k++) {
		snprintf(dir, sizeof(dir), "%s/%s", env->run_dir, subs[k]);
		gr_autoclosedir DIR *d = opendir(dir);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (!instance_name_valid(e->d_name) || vm_is_vm_run_dir(env->run_dir, e->d_name))
				continue;
			struct instance_spec spec = { .name = e->d_name };
			struct instance_paths p;
			if (paths_for(env, &spec, &p, NULL) < 0)
				continue;
			pid_t pid;
			enum container_status cs;
			pid_t init;
			container_view(&p, e->d_name, &cs, &init, NULL);
			if (supervisor_alive(&p, &pid) || cs != STATUS_STOPPED)
				names_add(&ns, e->d_name);
		}
	}
	for (size_t i = 0; i < ns.n; i++) {
		found(opaque, ns.v[i]);
		free(ns.v[i]);
	}
	free(ns.v);
	return 0;
}

const struct instance_driver container_driver = {
	.type = "container",
	.validate = container_validate,
	.create = container_create_,
	.start = container_start_,
	.stop = container_stop_,
	.pause = container_pause_,
	.resume = container_resume_,
	.remove = container_remove_,
	.status = container_status_,
	.usage = container_usage_,
	.exec = container_exec_,
	.file_push = container_file_push_,
	.file_pull = container_file_pull_,
	.console = supervised_console_op,
	.log_path = supervised_log_path_op,
	.scan = container_scan_,
	.cleanup = container_cleanup_,
};
