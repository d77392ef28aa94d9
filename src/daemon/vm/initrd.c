/* VM initramfs: kernel, modules, archives (initrd.h). */
#include "daemon/vm/initrd.h"
#include "common/cleanup.h"
#include "common/fs.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MODULE_MAX (64u << 20)         /* a module, decompressed; the largest real ones are ~10 MiB */
#define INIT_MAX (64u << 20)           /* gureum-init */
#define MODULES_DEP_MAX (32u << 20)
#define MODULE_NAME_MAX 64             /* the kernel's MODULE_NAME_LEN is 56 */
#define CLOSURE_MAX 256                /* modules in one initramfs (Debian's cloud kernel: 11) */
#define DEPTH_MAX 64                   /* dependency chain (real ones: < 10) */
#define LAYOUT_VERSION "gureum-initrd-1"  /* change when the archive's layout changes: new cache files */

const char *const initrd_modules_wanted[] = {
	"virtio_mmio", "virtio_blk", "virtio_net", "virtio_console", NULL,
};
/* Where the kernel has them: the agent's vsock transport, the ACPI power
 * button and its input events (gureum-init watches them in command mode),
 * and virtio-rng (entropy early in boot). */
const char *const initrd_modules_optional[] = {
	"vmw_vsock_virtio_transport", "button", "evdev", "virtio_rng", NULL,
};

static const char *const module_suffixes[] = { ".ko", ".ko.xz", ".ko.zst", ".ko.gz" };

static void archive_freep(struct archive **a)
{
	if (*a)
		archive_free(*a);   /* archive_read_free and archive_write_free alike */
}
#define gr_autoarchive _cleanup_(archive_freep)

static const char *la_err(struct archive *a)
{
	const char *s = archive_error_string(a);
	return s ? s : "unknown libarchive error";
}

static void md_ctx_freep(EVP_MD_CTX **c)
{
	if (*c)
		EVP_MD_CTX_free(*c);
}

/* A kernel release as a file name: letters, digits and ._+~-, not starting
 * with '.' or '-'. */
static bool version_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n >= VM_KERNEL_VERSION_MAX || v[0] == '.' || v[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && !strchr("._+~-", v[i]))
			return false;
	return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The module suffix s ends with (longest first), or NULL. */
static const char *module_suffix(const char *s)
{
	for (size_t i = sizeof(module_suffixes) / sizeof(module_suffixes[0]); i-- > 0;)
		if (has_suffix(s, module_suffixes[i]))
			return module_suffixes[i];
	return NULL;
}

/* ---- kernel ---- */

int initrd_bzimage_version(const char *file, char *out, size_t n, struct gr_error *err)
{
	gr_autoclose int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open kernel %s", file);
	unsigned char hdr[0x210];
	ssize_t got = pread(fd, hdr, sizeof(hdr), 0);
	if (got < 0)
		return gr_error_sys(err, errno, "cannot read kernel %s", file);
	if ((size_t)got < sizeof(hdr) || memcmp(hdr + 0x202, "HdrS", 4) != 0)
		return gr_error_set(err, ENOENT, "%s is not a bzImage (no \"HdrS\" setup header)", file);
	unsigned proto = hdr[0x206] | (unsigned)hdr[0x207] << 8;
	unsigned off = hdr[0x20e] | (unsigned)hdr[0x20f] << 8;
	if (proto < 0x200 || off == 0)
		return gr_error_set(err, ENOENT, "%s has no kernel version string in its setup header", file);
	/* The string lies in the setup code: (setup_sects + 1) sectors, 4 when 0. */
	size_t setup_end = (size_t)((hdr[0x1f1] ? hdr[0x1f1] : 4) + 1) * 512;
	size_t at = 0x200 + (size_t)off;
	if (at >= setup_end)
		return gr_error_set(err, EINVAL, "%s: its kernel version string (at 0x%zx) lies beyond its setup code (0x%zx bytes)",
				    file, at, setup_end);
	char s[256];
	size_t want = setup_end - at < sizeof(s) - 1 ? setup_end - at : sizeof(s) - 1;
	got = pread(fd, s, want, (off_t)at);
	if (got < 0)
		return gr_error_sys(err, errno, "cannot read kernel %s", file);
	s[got] = '\0';
	s[strcspn(s, " \t\r\n")] = '\0';
	if (!version_ok(s) || strlen(s) >= n)
		return gr_error_set(err, EINVAL, "%s: the kernel version in its header is not a plain name "
				    "(letters, digits and ._+~-, at most %d characters)", file, VM_KERNEL_VERSION_MAX - 1);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static bool has_modules_dep(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;
	if ((size_t)snprintf(p, sizeof(p), "%s/modules.dep", dir) >= sizeof(p))
		return false;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The kernel file at file (tree: the kernel directory it came from, whose
 * lib/modules is then the only place its modules may be). */
static int kernel_from_file(const char *file, const char *tree, struct vm_kernel *out, struct gr_error *err)
{
	if (!realpath(file, out->image))
		return gr_error_sys(err, errno, "cannot resolve kernel %s", file);
	int rc = initrd_bzimage_version(out->image, out->version, sizeof(out->version), err);
	if (rc == -ENOENT) {
		/* No version string (not a bzImage, or an old one): the name says it. */
		const char *base = strrchr(out->image, '/') + 1;
		if (strncmp(base, "vmlinuz-", 8) != 0 || !version_ok(base + 8))
			return gr_error_set(err, EINVAL, "cannot tell the version of kernel %s: it has no bzImage version "
					    "string and its name is not vmlinuz-VERSION", file);
		snprintf(out->version, sizeof(out->version), "%s", base + 8);
		gr_error_clear(err);
	} else if (rc < 0) {
		return rc;
	}

	char cand[3][PATH_MAX];
	size_t ncand = 0;
	if (tree) {
		snprintf(cand[ncand++], PATH_MAX, "%s/lib/modules/%s", tree, out->version);
	} else {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", out->image);
		*strrchr(dir, '/') = '\0';
		snprintf(cand[ncand++], PATH_MAX, "%s/../lib/modules/%s", dir, out->version);
		snprintf(cand[ncand++], PATH_MAX, "%s/lib/modules/%s", dir, out->version);
		snprintf(cand[ncand++], PATH_MAX, "/lib/modules/%s", out->version);
	}
	for (size_t i = 0; i < ncand; i++) {
		if (!has_modules_dep(cand[i]))
			continue;
		if (!realpath(cand[i], out->modules_dir))
			return gr_error_sys(err, errno, "cannot resolve %s", cand[i]);
		return 0;
	}
	if (tree)
		return gr_error_set(err, ENOENT, "kernel %s in %s has no modules (%s/modules.dep is missing): "
				    "run scripts/fetch-kernel.sh again", out->version, tree, cand[0]);
	return gr_error_set(err, ENOENT, "no modules for kernel %s (%s): no modules.dep in %s, %s or %s; "
			    "put its lib/modules/%s there and run depmod", out->version, file,
			    cand[0], cand[1], cand[2], out->version);
}

static int kernel_from_dir(const char *dir, struct vm_kernel *out, struct gr_error *err)
{
	char boot[PATH_MAX];
	if ((size_t)snprintf(boot, sizeof(boot), "%s/boot", dir) >= sizeof(boot))
		return gr_error_set(err, ENAMETOOLONG, "kernel directory %s: path too long", dir);
	gr_autoclosedir DIR *d = opendir(boot);
	if (!d) {
		if (errno == ENOENT)
			return gr_error_set(err, ENOENT, "no kernel in %s (no boot/ directory): run scripts/fetch-kernel.sh "
					    "(as root) to fetch Debian's cloud kernel", dir);
		return gr_error_sys(err, errno, "cannot open %s", boot);
	}
	char found[2][256];
	size_t nfound = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "vmlinuz-", 8) != 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (nfound < 2)
			snprintf(found[nfound], sizeof(found[nfound]), "%s", e->d_name);
		nfound++;
	}
	if (nfound == 0)
		return gr_error_set(err, ENOENT, "no kernel in %s (no boot/vmlinuz-VERSION): run scripts/fetch-kernel.sh "
				    "(as root) to fetch Debian's cloud kernel", dir);
	if (nfound > 1)
		return gr_error_set(err, EINVAL, "%zu kernels in %s (%s, %s...): name the vmlinuz file to use",
				    nfound, boot, found[0], found[1]);
	char file[PATH_MAX];
	if ((size_t)snprintf(file, sizeof(file), "%s/%s", boot, found[0]) >= sizeof(file))
		return gr_error_set(err, ENAMETOOLONG, "kernel directory %s: path too long", dir);
	return kernel_from_file(file, dir, out, err);
}

