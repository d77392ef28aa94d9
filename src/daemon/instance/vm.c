/* The VM driver: instances of type "virtual-machine" (src/daemon/README.md,
 * "VM instances").
 *
 *   STATE/instances/NAME/root.img      the root disk (vm/vmdisk.c: ext4 from the image)
 *   STATE/instances/NAME/initrd.img    the initramfs of the last start (vm/initrd.h)
 *   STATE/instances/NAME/logs/         the serial console's log (the boot log)
 *   RUN/instances/NAME/vm.json         {"engine","why"}: this is a VM (scan) and how it runs
 *   RUN/instances/NAME/agent.N.sock    the guest agent's ports (QEMU listens)
 *   RUN/instances/NAME/qmp.sock        QEMU's control socket
 *   + the supervisor's files (supervisor/supervisor.h)
 *
 * The engine runs under gureum-supervisor (run-engine), which holds the
 * serial console on a pty, keeps the log, applies the restart policy and
 * stops the VM: the ACPI power button through QMP, then a kill after the
 * timeout. The NIC is a tap grv<id> on the network's bridge. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/image/vmdisk.h"
#include "daemon/instance/driver.h"
#include "daemon/instance/supervised.h"
#include "daemon/network/addr.h"
#include "daemon/network/netlink.h"
#include "daemon/supervisor/engine.h"
#include "daemon/validate.h"
#include "daemon/vm/engine.h"
#include "daemon/vm/initrd.h"

#define VM_MEMORY_DEFAULT (512ull << 20)
#define VM_MEMORY_MIN (128ull << 20)   /* the cloud kernel and gureum-init need about 100 MiB */
#define VM_CPUS_MAX 64

static int paths_for(const struct driver_env *env, const struct instance_spec *spec, struct instance_paths *p,
		     struct gr_error *err)
{
	return instance_paths_init(p, env->state_dir, env->run_dir, spec->name, err);
}

static const char *cfg(const struct instance_spec *spec, const char *key)
{
	return spec->config ? json_string_value(json_object_get(spec->config, key)) : NULL;
}

/* The VM's shape from its config: vCPUs, memory, root disk size. */
struct vm_shape {
	unsigned cpus;
	uint64_t memory, disk;
};

static int shape_of(const struct instance_spec *spec, struct vm_shape *out, struct gr_error *err)
{
	*out = (struct vm_shape){ .cpus = 1, .memory = VM_MEMORY_DEFAULT, .disk = 0 };
	const char *s;
	int r;
	if ((s = cfg(spec, "limits.cpu"))) {
		uint64_t n;
		if (gr_parse_u64(s, &n) < 0 || n < 1 || n > VM_CPUS_MAX)
			return gr_error_set(err, EINVAL, "config.limits.cpu: \"%s\": a VM takes a whole number of vCPUs "
					    "from 1 to %d", s, VM_CPUS_MAX);
		out->cpus = (unsigned)n;
	}
	if ((s = cfg(spec, "limits.memory"))) {
		if ((r = validate_size("config.limits.memory", s, &out->memory, err)) < 0)
			return r;
		if (out->memory < VM_MEMORY_MIN)
			return gr_error_set(err, ERANGE, "config.limits.memory: \"%s\" is too little for a VM: at least "
					    "%llu MiB (its kernel and init need about 100 MiB)", s,
					    (unsigned long long)(VM_MEMORY_MIN >> 20));
	}
	if ((s = cfg(spec, "root.size")) && (r = validate_size("config.root.size", s, &out->disk, err)) < 0)
		return r;
	return 0;
}

