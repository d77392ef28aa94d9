/* VM engines (vm/engine.h). */
#include "daemon/vm/engine.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"

const char *vm_engine_name(enum vm_engine e)
{
	return e == VM_ENGINE_GUREUM_VMM ? "gureum-vmm" : "qemu";
}

static void path_in(const char *root, const char *p, char *out, size_t n)
{
	snprintf(out, n, "%s%s", root ? root : "", p);
}

/* Does the "flags" line of cpuinfo name vmx or svm? */
static bool cpu_has_hw(const char *cpuinfo)
{
	for (const char *l = cpuinfo; l && *l;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);
		if (len > 5 && strncmp(l, "flags", 5) == 0) {
			char line[8192];
			snprintf(line, sizeof(line), " %.*s ", (int)(len < sizeof(line) - 3 ? len : sizeof(line) - 3), l);
			for (char *c = line; *c; c++)
				if (*c == '\t' || *c == ':')
					*c = ' ';
			return strstr(line, " vmx ") || strstr(line, " svm ");
		}
		l = e ? e + 1 : NULL;
	}
	return false;
}

void vm_host_probe(const char *root, struct vm_host *out)
{
	char p[4096];
	memset(out, 0, sizeof(*out));
	path_in(root, "/dev/kvm", p, sizeof(p));
	int fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		out->kvm = true;
		close(fd);
	}
	path_in(root, "/proc/cpuinfo", p, sizeof(p));
	gr_autofree char *cpuinfo = NULL;
	size_t len;
	if (gr_read_file(p, &cpuinfo, &len, NULL) == 0)
		out->hw = cpu_has_hw(cpuinfo);
	path_in(root, "/sys/module/kvm_pvm", p, sizeof(p));
	out->pvm = access(p, F_OK) == 0;
}

int vm_engine_choose(const struct vm_host *h, const char *forced, enum vm_engine *out, bool *accel_kvm, char *why,
		     size_t why_len, struct gr_error *err)
{
	bool hw_kvm = h->kvm && h->hw && !h->pvm;
	const char *host = hw_kvm ? "hardware-assisted KVM"
			   : h->pvm ? "a PVM host (kvm_pvm): no hardware virtualization for unmodified kernels"
			   : !h->kvm ? "no usable /dev/kvm"
				     : "no vmx or svm in /proc/cpuinfo";
	*accel_kvm = hw_kvm;
	if (forced && *forced && strcmp(forced, "qemu") != 0 && strcmp(forced, "gureum-vmm") != 0)
		return gr_error_set(err, EINVAL, "vm.engine: \"%s\" is not an engine (qemu or gureum-vmm)", forced);
	bool want_vmm = forced && *forced ? strcmp(forced, "gureum-vmm") == 0 : hw_kvm;
	if (want_vmm && !hw_kvm) {
		/* It would start, and the guest would hang in its boot (PVM) or
		 * gureum-vmm would fail at once: say why now. */
		return gr_error_set(err, EINVAL, "vm.engine=gureum-vmm needs hardware-assisted KVM, and this host has %s%s: "
				    "use vm.engine=qemu (binary translation), or leave vm.engine unset", host,
				    h->pvm ? " (Linux does not boot under PVM)" : "");
	}
	if (want_vmm) {
		*out = VM_ENGINE_GUREUM_VMM;
		snprintf(why, why_len, "gureum-vmm (%sthis host: %s)", forced && *forced ? "vm.engine; " : "", host);
		return 0;
	}
	*out = VM_ENGINE_QEMU;
	snprintf(why, why_len, "qemu with %s (%sthis host: %s)", hw_kvm ? "KVM" : "binary translation (TCG)",
		 forced && *forced ? "vm.engine; " : "", host);
	return 0;
}