int initrd_kernel_find(const char *path, struct vm_kernel *out, struct gr_error *err)
{
	char def[PATH_MAX];
	if (!path || !*path) {
		const char *cache = getenv("GUREUM_KERNEL_DIR");
		snprintf(def, sizeof(def), "%s/current", cache && *cache ? cache : VM_KERNEL_CACHE_DIR);
		path = def;
	}
	memset(out, 0, sizeof(*out));
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return gr_error_set(err, ENOENT, "no kernel at %s: run scripts/fetch-kernel.sh (as root) to fetch "
					    "Debian's cloud kernel, or name a kernel (a vmlinuz file, or a directory with "
					    "boot/vmlinuz-VERSION and lib/modules/VERSION)", path);
		return gr_error_sys(err, errno, "cannot reach kernel %s", path);
	}
	if (S_ISDIR(st.st_mode))
		return kernel_from_dir(path, out, err);
	if (S_ISREG(st.st_mode))
		return kernel_from_file(path, NULL, out, err);
	return gr_error_set(err, EINVAL, "kernel %s is neither a file nor a directory", path);
}

/* ---- modules.dep ---- */

struct dep_entry {
	const char *path;       /* relative to the modules directory, in the map's buffer */
	char name[MODULE_NAME_MAX];
	const char **deps;
	size_t ndeps;
	int state;              /* 0 unvisited, 1 being visited, 2 done */
};

struct depmap {
	char *buf;              /* modules.dep, cut in place */
	struct dep_entry *v;
	size_t n;
	struct dep_entry **by_path, **by_name;  /* v sorted (bsearch: hostile files stay O(n log n)) */
	char (*builtin)[MODULE_NAME_MAX];
	size_t nbuiltin;
};

static void depmap_free(struct depmap *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].deps);
	free(m->v);
	free(m->by_path);
	free(m->by_name);
	free(m->buf);
	free(m->builtin);
}

/* A module's name from its path: the file name without its suffix, '-' as '_'. */
static int module_name(const char *path, char out[MODULE_NAME_MAX])
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *suffix = module_suffix(base);
	size_t n = suffix ? strlen(base) - strlen(suffix) : strlen(base);
	if (n == 0 || n >= MODULE_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		out[i] = base[i] == '-' ? '_' : base[i];
	out[n] = '\0';
	return 0;
}

/* Checks a module path from modules.dep (line lineno) and makes it relative
 * to the modules directory; NULL (err filled) when it is refused. */
