/* Control groups on cgroup v1, v2 and hybrid hosts.
 *
 * Everything is relative to a struct cgroup_layout read from mountinfo, so
 * the same code runs against /sys/fs/cgroup and against fake trees made of
 * plain directories and files in unit tests. A few rules that follow from
 * that:
 *   - knob files are opened without O_CREAT (gr_write_knob), so a missing
 *     knob is reported as such, naming the file;
 *   - on v2 the controllers a cgroup may use are read from its own
 *     cgroup.controllers (falling back to the hierarchy root's);
 *   - cgroup_destroy only ever rmdir()s, it never unlinks files.
 *
 * Device rules: on v1 (and hybrid hosts with a v1 devices hierarchy) they are
 * written to devices.allow/devices.deny; on v2 (and hybrid hosts without one)
 * they become an eBPF program (BPF_CGROUP_DEVICE) attached to the container's
 * cgroup in the unified hierarchy, see devices_bpf.h. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "../common/cleanup.h"
#include "../common/fs.h"
#include "devices_bpf.h"

#define CG_FIELD "linux.resources"
#define CG_DEFAULT_PARENT "/gureum-runtime"
#define CG_FREEZE_TIMEOUT_MS 2000
#define CG_POLL_MS 10
#define CG_RMDIR_RETRIES 100     /* x 10 ms */
#define CG_MAX_DEPTH 64

/* Controllers enabled in the ancestors' cgroup.subtree_control on v2. */
static const char *const v2_wanted_controllers[] = {
	"cpu", "memory", "pids", "io", "cpuset", "hugetlb", NULL
};

/* ---------------------------------------------------------------- helpers */

static char *cg_strjoin(const char *a, const char *b, const char *c)
{
	char *s = NULL;
	if (asprintf(&s, "%s%s%s", a, b ? b : "", c ? c : "") < 0)
		return NULL;
	return s;
}

/* "<mount><path>": path is absolute ("/a/b"); "/" means the root itself. */
static char *cg_dir(const char *mount, const char *path)
{
	if (!path || strcmp(path, "/") == 0)
		return strdup(mount);
	return cg_strjoin(mount, path, NULL);
}

static char *cg_file(const char *dir, const char *name)
{
	return cg_strjoin(dir, "/", name);
}

static bool cg_file_exists(const char *dir, const char *name)
{
	gr_autofree char *p = cg_file(dir, name);
	return p && access(p, F_OK) == 0;
}

static bool cg_is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void cg_trim(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

/* Reads a knob, trailing whitespace removed. */
static int cg_read(const char *dir, const char *name, char **out, struct gr_error *err)
{
	gr_autofree char *p = cg_file(dir, name);
	if (!p)
		return gr_error_set(err, ENOMEM, "out of memory");
	int r = gr_read_file(p, out, NULL, err);
	if (r < 0)
		return r;
	cg_trim(*out);
	return 0;
}

/* Writes value to dir/name; on failure the message is prefixed with the
 * config field (when given): `FIELD: cannot write "V" to PATH: reason`. */
static int cg_write(const char *dir, const char *name, const char *value, const char *field,
		    struct gr_error *err)
{
	gr_autofree char *p = cg_file(dir, name);
	if (!p)
		return gr_error_set(err, ENOMEM, "out of memory");
	int r = gr_write_knob(p, value, err);
	if (r < 0 && field)
		return gr_error_prefix(err, "%s", field);
	return r;
}

static int cg_write_u64(const char *dir, const char *name, uint64_t v, const char *field,
			struct gr_error *err)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return cg_write(dir, name, buf, field, err);
}

static int cg_write_i64(const char *dir, const char *name, int64_t v, const char *field,
			struct gr_error *err)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return cg_write(dir, name, buf, field, err);
}

/* Is word one of the space-separated words in list? */
static bool cg_word_in(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; p && *p;) {
		while (*p == ' ' || *p == '\n' || *p == '\t')
			p++;
		const char *e = p;
		while (*e && *e != ' ' && *e != '\n' && *e != '\t')
			e++;
		if ((size_t)(e - p) == n && strncmp(p, word, n) == 0)
			return true;
		p = e;
	}
	return false;
}

static bool cg_strv_has(char *const *v, const char *s)
{
	for (; v && *v; v++)
		if (strcmp(*v, s) == 0)
			return true;
	return false;
}

static int64_t cg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cg_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A container cgroup path as the functions below accept it: absolute, not
 * the root, no "." or ".." components. */
static int cg_check_path(const char *path, struct gr_error *err)
{
	if (!path || path[0] != '/')
		return gr_error_set(err, EINVAL, "cgroup path \"%s\" must be absolute", path ? path : "(null)");
	if (path[strspn(path, "/")] == '\0')
		return gr_error_set(err, EINVAL, "cgroup path \"%s\" is the root cgroup; a container needs its own",
				    path);
	for (const char *p = path; *p;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return gr_error_set(err, EINVAL, "cgroup path \"%s\" must not contain \".\" or \"..\"", path);
		p += n;
	}
	return 0;
}

/* ------------------------------------------------------------------ layout */

const char *cgroup_mode_name(enum cgroup_mode m)
{
	switch (m) {
	case CGROUP_MODE_V1: return "v1";
	case CGROUP_MODE_V2: return "v2";
	case CGROUP_MODE_HYBRID: return "hybrid";
	}
	return "?";
}

void cgroup_layout_free(struct cgroup_layout *l)
{
	if (!l)
		return;
	free(l->unified_mount);
	for (size_t i = 0; i < l->n_v1; i++) {
		free(l->v1[i].mount);
		gr_strvfreep(&l->v1[i].controllers);
	}
	free(l->v1);
	memset(l, 0, sizeof(*l));
}

/* Decodes mountinfo's octal escapes (\040 for a space) in place. */
static void cg_unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* Super options of a v1 cgroup mount that are not controllers. */
static bool cg_is_v1_option(const char *o)
{
	static const char *const opts[] = {
		"rw", "ro", "noprefix", "xattr", "clone_children", "cpuset_v2_mode",
		"favordynmods", "nofavordynmods", "none", NULL
	};
	if (strncmp(o, "release_agent=", 14) == 0)
		return true;
	return cg_strv_has((char *const *)opts, o);
}

/* Controllers from "rw,cpu,cpuacct" (NULL-terminated, malloc'd); *key is
 * "cpu,cpuacct", the identity of the hierarchy. NULL when there is none. */
static int cg_v1_controllers(const char *superopts, char ***out, char **key)
{
	gr_autofree char *copy = strdup(superopts);
	if (!copy)
		return -ENOMEM;
	size_t n = 0, cap = 4;
	gr_autostrv char **v = calloc(cap, sizeof(char *));
	gr_autofree char *k = strdup("");
	if (!v || !k)
		return -ENOMEM;
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (cg_is_v1_option(t))
			continue;
		if (n + 2 > cap) {
			char **nv = realloc(v, (cap *= 2) * sizeof(char *));
			if (!nv)
				return -ENOMEM;
			v = nv;
		}
		if (!(v[n] = strdup(t)))
			return -ENOMEM;
		v[++n] = NULL;
		char *nk = cg_strjoin(k, *k ? "," : "", t);
		if (!nk)
			return -ENOMEM;
		free(k);
		k = nk;
	}
	if (n == 0) {
		*out = NULL;
		*key = NULL;
		return 0;
	}
	*out = gr_steal_ptr(v);
	*key = gr_steal_ptr(k);
	return 0;
}

struct cg_v1_found {
	struct cgroup_v1_hierarchy h;
	char *key;
	bool root_is_slash;
};

static void cg_found_free(struct cg_v1_found *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(f[i].h.mount);
		gr_strvfreep(&f[i].h.controllers);
		free(f[i].key);
	}
	free(f);
}

struct cg_detect {
	struct cg_v1_found *v1;
	size_t n_v1, cap_v1;
	char *unified;
	bool unified_root_slash;
};

static void cg_detect_freep(struct cg_detect *d)
{
	cg_found_free(d->v1, d->n_v1);
	free(d->unified);
}

