/* See oci.h. */
#include "daemon/image/oci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"

static bool hex64(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* "sha256:HEX" -> HEX into out. */
static int parse_digest(const json_t *v, const char *where, const char *field, char out[65], struct gr_error *err)
{
	const char *s = json_string_value(v);
	if (!s)
		return gr_error_set(err, EINVAL, "%s: %s: missing or not a string", where, field);
	if (strncmp(s, "sha256:", 7) != 0)
		return gr_error_set(err, EINVAL, "%s: %s \"%.80s\": only sha256 digests are supported", where, field, s);
	if (!hex64(s + 7))
		return gr_error_set(err, EINVAL, "%s: %s \"%.80s\": not sha256: and 64 lowercase hex digits", where,
				    field, s);
	memcpy(out, s + 7, 65);
	return 0;
}

static int copy_str(const json_t *obj, const char *key, char *out, size_t n, const char *where, struct gr_error *err)
{
	json_t *v = json_object_get(obj, key);
	out[0] = '\0';
	if (!v)
		return 0;
	const char *s = json_string_value(v);
	if (!s)
		return gr_error_set(err, EINVAL, "%s: %s: not a string", where, key);
	if (strlen(s) >= n)
		return gr_error_set(err, EINVAL, "%s: %s: longer than %zu bytes", where, key, n - 1);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

int oci_descriptor_parse(const json_t *j, const char *where, struct oci_descriptor *d, struct gr_error *err)
{
	memset(d, 0, sizeof(*d));
	if (!json_is_object(j))
		return gr_error_set(err, EINVAL, "%s: not a descriptor object", where);
	int rc;
	if ((rc = copy_str(j, "mediaType", d->media_type, sizeof(d->media_type), where, err)) < 0 ||
	    (rc = parse_digest(json_object_get(j, "digest"), where, "digest", d->digest, err)) < 0)
		return rc;
	json_t *size = json_object_get(j, "size");
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return gr_error_set(err, EINVAL, "%s: size: missing or not a non-negative integer", where);
	d->size = (uint64_t)json_integer_value(size);
	json_t *pl = json_object_get(j, "platform");
	if (pl) {
		if (!json_is_object(pl))
			return gr_error_set(err, EINVAL, "%s: platform: not an object", where);
		if ((rc = copy_str(pl, "os", d->os, sizeof(d->os), where, err)) < 0 ||
		    (rc = copy_str(pl, "architecture", d->architecture, sizeof(d->architecture), where, err)) < 0 ||
		    (rc = copy_str(pl, "variant", d->variant, sizeof(d->variant), where, err)) < 0)
			return rc;
	}
	json_t *ann = json_object_get(j, "annotations");
	if (ann && !json_is_object(ann))
		return gr_error_set(err, EINVAL, "%s: annotations: not an object", where);
	const char *ref = json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
	if (ref)
		snprintf(d->ref_name, sizeof(d->ref_name), "%s", ref);
	return 0;
}

enum oci_kind oci_media_kind(const char *mt)
{
	if (strcmp(mt, OCI_MT_INDEX) == 0 || strcmp(mt, DOCKER_MT_LIST) == 0)
		return OCI_KIND_INDEX;
	if (strcmp(mt, OCI_MT_MANIFEST) == 0 || strcmp(mt, DOCKER_MT_MANIFEST) == 0)
		return OCI_KIND_MANIFEST;
	return OCI_KIND_OTHER;
}

bool oci_layer_media_ok(const char *mt)
{
	static const char *const ok[] = {
		OCI_MT_LAYER,
		OCI_MT_LAYER "+gzip",
		OCI_MT_LAYER "+zstd",
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		"application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.diff.tar",
		"application/vnd.docker.image.rootfs.diff.tar.zstd",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(mt, ok[i]) == 0)
			return true;
	return false;
}

int oci_index_pick(const json_t *index, const char *where, const char *want_arch, struct oci_descriptor *out,
		   struct gr_error *err)
{
	if (!json_is_object(index))
		return gr_error_set(err, EINVAL, "%s: not a JSON object", where);
	json_t *sv = json_object_get(index, "schemaVersion");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2)
		return gr_error_set(err, EINVAL, "%s: schemaVersion: expected 2", where);
	json_t *list = json_object_get(index, "manifests");
	if (!json_is_array(list))
		return gr_error_set(err, EINVAL, "%s: manifests: missing or not an array", where);
	if (json_array_size(list) == 0)
		return gr_error_set(err, EINVAL, "%s: manifests: empty (no image in this layout)", where);
	if (json_array_size(list) > 1024)
		return gr_error_set(err, EINVAL, "%s: manifests: more than 1024 entries", where);
	struct oci_descriptor d;
	size_t i, candidates = 0, match = 0, first = 0;
	json_t *m;
	char platforms[256] = "";
	size_t po = 0;
	json_array_foreach(list, i, m) {
		char w[160];
		snprintf(w, sizeof(w), "%s: manifests[%zu]", where, i);
		int rc = oci_descriptor_parse(m, w, &d, err);
		if (rc < 0)
			return rc;
		if (oci_media_kind(d.media_type) == OCI_KIND_OTHER)
			continue; /* attestations, signatures... */
		if (candidates++ == 0)
			first = i;
		if (po < sizeof(platforms) - 1)
			po += (size_t)snprintf(platforms + po, sizeof(platforms) - po, "%s%s/%s", po ? ", " : "",
					       d.os[0] ? d.os : "?", d.architecture[0] ? d.architecture : "?");
		if (strcmp(d.os, "linux") == 0 && strcmp(d.architecture, want_arch) == 0 && !match)
			match = i + 1;
	}
	if (candidates == 0)
		return gr_error_set(err, EINVAL, "%s: no image manifest among its %zu entries", where,
				    json_array_size(list));
	if (match)
		first = match - 1;
	else if (candidates > 1)
		return gr_error_set(err, ENOENT, "%s: %zu images, none for linux/%s (there are: %s)", where, candidates,
				    want_arch, platforms);
	char w[160];
	snprintf(w, sizeof(w), "%s: manifests[%zu]", where, first);
	int rc = oci_descriptor_parse(json_array_get(list, first), w, out, err);
	if (rc == 0 && out->architecture[0] && strcmp(out->architecture, want_arch) != 0)
		return gr_error_set(err, ENOENT, "%s: the image is for %s/%s, not linux/%s", where, out->os,
				    out->architecture, want_arch);
	return rc;
}

void oci_manifest_clear(struct oci_manifest *m)
{
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

int oci_manifest_parse(const json_t *j, const char *where, struct oci_manifest *m, struct gr_error *err)
{
	memset(m, 0, sizeof(*m));
	if (!json_is_object(j))
		return gr_error_set(err, EINVAL, "%s: not a JSON object", where);
	json_t *sv = json_object_get(j, "schemaVersion");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2)
		return gr_error_set(err, EINVAL, "%s: schemaVersion: expected 2", where);
	const char *mt = json_string_value(json_object_get(j, "mediaType"));
	if (mt && oci_media_kind(mt) != OCI_KIND_MANIFEST)
		return gr_error_set(err, EINVAL, "%s: mediaType \"%.100s\" is not an image manifest", where, mt);
	char w[160];
	snprintf(w, sizeof(w), "%s: config", where);
	int rc = oci_descriptor_parse(json_object_get(j, "config"), w, &m->config, err);
	if (rc < 0)
		return rc;
	json_t *layers = json_object_get(j, "layers");
	if (!json_is_array(layers))
		return gr_error_set(err, EINVAL, "%s: layers: missing or not an array", where);
	size_t n = json_array_size(layers);
	if (n == 0)
		return gr_error_set(err, EINVAL, "%s: layers: empty", where);
	if (n > OCI_LAYERS_MAX)
		return gr_error_set(err, EINVAL, "%s: layers: %zu of them, more than %d", where, n, OCI_LAYERS_MAX);
	m->layers = calloc(n, sizeof(*m->layers));
	if (!m->layers)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		snprintf(w, sizeof(w), "%s: layers[%zu]", where, i);
		if ((rc = oci_descriptor_parse(json_array_get(layers, i), w, &m->layers[i], err)) < 0) {
			oci_manifest_clear(m);
			return rc;
		}
		if (!oci_layer_media_ok(m->layers[i].media_type)) {
			rc = gr_error_set(err, ENOTSUP, "%s: mediaType \"%.100s\" is not a layer type gureum reads", w,
					  m->layers[i].media_type);
			oci_manifest_clear(m);
			return rc;
		}
	}
	m->n_layers = n;
	return 0;
}

