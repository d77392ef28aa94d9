/* The VM driver: instances of type "virtual-machine" (src/daemon/README.md,
 * "VM instances").
 *
 *   STATE/instances/NAME/root.img      the root disk (vm/vmdisk.c: ext4 from the image)
 *   STATE/instances/NAME/initrd.img    the initramfs of the last start (vm/initrd.h)
 *   STATE/instances/NAME/logs/         the serial console's log (the boot log)
 *   RUN/instances/NAME/vm.json         {"engine","why"}: this is a VM (scan) and how it runs
 *   RUN/instances/NAME/agent.N.sock    QEMU: the guest agent's virtio-serial ports (QEMU listens)
 *   RUN/instances/NAME/agent.N.lock    held (flock) by the session using port N (vm/agent_client.h)
 *   RUN/instances/NAME/qmp.sock        QEMU: the supervisor's control socket (qmp-ctl.sock: ours)
 *   RUN/instances/NAME/vsock.sock      gureum-vmm: the guest's vsock (the agent on port 1024)
 *   RUN/instances/NAME/vmm-api.sock    gureum-vmm: its control API (pause, resume, stop)
 *   + the supervisor's files (supervisor/supervisor.h)
 *
 * The engine runs under gureum-supervisor (run-engine), which holds the
 * serial console on a pty, keeps the log, applies the restart policy and
 * stops the VM: the ACPI power button through QMP or gureum-vmm's API, then
 * a kill after the timeout. A stop first asks the guest agent to shut down.
 * The NIC is a tap grv<id> on the network's bridge.
 *
 * Exec runs `gureum-supervisor vm-exec` (supervisor/vm_exec.h), a helper
 * process that talks to the agent and hands back pipes or a pty master, as
 * the container driver's exec helper does; files go through the agent from
 * gureumd itself. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/image/vmdisk.h"
#include "daemon/volume.h"
#include "daemon/instance/driver.h"
#include "daemon/instance/supervised.h"
#include "daemon/network/addr.h"
#include "daemon/network/netlink.h"
#include "daemon/supervisor/engine.h"
#include "daemon/validate.h"
#include "container/terminal.h"
#include "daemon/vm/agent_client.h"
#include "daemon/vm/engine.h"
#include "daemon/vm/initrd.h"

#define VM_MEMORY_DEFAULT (512ull << 20)
#define VM_MEMORY_MIN (128ull << 20)   /* the cloud kernel and gureum-init need about 100 MiB */
#define VM_CPUS_MAX 64
#define VM_AGENT_TIMEOUT_MS 60000      /* gureumd's own agent sessions (files): to connect, then per step */
#define VM_STOP_AGENT_MAX_MS 10000     /* a stop's shutdown request through the agent, at most */
/* The exec helper connects to the agent (a VM still booting: up to 120 s)
 * before it sends the terminal. */
#define VM_EXEC_PTY_TIMEOUT_MS 150000

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

/* ---- the root disk ---- */

/* A regular file with an execute bit at path inside the tree at root. */
static bool executable_in_root(int root, const char *path)
{
	struct stat st;
	gr_autoclose int fd = gr_open_in_root(root, path, O_PATH);
	return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

#define VM_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Whether the image's flattened tree can be this VM's root (a vmdisk
 * check): with a command, the command is in it (a path, or a name found
 * in environment.PATH or gureum-init's default PATH, the way gureum-init
 * looks it up); without one, it has an init for gureum-init to hand over
 * to, or at least a shell to exec into. */