/* One mountinfo line: "36 35 98:0 /root /mnt opts [optional...] - fstype source superopts". */
static int cg_detect_line(struct cg_detect *d, char *line)
{
	char *sep = strstr(line, " - ");
	if (!sep)
		return 0;
	*sep = '\0';
	char *post = sep + 3;
	char *save = NULL;
	char *f[5];
	char *t = strtok_r(line, " ", &save);
	for (int i = 0; i < 5; i++, t = strtok_r(NULL, " ", &save)) {
		if (!t)
			return 0;
		f[i] = t;
	}
	char *fstype = strtok_r(post, " ", &save);
	char *source = fstype ? strtok_r(NULL, " ", &save) : NULL;
	char *superopts = source ? strtok_r(NULL, " \n", &save) : NULL;
	if (!fstype)
		return 0;
	cg_trim(fstype);
	char *root = f[3], *mnt = f[4];
	cg_unescape(root);
	cg_unescape(mnt);
	bool slash = strcmp(root, "/") == 0;

	if (strcmp(fstype, "cgroup2") == 0) {
		/* The first one wins, unless a later one shows the real root. */
		if (d->unified && (d->unified_root_slash || !slash))
			return 0;
		char *m = strdup(mnt);
		if (!m)
			return -ENOMEM;
		free(d->unified);
		d->unified = m;
		d->unified_root_slash = slash;
		return 0;
	}
	if (strcmp(fstype, "cgroup") != 0 || !superopts)
		return 0;

	gr_autostrv char **ctrls = NULL;
	gr_autofree char *key = NULL;
	int r = cg_v1_controllers(superopts, &ctrls, &key);
	if (r < 0)
		return r;
	if (!ctrls)
		return 0;
	for (size_t i = 0; i < d->n_v1; i++) {
		struct cg_v1_found *e = &d->v1[i];
		if (strcmp(e->key, key) != 0)
			continue;
		if (e->root_is_slash || !slash)
			return 0; /* duplicate or bind mount of a hierarchy we have */
		char *m = strdup(mnt);
		if (!m)
			return -ENOMEM;
		free(e->h.mount);
		e->h.mount = m;
		e->root_is_slash = true;
		return 0;
	}
	if (d->n_v1 == d->cap_v1) {
		size_t cap = d->cap_v1 ? d->cap_v1 * 2 : 8;
		struct cg_v1_found *nv = realloc(d->v1, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		d->v1 = nv;
		d->cap_v1 = cap;
	}
	char *m = strdup(mnt);
	if (!m)
		return -ENOMEM;
	d->v1[d->n_v1++] = (struct cg_v1_found){
		.h = { .mount = m, .controllers = gr_steal_ptr(ctrls) },
		.key = gr_steal_ptr(key),
		.root_is_slash = slash,
	};
	return 0;
}

static struct cgroup_layout cached_layout;
static struct gr_error cached_err;
static int cached_rc;
static pthread_once_t cached_once = PTHREAD_ONCE_INIT;

static void detect_cached(void)
{
	cached_rc = cgroup_layout_detect(NULL, &cached_layout, &cached_err);
}

const struct cgroup_layout *cgroup_layout_cached(struct gr_error *err)
{
	pthread_once(&cached_once, detect_cached);
	if (cached_rc < 0) {
		if (err)
			*err = cached_err;
		return NULL;
	}
	return &cached_layout;
}

int cgroup_layout_detect(const char *mountinfo_path, struct cgroup_layout *out, struct gr_error *err)
{
	const char *path = mountinfo_path ? mountinfo_path : "/proc/self/mountinfo";
	memset(out, 0, sizeof(*out));
	gr_autofclose FILE *f = fopen(path, "re");
	if (!f)
		return gr_error_sys(err, errno, "cannot open %s", path);

	_cleanup_(cg_detect_freep) struct cg_detect d = { 0 };
	gr_autofree char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) >= 0) {
		int r = cg_detect_line(&d, line);
		if (r < 0)
			return gr_error_set(err, -r, "cannot parse %s: out of memory", path);
	}

	/* Hierarchies with real controllers (not only "name=..."). */
	bool v1_controllers = false;
	for (size_t i = 0; i < d.n_v1; i++)
		for (char **c = d.v1[i].h.controllers; *c; c++)
			if (strncmp(*c, "name=", 5) != 0)
				v1_controllers = true;

	if (d.n_v1 == 0 && !d.unified)
		return gr_error_set(err, ENOENT,
				    "no cgroup file system is mounted (according to %s); mount cgroup2 on /sys/fs/cgroup",
				    path);
	if (d.unified && !v1_controllers) {
		/* Pure v2; a lone named v1 hierarchy (name=systemd for old tools) is ignored. */
		out->mode = CGROUP_MODE_V2;
		out->unified_mount = gr_steal_ptr(d.unified);
		return 0;
	}
	out->mode = d.unified ? CGROUP_MODE_HYBRID : CGROUP_MODE_V1;
	out->v1 = calloc(d.n_v1, sizeof(*out->v1));
	if (!out->v1)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < d.n_v1; i++) {
		out->v1[i] = d.v1[i].h;
		d.v1[i].h.mount = NULL;
		d.v1[i].h.controllers = NULL;
	}
	out->n_v1 = d.n_v1;
	out->unified_mount = gr_steal_ptr(d.unified);
	return 0;
}

/* ------------------------------------------------------------ path resolve */

