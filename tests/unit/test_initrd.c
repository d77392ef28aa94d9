/* Unit tests for src/daemon/vm/initrd.c on a fake kernel tree: a bzImage
 * with only a setup header (its version string), a modules.dep with
 * dependencies (plain, .ko.xz and .ko.zst modules, made with libarchive's
 * raw writer), a modules.builtin. Checked: kernel lookup (directory, file,
 * name, $GUREUM_KERNEL_DIR, every error), the closure's load order,
 * built-in and missing modules, hostile modules.dep lines and symlinks,
 * the common archive read back with libarchive (names, types, modes,
 * contents, decompressed modules, the modules file, no gzip time stamp,
 * 4-byte padding), the same bytes from two builds, the instance archive
 * appended after it (read back from its 4-aligned offset), the cache, and
 * no temporary file left after a failure. With Debian's cloud kernel in
 * /var/cache/gureum/kernel/current (scripts/fetch-kernel.sh), its real
 * module set is resolved and built too (skipped, saying why, without it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "daemon/vm/initrd.h"

#define VER "9.9.9-test"
#define MODS "/lib/modules/" VER

struct fx {
	char dir[64];       /* the test's temporary directory */
	char kernel[128];   /* DIR/k: the kernel tree */
	char init[128];     /* DIR/init: a fake gureum-init */
	char out[128];      /* DIR/out: where archives go */
};

static const char *const module_files[] = {
	"kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/virtio/virtio.ko",
	"kernel/drivers/virtio/virtio_mmio.ko",
	"kernel/drivers/block/virtio_blk.ko.xz",
	"kernel/drivers/net/virtio_net.ko.zst",
	"kernel/drivers/net/net_failover.ko",
	"kernel/net/core/failover.ko",
	"kernel/drivers/other/unrelated.ko",
};

static const char default_dep[] =
	"kernel/drivers/other/unrelated.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/virtio/virtio_ring.ko:\n"
	"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/net/virtio_net.ko.zst: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko "
	"kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
	"kernel/net/core/failover.ko:\n";

/* The closure of initrd_modules_wanted/optional over default_dep. */
static const char *const expected_order[] = {
	"kernel/drivers/virtio/virtio_ring.ko",
	"kernel/drivers/virtio/virtio.ko",
	"kernel/drivers/virtio/virtio_mmio.ko",
	"kernel/drivers/block/virtio_blk.ko.xz",
	"kernel/net/core/failover.ko",
	"kernel/drivers/net/net_failover.ko",
	"kernel/drivers/net/virtio_net.ko.zst",
};
#define NEXPECTED (sizeof(expected_order) / sizeof(expected_order[0]))

/* A fake gureum-init: an x86-64 ELF header and one program header of the
 * given type (PT_LOAD: as if static; PT_INTERP: dynamic). */
static void fake_elf(unsigned char *buf, size_t len, uint32_t ptype)
{
	memset(buf, 0, len);
	Elf64_Ehdr eh = { .e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
			  .e_phoff = sizeof(Elf64_Ehdr), .e_ehsize = sizeof(Elf64_Ehdr),
			  .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 1 };
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	Elf64_Phdr ph = { .p_type = ptype };
	memcpy(buf, &eh, sizeof(eh));
	memcpy(buf + sizeof(eh), &ph, sizeof(ph));
}

static void put(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void puts_at(const char *dir, const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	put(p, text, strlen(text));
}

static void mkdirs_for(const char *path)
{
	char d[512];
	snprintf(d, sizeof(d), "%s", path);
	*strrchr(d, '/') = '\0';
	assert_int_equal(gr_mkdir_p(d, 0755, NULL), 0);
}

/* A module's bytes: an ELF magic, its name, filler that compresses. */
static size_t module_bytes(const char *name, unsigned char *buf, size_t cap)
{
	size_t n = (size_t)snprintf((char *)buf, cap, "\177ELF module %s\n", name);
	while (n < 6000 && n < cap)
		buf[n] = (unsigned char)('a' + n % 23), n++;
	return n;
}

/* The decompressed name of a module's file ("x.ko.xz" -> "x.ko"). */
static void plain_name(const char *rel, char *out, size_t n)
{
	snprintf(out, n, "%s", rel);
	char *ko = strstr(out, ".ko");
	assert_non_null(ko);
	ko[3] = '\0';
}

/* Writes data to path through libarchive's raw format and filter. */
static void put_compressed(const char *path, int filter, const void *data, size_t len)
{
	struct archive *a = archive_write_new();
	assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
	assert_int_equal(filter == ARCHIVE_FILTER_XZ ? archive_write_add_filter_xz(a) : archive_write_add_filter_zstd(a),
			 ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "data");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_size(e, (la_int64_t)len);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, data, len), (la_ssize_t)len);
	archive_entry_free(e);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/* A bzImage that is only a setup header whose version string is version. */