void oci_image_config_clear(struct oci_image_config *c)
{
	gr_strv_free(c->diff_ids);
	if (c->config)
		json_decref(c->config);
	memset(c, 0, sizeof(*c));
}

static bool strv_json(const json_t *v, size_t max)
{
	if (!json_is_array(v) || json_array_size(v) > max)
		return false;
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x) if (!json_is_string(x)) return false;
	return true;
}

int oci_image_config_parse(const json_t *j, const char *where, struct oci_image_config *c, struct gr_error *err)
{
	memset(c, 0, sizeof(*c));
	if (!json_is_object(j))
		return gr_error_set(err, EINVAL, "%s: not a JSON object", where);
	int rc;
	if ((rc = copy_str(j, "architecture", c->architecture, sizeof(c->architecture), where, err)) < 0 ||
	    (rc = copy_str(j, "os", c->os, sizeof(c->os), where, err)) < 0)
		return rc;
	if (c->os[0] && strcmp(c->os, "linux") != 0)
		return gr_error_set(err, ENOTSUP, "%s: os \"%s\": only linux images run here", where, c->os);
	json_t *rootfs = json_object_get(j, "rootfs");
	if (!json_is_object(rootfs))
		return gr_error_set(err, EINVAL, "%s: rootfs: missing or not an object", where);
	const char *type = json_string_value(json_object_get(rootfs, "type"));
	if (!type || strcmp(type, "layers") != 0)
		return gr_error_set(err, EINVAL, "%s: rootfs.type: expected \"layers\"", where);
	json_t *ids = json_object_get(rootfs, "diff_ids");
	if (!json_is_array(ids) || json_array_size(ids) > OCI_LAYERS_MAX)
		return gr_error_set(err, EINVAL, "%s: rootfs.diff_ids: missing, not an array or more than %d", where,
				    OCI_LAYERS_MAX);
	c->diff_ids = calloc(json_array_size(ids) + 1, sizeof(char *));
	if (!c->diff_ids)
		return gr_error_set(err, ENOMEM, "out of memory");
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x) {
		char field[48], hex[65];
		snprintf(field, sizeof(field), "rootfs.diff_ids[%zu]", i);
		if ((rc = parse_digest(x, where, field, hex, err)) < 0 || !(c->diff_ids[i] = strdup(hex))) {
			oci_image_config_clear(c);
			return rc < 0 ? rc : gr_error_set(err, ENOMEM, "out of memory");
		}
		c->n_diff_ids++;
	}
	c->config = json_object();
	json_t *cfg = json_object_get(j, "config");
	if (cfg && !json_is_null(cfg)) {
		if (!json_is_object(cfg)) {
			oci_image_config_clear(c);
			return gr_error_set(err, EINVAL, "%s: config: not an object", where);
		}
		static const char *const lists[] = { "Env", "Cmd", "Entrypoint" };
		for (size_t k = 0; k < 3; k++) {
			json_t *v = json_object_get(cfg, lists[k]);
			if (!v || json_is_null(v))
				continue;
			if (!strv_json(v, 4096)) {
				oci_image_config_clear(c);
				return gr_error_set(err, EINVAL, "%s: config.%s: not an array of strings", where, lists[k]);
			}
			json_object_set(c->config, lists[k], v);
		}
		static const char *const strs[] = { "WorkingDir", "User" };
		for (size_t k = 0; k < 2; k++) {
			json_t *v = json_object_get(cfg, strs[k]);
			if (!v || json_is_null(v))
				continue;
			if (!json_is_string(v) || json_string_length(v) > 4096) {
				oci_image_config_clear(c);
				return gr_error_set(err, EINVAL, "%s: config.%s: not a string", where, strs[k]);
			}
			json_object_set(c->config, strs[k], v);
		}
	}
	return 0;
}