int cgroup_path_resolve(const char *cgroups_path, const char *id, char **out, struct gr_error *err)
{
	*out = NULL;
	if (!cgroups_path || !*cgroups_path) {
		if (!id || !*id || strchr(id, '/') || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
			return gr_error_set(err, EINVAL, "cannot derive a cgroup path from container id \"%s\"",
					    id ? id : "");
		if (asprintf(out, CG_DEFAULT_PARENT "/%s", id) < 0) {
			*out = NULL;
			return gr_error_set(err, ENOMEM, "out of memory");
		}
		return 0;
	}
	const char *p = cgroups_path;
	if (p[0] != '/') {
		const char *c1 = strchr(p, ':');
		if (c1 && strchr(c1 + 1, ':') && !strchr(p, '/'))
			return gr_error_set(err, EINVAL,
					    "linux.cgroupsPath: systemd cgroup paths (\"%s\") need the systemd cgroup manager, "
					    "which gureum-runtime does not support; use --cgroup-manager cgroupfs",
					    p);
	}
	/* Normalise: one '/' between components, no trailing '/', no "." */
	size_t len = strlen(p);
	gr_autofree char *buf = malloc(len + 2);
	if (!buf)
		return gr_error_set(err, ENOMEM, "out of memory");
	size_t w = 0;
	for (const char *s = p; *s;) {
		while (*s == '/')
			s++;
		size_t n = strcspn(s, "/");
		if (n == 0)
			break;
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return gr_error_set(err, EINVAL, "linux.cgroupsPath: \"%s\" must not contain \"..\"", p);
		if (!(n == 1 && s[0] == '.')) {
			buf[w++] = '/';
			memcpy(buf + w, s, n);
			w += n;
		}
		s += n;
	}
	buf[w] = '\0';
	if (w == 0)
		return gr_error_set(err, EINVAL,
				    "linux.cgroupsPath: \"%s\" is the root cgroup; give the container a cgroup of its own", p);
	*out = gr_steal_ptr(buf);
	return 0;
}

/* ----------------------------------------------------- where controllers are */

static const struct cgroup_v1_hierarchy *cg_v1_find(const struct cgroup_layout *l, const char *ctrl)
{
	for (size_t i = 0; i < l->n_v1; i++)
		if (cg_strv_has(l->v1[i].controllers, ctrl))
			return &l->v1[i];
	return NULL;
}

/* Controllers of the unified hierarchy available to path: its own
 * cgroup.controllers, else the nearest ancestor's. "" when none. */
static char *cg_unified_controllers(const struct cgroup_layout *l, const char *path)
{
	if (!l->unified_mount)
		return strdup("");
	gr_autofree char *dir = cg_dir(l->unified_mount, path);
	if (!dir)
		return NULL;
	size_t root_len = strlen(l->unified_mount);
	for (;;) {
		char *s = NULL;
		struct gr_error ignored = { 0 };
		if (cg_read(dir, "cgroup.controllers", &s, &ignored) == 0)
			return s;
		if (strlen(dir) <= root_len)
			return strdup("");
		char *slash = strrchr(dir, '/');
		if (!slash || (size_t)(slash - dir) < root_len)
			return strdup("");
		*slash = '\0';
	}
}

struct cg_apply {
	const struct cgroup_layout *l;
	const char *path;
	const struct oci_resources *r;
	char *unified_ctrls;     /* see cg_unified_controllers */
	struct gr_error *err;
};

/* The directory of path in the hierarchy that holds ctrl (malloc'd, *v2 tells
 * which kind), or NULL with *out untouched when the host lacks it. */
static int cg_locate(struct cg_apply *a, const char *ctrl, char **out, bool *v2)
{
	*out = NULL;
	const struct cgroup_v1_hierarchy *h = a->l->mode == CGROUP_MODE_V2 ? NULL : cg_v1_find(a->l, ctrl);
	if (h) {
		*v2 = false;
		*out = cg_dir(h->mount, a->path);
	} else if (a->l->unified_mount && cg_word_in(a->unified_ctrls, ctrl)) {
		*v2 = true;
		*out = cg_dir(a->l->unified_mount, a->path);
	} else {
		return 0;
	}
	if (!*out)
		return gr_error_set(a->err, ENOMEM, "out of memory");
	return 1;
}

/* As cg_locate, but a missing controller is an error naming field. */
static int cg_need(struct cg_apply *a, const char *ctrl, const char *field, char **out, bool *v2)
{
	int r = cg_locate(a, ctrl, out, v2);
	if (r != 0)
		return r < 0 ? r : 0;
	if (a->l->mode == CGROUP_MODE_V1)
		return gr_error_set(a->err, EOPNOTSUPP,
				    "%s: this host has no %s cgroup controller (no cgroup v1 hierarchy carries it)",
				    field, ctrl);
	if (a->l->mode == CGROUP_MODE_HYBRID)
		return gr_error_set(a->err, EOPNOTSUPP,
				    "%s: this host has no %s cgroup controller (not in a cgroup v1 hierarchy, and "
				    "cgroup v2 offers only: %s)",
				    field, ctrl, *a->unified_ctrls ? a->unified_ctrls : "none");
	return gr_error_set(a->err, EOPNOTSUPP,
			    "%s: the %s cgroup controller is not available to cgroup %s (cgroup v2 controllers: %s)",
			    field, ctrl, a->path, *a->unified_ctrls ? a->unified_ctrls : "none");
}

/* ------------------------------------------------------------------ memory */

static int cg_memory_v1(struct cg_apply *a, const char *dir)
{
	const __typeof__(a->r->memory) *m = &a->r->memory;
	struct gr_error *err = a->err;
	int r;
	bool limit = m->limit.set && m->limit.v != 0;
	bool swap = m->swap.set && m->swap.v != 0;
	int64_t swap_v = m->swap.v;
	bool has_memsw = cg_file_exists(dir, "memory.memsw.limit_in_bytes");

	/* runc: an unlimited memory limit with no explicit swap unlimits swap too. */
	if (limit && m->limit.v == -1 && !swap && has_memsw) {
		swap = true;
		swap_v = -1;
	}
	if (swap && !has_memsw) {
		if (swap_v != -1)
			return gr_error_set(err, EOPNOTSUPP,
					    CG_FIELD ".memory.swap: this host has no swap accounting (%s/memory.memsw.limit_in_bytes "
					    "is missing); boot with swapaccount=1 or leave memory.swap unset", dir);
		swap = false;
	}
	if (limit && swap) {
		/* memory.memsw.limit_in_bytes must stay >= memory.limit_in_bytes: when
		 * raising, memsw has to go first, when lowering, the limit. */
		r = cg_write_i64(dir, "memory.limit_in_bytes", m->limit.v, CG_FIELD ".memory.limit", err);
		if (r == -EINVAL) {
			r = cg_write_i64(dir, "memory.memsw.limit_in_bytes", swap_v, CG_FIELD ".memory.swap", err);
			if (r < 0)
				return r;
			r = cg_write_i64(dir, "memory.limit_in_bytes", m->limit.v, CG_FIELD ".memory.limit", err);
			if (r < 0)
				return r;
		} else if (r < 0) {
			return r;
		} else {
			r = cg_write_i64(dir, "memory.memsw.limit_in_bytes", swap_v, CG_FIELD ".memory.swap", err);
			if (r < 0)
				return r;
		}
	} else if (limit) {
		if ((r = cg_write_i64(dir, "memory.limit_in_bytes", m->limit.v, CG_FIELD ".memory.limit", err)) < 0)
			return r;
	} else if (swap) {
		if ((r = cg_write_i64(dir, "memory.memsw.limit_in_bytes", swap_v, CG_FIELD ".memory.swap", err)) < 0)
			return r;
	}
	if (m->reservation.set && m->reservation.v != 0 &&
	    (r = cg_write_i64(dir, "memory.soft_limit_in_bytes", m->reservation.v, CG_FIELD ".memory.reservation",
			      err)) < 0)
		return r;

	/* kernel and kernelTCP are deprecated: skipped where the kernel dropped them. */
	static const struct { const char *file, *field; } kmem[] = {
		{ "memory.kmem.limit_in_bytes", CG_FIELD ".memory.kernel" },
		{ "memory.kmem.tcp.limit_in_bytes", CG_FIELD ".memory.kernelTCP" },
	};
	const __typeof__(m->kernel) *kv[] = { &m->kernel, &m->kernel_tcp };
	for (size_t i = 0; i < 2; i++) {
		if (!kv[i]->set || kv[i]->v == 0 || !cg_file_exists(dir, kmem[i].file))
			continue;
		r = cg_write_i64(dir, kmem[i].file, kv[i]->v, kmem[i].field, err);
		if (r == -EOPNOTSUPP || r == -ENOTSUP)
			continue;
		if (r < 0)
			return r;
	}
	if (m->swappiness.set && m->swappiness.v != UINT64_MAX) { /* -1 as uint64: unset (Docker) */
		if (m->swappiness.v > 100)
			return gr_error_set(err, EINVAL, CG_FIELD ".memory.swappiness: %" PRIu64 " is out of range (0-100)",
					    m->swappiness.v);
		if ((r = cg_write_u64(dir, "memory.swappiness", m->swappiness.v, CG_FIELD ".memory.swappiness", err)) < 0)
			return r;
	}
	if (m->disable_oom_killer.set &&
	    (r = cg_write(dir, "memory.oom_control", m->disable_oom_killer.v ? "1" : "0",
			  CG_FIELD ".memory.disableOOMKiller", err)) < 0)
		return r;
	if (m->use_hierarchy.set &&
	    (r = cg_write(dir, "memory.use_hierarchy", m->use_hierarchy.v ? "1" : "0",
			  CG_FIELD ".memory.useHierarchy", err)) < 0)
		return r;
	return 0;
}

static void cg_fmt_max(char *buf, size_t n, int64_t v)
{
	if (v < 0)
		snprintf(buf, n, "max");
	else
		snprintf(buf, n, "%" PRId64, v);
}

static int cg_memory_v2(struct cg_apply *a, const char *dir)
{
	const __typeof__(a->r->memory) *m = &a->r->memory;
	struct gr_error *err = a->err;
	int r;
	char buf[32];
	int64_t limit = m->limit.set ? m->limit.v : 0;    /* 0: unset (as runc) */
	int64_t swap = m->swap.set ? m->swap.v : 0;

	if (limit < -1)
		return gr_error_set(err, EINVAL, CG_FIELD ".memory.limit: invalid value %" PRId64, limit);
	if (swap < -1)
		return gr_error_set(err, EINVAL, CG_FIELD ".memory.swap: invalid value %" PRId64, swap);

	/* OCI's swap is memory+swap (the v1 meaning); memory.swap.max is swap alone. */
	bool write_swap = false;
	int64_t swap_max = 0;
	if (limit == -1 && swap == 0) {
		write_swap = true;
		swap_max = -1;
	} else if (swap == -1) {
		write_swap = true;
		swap_max = -1;
	} else if (swap > 0) {
		if (limit <= 0)
			return gr_error_set(err, EINVAL,
					    CG_FIELD ".memory.swap: %" PRId64 " needs a memory limit (memory.limit) as well", swap);
		if (swap < limit)
			return gr_error_set(err, EINVAL,
					    CG_FIELD ".memory.swap: %" PRId64 " is below memory.limit %" PRId64
					    " (swap is the limit of memory plus swap)", swap, limit);
		write_swap = true;
		swap_max = swap - limit;
	}

	if (limit != 0 && m->check_before_update.set && m->check_before_update.v && limit > 0) {
		gr_autofree char *cur = NULL;
		uint64_t usage;
		struct gr_error ignored = { 0 };
		if (cg_read(dir, "memory.current", &cur, &ignored) == 0 && gr_parse_u64(cur, &usage) == 0 &&
		    usage > (uint64_t)limit)
			return gr_error_set(err, EBUSY,
					    CG_FIELD ".memory.limit: %" PRId64 " is below the current usage of %" PRIu64
					    " bytes (checkBeforeUpdate)", limit, usage);
	}
	if (limit != 0) {
		cg_fmt_max(buf, sizeof(buf), limit);
		if ((r = cg_write(dir, "memory.max", buf, CG_FIELD ".memory.limit", err)) < 0)
			return r;
	}
	if (write_swap) {
		if (!cg_file_exists(dir, "memory.swap.max")) {
			if (swap_max != -1)
				return gr_error_set(err, EOPNOTSUPP,
						    CG_FIELD ".memory.swap: this host has no swap accounting (%s/memory.swap.max "
						    "is missing); leave memory.swap unset", dir);
		} else {
			cg_fmt_max(buf, sizeof(buf), swap_max);
			if ((r = cg_write(dir, "memory.swap.max", buf, CG_FIELD ".memory.swap", err)) < 0)
				return r;
		}
	}
	if (m->reservation.set && m->reservation.v != 0) {
		cg_fmt_max(buf, sizeof(buf), m->reservation.v);
		if ((r = cg_write(dir, "memory.low", buf, CG_FIELD ".memory.reservation", err)) < 0)
			return r;
	}
	/* swappiness, kernel, kernelTCP, disableOOMKiller and useHierarchy have no
	 * cgroup v2 counterpart; like runc and crun we ignore them there. */
	return 0;
}

static int cg_apply_memory(struct cg_apply *a)
{
	const __typeof__(a->r->memory) *m = &a->r->memory;
	const char *field = NULL;
	if (m->limit.set) field = CG_FIELD ".memory.limit";
	else if (m->reservation.set) field = CG_FIELD ".memory.reservation";
	else if (m->swap.set) field = CG_FIELD ".memory.swap";
	else if (m->kernel.set) field = CG_FIELD ".memory.kernel";
	else if (m->kernel_tcp.set) field = CG_FIELD ".memory.kernelTCP";
	else if (m->swappiness.set) field = CG_FIELD ".memory.swappiness";
	else if (m->disable_oom_killer.set) field = CG_FIELD ".memory.disableOOMKiller";
	else if (m->use_hierarchy.set) field = CG_FIELD ".memory.useHierarchy";
	if (!field)
		return 0;
	gr_autofree char *dir = NULL;
	bool v2;
	int r = cg_need(a, "memory", field, &dir, &v2);
	if (r < 0)
		return r;
	return v2 ? cg_memory_v2(a, dir) : cg_memory_v1(a, dir);
}

/* --------------------------------------------------------------------- cpu */

uint64_t cgroup_shares_to_weight(uint64_t shares)
{
	if (shares == 0)
		return 0;
	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	return 1 + ((shares - 2) * 9999) / 262142;
}

uint64_t cgroup_blkio_to_io_weight(uint64_t weight)
{
	if (weight == 0)
		return 0;
	if (weight < 10)
		weight = 10;
	if (weight > 1000)
		weight = 1000;
	return 1 + (weight - 10) * 9999 / 990;
}

static int cg_cpu_v1(struct cg_apply *a, const char *dir)
{
	const __typeof__(a->r->cpu) *c = &a->r->cpu;
	struct gr_error *err = a->err;
	int r;
	if (c->shares.set && c->shares.v != 0 &&
	    (r = cg_write_u64(dir, "cpu.shares", c->shares.v, CG_FIELD ".cpu.shares", err)) < 0)
		return r;
	bool period = c->period.set && c->period.v != 0;
	bool quota = c->quota.set && c->quota.v != 0;
	if (period) {
		/* A new period can be refused with the old quota (and vice versa). */
		r = cg_write_u64(dir, "cpu.cfs_period_us", c->period.v, CG_FIELD ".cpu.period", err);
		if (r == -EINVAL && quota) {
			if ((r = cg_write_i64(dir, "cpu.cfs_quota_us", c->quota.v, CG_FIELD ".cpu.quota", err)) < 0)
				return r;
			r = cg_write_u64(dir, "cpu.cfs_period_us", c->period.v, CG_FIELD ".cpu.period", err);
		}
		if (r < 0)
			return r;
	}
	if (quota && (r = cg_write_i64(dir, "cpu.cfs_quota_us", c->quota.v, CG_FIELD ".cpu.quota", err)) < 0)
		return r;
	if (c->burst.set && (r = cg_write_u64(dir, "cpu.cfs_burst_us", c->burst.v, CG_FIELD ".cpu.burst", err)) < 0)
		return r;
	if (c->realtime_period.set && c->realtime_period.v != 0 &&
	    (r = cg_write_u64(dir, "cpu.rt_period_us", c->realtime_period.v, CG_FIELD ".cpu.realtimePeriod", err)) < 0)
		return r;
	if (c->realtime_runtime.set && c->realtime_runtime.v != 0 &&
	    (r = cg_write_i64(dir, "cpu.rt_runtime_us", c->realtime_runtime.v, CG_FIELD ".cpu.realtimeRuntime",
			      err)) < 0)
		return r;
	if (c->idle.set && (r = cg_write_i64(dir, "cpu.idle", c->idle.v, CG_FIELD ".cpu.idle", err)) < 0)
		return r;
	return 0;
}

static int cg_cpu_v2(struct cg_apply *a, const char *dir)
{
	const __typeof__(a->r->cpu) *c = &a->r->cpu;
	struct gr_error *err = a->err;
	int r;
	if ((c->realtime_runtime.set && c->realtime_runtime.v != 0) ||
	    (c->realtime_period.set && c->realtime_period.v != 0))
		return gr_error_set(err, EOPNOTSUPP,
				    CG_FIELD ".cpu.%s: real-time CPU limits need cgroup v1 (cgroup v2 has no cpu.rt_runtime_us)",
				    c->realtime_runtime.set && c->realtime_runtime.v ? "realtimeRuntime" : "realtimePeriod");
	if (c->shares.set && c->shares.v != 0 &&
	    (r = cg_write_u64(dir, "cpu.weight", cgroup_shares_to_weight(c->shares.v), CG_FIELD ".cpu.shares", err)) < 0)
		return r;
	bool period = c->period.set && c->period.v != 0;
	bool quota = c->quota.set && c->quota.v != 0;
	if (period || quota) {
		char buf[64];
		uint64_t p = period ? c->period.v : 100000;
		if (quota && c->quota.v > 0)
			snprintf(buf, sizeof(buf), "%" PRId64 " %" PRIu64, c->quota.v, p);
		else
			snprintf(buf, sizeof(buf), "max %" PRIu64, p);
		if ((r = cg_write(dir, "cpu.max", buf, quota ? CG_FIELD ".cpu.quota" : CG_FIELD ".cpu.period", err)) < 0)
			return r;
	}
	if (c->burst.set && (r = cg_write_u64(dir, "cpu.max.burst", c->burst.v, CG_FIELD ".cpu.burst", err)) < 0)
		return r;
	if (c->idle.set && (r = cg_write_i64(dir, "cpu.idle", c->idle.v, CG_FIELD ".cpu.idle", err)) < 0)
		return r;
	return 0;
}

static int cg_apply_cpu(struct cg_apply *a)
{
	const __typeof__(a->r->cpu) *c = &a->r->cpu;
	const char *field = NULL;
	int r;
	if (c->shares.set && c->shares.v) field = CG_FIELD ".cpu.shares";
	else if (c->quota.set && c->quota.v) field = CG_FIELD ".cpu.quota";
	else if (c->period.set && c->period.v) field = CG_FIELD ".cpu.period";
	else if (c->burst.set) field = CG_FIELD ".cpu.burst";
	else if (c->realtime_runtime.set && c->realtime_runtime.v) field = CG_FIELD ".cpu.realtimeRuntime";
	else if (c->realtime_period.set && c->realtime_period.v) field = CG_FIELD ".cpu.realtimePeriod";
	else if (c->idle.set) field = CG_FIELD ".cpu.idle";
	if (field) {
		gr_autofree char *dir = NULL;
		bool v2;
		if ((r = cg_need(a, "cpu", field, &dir, &v2)) < 0)
			return r;
		if ((r = v2 ? cg_cpu_v2(a, dir) : cg_cpu_v1(a, dir)) < 0)
			return r;
	}
	if ((c->cpus && *c->cpus) || (c->mems && *c->mems)) {
		gr_autofree char *dir = NULL;
		bool v2;
		if ((r = cg_need(a, "cpuset", c->cpus && *c->cpus ? CG_FIELD ".cpu.cpus" : CG_FIELD ".cpu.mems",
				 &dir, &v2)) < 0)
			return r;
		if (c->cpus && *c->cpus && (r = cg_write(dir, "cpuset.cpus", c->cpus, CG_FIELD ".cpu.cpus", a->err)) < 0)
			return r;
		if (c->mems && *c->mems && (r = cg_write(dir, "cpuset.mems", c->mems, CG_FIELD ".cpu.mems", a->err)) < 0)
			return r;
	}
	return 0;
}

/* -------------------------------------------------------------------- pids */

static int cg_apply_pids(struct cg_apply *a)
{
	if (!a->r->pids.limit.set)
		return 0;
	const char *field = CG_FIELD ".pids.limit";
	gr_autofree char *dir = NULL;
	bool v2;
	int r = cg_need(a, "pids", field, &dir, &v2);
	if (r < 0)
		return r;
	char buf[32];
	int64_t v = a->r->pids.limit.v;
	cg_fmt_max(buf, sizeof(buf), v <= 0 ? -1 : v);
	return cg_write(dir, "pids.max", buf, field, a->err);
}

/* ------------------------------------------------------------------- blkio */

struct cg_throttle {
	const struct oci_throttle_device *v;
	size_t n;
	const char *field, *v1_file, *v2_key;
};

static int cg_blkio_v1(struct cg_apply *a, const char *dir, const struct cg_throttle *t)
{
	const __typeof__(a->r->blkio) *b = &a->r->blkio;
	struct gr_error *err = a->err;
	char field[128], buf[96];
	int r;
	/* blkio.weight is CFQ's; kernels with BFQ only have blkio.bfq.weight. */
	const char *weight_file = cg_file_exists(dir, "blkio.weight") || !cg_file_exists(dir, "blkio.bfq.weight")
		? "blkio.weight" : "blkio.bfq.weight";
	const char *wdev_file = cg_file_exists(dir, "blkio.weight_device") ||
		!cg_file_exists(dir, "blkio.bfq.weight_device") ? "blkio.weight_device" : "blkio.bfq.weight_device";

	if (b->weight.set && (r = cg_write_u64(dir, weight_file, b->weight.v, CG_FIELD ".blockIO.weight", err)) < 0)
		return r;
	if (b->leaf_weight.set &&
	    (r = cg_write_u64(dir, "blkio.leaf_weight", b->leaf_weight.v, CG_FIELD ".blockIO.leafWeight", err)) < 0)
		return r;
	for (size_t i = 0; i < b->n_weight_device; i++) {
		const struct oci_weight_device *d = &b->weight_device[i];
		snprintf(field, sizeof(field), CG_FIELD ".blockIO.weightDevice[%zu]", i);
		if (d->weight.set) {
			snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %u", d->major, d->minor, (unsigned)d->weight.v);
			if ((r = cg_write(dir, wdev_file, buf, field, err)) < 0)
				return r;
		}
		if (d->leaf_weight.set) {
			snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %u", d->major, d->minor,
				 (unsigned)d->leaf_weight.v);
			if ((r = cg_write(dir, "blkio.leaf_weight_device", buf, field, err)) < 0)
				return r;
		}
	}
	for (size_t k = 0; k < 4; k++)
		for (size_t i = 0; i < t[k].n; i++) {
			const struct oci_throttle_device *d = &t[k].v[i];
			snprintf(field, sizeof(field), CG_FIELD ".blockIO.%s[%zu]", t[k].field, i);
			snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %" PRIu64, d->major, d->minor, d->rate);
			if ((r = cg_write(dir, t[k].v1_file, buf, field, err)) < 0)
				return r;
		}
	return 0;
}

