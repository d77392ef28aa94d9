/* The container's file system view, built inside its new mount namespace:
 * mounts from config.json (targets created inside the rootfs without ever
 * following a symlink out of it), cgroup mounts for v1/v2/hybrid, the
 * default /dev, devices, pivot_root, then masked and read-only paths. */
#ifndef GR_ROOTFS_H
#define GR_ROOTFS_H

#include <stdbool.h>
#include "../common/error.h"
#include "cgroup.h"
#include "config.h"

struct rootfs_ctx {
	const struct oci_config *cfg;
	const char *rootfs;                    /* absolute host path */
	const struct cgroup_layout *cg_layout; /* NULL: cgroups disabled */
	const char *cg_path;
	bool userns;                           /* a new user namespace: no mknod, locked mount flags */
	bool cgroupns;                         /* a new cgroup namespace */
	bool unified_joined;                   /* hybrid: the init is in its unified cgroup */
	/* Called once before the first cgroup mount (or at the end when there is
	 * none): the init waits there until the runtime has moved it into its
	 * cgroup, so that the move overlaps the mounts before it. */
	int (*cgroup_ready)(void *data, struct gr_error *err);
	void *cgroup_ready_data;
};

/* Before pivot_root: propagation, rootfs bind, every mount, /dev and devices. */
int rootfs_prepare(const struct rootfs_ctx *ctx, struct gr_error *err);
/* pivot_root into the rootfs (or MS_MOVE + chroot when no_pivot). */
int rootfs_pivot(const char *rootfs, bool no_pivot, struct gr_error *err);
/* After pivot_root: /dev/console (bound from the pty slave descriptor when
 * console_slave >= 0), sysctl, maskedPaths, readonlyPaths, readonly root,
 * rootfsPropagation. */
int rootfs_finish(const struct oci_config *cfg, int console_slave, struct gr_error *err);

/* Opens PATH (absolute, interpreted inside the tree at rootfd) with O_PATH,
 * creating missing directories (and the last component as a file when
 * is_file) on the way. Symlinks are resolved as if rootfd were "/", so they
 * can never lead outside it. */
int rootfs_open_in_root(int rootfd, const char *path, bool create, bool is_file, int *out,
			struct gr_error *err);

#endif
