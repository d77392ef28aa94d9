/* gureum-vmm: one process per virtual machine. Parses the command line (or a
 * JSON config carrying the same settings), builds guest memory, loads the
 * kernel, writes the ACPI tables, and runs the vCPUs until the guest powers
 * off, resets or fails. The exit status says which (see README.md). */
#include "vm.h"
#include "layout.h"
#include "acpi/acpi.h"
#include "boot/boot.h"
#include "event_loop.h"
#include "api_control.h"
#include "devices/ged.h"
#include "devices/legacy.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "devices/virtio_console.h"
#include "devices/virtio_rng.h"
#include "devices/virtio_vsock.h"
#include "sandbox.h"
#include "common/cleanup.h"
#include "common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct vmm_config {
	const char *kernel, *initrd, *cmdline, *serial, *console, *dump_acpi;
	unsigned int cpus;
	uint64_t memory;
	const char *disks[ACPI_MAX_VIRTIO_DEVICES]; /* "PATH[,ro][,direct]", checked when the disks are opened */
	size_t n_disks;
	const char *nets[ACPI_MAX_VIRTIO_DEVICES];  /* "tap=IF[,mac=MAC]" as given, for messages */
	struct virtio_net_spec net_specs[ACPI_MAX_VIRTIO_DEVICES]; /* parsed when given */
	size_t n_nets;
	const char *vsock;                          /* "cid=N,socket=PATH", checked when given */
	bool rng;
	const char *api_socket;                     /* --api-socket: served by gureum-vmm-api */
};

/* Virtio devices get windows and GSIs in this order: the disks, the
 * console, then rng. */
static bool has_console(const struct vmm_config *c)
{
	return c->console && strcmp(c->console, "none") != 0;
}

static size_t n_virtio(const struct vmm_config *c)
{
	return c->n_disks + c->n_nets + (c->vsock ? 1 : 0) + (has_console(c) ? 1 : 0) + (c->rng ? 1 : 0);
}

/* Room for one more virtio device? where and spec name it in the error. */
static int virtio_room(const struct vmm_config *c, const char *where, const char *spec, struct gr_error *err)
{
	if (n_virtio(c) < ACPI_MAX_VIRTIO_DEVICES)
		return 0;
	return gr_error_set(err, ENOSPC, "%s%s%s: too many virtio devices (at most %d, one I/O APIC pin each)", where,
			    spec ? " " : "", spec ? spec : "", ACPI_MAX_VIRTIO_DEVICES);
}

/* where: "--vsock" or "FILE: vsock". The spec is checked now, opened later. */
static int set_vsock(struct vmm_config *c, const char *where, const char *spec, struct gr_error *err)
{
	uint64_t cid;
	gr_autofree char *path = NULL;
	int r = c->vsock ? 0 : virtio_room(c, where, spec, err);
	if (r < 0)
		return r;
	if (virtio_vsock_parse_spec(spec, &cid, &path, err) < 0)
		return gr_error_prefix(err, "%s", where);
	c->vsock = spec;
	return 0;
}

static int set_console(struct vmm_config *c, const char *spec, struct gr_error *err)
{
	int r = has_console(c) || strcmp(spec, "none") == 0 ? 0 : virtio_room(c, "--console", spec, err);
	if (r == 0)
		c->console = spec;
	return r;
}

/* where: "--disk" or "FILE: disks[i]", for messages. */
static int add_disk(struct vmm_config *c, const char *where, const char *spec, struct gr_error *err)
{
	int r = virtio_room(c, where, spec, err);
	if (r == 0)
		c->disks[c->n_disks++] = spec;
	return r;
}

/* where: "--net" or "FILE: nets[i]", for messages. The spec is parsed now:
 * a bad one is reported before anything is opened. */
