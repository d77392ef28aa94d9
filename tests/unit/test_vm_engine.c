/* vm/engine.c: which engine a host gets, and QEMU's command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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
		assert_int_equal(e, VM_ENGINE_QEMU);
		assert_int_equal(kvm, cases[i].hw_kvm);
		assert_non_null(strstr(why, cases[i].hw_kvm ? "KVM" : "binary translation"));
		if (cases[i].pvm)
			assert_non_null(strstr(why, "PVM"));
		/* Forced. */
		assert_int_equal(vm_engine_choose(&h, "gureum-vmm", &e, &kvm, why, sizeof(why), &err), 0);
		assert_int_equal(e, VM_ENGINE_GUREUM_VMM);
		assert_int_equal(vm_engine_choose(&h, "qemu", &e, &kvm, why, sizeof(why), &err), 0);
		assert_int_equal(e, VM_ENGINE_QEMU);
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

static void test_qemu_argv(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct vm_qemu_opts o = { .name = "v1", .kvm = false, .cpus = 2, .memory_mib = 512, .kernel = "/k/vmlinuz",
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
		struct vm_qemu_opts b = o;
		b.disk = bad[i];
		assert_null(vm_qemu_argv(&b, &err));
		assert_int_equal(err.code, EINVAL);
	}
	struct vm_qemu_opts small = o;
	small.memory_mib = 16;
	assert_null(vm_qemu_argv(&small, &err));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_and_choose),
		cmocka_unit_test(test_qemu_argv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
