/* See builder.h. */
#include "daemon/image/builder.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/image/layer.h"
#include "daemon/store/images.h"

extern char **environ;

bool image_builder_known(const char *name)
{
	return name && (strcmp(name, IMAGE_BUSYBOX_ALIAS) == 0 || strcmp(name, IMAGE_DEBIAN_ALIAS) == 0);
}

/* --- common: the tree as one layer tar, then imported ---------------------------------- */

static struct timespec fixed_time;

static int set_time(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	struct timespec ts[2] = { fixed_time, fixed_time };
	utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
	return 0;
}

static int pack_and_import(struct image_store *is, const char *staging, const char *rootfs, time_t mtime,
			   const char *alias, const char *source, const char *description, json_t *config,
			   const struct image_progress *pr, struct image_import_result *res, struct gr_error *err)
{
	/* nftw's callback has no context: one build at a time sets the time. */
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&mu);
	fixed_time = (struct timespec){ .tv_sec = mtime };
	nftw(rootfs, set_time, 64, FTW_PHYS | FTW_DEPTH | FTW_MOUNT);
	pthread_mutex_unlock(&mu);
	char tar[PATH_MAX];
	snprintf(tar, sizeof(tar), "%s/layer.tar", staging);
	gr_autoclose int fd = open(tar, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot create %s", tar);
	if (pr && pr->report)
		pr->report(pr->ctx, "packing", 0, 0, NULL);
	int rc = layer_write_tar(rootfs, fd, NULL, NULL, err);
	if (rc < 0)
		return rc;
	/* The rootfs is no longer needed: its space back before the import. */
	(void)gr_rm_rf(rootfs, NULL);
	/* The alias may name an older build: moved after the import. */
	rc = image_import_rootfs(is, tar, source, description, config, NULL, pr, res, err);
	if (rc < 0)
		return rc;
	return image_store_alias_set(is, alias, res->fingerprint, NULL, err);
}

/* --- busybox ------------------------------------------------------------------------------ */

static const char *busybox_binary(void)
{
	const char *e = getenv("GUREUM_BUSYBOX");
	return e && e[0] ? e : IMAGE_BUSYBOX_BINARY;
}

/* A static ELF64 has no PT_INTERP program header. */
static int check_static_elf(int fd, const char *path, struct gr_error *err)
{
	Elf64_Ehdr eh;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64)
		return gr_error_set(err, ENOEXEC, "%s is not a 64-bit ELF binary: install Debian's busybox-static "
				    "(apt-get install busybox-static)", path);
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) != (ssize_t)sizeof(ph))
			return gr_error_set(err, ENOEXEC, "%s: truncated ELF program headers", path);
		if (ph.p_type == PT_INTERP)
			return gr_error_set(err, ENOEXEC, "%s is dynamically linked; the image needs a static busybox: "
					    "install busybox-static (apt-get install busybox-static)", path);
	}
	return 0;
}

static int copy_file(int src, const char *dst, mode_t mode, struct gr_error *err)
{
	gr_autoclose int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (out < 0)
		return gr_error_sys(err, errno, "cannot create %s", dst);
	char buf[65536];
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(src, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gr_error_sys(err, errno, "cannot read the busybox binary");
		if (n == 0)
			break;
		int w = gr_write_all(out, buf, (size_t)n);
		if (w < 0)
			return gr_error_sys(err, -w, "cannot write %s", dst);
		off += n;
	}
	return fchmod(out, mode) < 0 ? gr_error_sys(err, errno, "chmod %s", dst) : 0;
}

/* Runs argv (no shell) with stdout to a pipe; each line goes to on_line;
 * returns the exit status (0) or -errno. stderr joins stdout. */