static int add_net(struct vmm_config *c, const char *where, const char *spec, struct gr_error *err)
{
	int r = virtio_room(c, where, spec, err);
	if (r < 0)
		return r;
	if (virtio_net_parse_spec(spec, &c->net_specs[c->n_nets], err) < 0)
		return gr_error_prefix(err, "%s %.64s%s", where, spec, strlen(spec) > 64 ? "..." : "");
	c->nets[c->n_nets++] = spec;
	return 0;
}

static int set_rng(struct vmm_config *c, struct gr_error *err)
{
	int r = c->rng ? 0 : virtio_room(c, "--rng", NULL, err);
	if (r == 0)
		c->rng = true;
	return r;
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "gureum-vmm: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see --help)\n");
	return VM_EXIT_CONFIG;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: gureum-vmm --kernel PATH [--initrd PATH] [--cmdline STR] [--cpus N] [--memory SIZE]\n"
		   "                  [--disk PATH[,ro][,direct]]... [--rng]\n"
		   "                  [--net tap=IF[,mac=MAC]]... (an existing tap; MAC default 02:67:72:..)\n"
		   "                  [--vsock cid=N,socket=PATH] (N >= 3; host-initiated: connect to PATH, write\n"
		   "                  \"CONNECT <port>\\n\", read \"OK <port>\\n\"; guest-initiated to port P: PATH_P)\n"
		   "                  [--serial stdio|file=PATH|socket=PATH|none] (default stdio: COM1, with input)\n"
		   "                  [--console stdio|file=PATH|socket=PATH|none] (default none: no virtio-console)\n"
		   "                  [--dump-acpi DIR] [--api-socket PATH] [--config FILE.json]\n\n"
		   "Only one of --serial and --console can use stdio. socket=PATH: the VMM listens on a\n"
		   "unix socket (mode 0600, one client at a time, removed at exit).\n"
		   "--api-socket PATH: the control API (HTTP/JSON: GET /vm, PUT /vm/actions pause|resume|stop,\n"
		   "GET /metrics) on a unix socket, served by gureum-vmm-api started next to this program.\n"
		   "Exit status: 0 powered off, 1 bad configuration, 2 guest reset, 3 triple fault,\n"
		   "4 KVM internal error, 5 VMM error, 6 stopped by force (a stop request the guest did not\n"
		   "honour within its timeout), 64+N test payload failure N.\n");
}

static int set_cpus(struct vmm_config *c, const char *s)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > VM_MAX_VCPUS)
		return -1;
	c->cpus = (unsigned)v;
	return 0;
}

/* FILE's key, an array of strings: each goes to add as "FILE: key[i]". */
static int config_add_each(struct vmm_config *c, json_t *j, const char *path, const char *key,
			   int (*add)(struct vmm_config *c, const char *where, const char *spec, struct gr_error *err),
			   struct gr_error *err)
{
	json_t *a, *v;
	int r = gr_json_get_array(j, path, key, &a, err);
	if (r <= 0)
		return r;
	size_t i;
	json_array_foreach(a, i, v) {
		char where[GR_JPATH_MAX], at[GR_JPATH_MAX + 512];
		const char *spec;
		gr_jpath_index(where, sizeof(where), key, i);
		if (gr_json_as_string(v, where, &spec, err) < 0)
			return gr_error_prefix(err, "%s", path);
		snprintf(at, sizeof(at), "%s: %s", path, where);
		if ((r = add(c, at, spec, err)) < 0)
			return r;
	}
	return 0;
}

