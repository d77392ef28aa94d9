/* An instance's OCI config.json: the runtime-spec defaults (as `gureum-runtime
 * spec` writes them) made into a long-running instance: a pty console
 * (gureum console), a writable root (the overlay's upper layer), the
 * instance name as hostname, a new network namespace with only loopback
 * (until the networking issue), Docker's default capability set, a seccomp
 * deny-list of kernel interfaces no container needs, and limits.* as cgroup
 * limits. */
#include "daemon/instance/container.h"
#include "daemon/supervisor/supervisor.h"
#include "daemon/validate.h"
#include "common/cleanup.h"
#include "common/fs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const default_caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
	"CAP_KILL", "CAP_AUDIT_WRITE", NULL,
};

/* Not namespaced, or attack surface without a use inside a container
 * (most also need capabilities the container lacks; this is the second wall). */
static const char *const denied_syscalls[] = {
	"add_key", "request_key", "keyctl", "kexec_load", "kexec_file_load", "init_module", "finit_module",
	"delete_module", "open_by_handle_at", "bpf", "perf_event_open", "userfaultfd", "acct", "swapon",
	"swapoff", "lookup_dcookie", "quotactl", "nfsservctl", "uselib", "vm86", "vm86old", NULL,
};

static const char *const masked_paths[] = {
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
	"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi", NULL,
};

static const char *const readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

