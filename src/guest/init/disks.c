#include "disks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"

int disks_find_by_serial(const char *sysfs_block, const char *serial, char *out, size_t out_len)
{
	gr_autoclosedir DIR *d = opendir(sysfs_block);
	if (!d)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[512], buf[64] = "";
		snprintf(path, sizeof(path), "%s/%s/serial", sysfs_block, de->d_name);
		gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n <= 0)
			continue;
		buf[n] = 0;
		buf[strcspn(buf, "\n")] = 0;
		if (strcmp(buf, serial) == 0 && strlen(de->d_name) < out_len) {
			snprintf(out, out_len, "%s", de->d_name);
			return 0;
		}
	}
	return -ENOENT;
}

int disks_wait_by_serial(const char *sysfs_block, const char *serial, int timeout_ms, char *out, size_t out_len,
			 struct gr_error *err)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (disks_find_by_serial(sysfs_block, serial, out, out_len) == 0)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms >= timeout_ms)
			return gr_error_set(err, ENODEV, "no disk with serial %s within %d s", serial, timeout_ms / 1000);
		nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
	}
}

bool disks_is_ext4(const char *path)
{
	/* The superblock is at byte 1024; s_magic (0xEF53, little-endian) at 56 in it. */
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char m[2];
	return fd >= 0 && pread(fd, m, 2, 1024 + 56) == 2 && m[0] == 0x53 && m[1] == 0xEF;
}