static int cg_blkio_v2(struct cg_apply *a, const char *dir, const struct cg_throttle *t)
{
	const __typeof__(a->r->blkio) *b = &a->r->blkio;
	struct gr_error *err = a->err;
	char field[128], buf[96];
	int r;
	/* io.weight (iocost) takes the converted weight; io.bfq.weight (BFQ) the
	 * blkio range 10-1000 as it is. */
	bool bfq = !cg_file_exists(dir, "io.weight") && cg_file_exists(dir, "io.bfq.weight");
	const char *wfile = bfq ? "io.bfq.weight" : "io.weight";

	if (b->weight.set) {
		snprintf(buf, sizeof(buf), "default %" PRIu64,
			 bfq ? (uint64_t)b->weight.v : cgroup_blkio_to_io_weight(b->weight.v));
		if ((r = cg_write(dir, wfile, buf, CG_FIELD ".blockIO.weight", err)) < 0)
			return r;
	}
	/* leafWeight and leaf weights per device have no v2 counterpart: ignored. */
	for (size_t i = 0; i < b->n_weight_device; i++) {
		const struct oci_weight_device *d = &b->weight_device[i];
		if (!d->weight.set)
			continue;
		snprintf(field, sizeof(field), CG_FIELD ".blockIO.weightDevice[%zu]", i);
		snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %" PRIu64, d->major, d->minor,
			 bfq ? (uint64_t)d->weight.v : cgroup_blkio_to_io_weight(d->weight.v));
		if ((r = cg_write(dir, wfile, buf, field, err)) < 0)
			return r;
	}
	for (size_t k = 0; k < 4; k++)
		for (size_t i = 0; i < t[k].n; i++) {
			const struct oci_throttle_device *d = &t[k].v[i];
			snprintf(field, sizeof(field), CG_FIELD ".blockIO.%s[%zu]", t[k].field, i);
			if (d->rate == 0) /* v1: 0 removes the limit */
				snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %s=max", d->major, d->minor, t[k].v2_key);
			else
				snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %s=%" PRIu64, d->major, d->minor,
					 t[k].v2_key, d->rate);
			if ((r = cg_write(dir, "io.max", buf, field, err)) < 0)
				return r;
		}
	return 0;
}

