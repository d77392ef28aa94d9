#include "boot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "console.h"
#include "disks.h"

#define VOLUME_WAIT_MS 10000

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

static int mount_at(const char *src, const char *target, const char *type, unsigned long flags,
		    const char *data, struct gr_error *err)
{
	if (mkdir(target, 0755) < 0 && errno != EEXIST)
		return gr_error_sys(err, errno, "cannot create %s", target);
	if (mount(src, target, type, flags, data) < 0 && errno != EBUSY)
		return gr_error_sys(err, errno, "cannot mount %s on %s", type, target);
	return 0;
}

int boot_early_mounts(struct gr_error *err)
{
	int r;
	if ((r = mount_at("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", err)) < 0 ||
	    (r = mount_at("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err)) < 0 ||
	    (r = mount_at("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err)) < 0)
		return r;
	return 0;
}

static bool compressed(const char *path)
{
	size_t n = strlen(path);
	return (n > 3 && strcmp(path + n - 3, ".xz") == 0) || (n > 4 && strcmp(path + n - 4, ".zst") == 0) ||
	       (n > 3 && strcmp(path + n - 3, ".gz") == 0);
}

int boot_load_modules(const char *list)
{
	gr_autofclose FILE *f = fopen(list, "re");
	if (!f) {
		if (errno == ENOENT) {
			console_log("no %s: no modules to load", list);
			return 0;
		}
		int e = errno;
		console_log("cannot open %s: %s", list, strerror(e));
		return -e;
	}
	struct utsname u;
	uname(&u);
	char *line = NULL;
	size_t cap = 0;
	int failed = 0, loaded = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' ' || line[n - 1] == '\r'))
			line[--n] = 0;
		char *l = line;
		while (*l == ' ')
			l++;
		if (!*l || *l == '#')
			continue;
		/* Absolute; or relative to / ("lib/modules/VERSION/kernel/...",
		 * as gureumd writes it); or else relative to /lib/modules/RELEASE/. */
		char path[4096];
		struct stat st;
		if (*l == '/')
			snprintf(path, sizeof(path), "%s", l);
		else if (snprintf(path, sizeof(path), "/%s", l) > 0 && stat(path, &st) < 0)
			snprintf(path, sizeof(path), "/lib/modules/%s/%s", u.release, l);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			console_log("module %s: %s", path, strerror(errno));
			failed++;
			continue;
		}
		int flags = compressed(path) ? MODULE_INIT_COMPRESSED_FILE : 0;
		long r = syscall(SYS_finit_module, fd, "", flags);
		int e = errno;
		close(fd);
		if (r < 0 && e != EEXIST) {
			console_log("module %s: finit_module: %s", path, strerror(e));
			failed++;
			continue;
		}
		loaded++;
	}
	free(line);
	console_log("modules: %d loaded, %d failed", loaded, failed);
	return failed;
}

int boot_wait_for_block(const char *dev, int timeout_ms, struct gr_error *err)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	bool said = false;
	for (;;) {
		struct stat st;
		if (stat(dev, &st) == 0 && S_ISBLK(st.st_mode))
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms >= timeout_ms)
			break;
		if (!said && ms >= 1000) {
			console_log("waiting for %s", dev);
			said = true;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
	}
	return gr_error_set(err, ENODEV, "%s did not appear within %d s (no root disk: is virtio_blk loaded, "
			    "and does the VM have a virtio-blk disk?)", dev, timeout_ms / 1000);
}

/* Deletes everything under dirfd that is on device `dev` (not crossing mounts). */
static void delete_tree(int dirfd, dev_t dev)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				delete_tree(sub, dev);
			unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
		} else {
			unlinkat(dirfd, de->d_name, 0);
		}
	}
	closedir(d);
}