static int vm_validate(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	(void)env;
	struct vm_shape sh;
	int r = shape_of(spec, &sh, err);
	if (r < 0)
		return r;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)spec->config, k, v) {
		static const char *const known[] = { "limits.cpu", "limits.memory", "root.size", "vm.engine", "vm.kernel",
						     "boot.restart", "network", "ipv4.address", NULL };
		bool ok = strncmp(k, "environment.", 12) == 0;
		for (size_t i = 0; known[i] && !ok; i++)
			ok = strcmp(k, known[i]) == 0;
		if (!ok)
			return gr_error_set(err, EINVAL, "config: %s does not apply to a virtual machine", k);
	}
	struct vm_host h;
	enum vm_engine e;
	bool kvm;
	char why[256];
	vm_host_probe(NULL, &h);
	if ((r = vm_engine_choose(&h, cfg(spec, "vm.engine"), &e, &kvm, why, sizeof(why), err)) < 0)
		return r;
	const char *kernel = cfg(spec, "vm.kernel");
	if (kernel && kernel[0] != '/')
		return gr_error_set(err, EINVAL, "config.vm.kernel: \"%s\": an absolute path is needed", kernel);
	struct vm_kernel vk;
	if ((r = initrd_kernel_find(kernel, &vk, err)) < 0)
		return gr_error_prefix(err, "no kernel for the VM");
	return 0;
}

static int vm_create_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	struct instance_paths p;
	struct vm_shape sh;
	int r;
	if ((r = paths_for(env, spec, &p, err)) < 0 || (r = vm_validate(env, spec, err)) < 0 ||
	    (r = shape_of(spec, &sh, err)) < 0)
		return r;
	char instances[PATH_MAX];
	snprintf(instances, sizeof(instances), "%s/instances", env->state_dir);
	if ((r = gr_mkdir_p(instances, 0700, err)) < 0)
		return r;
	if (mkdir(p.bundle, 0700) < 0)
		return gr_error_sys(err, errno, "cannot create %s", p.bundle);
	char disk[PATH_MAX];
	snprintf(disk, sizeof(disk), "%s/root.img", p.bundle);
	if ((r = gr_mkdir_p(p.log_dir, 0700, err)) < 0 || (r = vmdisk_build(env->state_dir, spec->image, disk, sh.disk, err)) < 0) {
		(void)gr_rm_rf(p.bundle, NULL);
		return gr_error_prefix(err, "cannot make the root disk of %s", spec->name);
	}
	return 0;
}

/* gureum-init: $GUREUM_INIT, next to the supervisor (installed), or the
 * build tree's src/guest/. */
static int init_binary(const struct driver_env *env, char out[PATH_MAX], struct gr_error *err)
{
	const char *e = getenv("GUREUM_INIT");
	if (e && *e) {
		snprintf(out, PATH_MAX, "%s", e);
		return access(out, R_OK) == 0 ? 0 : gr_error_sys(err, errno, "GUREUM_INIT %s", out);
	}
	const char *dir = env->libexec_dir ? env->libexec_dir : ".";
	snprintf(out, PATH_MAX, "%s/gureum-init", dir);
	if (access(out, R_OK) == 0)
		return 0;
	snprintf(out, PATH_MAX, "%s/../guest/gureum-init", dir);
	if (access(out, R_OK) == 0)
		return 0;
	return gr_error_set(err, ENOENT, "gureum-init not found in %s (or the build tree's src/guest)", dir);
}

/* etc/gureum/instance.json of the instance initramfs (vm-design, gureum-init). */
static json_t *instance_json(const struct instance_spec *spec)
{
	json_t *env = json_array(), *cmd = json_null();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)spec->config, k, v) {
		if (strncmp(k, "environment.", 12) == 0 && json_is_string(v)) {
			char *kv = NULL;
			if (asprintf(&kv, "%s=%s", k + 12, json_string_value(v)) >= 0)
				json_array_append_new(env, json_string(kv));
			free(kv);
		}
	}
	if (spec->command) {
		cmd = json_array();
		for (char **a = spec->command; *a; a++)
			json_array_append_new(cmd, json_string(*a));
	}
	json_t *net = json_null();
	if (spec->nic) {
		char a[IPV4_STR_MAX], gw[IPV4_STR_MAX], mac[MAC_STR_MAX], cidr[IPV4_STR_MAX + 4];
		ipv4_format(spec->nic->addr, a);
		ipv4_format(spec->nic->gateway, gw);
		mac_format(spec->nic->mac, mac);
		snprintf(cidr, sizeof(cidr), "%s/%u", a, spec->nic->prefix);
		net = json_pack("{s:s, s:s, s:s, s:s}", "address", cidr, "gateway", gw, "dns", gw, "mac", mac);
	}
	return json_pack("{s:s, s:o, s:o, s:s, s:o, s:s, s:i}", "hostname", spec->name, "command", cmd, "env", env,
			 "cwd", "/", "network", net ? net : json_null(), "agent_port", VM_AGENT_PORT_PREFIX, "agent_ports",
			 VM_AGENT_PORTS);
}