static void put_bzimage(const char *path, const char *version)
{
	unsigned char b[2048] = { 0 };
	b[0x1f1] = 1;                        /* setup_sects: setup code is 1024 bytes */
	memcpy(b + 0x1fe, "\x55\xaa", 2);
	memcpy(b + 0x202, "HdrS", 4);
	b[0x206] = 0x0f, b[0x207] = 0x02;    /* boot protocol 2.15 */
	b[0x20e] = 0x00, b[0x20f] = 0x01;    /* kernel_version: 0x200 + 0x100 */
	snprintf((char *)b + 0x300, 0x100, "%s (test@example) #1 SMP PREEMPT_DYNAMIC", version);
	put(path, b, sizeof(b));
}

static void write_modules_dep(struct fx *f, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s" MODS, f->kernel);
	puts_at(p, "modules.dep", text);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-initrd-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->kernel, sizeof(f->kernel), "%s/k", f->dir);
	snprintf(f->init, sizeof(f->init), "%s/init", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/out", f->dir);
	assert_int_equal(gr_mkdir_p(f->out, 0755, NULL), 0);
	char p[512];
	snprintf(p, sizeof(p), "%s/boot/vmlinuz-" VER, f->kernel);
	mkdirs_for(p);
	put_bzimage(p, VER);
	for (size_t i = 0; i < sizeof(module_files) / sizeof(module_files[0]); i++) {
		snprintf(p, sizeof(p), "%s" MODS "/%s", f->kernel, module_files[i]);
		mkdirs_for(p);
		unsigned char buf[8192];
		size_t n = module_bytes(module_files[i], buf, sizeof(buf));
		if (strstr(p, ".ko.xz"))
			put_compressed(p, ARCHIVE_FILTER_XZ, buf, n);
		else if (strstr(p, ".ko.zst"))
			put_compressed(p, ARCHIVE_FILTER_ZSTD, buf, n);
		else
			put(p, buf, n);
	}
	write_modules_dep(f, default_dep);
	snprintf(p, sizeof(p), "%s" MODS, f->kernel);
	puts_at(p, "modules.builtin", "kernel/drivers/char/virtio_console.ko\nkernel/fs/ext4/ext4.ko\n");
	unsigned char init[sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 16];
	fake_elf(init, sizeof(init), PT_LOAD);
	put(f->init, init, sizeof(init));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	gr_rm_rf(f->dir, NULL);
	free(f);
	return 0;
}

static void find_fake(struct fx *f, struct vm_kernel *k)
{
	struct gr_error err = { 0 };
	int rc = initrd_kernel_find(f->kernel, k, &err);
	if (rc < 0)
		print_message("initrd_kernel_find: %s\n", err.msg);
	assert_int_equal(rc, 0);
}

/* The files of out_dir, for "nothing left behind". */
static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* ---- kernel lookup ---- */

static void test_find_dir(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	find_fake(f, &k);
	assert_string_equal(k.version, VER);
	char p[256];
	snprintf(p, sizeof(p), "%s/boot/vmlinuz-" VER, f->kernel);
	assert_string_equal(k.image, p);
	snprintf(p, sizeof(p), "%s" MODS, f->kernel);
	assert_string_equal(k.modules_dir, p);

	/* The file itself: modules found at its ../lib/modules/VERSION. */
	struct vm_kernel k2;
	struct gr_error err = { 0 };
	assert_int_equal(initrd_kernel_find(k.image, &k2, &err), 0);
	assert_memory_equal(&k, &k2, sizeof(k));

	/* $GUREUM_KERNEL_DIR/current when no path is given. */
	char cache[256];
	snprintf(cache, sizeof(cache), "%s/cache", f->dir);
	assert_int_equal(mkdir(cache, 0755), 0);
	snprintf(p, sizeof(p), "%s/current", cache);
	assert_int_equal(symlink(f->kernel, p), 0);
	setenv("GUREUM_KERNEL_DIR", cache, 1);
	assert_int_equal(initrd_kernel_find(NULL, &k2, &err), 0);
	unsetenv("GUREUM_KERNEL_DIR");
	assert_memory_equal(&k, &k2, sizeof(k));

	char ver[VM_KERNEL_VERSION_MAX];
	assert_int_equal(initrd_bzimage_version(k.image, ver, sizeof(ver), &err), 0);
	assert_string_equal(ver, VER);
	assert_int_equal(initrd_bzimage_version(k.image, ver, 5, &err), -EINVAL);
}