/* --config FILE.json: the same settings as the flags (flags given later win). */
static int load_config_file(struct vmm_config *c, const char *path, json_t **keep, struct gr_error *err)
{
	json_t *j = NULL;
	int r = gr_json_load_file(path, &j, err);
	if (r < 0)
		return r;
	*keep = j;
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v) {
		if (strcmp(key, "kernel") && strcmp(key, "initrd") && strcmp(key, "cmdline") && strcmp(key, "serial") && strcmp(key, "console") &&
		    strcmp(key, "cpus") && strcmp(key, "memory") && strcmp(key, "disks") && strcmp(key, "nets") && strcmp(key, "rng") &&
		    strcmp(key, "vsock") &&
		    strcmp(key, "api_socket"))
			return gr_error_set(err, EINVAL, "%s: unknown setting \"%s\"", path, key);
	}
	if ((r = gr_json_get_string(j, path, "kernel", &c->kernel, err)) < 0 ||
	    (r = gr_json_get_string(j, path, "initrd", &c->initrd, err)) < 0 ||
	    (r = gr_json_get_string(j, path, "cmdline", &c->cmdline, err)) < 0 ||
	    (r = gr_json_get_string(j, path, "serial", &c->serial, err)) < 0 ||
	    (r = gr_json_get_string(j, path, "api_socket", &c->api_socket, err)) < 0)
		return r;
	const char *console;
	if ((r = gr_json_get_string(j, path, "console", &console, err)) < 0)
		return r;
	if (r == 1 && set_console(c, console, err) < 0)
		return gr_error_prefix(err, "%s", path);
	uint32_t cpus;
	if ((r = gr_json_get_uint32(j, path, "cpus", &cpus, err)) < 0)
		return r;
	if (r == 1) {
		if (cpus < 1 || cpus > VM_MAX_VCPUS)
			return gr_error_set(err, EINVAL, "%s.cpus: %u is out of range (1 to %d)", path, cpus, VM_MAX_VCPUS);
		c->cpus = cpus;
	}
	const char *mem;
	if ((r = gr_json_get_string(j, path, "memory", &mem, err)) < 0)
		return r;
	if (r == 1 && gm_parse_size(mem, &c->memory) < 0)
		return gr_error_set(err, EINVAL, "%s.memory: \"%s\" is not a size (like 512M or 2G)", path, mem);
	if ((r = config_add_each(c, j, path, "disks", add_disk, err)) < 0 ||
	    (r = config_add_each(c, j, path, "nets", add_net, err)) < 0)
		return r;
	const char *vsock;
	if ((r = gr_json_get_string(j, path, "vsock", &vsock, err)) < 0)
		return r;
	if (r == 1) {
		char at[GR_JPATH_MAX + 512];
		snprintf(at, sizeof(at), "%s: vsock", path);
		if ((r = set_vsock(c, at, vsock, err)) < 0)
			return r;
	}
	bool rng;
	if ((r = gr_json_get_bool(j, path, "rng", &rng, err)) < 0)
		return r;
	if (r == 1 && rng && set_rng(c, err) < 0)
		return gr_error_prefix(err, "%s", path);
	if (r == 1 && !rng)
		c->rng = false;
	return 0;
}

/* The serial port's and the console's backends (before the sandbox). Only
 * one of them may take stdio. */
static int open_chardevs(const struct vmm_config *c, struct chardev *serial, struct chardev *console,
			 struct gr_error *err)
{
	enum chardev_kind sk, ck = CHARDEV_NONE;
	const char *p;
	int r = chardev_parse("--serial", c->serial, &sk, &p, err);
	if (r == 0 && c->console)
		r = chardev_parse("--console", c->console, &ck, &p, err);
	if (r < 0)
		return r;
	if (sk == CHARDEV_STDIO && ck == CHARDEV_STDIO)
		return gr_error_set(err, EINVAL, "--console stdio: the serial port already uses stdio%s; give --serial none, file=PATH or socket=PATH",
				    c->serial ? "" : " (the default)");
	if ((r = chardev_open(serial, "--serial", c->serial, err)) < 0)
		return r;
	if ((r = chardev_open(console, "--console", c->console ? c->console : "none", err)) < 0) {
		chardev_close(serial);
		return r;
	}
	return 0;
}

