/* A VM's disks by their virtio-blk serial, which both engines set to
 * "gureum-diskN" (N: the disk's index; 0 is the root disk, then the
 * instance's block volumes in instance.json's order). No I/O but sysfs and
 * the device's superblock; boot.c mounts the volumes. */
#ifndef GR_GUEST_DISKS_H
#define GR_GUEST_DISKS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "config.h"

#define GINIT_DISK_SERIAL "gureum-disk%u"
#define GINIT_DISK_LINKS "/dev/disk/gureum"

/* The block device whose serial (sysfs_block/NAME/serial, e.g.
 * /sys/block/vdb/serial) is `serial`: its name ("vdb") in out. -ENOENT. */
int disks_find_by_serial(const char *sysfs_block, const char *serial, char *out, size_t out_len);
/* The same, waiting up to timeout_ms for it to appear. */
int disks_wait_by_serial(const char *sysfs_block, const char *serial, int timeout_ms, char *out, size_t out_len,
			 struct gr_error *err);
/* Whether the device or image at path holds an ext2/3/4 file system (its
 * superblock's magic). */
bool disks_is_ext4(const char *path);

#endif