static int vm_start_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	struct instance_paths p;
	struct vm_shape sh;
	struct vm_kernel k;
	struct vm_host h;
	enum vm_engine engine;
	bool kvm;
	char why[256], init[PATH_MAX], common[PATH_MAX], initrd[PATH_MAX], disk[PATH_MAX], qmp[PATH_MAX];
	int r;
	if ((r = paths_for(env, spec, &p, err)) < 0 || (r = shape_of(spec, &sh, err)) < 0)
		return r;
	pid_t spid;
	if (supervisor_alive(&p, &spid))
		return gr_error_set(err, EBUSY, "instance %s is already running (supervisor pid %d)", spec->name,
				    (int)spid);
	snprintf(disk, sizeof(disk), "%s/root.img", p.bundle);
	if (access(disk, F_OK) < 0)
		return gr_error_set(err, ENOENT, "instance %s has no root disk at %s (was it created?)", spec->name, disk);
	vm_host_probe(NULL, &h);
	if ((r = vm_engine_choose(&h, cfg(spec, "vm.engine"), &engine, &kvm, why, sizeof(why), err)) < 0)
		return r;
	if (engine != VM_ENGINE_QEMU)
		return gr_error_set(err, ENOTSUP, "instance %s: the VM driver runs only the qemu engine so far (gureum-vmm "
				    "has no guest agent transport yet): use vm.engine=qemu", spec->name);
	if ((r = initrd_kernel_find(cfg(spec, "vm.kernel"), &k, err)) < 0 || (r = init_binary(env, init, err)) < 0 ||
	    (r = initrd_common_cached(env->state_dir, &k, init, common, sizeof(common), err)) < 0)
		return gr_error_prefix(err, "cannot start VM %s", spec->name);
	gr_autojson json_t *ij = instance_json(spec);
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", p.bundle);
	if (!ij)
		return gr_error_set(err, ENOMEM, "out of memory");
	if ((r = initrd_build_instance(common, ij, initrd, err)) < 0 || (r = gr_mkdir_p(p.run, 0700, err)) < 0)
		return r;
	gr_autojson json_t *marker = json_pack("{s:s, s:s}", "engine", vm_engine_name(engine), "why", why);
	gr_autofree char *mtext = marker ? json_dumps(marker, JSON_COMPACT) : NULL;
	char mpath[PATH_MAX];
	snprintf(mpath, sizeof(mpath), "%s/vm.json", p.run);
	if (!mtext || (r = gr_write_file_atomic(mpath, mtext, strlen(mtext), 0600, err)) < 0)
		return mtext ? r : gr_error_set(err, ENOMEM, "out of memory");
	snprintf(mpath, sizeof(mpath), "%s/paused", p.run);
	(void)unlink(mpath);

	if (spec->nic && (r = nl_tap_create(spec->nic->host_ifname, spec->nic->bridge, err)) < 0)
		return gr_error_prefix(err, "instance %s", spec->name);
	char mac[MAC_STR_MAX];
	if (spec->nic)
		mac_format(spec->nic->mac, mac);
	struct vm_qemu_opts qo = { .name = spec->name, .kvm = kvm, .cpus = sh.cpus, .memory_mib = sh.memory >> 20,
				   .kernel = k.image, .initrd = initrd,
				   .cmdline = "console=ttyS0 tsc_early_khz=2000000 panic=-1 quiet loglevel=4",
				   .disk = disk, .tap = spec->nic ? spec->nic->host_ifname : NULL,
				   .mac = spec->nic ? mac : NULL, .run_dir = p.run };
	gr_autostrv char **qargv = vm_qemu_argv(&qo, err);
	const char *restart = cfg(spec, "boot.restart");
	snprintf(qmp, sizeof(qmp), "%s/qmp.sock", p.run);
	size_t nq = qargv ? gr_strv_len(qargv) : 0;
	gr_autofree char **args = qargv ? calloc(nq + 16, sizeof(char *)) : NULL;
	if (!args)
		r = qargv ? gr_error_set(err, ENOMEM, "out of memory") : -err->code;
	else {
		size_t n = 0;
		char *const head[] = { (char *)"run-engine", (char *)"--state-dir", (char *)env->state_dir,
				       (char *)"--run-dir", (char *)env->run_dir, (char *)"--name", (char *)spec->name,
				       (char *)"--restart", (char *)(restart ? restart : "no"), (char *)"--qmp", qmp,
				       (char *)"--" };
		for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
			args[n++] = head[i];
		for (size_t i = 0; i < nq; i++)
			args[n++] = qargv[i];
		args[n] = NULL;
		gr_info("instance %s: starting on %s", spec->name, why);
		r = supervised_launch(env, spec->name, args, err);
	}
	if (r < 0 && spec->nic) {
		struct gr_error e = { 0 };
		if (nl_link_delete(spec->nic->host_ifname, &e) < 0)
			gr_warn("instance %s: %s", spec->name, e.msg);
	}
	return r;
}