/* The virtio-mmio devices: disks, nets, vsock, console, rng; device n gets
 * window LAYOUT_VIRTIO_MMIO_BASE + n * LAYOUT_VIRTIO_MMIO_SIZE and GSI
 * LAYOUT_VIRTIO_IRQ_BASE + n, which the DSDT declares. */
struct virtio_devices {
	struct virtio_blk *disks;          /* n_disks, calloc'd */
	size_t n_disks;
	struct virtio_net *nets;           /* n_nets, calloc'd */
	size_t n_nets;
	struct virtio_vsock *vsock;        /* NULL without --vsock */
	struct virtio_console *console;    /* NULL without --console */
	struct virtio_rng *rng;            /* NULL without --rng */
	struct virtio_mmio_dev *mmio[ACPI_MAX_VIRTIO_DEVICES];
	struct vmm_control_device metrics[ACPI_MAX_VIRTIO_DEVICES]; /* name, collect, dev (lock: later) */
	struct vm_irq_source irqs[ACPI_MAX_VIRTIO_DEVICES];
	size_t n;
};

/* Device v->n is mmio, called name in the metrics. */
static void virtio_devices_add(struct virtio_devices *v, struct virtio_mmio_dev *mmio, const char *name,
			       vmm_control_collect_fn collect, const void *dev)
{
	struct vmm_control_device *m = &v->metrics[v->n];
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->collect = collect;
	m->dev = dev;
	v->mmio[v->n++] = mmio;
}

/* The lock of the window that holds mmio (what its I/O-thread callbacks take). */
static pthread_mutex_t *virtio_devices_lock(const struct virtio_devices *v, struct vm *vm,
					    const struct virtio_mmio_dev *mmio)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->mmio[i] == mmio)
			return vm_mmio_lock(vm, LAYOUT_VIRTIO_MMIO_BASE + i * LAYOUT_VIRTIO_MMIO_SIZE);
	return NULL;
}

static void virtio_devices_close(struct virtio_devices *v)
{
	for (size_t i = 0; i < v->n_disks; i++)
		virtio_blk_close(&v->disks[i]);
	free(v->disks);
	for (size_t i = 0; i < v->n_nets; i++)
		virtio_net_close(&v->nets[i]);
	free(v->nets);
	if (v->vsock)
		virtio_vsock_close(v->vsock);   /* removes its socket file (or leaves it to the watcher) */
	free(v->vsock);
	free(v->console);
	free(v->rng);
	*v = (struct virtio_devices){ 0 };
}

/* Opens the backends (before the VM exists: bad files are configuration
 * errors). The interrupt sources point at vm, which vm_create fills later. */
