/* See image_builtin.h. */
#include "daemon/image_builtin.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *busybox_binary(void)
{
	const char *e = getenv("GUREUM_BUSYBOX");
	return e && e[0] ? e : IMAGE_BUILTIN_BUSYBOX;
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

/* Copies the binary to dst (0755), hashing it on the way. */
static int copy_binary(int src, const char *dst, char hex[65], uint64_t *size, struct gr_error *err)
{
	gr_autoclose int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0755);
	if (out < 0)
		return gr_error_sys(err, errno, "cannot create %s", dst);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return gr_error_set(err, ENOMEM, "cannot start a SHA-256 digest");
	}
	char buf[65536];
	off_t off = 0;
	int r = 0;
	for (;;) {
		ssize_t n = pread(src, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = gr_error_sys(err, errno, "cannot read the busybox binary");
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		int w = gr_write_all(out, buf, (size_t)n);
		if (w < 0) {
			r = gr_error_sys(err, -w, "cannot write %s", dst);
			break;
		}
		off += n;
	}
	unsigned char d[32];
	unsigned dl = 0;
	EVP_DigestFinal_ex(md, d, &dl);
	EVP_MD_CTX_free(md);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	*size = (uint64_t)off;
	return 0;
}

/* The applets as `busybox --list-full` names them ("bin/sh", "usr/bin/awk"). */
static int list_applets(const char *bb, char **out, struct gr_error *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	char *argv[] = { (char *)bb, (char *)"--list-full", NULL };
	char *envp[] = { (char *)"PATH=/usr/bin:/bin", NULL };
	pid_t pid;
	int r = posix_spawn(&pid, bb, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (r != 0) {
		close(p[0]);
		return gr_error_sys(err, r, "cannot run %s --list-full", bb);
	}
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	ssize_t n = 0;
	while (buf && (n = read(p[0], buf + len, cap - len - 1)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
		if (cap - len < 2) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	close(p[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!buf)
		return gr_error_set(err, ENOMEM, "out of memory");
	if (n < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		free(buf);
		return gr_error_set(err, EIO, "%s --list-full failed", bb);
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

static bool applet_path_ok(const char *s)
{
	if (!s[0] || s[0] == '/' || strstr(s, "..") || strlen(s) > 128)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      *c == '/' || *c == '-' || *c == '_' || *c == '.' || *c == '['))
			return false;
	return true;
}

static int link_applets(const char *rootfs, char *list, struct gr_error *err)
{
	char path[PATH_MAX], dir[PATH_MAX];
	size_t count = 0;
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
		count++;
	}
	if (!has_sh)
		return gr_error_set(err, EINVAL, "busybox --list-full did not list bin/sh (%zu applets)", count);
	return 0;
}

/* The Debian version of busybox-static, from dpkg's status file. */
static void debian_version(char *out, size_t n)
{
	snprintf(out, n, "unknown");
	gr_autofclose FILE *f = fopen("/var/lib/dpkg/status", "re");
	if (!f)
		return;
	char line[512];
	bool in = false;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '\n')
			in = false;
		else if (strncmp(line, "Package: ", 9) == 0)
			in = strcmp(line + 9, "busybox-static\n") == 0;
		else if (in && strncmp(line, "Version: ", 9) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, n, "%s", line + 9);
			return;
		}
	}
}

static int write_text(const char *rootfs, const char *rel, const char *text, mode_t mode, struct gr_error *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", rootfs, rel);
	return gr_write_file_new(path, text, strlen(text), mode, err);
}

