/* The JSON of image archives, parsed and checked with errors that name the
 * field: OCI image layouts (index.json, manifests, image configs; the OCI
 * image spec v1.0/1.1) and docker-archive tarballs (manifest.json, what
 * `docker save` and `podman save` write; their configs are OCI-compatible).
 * Pure functions over jansson values: no files (tests/unit/test_image.c). */
#ifndef GR_DAEMON_IMAGE_OCI_H
#define GR_DAEMON_IMAGE_OCI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

#define OCI_JSON_MAX (4u << 20)          /* index, manifest, config: bytes */
#define OCI_LAYERS_MAX 256

#define OCI_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define OCI_MT_LAYER "application/vnd.oci.image.layer.v1.tar"
#define DOCKER_MT_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

enum oci_kind { OCI_KIND_INDEX, OCI_KIND_MANIFEST, OCI_KIND_OTHER };

struct oci_descriptor {
	char media_type[128];
	char digest[65];                 /* hex of "sha256:HEX" */
	uint64_t size;
	char os[32], architecture[32], variant[32]; /* platform, "" when absent */
	char ref_name[256];              /* org.opencontainers.image.ref.name, "" when absent */
};

/* A descriptor object (where names it in errors: "index.json: manifests[1]").
 * Only sha256 digests are accepted. */
int oci_descriptor_parse(const json_t *j, const char *where, struct oci_descriptor *d, struct gr_error *err);
enum oci_kind oci_media_kind(const char *media_type);
/* Layer media types: OCI tar/+gzip/+zstd (and non-distributable), docker's
 * rootfs.diff.tar(.gzip). */
bool oci_layer_media_ok(const char *media_type);

/* The manifest (or nested index) an index names for this host: the only
 * one, else the one for linux/want_arch (GOARCH names: "amd64", "arm64");
 * several without a match: -ENOENT listing the platforms there are. */
int oci_index_pick(const json_t *index, const char *where, const char *want_arch, struct oci_descriptor *out,
		   struct gr_error *err);

struct oci_manifest {
	struct oci_descriptor config;
	struct oci_descriptor *layers;
	size_t n_layers;
};
int oci_manifest_parse(const json_t *j, const char *where, struct oci_manifest *m, struct gr_error *err);
void oci_manifest_clear(struct oci_manifest *m);

struct oci_image_config {
	char architecture[32];           /* GOARCH as given ("amd64") */
	char os[32];
	char **diff_ids;                 /* hex, n_diff_ids of them */
	size_t n_diff_ids;
	json_t *config;                  /* {"Env","Cmd","Entrypoint","WorkingDir","User"} that were set */
};
/* rootfs.type must be "layers" and every diff_id a sha256. */
int oci_image_config_parse(const json_t *j, const char *where, struct oci_image_config *c, struct gr_error *err);
void oci_image_config_clear(struct oci_image_config *c);

/* docker-archive manifest.json: [{"Config":PATH,"RepoTags":[...],"Layers":[PATH...]}];
 * the first entry is taken (an archive of several images: -EINVAL saying
 * so). Paths are relative, without '..' (checked). */
struct docker_manifest {
	char *config;
	char **layers;
	size_t n_layers;
	char *repo_tag;                  /* the first RepoTags entry or NULL */
};
int docker_manifest_parse(const json_t *j, const char *where, struct docker_manifest *m, struct gr_error *err);
void docker_manifest_clear(struct docker_manifest *m);

/* A relative path inside an archive: no leading '/', no "." or ".." or empty
 * components (a leading "./" is dropped), at most 1024 bytes. */
bool oci_path_ok(const char *p);

/* uname's machine name <-> GOARCH ("x86_64" <-> "amd64"). */
const char *oci_goarch(const char *machine);
const char *oci_machine(const char *goarch);

#endif