static int virtio_devices_open(struct virtio_devices *v, const struct vmm_config *c, struct guest_mem *gm,
			       struct vm *vm, struct chardev *console, struct acpi_mmio_device *windows,
			       struct gr_error *err)
{
	for (size_t i = 0; i < n_virtio(c); i++) {
		v->irqs[i] = (struct vm_irq_source){ .vm = vm, .gsi = (uint32_t)(LAYOUT_VIRTIO_IRQ_BASE + i) };
		windows[i] = (struct acpi_mmio_device){ .base = LAYOUT_VIRTIO_MMIO_BASE + i * LAYOUT_VIRTIO_MMIO_SIZE,
							.size = LAYOUT_VIRTIO_MMIO_SIZE, .gsi = v->irqs[i].gsi };
	}
	if (c->n_disks && !(v->disks = calloc(c->n_disks, sizeof(*v->disks))))
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < c->n_disks; i++) {
		gr_autofree char *path = NULL;
		bool ro, direct;
		int r = virtio_blk_parse_spec(c->disks[i], &path, &ro, &direct, err);
		if (r == 0)
			r = virtio_blk_init(&v->disks[i], gm, path, ro, direct, (unsigned)i, vm_irq_edge, &v->irqs[v->n],
					    err);
		if (r < 0)
			return gr_error_prefix(err, "--disk");
		v->n_disks++;
		char name[VMM_CTL_NAME_LEN];
		snprintf(name, sizeof(name), "blk%zu", i);
		virtio_devices_add(v, &v->disks[i].mmio, name, vmm_control_collect_blk, &v->disks[i]);
	}
	if (c->n_nets && !(v->nets = calloc(c->n_nets, sizeof(*v->nets))))
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < c->n_nets; i++) {
		int r = virtio_net_open(&v->nets[i], gm, &c->net_specs[i], (unsigned)i, vm_irq_edge, &v->irqs[v->n], err);
		v->n_nets++;               /* closed by virtio_devices_close, also when it failed */
		if (r < 0)
			return gr_error_prefix(err, "--net %s", c->nets[i]);
		char name[VMM_CTL_NAME_LEN];
		snprintf(name, sizeof(name), "net%zu", i);
		virtio_devices_add(v, &v->nets[i].mmio, name, vmm_control_collect_net, &v->nets[i]);
	}
	if (c->vsock) {
		uint64_t cid;
		gr_autofree char *path = NULL;
		int r = virtio_vsock_parse_spec(c->vsock, &cid, &path, err);
		if (r == 0 && !(v->vsock = calloc(1, sizeof(*v->vsock))))
			r = gr_error_set(err, ENOMEM, "out of memory");
		if (r == 0)
			r = virtio_vsock_init(v->vsock, gm, cid, path, vm_irq_edge, &v->irqs[v->n], err);
		if (r < 0)
			return gr_error_prefix(err, "--vsock");
		virtio_devices_add(v, &v->vsock->mmio, "vsock", vmm_control_collect_vsock, v->vsock);
	}
	if (has_console(c)) {
		if (!(v->console = calloc(1, sizeof(*v->console))))
			return gr_error_set(err, ENOMEM, "out of memory");
		int r = virtio_console_init(v->console, gm, console, vm_irq_edge, &v->irqs[v->n], err);
		if (r < 0)
			return gr_error_prefix(err, "--console");
		virtio_devices_add(v, &v->console->mmio, "console", vmm_control_collect_console, v->console);
	}
	if (c->rng) {
		if (!(v->rng = calloc(1, sizeof(*v->rng))))
			return gr_error_set(err, ENOMEM, "out of memory");
		int r = virtio_rng_init(v->rng, gm, vm_irq_edge, &v->irqs[v->n], err);
		if (r < 0)
			return gr_error_prefix(err, "--rng");
		virtio_devices_add(v, &v->rng->mmio, "rng", vmm_control_collect_rng, v->rng);
	}
	return 0;
}

static void virtio_window_read(void *dev, uint64_t offset, void *data, uint32_t len)
{
	virtio_mmio_read(dev, offset, data, len);
}

static void virtio_window_write(void *dev, uint64_t offset, const void *data, uint32_t len)
{
	virtio_mmio_write(dev, offset, data, len);
}

/* The taps go to the I/O thread, under their windows' locks (once the
 * windows exist). */
