/* Importers (src/daemon/README.md "Images"): a file or directory the daemon
 * reads becomes an image in the store, through the layer engine
 * (image/layer.h) for the layers and image/oci.h for the JSON.
 *
 *   OCI image layout: a directory with oci-layout + index.json, or a tar
 *     (any compression) of one. The manifest for linux/<this host> is taken
 *     from the index; the manifest, config and every layer blob are checked
 *     against their descriptors' sha256 and size, and each layer's
 *     uncompressed digest against the config's diff_ids. Fingerprint: the
 *     manifest's digest.
 *   docker-archive (`docker save`, `podman save`): manifest.json + config +
 *     layer tars, in a tar or unpacked in a directory; each layer's diff_id
 *     (sha256 of its uncompressed tar) must be the config's. Fingerprint:
 *     the config's sha256 (Docker's image id).
 *   rootfs tarball (tar, gzip, xz, zstd, bzip2): one layer. Fingerprint:
 *     the archive file's sha256.
 *
 * Everything is staged in STATE/images/tmp/ and committed only when every
 * digest matched (image_store_commit): on any error nothing is stored. An
 * image already in the store is not unpacked again (res->already). */
#ifndef GR_DAEMON_IMAGE_IMPORT_H
#define GR_DAEMON_IMAGE_IMPORT_H

#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"
#include "daemon/image/store.h"

/* Progress of a long import or build. stage names the step ("reading",
 * "unpacking layers", "debootstrap"); bytes of total (0: unknown); line: a
 * line of a tool's output, or NULL. Returns non-zero to cancel (the call
 * then fails with -ECANCELED and stores nothing). May be NULL. */
struct image_progress {
	int (*report)(void *ctx, const char *stage, uint64_t bytes, uint64_t total, const char *line);
	void *ctx;
};

struct image_import_result {
	char fingerprint[IMAGE_FP_HEX];
	bool already;                 /* it was in the store (aliases still added) */
	char format[24];              /* "oci-layout", "oci-archive", "docker-archive", "rootfs" */
};

/* path: absolute, a regular file or a directory. */
int image_import(struct image_store *is, const char *path, const char *const *aliases,
		 const struct image_progress *pr, struct image_import_result *res, struct gr_error *err);

/* A rootfs tar file (any compression) as a one-layer image: what the
 * builders end with. source/description go to the image's metadata;
 * config may be NULL. */
int image_import_rootfs(struct image_store *is, const char *path, const char *source, const char *description,
			json_t *config, const char *const *aliases, const struct image_progress *pr,
			struct image_import_result *res, struct gr_error *err);

/* sha256 of a file's bytes (hex) and its size; progress as "stage". */
int image_sha256_file(const char *path, char hex[IMAGE_FP_HEX], uint64_t *size, const struct image_progress *pr,
		      const char *stage, struct gr_error *err);

#endif