static const char *module_path(const struct vm_kernel *k, char *p, size_t lineno, struct gr_error *err)
{
	for (const char *c = p; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("._+-/", *c)) {
			gr_error_set(err, EINVAL, "%s/modules.dep line %zu: a module path has a character outside "
				     "[A-Za-z0-9._+-/]", k->modules_dir, lineno);
			return NULL;
		}
	if (p[0] == '/') {
		/* Old depmods wrote absolute paths: take them when they are inside. */
		char sys[PATH_MAX];
		snprintf(sys, sizeof(sys), "/lib/modules/%s/", k->version);
		size_t dl = strlen(k->modules_dir), sl = strlen(sys);
		if (strncmp(p, k->modules_dir, dl) == 0 && p[dl] == '/')
			p += dl + 1;
		else if (strncmp(p, sys, sl) == 0)
			p += sl;
		else {
			gr_error_set(err, EINVAL, "%s/modules.dep line %zu: module path %.200s lies outside the modules directory",
				     k->modules_dir, lineno, p);
			return NULL;
		}
	}
	/* Every component a plain name: no "", ".", "..". */
	for (const char *c = p;;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) {
			gr_error_set(err, EINVAL, "%s/modules.dep line %zu: module path %.200s has an empty, \".\" or \"..\" "
				     "component", k->modules_dir, lineno, p);
			return NULL;
		}
		if (!slash)
			break;
		c = slash + 1;
	}
	char name[MODULE_NAME_MAX];
	if (!module_suffix(p) || module_name(p, name) < 0) {
		gr_error_set(err, EINVAL, "%s/modules.dep line %zu: %.200s is not a module file (NAME.ko, .ko.xz, .ko.zst "
			     "or .ko.gz)", k->modules_dir, lineno, p);
		return NULL;
	}
	return p;
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp((*(struct dep_entry *const *)a)->path, (*(struct dep_entry *const *)b)->path);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp((*(struct dep_entry *const *)a)->name, (*(struct dep_entry *const *)b)->name);
}

/* The sorted indexes; a path or a name listed twice is refused (depmod
 * writes one line per module), so a lookup has one answer. */
static int depmap_index(const struct vm_kernel *k, struct depmap *m, struct gr_error *err)
{
	if (!(m->by_path = calloc(m->n + 1, sizeof(*m->by_path))) || !(m->by_name = calloc(m->n + 1, sizeof(*m->by_name))))
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < m->n; i++)
		m->by_path[i] = m->by_name[i] = &m->v[i];
	qsort(m->by_path, m->n, sizeof(*m->by_path), cmp_path);
	qsort(m->by_name, m->n, sizeof(*m->by_name), cmp_name);
	for (size_t i = 1; i < m->n; i++) {
		if (strcmp(m->by_path[i]->path, m->by_path[i - 1]->path) == 0)
			return gr_error_set(err, EINVAL, "%s/modules.dep lists %s twice", k->modules_dir, m->by_path[i]->path);
		if (strcmp(m->by_name[i]->name, m->by_name[i - 1]->name) == 0)
			return gr_error_set(err, EINVAL, "%s/modules.dep lists module %s twice (%s and %s)", k->modules_dir,
					    m->by_name[i]->name, m->by_name[i - 1]->path, m->by_name[i]->path);
	}
	return 0;
}

static int depmap_load(const struct vm_kernel *k, struct depmap *m, struct gr_error *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/modules.dep", k->modules_dir);
	size_t len;
	int rc = gr_read_file(path, &m->buf, &len, err);
	if (rc < 0)
		return rc;
	if (len > MODULES_DEP_MAX || strlen(m->buf) != len)
		return gr_error_set(err, EINVAL, "%s: not a modules.dep (too large or holds NUL bytes)", path);

	size_t cap = 0, lineno = 0;
	for (char *line = m->buf, *next; line && *line; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line)
			continue;
		char *colon = strchr(line, ':');
		if (!colon)
			return gr_error_set(err, EINVAL, "%s line %zu: no ':' (not a modules.dep)", path, lineno);
		*colon = '\0';
		if (m->n == cap) {
			cap = cap ? cap * 2 : 1024;
			struct dep_entry *v = realloc(m->v, cap * sizeof(*v));
			if (!v)
				return gr_error_set(err, ENOMEM, "out of memory");
			m->v = v;
		}
		struct dep_entry *e = &m->v[m->n++];
		memset(e, 0, sizeof(*e));
		if (!(e->path = module_path(k, line, lineno, err)))
			return -EINVAL;
		module_name(e->path, e->name);
		size_t dcap = 0;
		for (char *tok, *save = NULL, *s = colon + 1; (tok = strtok_r(s, " \t\r", &save)); s = NULL) {
			const char *dep = module_path(k, tok, lineno, err);
			if (!dep)
				return -EINVAL;
			if (e->ndeps == dcap) {
				dcap = dcap ? dcap * 2 : 8;
				const char **d = realloc(e->deps, dcap * sizeof(*d));
				if (!d)
					return gr_error_set(err, ENOMEM, "out of memory");
				e->deps = d;
			}
			e->deps[e->ndeps++] = dep;
		}
	}

	if ((rc = depmap_index(k, m, err)) < 0)
		return rc;

	/* modules.builtin: only the names matter. Older kernels lack it. */
	snprintf(path, sizeof(path), "%s/modules.builtin", k->modules_dir);
	gr_autofree char *builtin = NULL;
	struct gr_error ignored = { 0 };
	if ((rc = gr_read_file(path, &builtin, &len, &ignored)) < 0) {
		if (rc != -ENOENT)
			return gr_error_sys(err, -rc, "cannot read %s", path);
		return 0;
	}
	size_t lines = 1;
	for (const char *c = builtin; *c; c++)
		lines += *c == '\n';
	if (!(m->builtin = calloc(lines, sizeof(*m->builtin))))
		return gr_error_set(err, ENOMEM, "out of memory");
	for (char *line = builtin, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line && module_name(line, m->builtin[m->nbuiltin]) == 0)
			m->nbuiltin++;
	}
	return 0;
}