static int vm_stop_(const struct driver_env *env, const struct instance_spec *spec, int timeout, bool force,
		    struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	bool none;
	if ((r = supervised_stop(&p, spec->name, timeout, force, &none, err)) < 0)
		return r;
	if (r == 0) {
		/* It did not end in time: the supervisor goes, and its engine
		 * with it (PR_SET_PDEATHSIG). */
		pid_t pid;
		if (supervisor_alive(&p, &pid) && pid > 0)
			kill(pid, SIGKILL);
		if (!supervised_wait_gone(&p, supervised_now_ms() + SUPERVISED_STOP_GRACE_MS))
			return gr_error_set(err, ETIMEDOUT, "the supervisor of %s (pid %d) did not stop", spec->name,
					    (int)pid);
	}
	if (spec->nic && (r = nl_link_delete(spec->nic->host_ifname, err)) < 0)
		return r;
	return 0;
}

static int vm_status_(const struct driver_env *env, const struct instance_spec *spec, struct instance_status *out,
		      struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	supervised_status(&p, out);
	/* The engine of the last start (vm.json), else the one it would get. */
	char mpath[PATH_MAX];
	snprintf(mpath, sizeof(mpath), "%s/vm.json", p.run);
	json_error_t jerr;
	gr_autojson json_t *m = json_load_file(mpath, 0, &jerr);
	const char *why = json_string_value(json_object_get(m, "why"));
	if (why) {
		snprintf(out->engine, sizeof(out->engine), "%s", why);
	} else {
		struct vm_host h;
		enum vm_engine e;
		bool kvm;
		vm_host_probe(NULL, &h);
		if (vm_engine_choose(&h, cfg(spec, "vm.engine"), &e, &kvm, out->engine, sizeof(out->engine), NULL) < 0)
			out->engine[0] = '\0';
	}
	char flag[PATH_MAX];
	snprintf(flag, sizeof(flag), "%s/paused", p.run);
	if (out->state == INSTANCE_RUNNING && access(flag, F_OK) == 0)
		out->state = INSTANCE_PAUSED;
	return 0;
}

static int vm_usage_(const struct driver_env *env, const struct instance_spec *spec, struct instance_status *out,
		     struct gr_error *err)
{
	(void)env;
	(void)spec;
	(void)out;
	(void)err;
	return 0;
}

