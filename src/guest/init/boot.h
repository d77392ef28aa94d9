/* PID 1's boot steps in the initramfs: the first mounts, kernel modules,
 * the root disk, switch root; and the final power-off. */
#ifndef GR_GUEST_BOOT_H
#define GR_GUEST_BOOT_H

#include <stdbool.h>

#include "common/error.h"
#include "config.h"

#define GINIT_MODULES_LIST "/etc/gureum/modules"
#define GINIT_NEWROOT "/newroot"

/* devtmpfs on /dev, proc on /proc, sysfs on /sys. */
int boot_early_mounts(struct gr_error *err);
/* Loads each module named in `list` (one path per line: absolute, relative
 * to / when that file exists, else relative to /lib/modules/RELEASE/; '#'
 * comments) with finit_module, in
 * order. A module already there (EEXIST) is fine; a failure is logged and the
 * rest are still loaded. Returns the number of failures (or -errno when the
 * list cannot be read; a missing list is 0: nothing to load). */
int boot_load_modules(const char *list);
/* Waits up to timeout_ms for `dev` to be a block device. */
int boot_wait_for_block(const char *dev, int timeout_ms, struct gr_error *err);
/* Mounts dev (fstype) on GINIT_NEWROOT, moves /dev, /proc, /sys into it,
 * deletes the initramfs's files (it must be a ramfs/tmpfs), and makes it
 * the root (MS_MOVE + chroot, as switch_root does). */
int boot_switch_root(const char *dev, const char *fstype, struct gr_error *err);
/* In the new root: /dev/pts (devpts), /dev/shm, /dev/fd and std* links;
 * with `run_tmpfs`, a tmpfs on /run. Failures are logged, not fatal. */
void boot_finish_mounts(bool run_tmpfs);
/* Each block volume of c (after the switch to the root disk) gets
 * /dev/disk/gureum/NAME, a symlink to its vdX, and, when it holds an ext4
 * file system, is mounted at its path (read-only when attached so; the
 * path is made); otherwise it stays a raw disk for the guest to format.
 * Problems are logged, never fatal: the VM still boots. */
void boot_mount_volumes(const struct ginit_config *c);
/* sync, then reboot(2); never returns (halts forever if the kernel refuses). */
void boot_poweroff(bool reboot) __attribute__((noreturn));

#endif
