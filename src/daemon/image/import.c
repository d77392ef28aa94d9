/* See import.h. */
#include "daemon/image/import.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/image/layer.h"
#include "daemon/image/oci.h"
#include "daemon/store/images.h"

#define EXTRACT_MAX_ENTRIES 100000
#define REPORT_EVERY (4u << 20)

static int report(const struct image_progress *pr, const char *stage, uint64_t bytes, uint64_t total)
{
	return pr && pr->report ? pr->report(pr->ctx, stage, bytes, total, NULL) : 0;
}

static void host_machine(char out[65])
{
	struct utsname u;
	uname(&u);
	snprintf(out, 65, "%s", u.machine);
}

/* --- hashing ---------------------------------------------------------------------- */

static void hex_of(const unsigned char *d, char hex[IMAGE_FP_HEX])
{
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static int sha256_fd(int fd, const char *what, char hex[IMAGE_FP_HEX], uint64_t *size,
		     const struct image_progress *pr, const char *stage, uint64_t base, uint64_t total,
		     struct gr_error *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return gr_error_set(err, ENOMEM, "cannot start a SHA-256 digest");
	}
	static __thread char buf[1 << 16];
	uint64_t n = 0, last = 0;
	int rc = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = gr_error_sys(err, errno, "cannot read %s", what);
			break;
		}
		if (r == 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)r);
		n += (uint64_t)r;
		if (n - last >= REPORT_EVERY) {
			last = n;
			if (report(pr, stage, base + n, total)) {
				rc = gr_error_set(err, ECANCELED, "cancelled");
				break;
			}
		}
	}
	unsigned char d[32];
	unsigned dl = 0;
	EVP_DigestFinal_ex(md, d, &dl);
	EVP_MD_CTX_free(md);
	if (rc < 0)
		return rc;
	hex_of(d, hex);
	if (size)
		*size = n;
	return 0;
}

int image_sha256_file(const char *path, char hex[IMAGE_FP_HEX], uint64_t *size, const struct image_progress *pr,
		      const char *stage, struct gr_error *err)
{
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open %s", path);
	struct stat st;
	fstat(fd, &st);
	return sha256_fd(fd, path, hex, size, pr, stage, 0, (uint64_t)st.st_size, err);
}

/* --- files inside a layout directory -------------------------------------------------- */

/* root/rel, a regular file (no symlink as its last component). */
static int open_in(const char *root, const char *rel, struct stat *st, struct gr_error *err)
{
	if (!oci_path_ok(rel))
		return gr_error_set(err, EINVAL, "%.200s: not a relative path inside the image", rel);
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", root, rel) >= (int)sizeof(path))
		return gr_error_set(err, ENAMETOOLONG, "%s/%s: path too long", root, rel);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return gr_error_sys(err, errno, "%s: cannot open", rel);
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return gr_error_set(err, EINVAL, "%s: not a regular file", rel);
	}
	return fd;
}

/* A small JSON file; hex (may be NULL) gets its sha256. */
static int read_json_in(const char *root, const char *rel, json_t **out, char hex[IMAGE_FP_HEX], uint64_t *size,
			struct gr_error *err)
{
	struct stat st;
	gr_autoclose int fd = open_in(root, rel, &st, err);
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size > OCI_JSON_MAX)
		return gr_error_set(err, EFBIG, "%s: %lld bytes, more than the %u allowed for JSON", rel,
				    (long long)st.st_size, OCI_JSON_MAX);
	gr_autofree char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return gr_error_set(err, ENOMEM, "out of memory");
	ssize_t n = gr_read_all(fd, buf, (size_t)st.st_size);
	if (n != st.st_size)
		return gr_error_sys(err, n < 0 ? (int)-n : EIO, "%s: cannot read", rel);
	if (hex) {
		unsigned char d[32];
		unsigned dl = 0;
		EVP_Digest(buf, (size_t)n, d, &dl, EVP_sha256(), NULL);
		hex_of(d, hex);
	}
	if (size)
		*size = (uint64_t)n;
	json_error_t je;
	*out = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &je);
	if (!*out)
		return gr_error_set(err, EINVAL, "%s: malformed JSON: line %d, column %d: %s", rel, je.line, je.column,
				    je.text);
	return 0;
}