static struct dep_entry *depmap_by_name(struct depmap *m, const char *name)
{
	struct dep_entry key, *kp = &key;
	snprintf(key.name, sizeof(key.name), "%s", name);
	struct dep_entry **r = bsearch(&kp, m->by_name, m->n, sizeof(*m->by_name), cmp_name);
	return r ? *r : NULL;
}

static struct dep_entry *depmap_by_path(struct depmap *m, const char *path)
{
	struct dep_entry key = { .path = path }, *kp = &key;
	struct dep_entry **r = bsearch(&kp, m->by_path, m->n, sizeof(*m->by_path), cmp_path);
	return r ? *r : NULL;
}

static bool depmap_builtin(const struct depmap *m, const char *name)
{
	for (size_t i = 0; i < m->nbuiltin; i++)
		if (strcmp(m->builtin[i], name) == 0)
			return true;
	return false;
}

static int modules_add(const struct vm_kernel *k, struct initrd_modules *out, const char *path, struct gr_error *err)
{
	for (size_t i = 0; i < out->count; i++)
		if (strcmp(out->files[i], path) == 0)
			return 0;
	if (out->count == CLOSURE_MAX)
		return gr_error_set(err, E2BIG, "%s/modules.dep: the devices' modules need more than %d modules",
				    k->modules_dir, CLOSURE_MAX);
	char **v = realloc(out->files, (out->count + 1) * sizeof(*v));
	if (!v)
		return gr_error_set(err, ENOMEM, "out of memory");
	out->files = v;
	if (!(out->files[out->count] = strdup(path)))
		return gr_error_set(err, ENOMEM, "out of memory");
	out->count++;
	return 0;
}

/* Depth first: what e needs, then e. Each line of modules.dep lists the
 * whole closure, in an order modprobe loads backwards: walk it backwards too. */
static int depmap_visit(const struct vm_kernel *k, struct depmap *m, struct dep_entry *e,
			struct initrd_modules *out, int depth, struct gr_error *err)
{
	if (e->state == 2)
		return 0;
	if (e->state == 1)
		return gr_error_set(err, ELOOP, "%s/modules.dep: module %s depends on itself (a dependency cycle)",
				    k->modules_dir, e->name);
	if (depth > DEPTH_MAX)
		return gr_error_set(err, ELOOP, "%s/modules.dep: module %s: a dependency chain deeper than %d",
				    k->modules_dir, e->name, DEPTH_MAX);
	e->state = 1;
	for (size_t j = e->ndeps; j-- > 0;) {
		struct dep_entry *d = depmap_by_path(m, e->deps[j]);
		int rc = d ? depmap_visit(k, m, d, out, depth + 1, err) : modules_add(k, out, e->deps[j], err);
		if (rc < 0)
			return rc;
	}
	e->state = 2;
	return modules_add(k, out, e->path, err);
}

void initrd_modules_free(struct initrd_modules *m)
{
	for (size_t i = 0; i < m->count; i++)
		free(m->files[i]);
	free(m->files);
	m->files = NULL;
	m->count = 0;
}

static void modules_freep(struct initrd_modules *m)
{
	initrd_modules_free(m);
}

int initrd_modules_resolve(const struct vm_kernel *k, const char *const *wanted,
			   const char *const *optional, struct initrd_modules *out, struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_(depmap_free) struct depmap m = { 0 };
	int rc = depmap_load(k, &m, err);
	if (rc < 0)
		return rc;
	_cleanup_(modules_freep) struct initrd_modules res = { 0 };
	for (int pass = 0; pass < 2; pass++) {
		const char *const *list = pass == 0 ? wanted : optional;
		for (size_t i = 0; list && list[i]; i++) {
			char name[MODULE_NAME_MAX];
			if (module_name(list[i], name) < 0)
				return gr_error_set(err, EINVAL, "module name \"%.100s\" is not a name", list[i]);
			if (depmap_builtin(&m, name))
				continue;
			struct dep_entry *e = depmap_by_name(&m, name);
			if (!e) {
				if (pass == 1)
					continue;
				return gr_error_set(err, ENOENT, "kernel %s has no module %s (not in %s/modules.dep nor in "
						    "modules.builtin): the VM's devices need it; use Debian's cloud kernel "
						    "(scripts/fetch-kernel.sh) or a kernel that has it", k->version, name,
						    k->modules_dir);
			}
			if ((rc = depmap_visit(k, &m, e, &res, 0, err)) < 0)
				return rc;
		}
	}
	*out = res;
	memset(&res, 0, sizeof(res));
	return 0;
}

/* ---- reading modules ---- */

/* Opens rel below dirfd, never leaving it (openat2 RESOLVE_BENEATH; where
 * that is missing or filtered, a walk that follows no symlink at all). */