static void test_find_by_name(void **state)
{
	struct fx *f = *state;
	/* No setup header: the version is the name's; modules beside the file. */
	char p[256];
	snprintf(p, sizeof(p), "%s/other/lib/modules/1.2.3-x/modules.dep", f->dir);
	mkdirs_for(p);
	put(p, "", 0);
	snprintf(p, sizeof(p), "%s/other/vmlinuz-1.2.3-x", f->dir);
	put(p, "\177ELF not a bzImage", 18);
	struct vm_kernel k;
	struct gr_error err = { 0 };
	assert_int_equal(initrd_kernel_find(p, &k, &err), 0);
	assert_string_equal(k.version, "1.2.3-x");
	char want[256];
	snprintf(want, sizeof(want), "%s/other/lib/modules/1.2.3-x", f->dir);
	assert_string_equal(k.modules_dir, want);
	assert_int_equal(initrd_bzimage_version(p, want, sizeof(want), &err), -ENOENT);

	/* No header and no version in the name. */
	snprintf(p, sizeof(p), "%s/other/bzImage", f->dir);
	put(p, "x", 1);
	assert_int_equal(initrd_kernel_find(p, &k, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "vmlinuz-VERSION"));

	/* A header version that is a path. */
	snprintf(p, sizeof(p), "%s/other/vmlinuz-1.2.3-x", f->dir);
	put_bzimage(p, "../../etc");
	assert_int_equal(initrd_kernel_find(p, &k, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a plain name"));
	/* A header version whose modules are nowhere. */
	put_bzimage(p, "7.7.7-nowhere");
	assert_int_equal(initrd_kernel_find(p, &k, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no modules for kernel 7.7.7-nowhere"));
	assert_non_null(strstr(err.msg, "/lib/modules/7.7.7-nowhere"));
}

static void test_find_errors(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	struct gr_error err = { 0 };
	char p[256];
	snprintf(p, sizeof(p), "%s/none", f->dir);
	assert_int_equal(initrd_kernel_find(p, &k, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "run scripts/fetch-kernel.sh"));

	setenv("GUREUM_KERNEL_DIR", p, 1);
	assert_int_equal(initrd_kernel_find("", &k, &err), -ENOENT);
	unsetenv("GUREUM_KERNEL_DIR");
	assert_non_null(strstr(err.msg, "none/current"));

	/* An empty directory, then an empty boot/. */
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(initrd_kernel_find(p, &k, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no boot/ directory"));
	assert_non_null(strstr(err.msg, "fetch-kernel.sh"));
	snprintf(p, sizeof(p), "%s/none/boot", f->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/none", f->dir);
	assert_int_equal(initrd_kernel_find(p, &k, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no boot/vmlinuz-VERSION"));

	/* No modules.dep (depmod never ran): the directory's lib/modules only. */
	snprintf(p, sizeof(p), "%s" MODS "/modules.dep", f->kernel);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(initrd_kernel_find(f->kernel, &k, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "modules.dep is missing"));
	write_modules_dep(f, default_dep);

	/* Two kernels: which one? */
	snprintf(p, sizeof(p), "%s/boot/vmlinuz-9.9.8-old", f->kernel);
	put_bzimage(p, "9.9.8-old");
	assert_int_equal(initrd_kernel_find(f->kernel, &k, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "2 kernels"));

	/* Neither a file nor a directory. */
	assert_int_equal(initrd_kernel_find("/dev/null", &k, &err), -EINVAL);
}

/* ---- modules ---- */

static void test_resolve_order(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	find_fake(f, &k);
	struct initrd_modules m;
	struct gr_error err = { 0 };
	assert_int_equal(initrd_modules_resolve(&k, initrd_modules_wanted, initrd_modules_optional, &m, &err), 0);
	for (size_t i = 0; i < m.count; i++)
		print_message("  %s\n", m.files[i]);
	assert_int_equal(m.count, NEXPECTED);
	for (size_t i = 0; i < NEXPECTED; i++)
		assert_string_equal(m.files[i], expected_order[i]);
	initrd_modules_free(&m);

	/* '-' and '_' alike; a module alone with its dependencies. */
	const char *const net[] = { "virtio-net", NULL };
	assert_int_equal(initrd_modules_resolve(&k, net, NULL, &m, &err), 0);
	assert_int_equal(m.count, 5);
	assert_string_equal(m.files[0], "kernel/drivers/virtio/virtio_ring.ko");
	assert_string_equal(m.files[1], "kernel/drivers/virtio/virtio.ko");
	assert_string_equal(m.files[2], "kernel/net/core/failover.ko");
	assert_string_equal(m.files[3], "kernel/drivers/net/net_failover.ko");
	assert_string_equal(m.files[4], "kernel/drivers/net/virtio_net.ko.zst");
	initrd_modules_free(&m);
}

static void test_resolve_builtin_missing(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	find_fake(f, &k);
	struct initrd_modules m;
	struct gr_error err = { 0 };

	/* Built in: nothing to load. */
	const char *const console[] = { "virtio_console", "ext4", NULL };
	assert_int_equal(initrd_modules_resolve(&k, console, NULL, &m, &err), 0);
	assert_int_equal(m.count, 0);
	initrd_modules_free(&m);

	/* Missing: an error naming it when wanted, nothing when optional. */
	const char *const gpu[] = { "virtio_mmio", "virtio_gpu", NULL };
	assert_int_equal(initrd_modules_resolve(&k, gpu, NULL, &m, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no module virtio_gpu"));
	assert_non_null(strstr(err.msg, "modules.dep"));
	assert_int_equal(m.count, 0);
	assert_int_equal(initrd_modules_resolve(&k, NULL, gpu, &m, &err), 0);
	assert_int_equal(m.count, 3);
	initrd_modules_free(&m);

	/* No modules.builtin (old kernels): virtio_console is then missing. */
	char p[256];
	snprintf(p, sizeof(p), "%s" MODS "/modules.builtin", f->kernel);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(initrd_modules_resolve(&k, console, NULL, &m, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "virtio_console"));

	/* The common archive needs virtio_console too. */
	char out[256];
	snprintf(out, sizeof(out), "%s/common.img", f->out);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -ENOENT);
	assert_int_equal(count_files(f->out), 0);
}

static void test_hostile_modules_dep(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	find_fake(f, &k);
	struct initrd_modules m;
	struct gr_error err = { 0 };
	static const struct {
		const char *dep, *msg;
	} bad[] = {
		{ "../../../../etc/evil.ko:\n", "\"..\" component" },
		{ "kernel/../../evil.ko:\n", "\"..\" component" },
		{ "kernel/./virtio_mmio.ko:\n", "\".\" or" },
		{ "kernel//virtio_mmio.ko:\n", "empty" },
		{ "/etc/evil.ko:\n", "outside the modules directory" },
		{ "kernel/drivers/virtio/virtio_mmio.ko: /tmp/evil.ko\n", "outside the modules directory" },
		{ "kernel/drivers/virtio/virtio_mmio.ko: ../evil.ko\n", "\"..\" component" },
		{ "/lib/modules/9.9.9-testx/evil.ko:\n", "outside the modules directory" },
		{ "kernel/drivers/virtio/virtio_mmio.ko: kernel/evil\n", "not a module file" },
		{ "kernel/evil.txt:\n", "not a module file" },
		{ "kernel/.ko:\n", "not a module file" },
		{ "kernel/ev\001il.ko:\n", "character outside" },
		{ "kernel/ev*il.ko:\n", "character outside" },
		{ "just a line\n", "no ':'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[2048];
		snprintf(text, sizeof(text), "%s%s", default_dep, bad[i].dep);
		write_modules_dep(f, text);
		int rc = initrd_modules_resolve(&k, initrd_modules_wanted, NULL, &m, &err);
		if (rc != -EINVAL || !strstr(err.msg, bad[i].msg))
			print_message("case %zu: rc %d: %s\n", i, rc, err.msg);
		assert_int_equal(rc, -EINVAL);
		assert_non_null(strstr(err.msg, bad[i].msg));
		assert_int_equal(m.count, 0);
	}

	/* A cycle. */
	write_modules_dep(f, "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n");
	const char *const a[] = { "a", NULL };
	assert_int_equal(initrd_modules_resolve(&k, a, NULL, &m, &err), -ELOOP);
	assert_non_null(strstr(err.msg, "cycle"));

	/* Listed twice: by path, by name. */
	write_modules_dep(f, "kernel/a.ko:\nkernel/a.ko:\n");
	assert_int_equal(initrd_modules_resolve(&k, a, NULL, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "twice"));
	write_modules_dep(f, "kernel/a.ko:\nextra/a.ko.xz:\n");
	assert_int_equal(initrd_modules_resolve(&k, a, NULL, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "module a twice"));

	/* Too deep a chain, too many modules. */
	static char big[64 * 1024];
	size_t used = 0;
	for (int i = 0; i < 80; i++)
		used += (size_t)snprintf(big + used, sizeof(big) - used, "kernel/m%d.ko: kernel/m%d.ko\n", i, i + 1);
	write_modules_dep(f, big);
	const char *const m0[] = { "m0", NULL };
	assert_int_equal(initrd_modules_resolve(&k, m0, NULL, &m, &err), -ELOOP);
	assert_non_null(strstr(err.msg, "deeper"));
	used = (size_t)snprintf(big, sizeof(big), "kernel/a.ko:");
	for (int i = 0; i < 300; i++)
		used += (size_t)snprintf(big + used, sizeof(big) - used, " kernel/l%d.ko", i);
	snprintf(big + used, sizeof(big) - used, "\n");
	write_modules_dep(f, big);
	assert_int_equal(initrd_modules_resolve(&k, a, NULL, &m, &err), -E2BIG);
	assert_int_equal(m.count, 0);

	/* NUL bytes. */
	write_modules_dep(f, "");
	char p[256];
	snprintf(p, sizeof(p), "%s" MODS "/modules.dep", f->kernel);
	put(p, "kernel/a.ko:\0\n", 14);
	assert_int_equal(initrd_modules_resolve(&k, a, NULL, &m, &err), -EINVAL);

	/* Absolute paths inside the modules directory (old depmods) are fine. */
	char text[2048];
	snprintf(text, sizeof(text),
		 "/lib/modules/" VER "/kernel/drivers/virtio/virtio_mmio.ko: %s" MODS "/kernel/drivers/virtio/virtio.ko "
		 "/lib/modules/" VER "/kernel/drivers/virtio/virtio_ring.ko\n"
		 "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n",
		 f->kernel);
	write_modules_dep(f, text);
	const char *const mmio[] = { "virtio_mmio", NULL };
	assert_int_equal(initrd_modules_resolve(&k, mmio, NULL, &m, &err), 0);
	assert_int_equal(m.count, 3);
	assert_string_equal(m.files[0], "kernel/drivers/virtio/virtio_ring.ko");
	assert_string_equal(m.files[1], "kernel/drivers/virtio/virtio.ko");
	assert_string_equal(m.files[2], "kernel/drivers/virtio/virtio_mmio.ko");
	initrd_modules_free(&m);
}

static void test_hostile_files(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	find_fake(f, &k);
	struct gr_error err = { 0 };
	char out[256], p[256];
	snprintf(out, sizeof(out), "%s/common.img", f->out);

	/* A module that is a symlink out of the tree, absolute or relative. */
	snprintf(p, sizeof(p), "%s" MODS "/kernel/drivers/virtio/virtio.ko", f->kernel);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("/etc/hostname", p), 0);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -EXDEV);
	assert_non_null(strstr(err.msg, "leads outside"));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("../../../../../../../../../../../../etc/hostname", p), 0);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -EXDEV);
	/* A symlink that stays inside is followed. */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("../other/unrelated.ko", p), 0);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), 0);
	assert_int_equal(unlink(out), 0);

	/* A missing module file. */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "virtio.ko"));
	/* Not ELF. */
	put(p, "#!/bin/sh\n", 10);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not an ELF file"));
	unsigned char buf[8192];
	put(p, buf, module_bytes("virtio", buf, sizeof(buf)));

	/* A .ko.xz that is not xz, a .ko.zst that is xz. */
	snprintf(p, sizeof(p), "%s" MODS "/kernel/drivers/block/virtio_blk.ko.xz", f->kernel);
	put(p, buf, module_bytes("virtio_blk", buf, sizeof(buf)));
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not xz data"));
	put(p, "", 0);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -EINVAL);
	/* Truncated xz. */
	put_compressed(p, ARCHIVE_FILTER_XZ, buf, module_bytes("virtio_blk", buf, sizeof(buf)));
	assert_int_equal(truncate(p, 40), 0);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -EINVAL);
	print_message("truncated xz: %s\n", err.msg);
	put_compressed(p, ARCHIVE_FILTER_XZ, buf, module_bytes("virtio_blk", buf, sizeof(buf)));
	snprintf(p, sizeof(p), "%s" MODS "/kernel/drivers/net/virtio_net.ko.zst", f->kernel);
	put_compressed(p, ARCHIVE_FILTER_XZ, buf, module_bytes("virtio_net", buf, sizeof(buf)));
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not zst data"));
	/* xz that decompresses to something that is not ELF. */
	snprintf(p, sizeof(p), "%s" MODS "/kernel/drivers/block/virtio_blk.ko.xz", f->kernel);
	put_compressed(p, ARCHIVE_FILTER_XZ, "hello", 5);
	snprintf(p, sizeof(p), "%s" MODS "/kernel/drivers/net/virtio_net.ko.zst", f->kernel);
	put_compressed(p, ARCHIVE_FILTER_ZSTD, buf, module_bytes("virtio_net", buf, sizeof(buf)));
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not an ELF file once decompressed"));

	/* No init binary. */
	snprintf(p, sizeof(p), "%s/no-init", f->dir);
	assert_int_equal(initrd_build_common(&k, p, out, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "gureum-init"));

	/* Nothing left behind by any failure. */
	assert_int_equal(count_files(f->out), 0);
}

