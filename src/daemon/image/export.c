/* See export.h. */
#include "daemon/image/export.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "daemon/image/layer.h"
#include "daemon/image/oci.h"
#include "daemon/store/images.h"

struct blob {
	char digest[IMAGE_FP_HEX];
	uint64_t size;
	char *data;                   /* JSON blobs */
	char file[PATH_MAX];          /* layer blobs */
};

static void sha256_mem(const char *data, size_t len, char hex[IMAGE_FP_HEX])
{
	unsigned char d[32];
	unsigned dl = 0;
	EVP_Digest(data, len, d, &dl, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static int json_blob(json_t *j, struct blob *b, struct gr_error *err)
{
	b->data = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!b->data)
		return gr_error_set(err, ENOMEM, "cannot encode JSON");
	b->size = strlen(b->data);
	sha256_mem(b->data, b->size, b->digest);
	return 0;
}

static int add_header(struct archive *a, const char *name, mode_t type, uint64_t size, struct gr_error *err)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
	archive_entry_set_size(e, type == AE_IFDIR ? 0 : (la_int64_t)size);
	archive_entry_set_mtime(e, 0, 0);
	int r = archive_write_header(a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return gr_error_set(err, EIO, "cannot write %s: %s", name, archive_error_string(a));
	return 0;
}

static int add_mem(struct archive *a, const char *name, const char *data, size_t len, struct gr_error *err)
{
	int rc = add_header(a, name, AE_IFREG, len, err);
	if (rc < 0)
		return rc;
	if (len && archive_write_data(a, data, len) != (la_ssize_t)len)
		return gr_error_set(err, EIO, "cannot write %s: %s", name, archive_error_string(a));
	return 0;
}

static int add_file(struct archive *a, const char *name, const struct blob *b, struct gr_error *err)
{
	int rc = add_header(a, name, AE_IFREG, b->size, err);
	if (rc < 0)
		return rc;
	gr_autoclose int fd = open(b->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open %s", b->file);
	static __thread char buf[1 << 16];
	uint64_t left = b->size;
	while (left > 0) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return gr_error_sys(err, n < 0 ? errno : EIO, "cannot read %s", b->file);
		if (archive_write_data(a, buf, (size_t)n) != n)
			return gr_error_set(err, EIO, "cannot write %s: %s", name, archive_error_string(a));
		left -= (uint64_t)n;
	}
	return 0;
}

static int write_archive(const char *out, struct blob *layers, size_t n, struct blob *config, struct blob *manifest,
			 const char *index, struct gr_error *err)
{
	struct archive *a = archive_write_new();
	if (!a)
		return gr_error_set(err, ENOMEM, "out of memory");
	archive_write_set_format_pax_restricted(a);
	int rc = 0;
	if (archive_write_open_filename(a, out) != ARCHIVE_OK) {
		rc = gr_error_set(err, EIO, "cannot write %s: %s", out, archive_error_string(a));
		archive_write_free(a);
		return rc;
	}
	static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	char name[128];
	if ((rc = add_mem(a, "oci-layout", layout, strlen(layout), err)) < 0 ||
	    (rc = add_mem(a, "index.json", index, strlen(index), err)) < 0 ||
	    (rc = add_header(a, "blobs/", AE_IFDIR, 0, err)) < 0 ||
	    (rc = add_header(a, "blobs/sha256/", AE_IFDIR, 0, err)) < 0)
		goto out;
	snprintf(name, sizeof(name), "blobs/sha256/%s", manifest->digest);
	if ((rc = add_mem(a, name, manifest->data, manifest->size, err)) < 0)
		goto out;
	snprintf(name, sizeof(name), "blobs/sha256/%s", config->digest);
	if ((rc = add_mem(a, name, config->data, config->size, err)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t k = 0; k < i; k++)
			dup |= strcmp(layers[k].digest, layers[i].digest) == 0;
		if (dup)
			continue;
		snprintf(name, sizeof(name), "blobs/sha256/%s", layers[i].digest);
		if ((rc = add_file(a, name, &layers[i], err)) < 0)
			goto out;
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		rc = gr_error_set(err, EIO, "cannot finish %s: %s", out, archive_error_string(a));
out:
	archive_write_free(a);
	return rc;
}

static int export_in(struct image_store *is, const char *ref, const char *fp, const char *staging, const char *path,
		     const struct image_progress *pr, struct gr_error *err)
{
	gr_autojson json_t *img = NULL;
	int rc = image_store_read_json(image_store_state_dir(is), fp, &img, err);
	if (rc < 0)
		return rc;
	json_t *ids = json_object_get(img, "layers");
	size_t n = json_array_size(ids);
	if (n == 0 || n > OCI_LAYERS_MAX)
		return gr_error_set(err, EINVAL, "image %.12s: image.json has no layers", fp);
	struct blob *layers = calloc(n, sizeof(*layers));
	if (!layers)
		return gr_error_set(err, ENOMEM, "out of memory");
	struct blob config = { 0 }, manifest = { 0 };
	json_t *diff_ids = json_array(), *mlayers = json_array();
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *id = json_string_value(json_array_get(ids, i));
		if (id && strncmp(id, "sha256:", 7) == 0)
			id += 7;
		if (!image_fingerprint_valid(id)) {
			rc = gr_error_set(err, EINVAL, "image %.12s: image.json: layers[%zu] is not a digest", fp, i);
			break;
		}
		char dir[PATH_MAX];
		image_store_layer_path(image_store_state_dir(is), id, dir);
		snprintf(layers[i].file, sizeof(layers[i].file), "%s/layer-%zu.tar", staging, i);
		gr_autoclose int fd = open(layers[i].file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = gr_error_sys(err, errno, "cannot create %s", layers[i].file);
			break;
		}
		if (pr && pr->report && pr->report(pr->ctx, "writing layers", i, n, NULL)) {
			rc = gr_error_set(err, ECANCELED, "cancelled");
			break;
		}
		if ((rc = layer_write_tar(dir, fd, layers[i].digest, &layers[i].size, err)) < 0)
			break;
		json_array_append_new(diff_ids, json_sprintf("sha256:%s", layers[i].digest));
		json_array_append_new(mlayers, json_pack("{s:s, s:s+, s:I}", "mediaType", OCI_MT_LAYER, "digest",
							 "sha256:", layers[i].digest, "size",
							 (json_int_t)layers[i].size));
	}
	gr_autojson json_t *cfg = NULL, *man = NULL, *index = NULL;
	gr_autofree char *index_text = NULL;
	if (rc < 0)
		goto out;
	const char *arch = json_string_value(json_object_get(img, "architecture"));
	const char *created = json_string_value(json_object_get(img, "created_at"));
	json_t *icfg = json_object_get(img, "config");
	cfg = json_pack("{s:s, s:s, s:s, s:O, s:{s:s, s:O}}", "created", created ? created : "1970-01-01T00:00:00Z",
			"architecture", oci_goarch(arch && *arch ? arch : "x86_64"), "os", "linux", "config",
			json_is_object(icfg) ? icfg : json_object(), "rootfs", "type", "layers", "diff_ids", diff_ids);
	if (!cfg || (rc = json_blob(cfg, &config, err)) < 0) {
		rc = rc < 0 ? rc : gr_error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	man = json_pack("{s:i, s:s, s:{s:s, s:s+, s:I}, s:O}", "schemaVersion", 2, "mediaType", OCI_MT_MANIFEST,
			"config", "mediaType", OCI_MT_CONFIG, "digest", "sha256:", config.digest, "size",
			(json_int_t)config.size, "layers", mlayers);
	if (!man || (rc = json_blob(man, &manifest, err)) < 0) {
		rc = rc < 0 ? rc : gr_error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	/* The name podman gives the loaded image: the alias asked for, else the first. */
	char name[IMAGE_ALIAS_MAX + 1] = "";
	char other[IMAGE_FP_HEX];
	if (store_alias_get(image_store_db(is), ref, other, NULL) == 0)
		snprintf(name, sizeof(name), "%s", ref);
	else {
		gr_autostrv char **aliases = NULL;
		if (store_image_aliases(image_store_db(is), fp, &aliases, NULL) == 0 && aliases[0])
			snprintf(name, sizeof(name), "%s", aliases[0]);
	}
	json_t *desc = json_pack("{s:s, s:s+, s:I}", "mediaType", OCI_MT_MANIFEST, "digest", "sha256:", manifest.digest,
				 "size", (json_int_t)manifest.size);
	if (desc && name[0])
		json_object_set_new(desc, "annotations", json_pack("{s:s}", "org.opencontainers.image.ref.name", name));
	index = json_pack("{s:i, s:[o]}", "schemaVersion", 2, "manifests", desc);
	index_text = index ? json_dumps(index, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!index_text) {
		rc = gr_error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (pr && pr->report)
		pr->report(pr->ctx, "writing layers", n, n, NULL);
	rc = write_archive(path, layers, n, &config, &manifest, index_text, err);
out:
	json_decref(diff_ids);
	json_decref(mlayers);
	free(config.data);
	free(manifest.data);
	free(layers);
	return rc;
}

int image_export(struct image_store *is, const char *ref, const char *path, const struct image_progress *pr,
		 struct gr_error *err)
{
	if (!path || path[0] != '/')
		return gr_error_set(err, EINVAL, "path \"%.200s\": must be absolute", path ? path : "");
	char fp[IMAGE_FP_HEX];
	int rc = image_store_resolve(is, ref, fp, err);
	if (rc < 0)
		return rc;
	struct stat st;
	if (lstat(path, &st) == 0)
		return gr_error_set(err, EEXIST, "%s exists: remove it or choose another file name", path);
	char dir[PATH_MAX], tmp[PATH_MAX], staging[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	if (stat(dir[0] ? dir : "/", &st) < 0 || !S_ISDIR(st.st_mode))
		return gr_error_set(err, ENOENT, "%s: the directory %s does not exist", path, dir[0] ? dir : "/");
	if (snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", path) >= (int)sizeof(tmp))
		return gr_error_set(err, ENAMETOOLONG, "%s: path too long", path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot create a file beside %s", path);
	close(fd);
	if ((rc = image_store_stage(is, staging, err)) < 0) {
		unlink(tmp);
		return rc;
	}
	rc = export_in(is, ref, fp, staging, tmp, pr, err);
	image_store_unstage(staging);
	if (rc == 0 && chmod(tmp, 0644) < 0)
		rc = gr_error_sys(err, errno, "cannot make %s readable", tmp);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = gr_error_sys(err, errno, "cannot rename %s to %s", tmp, path);
	if (rc < 0)
		unlink(tmp);
	return rc;
}