static int cg_apply_blkio(struct cg_apply *a)
{
	const __typeof__(a->r->blkio) *b = &a->r->blkio;
	const struct cg_throttle t[4] = {
		{ b->throttle_read_bps, b->n_throttle_read_bps, "throttleReadBpsDevice",
		  "blkio.throttle.read_bps_device", "rbps" },
		{ b->throttle_write_bps, b->n_throttle_write_bps, "throttleWriteBpsDevice",
		  "blkio.throttle.write_bps_device", "wbps" },
		{ b->throttle_read_iops, b->n_throttle_read_iops, "throttleReadIOPSDevice",
		  "blkio.throttle.read_iops_device", "riops" },
		{ b->throttle_write_iops, b->n_throttle_write_iops, "throttleWriteIOPSDevice",
		  "blkio.throttle.write_iops_device", "wiops" },
	};
	if (!b->weight.set && !b->leaf_weight.set && !b->n_weight_device && !t[0].n && !t[1].n && !t[2].n && !t[3].n)
		return 0;
	gr_autofree char *dir = NULL;
	bool v2;
	/* blockIO is best effort: skipped on hosts without blkio/io controller. */
	int r = cg_locate(a, a->l->mode == CGROUP_MODE_V2 ? "io" : "blkio", &dir, &v2);
	if (r == 0 && a->l->mode == CGROUP_MODE_HYBRID)
		r = cg_locate(a, "io", &dir, &v2);
	if (r <= 0)
		return r;
	return v2 ? cg_blkio_v2(a, dir, t) : cg_blkio_v1(a, dir, t);
}

/* ----------------------------------------------------------------- hugetlb */

static int cg_apply_hugetlb(struct cg_apply *a)
{
	for (size_t i = 0; i < a->r->n_hugepage_limits; i++) {
		const struct oci_hugepage_limit *h = &a->r->hugepage_limits[i];
		char field[96];
		snprintf(field, sizeof(field), CG_FIELD ".hugepageLimits[%zu]", i);
		const char *ps = h->page_size ? h->page_size : "";
		if (!*ps || ps[strspn(ps, "0123456789KMGBkmgb")] != '\0')
			return gr_error_set(a->err, EINVAL, "%s.pageSize: invalid page size \"%s\" (expected e.g. \"2MB\")",
					    field, ps);
		gr_autofree char *dir = NULL;
		bool v2;
		int r = cg_need(a, "hugetlb", field, &dir, &v2);
		if (r < 0)
			return r;
		char file[64];
		snprintf(file, sizeof(file), v2 ? "hugetlb.%s.max" : "hugetlb.%s.limit_in_bytes", ps);
		if (!cg_file_exists(dir, file))
			return gr_error_set(a->err, EOPNOTSUPP,
					    "%s.pageSize: this host has no %s huge pages (%s/%s is missing)", field, ps, dir, file);
		if ((r = cg_write_u64(dir, file, h->limit, field, a->err)) < 0)
			return r;
		if (v2) {
			/* Reservations too, where the kernel has them (as runc). */
			snprintf(file, sizeof(file), "hugetlb.%s.rsvd.max", ps);
			if (cg_file_exists(dir, file) && (r = cg_write_u64(dir, file, h->limit, field, a->err)) < 0)
				return r;
		}
	}
	return 0;
}

/* ----------------------------------------------------------------- devices */

/* v2, or hybrid without a v1 devices hierarchy: an eBPF device filter on the
 * container's cgroup in the unified hierarchy (replacing the previous one). */
static int cg_devices_bpf(struct cg_apply *a)
{
	gr_autofree struct bpf_insn *prog = NULL;
	size_t len = 0;
	int r = devices_bpf_build(a->r->devices, a->r->n_devices, &prog, &len, a->err);
	if (r < 0)
		return r;
	gr_autofree char *dir = cg_dir(a->l->unified_mount, a->path);
	if (!dir)
		return gr_error_set(a->err, ENOMEM, "out of memory");
	gr_autoclose int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(a->err, errno, CG_FIELD ".devices: cannot open %s", dir);
	/* The layout says this is cgroup2 (mountinfo); only the fake trees of
	 * the unit tests are not, and a program cannot be attached there. */
	struct statfs sfs;
	if (fstatfs(fd, &sfs) == 0 && sfs.f_type != CGROUP2_SUPER_MAGIC)
		return 0;
	return devices_bpf_attach(fd, prog, len, a->err);
}

