/* The built-in "busybox" image (until the images issue): its root file
 * system is made from Debian's busybox-static on first start, under
 * STATE/images/busybox/{rootfs/, image.json}, atomically (built in
 * STATE/images/.busybox-tmp-XXXXXX and renamed), so a crash midway leaves
 * nothing half-made (leftover temporary directories are removed by the next
 * image_builtin_ensure). */
#ifndef GR_DAEMON_IMAGE_BUILTIN_H
#define GR_DAEMON_IMAGE_BUILTIN_H

#include <jansson.h>
#include <stddef.h>
#include "common/error.h"

#define IMAGE_BUILTIN_ALIAS "busybox"
/* The binary it is made from; the environment variable GUREUM_BUSYBOX
 * overrides it (it must be a static ELF: the rootfs has no libc). */
#define IMAGE_BUILTIN_BUSYBOX "/bin/busybox"

/* Makes STATE/images/busybox unless it exists. Safe to call from several
 * threads or processes at once (one rename wins, the others discard theirs). */
int image_builtin_ensure(const char *state_dir, struct gr_error *err);

/* The image as GET /1.0/images shows it: {"aliases":[{"name":"busybox"}],
 * "type":"container","fingerprint" (SHA-256 of the busybox binary),
 * "architecture","size" (bytes of the rootfs),"created_at","description",
 * "source":"debian busybox-static VERSION"} (from image.json). */
int image_builtin_info(const char *state_dir, json_t **out, struct gr_error *err);

/* STATE/images/ALIAS/rootfs into out (PATH_MAX) for an image that exists;
 * -ENOENT naming the alias otherwise. */
int image_rootfs_path(const char *state_dir, const char *alias, char *out, size_t n, struct gr_error *err);

#endif
