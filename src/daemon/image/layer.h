/* The layer engine: OCI layer tar streams <-> overlayfs-format layer
 * directories (src/daemon/README.md, "Layers").
 *
 * A layer directory holds one unpacked layer as overlayfs reads it as a
 * lowerdir: an OCI whiteout `.wh.NAME` is a character device 0/0 named NAME,
 * an opaque directory (`.wh..wh..opq` in the tar) carries the xattr
 * trusted.overlay.opaque=y. So a container's rootfs is
 * overlay(lowerdir = layers top..bottom, upperdir = the instance's).
 *
 * Unpacking is hostile-input safe: paths are sanitized, every file is created
 * relative to a directory descriptor of the layer directory (openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, single
 * components with O_NOFOLLOW), so nothing is ever written outside it; device
 * nodes and trusted.* xattrs from the archive are refused; sizes, entry
 * counts and path lengths are bounded. On any error the layer directory is
 * removed: nothing half-made is left.
 *
 * Thread-safe (no global state); each call is synchronous. Must run as root
 * (ownership, trusted.* xattrs, whiteout devices). */
#ifndef GR_DAEMON_IMAGE_LAYER_H
#define GR_DAEMON_IMAGE_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

#define LAYER_DIGEST_HEX 65                     /* 64 hex digits + NUL */
#define LAYER_DEFAULT_MAX_BYTES (64ull << 30)   /* file data, 64 GiB */
#define LAYER_DEFAULT_MAX_ENTRIES 1000000u
#define LAYER_DEFAULT_MAX_PATH 4096u            /* bytes of a sanitized path */
#define LAYER_MAX_DEPTH 128u                    /* directories nested in a layer */

/* Device nodes in an archive (other than whiteouts, which are not devices in
 * the tar). Containers must not get arbitrary host devices from images: their
 * /dev is the runtime's, so the default refuses the layer. */
enum layer_devices {
	LAYER_DEVICES_REFUSE = 0, /* error naming the entry (default) */
	LAYER_DEVICES_SKIP,       /* leave them out, counted in res->skipped */
	LAYER_DEVICES_CREATE,     /* mknod them (trusted input only) */
};

/* Progress: compressed bytes read so far and file bytes written so far.
 * Called every few MiB and at the end. Return non-zero to cancel (the call
 * then fails with -ECANCELED, the directory removed). */
typedef int (*layer_progress_fn)(void *ctx, uint64_t read_bytes, uint64_t written_bytes);

struct layer_opts {
	const char *name;             /* for messages ("layer.tar", "blobs/sha256/ab.."); NULL: "layer" */
	uint64_t max_bytes;           /* total file data; 0: LAYER_DEFAULT_MAX_BYTES */
	uint32_t max_entries;         /* 0: LAYER_DEFAULT_MAX_ENTRIES */
	uint32_t max_path;            /* 0: LAYER_DEFAULT_MAX_PATH */
	enum layer_devices devices;
	/* When set (64 lowercase hex digits, optionally "sha256:"-prefixed), the
	 * computed digest must match or the call fails and nothing is kept. */
	const char *expect_blob;      /* sha256 of the bytes read (compressed) */
	const char *expect_diff_id;   /* sha256 of the uncompressed tar */
	layer_progress_fn progress;
	void *progress_ctx;
};

struct layer_result {
	char diff_id[LAYER_DIGEST_HEX];   /* sha256 hex of the uncompressed tar */
	char blob[LAYER_DIGEST_HEX];      /* sha256 hex of the bytes read (compressed) */
	uint64_t blob_size;               /* bytes read */
	uint64_t tar_size;                /* bytes of the uncompressed tar */
	uint64_t content_size;            /* bytes of file data written */
	uint64_t entries;                 /* archive entries applied */
	uint64_t whiteouts;               /* .wh.NAME converted */
	uint64_t opaques;                 /* .wh..wh..opq converted */
	uint64_t skipped;                 /* devices (LAYER_DEVICES_SKIP), dropped xattrs */
	char compression[16];             /* "none", "gzip", "xz", "zstd", ... */
};

/* A source of bytes: returns the count read, 0 at end, or -errno. */
typedef ssize_t (*layer_read_fn)(void *ctx, void *buf, size_t len);

/* Reads one layer tar stream (plain, gzip, xz, zstd, bzip2: detected) from
 * read() into dest_dir, which must not exist and is created (mode 0755; its
 * parent must exist). The source is read to its end, so both digests cover
 * every byte. On failure dest_dir is removed and err says which entry and why
 * ("layer.tar: truncated entry usr/bin/x: ..."). opts may be NULL. */
int layer_unpack(layer_read_fn read, void *read_ctx, const char *dest_dir,
                 const struct layer_opts *opts, struct layer_result *res, struct gr_error *err);
/* The same from a file descriptor (read to its end, not closed). */
int layer_unpack_fd(int fd, const char *dest_dir, const struct layer_opts *opts,
                    struct layer_result *res, struct gr_error *err);

/* Applies overlay-format layer directories (bottom first) in order into
 * dest_dir (must not exist; created): whiteouts delete, opaque directories
 * clear what lower layers put there. The result has no whiteouts and no
 * overlay xattrs; ownership, modes, mtimes, allowed xattrs and hard links
 * within a layer are kept. On failure dest_dir is removed. */
int layer_flatten(const char *const *layer_dirs, size_t n, const char *dest_dir, struct gr_error *err);

/* Writes a layer directory as an uncompressed OCI layer tar (pax) to out_fd:
 * whiteout devices become `.wh.NAME`, the opaque xattr `.wh..wh..opq`;
 * entries sorted byte-wise per directory (the opaque marker first), no root
 * entry, numeric ids only, so the same tree always gives the same bytes.
 * Device nodes (other than whiteouts) and sockets are left out: images carry
 * none (layer_unpack refuses devices), so a builder's rootfs with a /dev can
 * be written as is.
 * digest_hex (may be NULL) gets the sha256 of what was written, size (may be
 * NULL) its length. */
int layer_write_tar(const char *layer_dir, int out_fd, char digest_hex[LAYER_DIGEST_HEX],
                    uint64_t *size, struct gr_error *err);

#endif