/* ---- archives ---- */

struct entry {
	char name[256];
	mode_t mode;
	unsigned rmaj, rmin;
	int64_t mtime, uid, gid;
	size_t size;
	unsigned char *data;
};

/* Reads an archive (any filter) from memory into v (at most max entries). */
static size_t read_entries(const void *buf, size_t len, struct entry *v, size_t max)
{
	struct archive *a = archive_read_new();
	archive_read_support_filter_all(a);
	archive_read_support_format_cpio(a);
	assert_int_equal(archive_read_open_memory(a, buf, len), ARCHIVE_OK);
	size_t n = 0;
	struct archive_entry *e;
	int r;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		assert_true(n < max);
		struct entry *x = &v[n++];
		snprintf(x->name, sizeof(x->name), "%s", archive_entry_pathname(e));
		x->mode = archive_entry_mode(e);
		x->rmaj = archive_entry_rdevmajor(e);
		x->rmin = archive_entry_rdevminor(e);
		x->mtime = archive_entry_mtime(e);
		x->uid = archive_entry_uid(e);
		x->gid = archive_entry_gid(e);
		x->size = (size_t)archive_entry_size(e);
		x->data = malloc(x->size + 1);
		assert_int_equal(archive_read_data(a, x->data, x->size), (la_ssize_t)x->size);
		x->data[x->size] = '\0';
	}
	assert_int_equal(r, ARCHIVE_EOF);
	archive_read_free(a);
	return n;
}