static int open_beneath(int dirfd, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return fd;
	char buf[PATH_MAX];
	if ((size_t)snprintf(buf, sizeof(buf), "%s", rel) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	gr_autoclose int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0)
		return -1;
	char *c = buf;
	for (char *slash; (slash = strchr(c, '/')); c = slash + 1) {
		*slash = '\0';
		int next = openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return -1;
		close(cur);
		cur = next;
	}
	return openat(cur, c, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
}

static int module_open(const struct vm_kernel *k, int dirfd, const char *rel, struct stat *st, struct gr_error *err)
{
	int fd = open_beneath(dirfd, rel);
	if (fd < 0) {
		if (errno == EXDEV || errno == ELOOP)
			return gr_error_set(err, EXDEV, "module %s/%s leads outside its modules directory (a symlink?)",
					    k->modules_dir, rel);
		return gr_error_sys(err, errno, "cannot open module %s/%s", k->modules_dir, rel);
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || (uint64_t)st->st_size > MODULE_MAX) {
		close(fd);
		return gr_error_set(err, EINVAL, "module %s/%s is not a regular file of at most %u MiB",
				    k->modules_dir, rel, MODULE_MAX >> 20);
	}
	return fd;
}

/* Reads module rel (decompressed) into *data, *size. */
static int module_read(const struct vm_kernel *k, int dirfd, const char *rel, unsigned char **data, size_t *size,
		       struct gr_error *err)
{
	struct stat st;
	gr_autoclose int fd = module_open(k, dirfd, rel, &st, err);
	if (fd < 0)
		return fd;
	const char *suffix = module_suffix(rel);
	gr_autofree unsigned char *buf = NULL;
	size_t used = 0;
	if (strcmp(suffix, ".ko") == 0) {
		if (!(buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
			return gr_error_set(err, ENOMEM, "out of memory");
		ssize_t n = gr_read_all(fd, buf, (size_t)st.st_size);
		if (n < 0)
			return gr_error_sys(err, (int)-n, "cannot read module %s/%s", k->modules_dir, rel);
		used = (size_t)n;
	} else {
		/* libarchive's raw format behind the one filter the suffix names. */
		int code = strcmp(suffix, ".ko.xz") == 0 ? ARCHIVE_FILTER_XZ
			 : strcmp(suffix, ".ko.zst") == 0 ? ARCHIVE_FILTER_ZSTD : ARCHIVE_FILTER_GZIP;
		gr_autoarchive struct archive *a = archive_read_new();
		if (!a)
			return gr_error_set(err, ENOMEM, "out of memory");
		int r = code == ARCHIVE_FILTER_XZ ? archive_read_support_filter_xz(a)
		      : code == ARCHIVE_FILTER_ZSTD ? archive_read_support_filter_zstd(a)
		      : archive_read_support_filter_gzip(a);
		if (r != ARCHIVE_OK)  /* ARCHIVE_WARN: it would run an external program */
			return gr_error_set(err, ENOTSUP, "module %s/%s: this libarchive cannot decompress %s itself",
					    k->modules_dir, rel, suffix);
		archive_read_support_format_raw(a);
		struct archive_entry *e;
		if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK || archive_read_next_header(a, &e) != ARCHIVE_OK)
			return gr_error_set(err, EINVAL, "module %s/%s: %s", k->modules_dir, rel, la_err(a));
		if (archive_filter_code(a, 0) != code)
			return gr_error_set(err, EINVAL, "module %s/%s is not %s data", k->modules_dir, rel, suffix + 4);
		size_t cap = 0;
		for (;;) {
			if (used == cap) {
				if (cap >= MODULE_MAX)
					return gr_error_set(err, EFBIG, "module %s/%s: larger than %u MiB decompressed",
							    k->modules_dir, rel, MODULE_MAX >> 20);
				cap = cap ? cap * 2 : (size_t)st.st_size * 4 + 4096;
				if (cap > MODULE_MAX)
					cap = MODULE_MAX;
				unsigned char *nb = realloc(buf, cap);
				if (!nb)
					return gr_error_set(err, ENOMEM, "out of memory");
				buf = nb;
			}
			la_ssize_t n = archive_read_data(a, buf + used, cap - used);
			if (n < 0)
				return gr_error_set(err, EINVAL, "module %s/%s: %s", k->modules_dir, rel,
						    la_err(a));
			if (n == 0)
				break;
			used += (size_t)n;
		}
	}
	if (used < 4 || memcmp(buf, "\177ELF", 4) != 0)
		return gr_error_set(err, EINVAL, "module %s/%s is not an ELF file%s", k->modules_dir, rel,
				    strcmp(suffix, ".ko") ? " once decompressed" : "");
	*data = gr_steal_ptr(buf);
	*size = used;
	return 0;
}

/* ---- cpio ---- */

struct cpio_entry {
	char *name;
	unsigned type;              /* AE_IFDIR, AE_IFREG, AE_IFCHR */
	unsigned perm;
	unsigned rdev_major, rdev_minor;
	const void *data;
	size_t size;
	void *owned;                /* freed with the list */
};

struct cpio_list {
	struct cpio_entry *v;
	size_t n, cap;
};

static void cpio_list_free(struct cpio_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].owned);
	}
	free(l->v);
}

static struct cpio_entry *cpio_find(struct cpio_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return &l->v[i];
	return NULL;
}

/* Adds an entry; owned (may be NULL) is the list's from now on, even on failure. */
static int cpio_add(struct cpio_list *l, const char *name, unsigned type, unsigned perm, const void *data,
		    size_t size, void *owned, struct gr_error *err)
{
	if (cpio_find(l, name)) {
		free(owned);
		if (type == AE_IFDIR && cpio_find(l, name)->type == AE_IFDIR)
			return 0;
		return gr_error_set(err, EEXIST, "initramfs: two entries named %s", name);
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct cpio_entry *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			free(owned);
			return gr_error_set(err, ENOMEM, "out of memory");
		}
		l->v = v;
		l->cap = cap;
	}
	struct cpio_entry *e = &l->v[l->n];
	*e = (struct cpio_entry){ .name = strdup(name), .type = type, .perm = perm, .data = data, .size = size,
				  .owned = owned };
	if (!e->name) {
		free(owned);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	l->n++;
	return 0;
}