int boot_switch_root(const char *dev, const char *fstype, struct gr_error *err)
{
	if (mkdir(GINIT_NEWROOT, 0755) < 0 && errno != EEXIST)
		return gr_error_sys(err, errno, "cannot create %s", GINIT_NEWROOT);
	if (mount(dev, GINIT_NEWROOT, fstype, 0, NULL) < 0)
		return gr_error_sys(err, errno, "cannot mount the root disk %s (%s) on %s", dev, fstype, GINIT_NEWROOT);
	static const char *const moved[] = { "/dev", "/proc", "/sys" };
	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		char target[64];
		snprintf(target, sizeof(target), "%s%s", GINIT_NEWROOT, moved[i]);
		if (mkdir(target, 0755) < 0 && errno != EEXIST)
			console_log("cannot create %s in the root disk: %s", moved[i], strerror(errno));
		if (mount(moved[i], target, NULL, MS_MOVE, NULL) < 0) {
			console_log("cannot move %s into the root disk: %s", moved[i], strerror(errno));
			umount2(moved[i], MNT_DETACH);
		}
	}
	if (chdir(GINIT_NEWROOT) < 0)
		return gr_error_sys(err, errno, "chdir %s", GINIT_NEWROOT);
	/* Free the initramfs's memory, as switch_root does; only ever on a ramfs/tmpfs. */
	struct statfs sfs;
	struct stat rst;
	if (statfs("/", &sfs) == 0 && (sfs.f_type == RAMFS_MAGIC || sfs.f_type == TMPFS_MAGIC) &&
	    stat("/", &rst) == 0) {
		int rfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (rfd >= 0)
			delete_tree(rfd, rst.st_dev);
	} else {
		console_log("/ is not the initramfs (ramfs/tmpfs): its files are kept");
	}
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		return gr_error_sys(err, errno, "cannot move %s to /", GINIT_NEWROOT);
	if (chroot(".") < 0)
		return gr_error_sys(err, errno, "chroot into the root disk");
	if (chdir("/") < 0)
		return gr_error_sys(err, errno, "chdir / in the root disk");
	return 0;
}

static void try_mount(const char *src, const char *target, const char *type, unsigned long flags, const char *data)
{
	struct gr_error err = { 0 };
	if (mount_at(src, target, type, flags, data, &err) < 0)
		console_log("%s (continuing without it)", err.msg);
}

void boot_finish_mounts(bool run_tmpfs)
{
	try_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666");
	try_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	if (run_tmpfs)
		try_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	static const char *const links[][2] = {
		{ "/proc/self/fd", "/dev/fd" }, { "/proc/self/fd/0", "/dev/stdin" },
		{ "/proc/self/fd/1", "/dev/stdout" }, { "/proc/self/fd/2", "/dev/stderr" },
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			console_log("cannot create %s: %s", links[i][1], strerror(errno));
}

void boot_poweroff(bool reboot_)
{
	sync();
	reboot(reboot_ ? RB_AUTOBOOT : RB_POWER_OFF);
	console_log("reboot(2) failed: %s; halting", strerror(errno));
	reboot(RB_HALT_SYSTEM);
	/* PID 1 must never exit (the kernel would panic): wait forever. */
	for (;;)
		pause();
}

void boot_mount_volumes(const struct ginit_config *c)
{
	struct gr_error err = { 0 };
	if (c->nvolumes && gr_mkdir_p(GINIT_DISK_LINKS, 0755, &err) < 0)
		console_log("%s", err.msg);
	for (size_t i = 0; i < c->nvolumes; i++) {
		const struct ginit_volume *v = &c->volumes[i];
		char serial[32], dev[64], node[80], link[300];
		snprintf(serial, sizeof(serial), GINIT_DISK_SERIAL, v->disk);
		if (disks_wait_by_serial("/sys/block", serial, VOLUME_WAIT_MS, dev, sizeof(dev), &err) < 0) {
			console_log("volume %s: %s", v->name, err.msg);
			continue;
		}
		snprintf(node, sizeof(node), "/dev/%s", dev);
		snprintf(link, sizeof(link), GINIT_DISK_LINKS "/%s", v->name);
		(void)unlink(link);
		if (symlink(node, link) < 0)
			console_log("volume %s: cannot link %s: %s", v->name, link, strerror(errno));
		if (!disks_is_ext4(node)) {
			console_log("volume %s: %s has no ext4 file system: a raw disk (%s)", v->name, node, link);
			continue;
		}
		if (gr_mkdir_p(v->path, 0755, &err) < 0) {
			console_log("volume %s: %s", v->name, err.msg);
			continue;
		}
		unsigned long flags = MS_NOSUID | MS_NODEV | (v->readonly ? MS_RDONLY : 0);
		if (mount(node, v->path, "ext4", flags, NULL) < 0) {
			console_log("volume %s: cannot mount %s on %s: %s", v->name, node, v->path, strerror(errno));
			continue;
		}
		console_log("volume %s: %s on %s%s", v->name, node, v->path, v->readonly ? " (read-only)" : "");
	}
}