bool oci_path_ok(const char *p)
{
	if (!p || !*p || strlen(p) > 1024 || p[0] == '/')
		return false;
	if (strncmp(p, "./", 2) == 0)
		p += 2;
	if (!*p)
		return false;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!e)
			return true;
		p = e + 1;
	}
}

void docker_manifest_clear(struct docker_manifest *m)
{
	free(m->config);
	gr_strv_free(m->layers);
	free(m->repo_tag);
	memset(m, 0, sizeof(*m));
}

int docker_manifest_parse(const json_t *j, const char *where, struct docker_manifest *m, struct gr_error *err)
{
	memset(m, 0, sizeof(*m));
	if (!json_is_array(j) || json_array_size(j) == 0)
		return gr_error_set(err, EINVAL, "%s: expected a non-empty array of images", where);
	if (json_array_size(j) > 1)
		return gr_error_set(err, EINVAL, "%s: %zu images in one archive: save one image per archive", where,
				    json_array_size(j));
	json_t *e = json_array_get(j, 0);
	if (!json_is_object(e))
		return gr_error_set(err, EINVAL, "%s: [0]: not an object", where);
	const char *config = json_string_value(json_object_get(e, "Config"));
	if (!config || !oci_path_ok(config))
		return gr_error_set(err, EINVAL, "%s: [0].Config: missing or not a relative path inside the archive",
				    where);
	json_t *layers = json_object_get(e, "Layers");
	if (!json_is_array(layers) || json_array_size(layers) == 0 || json_array_size(layers) > OCI_LAYERS_MAX)
		return gr_error_set(err, EINVAL, "%s: [0].Layers: missing, empty or more than %d", where,
				    OCI_LAYERS_MAX);
	m->config = strdup(config);
	m->layers = calloc(json_array_size(layers) + 1, sizeof(char *));
	if (!m->config || !m->layers) {
		docker_manifest_clear(m);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	size_t i;
	json_t *x;
	json_array_foreach(layers, i, x) {
		const char *s = json_string_value(x);
		if (!s || !oci_path_ok(s)) {
			docker_manifest_clear(m);
			return gr_error_set(err, EINVAL, "%s: [0].Layers[%zu]: not a relative path inside the archive",
					    where, i);
		}
		if (!(m->layers[i] = strdup(s))) {
			docker_manifest_clear(m);
			return gr_error_set(err, ENOMEM, "out of memory");
		}
		m->n_layers++;
	}
	json_t *tags = json_object_get(e, "RepoTags");
	if (json_is_array(tags) && json_is_string(json_array_get(tags, 0)))
		m->repo_tag = strdup(json_string_value(json_array_get(tags, 0)));
	return 0;
}

static const struct { const char *machine, *goarch; } arches[] = {
	{ "x86_64", "amd64" }, { "aarch64", "arm64" }, { "i686", "386" }, { "armv7l", "arm" },
	{ "ppc64le", "ppc64le" }, { "s390x", "s390x" }, { "riscv64", "riscv64" },
};

const char *oci_goarch(const char *machine)
{
	for (size_t i = 0; i < sizeof(arches) / sizeof(arches[0]); i++)
		if (strcmp(machine, arches[i].machine) == 0)
			return arches[i].goarch;
	return machine;
}

const char *oci_machine(const char *goarch)
{
	for (size_t i = 0; i < sizeof(arches) / sizeof(arches[0]); i++)
		if (strcmp(goarch, arches[i].goarch) == 0)
			return arches[i].machine;
	return goarch;
}