static int run_lines(char *const argv[], char *const envp[], int (*on_line)(void *ctx, char *line), void *ctx,
		     int *status, struct gr_error *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setpgroup(&at, 0);
	pid_t pid;
	int r = posix_spawnp(&pid, argv[0], &fa, &at, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[1]);
	if (r != 0) {
		close(p[0]);
		return gr_error_sys(err, r, "cannot run %s", argv[0]);
	}
	gr_autofclose FILE *f = fdopen(p[0], "re");
	if (!f) {
		close(p[0]);
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return gr_error_sys(err, errno, "fdopen");
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool stop = false;
	while ((n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!stop && on_line && on_line(ctx, line)) {
			stop = true; /* cancelled: the whole process group goes */
			kill(-pid, SIGTERM);
		}
	}
	free(line);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*status = st;
	if (stop)
		return gr_error_set(err, ECANCELED, "cancelled");
	return 0;
}

struct collect {
	char *buf;
	size_t len, cap;
};

static int collect_line(void *ctx, char *line)
{
	struct collect *c = ctx;
	size_t n = strlen(line);
	if (c->len + n + 2 > c->cap) {
		size_t nc = (c->cap ? c->cap * 2 : 65536) + n;
		char *nb = realloc(c->buf, nc);
		if (!nb)
			return 0;
		c->buf = nb;
		c->cap = nc;
	}
	memcpy(c->buf + c->len, line, n);
	c->len += n;
	c->buf[c->len++] = '\n';
	c->buf[c->len] = '\0';
	return 0;
}

static bool applet_path_ok(const char *s)
{
	if (!s[0] || s[0] == '/' || strstr(s, "..") || strlen(s) > 128)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '/' ||
		      *c == '-' || *c == '_' || *c == '.' || *c == '['))
			return false;
	return true;
}

static int link_applets(const char *rootfs, char *list, struct gr_error *err)
{
	char path[PATH_MAX], dir[PATH_MAX];
	bool has_sh = false;
	for (char *save = NULL, *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!applet_path_ok(line))
			return gr_error_set(err, EINVAL, "busybox --list-full: unexpected entry \"%.64s\"", line);
		const char *base = strrchr(line, '/');
		base = base ? base + 1 : line;
		if (strcmp(base, "busybox") == 0 || strcmp(base, "linuxrc") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", rootfs, line);
		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		int r = gr_mkdir_p(dir, 0755, err);
		if (r < 0)
			return r;
		if (symlink("/bin/busybox", path) < 0 && errno != EEXIST)
			return gr_error_sys(err, errno, "cannot create %s", path);
		has_sh |= strcmp(line, "bin/sh") == 0;
	}
	if (!has_sh)
		return gr_error_set(err, EINVAL, "busybox --list-full did not list bin/sh");
	return 0;
}

/* The Debian version of a package, from dpkg's status file. */
static void debian_version(const char *package, char *out, size_t n)
{
	snprintf(out, n, "unknown");
	gr_autofclose FILE *f = fopen("/var/lib/dpkg/status", "re");
	if (!f)
		return;
	char line[512], want[160];
	snprintf(want, sizeof(want), "Package: %s\n", package);
	bool in = false;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '\n')
			in = false;
		else if (strncmp(line, "Package: ", 9) == 0)
			in = strcmp(line, want) == 0;
		else if (in && strncmp(line, "Version: ", 9) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, n, "%s", line + 9);
			return;
		}
	}
}