static void free_entries(struct entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].data);
}

static char *slurp(const char *path, size_t *len)
{
	char *buf;
	assert_int_equal(gr_read_file(path, &buf, len, NULL), 0);
	return buf;
}

static void test_build_common(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	find_fake(f, &k);
	struct gr_error err = { 0 };
	char out[256];
	snprintf(out, sizeof(out), "%s/common.img", f->out);
	int rc = initrd_build_common(&k, f->init, out, &err);
	if (rc < 0)
		print_message("%s\n", err.msg);
	assert_int_equal(rc, 0);
	struct stat st;
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(count_files(f->out), 1);

	size_t len;
	gr_autofree char *buf = slurp(out, &len);
	assert_int_equal(len % 4, 0);
	assert_memory_equal(buf, "\x1f\x8b", 2);          /* gzip */
	assert_memory_equal(buf + 4, "\0\0\0\0", 4);      /* no time stamp */

	struct entry v[64];
	size_t n = read_entries(buf, len, v, 64);
#define M "lib/modules/" VER "/kernel"
	static const char *const names[] = {
		"dev", "dev/console", "etc", "etc/gureum", "etc/gureum/modules", "init",
		"lib", "lib/modules", "lib/modules/" VER, M,
		M "/drivers", M "/drivers/block", M "/drivers/block/virtio_blk.ko",
		M "/drivers/net", M "/drivers/net/net_failover.ko", M "/drivers/net/virtio_net.ko",
		M "/drivers/virtio", M "/drivers/virtio/virtio.ko", M "/drivers/virtio/virtio_mmio.ko",
		M "/drivers/virtio/virtio_ring.ko",
		M "/net", M "/net/core", M "/net/core/failover.ko",
		"newroot", "proc", "sys",
	};
	size_t nnames = sizeof(names) / sizeof(names[0]);
	for (size_t i = 0; i < n; i++)
		print_message("  %06o %s\n", (unsigned)v[i].mode, v[i].name);
	assert_int_equal(n, nnames);
	char modules[2048] = "";
	for (size_t i = 0; i < NEXPECTED; i++) {
		char plain[256];
		plain_name(expected_order[i], plain, sizeof(plain));
		snprintf(modules + strlen(modules), sizeof(modules) - strlen(modules), "lib/modules/" VER "/%s\n", plain);
	}
	for (size_t i = 0; i < n; i++) {
		struct entry *e = &v[i];
		assert_string_equal(e->name, names[i]);
		assert_int_equal(e->mtime, 0);
		assert_int_equal(e->uid, 0);
		assert_int_equal(e->gid, 0);
		if (strcmp(e->name, "dev/console") == 0) {
			assert_int_equal(e->mode, S_IFCHR | 0600);
			assert_int_equal(e->rmaj, 5);
			assert_int_equal(e->rmin, 1);
		} else if (strcmp(e->name, "init") == 0) {
			assert_int_equal(e->mode, S_IFREG | 0755);
			unsigned char want[sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 16];
			fake_elf(want, sizeof(want), PT_LOAD);
			assert_memory_equal(e->data, want, sizeof(want));
		} else if (strcmp(e->name, "etc/gureum/modules") == 0) {
			assert_int_equal(e->mode, S_IFREG | 0644);
			assert_string_equal((char *)e->data, modules);
		} else if (strstr(e->name, ".ko")) {
			/* Decompressed: the bytes the fake module was made of. */
			assert_int_equal(e->mode, S_IFREG | 0644);
			const char *rel = e->name + strlen("lib/modules/" VER "/");
			const char *src = NULL;
			for (size_t j = 0; j < NEXPECTED; j++)
				if (strncmp(expected_order[j], rel, strlen(rel)) == 0)
					src = expected_order[j];
			assert_non_null(src);
			unsigned char want[8192];
			size_t wn = module_bytes(src, want, sizeof(want));
			assert_int_equal(e->size, wn);
			assert_memory_equal(e->data, want, wn);
		} else {
			assert_int_equal(e->mode, S_IFDIR | 0755);
		}
	}
	free_entries(v, n);

	/* The same inputs, the same bytes (a second file, then the first replaced). */
	char out2[256];
	snprintf(out2, sizeof(out2), "%s/common2.img", f->out);
	assert_int_equal(initrd_build_common(&k, f->init, out2, &err), 0);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), 0);
	size_t len2, len3;
	gr_autofree char *buf2 = slurp(out2, &len2);
	gr_autofree char *buf3 = slurp(out, &len3);
	assert_int_equal(len2, len);
	assert_int_equal(len3, len);
	assert_memory_equal(buf2, buf, len);
	assert_memory_equal(buf3, buf, len);
	assert_int_equal(count_files(f->out), 2);
}