static json_t *strv_json(const char *const *v)
{
	json_t *a = json_array();
	for (; a && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static int parse_processes(const char *s, uint64_t *out, struct gr_error *err)
{
	char q[VALIDATE_QUOTE_MAX];
	if (gr_parse_u64(s, out) < 0 || *out < 1 || *out > 4194304)
		return gr_error_set(err, EINVAL, "limits.processes: %s: expected a whole number from 1 to 4194304",
				    validate_quote(s, q, sizeof(q)));
	return 0;
}

#define MEMORY_MIN (4u << 20)

int container_config_validate(const json_t *config, struct gr_error *err)
{
	if (config && !json_is_object(config))
		return gr_error_set(err, EINVAL, "config: expected an object");
	const char *key;
	json_t *v;
	char q[VALIDATE_QUOTE_MAX];
	json_object_foreach((json_t *)config, key, v) {
		const char *s = json_string_value(v);
		if (!s)
			return gr_error_set(err, EINVAL, "config.%s: expected a string value",
					    validate_quote(key, q, sizeof(q)));
		uint64_t n;
		struct restart_policy rp;
		int r = 0;
		if (strcmp(key, "limits.cpu") == 0) {
			r = validate_cpu(key, s, &n, err);
		} else if (strcmp(key, "limits.memory") == 0) {
			r = validate_size(key, s, &n, err);
			if (r == 0 && n < MEMORY_MIN)
				r = gr_error_set(err, EINVAL, "limits.memory: %s is below the minimum of 4MiB",
						 validate_quote(s, q, sizeof(q)));
		} else if (strcmp(key, "limits.processes") == 0) {
			r = parse_processes(s, &n, err);
		} else if (strcmp(key, "boot.restart") == 0) {
			r = restart_policy_parse(s, &rp, err);
		} else if (strcmp(key, "network") == 0 || strcmp(key, "ipv4.address") == 0) {
			continue; /* network/network.c checks them against the networks */
		} else if (strncmp(key, "environment.", 12) == 0) {
			r = validate_env_name(key, key + 12, err);
			if (r == 0 && strchr(s, '\0') != s + strlen(s))
				r = gr_error_set(err, EINVAL, "%s: the value contains a NUL byte", key);
		} else {
			return gr_error_set(err, EINVAL, "config: unknown key %s (known: limits.cpu, limits.memory, "
					    "limits.processes, boot.restart, environment.NAME, network, ipv4.address)", validate_quote(key, q, sizeof(q)));
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static json_t *mounts_json(void)
{
	return json_pack(
		"[{s:s,s:s,s:s}, {s:s,s:s,s:s,s:[s,s,s,s]}, {s:s,s:s,s:s,s:[s,s,s,s,s,s]},"
		" {s:s,s:s,s:s,s:[s,s,s,s,s]}, {s:s,s:s,s:s,s:[s,s,s]}, {s:s,s:s,s:s,s:[s,s,s,s]},"
		" {s:s,s:s,s:s,s:[s,s,s,s,s]}]",
		"destination", "/proc", "type", "proc", "source", "proc",
		"destination", "/dev", "type", "tmpfs", "source", "tmpfs", "options", "nosuid", "strictatime",
		"mode=755", "size=65536k",
		"destination", "/dev/pts", "type", "devpts", "source", "devpts", "options", "nosuid", "noexec",
		"newinstance", "ptmxmode=0666", "mode=0620", "gid=5",
		"destination", "/dev/shm", "type", "tmpfs", "source", "shm", "options", "nosuid", "noexec", "nodev",
		"mode=1777", "size=65536k",
		"destination", "/dev/mqueue", "type", "mqueue", "source", "mqueue", "options", "nosuid", "noexec",
		"nodev",
		"destination", "/sys", "type", "sysfs", "source", "sysfs", "options", "nosuid", "noexec", "nodev", "ro",
		"destination", "/sys/fs/cgroup", "type", "cgroup", "source", "cgroup", "options", "nosuid", "noexec",
		"nodev", "relatime", "ro");
}

void container_cgroup_parent(const char *run_dir, char *out, size_t n)
{
	if (!run_dir || strcmp(run_dir, "/run/gureum") == 0) {
		snprintf(out, n, "%s", CONTAINER_CGROUP_PARENT);
		return;
	}
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *c = run_dir; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	snprintf(out, n, "%s-%08x", CONTAINER_CGROUP_PARENT, h);
}

int container_config_generate(const struct instance_spec *spec, const char *cgroup_parent, json_t **out,
			      struct gr_error *err)
{
	int r = container_config_validate(spec->config, err);
	if (r < 0)
		return r;
	if (!instance_name_valid(spec->name))
		return gr_error_set(err, EINVAL, "invalid instance name");
	gr_autojson json_t *args = json_array();
	if (spec->command && spec->command[0]) {
		for (char **a = spec->command; *a; a++)
			json_array_append_new(args, json_string(*a));
	} else {
		json_array_append_new(args, json_string(CONTAINER_DEFAULT_COMMAND));
	}
	gr_autojson json_t *env = json_pack("[s,s,s]", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
					    "HOME=/root", "TERM=xterm");
	gr_autojson json_t *resources = json_pack("{s:[{s:b,s:s}]}", "devices", "allow", 0, "access", "rwm");
	if (!args || !env || !resources)
		return gr_error_set(err, ENOMEM, "out of memory");
	const char *key;
	json_t *v;
	json_object_foreach(spec->config, key, v) {
		const char *s = json_string_value(v);
		uint64_t n;
		if (strncmp(key, "environment.", 12) == 0) {
			gr_autofree char *kv = NULL;
			if (asprintf(&kv, "%s=%s", key + 12, s) < 0)
				return gr_error_set(err, ENOMEM, "out of memory");
			/* A later PATH, HOME or TERM replaces the default. */
			size_t i;
			json_t *e;
			bool replaced = false;
			size_t klen = strlen(key + 12);
			json_array_foreach(env, i, e) {
				const char *es = json_string_value(e);
				if (strncmp(es, key + 12, klen) == 0 && es[klen] == '=') {
					json_array_set_new(env, i, json_string(kv));
					replaced = true;
					break;
				}
			}
			if (!replaced)
				json_array_append_new(env, json_string(kv));
		} else if (strcmp(key, "limits.cpu") == 0) {
			if ((r = validate_cpu(key, s, &n, err)) < 0)
				return r;
			json_object_set_new(resources, "cpu",
					    json_pack("{s:I,s:I}", "quota", (json_int_t)(n * CONTAINER_CPU_PERIOD / 1000),
						      "period", (json_int_t)CONTAINER_CPU_PERIOD));
		} else if (strcmp(key, "limits.memory") == 0) {
			if ((r = validate_size(key, s, &n, err)) < 0)
				return r;
			json_object_set_new(resources, "memory", json_pack("{s:I}", "limit", (json_int_t)n));
		} else if (strcmp(key, "limits.processes") == 0) {
			if ((r = parse_processes(s, &n, err)) < 0)
				return r;
			json_object_set_new(resources, "pids", json_pack("{s:I}", "limit", (json_int_t)n));
		}
	}
	char cgpath[128];
	snprintf(cgpath, sizeof(cgpath), "%s/%s", cgroup_parent ? cgroup_parent : CONTAINER_CGROUP_PARENT, spec->name);
	json_t *caps = strv_json(default_caps);
	json_t *process = json_pack(
		"{s:b, s:{s:i,s:i}, s:{s:i,s:i}, s:O, s:O, s:s, s:{s:O,s:O,s:O}, s:b}",
		"terminal", 1, "consoleSize", "height", 24, "width", 80, "user", "uid", 0, "gid", 0,
		"args", args, "env", env, "cwd", "/",
		"capabilities", "bounding", caps, "effective", caps, "permitted", caps,
		"noNewPrivileges", 1);
	json_decref(caps);
	json_t *seccomp = json_pack("{s:s, s:[{s:o, s:s, s:i}]}", "defaultAction", "SCMP_ACT_ALLOW", "syscalls",
				    "names", strv_json(denied_syscalls), "action", "SCMP_ACT_ERRNO", "errnoRet", EPERM);
	json_t *linux_ = json_pack(
		"{s:s, s:O, s:[{s:s},{s:s},{s:s},{s:s},{s:s},{s:s}], s:o, s:o, s:o}", "cgroupsPath", cgpath,
		"resources", resources, "namespaces", "type", "pid", "type", "network", "type", "ipc", "type", "uts",
		"type", "mount", "type", "cgroup", "maskedPaths", strv_json(masked_paths), "readonlyPaths",
		strv_json(readonly_paths), "seccomp", seccomp);
	json_t *cfg = json_pack("{s:s, s:o, s:{s:s,s:b}, s:s, s:o, s:o}", "ociVersion", "1.2.0", "process", process,
				"root", "path", "rootfs", "readonly", 0, "hostname", spec->name, "mounts", mounts_json(),
				"linux", linux_);
	if (!cfg)
		return gr_error_set(err, ENOMEM, "cannot build the container's config");
	*out = cfg;
	return 0;
}