static int add(char ***v, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int add(char ***v, size_t *n, const char *fmt, ...)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&nv[*n], fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

/* QEMU's option syntax takes ',' as a separator: a value with one (or a
 * path with odd characters) could add options of its own. */
static bool qemu_safe(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *c = s; *c; c++)
		if (*c == ',' || *c == '=' || (unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

/* What both engines take in their options: every path and name can be
 * passed (',' separates options, '=' keys: QEMU's and gureum-vmm's), the
 * shape is sane, the volumes are few enough. */
static int opts_ok(const char *engine, const struct vm_engine_opts *o, struct gr_error *err)
{
	const char *paths[] = { o->kernel, o->initrd, o->disk, o->run_dir, o->name };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (!qemu_safe(paths[i]))
			return gr_error_set(err, EINVAL, "%s: \"%s\" cannot be passed in an option (',' '=' or a "
					    "control character)", engine, paths[i] ? paths[i] : "(none)");
	if ((o->tap && !qemu_safe(o->tap)) || (o->mac && !qemu_safe(o->mac)))
		return gr_error_set(err, EINVAL, "%s: bad tap or MAC", engine);
	if (o->cpus < 1 || o->cpus > 255 || o->memory_mib < 64)
		return gr_error_set(err, EINVAL, "%s: %u vCPUs and %llu MiB cannot be", engine, o->cpus,
				    (unsigned long long)o->memory_mib);
	if (o->nvolumes > VM_MAX_VOLUMES)
		return gr_error_set(err, E2BIG, "%s: %zu block volumes, at most %d", engine, o->nvolumes, VM_MAX_VOLUMES);
	for (size_t i = 0; i < o->nvolumes; i++)
		if (!qemu_safe(o->volumes[i].path))
			return gr_error_set(err, EINVAL, "%s: \"%s\" cannot be passed in an option (',' '=' or a control "
					    "character)", engine, o->volumes[i].path ? o->volumes[i].path : "(none)");
	return 0;
}

char **vm_qemu_argv(const struct vm_engine_opts *o, struct gr_error *err)
{
	if (opts_ok("QEMU", o, err) < 0)
		return NULL;
	const char *qemu = o->binary ? o->binary : getenv("GUREUM_QEMU");
	char **v = NULL;
	size_t n = 0;
	int r = add(&v, &n, "%s", qemu && *qemu ? qemu : VM_QEMU);
	r = r ?: add(&v, &n, "-name");
	r = r ?: add(&v, &n, "gureum-%s", o->name);
	r = r ?: add(&v, &n, "-M");
	r = r ?: add(&v, &n, "microvm,accel=%s,acpi=on,pic=off,pit=off,rtc=on,isa-serial=on", o->kvm ? "kvm" : "tcg");
	r = r ?: add(&v, &n, "-cpu");
	r = r ?: add(&v, &n, "%s", o->kvm ? "host" : "max");
	r = r ?: add(&v, &n, "-smp");
	r = r ?: add(&v, &n, "%u", o->cpus);
	r = r ?: add(&v, &n, "-m");
	r = r ?: add(&v, &n, "%llu", (unsigned long long)o->memory_mib);
	static const char *const fixed[] = { "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
					     "-serial", "stdio", "-device", "virtio-rng-device" };
	for (size_t i = 0; r == 0 && i < sizeof(fixed) / sizeof(fixed[0]); i++)
		r = add(&v, &n, "%s", fixed[i]);
	r = r ?: add(&v, &n, "-kernel");
	r = r ?: add(&v, &n, "%s", o->kernel);
	r = r ?: add(&v, &n, "-initrd");
	r = r ?: add(&v, &n, "%s", o->initrd);
	r = r ?: add(&v, &n, "-append");
	r = r ?: add(&v, &n, "%s", o->cmdline ? o->cmdline : "");
	r = r ?: add(&v, &n, "-drive");
	r = r ?: add(&v, &n, "id=root,file=%s,format=raw,if=none,cache=none,aio=threads", o->disk);
	r = r ?: add(&v, &n, "-device");
	r = r ?: add(&v, &n, "virtio-blk-device,drive=root,serial=" VM_DISK_SERIAL, 0u);
	for (size_t i = 0; r == 0 && i < o->nvolumes; i++) {
		r = add(&v, &n, "-drive");
		r = r ?: add(&v, &n, "id=vol%zu,file=%s,format=raw,if=none,cache=none,aio=threads%s", i + 1,
			     o->volumes[i].path, o->volumes[i].readonly ? ",readonly=on" : "");
		r = r ?: add(&v, &n, "-device");
		r = r ?: add(&v, &n, "virtio-blk-device,drive=vol%zu,serial=" VM_DISK_SERIAL, i + 1, (unsigned)(i + 1));
	}
	if (o->tap) {
		r = r ?: add(&v, &n, "-netdev");
		r = r ?: add(&v, &n, "tap,id=net0,ifname=%s,script=no,downscript=no,vhost=off", o->tap);
		r = r ?: add(&v, &n, "-device");
		r = r ?: add(&v, &n, "virtio-net-device,netdev=net0%s%s", o->mac ? ",mac=" : "", o->mac ? o->mac : "");
	}
	r = r ?: add(&v, &n, "-device");
	r = r ?: add(&v, &n, "virtio-serial-device,max_ports=%d", VM_AGENT_PORTS + 1); /* port 0 is the console's */
	for (int i = 0; r == 0 && i < VM_AGENT_PORTS; i++) {
		r = add(&v, &n, "-chardev");
		r = r ?: add(&v, &n, "socket,id=agent%d,path=%s/agent.%d.sock,server=on,wait=off", i, o->run_dir, i);
		r = r ?: add(&v, &n, "-device");
		r = r ?: add(&v, &n, "virtserialport,chardev=agent%d,name=" VM_AGENT_PORT_PREFIX "%d,nr=%d", i, i,
			     i + 1);
	}
	/* Two monitors: QEMU serves one client on each; the supervisor's stop
	 * must not wait behind the driver's pause or resume. */
	r = r ?: add(&v, &n, "-qmp");
	r = r ?: add(&v, &n, "unix:%s/qmp.sock,server=on,wait=off", o->run_dir);
	r = r ?: add(&v, &n, "-qmp");
	r = r ?: add(&v, &n, "unix:%s/qmp-ctl.sock,server=on,wait=off", o->run_dir);
	if (r < 0) {
		gr_strv_free(v);
		gr_error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return v;
}

char **vm_vmm_argv(const struct vm_engine_opts *o, struct gr_error *err)
{
	if (opts_ok("gureum-vmm", o, err) < 0)
		return NULL;
	if (!o->binary || o->binary[0] != '/') {
		gr_error_set(err, EINVAL, "gureum-vmm: no program (an absolute path is needed)");
		return NULL;
	}
	/* gureum-vmm connects guest-initiated streams to PATH_<port>: its limit. */
	if (strlen(o->run_dir) + 1 + strlen(VM_VSOCK_SOCK) > VM_VSOCK_PATH_MAX) {
		gr_error_set(err, ENAMETOOLONG, "gureum-vmm: the vsock socket %s/" VM_VSOCK_SOCK " is longer than its "
			     "limit of %d bytes: use a shorter run directory (--run-dir) or instance name", o->run_dir,
			     VM_VSOCK_PATH_MAX);
		return NULL;
	}
	char **v = NULL;
	size_t n = 0;
	int r = add(&v, &n, "%s", o->binary);
	r = r ?: add(&v, &n, "--kernel");
	r = r ?: add(&v, &n, "%s", o->kernel);
	r = r ?: add(&v, &n, "--initrd");
	r = r ?: add(&v, &n, "%s", o->initrd);
	r = r ?: add(&v, &n, "--cmdline");
	r = r ?: add(&v, &n, "%s", o->cmdline ? o->cmdline : "");
	r = r ?: add(&v, &n, "--cpus");
	r = r ?: add(&v, &n, "%u", o->cpus);
	r = r ?: add(&v, &n, "--memory");
	r = r ?: add(&v, &n, "%lluM", (unsigned long long)o->memory_mib);
	/* Its disks' serials are gureum-diskN by their order too. */
	r = r ?: add(&v, &n, "--disk");
	r = r ?: add(&v, &n, "%s", o->disk);
	for (size_t i = 0; r == 0 && i < o->nvolumes; i++) {
		r = add(&v, &n, "--disk");
		r = r ?: add(&v, &n, "%s%s", o->volumes[i].path, o->volumes[i].readonly ? ",ro" : "");
	}
	r = r ?: add(&v, &n, "--rng");
	if (o->tap) {
		r = r ?: add(&v, &n, "--net");
		r = r ?: add(&v, &n, "tap=%s%s%s", o->tap, o->mac ? ",mac=" : "", o->mac ? o->mac : "");
	}
	r = r ?: add(&v, &n, "--vsock");
	r = r ?: add(&v, &n, "cid=%d,socket=%s/" VM_VSOCK_SOCK, VM_VSOCK_CID, o->run_dir);
	/* COM1 on stdio: the supervisor's pty (the console and the boot log). */
	r = r ?: add(&v, &n, "--serial");
	r = r ?: add(&v, &n, "stdio");
	r = r ?: add(&v, &n, "--api-socket");
	r = r ?: add(&v, &n, "%s/" VM_VMM_API_SOCK, o->run_dir);
	if (r < 0) {
		gr_strv_free(v);
		gr_error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return v;
}

char **vm_engine_argv(enum vm_engine e, const struct vm_engine_opts *o, struct gr_error *err)
{
	return e == VM_ENGINE_GUREUM_VMM ? vm_vmm_argv(o, err) : vm_qemu_argv(o, err);
}

int vm_vmm_binary(const char *libexec_dir, char *out, struct gr_error *err)
{
	const char *e = getenv("GUREUM_VMM");
	if (e && *e) {
		snprintf(out, PATH_MAX, "%s", e);
		if (e[0] != '/')
			return gr_error_set(err, EINVAL, "GUREUM_VMM: \"%s\" is not an absolute path", e);
		return access(out, X_OK) == 0 ? 0 : gr_error_sys(err, errno, "GUREUM_VMM %s", out);
	}
	const char *dir = libexec_dir && *libexec_dir ? libexec_dir : ".";
	static const char *const where[] = { "%s/gureum-vmm", "%s/../vmm/gureum-vmm", "%s/../../bin/gureum-vmm" };
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		char p[PATH_MAX];
		if (snprintf(p, sizeof(p), where[i], dir) >= (int)sizeof(p) || access(p, X_OK) < 0)
			continue;
		/* An absolute, clean path: the supervisor runs it as given. */
		char *real = realpath(p, NULL);
		if (!real)
			continue;
		snprintf(out, PATH_MAX, "%s", real);
		free(real);
		return 0;
	}
	return gr_error_set(err, ENOENT, "gureum-vmm not found next to gureum-supervisor in %s, in the build tree's "
			    "src/vmm or in the installed bin directory (set GUREUM_VMM, or use vm.engine=qemu)", dir);
}
