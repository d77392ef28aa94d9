/* The exporter: an image of the store as an OCI image layout tarball (what
 * `podman load -i FILE` and `skopeo copy oci-archive:FILE` read):
 *   oci-layout, index.json (one manifest, annotated
 *   org.opencontainers.image.ref.name = the alias asked for, or the image's
 *   first alias), blobs/sha256/: the manifest, a config (architecture, os,
 *   the image's config, rootfs.diff_ids) and each layer regenerated from its
 *   directory by layer_write_tar (uncompressed,
 *   application/vnd.oci.image.layer.v1.tar).
 * The file is written beside its final name and renamed when complete; an
 * existing file is not overwritten. */
#ifndef GR_DAEMON_IMAGE_EXPORT_H
#define GR_DAEMON_IMAGE_EXPORT_H

#include "common/error.h"
#include "daemon/image/import.h"

/* ref: alias or fingerprint; path: absolute. */
int image_export(struct image_store *is, const char *ref, const char *path, const struct image_progress *pr,
		 struct gr_error *err);

#endif