/* Adds directory path and every directory above it (0755). */
static int cpio_add_dirs(struct cpio_list *l, const char *path, struct gr_error *err)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *c = buf;; c++) {
		if (*c == '/' || *c == '\0') {
			char saved = *c;
			*c = '\0';
			int rc = cpio_add(l, buf, AE_IFDIR, 0755, NULL, 0, NULL, err);
			if (rc < 0)
				return rc;
			*c = saved;
			if (!saved)
				return 0;
		}
	}
}

/* Adds a file and the directories above it. */
static int cpio_add_file(struct cpio_list *l, const char *name, unsigned perm, const void *data, size_t size,
			 void *owned, struct gr_error *err)
{
	const char *slash = strrchr(name, '/');
	if (slash) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - name), name);
		int rc = cpio_add_dirs(l, dir, err);
		if (rc < 0) {
			free(owned);
			return rc;
		}
	}
	return cpio_add(l, name, AE_IFREG, perm, data, size, owned, err);
}

static int cpio_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cpio_entry *)a)->name, ((const struct cpio_entry *)b)->name);
}

static void entry_freep(struct archive_entry **e)
{
	if (*e)
		archive_entry_free(*e);
}

/* Writes l (sorted here: a directory sorts before what it holds) as a newc
 * archive at fd's offset, gzip'd when asked, then NULs to a 4-byte boundary. */
static int cpio_write(int fd, struct cpio_list *l, bool gzip, const char *what, struct gr_error *err)
{
	qsort(l->v, l->n, sizeof(*l->v), cpio_entry_cmp);
	gr_autoarchive struct archive *a = archive_write_new();
	if (!a)
		return gr_error_set(err, ENOMEM, "out of memory");
	if (archive_write_set_format_cpio_newc(a) != ARCHIVE_OK ||
	    (gzip && (archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
		      /* no time stamp in the gzip header: the same bytes every time */
		      archive_write_set_filter_option(a, "gzip", "timestamp", NULL) != ARCHIVE_OK)) ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK)
		return gr_error_set(err, EIO, "%s: libarchive: %s", what, la_err(a));
	for (size_t i = 0; i < l->n; i++) {
		const struct cpio_entry *c = &l->v[i];
		_cleanup_(entry_freep) struct archive_entry *e = archive_entry_new();
		if (!e)
			return gr_error_set(err, ENOMEM, "out of memory");
		archive_entry_set_pathname(e, c->name);
		archive_entry_set_filetype(e, c->type);
		archive_entry_set_perm(e, c->perm);
		archive_entry_set_size(e, (la_int64_t)c->size);
		archive_entry_set_uid(e, 0);
		archive_entry_set_gid(e, 0);
		archive_entry_set_mtime(e, 0, 0);
		archive_entry_set_ino(e, (la_int64_t)i + 1);
		archive_entry_set_nlink(e, c->type == AE_IFDIR ? 2 : 1);
		archive_entry_set_dev(e, 0);
		if (c->type == AE_IFCHR) {
			archive_entry_set_rdevmajor(e, c->rdev_major);
			archive_entry_set_rdevminor(e, c->rdev_minor);
		}
		if (archive_write_header(a, e) != ARCHIVE_OK)
			return gr_error_set(err, EIO, "%s: %s: %s", what, c->name, la_err(a));
		if (c->size && archive_write_data(a, c->data, c->size) != (la_ssize_t)c->size)
			return gr_error_set(err, EIO, "%s: %s: %s", what, c->name, la_err(a));
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		return gr_error_set(err, EIO, "%s: %s", what, la_err(a));
	off_t end = lseek(fd, 0, SEEK_CUR);
	if (end < 0)
		return gr_error_sys(err, errno, "%s: lseek", what);
	static const char zeros[4];
	int rc = gr_write_all(fd, zeros, (size_t)((4 - end % 4) % 4));
	if (rc < 0)
		return gr_error_sys(err, -rc, "cannot write %s", what);
	return 0;
}

/* ---- output files: OUT.tmp-XXXXXX, renamed into place ---- */

struct tmpfile {
	char path[PATH_MAX];
	int fd;
};

static void tmpfile_cleanup(struct tmpfile *t)
{
	if (t->fd >= 0) {
		close(t->fd);
		unlink(t->path);
	}
}

static int tmpfile_create(struct tmpfile *t, const char *out_path, mode_t mode, struct gr_error *err)
{
	t->fd = -1;
	if ((size_t)snprintf(t->path, sizeof(t->path), "%s.tmp-XXXXXX", out_path) >= sizeof(t->path))
		return gr_error_set(err, ENAMETOOLONG, "%s: path too long", out_path);
	t->fd = mkostemp(t->path, O_CLOEXEC);
	if (t->fd < 0)
		return gr_error_sys(err, errno, "cannot create a file next to %s", out_path);
	if (fchmod(t->fd, mode) < 0)
		return gr_error_sys(err, errno, "cannot chmod %s", t->path);
	return 0;
}

static int tmpfile_commit(struct tmpfile *t, const char *out_path, bool sync, struct gr_error *err)
{
	if (sync && fdatasync(t->fd) < 0)
		return gr_error_sys(err, errno, "cannot write %s", t->path);
	if (rename(t->path, out_path) < 0)
		return gr_error_sys(err, errno, "cannot rename %s to %s", t->path, out_path);
	close(t->fd);
	t->fd = -1;
	return 0;
}

/* ---- the common archive ---- */

int initrd_check_static_init(const char *what, const unsigned char *data, size_t size, struct gr_error *err)
{
	Elf64_Ehdr eh;
	if (size < sizeof(eh) || memcmp(data, ELFMAG, SELFMAG) != 0)
		return gr_error_set(err, ENOEXEC, "the guest's init %s is not an ELF program", what);
	memcpy(&eh, data, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64 ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN))
		return gr_error_set(err, ENOEXEC, "the guest's init %s is not an x86-64 executable", what);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phoff > size ||
	    (size - eh.e_phoff) / sizeof(Elf64_Phdr) < eh.e_phnum)
		return gr_error_set(err, ENOEXEC, "the guest's init %s has a damaged program header table", what);
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, data + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_INTERP)
			return gr_error_set(err, ENOEXEC, "the guest's init %s is not statically linked (it needs a "
					    "program interpreter, which the initramfs does not have): use the normal "
					    "build's gureum-init (sanitizer builds make a dynamic one)", what);
	}
	return 0;
}

