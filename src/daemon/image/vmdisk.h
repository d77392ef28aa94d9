/* VM disks: a sparse raw file holding an ext4 file system made from an
 * image's root file system, one per VM instance (the VM issue uses it).
 *
 * The image's layers are flattened (layer_flatten) into a temporary
 * directory next to the disk, then `mkfs.ext4 -q -F -b 4096 -L gureum-root
 * -d DIR FILE SIZEk` (e2fsprogs, run with an argument vector, never a shell)
 * writes the file system into FILE.tmp-XXXXXX, which is renamed to FILE once
 * whole. A disk is grown (never shrunk) with a truncate and resize2fs,
 * after an e2fsck -f that resize2fs insists on.
 *
 * Every function returns 0 or a negative errno with err filled; the
 * programs' own error output is in the message. */
#ifndef GR_DAEMON_IMAGE_VMDISK_H
#define GR_DAEMON_IMAGE_VMDISK_H

#include <stdint.h>
#include "common/error.h"

#define VMDISK_DEFAULT_SIZE (1ull << 30)      /* when the instance's config does not say */
#define VMDISK_MAX_SIZE (16ull << 40)         /* 16 TiB: ext4's limit with 4 KiB blocks and no 64bit is larger; a sanity bound */

/* The smallest disk that holds the tree at dir: its blocks and inodes plus
 * ext4's overhead (journal, inode tables, reserved blocks) and a margin,
 * rounded up to a MiB. */
int vmdisk_min_size(const char *dir, uint64_t *out, struct gr_error *err);

/* Builds file (which must not exist; its directory must) of size bytes
 * (0: VMDISK_DEFAULT_SIZE; rounded up to a MiB) from the tree at dir.
 * -ENOSPC naming the minimum when size is below vmdisk_min_size. */
int vmdisk_build_from_dir(const char *dir, const char *file, uint64_t size, struct gr_error *err);

/* Looks at the flattened tree (root: its directory, O_PATH) before its file
 * system is made; a negative errno (err filled) stops the build. */
typedef int (*vmdisk_check_fn)(int root, void *ctx, struct gr_error *err);

/* The same from image fingerprint of the store at state_dir (its
 * image.json's layers, flattened next to file and removed afterwards);
 * check (optional) is called on the flattened tree first. Nothing is left
 * behind on failure. */
int vmdisk_build(const char *state_dir, const char *fingerprint, const char *file, uint64_t size,
		 vmdisk_check_fn check, void *check_ctx, struct gr_error *err);

/* Grows the disk and its file system to new_size (rounded up to a MiB);
 * -EINVAL for a smaller size (shrinking is refused), 0 for the same. The
 * disk must not be in use. */
int vmdisk_grow(const char *file, uint64_t new_size, struct gr_error *err);

#endif