/* A JSON blob checked against its descriptor (size, then digest). */
static int read_blob_json(const char *root, const struct oci_descriptor *d, const char *what, json_t **out,
			  struct gr_error *err)
{
	char rel[128], hex[IMAGE_FP_HEX];
	uint64_t size = 0;
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", d->digest);
	if (d->size > OCI_JSON_MAX)
		return gr_error_set(err, EFBIG, "%s %s: %llu bytes, more than the %u allowed", what, rel,
				    (unsigned long long)d->size, OCI_JSON_MAX);
	int rc = read_json_in(root, rel, out, hex, &size, err);
	if (rc < 0)
		return gr_error_prefix(err, "%s", what);
	if (size != d->size || strcmp(hex, d->digest) != 0) {
		json_decref(*out);
		*out = NULL;
		if (size != d->size)
			return gr_error_set(err, EBADMSG, "%s %s: %llu bytes where its descriptor says %llu: nothing stored",
					    what, rel, (unsigned long long)size, (unsigned long long)d->size);
		return gr_error_set(err, EBADMSG, "%s %s: digest mismatch (the file's sha256 is %s): nothing stored",
				    what, rel, hex);
	}
	return 0;
}

/* --- layers ------------------------------------------------------------------------- */

struct layer_prog {
	const struct image_progress *pr;
	uint64_t base, total;
};

static int layer_progress(void *ctx, uint64_t read_bytes, uint64_t written)
{
	(void)written;
	struct layer_prog *lp = ctx;
	return report(lp->pr, "unpacking layers", lp->base + read_bytes, lp->total);
}

static bool store_has_layer(struct image_store *is, const char *hex)
{
	char path[PATH_MAX];
	image_store_layer_path(image_store_state_dir(is), hex, path);
	return access(path, F_OK) == 0;
}

/* Unpacks fd into STAGING/layers/<diffid> (expected ids may be NULL);
 * diff_id gets the computed one. */
