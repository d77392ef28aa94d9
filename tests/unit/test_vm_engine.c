/* vm/engine.c: which engine a host gets, QEMU's and gureum-vmm's command lines, where gureum-vmm is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "daemon/vm/engine.h"

/* A fake host root: dev/kvm (a file: opens read-write), proc/cpuinfo with
 * the given flags, sys/module/kvm_pvm when pvm. */
static void fake_root(char *root, bool kvm, const char *flags, bool pvm)
{
	strcpy(root, "/tmp/test-vm-engine-XXXXXX");
	assert_non_null(mkdtemp(root));
	char p[512];
	snprintf(p, sizeof(p), "%s/proc", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/proc/cpuinfo", root);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fprintf(f, "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme %s sse2\n\nprocessor\t: 1\n", flags);
	fclose(f);
	if (kvm) {
		snprintf(p, sizeof(p), "%s/dev", root);
		mkdir(p, 0755);
		snprintf(p, sizeof(p), "%s/dev/kvm", root);
		fclose(fopen(p, "w"));
	}
	if (pvm) {
		snprintf(p, sizeof(p), "%s/sys/module/kvm_pvm", root);
		assert_int_equal(gr_mkdir_p(p, 0755, NULL), 0);
	}
}

static void test_probe_and_choose(void **state)
{
	(void)state;
	struct {
		bool kvm;
		const char *flags;
		bool pvm;
		bool hw_kvm;
	} cases[] = {
		{ true, "svm lm", false, true },    /* hardware KVM */
		{ true, "vmx", false, true },
		{ true, "lm", true, false },        /* PVM: /dev/kvm, no vmx/svm, kvm_pvm */
		{ true, "svm", true, false },       /* kvm_pvm loaded wins */
		{ false, "vmx", false, false },     /* no /dev/kvm */
		{ true, "svmx lm", false, false },  /* a flag that only contains "svm" */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char root[64];
		fake_root(root, cases[i].kvm, cases[i].flags, cases[i].pvm);
		struct vm_host h;
		vm_host_probe(root, &h);
		assert_int_equal(h.kvm, cases[i].kvm);
		assert_int_equal(h.pvm, cases[i].pvm);
		enum vm_engine e;
		bool kvm;
		char why[256];
		struct gr_error err = { 0 };
		assert_int_equal(vm_engine_choose(&h, NULL, &e, &kvm, why, sizeof(why), &err), 0);
		/* The host's choice: gureum-vmm with hardware KVM, else QEMU with TCG. */
		assert_int_equal(e, cases[i].hw_kvm ? VM_ENGINE_GUREUM_VMM : VM_ENGINE_QEMU);
		assert_int_equal(kvm, cases[i].hw_kvm);
		assert_non_null(strstr(why, cases[i].hw_kvm ? "gureum-vmm" : "qemu with binary translation"));
		if (cases[i].pvm)
			assert_non_null(strstr(why, "PVM"));
		/* Forced: gureum-vmm only where it can boot Linux; the error says why. */
		int r = vm_engine_choose(&h, "gureum-vmm", &e, &kvm, why, sizeof(why), &err);
		if (cases[i].hw_kvm) {
			assert_int_equal(r, 0);
			assert_int_equal(e, VM_ENGINE_GUREUM_VMM);
			assert_non_null(strstr(why, "vm.engine"));
		} else {
			assert_int_equal(r, -EINVAL);
			assert_non_null(strstr(err.msg, "vm.engine=gureum-vmm needs hardware-assisted KVM"));
			assert_non_null(strstr(err.msg, "use vm.engine=qemu"));
			if (cases[i].pvm)
				assert_non_null(strstr(err.msg, "Linux does not boot under PVM"));
			else if (!cases[i].kvm)
				assert_non_null(strstr(err.msg, "no usable /dev/kvm"));
			else
				assert_non_null(strstr(err.msg, "no vmx or svm"));
		}
		assert_int_equal(vm_engine_choose(&h, "qemu", &e, &kvm, why, sizeof(why), &err), 0);
		assert_int_equal(e, VM_ENGINE_QEMU);
		assert_int_equal(kvm, cases[i].hw_kvm);
		assert_non_null(strstr(why, cases[i].hw_kvm ? "qemu with KVM" : "qemu with binary translation"));
		assert_int_equal(vm_engine_choose(&h, "bochs", &e, &kvm, why, sizeof(why), &err), -EINVAL);
		assert_non_null(strstr(err.msg, "bochs"));
		gr_rm_rf(root, NULL);
	}
}

static bool has(char **v, const char *s)
{
	for (; *v; v++)
		if (strcmp(*v, s) == 0)
			return true;
	return false;
}

static size_t find(char **v, const char *s)
{
	for (size_t i = 0; v[i]; i++)
		if (strcmp(v[i], s) == 0)
			return i;
	fail_msg("\"%s\" is not in the argument vector", s);
	return 0;
}

/* The value after option opt. */
static const char *after(char **v, const char *opt)
{
	size_t i = find(v, opt);
	assert_non_null(v[i + 1]);
	return v[i + 1];
}

static void test_qemu_argv(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct vm_engine_opts o = { .name = "v1", .kvm = false, .cpus = 2, .memory_mib = 512, .kernel = "/k/vmlinuz",
				  .initrd = "/s/initrd.img", .cmdline = "console=ttyS0", .disk = "/s/root.img",
				  .tap = "grv7", .mac = "0e:00:00:00:00:01", .run_dir = "/run/g/instances/v1" };
	char **v = vm_qemu_argv(&o, &err);
	assert_non_null(v);
	assert_true(has(v, "microvm,accel=tcg,acpi=on,pic=off,pit=off,rtc=on,isa-serial=on"));
	assert_true(has(v, "max") && has(v, "2") && has(v, "512") && has(v, "/k/vmlinuz") && has(v, "console=ttyS0"));
	assert_true(has(v, "id=root,file=/s/root.img,format=raw,if=none,cache=none,aio=threads"));
	assert_true(has(v, "tap,id=net0,ifname=grv7,script=no,downscript=no,vhost=off"));
	assert_true(has(v, "virtio-net-device,netdev=net0,mac=0e:00:00:00:00:01"));
	assert_true(has(v, "socket,id=agent0,path=/run/g/instances/v1/agent.0.sock,server=on,wait=off"));
	assert_true(has(v, "virtserialport,chardev=agent7,name=org.gureum.agent.7,nr=8"));
	assert_true(has(v, "unix:/run/g/instances/v1/qmp.sock,server=on,wait=off"));
	assert_true(has(v, "-no-reboot") && has(v, "-nodefaults"));
	gr_strv_free(v);

	o.kvm = true;
	o.tap = NULL;
	v = vm_qemu_argv(&o, &err);
	assert_non_null(v);
	assert_true(has(v, "microvm,accel=kvm,acpi=on,pic=off,pit=off,rtc=on,isa-serial=on") && has(v, "host"));
	assert_false(has(v, "-netdev"));
	gr_strv_free(v);

	/* What would add QEMU options of its own is refused. */
	const char *bad[] = { "/s/root.img,readonly=off", "/s/a=b", "/s/x\ny" };
	for (size_t i = 0; i < 3; i++) {
		struct vm_engine_opts b = o;
		b.disk = bad[i];
		assert_null(vm_qemu_argv(&b, &err));
		assert_int_equal(err.code, EINVAL);
	}
	struct vm_engine_opts small = o;
	small.memory_mib = 16;
	assert_null(vm_qemu_argv(&small, &err));
}

/* Block volumes: disks 1.. after the root (disk 0), with the same serials
 * under both engines; read-only passed on; too many, or a path that would
 * add options, refused. */
static void test_volume_disks(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct vm_disk vols[VM_MAX_VOLUMES + 1] = { { "/v/data.img", false }, { "/v/logs.img", true } };
	struct vm_engine_opts o = { .name = "v1", .cpus = 1, .memory_mib = 512, .kernel = "/k/vmlinuz",
				  .initrd = "/s/initrd.img", .disk = "/s/root.img", .run_dir = "/run/g/instances/v1",
				  .volumes = vols, .nvolumes = 2, .binary = "/usr/bin/gureum-vmm" };
	char **v = vm_qemu_argv(&o, &err);
	assert_non_null(v);
	assert_true(has(v, "virtio-blk-device,drive=root,serial=gureum-disk0"));
	assert_true(has(v, "id=vol1,file=/v/data.img,format=raw,if=none,cache=none,aio=threads"));
	assert_true(has(v, "virtio-blk-device,drive=vol1,serial=gureum-disk1"));
	assert_true(has(v, "id=vol2,file=/v/logs.img,format=raw,if=none,cache=none,aio=threads,readonly=on"));
	assert_true(has(v, "virtio-blk-device,drive=vol2,serial=gureum-disk2"));
	gr_strv_free(v);
	v = vm_vmm_argv(&o, &err);
	assert_non_null(v);
	size_t root = find(v, "/s/root.img"), data = find(v, "/v/data.img"), logs = find(v, "/v/logs.img,ro");
	assert_true(root < data && data < logs); /* gureum-vmm's serials follow the order of --disk */
	assert_string_equal(v[data - 1], "--disk");
	gr_strv_free(v);
	vols[1].path = "/v/x,readonly=off";
	assert_null(vm_qemu_argv(&o, &err));
	assert_int_equal(err.code, EINVAL);
	assert_null(vm_vmm_argv(&o, &err));
	assert_int_equal(err.code, EINVAL);
	vols[1].path = "/v/logs.img";
	for (size_t i = 0; i <= VM_MAX_VOLUMES; i++)
		vols[i] = (struct vm_disk){ "/v/n.img", false };
	o.nvolumes = VM_MAX_VOLUMES + 1;
	assert_null(vm_qemu_argv(&o, &err));
	assert_int_equal(err.code, E2BIG);
}

static void test_vmm_argv(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct vm_engine_opts o = { .name = "v1", .cpus = 2, .memory_mib = 768, .kernel = "/k/vmlinuz",
				    .initrd = "/s/initrd.img", .cmdline = "console=ttyS0 panic=-1", .disk = "/s/root.img",
				    .tap = "grv7", .mac = "0e:00:00:00:00:01", .run_dir = "/run/g/instances/v1",
				    .binary = "/usr/libexec/gureum/gureum-vmm" };
	char **v = vm_vmm_argv(&o, &err);
	if (!v)
		fail_msg("%s", err.msg);
	assert_string_equal(v[0], "/usr/libexec/gureum/gureum-vmm");
	assert_string_equal(after(v, "--kernel"), "/k/vmlinuz");
	assert_string_equal(after(v, "--initrd"), "/s/initrd.img");
	assert_string_equal(after(v, "--cmdline"), "console=ttyS0 panic=-1");
	assert_string_equal(after(v, "--cpus"), "2");
	assert_string_equal(after(v, "--memory"), "768M");
	assert_string_equal(after(v, "--disk"), "/s/root.img");
	assert_string_equal(after(v, "--net"), "tap=grv7,mac=0e:00:00:00:00:01");
	assert_string_equal(after(v, "--vsock"), "cid=3,socket=/run/g/instances/v1/vsock.sock");
	assert_string_equal(after(v, "--serial"), "stdio");
	assert_string_equal(after(v, "--api-socket"), "/run/g/instances/v1/vmm-api.sock");
	find(v, "--rng");
	/* Each option once; no QEMU options, no virtio-console (its stdio is the serial port's). */
	size_t n = 0;
	for (char **a = v; *a; a++)
		n++;
	assert_int_equal(n, 1 + 2 * 10 + 1);
	gr_strv_free(v);
	/* The same through vm_engine_argv; QEMU's through it too. */
	v = vm_engine_argv(VM_ENGINE_GUREUM_VMM, &o, &err);
	assert_non_null(v);
	assert_string_equal(v[0], o.binary);
	gr_strv_free(v);
	o.binary = NULL;
	setenv("GUREUM_QEMU", "/opt/qemu", 1);
	v = vm_engine_argv(VM_ENGINE_QEMU, &o, &err);
	assert_non_null(v);
	assert_string_equal(v[0], "/opt/qemu");
	unsetenv("GUREUM_QEMU");
	gr_strv_free(v);
	/* gureum-vmm needs its program. */
	assert_null(vm_vmm_argv(&o, &err));
	assert_int_equal(err.code, EINVAL);
	o.binary = "/x/gureum-vmm";

	/* No NIC: no --net. */
	o.tap = NULL;
	v = vm_vmm_argv(&o, &err);
	assert_non_null(v);
	for (char **a = v; *a; a++)
		assert_string_not_equal(*a, "--net");
	gr_strv_free(v);

	/* What gureum-vmm's option syntax would split is refused, and a run
	 * directory too long for its vsock socket (96 bytes) is said so. */
	const char *bad[] = { "/s/root.img,ro", "/s/a=b", "/s/x\ny" };
	for (size_t i = 0; i < 3; i++) {
		struct vm_engine_opts b = o;
		b.disk = bad[i];
		assert_null(vm_vmm_argv(&b, &err));
		assert_int_equal(err.code, EINVAL);
	}
	struct vm_engine_opts b = o;
	b.tap = "grv7";
	b.mac = "0e:00,ro";
	assert_null(vm_vmm_argv(&b, &err));
	char longdir[128];
	memset(longdir, 'd', sizeof(longdir));
	longdir[0] = '/';
	longdir[86] = '\0';   /* 86 + "/vsock.sock" = 97 */
	b = o;
	b.run_dir = longdir;
	assert_null(vm_vmm_argv(&b, &err));
	assert_int_equal(err.code, ENAMETOOLONG);
	assert_non_null(strstr(err.msg, "96 bytes"));
	longdir[85] = '\0';   /* 96: fits */
	v = vm_vmm_argv(&b, &err);
	assert_non_null(v);
	gr_strv_free(v);
	b = o;
	b.memory_mib = 16;
	assert_null(vm_vmm_argv(&b, &err));
}

static void touch_exe(const char *path)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

static void test_vmm_binary(void **state)
{
	(void)state;
	char root[64], p[512], out[PATH_MAX];
	struct gr_error err = { 0 };
	strcpy(root, "/tmp/test-vm-vmm-XXXXXX");
	assert_non_null(mkdtemp(root));
	/* The build tree: build/src/daemon (the supervisor) and build/src/vmm. */
	snprintf(p, sizeof(p), "%s/src/daemon", root);
	assert_int_equal(gr_mkdir_p(p, 0755, NULL), 0);
	snprintf(p, sizeof(p), "%s/src/vmm", root);
	assert_int_equal(gr_mkdir_p(p, 0755, NULL), 0);
	char libexec[256];
	snprintf(libexec, sizeof(libexec), "%s/src/daemon", root);
	unsetenv("GUREUM_VMM");
	assert_int_equal(vm_vmm_binary(libexec, out, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "gureum-vmm not found"));
	assert_non_null(strstr(err.msg, "vm.engine=qemu"));
	snprintf(p, sizeof(p), "%s/src/vmm/gureum-vmm", root);
	touch_exe(p);
	assert_int_equal(vm_vmm_binary(libexec, out, &err), 0);
	assert_string_equal(out, p);   /* resolved: no "/../" */
	/* Next to the supervisor wins (installed in one directory). */
	snprintf(p, sizeof(p), "%s/src/daemon/gureum-vmm", root);
	touch_exe(p);
	assert_int_equal(vm_vmm_binary(libexec, out, &err), 0);
	assert_string_equal(out, p);
	/* $GUREUM_VMM wins over both, and must exist. */
	setenv("GUREUM_VMM", "/nonexistent/gureum-vmm", 1);
	assert_int_equal(vm_vmm_binary(libexec, out, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "GUREUM_VMM"));
	setenv("GUREUM_VMM", p, 1);
	assert_int_equal(vm_vmm_binary(libexec, out, &err), 0);
	unsetenv("GUREUM_VMM");
	/* Installed: PREFIX/libexec/gureum and PREFIX/bin. */
	snprintf(p, sizeof(p), "%s/prefix/libexec/gureum", root);
	assert_int_equal(gr_mkdir_p(p, 0755, NULL), 0);
	snprintf(p, sizeof(p), "%s/prefix/bin", root);
	assert_int_equal(gr_mkdir_p(p, 0755, NULL), 0);
	snprintf(p, sizeof(p), "%s/prefix/bin/gureum-vmm", root);
	touch_exe(p);
	snprintf(libexec, sizeof(libexec), "%s/prefix/libexec/gureum", root);
	assert_int_equal(vm_vmm_binary(libexec, out, &err), 0);
	assert_string_equal(out, p);
	gr_rm_rf(root, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_and_choose),
		cmocka_unit_test(test_qemu_argv),
		cmocka_unit_test(test_volume_disks),
		cmocka_unit_test(test_vmm_argv),
		cmocka_unit_test(test_vmm_binary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