static int read_init(const char *init_binary, unsigned char **data, size_t *size, struct gr_error *err)
{
	gr_autoclose int fd = open(init_binary, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open the guest's init %s (is gureum-init built?)", init_binary);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > INIT_MAX)
		return gr_error_set(err, EINVAL, "the guest's init %s is not a regular file of 1 byte to %u MiB",
				    init_binary, INIT_MAX >> 20);
	gr_autofree unsigned char *buf = malloc((size_t)st.st_size);
	if (!buf)
		return gr_error_set(err, ENOMEM, "out of memory");
	ssize_t n = gr_read_all(fd, buf, (size_t)st.st_size);
	int rc;
	if (n < 0)
		return gr_error_sys(err, (int)-n, "cannot read %s", init_binary);
	if ((size_t)n != (size_t)st.st_size)
		return gr_error_set(err, EIO, "%s changed while being read", init_binary);
	if ((rc = initrd_check_static_init(init_binary, buf, (size_t)n, err)) < 0)
		return rc;
	*data = gr_steal_ptr(buf);
	*size = (size_t)n;
	return 0;
}

static int build_common(const struct vm_kernel *k, const struct initrd_modules *mods, const char *init_binary,
			const char *out_path, struct gr_error *err)
{
	if (!version_ok(k->version))
		return gr_error_set(err, EINVAL, "kernel version \"%.100s\" is not a plain name", k->version);
	_cleanup_(cpio_list_free) struct cpio_list l = { 0 };
	unsigned char *init = NULL;
	size_t init_size = 0;
	int rc = read_init(init_binary, &init, &init_size, err);
	if (rc < 0)
		return rc;
	if ((rc = cpio_add_file(&l, "init", 0755, init, init_size, init, err)) < 0)
		return rc;
	static const char *const dirs[] = { "dev", "proc", "sys", "newroot", "etc/gureum" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if ((rc = cpio_add_dirs(&l, dirs[i], err)) < 0)
			return rc;
	/* The kernel's own built-in archive has it too; init's first stdio. */
	if ((rc = cpio_add(&l, "dev/console", AE_IFCHR, 0600, NULL, 0, NULL, err)) < 0)
		return rc;
	l.v[l.n - 1].rdev_major = 5;
	l.v[l.n - 1].rdev_minor = 1;
	char moddir[PATH_MAX];
	snprintf(moddir, sizeof(moddir), "lib/modules/%s", k->version);
	if ((rc = cpio_add_dirs(&l, moddir, err)) < 0)
		return rc;

	gr_autoclose int dirfd = open(k->modules_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return gr_error_sys(err, errno, "cannot open %s", k->modules_dir);
	size_t list_cap = 64, list_len = 0;
	for (size_t i = 0; i < mods->count; i++)
		list_cap += strlen(moddir) + strlen(mods->files[i]) + 2;
	gr_autofree char *list = malloc(list_cap);
	if (!list)
		return gr_error_set(err, ENOMEM, "out of memory");
	list[0] = '\0';
	for (size_t i = 0; i < mods->count; i++) {
		const char *rel = mods->files[i];
		const char *suffix = module_suffix(rel);
		if (!suffix)
			return gr_error_set(err, EINVAL, "%s is not a module file", rel);
		char guest[PATH_MAX];
		if ((size_t)snprintf(guest, sizeof(guest), "%s/%.*s.ko", moddir, (int)(strlen(rel) - strlen(suffix)),
				     rel) >= sizeof(guest))
			return gr_error_set(err, ENAMETOOLONG, "module path %s too long", rel);
		unsigned char *data = NULL;
		size_t size = 0;
		if ((rc = module_read(k, dirfd, rel, &data, &size, err)) < 0)
			return rc;
		if ((rc = cpio_add_file(&l, guest, 0644, data, size, data, err)) < 0)
			return rc;
		list_len += (size_t)snprintf(list + list_len, list_cap - list_len, "%s\n", guest);
	}
	char *owned = gr_steal_ptr(list);  /* the cpio list's from here, even on failure */
	if ((rc = cpio_add_file(&l, "etc/gureum/modules", 0644, owned, list_len, owned, err)) < 0)
		return rc;

	_cleanup_(tmpfile_cleanup) struct tmpfile t = { .fd = -1 };
	if ((rc = tmpfile_create(&t, out_path, 0644, err)) < 0 ||
	    (rc = cpio_write(t.fd, &l, true, out_path, err)) < 0)
		return rc;
	return tmpfile_commit(&t, out_path, true, err);
}

int initrd_build_common(const struct vm_kernel *k, const char *init_binary, const char *out_path,
			struct gr_error *err)
{
	_cleanup_(modules_freep) struct initrd_modules mods = { 0 };
	int rc = initrd_modules_resolve(k, initrd_modules_wanted, initrd_modules_optional, &mods, err);
	if (rc < 0)
		return rc;
	return build_common(k, &mods, init_binary, out_path, err);
}

/* ---- the instance archive ---- */

/* Copies len bytes from in to out at their offsets (copy_file_range, else read/write). */
static int copy_bytes(int in, int out, uint64_t len)
{
	while (len > 0) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, len, 0);
		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;  /* the file shrank */
		len -= (uint64_t)n;
	}
	char buf[65536];
	while (len > 0) {
		ssize_t n = read(in, buf, len < sizeof(buf) ? (size_t)len : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		int rc = gr_write_all(out, buf, (size_t)n);
		if (rc < 0)
			return rc;
		len -= (uint64_t)n;
	}
	return 0;
}

int initrd_build_instance(const char *common_path, const json_t *instance_config, const char *out_path,
			  struct gr_error *err)
{
	if (!json_is_object(instance_config))
		return gr_error_set(err, EINVAL, "the instance's initramfs config must be a JSON object");
	char *json = json_dumps(instance_config, JSON_COMPACT | JSON_SORT_KEYS);
	if (!json)
		return gr_error_set(err, ENOMEM, "cannot encode the instance's config as JSON");
	_cleanup_(cpio_list_free) struct cpio_list l = { 0 };
	int rc = cpio_add_file(&l, "etc/gureum/instance.json", 0600, json, strlen(json), json, err);
	if (rc < 0)
		return rc;

	gr_autoclose int in = open(common_path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (in < 0)
		return gr_error_sys(err, errno, "cannot open the common initramfs %s", common_path);
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
		return gr_error_set(err, EINVAL, "the common initramfs %s is not a non-empty regular file", common_path);
	_cleanup_(tmpfile_cleanup) struct tmpfile t = { .fd = -1 };
	if ((rc = tmpfile_create(&t, out_path, 0600, err)) < 0)
		return rc;
	if ((rc = copy_bytes(in, t.fd, (uint64_t)st.st_size)) < 0)
		return gr_error_sys(err, -rc, "cannot copy %s to %s", common_path, t.path);
	static const char zeros[4];
	if ((rc = gr_write_all(t.fd, zeros, (size_t)((4 - st.st_size % 4) % 4))) < 0)
		return gr_error_sys(err, -rc, "cannot write %s", t.path);
	if ((rc = cpio_write(t.fd, &l, false, out_path, err)) < 0)
		return rc;
	return tmpfile_commit(&t, out_path, false, err);
}

/* ---- the cache ---- */

static int hash_fd(EVP_MD_CTX *c, int fd, const char *what, struct gr_error *err)
{
	unsigned char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gr_error_sys(err, errno, "cannot read %s", what);
		if (n == 0)
			return 0;
		EVP_DigestUpdate(c, buf, (size_t)n);
	}
}

int initrd_common_cached(const char *state_dir, const struct vm_kernel *k, const char *init_binary,
			 char *out, size_t out_len, struct gr_error *err)
{
	if (!version_ok(k->version))
		return gr_error_set(err, EINVAL, "kernel version \"%.100s\" is not a plain name", k->version);
	_cleanup_(modules_freep) struct initrd_modules mods = { 0 };
	int rc = initrd_modules_resolve(k, initrd_modules_wanted, initrd_modules_optional, &mods, err);
	if (rc < 0)
		return rc;

	_cleanup_(md_ctx_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL))
		return gr_error_set(err, ENOMEM, "cannot start a SHA-256");
	char head[256];
	int hl = snprintf(head, sizeof(head), "%s%c%s%c", LAYOUT_VERSION, 0, k->version, 0);
	EVP_DigestUpdate(c, head, (size_t)hl);
	{
		gr_autoclose int fd = open(init_binary, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0)
			return gr_error_sys(err, errno, "cannot open the guest's init %s (is gureum-init built?)",
					    init_binary);
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			return gr_error_set(err, EINVAL, "the guest's init %s is not a regular file", init_binary);
		hl = snprintf(head, sizeof(head), "init %lld%c", (long long)st.st_size, 0);
		EVP_DigestUpdate(c, head, (size_t)hl);
		if ((rc = hash_fd(c, fd, init_binary, err)) < 0)
			return rc;
	}
	gr_autoclose int dirfd = open(k->modules_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return gr_error_sys(err, errno, "cannot open %s", k->modules_dir);
	for (size_t i = 0; i < mods.count; i++) {
		struct stat st;
		gr_autoclose int fd = module_open(k, dirfd, mods.files[i], &st, err);
		if (fd < 0)
			return fd;
		EVP_DigestUpdate(c, "module ", 7);
		EVP_DigestUpdate(c, mods.files[i], strlen(mods.files[i]) + 1);
		hl = snprintf(head, sizeof(head), "%lld%c", (long long)st.st_size, 0);
		EVP_DigestUpdate(c, head, (size_t)hl);
		char what[PATH_MAX];
		snprintf(what, sizeof(what), "%s/%s", k->modules_dir, mods.files[i]);
		if ((rc = hash_fd(c, fd, what, err)) < 0)
			return rc;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_DigestFinal_ex(c, md, &mdlen);
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);

	char dir[PATH_MAX];
	if ((size_t)snprintf(dir, sizeof(dir), "%s/vm", state_dir) >= sizeof(dir) ||
	    (size_t)snprintf(out, out_len, "%s/initrd-%s-%s.img", dir, k->version, hex) >= out_len)
		return gr_error_set(err, ENAMETOOLONG, "state directory %s: path too long", state_dir);
	struct stat st;
	if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		return 0;
	if ((rc = gr_mkdir_p(dir, 0755, err)) < 0)
		return rc;
	return build_common(k, &mods, init_binary, out, err);
}