static int unpack_layer(const char *staging, int fd, const char *name, const char *expect_blob,
			const char *expect_diff, struct layer_prog *lp, char diff_id[IMAGE_FP_HEX],
			struct layer_result *res, struct gr_error *err)
{
	char dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/layers", staging);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return gr_error_sys(err, errno, "cannot create %s", dir);
	static unsigned seq;
	snprintf(tmp, sizeof(tmp), "%s/.unpack-%u", dir, __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
	(void)gr_rm_rf(tmp, NULL);
	struct layer_opts o = { .name = name, .expect_blob = expect_blob, .expect_diff_id = expect_diff,
				.progress = layer_progress, .progress_ctx = lp };
	memset(res, 0, sizeof(*res));
	int rc = layer_unpack_fd(fd, tmp, &o, res, err);
	if (rc < 0) {
		if (rc == -ECANCELED)
			return gr_error_set(err, ECANCELED, "cancelled");
		return rc;
	}
	snprintf(diff_id, IMAGE_FP_HEX, "%s", res->diff_id);
	snprintf(final, sizeof(final), "%s/%s", dir, res->diff_id);
	if (access(final, F_OK) == 0) /* the same layer twice in one image */
		return gr_rm_rf(tmp, err);
	if (rename(tmp, final) < 0)
		return gr_error_sys(err, errno, "cannot rename %s", tmp);
	return 0;
}

static int image_exists(struct image_store *is, const char *fp)
{
	struct store_image row = { 0 };
	if (store_image_get(image_store_db(is), fp, &row, NULL) == 0) {
		store_image_clear(&row);
		return 1;
	}
	return 0;
}

/* Commits an image already present: only its aliases. */
static int commit_existing(struct image_store *is, const char *staging, const char *fp, const char *const *aliases,
			   struct image_import_result *res, struct gr_error *err)
{
	struct image_meta meta = { 0 };
	snprintf(meta.fingerprint, sizeof(meta.fingerprint), "%s", fp);
	snprintf(res->fingerprint, sizeof(res->fingerprint), "%s", fp);
	return image_store_commit(is, staging, &meta, aliases, &res->already, err);
}

/* --- OCI image layout --------------------------------------------------------------- */

static int import_oci(struct image_store *is, const char *root, const char *staging, const char *source,
		      const char *const *aliases, const struct image_progress *pr, struct image_import_result *res,
		      struct gr_error *err)
{
	gr_autojson json_t *layout = NULL, *index = NULL, *mj = NULL, *cj = NULL;
	int rc = read_json_in(root, "oci-layout", &layout, NULL, NULL, err);
	if (rc < 0)
		return rc;
	const char *ver = json_string_value(json_object_get(layout, "imageLayoutVersion"));
	if (!ver || strncmp(ver, "1.", 2) != 0)
		return gr_error_set(err, ENOTSUP, "oci-layout: imageLayoutVersion %s: expected 1.x",
				    ver ? ver : "missing");
	if ((rc = read_json_in(root, "index.json", &index, NULL, NULL, err)) < 0)
		return rc;
	char machine[65];
	host_machine(machine);
	const char *want = oci_goarch(machine);
	struct oci_descriptor md;
	if ((rc = oci_index_pick(index, "index.json", want, &md, err)) < 0)
		return rc;
	/* Nested indexes (a multi-platform image inside the layout's index). */
	for (int depth = 0; oci_media_kind(md.media_type) == OCI_KIND_INDEX; depth++) {
		if (depth == 4)
			return gr_error_set(err, EINVAL, "index.json: indexes nested more than 4 deep");
		gr_autojson json_t *sub = NULL;
		if ((rc = read_blob_json(root, &md, "index", &sub, err)) < 0)
			return rc;
		char w[96];
		snprintf(w, sizeof(w), "index %.12s", md.digest);
		if ((rc = oci_index_pick(sub, w, want, &md, err)) < 0)
			return rc;
	}
	if (md.media_type[0] && oci_media_kind(md.media_type) != OCI_KIND_MANIFEST)
		return gr_error_set(err, EINVAL, "index.json: %s is not an image manifest", md.media_type);
	snprintf(res->fingerprint, sizeof(res->fingerprint), "%s", md.digest);
	if ((rc = read_blob_json(root, &md, "manifest", &mj, err)) < 0)
		return rc;
	struct oci_manifest m;
	char where[96];
	snprintf(where, sizeof(where), "manifest %.12s", md.digest);
	if ((rc = oci_manifest_parse(mj, where, &m, err)) < 0)
		return rc;
	struct oci_image_config c = { 0 };
	if ((rc = read_blob_json(root, &m.config, "config", &cj, err)) < 0 ||
	    (rc = oci_image_config_parse(cj, "config", &c, err)) < 0)
		goto out;
	if (c.n_diff_ids != m.n_layers) {
		rc = gr_error_set(err, EINVAL, "the manifest has %zu layers but the config's rootfs.diff_ids %zu",
				  m.n_layers, c.n_diff_ids);
		goto out;
	}
	if (image_exists(is, md.digest)) {
		rc = commit_existing(is, staging, md.digest, aliases, res, err);
		staging = NULL;
		goto out;
	}
	uint64_t total = 0, done = 0;
	for (size_t i = 0; i < m.n_layers; i++)
		total += m.layers[i].size;
	for (size_t i = 0; i < m.n_layers; i++) {
		const struct oci_descriptor *ld = &m.layers[i];
		char rel[128], name[160];
		snprintf(rel, sizeof(rel), "blobs/sha256/%s", ld->digest);
		snprintf(name, sizeof(name), "layer %zu (%s)", i, rel);
		struct stat st;
		gr_autoclose int fd = open_in(root, rel, &st, err);
		if (fd < 0) {
			rc = gr_error_prefix(err, "layer %zu", i);
			goto out;
		}
		if ((uint64_t)st.st_size != ld->size) {
			rc = gr_error_set(err, EBADMSG, "%s: %lld bytes where its descriptor says %llu: nothing stored",
					  name, (long long)st.st_size, (unsigned long long)ld->size);
			goto out;
		}
		char have[IMAGE_FP_HEX];
		if (store_has_layer(is, c.diff_ids[i])) {
			/* Already unpacked: only the blob's digest to check. */
			if ((rc = sha256_fd(fd, name, have, NULL, pr, "unpacking layers", done, total, err)) < 0)
				goto out;
			if (strcmp(have, ld->digest) != 0) {
				rc = gr_error_set(err, EBADMSG, "%s: digest mismatch (the file's sha256 is %s): nothing stored",
						  name, have);
				goto out;
			}
		} else {
			struct layer_prog lp = { pr, done, total };
			struct layer_result lr;
			if ((rc = unpack_layer(staging, fd, name, ld->digest, c.diff_ids[i], &lp, have, &lr, err)) < 0) {
				if (rc != -ECANCELED)
					gr_error_prefix(err, "nothing stored");
				goto out;
			}
		}
		done += ld->size;
		report(pr, "unpacking layers", done, total);
	}
	char arch[65];
	snprintf(arch, sizeof(arch), "%s", c.architecture[0] ? oci_machine(c.architecture) : machine);
	struct image_meta meta = { .architecture = arch, .source = source, .layers = c.diff_ids,
				   .n_layers = c.n_diff_ids, .size = total, .config = c.config };
	snprintf(meta.fingerprint, sizeof(meta.fingerprint), "%s", md.digest);
	rc = image_store_commit(is, staging, &meta, aliases, &res->already, err);
	staging = NULL;
out:
	oci_manifest_clear(&m);
	oci_image_config_clear(&c);
	return rc;
}

/* --- docker-archive ------------------------------------------------------------------ */

static int import_docker(struct image_store *is, const char *root, const char *staging, const char *source,
			 const char *const *aliases, const struct image_progress *pr, struct image_import_result *res,
			 struct gr_error *err)
{
	gr_autojson json_t *mj = NULL, *cj = NULL;
	int rc = read_json_in(root, "manifest.json", &mj, NULL, NULL, err);
	if (rc < 0)
		return rc;
	struct docker_manifest m;
	if ((rc = docker_manifest_parse(mj, "manifest.json", &m, err)) < 0)
		return rc;
	struct oci_image_config c = { 0 };
	char fp[IMAGE_FP_HEX];
	if ((rc = read_json_in(root, m.config, &cj, fp, NULL, err)) < 0 ||
	    (rc = oci_image_config_parse(cj, m.config, &c, err)) < 0)
		goto out;
	/* The config's file name, when it is a digest, must be the config's. */
	const char *base = strrchr(m.config, '/') ? strrchr(m.config, '/') + 1 : m.config;
	if (strncmp(base, "sha256:", 7) == 0)
		base += 7;
	if (strlen(base) >= 64 && strspn(base, "0123456789abcdef") == 64 && strncmp(base, fp, 64) != 0) {
		rc = gr_error_set(err, EBADMSG, "%s: digest mismatch (the file's sha256 is %s): nothing stored",
				  m.config, fp);
		goto out;
	}
	if (c.n_diff_ids != m.n_layers) {
		rc = gr_error_set(err, EINVAL, "manifest.json lists %zu layers but the config's rootfs.diff_ids %zu",
				  m.n_layers, c.n_diff_ids);
		goto out;
	}
	snprintf(res->fingerprint, sizeof(res->fingerprint), "%s", fp);
	if (image_exists(is, fp)) {
		rc = commit_existing(is, staging, fp, aliases, res, err);
		staging = NULL;
		goto out;
	}
	uint64_t total = 0, done = 0;
	for (size_t i = 0; i < m.n_layers; i++) {
		struct stat st;
		gr_autoclose int fd = open_in(root, m.layers[i], &st, err);
		if (fd < 0) {
			rc = gr_error_prefix(err, "layer %zu", i);
			goto out;
		}
		total += (uint64_t)st.st_size;
	}
	for (size_t i = 0; i < m.n_layers; i++) {
		struct stat st;
		gr_autoclose int fd = open_in(root, m.layers[i], &st, err);
		if (fd < 0) {
			rc = gr_error_prefix(err, "layer %zu", i);
			goto out;
		}
		char name[1100], have[IMAGE_FP_HEX];
		snprintf(name, sizeof(name), "layer %zu (%s)", i, m.layers[i]);
		bool skip = false;
		if (store_has_layer(is, c.diff_ids[i])) {
			/* An uncompressed layer's sha256 is its diff_id: no need to unpack it again. */
			if ((rc = sha256_fd(fd, name, have, NULL, pr, "unpacking layers", done, total, err)) < 0)
				goto out;
			skip = strcmp(have, c.diff_ids[i]) == 0;
			if (!skip && lseek(fd, 0, SEEK_SET) < 0) {
				rc = gr_error_sys(err, errno, "%s", name);
				goto out;
			}
		}
		if (!skip) {
			struct layer_prog lp = { pr, done, total };
			struct layer_result lr;
			if ((rc = unpack_layer(staging, fd, name, NULL, c.diff_ids[i], &lp, have, &lr, err)) < 0) {
				if (rc != -ECANCELED)
					gr_error_prefix(err, "nothing stored");
				goto out;
			}
		}
		done += (uint64_t)st.st_size;
		report(pr, "unpacking layers", done, total);
	}
	char machine[65];
	host_machine(machine);
	struct image_meta meta = { .architecture = c.architecture[0] ? oci_machine(c.architecture) : machine,
				   .source = source, .description = m.repo_tag, .layers = c.diff_ids,
				   .n_layers = c.n_diff_ids, .size = total, .config = c.config };
	snprintf(meta.fingerprint, sizeof(meta.fingerprint), "%s", fp);
	rc = image_store_commit(is, staging, &meta, aliases, &res->already, err);
	staging = NULL;
out:
	docker_manifest_clear(&m);
	oci_image_config_clear(&c);
	return rc;
}

/* --- archives --------------------------------------------------------------------------- */

enum kind { KIND_ROOTFS, KIND_OCI, KIND_DOCKER };

static const char *strip_dot(const char *p)
{
	while (strncmp(p, "./", 2) == 0)
		p += 2;
	return p;
}

static struct archive *archive_open(const char *path, struct gr_error *err)
{
	struct archive *a = archive_read_new();
	if (!a) {
		gr_error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	/* In-process decompressors only, as layer.c: support_filter_all would let
	 * the archive's first bytes make the daemon run lrzip, grzip, lzop... */
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_lzma(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
		gr_error_set(err, EINVAL, "%s: not an archive gureum reads (a tar, gzip/xz/zstd or not): %s", path,
			     archive_error_string(a) ? archive_error_string(a) : "unknown format");
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* Which kind of archive: the first entries of an OCI layout or a
 * docker-archive name oci-layout / manifest.json at the top (read until
 * one is found or the end). */
static int archive_kind(const char *path, enum kind *kind, struct gr_error *err)
{
	struct archive *a = archive_open(path, err);
	if (!a)
		return -err->code;
	*kind = KIND_ROOTFS;
	struct archive_entry *e;
	int r, rc = 0;
	bool manifest = false;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(e);
		name = name ? strip_dot(name) : "";
		if (strcmp(name, "oci-layout") == 0) {
			*kind = KIND_OCI;
			break;
		}
		if (strcmp(name, "manifest.json") == 0)
			manifest = true;
		archive_read_data_skip(a);
	}
	if (r == ARCHIVE_FATAL)
		rc = gr_error_set(err, EINVAL, "%s: %s", path, archive_error_string(a));
	if (*kind == KIND_ROOTFS && manifest)
		*kind = KIND_DOCKER;
	archive_read_free(a);
	return rc;
}

/* A symbolic link's target (relative to the link's directory) as a path
 * inside the archive, or -EINVAL when it leaves it. */
static int link_target(const char *link, const char *target, char *out, size_t n)
{
	if (target[0] == '/')
		return -EINVAL;
	char buf[2200];
	const char *slash = strrchr(link, '/');
	snprintf(buf, sizeof(buf), "%.*s%s%s", slash ? (int)(slash - link) : 0, link, slash ? "/" : "", target);
	/* Normalize: drop ".", pop on "..", never above the top. */
	char *parts[256];
	int np = 0;
	for (char *save = NULL, *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (strcmp(t, ".") == 0)
			continue;
		if (strcmp(t, "..") == 0) {
			if (np == 0)
				return -EINVAL;
			np--;
			continue;
		}
		if (np == 256)
			return -EINVAL;
		parts[np++] = t;
	}
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; i < np; i++)
		o += (size_t)snprintf(out + o, o < n ? n - o : 0, "%s%s", i ? "/" : "", parts[i]);
	return np > 0 && o < n && oci_path_ok(out) ? 0 : -EINVAL;
}

/* The regular files and directories of an image archive into dest (which
 * exists and is empty); hard links within it are linked, and so are
 * symbolic links to files inside it (docker-archives from `podman save` and
 * `docker save` link a layer.tar to the blob: they become hard links here).
 * Anything else (links leading out, devices) is refused: image archives hold
 * blobs and JSON. */
static int extract_tree(const char *path, const char *dest, const struct image_progress *pr, struct gr_error *err)
{
	struct stat fst;
	uint64_t total = stat(path, &fst) == 0 ? (uint64_t)fst.st_size : 0, last = 0;
	struct archive *a = archive_open(path, err);
	if (!a)
		return -err->code;
	struct archive_entry *e;
	int r, rc = 0;
	unsigned count = 0, nsyms = 0;
	char full[PATH_MAX], dir[PATH_MAX];
	struct { char path[1100], target[1100]; } *syms = NULL;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		const char *raw = archive_entry_pathname(e);
		const char *name = raw ? strip_dot(raw) : "";
		if (!*name || strcmp(name, ".") == 0 || strcmp(name, "./") == 0)
			continue;
		char clean[1100];
		snprintf(clean, sizeof(clean), "%s", name);
		size_t cl = strlen(clean);
		while (cl > 0 && clean[cl - 1] == '/')
			clean[--cl] = '\0';
		if (!oci_path_ok(clean)) {
			rc = gr_error_set(err, EINVAL, "%s: entry \"%.200s\": not a relative path inside the archive", path,
					  raw ? raw : "");
			break;
		}
		if (++count > EXTRACT_MAX_ENTRIES) {
			rc = gr_error_set(err, E2BIG, "%s: more than %d entries", path, EXTRACT_MAX_ENTRIES);
			break;
		}
		snprintf(full, sizeof(full), "%s/%s", dest, clean);
		snprintf(dir, sizeof(dir), "%s", full);
		*strrchr(dir, '/') = '\0';
		if ((rc = gr_mkdir_p(dir, 0700, err)) < 0)
			break;
		const char *hl = archive_entry_hardlink(e);
		if (hl) {
			char target[PATH_MAX], tclean[1100];
			snprintf(tclean, sizeof(tclean), "%s", strip_dot(hl));
			if (!oci_path_ok(tclean)) {
				rc = gr_error_set(err, EINVAL, "%s: hard link %s -> \"%.200s\": outside the archive", path,
						  clean, hl);
				break;
			}
			snprintf(target, sizeof(target), "%s/%s", dest, tclean);
			if (link(target, full) < 0) {
				rc = gr_error_sys(err, errno, "%s: hard link %s -> %s", path, clean, tclean);
				break;
			}
			continue;
		}
		mode_t type = archive_entry_filetype(e);
		if (type == AE_IFDIR) {
			if ((rc = gr_mkdir_p(full, 0700, err)) < 0)
				break;
			continue;
		}
		if (type == AE_IFLNK) {
			const char *t = archive_entry_symlink(e);
			void *ns = (nsyms % 64) ? syms : realloc(syms, (nsyms + 64) * sizeof(*syms));
			if (!ns) {
				rc = gr_error_set(err, ENOMEM, "out of memory");
				break;
			}
			syms = ns;
			if (!t || link_target(clean, t, syms[nsyms].target, sizeof(syms[nsyms].target)) < 0) {
				rc = gr_error_set(err, EINVAL, "%s: symbolic link %s -> \"%.200s\": leads outside the archive",
						  path, clean, t ? t : "");
				break;
			}
			snprintf(syms[nsyms++].path, sizeof(syms[0].path), "%s", clean);
			continue;
		}
		if (type != AE_IFREG) {
			rc = gr_error_set(err, EINVAL, "%s: entry %s: special files are not allowed in an image archive "
					  "(only files, directories and links)", path, clean);
			break;
		}
		gr_autoclose int fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = gr_error_sys(err, errno, "%s: entry %s", path, clean);
			break;
		}
		const void *buf;
		size_t len;
		int64_t off;
		int64_t pos = 0;
		while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
			if (off != pos && lseek(fd, off, SEEK_SET) < 0) {
				rc = gr_error_sys(err, errno, "%s: entry %s", path, clean);
				break;
			}
			int w = gr_write_all(fd, buf, len);
			if (w < 0) {
				rc = gr_error_sys(err, -w, "cannot write %s", full);
				break;
			}
			pos = off + (int64_t)len;
			uint64_t now = (uint64_t)archive_filter_bytes(a, -1);
			if (now - last >= REPORT_EVERY) {
				last = now;
				if (report(pr, "reading", now, total)) {
					rc = gr_error_set(err, ECANCELED, "cancelled");
					break;
				}
			}
		}
		if (rc < 0)
			break;
		if (r != ARCHIVE_EOF) {
			rc = gr_error_set(err, EINVAL, "%s: entry %s: %s", path, clean, archive_error_string(a));
			break;
		}
		if (ftruncate(fd, pos) < 0) {
			rc = gr_error_sys(err, errno, "cannot write %s", full);
			break;
		}
	}
	if (rc == 0 && r == ARCHIVE_FATAL)
		rc = gr_error_set(err, EINVAL, "%s: %s", path, archive_error_string(a));
	/* Symbolic links once every file is there; chains resolve in a few passes. */
	for (unsigned pass = 0; rc == 0 && nsyms && pass < 8; pass++) {
		unsigned left = 0;
		for (unsigned i = 0; i < nsyms && rc == 0; i++) {
			if (!syms[i].path[0])
				continue;
			char target[PATH_MAX];
			struct stat st;
			snprintf(full, sizeof(full), "%s/%s", dest, syms[i].path);
			snprintf(target, sizeof(target), "%s/%s", dest, syms[i].target);
			if (lstat(target, &st) < 0 || !S_ISREG(st.st_mode)) {
				left++;
				continue;
			}
			if (link(target, full) < 0)
				rc = gr_error_sys(err, errno, "%s: link %s -> %s", path, syms[i].path, syms[i].target);
			syms[i].path[0] = '\0';
		}
		if (rc == 0 && left && pass == 7)
			rc = gr_error_set(err, EINVAL, "%s: a symbolic link does not lead to a file of the archive", path);
		if (!left)
			break;
	}
	free(syms);
	if (rc == 0)
		report(pr, "reading", total, total);
	archive_read_free(a);
	return rc;
}