static void now_rfc3339(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Everything in tmp; the caller renames or removes it. */
static int build(const char *tmp, struct gr_error *err)
{
	const char *bb = busybox_binary();
	gr_autoclose int src = open(bb, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return gr_error_sys(err, errno, "%s: install Debian's busybox-static (apt-get install busybox-static)",
				    bb);
	int r = check_static_elf(src, bb, err);
	if (r < 0)
		return r;
	char rootfs[PATH_MAX], path[PATH_MAX];
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", tmp);
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
	char sha[65];
	uint64_t bb_size = 0;
	snprintf(path, sizeof(path), "%s/bin/busybox", rootfs);
	if ((r = copy_binary(src, path, sha, &bb_size, err)) < 0)
		return r;
	gr_autofree char *list = NULL;
	if ((r = list_applets(bb, &list, err)) < 0 || (r = link_applets(rootfs, list, err)) < 0)
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
	uint64_t size = bb_size;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if ((r = write_text(rootfs, files[i].path, files[i].text, files[i].mode, err)) < 0)
			return r;
		size += strlen(files[i].text);
	}
	char version[128], created[64], source[192];
	debian_version(version, sizeof(version));
	now_rfc3339(created, sizeof(created));
	snprintf(source, sizeof(source), "debian busybox-static %s", version);
	struct utsname u;
	uname(&u);
	gr_autojson json_t *meta = json_pack("{s:[{s:s}], s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "aliases", "name",
					     IMAGE_BUILTIN_ALIAS, "type", "container", "fingerprint", sha,
					     "architecture", u.machine, "size", (json_int_t)size, "created_at", created,
					     "description", "BusyBox (Debian's busybox-static), built in", "source",
					     source);
	gr_autofree char *text = meta ? json_dumps(meta, JSON_INDENT(2)) : NULL;
	if (!text)
		return gr_error_set(err, ENOMEM, "cannot encode image.json");
	snprintf(path, sizeof(path), "%s/image.json", tmp);
	return gr_write_file_new(path, text, strlen(text), 0644, err);
}

static void remove_stale_tmp(const char *images)
{
	gr_autoclosedir DIR *d = opendir(images);
	struct dirent *e;
	char path[PATH_MAX];
	while (d && (e = readdir(d)))
		if (strncmp(e->d_name, ".busybox-tmp-", 13) == 0) {
			snprintf(path, sizeof(path), "%s/%s", images, e->d_name);
			(void)gr_rm_rf(path, NULL);
		}
}

int image_builtin_ensure(const char *state_dir, struct gr_error *err)
{
	char images[PATH_MAX], final[PATH_MAX], meta[PATH_MAX], tmp[PATH_MAX];
	if (snprintf(images, sizeof(images), "%s/images", state_dir) >= (int)sizeof(images) - 64)
		return gr_error_set(err, ENAMETOOLONG, "state directory path too long");
	snprintf(final, sizeof(final), "%s/%s", images, IMAGE_BUILTIN_ALIAS);
	snprintf(meta, sizeof(meta), "%s/image.json", final);
	if (access(meta, F_OK) == 0)
		return 0;
	int r = gr_mkdir_p(images, 0700, err);
	if (r < 0)
		return r;
	remove_stale_tmp(images);
	snprintf(tmp, sizeof(tmp), "%s/.busybox-tmp-XXXXXX", images);
	if (!mkdtemp(tmp))
		return gr_error_sys(err, errno, "cannot create a directory in %s", images);
	chmod(tmp, 0755);
	if ((r = build(tmp, err)) < 0) {
		(void)gr_rm_rf(tmp, NULL);
		return gr_error_prefix(err, "the built-in busybox image");
	}
	/* A directory without image.json is what an older, interrupted layout
	 * would be: replaced. */
	if (access(final, F_OK) == 0 && access(meta, F_OK) != 0)
		(void)gr_rm_rf(final, NULL);
	if (rename(tmp, final) < 0) {
		int e = errno;
		(void)gr_rm_rf(tmp, NULL);
		if ((e == ENOTEMPTY || e == EEXIST) && access(meta, F_OK) == 0)
			return 0; /* someone else's build won */
		return gr_error_sys(err, e, "cannot rename %s to %s", tmp, final);
	}
	return 0;
}

int image_builtin_info(const char *state_dir, json_t **out, struct gr_error *err)
{
	char meta[PATH_MAX];
	if (snprintf(meta, sizeof(meta), "%s/images/%s/image.json", state_dir, IMAGE_BUILTIN_ALIAS) >= (int)sizeof(meta))
		return gr_error_set(err, ENAMETOOLONG, "state directory path too long");
	return gr_json_load_file(meta, out, err);
}

int image_rootfs_path(const char *state_dir, const char *alias, char *out, size_t n, struct gr_error *err)
{
	if (!alias || strcmp(alias, IMAGE_BUILTIN_ALIAS) != 0)
		return gr_error_set(err, ENOENT, "image \"%.64s\" not found (the only image is the built-in %s)",
				    alias ? alias : "", IMAGE_BUILTIN_ALIAS);
	if (snprintf(out, n, "%s/images/%s/rootfs", state_dir, alias) >= (int)n)
		return gr_error_set(err, ENAMETOOLONG, "state directory path too long");
	char meta[PATH_MAX];
	snprintf(meta, sizeof(meta), "%s/images/%s/image.json", state_dir, alias);
	if (access(meta, F_OK) < 0)
		return gr_error_set(err, ENOENT, "image %s has not been made yet (gureumd makes it at start-up)", alias);
	return 0;
}