static int cg_apply_devices(struct cg_apply *a)
{
	if (a->r->n_devices == 0)
		return 0;
	const struct cgroup_v1_hierarchy *h = a->l->mode == CGROUP_MODE_V2 ? NULL : cg_v1_find(a->l, "devices");
	if (!h) {
		if (a->l->mode == CGROUP_MODE_V1)
			return gr_error_set(a->err, EOPNOTSUPP,
					    CG_FIELD ".devices: this host has no devices cgroup controller");
		return a->l->unified_mount ? cg_devices_bpf(a) : 0;
	}
	gr_autofree char *dir = cg_dir(h->mount, a->path);
	if (!dir)
		return gr_error_set(a->err, ENOMEM, "out of memory");
	/* One descriptor per file for all the rules: each write is one rule. */
	gr_autoclose int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	gr_autoclose int allow_fd = -1, deny_fd = -1;
	if (dfd < 0)
		return gr_error_sys(a->err, errno, CG_FIELD ".devices: cannot open %s", dir);
	for (size_t i = 0; i < a->r->n_devices; i++) {
		const struct oci_device_rule *d = &a->r->devices[i];
		char field[96], maj[24], min[24], buf[96];
		snprintf(field, sizeof(field), CG_FIELD ".devices[%zu]", i);
		char type = d->type ? d->type : 'a';
		const char *access = d->access && *d->access ? d->access : "rwm";
		if (type != 'a' && type != 'b' && type != 'c')
			return gr_error_set(a->err, EINVAL, "%s.type: invalid device type '%c' (expected a, b or c)", field,
					    type);
		if (access[strspn(access, "rwm")] != '\0')
			return gr_error_set(a->err, EINVAL, "%s.access: invalid access \"%s\" (expected a subset of \"rwm\")",
					    field, access);
		if (d->major < 0)
			snprintf(maj, sizeof(maj), "*");
		else
			snprintf(maj, sizeof(maj), "%" PRId64, d->major);
		if (d->minor < 0)
			snprintf(min, sizeof(min), "*");
		else
			snprintf(min, sizeof(min), "%" PRId64, d->minor);
		int len = snprintf(buf, sizeof(buf), "%c %s:%s %s", type, maj, min, access);
		const char *name = d->allow ? "devices.allow" : "devices.deny";
		int *fd = d->allow ? &allow_fd : &deny_fd;
		if (*fd < 0 && (*fd = openat(dfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0)
			return gr_error_sys(a->err, errno, "%s: cannot open %s/%s", field, dir, name);
		if (write(*fd, buf, (size_t)len) != len)
			return gr_error_sys(a->err, errno, "%s: cannot write \"%s\" to %s/%s", field, buf, dir, name);
	}
	return 0;
}

/* ----------------------------------------------------------------- network */

static int cg_apply_network(struct cg_apply *a)
{
	const __typeof__(a->r->network) *n = &a->r->network;
	gr_autofree char *dir = NULL;
	bool v2;
	int r;
	if (n->class_id.set) {
		const char *field = CG_FIELD ".network.classID";
		if ((r = cg_need(a, "net_cls", field, &dir, &v2)) < 0)
			return r;
		if ((r = cg_write_u64(dir, "net_cls.classid", n->class_id.v, field, a->err)) < 0)
			return r;
		free(gr_steal_ptr(dir));
	}
	for (size_t i = 0; i < n->n_priorities; i++) {
		char field[96], buf[160];
		snprintf(field, sizeof(field), CG_FIELD ".network.priorities[%zu]", i);
		if (!dir && (r = cg_need(a, "net_prio", field, &dir, &v2)) < 0)
			return r;
		snprintf(buf, sizeof(buf), "%s %s", n->priorities[i].key, n->priorities[i].value);
		if ((r = cg_write(dir, "net_prio.ifpriomap", buf, field, a->err)) < 0)
			return r;
	}
	return 0;
}

/* -------------------------------------------------------------------- rdma */

static int cg_apply_rdma(struct cg_apply *a)
{
	gr_autofree char *dir = NULL;
	bool v2;
	for (size_t i = 0; i < a->r->n_rdma; i++) {
		char field[160], buf[256];
		snprintf(field, sizeof(field), CG_FIELD ".rdma.%s", a->r->rdma[i].key);
		int r;
		if (!dir && (r = cg_need(a, "rdma", field, &dir, &v2)) < 0)
			return r;
		snprintf(buf, sizeof(buf), "%s %s", a->r->rdma[i].key, a->r->rdma[i].value ? a->r->rdma[i].value : "");
		if ((r = cg_write(dir, "rdma.max", buf, field, a->err)) < 0)
			return r;
	}
	return 0;
}

/* ----------------------------------------------------------------- unified */

static int cg_apply_unified(struct cg_apply *a)
{
	if (a->r->n_unified == 0)
		return 0;
	if (!a->l->unified_mount)
		return gr_error_set(a->err, EOPNOTSUPP,
				    CG_FIELD ".unified: requires cgroup v2 (this host has cgroup v1)");
	gr_autofree char *dir = cg_dir(a->l->unified_mount, a->path);
	if (!dir)
		return gr_error_set(a->err, ENOMEM, "out of memory");
	for (size_t i = 0; i < a->r->n_unified; i++) {
		const struct oci_kv *kv = &a->r->unified[i];
		const char *key = kv->key ? kv->key : "";
		if (!*key || strchr(key, '/') || strstr(key, "..") || strcmp(key, ".") == 0)
			return gr_error_set(a->err, EINVAL,
					    CG_FIELD ".unified: invalid key \"%s\": it must name a file in the cgroup directory "
					    "(no '/' or \"..\")", key);
		char field[160];
		snprintf(field, sizeof(field), CG_FIELD ".unified.%s", key);
		int r = cg_write(dir, key, kv->value ? kv->value : "", field, a->err);
		if (r < 0)
			return r;
	}
	return 0;
}

int cgroup_apply(const struct cgroup_layout *l, const char *path, const struct oci_resources *r,
		 struct gr_error *err)
{
	int q = cg_check_path(path, err);
	if (q < 0)
		return q;
	if (!r)
		return 0;
	gr_autofree char *ctrls = cg_unified_controllers(l, path);
	if (!ctrls)
		return gr_error_set(err, ENOMEM, "out of memory");
	struct cg_apply a = { .l = l, .path = path, .r = r, .unified_ctrls = ctrls, .err = err };
	static int (*const steps[])(struct cg_apply *) = {
		cg_apply_devices, cg_apply_memory, cg_apply_cpu, cg_apply_pids, cg_apply_blkio,
		cg_apply_hugetlb, cg_apply_network, cg_apply_rdma, cg_apply_unified,
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if ((q = steps[i](&a)) < 0)
			return q;
	return 0;
}

/* ------------------------------------------------------------------ create */

/* v1 cpuset: a new cgroup starts with empty cpuset.cpus/mems and refuses
 * tasks; copy them down from the nearest ancestor that has them. */
static int cg_cpuset_fill(const char *mount, const char *path, struct gr_error *err)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	for (size_t k = 0; k < 2; k++) {
		gr_autofree char *val = NULL;
		struct gr_error ignored = { 0 };
		if (cg_read(mount, files[k], &val, &ignored) < 0) {
			free(val);
			val = strdup("");
			if (!val)
				return gr_error_set(err, ENOMEM, "out of memory");
		}
		gr_autofree char *dir = strdup(mount);
		if (!dir)
			return gr_error_set(err, ENOMEM, "out of memory");
		for (const char *p = path; *p;) {
			while (*p == '/')
				p++;
			size_t n = strcspn(p, "/");
			if (n == 0)
				break;
			char *nd = NULL;
			if (asprintf(&nd, "%s/%.*s", dir, (int)n, p) < 0)
				return gr_error_set(err, ENOMEM, "out of memory");
			free(dir);
			dir = nd;
			p += n;
			gr_autofree char *cur = NULL;
			if (cg_read(dir, files[k], &cur, &ignored) == 0 && *cur) {
				free(val);
				val = gr_steal_ptr(cur);
				continue;
			}
			if (!*val)
				continue; /* nothing to copy (yet) */
			int r = cg_write(dir, files[k], val, NULL, err);
			if (r < 0)
				return gr_error_prefix(err, "cannot initialise cpuset of cgroup %s", path);
		}
	}
	return 0;
}

/* v2: enable the controllers we use in cgroup.subtree_control of every
 * ancestor, from the root down to the parent. Failures are not fatal here:
 * cgroup_apply reports a controller that is not available, naming the field. */
static void cg_enable_controllers(const char *mount, const char *path)
{
	gr_autofree char *dir = strdup(mount);
	if (!dir)
		return;
	const char *p = path;
	for (;;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0)
			break; /* dir is the cgroup itself: leave its subtree_control alone */
		gr_autofree char *avail = NULL;
		struct gr_error ignored = { 0 };
		if (cg_read(dir, "cgroup.controllers", &avail, &ignored) == 0) {
			char want[256] = "";
			size_t w = 0;
			for (const char *const *c = v2_wanted_controllers; *c; c++)
				if (cg_word_in(avail, *c))
					w += (size_t)snprintf(want + w, sizeof(want) - w, "%s+%s", w ? " " : "", *c);
			if (w && cg_write(dir, "cgroup.subtree_control", want, NULL, &ignored) < 0) {
				/* All at once failed (one controller refused): one by one. */
				for (const char *const *c = v2_wanted_controllers; *c; c++) {
					char one[32];
					snprintf(one, sizeof(one), "+%s", *c);
					if (cg_word_in(avail, *c))
						cg_write(dir, "cgroup.subtree_control", one, NULL, &ignored);
				}
			}
		}
		char *nd = NULL;
		if (asprintf(&nd, "%s/%.*s", dir, (int)n, p) < 0)
			return;
		free(dir);
		dir = nd;
		p += n;
	}
}

/* mkdir -p, again when an empty ancestor was removed between two of its
 * steps (an owner of a shared parent cgroup, such as gureumd's container
 * driver, removes it once empty: rmdir succeeds in the window between the
 * parent's mkdir and the child's). */
static int cg_mkdir_p(const char *dir, struct gr_error *err)
{
	int r = 0;
	for (int attempt = 0; attempt < 5; attempt++) {
		struct gr_error e = { 0 };
		if ((r = gr_mkdir_p(dir, 0755, &e)) != -ENOENT) {
			if (r < 0 && err)
				*err = e;
			return r;
		}
		if (err)
			*err = e;
	}
	return r;
}

int cgroup_create(const struct cgroup_layout *l, const char *path, struct gr_error *err)
{
	int r = cg_check_path(path, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < l->n_v1; i++) {
		gr_autofree char *dir = cg_dir(l->v1[i].mount, path);
		if (!dir)
			return gr_error_set(err, ENOMEM, "out of memory");
		if ((r = cg_mkdir_p(dir, err)) < 0)
			return gr_error_prefix(err, "cannot create cgroup %s", path);
		if (cg_strv_has(l->v1[i].controllers, "cpuset") &&
		    (r = cg_cpuset_fill(l->v1[i].mount, path, err)) < 0)
			return r;
	}
	if (l->unified_mount) {
		gr_autofree char *dir = cg_dir(l->unified_mount, path);
		if (!dir)
			return gr_error_set(err, ENOMEM, "out of memory");
		if ((r = cg_mkdir_p(dir, err)) < 0)
			return gr_error_prefix(err, "cannot create cgroup %s", path);
		cg_enable_controllers(l->unified_mount, path);
	}
	return 0;
}

/* ------------------------------------------------------------------- enter */

int cgroup_enter(const struct cgroup_layout *l, const char *path, pid_t pid, struct gr_error *err)
{
	int r = cg_check_path(path, err);
	if (r < 0)
		return r;
	char buf[24];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	for (size_t i = 0; i <= l->n_v1; i++) {
		const char *mount = i < l->n_v1 ? l->v1[i].mount : l->unified_mount;
		if (!mount)
			continue;
		gr_autofree char *dir = cg_dir(mount, path);
		if (!dir)
			return gr_error_set(err, ENOMEM, "out of memory");
		if ((r = cg_write(dir, "cgroup.procs", buf, NULL, err)) < 0)
			return gr_error_prefix(err, "cannot move process %d into cgroup %s", (int)pid, path);
	}
	return 0;
}

int cgroup_enter_self_v1(const struct cgroup_layout *l, const char *path, struct gr_error *err)
{
	int r = cg_check_path(path, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < l->n_v1; i++) {
		gr_autofree char *dir = cg_dir(l->v1[i].mount, path);
		if (!dir)
			return gr_error_set(err, ENOMEM, "out of memory");
		if ((r = cg_write(dir, "tasks", "0", NULL, err)) < 0)
			return gr_error_prefix(err, "cannot move the container's init into cgroup %s", path);
	}
	return 0;
}

int cgroup_enter_unified(const struct cgroup_layout *l, const char *path, pid_t pid, struct gr_error *err)
{
	int r = cg_check_path(path, err);
	if (r < 0 || !l->unified_mount)
		return r;
	char buf[24];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	gr_autofree char *dir = cg_dir(l->unified_mount, path);
	if (!dir)
		return gr_error_set(err, ENOMEM, "out of memory");
	if ((r = cg_write(dir, "cgroup.procs", buf, NULL, err)) < 0)
		return gr_error_prefix(err, "cannot move process %d into cgroup %s", (int)pid, path);
	return 0;
}

bool cgroup_unified_needed(const struct cgroup_layout *l, const struct oci_resources *r)
{
	if (!l->unified_mount)
		return false;
	if (l->mode == CGROUP_MODE_V2)
		return true;
	if (!r)
		return false;
	return r->n_unified > 0 || (r->n_hugepage_limits > 0 && !cg_v1_find(l, "hugetlb"));
}

/* ------------------------------------------------------------------ freeze */

/* The directory holding the freezer for path: v1 freezer hierarchy, else the
 * unified one (cgroup.freeze). NULL when the host has neither. */
static char *cg_freezer_dir(const struct cgroup_layout *l, const char *path, bool *v2)
{
	const struct cgroup_v1_hierarchy *h = l->mode == CGROUP_MODE_V2 ? NULL : cg_v1_find(l, "freezer");
	if (h) {
		*v2 = false;
		return cg_dir(h->mount, path);
	}
	if (l->unified_mount) {
		*v2 = true;
		return cg_dir(l->unified_mount, path);
	}
	return NULL;
}

/* v2: the "frozen" key of cgroup.events. */
static int cg_v2_frozen(const char *dir, bool *out, struct gr_error *err)
{
	gr_autofree char *ev = NULL;
	int r = cg_read(dir, "cgroup.events", &ev, err);
	if (r < 0)
		return r;
	for (char *line = ev; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(line, "frozen ", 7) == 0) {
			*out = strcmp(line + 7, "1") == 0;
			return 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	*out = false;
	return 0;
}

int cgroup_is_frozen(const struct cgroup_layout *l, const char *path, bool *out, struct gr_error *err)
{
	*out = false;
	int r = cg_check_path(path, err);
	if (r < 0)
		return r;
	bool v2 = false;
	gr_autofree char *dir = cg_freezer_dir(l, path, &v2);
	if (!dir)
		return gr_error_set(err, EOPNOTSUPP, "this host has no cgroup freezer");
	if (v2)
		return cg_v2_frozen(dir, out, err);
	gr_autofree char *state = NULL;
	if ((r = cg_read(dir, "freezer.state", &state, err)) < 0)
		return r;
	*out = strcmp(state, "FROZEN") == 0;
	return 0;
}

int cgroup_freeze(const struct cgroup_layout *l, const char *path, bool frozen, struct gr_error *err)
{
	int r = cg_check_path(path, err);
	if (r < 0)
		return r;
	bool v2 = false;
	gr_autofree char *dir = cg_freezer_dir(l, path, &v2);
	if (!dir)
		return gr_error_set(err, EOPNOTSUPP, "this host has no cgroup freezer");
	const char *file = v2 ? "cgroup.freeze" : "freezer.state";
	const char *value = v2 ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
	if ((r = cg_write(dir, file, value, NULL, err)) < 0)
		return r;
	int64_t deadline = cg_now_ms() + CG_FREEZE_TIMEOUT_MS;
	for (int iter = 1;; iter++) {
		gr_autofree char *state = NULL;
		bool now = false;
		if (v2) {
			if ((r = cg_v2_frozen(dir, &now, err)) < 0)
				return r;
			if (now == frozen)
				return 0;
		} else {
			if ((r = cg_read(dir, "freezer.state", &state, err)) < 0)
				return r;
			if (strcmp(state, value) == 0)
				return 0;
		}
		if (cg_now_ms() >= deadline) {
			struct gr_error ignored = { 0 };
			if (frozen) /* do not leave it half frozen */
				cg_write(dir, file, v2 ? "0" : "THAWED", NULL, &ignored);
			return gr_error_set(err, ETIMEDOUT, "timed out after %d ms waiting for cgroup %s to %s (%s/%s: %s)",
					    CG_FREEZE_TIMEOUT_MS, path, frozen ? "freeze" : "thaw", dir,
					    v2 ? "cgroup.events" : "freezer.state",
					    v2 ? (now ? "frozen 1" : "frozen 0") : state);
		}
		cg_sleep_ms(CG_POLL_MS);
		/* v1: a task can miss the first request (e.g. in vfork); ask again. */
		if (!v2 && iter % 10 == 0 && (r = cg_write(dir, file, value, NULL, err)) < 0)
			return r;
	}
}

/* -------------------------------------------------------------------- pids */

struct cg_pidv {
	pid_t *v;
	size_t n, cap;
};

static int cg_pidv_add(struct cg_pidv *p, pid_t pid)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		pid_t *nv = realloc(p->v, cap * sizeof(pid_t));
		if (!nv)
			return -ENOMEM;
		p->v = nv;
		p->cap = cap;
	}
	p->v[p->n++] = pid;
	return 0;
}