#define VM_QMP_TIMEOUT_MS 10000

/* RUN/instances/NAME/paused exists while the VM is paused (the status is
 * read from it: no QMP round trip for lists). */
static int pause_or_resume(const struct driver_env *env, const struct instance_spec *spec, bool pause,
			   struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	pid_t pid;
	if (!supervisor_alive(&p, &pid))
		return gr_error_set(err, EBUSY, "instance %s is not running", spec->name);
	char qmp[PATH_MAX], flag[PATH_MAX];
	snprintf(qmp, sizeof(qmp), "%s/qmp-ctl.sock", p.run);
	snprintf(flag, sizeof(flag), "%s/paused", p.run);
	if ((r = qmp_execute(qmp, pause ? "stop" : "cont", VM_QMP_TIMEOUT_MS, err)) < 0)
		return gr_error_prefix(err, "cannot %s VM %s", pause ? "pause" : "resume", spec->name);
	if (pause)
		return gr_write_file_atomic(flag, "1\n", 2, 0600, err);
	if (unlink(flag) < 0 && errno != ENOENT)
		return gr_error_sys(err, errno, "cannot remove %s", flag);
	return 0;
}

static int vm_pause_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	return pause_or_resume(env, spec, true, err);
}

static int vm_resume_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	return pause_or_resume(env, spec, false, err);
}

static int vm_remove_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	pid_t pid;
	if (supervisor_alive(&p, &pid))
		return gr_error_set(err, EBUSY, "instance %s is running (supervisor pid %d): stop it first", spec->name,
				    (int)pid);
	if (spec->nic && (r = nl_link_delete(spec->nic->host_ifname, err)) < 0)
		return r;
	if ((r = gr_rm_rf(p.bundle, err)) < 0 || (r = gr_rm_rf(p.run, err)) < 0)
		return r;
	return 0;
}

static int vm_exec_(const struct driver_env *env, const struct instance_spec *spec, const struct exec_request *req,
		    struct exec_session *out, struct gr_error *err)
{
	(void)env;
	(void)req;
	(void)out;
	return gr_error_set(err, ENOTSUP, "instance %s: exec in a VM is not supported yet", spec->name);
}

static int vm_console_(const struct driver_env *env, const struct instance_spec *spec, int *fd, struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	return r < 0 ? r : supervised_console(&p, spec->name, fd, err);
}

static int vm_log_path_(const struct driver_env *env, const struct instance_spec *spec, char **path,
			struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	return r < 0 ? r : supervised_log_path(&p, path, err);
}

/* Is RUN/instances/NAME a VM's (its vm.json)? */
bool vm_is_vm_run_dir(const char *run_dir, const char *name)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/instances/%s/vm.json", run_dir, name);
	return access(path, F_OK) == 0;
}

static int vm_scan_(const struct driver_env *env, void (*found)(void *opaque, const char *name), void *opaque,
		    struct gr_error *err)
{
	(void)err;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/instances", env->run_dir);
	gr_autoclosedir DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!instance_name_valid(e->d_name) || !vm_is_vm_run_dir(env->run_dir, e->d_name))
			continue;
		struct instance_spec spec = { .name = e->d_name };
		struct instance_paths p;
		pid_t pid;
		if (paths_for(env, &spec, &p, NULL) == 0 && supervisor_alive(&p, &pid))
			found(opaque, e->d_name);
	}
	return 0;
}

const struct instance_driver vm_driver = {
	.type = "virtual-machine",
	.validate = vm_validate,
	.create = vm_create_,
	.start = vm_start_,
	.stop = vm_stop_,
	.pause = vm_pause_,
	.resume = vm_resume_,
	.remove = vm_remove_,
	.status = vm_status_,
	.usage = vm_usage_,
	.exec = vm_exec_,
	.console = vm_console_,
	.log_path = vm_log_path_,
	.scan = vm_scan_,
};