static int build_busybox_tree(const char *rootfs, time_t *mtime, struct gr_error *err)
{
	const char *bb = busybox_binary();
	gr_autoclose int src = open(bb, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return gr_error_sys(err, errno, "%s: install Debian's busybox-static (apt-get install busybox-static)",
				    bb);
	int r = check_static_elf(src, bb, err);
	if (r < 0)
		return r;
	struct stat st;
	fstat(src, &st);
	*mtime = st.st_mtime;
	char path[PATH_MAX];
	static const struct { const char *dir; mode_t mode; } dirs[] = {
		{ "", 0755 }, { "bin", 0755 }, { "sbin", 0755 }, { "usr", 0755 }, { "usr/bin", 0755 },
		{ "usr/sbin", 0755 }, { "etc", 0755 }, { "dev", 0755 }, { "proc", 0555 }, { "sys", 0555 },
		{ "tmp", 01777 }, { "root", 0700 }, { "home", 0755 }, { "var", 0755 }, { "var/log", 0755 },
		{ "var/tmp", 01777 }, { "run", 0755 }, { "mnt", 0755 },
	};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", rootfs, dirs[i].dir);
		if (mkdir(path, dirs[i].mode) < 0 || chmod(path, dirs[i].mode) < 0)
			return gr_error_sys(err, errno, "cannot create %s", path);
	}
	snprintf(path, sizeof(path), "%s/bin/busybox", rootfs);
	if ((r = copy_file(src, path, 0755, err)) < 0)
		return r;
	char *argv[] = { (char *)bb, (char *)"--list-full", NULL };
	char *envp[] = { (char *)"PATH=/usr/bin:/bin", NULL };
	struct collect c = { 0 };
	int status = 0;
	r = run_lines(argv, envp, collect_line, &c, &status, err);
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !c.buf))
		r = gr_error_set(err, EIO, "%s --list-full failed", bb);
	if (r == 0)
		r = link_applets(rootfs, c.buf, err);
	free(c.buf);
	if (r < 0)
		return r;
	static const struct { const char *path, *text; mode_t mode; } files[] = {
		{ "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		  0644 },
		{ "etc/group", "root:x:0:\ntty:x:5:\nnobody:x:65534:\n", 0644 },
		{ "etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0600 },
		{ "etc/hostname", "busybox\n", 0644 },
		{ "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0644 },
		{ "etc/profile", "export PS1='\\h:\\w\\$ '\n", 0644 },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", rootfs, files[i].path);
		if ((r = gr_write_file_new(path, files[i].text, strlen(files[i].text), files[i].mode, err)) < 0)
			return r;
	}
	return 0;
}

static int build_busybox(struct image_store *is, const struct image_progress *pr, struct image_import_result *res,
			 struct gr_error *err)
{
	char staging[PATH_MAX], rootfs[PATH_MAX];
	int rc = image_store_stage(is, staging, err);
	if (rc < 0)
		return rc;
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", staging);
	time_t mtime = 0;
	if ((rc = build_busybox_tree(rootfs, &mtime, err)) == 0) {
		char version[128], source[192];
		debian_version("busybox-static", version, sizeof(version));
		snprintf(source, sizeof(source), "build busybox (debian busybox-static %s)", version);
		gr_autojson json_t *config = json_pack("{s:[s], s:[s]}", "Env",
						       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
						       "Cmd", "/bin/sh");
		rc = pack_and_import(is, staging, rootfs, mtime, IMAGE_BUSYBOX_ALIAS, source,
				     "BusyBox (Debian's busybox-static)", config, pr, res, err);
	}
	image_store_unstage(staging);
	return rc < 0 ? gr_error_prefix(err, "building busybox") : 0;
}

/* --- debian/12 ------------------------------------------------------------------------------ */

static bool release_suite(const char *s)
{
	/* bookworm, stable... not bookworm-updates / bookworm-security. */
	return s && *s && !strchr(s, '-') && !strchr(s, '/');
}

static bool http_uri(const char *u)
{
	return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

int image_debian_mirror_from(const char *list, const char *const *deb822, char *out, size_t n)
{
	/* One-line format: deb [options] URI SUITE COMPONENTS... */
	if (list) {
		gr_autofree char *copy = strdup(list);
		for (char *save = NULL, *line = copy ? strtok_r(copy, "\n", &save) : NULL; line;
		     line = strtok_r(NULL, "\n", &save)) {
			char *tok[8] = { 0 };
			int nt = 0;
			line += strspn(line, " \t");
			if (strncmp(line, "deb", 3) != 0 || (line[3] != ' ' && line[3] != '\t'))
				continue;
			char *p = line + 3;
			p += strspn(p, " \t");
			if (*p == '[') {
				char *e = strchr(p, ']');
				if (!e)
					continue;
				p = e + 1;
			}
			for (char *s2 = NULL, *t = strtok_r(p, " \t", &s2); t && nt < 8; t = strtok_r(NULL, " \t", &s2))
				tok[nt++] = t;
			if (nt >= 2 && http_uri(tok[0]) && release_suite(tok[1])) {
				size_t l = strlen(tok[0]);
				while (l > 0 && tok[0][l - 1] == '/')
					tok[0][--l] = '\0';
				snprintf(out, n, "%s", tok[0]);
				return 0;
			}
		}
	}
	/* deb822: stanzas of Types/URIs/Suites fields, separated by blank lines. */
	for (size_t i = 0; deb822 && deb822[i]; i++) {
		gr_autofree char *copy = strdup(deb822[i]);
		if (!copy)
			continue;
		char types[256] = "", uris[512] = "", suites[256] = "";
		char *p = copy;
		for (;;) {
			char *nl = strchr(p, '\n');
			if (nl)
				*nl = '\0';
			bool blank = p[strspn(p, " \t\r")] == '\0';
			if (!blank && p[0] != '#') {
				if (strncasecmp(p, "Types:", 6) == 0)
					snprintf(types, sizeof(types), " %s ", p + 6);
				else if (strncasecmp(p, "URIs:", 5) == 0)
					snprintf(uris, sizeof(uris), "%s", p + 5);
				else if (strncasecmp(p, "Suites:", 7) == 0)
					snprintf(suites, sizeof(suites), "%s", p + 7);
			}
			if (blank || !nl) {
				if (strstr(types, " deb ") || strstr(types, " deb\t") || strstr(types, "\tdeb")) {
					char *s2 = NULL, *suite_ok = NULL;
					for (char *t = strtok_r(suites, " \t", &s2); t; t = strtok_r(NULL, " \t", &s2))
						if (release_suite(t))
							suite_ok = t;
					char *s3 = NULL, *u = strtok_r(uris, " \t", &s3);
					if (suite_ok && u && http_uri(u)) {
						size_t l = strlen(u);
						while (l > 0 && u[l - 1] == '/')
							u[--l] = '\0';
						snprintf(out, n, "%s", u);
						return 0;
					}
				}
				types[0] = uris[0] = suites[0] = '\0';
			}
			if (!nl)
				break;
			p = nl + 1;
		}
	}
	return -ENOENT;
}

void image_debian_mirror(char *out, size_t n)
{
	const char *e = getenv("GUREUM_DEBIAN_MIRROR");
	if (e && http_uri(e)) {
		snprintf(out, n, "%s", e);
		return;
	}
	gr_autofree char *list = NULL;
	size_t len;
	(void)gr_read_file("/etc/apt/sources.list", &list, &len, NULL);
	char *files[32] = { 0 };
	size_t nf = 0;
	gr_autoclosedir DIR *d = opendir("/etc/apt/sources.list.d");
	struct dirent *de;
	gr_autofree char *more = NULL;
	size_t more_len = 0;
	FILE *mf = open_memstream(&more, &more_len);
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "/etc/apt/sources.list.d/%s", de->d_name);
		char *text = NULL;
		if (l > 8 && strcmp(de->d_name + l - 8, ".sources") == 0 && nf < 31) {
			if (gr_read_file(path, &text, &len, NULL) == 0)
				files[nf++] = text;
		} else if (l > 5 && strcmp(de->d_name + l - 5, ".list") == 0 && mf) {
			if (gr_read_file(path, &text, &len, NULL) == 0) {
				fprintf(mf, "%s\n", text);
				free(text);
			}
		}
	}
	if (mf) {
		if (list)
			fprintf(mf, "%s\n", list);
		fclose(mf);
	}
	if (image_debian_mirror_from(more, (const char *const *)files, out, n) < 0)
		snprintf(out, n, "%s", IMAGE_DEBIAN_MIRROR_DEFAULT);
	for (size_t i = 0; i < nf; i++)
		free(files[i]);
}

/* Unmounts whatever debootstrap left mounted under root (proc, sys...). */
static void umount_under(const char *root)
{
	for (int pass = 0; pass < 8; pass++) {
		gr_autofclose FILE *f = fopen("/proc/self/mountinfo", "re");
		if (!f)
			return;
		char line[4096], deepest[PATH_MAX] = "";
		size_t rl = strlen(root);
		while (fgets(line, sizeof(line), f)) {
			char mp[PATH_MAX];
			if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
				continue;
			if (strncmp(mp, root, rl) == 0 && (mp[rl] == '/' || mp[rl] == '\0') && strlen(mp) > strlen(deepest))
				snprintf(deepest, sizeof(deepest), "%s", mp);
		}
		if (!deepest[0])
			return;
		if (umount2(deepest, MNT_DETACH) < 0)
			gr_warn("debootstrap: cannot unmount %s: %s", deepest, strerror(errno));
	}
}

struct deb_ctx {
	const struct image_progress *pr;
	char last[512];
};

static int deb_line(void *ctx, char *line)
{
	struct deb_ctx *c = ctx;
	if (!*line)
		return 0;
	snprintf(c->last, sizeof(c->last), "%s", line);
	return c->pr && c->pr->report ? c->pr->report(c->pr->ctx, "debootstrap", 0, 0, line) : 0;
}

static void proxy_env_free(char *(*v)[6])
{
	for (size_t i = 0; i < 6; i++)
		free((*v)[i]);
}

static int build_debian(struct image_store *is, const struct image_progress *pr, struct image_import_result *res,
			struct gr_error *err)
{
	if (access("/usr/sbin/debootstrap", X_OK) < 0)
		return gr_error_set(err, ENOENT, "debootstrap is not installed (apt-get install debootstrap)");
	char staging[PATH_MAX], rootfs[PATH_MAX], mirror[512];
	int rc = image_store_stage(is, staging, err);
	if (rc < 0)
		return rc;
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", staging);
	image_debian_mirror(mirror, sizeof(mirror));
	char *argv[] = { (char *)"/usr/sbin/debootstrap", (char *)"--variant=minbase", (char *)"bookworm", rootfs,
			 mirror, NULL };
	/* A clean environment, but for the proxy settings gureumd was given
	 * (a host that reaches its mirror through a proxy). */
	char *envp[16] = { (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			   (char *)"LC_ALL=C", (char *)"DEBIAN_FRONTEND=noninteractive", NULL };
	static const char *const proxy_vars[] = { "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
						  "HTTPS_PROXY", "NO_PROXY" };
	_cleanup_(proxy_env_free) char *proxy_env[6] = { 0 };
	for (size_t i = 0, k = 3; i < 6; i++) {
		const char *v = getenv(proxy_vars[i]);
		if (v && asprintf(&proxy_env[i], "%s=%s", proxy_vars[i], v) >= 0)
			envp[k++] = proxy_env[i];
	}
	struct deb_ctx c = { .pr = pr };
	int status = 0;
	if (pr && pr->report)
		pr->report(pr->ctx, "debootstrap", 0, 0, mirror);
	rc = run_lines(argv, envp, deb_line, &c, &status, err);
	umount_under(rootfs);
	if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		rc = gr_error_set(err, EIO, "debootstrap bookworm from %s failed (%s %d): %s", mirror,
				  WIFEXITED(status) ? "exit status" : "signal",
				  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), c.last);
	if (rc == 0) {
		/* The runtime makes /dev; downloaded packages are not part of the image. */
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/dev", rootfs);
		(void)gr_rm_rf(p, NULL);
		mkdir(p, 0755);
		snprintf(p, sizeof(p), "%s/var/cache/apt/archives", rootfs);
		gr_autoclosedir DIR *d = opendir(p);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l > 4 && strcmp(de->d_name + l - 4, ".deb") == 0) {
				char f[PATH_MAX];
				snprintf(f, sizeof(f), "%s/%s", p, de->d_name);
				unlink(f);
			}
		}
		snprintf(p, sizeof(p), "%s/etc/hostname", rootfs);
		(void)gr_write_file_atomic(p, "debian\n", 7, 0644, NULL);
		char version[64], source[640];
		debian_version("debootstrap", version, sizeof(version));
		snprintf(source, sizeof(source), "build debian/12 (debootstrap %s, minbase bookworm from %s)", version,
			 mirror);
		gr_autojson json_t *config = json_pack("{s:[s], s:[s]}", "Env",
						       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
						       "Cmd", "/bin/bash");
		rc = pack_and_import(is, staging, rootfs, time(NULL), IMAGE_DEBIAN_ALIAS, source,
				     "Debian 12 (bookworm), minbase", config, pr, res, err);
	}
	umount_under(rootfs);
	image_store_unstage(staging);
	return rc < 0 && rc != -ECANCELED ? gr_error_prefix(err, "building debian/12") : rc;
}

int image_build(struct image_store *is, const char *name, const struct image_progress *pr,
		struct image_import_result *res, struct gr_error *err)
{
	memset(res, 0, sizeof(*res));
	if (name && strcmp(name, IMAGE_BUSYBOX_ALIAS) == 0)
		return build_busybox(is, pr, res, err);
	if (name && strcmp(name, IMAGE_DEBIAN_ALIAS) == 0)
		return build_debian(is, pr, res, err);
	return gr_error_set(err, EINVAL, "no builder named \"%.64s\" (there are: busybox, debian/12)",
			    name ? name : "");
}

int image_builder_ensure(struct image_store *is, struct gr_error *err)
{
	char fp[IMAGE_FP_HEX];
	if (store_alias_get(image_store_db(is), IMAGE_BUSYBOX_ALIAS, fp, NULL) == 0)
		return 0;
	struct image_import_result res;
	int rc = image_build(is, IMAGE_BUSYBOX_ALIAS, NULL, &res, err);
	if (rc == 0)
		gr_info("image store: built busybox (%.12s)", res.fingerprint);
	return rc;
}