static void test_build_instance(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	find_fake(f, &k);
	struct gr_error err = { 0 };
	char common[256], inst[256];
	snprintf(common, sizeof(common), "%s/common.img", f->out);
	snprintf(inst, sizeof(inst), "%s/instance.img", f->out);
	assert_int_equal(initrd_build_common(&k, f->init, common, &err), 0);

	gr_autojson json_t *cfg = json_pack("{s:s, s:[s,s], s:[s], s:s, s:{s:s,s:s,s:s,s:s}, s:s, s:n}",
					    "hostname", "v1", "command", "/bin/sh", "-c", "env", "A=b c",
					    "cwd", "/", "network", "address", "10.0.0.2/24", "gateway", "10.0.0.1",
					    "dns", "10.0.0.1", "mac", "02:00:00:00:00:01", "agent_port",
					    "org.gureum.agent.0", "image_init");
	assert_non_null(cfg);
	int rc = initrd_build_instance(common, cfg, inst, &err);
	if (rc < 0)
		print_message("%s\n", err.msg);
	assert_int_equal(rc, 0);
	struct stat st;
	assert_int_equal(stat(inst, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	size_t clen, ilen;
	gr_autofree char *cbuf = slurp(common, &clen);
	gr_autofree char *ibuf = slurp(inst, &ilen);
	assert_int_equal(clen % 4, 0);
	assert_int_equal(ilen % 4, 0);
	assert_true(ilen > clen);
	/* The common archive unchanged, then a newc header on a 4-byte boundary. */
	assert_memory_equal(ibuf, cbuf, clen);
	assert_memory_equal(ibuf + clen, "070701", 6);

	struct entry v[8];
	size_t n = read_entries(ibuf + clen, ilen - clen, v, 8);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "etc");
	assert_int_equal(v[0].mode, S_IFDIR | 0755);
	assert_string_equal(v[1].name, "etc/gureum");
	assert_int_equal(v[1].mode, S_IFDIR | 0755);
	assert_string_equal(v[2].name, "etc/gureum/instance.json");
	assert_int_equal(v[2].mode, S_IFREG | 0600);
	gr_autofree char *want = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal((char *)v[2].data, want);
	json_error_t je;
	gr_autojson json_t *back = json_loads((char *)v[2].data, 0, &je);
	assert_true(json_equal(back, cfg));
	free_entries(v, n);

	/* The whole file read as one stream: the first archive, as the kernel starts. */
	struct entry all[64];
	n = read_entries(ibuf, ilen, all, 64);
	assert_int_equal(n, 26);
	free_entries(all, n);

	/* Rebuilt: replaced in place, nothing else left. */
	assert_int_equal(initrd_build_instance(common, cfg, inst, &err), 0);
	assert_int_equal(count_files(f->out), 2);

	/* Not an object; no common file. */
	gr_autojson json_t *arr = json_array();
	assert_int_equal(initrd_build_instance(common, arr, inst, &err), -EINVAL);
	char none[256];
	snprintf(none, sizeof(none), "%s/none.img", f->out);
	assert_int_equal(initrd_build_instance(none, cfg, inst, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "none.img"));
	assert_int_equal(count_files(f->out), 2);
}

static void test_cached(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	find_fake(f, &k);
	struct gr_error err = { 0 };
	char state_dir[256], p1[512], p2[512], p3[512];
	snprintf(state_dir, sizeof(state_dir), "%s/state", f->dir);
	int rc = initrd_common_cached(state_dir, &k, f->init, p1, sizeof(p1), &err);
	if (rc < 0)
		print_message("%s\n", err.msg);
	assert_int_equal(rc, 0);
	char prefix[512];
	snprintf(prefix, sizeof(prefix), "%s/vm/initrd-" VER "-", state_dir);
	assert_int_equal(strncmp(p1, prefix, strlen(prefix)), 0);
	assert_int_equal(strlen(p1), strlen(prefix) + 64 + 4);
	assert_string_equal(p1 + strlen(p1) - 4, ".img");
	struct stat st1, st2;
	assert_int_equal(stat(p1, &st1), 0);

	/* Again: the same file, not rebuilt. */
	assert_int_equal(initrd_common_cached(state_dir, &k, f->init, p2, sizeof(p2), &err), 0);
	assert_string_equal(p1, p2);
	assert_int_equal(stat(p2, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);

	/* Another init: another file. A changed module: another file. */
	unsigned char init2[sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 17];
	fake_elf(init2, sizeof(init2), PT_LOAD);
	init2[sizeof(init2) - 1] = 2;
	put(f->init, init2, sizeof(init2));
	assert_int_equal(initrd_common_cached(state_dir, &k, f->init, p2, sizeof(p2), &err), 0);
	assert_string_not_equal(p1, p2);
	char p[512];
	snprintf(p, sizeof(p), "%s" MODS "/kernel/net/core/failover.ko", f->kernel);
	unsigned char buf[8192];
	size_t n = module_bytes("failover v2", buf, sizeof(buf));
	put(p, buf, n);
	assert_int_equal(initrd_common_cached(state_dir, &k, f->init, p3, sizeof(p3), &err), 0);
	assert_string_not_equal(p2, p3);
	assert_string_not_equal(p1, p3);
	char vm[300];
	snprintf(vm, sizeof(vm), "%s/vm", state_dir);
	assert_int_equal(count_files(vm), 3);

	/* Too small a buffer. */
	char small[16];
	assert_int_equal(initrd_common_cached(state_dir, &k, f->init, small, sizeof(small), &err), -ENAMETOOLONG);
}

/* ---- the real kernel ---- */

/* gureum-init must be static: the initramfs has no loader. */
static void test_init_must_be_static(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	find_fake(f, &k);
	struct gr_error err = { 0 };
	char out[256];
	snprintf(out, sizeof(out), "%s/common.img", f->out);
	unsigned char elf[sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr)];
	fake_elf(elf, sizeof(elf), PT_INTERP);
	put(f->init, elf, sizeof(elf));
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "not statically linked"));
	assert_int_equal(count_files(f->out), 0);
	char cached[PATH_MAX], state_dir[256];
	snprintf(state_dir, sizeof(state_dir), "%s/state", f->dir);
	assert_int_equal(initrd_common_cached(state_dir, &k, f->init, cached, sizeof(cached), &err), -ENOEXEC);
	/* Not an ELF file; a truncated one; a program header table out of bounds. */
	put(f->init, "#!/bin/sh\n", 10);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "not an ELF program"));
	fake_elf(elf, sizeof(elf), PT_LOAD);
	put(f->init, elf, sizeof(Elf64_Ehdr) + 8);
	assert_int_equal(initrd_build_common(&k, f->init, out, &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "damaged program header table"));
	Elf64_Ehdr eh;
	memcpy(&eh, elf, sizeof(eh));
	eh.e_phnum = 0xffff;
	memcpy(elf, &eh, sizeof(eh));
	put(f->init, elf, sizeof(elf));
	assert_int_equal(initrd_check_static_init("x", elf, sizeof(elf), &err), -ENOEXEC);
	eh.e_phnum = 1;
	eh.e_machine = EM_AARCH64;
	memcpy(elf, &eh, sizeof(eh));
	assert_int_equal(initrd_check_static_init("x", elf, sizeof(elf), &err), -ENOEXEC);
	assert_non_null(strstr(err.msg, "not an x86-64 executable"));
	eh.e_machine = EM_X86_64;
	memcpy(elf, &eh, sizeof(eh));
	assert_int_equal(initrd_check_static_init("x", elf, sizeof(elf), &err), 0);
	assert_int_equal(count_files(f->out), 0);
}

