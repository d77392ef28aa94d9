/* VM initramfs: the guest kernel, the kernel modules the VM's devices need,
 * and the initramfs gureumd boots every VM with.
 *
 * Kernel. scripts/fetch-kernel.sh unpacks Debian's cloud kernel into
 * GUREUM_KERNEL_DIR (default /var/cache/gureum/kernel) as VERSION/boot/
 * vmlinuz-VERSION and VERSION/lib/modules/VERSION/ (with the modules.dep
 * depmod made), and points GUREUM_KERNEL_DIR/current at it. A user may name
 * another kernel: a directory laid out the same way, or a vmlinuz file whose
 * modules are next to it (FILE's dir/../lib/modules/VERSION or FILE's
 * dir/lib/modules/VERSION) or the host's /lib/modules/VERSION. VERSION (what
 * `uname -r` will say, and so the modules directory's name) is the bzImage
 * setup header's kernel version string up to its first space when the
 * image has one, else the tail of the file's name "vmlinuz-VERSION".
 *
 * Modules. The wanted set (initrd_modules_wanted: virtio_mmio, virtio_blk,
 * virtio_net, virtio_console; initrd_modules_optional:
 * vmw_vsock_virtio_transport, taken when the kernel has it) is closed over
 * modules.dep and ordered so every module comes after what it needs (the
 * order modprobe would load them in). A wanted module in modules.builtin is
 * skipped; one in neither file is an error. Names compare with '-' and '_'
 * alike, as modprobe does. modules.dep is untrusted input: a path that is
 * absolute (outside the modules directory), has a "." or ".." component,
 * characters beyond [A-Za-z0-9._+-/] or does not end in .ko, .ko.xz, .ko.zst
 * or .ko.gz makes the whole file refused, and module files are opened with
 * openat2(RESOLVE_BENEATH) below the modules directory. Compressed modules
 * are decompressed on the host (libarchive's raw format with its xz, zstd
 * and gzip filters: liblzma, libzstd, zlib), so the guest only loads plain
 * .ko files with finit_module; each must be an ELF file of at most 64 MiB.
 *
 * The common initramfs (one per kernel and gureum-init): a gzip'd cpio
 * "newc" archive (libarchive) holding
 *   dev/ dev/console (c 5 1) etc/ etc/gureum/ lib/ lib/modules/VERSION/...
 *   newroot/ proc/ sys/                                          (0755 dirs)
 *   init                         gureum-init                     (0755)
 *   lib/modules/VERSION/<path>.ko  each module, decompressed     (0644)
 *   etc/gureum/modules           the modules' paths relative to /, one
 *                                per line, in load order           (0644)
 * owned by 0:0, mtime 0, inode numbers in order, entries sorted by name
 * (a directory before what it holds), no gzip timestamp: the same inputs
 * give the same bytes. The file is padded with NULs to a multiple of 4 bytes
 * so another archive may follow (Documentation/driver-api/early-userspace/
 * buffer-format.rst: initramfs := ("\0" | cpio_archive |
 * cpio_compressed_archive)*, each cpio header 4-byte aligned).
 *
 * The instance initramfs (at each start): a copy of the common file
 * followed by an uncompressed newc archive holding etc/, etc/gureum/ and
 * etc/gureum/instance.json (0600, the instance's object as compact JSON with
 * sorted keys), padded to 4 bytes. The kernel unpacks both in turn.
 *
 * Files are written to OUT.tmp-XXXXXX next to OUT and renamed into place,
 * so a reader sees the old file or the new one, never a part (the common
 * file is also fdatasync'd first: it is a cache that outlives reboots).
 *
 * Every function returns 0 or a negative errno with err filled: what failed,
 * on which file and what to do. */
#ifndef GR_DAEMON_VM_INITRD_H
#define GR_DAEMON_VM_INITRD_H

#include <limits.h>
#include <stddef.h>
#include <jansson.h>
#include "common/error.h"

#define VM_KERNEL_CACHE_DIR "/var/cache/gureum/kernel"   /* $GUREUM_KERNEL_DIR overrides */
#define VM_KERNEL_VERSION_MAX 128

struct vm_kernel {
	char version[VM_KERNEL_VERSION_MAX];  /* kernel release, "6.1.0-56-cloud-amd64" */
	char image[PATH_MAX];                 /* the bzImage, an absolute path without symlinks */
	char modules_dir[PATH_MAX];           /* its lib/modules/VERSION (holds modules.dep), likewise */
};

/* The modules an initramfs holds, in load order. */
struct initrd_modules {
	size_t count;
	char **files;   /* relative to the modules directory, as on disk
			 * ("kernel/drivers/virtio/virtio.ko.xz") */
};

/* NULL-terminated module names: the devices every VM has, and those taken
 * only when the kernel has them. */
extern const char *const initrd_modules_wanted[];
extern const char *const initrd_modules_optional[];

/* Finds the kernel at path: a kernel directory (boot/vmlinuz-VERSION, exactly
 * one, and lib/modules/VERSION/modules.dep) or a vmlinuz file (modules looked
 * for as said above). path NULL or "": $GUREUM_KERNEL_DIR/current, else
 * VM_KERNEL_CACHE_DIR/current. -ENOENT when there is no kernel or no modules
 * (the message says to run scripts/fetch-kernel.sh or depmod), -EINVAL for
 * a version that cannot be told or is not a plain name. */
int initrd_kernel_find(const char *path, struct vm_kernel *out, struct gr_error *err);

/* The bzImage setup header's kernel version string, up to its first space,
 * into out (n bytes); -ENOENT when file is not a bzImage or has no version
 * string, -EINVAL when it is not a plain name (or longer than n - 1). */
int initrd_bzimage_version(const char *file, char *out, size_t n, struct gr_error *err);

/* The closure of wanted (all required) and optional (taken when present)
 * over k's modules.dep, dependencies first, built-in modules skipped.
 * Either list may be NULL. out is empty when everything is built in. */
int initrd_modules_resolve(const struct vm_kernel *k, const char *const *wanted,
			   const char *const *optional, struct initrd_modules *out, struct gr_error *err);
void initrd_modules_free(struct initrd_modules *m);

/* -ENOEXEC unless data (the bytes of the init program named what) is an
 * x86-64 ELF executable with no program interpreter: the initramfs has no
 * dynamic loader or libraries, so a dynamic /init would only make the
 * kernel panic. */
int initrd_check_static_init(const char *what, const unsigned char *data, size_t size, struct gr_error *err);

/* Builds the common initramfs for k (initrd_modules_wanted/optional) with
 * init_binary as /init, at out_path (replaced if it exists). */
int initrd_build_common(const struct vm_kernel *k, const char *init_binary, const char *out_path,
			struct gr_error *err);

/* Writes out_path (mode 0600: the config may hold secrets): common_path's
 * bytes, padded to 4, then the archive with etc/gureum/instance.json made
 * from instance_config (a JSON object). */
int initrd_build_instance(const char *common_path, const json_t *instance_config, const char *out_path,
			  struct gr_error *err);

/* The common initramfs for k and init_binary, built once:
 * STATE/vm/initrd-VERSION-HASH.img, HASH the SHA-256 (hex) of the layout's
 * version, the kernel version, init_binary's bytes and each module's path
 * and bytes. Builds it when missing, else only hashes (a few ms); its path
 * goes to out (out_len bytes). Old files are left for the caller to prune. */
int initrd_common_cached(const char *state_dir, const struct vm_kernel *k, const char *init_binary,
			 char *out, size_t out_len, struct gr_error *err);

#endif