static int import_dir(struct image_store *is, const char *root, const char *staging, const char *label,
		      const char *path, const char *const *aliases, const struct image_progress *pr,
		      struct image_import_result *res, struct gr_error *err)
{
	char p[PATH_MAX], source[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/oci-layout", root);
	if (access(p, F_OK) == 0) {
		snprintf(res->format, sizeof(res->format), "%s", label ? "oci-archive" : "oci-layout");
		snprintf(source, sizeof(source), "%s %s", res->format, path);
		return import_oci(is, root, staging, source, aliases, pr, res, err);
	}
	snprintf(p, sizeof(p), "%s/manifest.json", root);
	if (access(p, F_OK) == 0) {
		snprintf(res->format, sizeof(res->format), "docker-archive");
		snprintf(source, sizeof(source), "docker-archive %s", path);
		return import_docker(is, root, staging, source, aliases, pr, res, err);
	}
	return gr_error_set(err, EINVAL,
			    "%s: neither an OCI image layout (no oci-layout file) nor a docker-archive (no "
			    "manifest.json)", path);
}

/* --- rootfs tarballs ------------------------------------------------------------------------ */

static int import_rootfs_in(struct image_store *is, const char *staging, const char *path, const char *source,
			    const char *description, json_t *config, const char *const *aliases,
			    const struct image_progress *pr, struct image_import_result *res, struct gr_error *err)
{
	snprintf(res->format, sizeof(res->format), "rootfs");
	char fp[IMAGE_FP_HEX];
	uint64_t size = 0;
	int rc = image_sha256_file(path, fp, &size, pr, "reading", err);
	if (rc < 0)
		return rc;
	snprintf(res->fingerprint, sizeof(res->fingerprint), "%s", fp);
	if (image_exists(is, fp))
		return commit_existing(is, staging, fp, aliases, res, err);
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open %s", path);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	struct layer_prog lp = { pr, 0, size };
	struct layer_result lr;
	char diff[IMAGE_FP_HEX];
	/* fp must name what is unpacked (the file may have changed since). */
	if ((rc = unpack_layer(staging, fd, base, fp, NULL, &lp, diff, &lr, err)) < 0)
		return rc;
	char machine[65], src[PATH_MAX + 64];
	host_machine(machine);
	if (!source) {
		snprintf(src, sizeof(src), "rootfs %s (%s)", path, lr.compression[0] ? lr.compression : "tar");
		source = src;
	}
	char *layers[] = { diff, NULL };
	struct image_meta meta = { .architecture = machine, .source = source, .description = description,
				   .layers = layers, .n_layers = 1, .size = size, .config = config };
	snprintf(meta.fingerprint, sizeof(meta.fingerprint), "%s", fp);
	return image_store_commit(is, staging, &meta, aliases, &res->already, err);
}

int image_import_rootfs(struct image_store *is, const char *path, const char *source, const char *description,
			json_t *config, const char *const *aliases, const struct image_progress *pr,
			struct image_import_result *res, struct gr_error *err)
{
	memset(res, 0, sizeof(*res));
	for (size_t i = 0; aliases && aliases[i]; i++) {
		int rc = image_alias_validate(aliases[i], err);
		if (rc < 0)
			return rc;
	}
	char staging[PATH_MAX];
	int rc = image_store_stage(is, staging, err);
	if (rc < 0)
		return rc;
	rc = import_rootfs_in(is, staging, path, source, description, config, aliases, pr, res, err);
	image_store_unstage(staging);
	return rc;
}

int image_import(struct image_store *is, const char *path, const char *const *aliases,
		 const struct image_progress *pr, struct image_import_result *res, struct gr_error *err)
{
	memset(res, 0, sizeof(*res));
	if (!path || path[0] != '/')
		return gr_error_set(err, EINVAL, "path \"%.200s\": must be absolute", path ? path : "");
	for (size_t i = 0; aliases && aliases[i]; i++) {
		int rc = image_alias_validate(aliases[i], err);
		if (rc < 0)
			return rc;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return gr_error_sys(err, errno, "%s", path);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return gr_error_set(err, EINVAL, "%s: neither a file nor a directory", path);
	char staging[PATH_MAX];
	int rc;
	if (S_ISDIR(st.st_mode)) {
		if ((rc = image_store_stage(is, staging, err)) < 0)
			return rc;
		rc = import_dir(is, path, staging, NULL, path, aliases, pr, res, err);
		image_store_unstage(staging); /* commit removed it already when it ran */
		return rc;
	}
	enum kind kind = KIND_ROOTFS;
	if ((rc = archive_kind(path, &kind, err)) < 0)
		return rc;
	if ((rc = image_store_stage(is, staging, err)) < 0)
		return rc;
	if (kind == KIND_ROOTFS) {
		rc = import_rootfs_in(is, staging, path, NULL, NULL, NULL, aliases, pr, res, err);
		image_store_unstage(staging);
		return rc;
	}
	char src[PATH_MAX];
	snprintf(src, sizeof(src), "%s/src", staging);
	if (mkdir(src, 0700) < 0) {
		rc = gr_error_sys(err, errno, "cannot create %s", src);
	} else if ((rc = extract_tree(path, src, pr, err)) == 0) {
		rc = import_dir(is, src, staging, "archive", path, aliases, pr, res, err);
	}
	image_store_unstage(staging);
	return rc;
}