/* Calls fn(child, data, depth + 1) for every child cgroup (subdirectory) of
 * dir; stops at the first error. A dir that is gone has no children. */
static int cg_for_each_child(const char *dir, int (*fn)(const char *, void *, int, struct gr_error *),
			     void *data, int depth, struct gr_error *err)
{
	gr_autoclosedir DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : gr_error_sys(err, errno, "cannot open %s", dir);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
			continue;
		gr_autofree char *sub = cg_file(dir, e->d_name);
		if (!sub)
			return gr_error_set(err, ENOMEM, "out of memory");
		if (!cg_is_dir(sub))
			continue;
		int r = fn(sub, data, depth + 1, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int collect_child(const char *sub, void *data, int depth, struct gr_error *err);

static int cg_collect_pids(const char *dir, struct cg_pidv *out, int depth, struct gr_error *err)
{
	if (depth > CG_MAX_DEPTH)
		return gr_error_set(err, ELOOP, "%s: cgroups nested too deeply", dir);
	gr_autofree char *procs = NULL;
	int r = cg_read(dir, "cgroup.procs", &procs, err);
	if (r < 0)
		return r;
	for (char *s = procs; *s;) {
		char *e = s + strcspn(s, "\n");
		char c = *e;
		*e = '\0';
		int64_t v;
		if (*s && gr_parse_i64(s, &v) == 0 && v > 0 && cg_pidv_add(out, (pid_t)v) < 0)
			return gr_error_set(err, ENOMEM, "out of memory");
		if (!c)
			break;
		s = e + 1;
	}
	return cg_for_each_child(dir, collect_child, out, depth, err);
}

static int collect_child(const char *sub, void *data, int depth, struct gr_error *err)
{
	int r = cg_collect_pids(sub, data, depth, err);
	return r == -ENOENT ? 0 : r; /* removed meanwhile */
}

/* Where processes are listed: v2 unified; v1 and hybrid: pids, memory or
 * the first hierarchy. */
static char *cg_procs_dir(const struct cgroup_layout *l, const char *path)
{
	if (l->mode == CGROUP_MODE_V2 || l->n_v1 == 0)
		return l->unified_mount ? cg_dir(l->unified_mount, path) : NULL;
	const struct cgroup_v1_hierarchy *h = cg_v1_find(l, "pids");
	if (!h)
		h = cg_v1_find(l, "memory");
	if (!h)
		h = &l->v1[0];
	return cg_dir(h->mount, path);
}

int cgroup_pids(const struct cgroup_layout *l, const char *path, pid_t **pids, size_t *n,
		struct gr_error *err)
{
	*pids = NULL;
	*n = 0;
	int r = cg_check_path(path, err);
	if (r < 0)
		return r;
	gr_autofree char *dir = cg_procs_dir(l, path);
	if (!dir)
		return gr_error_set(err, ENOMEM, "out of memory");
	struct cg_pidv v = { 0 };
	r = cg_collect_pids(dir, &v, 0, err);
	if (r < 0) {
		free(v.v);
		return r;
	}
	if (!v.v && !(v.v = calloc(1, sizeof(pid_t))))
		return gr_error_set(err, ENOMEM, "out of memory");
	*pids = v.v;
	*n = v.n;
	return 0;
}

/* -------------------------------------------------------------------- kill */

static bool cg_pid_in(const pid_t *v, size_t n, pid_t p)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == p)
			return true;
	return false;
}

