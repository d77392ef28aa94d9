/* VM disks: a sparse raw file holding an ext4 file system made from an
 * image's root file system, one per VM instance (the VM issue uses it).
 *
 * An image's disk is built once and cloned per instance. The cache, per
 * image (its fingerprint names its content, so an entry never goes stale):
 *
 *   STATE/vm/images/FP/rootfs/          the image's layers flattened (layer_flatten)
 *   STATE/vm/images/FP/disk-SIZE.img    `mkfs.ext4 -q -F -b 4096 -L gureum-root -d rootfs`
 *                                       into SIZE bytes (one per size asked; read-only)
 *   STATE/vm/images/FP/.lock            flock'd by whoever builds one of the above
 *
 * Each is made under a temporary name holding ".tmp-" in the same directory
 * and renamed into place, under the lock, so racing builds make it once and
 * nobody sees half of one; temporaries a crash left are removed by the next
 * build that takes the lock, and by vmdisk_cache_sweep. An instance's disk
 * is a clone of the cached one (FICLONE where the file system has reflinks,
 * else a sparse copy: SEEK_DATA/SEEK_HOLE and copy_file_range), as
 * FILE.tmp-XXXXXX renamed to FILE: independent of the cache either way.
 * A disk is grown (never shrunk) with a truncate and resize2fs, after an
 * e2fsck -f that resize2fs insists on. e2fsprogs run with an argument
 * vector, never a shell.
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

/* Looks at the flattened tree (root: its directory, O_PATH; the image's
 * cached one, shared: look, never change) before the instance's disk is
 * made; a negative errno (err filled) stops the build. */
typedef int (*vmdisk_check_fn)(int root, void *ctx, struct gr_error *err);

/* The same from image fingerprint of the store at state_dir (its
 * image.json's layers, which must all be there): the cached tree is made if
 * missing, check (optional) is called on it, the cached disk of that size is
 * made if missing and cloned to file. Nothing is left at file on failure
 * (the cache may stay: it is the image's). */
int vmdisk_build(const char *state_dir, const char *fingerprint, const char *file, uint64_t size,
		 vmdisk_check_fn check, void *check_ctx, struct gr_error *err);

/* Removes the image's cache (renamed aside, then removed); none is fine.
 * For the image store's delete: a failure there is a warning, not a
 * reason to keep the image. */
int vmdisk_cache_remove(const char *state_dir, const char *fingerprint, struct gr_error *err);

/* At start-up: removes every temporary entry of the cache (builds and
 * removals a crash cut short; an image being built right now, its lock
 * held, is left alone) and the caches of images that are no longer in the
 * store. Goes on past failures; the first is returned. */
int vmdisk_cache_sweep(const char *state_dir, struct gr_error *err);

/* Grows the disk and its file system to new_size (rounded up to a MiB);
 * -EINVAL for a smaller size (shrinking is refused), 0 for the same. The
 * disk must not be in use. */
int vmdisk_grow(const char *file, uint64_t new_size, struct gr_error *err);

#endif