static void test_real_kernel(void **state)
{
	struct fx *f = *state;
	struct vm_kernel k;
	struct gr_error err = { 0 };
	if (initrd_kernel_find(VM_KERNEL_CACHE_DIR "/current", &k, &err) < 0) {
		print_message("SKIP: no guest kernel (%s)\n", err.msg);
		skip();
	}
	struct initrd_modules m;
	int rc = initrd_modules_resolve(&k, initrd_modules_wanted, initrd_modules_optional, &m, &err);
	if (rc < 0)
		print_message("%s\n", err.msg);
	assert_int_equal(rc, 0);
	print_message("kernel %s: %zu modules in load order:\n", k.version, m.count);
	bool mmio = false, blk = false, button = false, evdev = false;
	for (size_t i = 0; i < m.count; i++) {
		print_message("  %s\n", m.files[i]);
		mmio |= strstr(m.files[i], "/virtio_mmio.ko") != NULL;
		blk |= strstr(m.files[i], "/virtio_blk.ko") != NULL;
		button |= strstr(m.files[i], "/button.ko") != NULL;
		evdev |= strstr(m.files[i], "/evdev.ko") != NULL;
	}
	assert_true(mmio && blk);
	/* Debian's cloud kernel builds the ACPI button and evdev as modules. */
	if (strstr(k.version, "cloud"))
		assert_true(button && evdev);
	initrd_modules_free(&m);

	char out[256];
	snprintf(out, sizeof(out), "%s/real.img", f->out);
	rc = initrd_build_common(&k, f->init, out, &err);
	if (rc < 0)
		print_message("%s\n", err.msg);
	assert_int_equal(rc, 0);
	struct stat st;
	assert_int_equal(stat(out, &st), 0);
	print_message("common initramfs: %lld bytes\n", (long long)st.st_size);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_find_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_by_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_builtin_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_modules_dep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_common, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_instance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_must_be_static, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_kernel, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