int cgroup_kill_all(const struct cgroup_layout *l, const char *path, int sig, struct gr_error *err)
{
	int r = cg_check_path(path, err);
	if (r < 0)
		return r;
	struct gr_error ignored = { 0 };

	/* cgroup v2 (5.14+) kills the whole subtree atomically. */
	if (sig == SIGKILL && l->mode == CGROUP_MODE_V2 && l->unified_mount) {
		gr_autofree char *dir = cg_dir(l->unified_mount, path);
		if (dir && cg_file_exists(dir, "cgroup.kill") && cg_write(dir, "cgroup.kill", "1", NULL, &ignored) == 0)
			return 0;
	}

	/* Nothing to do for an empty cgroup (the common case on delete): skip
	 * the freeze and thaw round trips. */
	{
		gr_autofree pid_t *pids = NULL;
		size_t n = 0;
		if (cgroup_pids(l, path, &pids, &n, &ignored) == 0 && n == 0)
			return 0;
	}

	/* Freeze so that nothing forks behind our back; without a freezer, repeat
	 * until a round finds no process we have not signalled yet. */
	bool frozen = false;
	{
		bool v2;
		gr_autofree char *fdir = cg_freezer_dir(l, path, &v2);
		if (fdir && cg_is_dir(fdir))
			frozen = cgroup_freeze(l, path, true, &ignored) == 0;
	}
	gr_autofree pid_t *seen = NULL;
	size_t n_seen = 0, cap_seen = 0;
	int result = 0;
	for (int round = 0; round < 10; round++) {
		gr_autofree pid_t *pids = NULL;
		size_t n = 0;
		r = cgroup_pids(l, path, &pids, &n, err);
		if (r < 0) {
			result = r;
			break;
		}
		size_t fresh = 0;
		for (size_t i = 0; i < n; i++) {
			if (cg_pid_in(seen, n_seen, pids[i]))
				continue;
			fresh++;
			if (kill(pids[i], sig) < 0 && errno != ESRCH && result == 0)
				result = gr_error_sys(err, errno, "cannot send signal %d to process %d of cgroup %s", sig,
						      (int)pids[i], path);
			if (n_seen == cap_seen) {
				size_t cap = cap_seen ? cap_seen * 2 : 32;
				pid_t *nv = realloc(seen, cap * sizeof(pid_t));
				if (!nv) {
					result = gr_error_set(err, ENOMEM, "out of memory");
					break;
				}
				seen = nv;
				cap_seen = cap;
			}
			seen[n_seen++] = pids[i];
		}
		if (fresh == 0 || frozen || result < 0)
			break;
		cg_sleep_ms(CG_POLL_MS);
	}
	if (frozen) {
		r = cgroup_freeze(l, path, false, &ignored);
		if (r < 0 && result == 0) {
			if (err)
				*err = ignored;
			result = r;
		}
	}
	return result;
}

/* ----------------------------------------------------------------- destroy */

/* rmdir children first, then dir itself; absent is fine, EBUSY is retried
 * for a while (processes still exiting). */
static int cg_rmdir_tree(const char *dir, int depth, struct gr_error *err);

static int rmdir_child(const char *sub, void *data, int depth, struct gr_error *err)
{
	(void)data;
	return cg_rmdir_tree(sub, depth, err);
}

static int cg_rmdir_tree(const char *dir, int depth, struct gr_error *err)
{
	if (depth > CG_MAX_DEPTH)
		return gr_error_set(err, ELOOP, "%s: cgroups nested too deeply", dir);
	int r = cg_for_each_child(dir, rmdir_child, NULL, depth, err);
	if (r < 0)
		return r;
	for (int i = 0;; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || i >= CG_RMDIR_RETRIES)
			return gr_error_sys(err, errno, "cannot remove cgroup %s", dir);
		cg_sleep_ms(10);
	}
}

int cgroup_destroy(const struct cgroup_layout *l, const char *path, struct gr_error *err)
{
	int r = cg_check_path(path, err);
	if (r < 0)
		return r;
	int result = 0;
	for (size_t i = 0; i <= l->n_v1; i++) {
		const char *mount = i < l->n_v1 ? l->v1[i].mount : l->unified_mount;
		if (!mount)
			continue;
		gr_autofree char *dir = cg_dir(mount, path);
		if (!dir)
			return gr_error_set(err, ENOMEM, "out of memory");
		struct gr_error e = { 0 };
		r = cg_rmdir_tree(dir, 0, &e);
		if (r < 0 && result == 0) { /* keep going: remove what we can */
			if (err)
				*err = e;
			result = r;
		}
	}
	return result;
}

bool cgroup_exists(const struct cgroup_layout *l, const char *path)
{
	if (cg_check_path(path, NULL) < 0)
		return false;
	for (size_t i = 0; i <= l->n_v1; i++) {
		const char *mount = i < l->n_v1 ? l->v1[i].mount : l->unified_mount;
		if (!mount)
			continue;
		gr_autofree char *dir = cg_dir(mount, path);
		if (dir && cg_is_dir(dir))
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------- stats */

static int cg_read_u64_at(const char *dir, const char *name, uint64_t *out)
{
	gr_autofree char *s = NULL;
	if (cg_read(dir, name, &s, NULL) < 0)
		return -ENOENT;
	return gr_parse_u64(s, out);
}

/* "usage_usec 123" from cpu.stat (v2). */
static int cg_cpu_stat_usec(const char *dir, uint64_t *out)
{
	gr_autofree char *s = NULL;
	if (cg_read(dir, "cpu.stat", &s, NULL) < 0)
		return -ENOENT;
	for (char *line = s; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(line, "usage_usec ", 11) == 0)
			return gr_parse_u64(line + 11, out);
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

int cgroup_stats(const struct cgroup_layout *l, const char *path, struct cgroup_stats *out, struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	int r = cg_check_path(path, err);
	if (r < 0)
		return r;
	gr_autofree char *v2 = l->unified_mount ? cg_dir(l->unified_mount, path) : NULL;
	const struct cgroup_v1_hierarchy *h;
	uint64_t v;
	if ((h = cg_v1_find(l, "cpuacct"))) {
		gr_autofree char *d = cg_dir(h->mount, path);
		if (d && cg_read_u64_at(d, "cpuacct.usage", &v) == 0) {
			out->cpu_ns = v;
			out->has_cpu = true;
		}
	}
	if (!out->has_cpu && v2 && cg_cpu_stat_usec(v2, &v) == 0) {
		out->cpu_ns = v * 1000;
		out->has_cpu = true;
	}
	if ((h = cg_v1_find(l, "memory"))) {
		gr_autofree char *d = cg_dir(h->mount, path);
		if (d && cg_read_u64_at(d, "memory.usage_in_bytes", &v) == 0) {
			out->memory_bytes = v;
			out->has_memory = true;
		}
	}
	if (!out->has_memory && v2 && cg_read_u64_at(v2, "memory.current", &v) == 0) {
		out->memory_bytes = v;
		out->has_memory = true;
	}
	if ((h = cg_v1_find(l, "pids"))) {
		gr_autofree char *d = cg_dir(h->mount, path);
		if (d && cg_read_u64_at(d, "pids.current", &v) == 0) {
			out->pids = v;
			out->has_pids = true;
		}
	}
	if (!out->has_pids && v2 && cg_read_u64_at(v2, "pids.current", &v) == 0) {
		out->pids = v;
		out->has_pids = true;
	}
	if (!out->has_cpu && !out->has_memory && !out->has_pids && !cgroup_exists(l, path))
		return gr_error_set(err, ENOENT, "cgroup %s does not exist", path);
	return 0;
}
