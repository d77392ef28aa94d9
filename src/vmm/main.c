/* gureum-vmm: one process per virtual machine. Parses the command line (or a
 * JSON config carrying the same settings), builds guest memory, loads the
 * kernel, writes the ACPI tables, and runs the vCPUs until the guest powers
 * off, resets or fails. The exit status says which (see README.md). */
#include "vm.h"
#include "layout.h"
#include "acpi/acpi.h"
#include "boot/boot.h"
#include "devices/legacy.h"
#include "common/cleanup.h"
#include "common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct vmm_config {
	const char *kernel, *initrd, *cmdline, *serial, *dump_acpi;
	unsigned int cpus;
	uint64_t memory;
};

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
		   "                  [--serial stdio|file=PATH|none] [--dump-acpi DIR] [--config FILE.json]\n\n"
		   "Exit status: 0 powered off, 1 bad configuration, 2 guest reset, 3 triple fault,\n"
		   "4 KVM internal error, 5 VMM error, 64+N test payload failure N.\n");
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
		if (strcmp(key, "kernel") && strcmp(key, "initrd") && strcmp(key, "cmdline") && strcmp(key, "serial") &&
		    strcmp(key, "cpus") && strcmp(key, "memory"))
			return gr_error_set(err, EINVAL, "%s: unknown setting \"%s\"", path, key);
	}
	if ((r = gr_json_get_string(j, path, "kernel", &c->kernel, err)) < 0 ||
	    (r = gr_json_get_string(j, path, "initrd", &c->initrd, err)) < 0 ||
	    (r = gr_json_get_string(j, path, "cmdline", &c->cmdline, err)) < 0 ||
	    (r = gr_json_get_string(j, path, "serial", &c->serial, err)) < 0)
		return r;
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
	return 0;
}

static int open_serial(const char *spec, int *fd, struct gr_error *err)
{
	if (!spec || strcmp(spec, "stdio") == 0) {
		*fd = STDOUT_FILENO;
		return 0;
	}
	if (strcmp(spec, "none") == 0) {
		*fd = -1;
		return 0;
	}
	if (strncmp(spec, "file=", 5) == 0) {
		*fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (*fd < 0)
			return gr_error_sys(err, errno, "--serial: cannot open %s", spec + 5);
		return 0;
	}
	return gr_error_set(err, EINVAL, "--serial: expected stdio, file=PATH or none, got \"%s\"", spec);
}

int main(int argc, char **argv)
{
	struct vmm_config c = { .cpus = 1, .memory = 128ULL << 20 };
	gr_autojson json_t *config_json = NULL;
	struct gr_error err = { 0 };
	enum { O_KERNEL = 256, O_INITRD, O_CMDLINE, O_CPUS, O_MEMORY, O_SERIAL, O_DUMP_ACPI, O_CONFIG,
	       O_DISK, O_NET, O_VSOCK, O_RNG, O_API };
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, O_KERNEL }, { "initrd", required_argument, NULL, O_INITRD },
		{ "cmdline", required_argument, NULL, O_CMDLINE }, { "cpus", required_argument, NULL, O_CPUS },
		{ "memory", required_argument, NULL, O_MEMORY }, { "serial", required_argument, NULL, O_SERIAL },
		{ "dump-acpi", required_argument, NULL, O_DUMP_ACPI }, { "config", required_argument, NULL, O_CONFIG },
		{ "disk", required_argument, NULL, O_DISK }, { "net", required_argument, NULL, O_NET },
		{ "vsock", required_argument, NULL, O_VSOCK }, { "rng", no_argument, NULL, O_RNG },
		{ "api-socket", required_argument, NULL, O_API }, { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;
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
		case O_DUMP_ACPI: c.dump_acpi = optarg; break;
		case O_CONFIG:
			if (load_config_file(&c, optarg, &config_json, &err) < 0) {
				fprintf(stderr, "gureum-vmm: %s\n", err.msg);
				return VM_EXIT_CONFIG;
			}
			break;
		case O_DISK: case O_NET: case O_VSOCK: case O_RNG: case O_API:
			return usage_error("%s: not implemented yet in this build", argv[optind - 1]);
		case 'h':
			usage(stdout);
			return 0;
		default:
			return usage_error("unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!c.kernel)
		return usage_error("%s", "--kernel is required");

	int serial_fd = -1;
	if (open_serial(c.serial, &serial_fd, &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		return VM_EXIT_CONFIG;
	}
	struct guest_mem gm;
	if (gm_create(&gm, c.memory, &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		return VM_EXIT_CONFIG;
	}
	int status = VM_EXIT_CONFIG;
	struct vm vm;
	struct serial serial = { .out_fd = serial_fd };
	struct acpi_config acfg = { .n_cpus = c.cpus, .serial = 1 };
	uint64_t rsdp = 0;
	struct boot_info bi;
	if (acpi_build(&gm, &acfg, &rsdp, &err) < 0 ||
	    (c.dump_acpi && acpi_dump(&gm, rsdp, c.dump_acpi, &err) < 0) ||
	    boot_load(&gm, c.kernel, c.initrd, c.cmdline ? c.cmdline : "", rsdp, &bi, &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		gm_destroy(&gm);
		return VM_EXIT_CONFIG;
	}
	if (vm_create(&vm, &gm, c.cpus, &err) < 0 || legacy_devices_add(&vm, &serial, &err) < 0 ||
	    vm_setup_vcpus(&vm, bi.mode == BOOT_LINUX64, bi.entry, bi.params_gpa, &err) < 0) {
		fprintf(stderr, "gureum-vmm: %s\n", err.msg);
		status = VM_EXIT_VMM_ERROR;
	} else {
		status = vm_run(&vm);
		if (status != VM_EXIT_POWEROFF)
			fprintf(stderr, "gureum-vmm: %s\n", vm.exit_reason);
	}
	vm_destroy(&vm);
	gm_destroy(&gm);
	return status;
}