static int vm_root_check(int root, void *ctx, struct gr_error *err)
{
	const struct instance_spec *spec = ctx;
	if (!spec->command) {
		if (executable_in_root(root, "/sbin/init") || executable_in_root(root, "/bin/sh"))
			return 0;
		return gr_error_set(err, EINVAL, "no usable root file system for a VM: neither /sbin/init nor /bin/sh "
				    "is in it (an empty or data-only image?); give the instance a command that the "
				    "image holds");
	}
	const char *prog = spec->command[0];
	if (strchr(prog, '/')) {
		if (executable_in_root(root, prog))
			return 0;
		return gr_error_set(err, EINVAL, "no usable root file system for this VM: its command %s is not an "
				    "executable file in it", prog);
	}
	const char *path = cfg(spec, "environment.PATH");
	gr_autofree char *dirs = strdup(path ? path : VM_DEFAULT_PATH);
	if (!dirs)
		return gr_error_set(err, ENOMEM, "out of memory");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char full[PATH_MAX];
		if (snprintf(full, sizeof(full), "%s/%s", d, prog) < (int)sizeof(full) && executable_in_root(root, full))
			return 0;
	}
	return gr_error_set(err, EINVAL, "no usable root file system for this VM: its command %s is not in it "
			    "(looked in %s)", prog, path ? path : VM_DEFAULT_PATH);
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
	if ((r = gr_mkdir_p(p.log_dir, 0700, err)) < 0 ||
	    (r = vmdisk_build(env->state_dir, spec->image, disk, sh.disk, vm_root_check, (void *)spec, err)) < 0) {
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
	/* The block volumes: disk N+1 in attachment order (vm_volumes). */
	json_t *vols = json_array();
	size_t i, d = 0;
	json_array_foreach(spec->volumes, i, v) {
		json_t *name = json_object_get(v, "name"), *path = json_object_get(v, "path");
		json_array_append_new(vols, json_pack("{s:I, s:O, s:O, s:b}", "disk", (json_int_t)++d, "name", name,
						      "path", path, "readonly",
						      json_is_true(json_object_get(v, "readonly"))));
	}
	return json_pack("{s:s, s:o, s:o, s:s, s:o, s:s, s:i, s:b, s:o}", "hostname", spec->name, "command", cmd,
			 "env", env, "cwd", "/", "network", net ? net : json_null(), "agent_port",
			 VM_AGENT_PORT_PREFIX "0", "agent_ports", VM_AGENT_PORTS, "root_by_serial", 1, "volumes",
			 vols ? vols : json_array());
}

/* The instance's volumes as engine disks (block volumes only: a directory
 * volume cannot be a VM's disk). */
static int vm_volumes(const struct instance_spec *spec, struct vm_disk out[VM_MAX_VOLUMES], size_t *n,
		      struct gr_error *err)
{
	size_t i;
	json_t *v;
	*n = 0;
	json_array_foreach(spec->volumes, i, v) {
		if (*n == VM_MAX_VOLUMES) /* refused at attach; vm_engine_argv says so */
			return gr_error_set(err, E2BIG, "instance %s has more than %d volumes: detach some", spec->name,
					    VM_MAX_VOLUMES);
		const char *type = json_string_value(json_object_get(v, "type"));
		const char *name = json_string_value(json_object_get(v, "name"));
		int r = volume_fits(name ? name : "?", type ? type : "", "virtual-machine", err);
		if (r < 0)
			return gr_error_prefix(err, "instance %s", spec->name);
		out[(*n)++] = (struct vm_disk){ .path = json_string_value(json_object_get(v, "source")),
						.readonly = json_is_true(json_object_get(v, "readonly")) };
	}
	return 0;
}

/* The kernel's command line. QEMU's TCG machine needs the TSC's rate given
 * (else the ACPI microvm guest hangs at "Marking TSC unstable"); under
 * gureum-vmm (hardware KVM) the guest keeps time with kvmclock. */
#define VM_CMDLINE_COMMON "console=ttyS0 panic=-1 quiet loglevel=4"
#define VM_CMDLINE_TCG "console=ttyS0 tsc_early_khz=2000000 panic=-1 quiet loglevel=4"