static int virtio_nets_attach(struct virtio_devices *v, struct vm *vm, struct ev_loop *io, struct gr_error *err)
{
	for (size_t i = 0; i < v->n_nets; i++) {
		int r = virtio_net_attach(&v->nets[i], io, virtio_devices_lock(v, vm, &v->nets[i].mmio), err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The vsock socket goes to the I/O thread under the window's lock; its file
 * is removed by a watcher process once the VMM ends (it may not unlink once
 * sandboxed). */
static int virtio_vsock_attach(struct virtio_devices *v, struct vm *vm, struct ev_loop *io, struct gr_error *err)
{
	if (!v->vsock)
		return 0;
	/* A descriptor per connection (VSOCK_MAX_CONNS): raise the soft limit
	 * toward the hard one, as far as it goes. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < VSOCK_MAX_CONNS + 256) {
		rl.rlim_cur = rl.rlim_max < VSOCK_MAX_CONNS + 256 ? rl.rlim_max : VSOCK_MAX_CONNS + 256;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	int r = virtio_vsock_start(v->vsock, io, virtio_devices_lock(v, vm, &v->vsock->mmio), err);
	if (r == 0)
		r = sock_file_unlink_at_exit(&v->vsock->sock, err);
	return r < 0 ? gr_error_prefix(err, "--vsock") : 0;
}

static int virtio_devices_attach(struct virtio_devices *v, struct vm *vm, const struct acpi_mmio_device *windows,
				 struct gr_error *err)
{
	for (size_t i = 0; i < v->n; i++) {
		int r = vm_add_mmio(vm, windows[i].base, windows[i].size, virtio_window_read, virtio_window_write,
				    v->mmio[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* GUREUM_VMM_IRQCHIP=auto|split|kernel (for tests and debugging; see
 * README.md, Machine): which irqchip vm_create_with_irqchip builds. */
static int irqchip_from_env(enum vm_irqchip *mode, const char **bad)
{
	const char *v = getenv("GUREUM_VMM_IRQCHIP");
	*mode = VM_IRQCHIP_AUTO;
	*bad = v;
	if (!v || !*v || strcmp(v, "auto") == 0)
		return 0;
	if (strcmp(v, "split") == 0)
		*mode = VM_IRQCHIP_SPLIT;
	else if (strcmp(v, "kernel") == 0)
		*mode = VM_IRQCHIP_KERNEL;
	else
		return -1;
	return 0;
}

/* Input for the serial port and the console through the I/O thread (after
 * the MMIO windows exist: the console's callbacks take its window's lock),
 * and the watchers that remove socket files at exit (before the sandbox). */
static int chardevs_attach(struct serial *serial, struct chardev *serial_cd, struct chardev *console_cd,
			   struct virtio_devices *v, struct vm *vm, struct ev_loop *io, struct gr_error *err)
{
	int r;
	if ((r = serial_attach(serial, io, err)) < 0 || (r = chardev_unlink_at_exit(serial_cd, err)) < 0)
		return r;
	if (!v->console)
		return 0;
	pthread_mutex_t *lock = virtio_devices_lock(v, vm, &v->console->mmio);
	if (!lock)
		return gr_error_set(err, ENOENT, "--console: no MMIO window for the device");
	if ((r = virtio_console_attach(v->console, io, lock, err)) < 0 || (r = chardev_unlink_at_exit(console_cd, err)) < 0)
		return r;
	return 0;
}

/* What the control API's metrics show per device: each virtio device
 * ("blk<N>", "net<N>", "vsock", "console", "rng") read under its MMIO
 * window's lock, the serial port's backend ("serial") and the GED. */
static int control_add_devices(struct vmm_control *ctl, const struct virtio_devices *v, struct vm *vm,
			       const struct chardev *serial_cd, const struct ged *ged, struct gr_error *err)
{
	int r;
	for (size_t i = 0; i < v->n; i++) {
		const struct vmm_control_device *m = &v->metrics[i];
		if ((r = vmm_control_add_device(ctl, m->name, virtio_devices_lock(v, vm, v->mmio[i]), m->collect, m->dev,
						err)) < 0)
			return r;
	}
	if ((r = vmm_control_add_device(ctl, "serial", NULL, vmm_control_collect_chardev, serial_cd, err)) < 0)
		return r;
	return vmm_control_add_device(ctl, "ged", NULL, vmm_control_collect_ged, ged, err);
}

#define API_START_TIMEOUT_MS 10000  /* the API process binds and says hello */
#define API_END_TIMEOUT_MS 2000     /* it removes its socket and exits */

int main(int argc, char **argv)
{
	struct vmm_config c = { .cpus = 1, .memory = 128ULL << 20 };
	gr_autojson json_t *config_json = NULL;
	struct gr_error err = { 0 };
	enum { O_KERNEL = 256, O_INITRD, O_CMDLINE, O_CPUS, O_MEMORY, O_SERIAL, O_DUMP_ACPI, O_CONFIG,
	       O_DISK, O_NET, O_VSOCK, O_RNG, O_API, O_CONSOLE };
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, O_KERNEL }, { "initrd", required_argument, NULL, O_INITRD },
		{ "cmdline", required_argument, NULL, O_CMDLINE }, { "cpus", required_argument, NULL, O_CPUS },
		{ "memory", required_argument, NULL, O_MEMORY }, { "serial", required_argument, NULL, O_SERIAL },
		{ "console", required_argument, NULL, O_CONSOLE },
		{ "dump-acpi", required_argument, NULL, O_DUMP_ACPI }, { "config", required_argument, NULL, O_CONFIG },
		{ "disk", required_argument, NULL, O_DISK }, { "net", required_argument, NULL, O_NET },
		{ "vsock", required_argument, NULL, O_VSOCK }, { "rng", no_argument, NULL, O_RNG },
		{ "api-socket", required_argument, NULL, O_API }, { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o, r = 0;
	bool vsock_flag = false;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_KERNEL: c.kernel = optarg; break;
		case O_INITRD: c.initrd = optarg; break;
		case O_CMDLINE: c.cmdline = optarg; break;
		case O_CPUS:
			if (set_cpus(&c, optarg) < 0)
				return usage_error("--cpus: expected 1 to 255, got \"%s\"", optarg);
			break;
		case O_MEMORY:
			if (gm_parse_size(optarg, &c.memory) < 0)
				return usage_error("--memory: \"%s\" is not a size (like 512M or 2G)", optarg);
			break;
		case O_SERIAL: c.serial = optarg; break;
		case O_CONSOLE: r = set_console(&c, optarg, &err); break;
		case O_DUMP_ACPI: c.dump_acpi = optarg; break;
		case O_CONFIG: r = load_config_file(&c, optarg, &config_json, &err); break;
		case O_DISK: r = add_disk(&c, "--disk", optarg, &err); break;
		case O_NET: r = add_net(&c, "--net", optarg, &err); break;
		case O_RNG: r = set_rng(&c, &err); break;
		case O_API: c.api_socket = optarg; break;
		case O_VSOCK:
			r = vsock_flag ? gr_error_set(&err, EINVAL, "--vsock %s: at most one vsock device", optarg)
				       : set_vsock(&c, "--vsock", optarg, &err);
			vsock_flag = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return usage_error("unknown option \"%s\"", argv[optind - 1]);
		}
		if (r < 0) {
			fprintf(stderr, "gureum-vmm: %s\n", err.msg);
			return VM_EXIT_CONFIG;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!c.kernel)
		return usage_error("%s", "--kernel is required");
	enum vm_irqchip irqchip;
	const char *irqchip_env;
	if (irqchip_from_env(&irqchip, &irqchip_env) < 0)
		return usage_error("GUREUM_VMM_IRQCHIP: expected auto, split or kernel, got \"%s\"", irqchip_env);
	char api_program[PATH_MAX];
	if (c.api_socket && vmm_control_find_program(api_program, sizeof(api_program), &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		return VM_EXIT_CONFIG;
	}

	struct chardev serial_cd, console_cd;
	if (open_chardevs(&c, &serial_cd, &console_cd, &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		return VM_EXIT_CONFIG;
	}
	struct guest_mem gm;
	if (gm_create(&gm, c.memory, &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		chardev_close(&serial_cd);
		chardev_close(&console_cd);
		return VM_EXIT_CONFIG;
	}
	int status = VM_EXIT_CONFIG;
	struct vm vm;
	struct virtio_devices vdev = { 0 };
	struct serial serial;
	struct vm_irq_source serial_irq = { .vm = &vm, .gsi = LAYOUT_SERIAL_IRQ };
	serial_init(&serial, &serial_cd, serial_irq_line, &serial_irq);
	struct acpi_sleep sleep = { 0 };
	struct ev_loop io;                 /* host-side I/O (taps, sockets, console input) */
	struct acpi_mmio_device windows[ACPI_MAX_VIRTIO_DEVICES];
	struct acpi_config acfg = { .n_cpus = c.cpus, .serial = 1, .virtio = windows, .n_virtio = n_virtio(&c),
				  .ged = 1 };
	struct ged ged;                    /* the power button the control API's stop presses */
	struct vmm_control ctl = VMM_CONTROL_NONE;
	uint64_t rsdp = 0;
	struct boot_info bi;
	if (ev_loop_init(&io, &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		gm_destroy(&gm);
		chardev_close(&serial_cd);
		chardev_close(&console_cd);
		return VM_EXIT_VMM_ERROR;
	}
	if (virtio_devices_open(&vdev, &c, &gm, &vm, &console_cd, windows, &err) < 0 ||
	    acpi_build(&gm, &acfg, &rsdp, &err) < 0 ||
	    (c.dump_acpi && acpi_dump(&gm, rsdp, c.dump_acpi, &err) < 0) ||
	    boot_load(&gm, c.kernel, c.initrd, c.cmdline ? c.cmdline : "", rsdp, &bi, &err) < 0 ||
	    /* The API process, while single-threaded and before the sandbox (fork, exec). */
	    (c.api_socket && vmm_control_spawn(&ctl, api_program, c.api_socket, API_START_TIMEOUT_MS, &err) < 0)) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		virtio_devices_close(&vdev);
		ev_loop_destroy(&io);
		gm_destroy(&gm);
		chardev_close(&serial_cd);
		chardev_close(&console_cd);
		return VM_EXIT_CONFIG;
	}
	if (vm_create_with_irqchip(&vm, &gm, c.cpus, irqchip, &err) < 0 || legacy_devices_add(&vm, &serial, &sleep, &err) < 0 ||
	    virtio_devices_attach(&vdev, &vm, windows, &err) < 0 ||
	    virtio_nets_attach(&vdev, &vm, &io, &err) < 0 ||
	    virtio_vsock_attach(&vdev, &vm, &io, &err) < 0 ||
	    chardevs_attach(&serial, &serial_cd, &console_cd, &vdev, &vm, &io, &err) < 0 ||
	    ged_add(&ged, &vm, &err) < 0 ||
	    (ctl.fd >= 0 && (control_add_devices(&ctl, &vdev, &vm, &serial_cd, &ged, &err) < 0 ||
			     vmm_control_attach(&ctl, &io, &vm, c.memory, &err) < 0)) ||
	    vm_setup_vcpus(&vm, bi.mode == BOOT_LINUX64, bi.entry, bi.params_gpa, &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		status = VM_EXIT_VMM_ERROR;
	} else if (vmm_sandbox_drop_caps(&err) < 0 || vmm_sandbox_seccomp(&err) < 0) {
		/* Set up: from here the VMM runs with no capabilities and only the
		 * system calls its vCPU loop and devices need (see README.md). */
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		status = VM_EXIT_VMM_ERROR;
	} else if (ev_loop_start(&io, &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		status = VM_EXIT_VMM_ERROR;
	} else {
		status = vm_run(&vm);
		if (status != VM_EXIT_POWEROFF)
			fprintf(stderr, "gureum-vmm: %s\n", vm.exit_reason);
	}
	/* The API process answers until it has removed its socket and exited. */
	vmm_control_close(&ctl, io.running, API_END_TIMEOUT_MS);
	ev_loop_stop(&io);
	vm_destroy(&vm);
	virtio_devices_close(&vdev);
	ev_loop_destroy(&io);
	gm_destroy(&gm);
	chardev_close(&serial_cd);   /* restores the terminal */
	chardev_close(&console_cd);
	return status;
}