static int vm_start_(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err)
{
	struct instance_paths p;
	struct vm_shape sh;
	struct vm_kernel k;
	struct vm_host h;
	enum vm_engine engine;
	bool kvm;
	char why[256], init[PATH_MAX], common[PATH_MAX], initrd[PATH_MAX], disk[PATH_MAX], ctl[PATH_MAX];
	char vmm[PATH_MAX] = "";
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
		return gr_error_prefix(err, "cannot start VM %s", spec->name);
	if (engine == VM_ENGINE_GUREUM_VMM && (r = vm_vmm_binary(env->libexec_dir, vmm, err)) < 0)
		return gr_error_prefix(err, "cannot start VM %s", spec->name);
	if ((r = initrd_kernel_find(cfg(spec, "vm.kernel"), &k, err)) < 0 || (r = init_binary(env, init, err)) < 0 ||
	    (r = initrd_common_cached(env->state_dir, &k, init, common, sizeof(common), err)) < 0)
		return gr_error_prefix(err, "cannot start VM %s", spec->name);
	struct vm_disk vols[VM_MAX_VOLUMES];
	size_t nvols;
	if ((r = vm_volumes(spec, vols, &nvols, err)) < 0)
		return r;
	char mac[MAC_STR_MAX];
	if (spec->nic)
		mac_format(spec->nic->mac, mac);
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", p.bundle);
	struct vm_engine_opts eo = { .name = spec->name, .kvm = kvm, .cpus = sh.cpus, .memory_mib = sh.memory >> 20,
				     .kernel = k.image, .initrd = initrd,
				     .cmdline = engine == VM_ENGINE_QEMU && !kvm ? VM_CMDLINE_TCG : VM_CMDLINE_COMMON,
				     .disk = disk, .volumes = vols, .nvolumes = nvols, .tap = spec->nic ? spec->nic->host_ifname : NULL,
				     .mac = spec->nic ? mac : NULL, .run_dir = p.run,
				     .binary = engine == VM_ENGINE_GUREUM_VMM ? vmm : NULL };
	/* The command line first: what it refuses leaves nothing behind. */
	gr_autostrv char **eargv = vm_engine_argv(engine, &eo, err);
	if (!eargv)
		return gr_error_prefix(err, "cannot start VM %s", spec->name);
	gr_autojson json_t *ij = instance_json(spec);
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
	/* The agent's transport is told by the run directory (vsock.sock:
	 * gureum-vmm; agent.N.sock: QEMU), so what a killed engine of the
	 * other kind left must go. */
	if (engine == VM_ENGINE_QEMU) {
		static const char *const stale[] = { VM_VSOCK_SOCK, VM_VMM_API_SOCK };
		for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
			snprintf(mpath, sizeof(mpath), "%s/%s", p.run, stale[i]);
			(void)unlink(mpath);
		}
	}

	if (spec->nic && (r = nl_tap_create(spec->nic->host_ifname, spec->nic->bridge, err)) < 0)
		return gr_error_prefix(err, "instance %s", spec->name);
	const char *restart = cfg(spec, "boot.restart");
	/* The supervisor's stop presses the power button through the engine's
	 * control socket: QMP's, or gureum-vmm's API. */
	snprintf(ctl, sizeof(ctl), "%s/%s", p.run, engine == VM_ENGINE_GUREUM_VMM ? VM_VMM_API_SOCK : "qmp.sock");
	size_t ne = gr_strv_len(eargv);
	gr_autofree char **args = calloc(ne + 16, sizeof(char *));
	if (!args)
		r = gr_error_set(err, ENOMEM, "out of memory");
	else {
		size_t n = 0;
		char *const head[] = { (char *)"run-engine", (char *)"--state-dir", (char *)env->state_dir,
				       (char *)"--run-dir", (char *)env->run_dir, (char *)"--name", (char *)spec->name,
				       (char *)"--restart", (char *)(restart ? restart : "no"),
				       (char *)(engine == VM_ENGINE_GUREUM_VMM ? "--vmm-api" : "--qmp"), ctl, (char *)"--" };
		for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
			args[n++] = head[i];
		for (size_t i = 0; i < ne; i++)
			args[n++] = eargv[i];
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

#define VM_QMP_TIMEOUT_MS 10000

/* Pauses or resumes the running VM through its engine's control socket:
 * QEMU's qmp-ctl.sock ("stop", "cont"), or gureum-vmm's API ("pause",
 * "resume"), as vm.json of its start says. */
static int engine_pause(const struct instance_paths *p, bool pause, struct gr_error *err)
{
	char mpath[PATH_MAX], sock[PATH_MAX];
	snprintf(mpath, sizeof(mpath), "%s/vm.json", p->run);
	json_error_t jerr;
	gr_autojson json_t *m = json_load_file(mpath, 0, &jerr);
	const char *e = json_string_value(json_object_get(m, "engine"));
	if (e && strcmp(e, vm_engine_name(VM_ENGINE_GUREUM_VMM)) == 0) {
		snprintf(sock, sizeof(sock), "%s/" VM_VMM_API_SOCK, p->run);
		return engine_ctl_execute(ENGINE_CTL_VMM_API, sock, pause ? "pause" : "resume", VM_QMP_TIMEOUT_MS, err);
	}
	snprintf(sock, sizeof(sock), "%s/qmp-ctl.sock", p->run);
	return engine_ctl_execute(ENGINE_CTL_QMP, sock, pause ? "stop" : "cont", VM_QMP_TIMEOUT_MS, err);
}

/* Asks the guest to power off through its agent (a paused VM is resumed
 * first: it could act on nothing). Waits at most wait_ms for the agent's
 * answer; false when there was none (no agent yet, or it failed). */
static bool agent_shutdown(const struct instance_paths *p, const char *name, int wait_ms)
{
	char flag[PATH_MAX];
	struct gr_error e = { 0 };
	snprintf(flag, sizeof(flag), "%s/paused", p->run);
	if (access(flag, F_OK) == 0) {
		if (engine_pause(p, false, &e) < 0) {
			gr_info("instance %s: cannot resume it for its shutdown (%s): it is killed after the timeout", name,
				e.msg);
			return false;
		}
		(void)unlink(flag);
	}
	struct agent_client ac = AGENT_CLIENT_INIT;
	int r = agent_client_connect(&ac, p->run, wait_ms, &e);
	if (r == 0)
		r = agent_client_shutdown(&ac, false, wait_ms, &e);
	agent_client_close(&ac);
	if (r < 0) {
		gr_info("instance %s: no shutdown through the guest agent (%s): the ACPI power button instead", name,
			e.msg);
		return false;
	}
	gr_info("instance %s: the guest agent is shutting it down", name);
	return true;
}

/* Stop: the guest agent's shutdown, and the supervisor's stop at once after
 * it: its stop.json marks the exit as a stop (no restart by the policy,
 * whatever the guest's power-off races with) and it presses the ACPI power
 * button too (the guest's way when the agent did not answer), then kills
 * the engine when the timeout has passed. force skips the agent and kills
 * at once. */
static int vm_stop_(const struct driver_env *env, const struct instance_spec *spec, int timeout, bool force,
		    struct gr_error *err)
{
	struct instance_paths p;
	int r = paths_for(env, spec, &p, err);
	if (r < 0)
		return r;
	struct instance_status st;
	supervised_status(&p, &st);
	/* (Between two runs of the restart policy there is no guest to ask.) */
	if (!force && timeout > 0 && st.state == INSTANCE_RUNNING && !st.restarting) {
		int64_t t0 = supervised_now_ms();
		int64_t wait = (int64_t)timeout * 1000 / 2;
		agent_shutdown(&p, spec->name, (int)(wait < VM_STOP_AGENT_MAX_MS ? wait : VM_STOP_AGENT_MAX_MS));
		int spent = (int)((supervised_now_ms() - t0) / 1000);
		timeout = timeout > spent ? timeout - spent : 1;
	}
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

/* The engine's CPU time and resident memory (the guest RAM it touched), as
 * the host sees them: VMs have no cgroup of their own. */
static int vm_usage_(const struct driver_env *env, const struct instance_spec *spec, struct instance_status *out,
		     struct gr_error *err)
{
	(void)env;
	(void)spec;
	(void)err;
	supervised_usage(out);
	return 0;
}

/* RUN/instances/NAME/paused exists while the VM is paused (the status is
 * read from it: no round trip to the engine for lists). */
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
	char flag[PATH_MAX];
	snprintf(flag, sizeof(flag), "%s/paused", p.run);
	if ((r = engine_pause(&p, pause, err)) < 0)
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

/* Running and not paused: 0, else -EBUSY. */
static int check_running(const struct instance_paths *p, const char *name, struct gr_error *err)
{
	pid_t pid;
	if (!supervisor_alive(p, &pid))
		return gr_error_set(err, EBUSY, "instance %s is not running", name);
	char flag[PATH_MAX];
	snprintf(flag, sizeof(flag), "%s/paused", p->run);
	if (access(flag, F_OK) == 0)
		return gr_error_set(err, EBUSY, "instance %s is paused: resume it first", name);
	return 0;
}

/* ---- exec ---- */

/* The helper's request (supervisor_exec's format). The environment: the
 * instance's environment.* keys, then the request's. */
static json_t *exec_request_json(const struct instance_spec *spec, const struct exec_request *req)
{
	json_t *args = json_array(), *env = json_array();
	for (char **a = req->argv; a && *a; a++)
		json_array_append_new(args, json_string(*a));
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
	for (char **e = req->env; e && *e; e++)
		json_array_append_new(env, json_string(*e));
	json_t *j = json_pack("{s:o, s:o, s:I, s:I, s:b, s:I, s:I}", "args", args, "env", env, "uid",
			      (json_int_t)req->uid, "gid", (json_int_t)req->gid, "terminal", req->tty, "width",
			      (json_int_t)req->width, "height", (json_int_t)req->height);
	if (j && req->cwd)
		json_object_set_new(j, "cwd", json_string(req->cwd));
	return j;
}

/* As the container driver's exec, with `gureum-supervisor vm-exec` as the
 * helper (it talks to the agent). */
static int vm_exec_(const struct driver_env *env, const struct instance_spec *spec, const struct exec_request *req,
		    struct exec_session *out, struct gr_error *err)
{
	struct instance_paths p;
	char sup[PATH_MAX];
	int r;
	*out = (struct exec_session){ .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .pty_fd = -1, .pid = 0 };
	if ((r = paths_for(env, spec, &p, err)) < 0 || (r = supervised_binary(env, sup, err)) < 0)
		return r;
	if (!req->argv || !req->argv[0] || !req->argv[0][0])
		return gr_error_set(err, EINVAL, "exec: a command is required");
	if ((r = check_running(&p, spec->name, err)) < 0)
		return r;
	gr_autojson json_t *rq = exec_request_json(spec, req);
	gr_autofree char *text = rq ? json_dumps(rq, JSON_COMPACT) : NULL;
	if (!text)
		return gr_error_set(err, ENOMEM, "cannot encode the exec request");
	return supervised_exec(env, &p, sup, "vm-exec", spec->name, text, req->tty, VM_EXEC_PTY_TIMEOUT_MS, out, err);
}

/* ---- files ---- */

static int vm_file_push_(const struct driver_env *env, const struct instance_spec *spec, const char *path, int fd,
			 const struct file_meta *meta, struct gr_error *err)
{
	struct instance_paths p;
	int r;
	if ((r = paths_for(env, spec, &p, err)) < 0 || (r = check_running(&p, spec->name, err)) < 0)
		return r;
	struct agent_client ac = AGENT_CLIENT_INIT;
	struct agent_file_meta am = { .mode = meta->mode, .uid = meta->uid, .gid = meta->gid };
	if ((r = agent_client_connect(&ac, p.run, VM_AGENT_TIMEOUT_MS, err)) < 0)
		gr_error_prefix(err, "instance %s", spec->name);
	else
		r = agent_client_push(&ac, path, fd, &am, VM_AGENT_TIMEOUT_MS, NULL, err);
	agent_client_close(&ac);
	return r;
}

static int vm_file_pull_(const struct driver_env *env, const struct instance_spec *spec, const char *path, int fd,
			 uint64_t max, struct file_meta *meta, struct gr_error *err)
{
	struct instance_paths p;
	int r;
	if ((r = paths_for(env, spec, &p, err)) < 0 || (r = check_running(&p, spec->name, err)) < 0)
		return r;
	struct agent_client ac = AGENT_CLIENT_INIT;
	struct agent_file_meta am = { 0 };
	if ((r = agent_client_connect(&ac, p.run, VM_AGENT_TIMEOUT_MS, err)) < 0)
		gr_error_prefix(err, "instance %s", spec->name);
	else
		r = agent_client_pull(&ac, path, fd, max, VM_AGENT_TIMEOUT_MS, &am, err);
	agent_client_close(&ac);
	*meta = (struct file_meta){ .mode = am.mode, .uid = am.uid, .gid = am.gid, .size = am.size };
	return r;
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
	.file_push = vm_file_push_,
	.file_pull = vm_file_pull_,
	.console = supervised_console_op,
	.log_path = supervised_log_path_op,
	.scan = vm_scan_,
};
