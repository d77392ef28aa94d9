/* Unit tests for the image store's pure parts and its store: OCI index,
 * manifest and config parsing with hostile JSON, docker manifest.json paths,
 * alias rules, the Debian mirror from apt's sources, and an import whose
 * digests do not match storing nothing (image/import.c over a real store in
 * a temporary state directory). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "daemon/image/builder.h"
#include "daemon/image/import.h"
#include "daemon/image/layer.h"
#include "daemon/image/oci.h"
#include "daemon/image/store.h"
#include "daemon/instance/container.h"
#include "daemon/store/images.h"
#include "daemon/store/store.h"

static json_t *J(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (!j)
		fail_msg("bad test JSON: %s: %s", e.text, text);
	return j;
}

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H64B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static void test_alias_rules(void **state)
{
	(void)state;
	static const char *const good[] = { "busybox", "debian/12", "a", "My.image_1-x", "x/y.z" };
	static const char *const bad[] = { "", "/x", "x/", "a//b", "a/b/c", "-x", ".x", "x/.y", "a b", "a:b",
					   "aliases", "x/export", "aliases/x", H64, "a\nb", "é" };
	struct gr_error err = { 0 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(image_alias_validate(good[i], &err), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(image_alias_validate(bad[i], &err), -EINVAL);
	char long_name[200];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(image_alias_validate(long_name, &err), -EINVAL);
	assert_true(image_fingerprint_valid(H64));
	assert_false(image_fingerprint_valid("0123"));
	assert_false(image_fingerprint_valid(H64 "0"));
	assert_false(image_fingerprint_valid("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
}

static void test_descriptor_and_index(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct oci_descriptor d;
	gr_autojson json_t *idx = J("{\"schemaVersion\":2,\"manifests\":["
				    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" H64
				    "\",\"size\":7,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
				    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" H64B
				    "\",\"size\":9,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"},"
				    "\"annotations\":{\"org.opencontainers.image.ref.name\":\"x\"}}]}");
	assert_int_equal(oci_index_pick(idx, "index.json", "amd64", &d, &err), 0);
	assert_string_equal(d.digest, H64B);
	assert_int_equal(d.size, 9);
	assert_string_equal(d.ref_name, "x");
	assert_int_equal(oci_index_pick(idx, "index.json", "s390x", &d, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "linux/arm64"));
	/* Hostile or broken indexes: each refused with the field named. */
	static const char *const bad[] = {
		"[]",
		"{\"schemaVersion\":1,\"manifests\":[]}",
		"{\"schemaVersion\":2}",
		"{\"schemaVersion\":2,\"manifests\":{}}",
		"{\"schemaVersion\":2,\"manifests\":[]}",
		"{\"schemaVersion\":2,\"manifests\":[7]}",
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"md5:abc\",\"size\":1}]}",
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:../../etc/passwd\",\"size\":1}]}",
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" H64 "\",\"size\":-1}]}",
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" H64 "\",\"size\":\"1\"}]}",
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" H64 "\",\"size\":1,\"platform\":[]}]}",
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"text/plain\",\"digest\":\"sha256:" H64 "\",\"size\":1}]}",
		"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":7,\"digest\":\"sha256:" H64 "\",\"size\":1}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gr_autojson json_t *j = J(bad[i]);
		memset(&err, 0, sizeof(err));
		assert_true(oci_index_pick(j, "index.json", "amd64", &d, &err) < 0);
		assert_non_null(strstr(err.msg, "index.json"));
	}
}

static void test_manifest_and_config(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct oci_manifest m;
	gr_autojson json_t *ok = J("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
				   "\"digest\":\"sha256:" H64 "\",\"size\":3},\"layers\":["
				   "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"sha256:" H64B "\",\"size\":5},"
				   "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"digest\":\"sha256:" H64 "\",\"size\":6}]}");
	assert_int_equal(oci_manifest_parse(ok, "manifest", &m, &err), 0);
	assert_int_equal(m.n_layers, 2);
	assert_string_equal(m.layers[0].digest, H64B);
	oci_manifest_clear(&m);
	static const char *const bad[] = {
		"{\"schemaVersion\":2,\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:" H64 "\",\"size\":3},\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:" H64 "\",\"size\":3},\"layers\":[{\"mediaType\":\"application/x-foreign\",\"digest\":\"sha256:" H64 "\",\"size\":1}]}",
		"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"config\":{\"digest\":\"sha256:" H64 "\",\"size\":3},\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:" H64 "\",\"size\":3},\"layers\":\"x\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gr_autojson json_t *j = J(bad[i]);
		assert_true(oci_manifest_parse(j, "manifest", &m, &err) < 0);
	}
	struct oci_image_config c;
	gr_autojson json_t *cfg = J("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"A=1\"],\"Cmd\":[\"sh\"],"
				    "\"WorkingDir\":\"/w\",\"Labels\":{\"x\":\"y\"}},\"rootfs\":{\"type\":\"layers\","
				    "\"diff_ids\":[\"sha256:" H64 "\"]}}");
	assert_int_equal(oci_image_config_parse(cfg, "config", &c, &err), 0);
	assert_int_equal(c.n_diff_ids, 1);
	assert_string_equal(c.diff_ids[0], H64);
	assert_string_equal(json_string_value(json_object_get(c.config, "WorkingDir")), "/w");
	assert_null(json_object_get(c.config, "Labels"));
	oci_image_config_clear(&c);
	static const char *const badc[] = {
		"{\"os\":\"windows\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
		"{\"rootfs\":{\"type\":\"zfs\",\"diff_ids\":[]}}",
		"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha512:00\"]}}",
		"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:" H64 "\"]},\"config\":{\"Env\":\"A=1\"}}",
		"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:" H64 "\"]},\"config\":{\"Cmd\":[1]}}",
		"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:" H64 "\"]},\"config\":{\"User\":0}}",
		"{\"config\":{}}",
	};
	for (size_t i = 0; i < sizeof(badc) / sizeof(badc[0]); i++) {
		gr_autojson json_t *j = J(badc[i]);
		assert_true(oci_image_config_parse(j, "config", &c, &err) < 0);
	}
}

static void test_docker_manifest_paths(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct docker_manifest m;
	gr_autojson json_t *ok = J("[{\"Config\":\"abc.json\",\"RepoTags\":[\"localhost/x:latest\"],\"Layers\":[\"a/layer.tar\",\"./b.tar\"]}]");
	assert_int_equal(docker_manifest_parse(ok, "manifest.json", &m, &err), 0);
	assert_int_equal(m.n_layers, 2);
	assert_string_equal(m.repo_tag, "localhost/x:latest");
	docker_manifest_clear(&m);
	static const char *const bad[] = {
		"[]", "{}", "[{\"Config\":\"/etc/passwd\",\"Layers\":[\"a\"]}]",
		"[{\"Config\":\"../x.json\",\"Layers\":[\"a\"]}]", "[{\"Config\":\"x.json\",\"Layers\":[\"a/../../b\"]}]",
		"[{\"Config\":\"x.json\",\"Layers\":[]}]", "[{\"Config\":\"x.json\",\"Layers\":[\"a\"]},{\"Config\":\"y\",\"Layers\":[\"b\"]}]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gr_autojson json_t *j = J(bad[i]);
		assert_true(docker_manifest_parse(j, "manifest.json", &m, &err) < 0);
	}
	assert_true(oci_path_ok("blobs/sha256/x"));
	assert_false(oci_path_ok("blobs//x"));
	assert_false(oci_path_ok("blobs/./x"));
	assert_false(oci_path_ok("."));
	assert_string_equal(oci_goarch("x86_64"), "amd64");
	assert_string_equal(oci_machine("arm64"), "aarch64");
}

static void test_debian_mirror(void **state)
{
	(void)state;
	char out[256];
	assert_int_equal(image_debian_mirror_from("# c\ndeb-src http://src/debian bookworm main\n"
						  "deb [arch=amd64 signed-by=/k] http://m.example/debian/ bookworm main\n",
						  NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "http://m.example/debian");
	assert_int_equal(image_debian_mirror_from("deb http://security.debian.org/debian-security bookworm-security main\n",
						  NULL, out, sizeof(out)), -ENOENT);
	const char *deb822[] = { "Types: deb-src\nURIs: http://a/\nSuites: bookworm\n\n"
				 "Types: deb\n# a comment\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\n"
				 "Components: main\n",
				 NULL };
	assert_int_equal(image_debian_mirror_from(NULL, deb822, out, sizeof(out)), 0);
	assert_string_equal(out, "http://deb.example/debian");
	const char *sec[] = { "Types: deb\nURIs: http://sec/\nSuites: bookworm-security\n", NULL };
	assert_int_equal(image_debian_mirror_from("", sec, out, sizeof(out)), -ENOENT);
}

/* A real store in a temporary state directory: a rootfs tarball whose
 * layer is refused stores nothing, one that is fine is stored once. */
static void test_import_stores_nothing_on_failure(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char dir[] = "/tmp/test_image.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct gr_error err = { 0 };
	struct store *db = NULL;
	struct image_store *is = NULL;
	assert_int_equal(store_open(dir, &db, &err), 0);
	assert_int_equal(image_store_open(dir, db, &is, &err), 0);
	/* Not an archive at all. */
	char path[256];
	snprintf(path, sizeof(path), "%s/junk.tar", dir);
	assert_int_equal(gr_write_file_new(path, "not a tar", 9, 0600, &err), 0);
	struct image_import_result res;
	const char *aliases[] = { "junk", NULL };
	assert_true(image_import(is, path, aliases, NULL, &res, &err) < 0);
	/* An OCI layout whose manifest digest lies. */
	char oci[256], p2[320];
	snprintf(oci, sizeof(oci), "%s/oci", dir);
	snprintf(p2, sizeof(p2), "%s/blobs/sha256", oci);
	assert_int_equal(gr_mkdir_p(p2, 0755, &err), 0);
	snprintf(p2, sizeof(p2), "%s/oci-layout", oci);
	gr_write_file_new(p2, "{\"imageLayoutVersion\":\"1.0.0\"}", 30, 0644, &err);
	snprintf(p2, sizeof(p2), "%s/blobs/sha256/" H64, oci);
	gr_write_file_new(p2, "{\"schemaVersion\":2}", 19, 0644, &err);
	snprintf(p2, sizeof(p2), "%s/index.json", oci);
	const char *idx = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
			  "\"digest\":\"sha256:" H64 "\",\"size\":19}]}";
	gr_write_file_new(p2, idx, strlen(idx), 0644, &err);
	memset(&err, 0, sizeof(err));
	assert_int_equal(image_import(is, oci, aliases, NULL, &res, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "digest mismatch"));
	assert_non_null(strstr(err.msg, "nothing stored"));
	gr_autostrv char **fps = NULL;
	assert_int_equal(store_image_list(db, &fps, &err), 0);
	assert_null(fps[0]);
	char tmp[320];
	snprintf(tmp, sizeof(tmp), "%s/images/tmp", dir);
	gr_autoclosedir DIR *d = opendir(tmp);
	struct dirent *e;
	int entries = 0;
	while (d && (e = readdir(d)))
		entries += e->d_name[0] != '.';
	assert_int_equal(entries, 0);
	image_store_close(is);
	store_close(db);
	gr_rm_rf(dir, NULL);
}

/* An image archive decides which decompressor libarchive uses: only the
 * in-process ones may be offered (an lrzip or grzip stream would otherwise
 * make the daemon run the lrzip or grzip program found in its PATH). */
static void test_import_runs_no_decompressor_program(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char dir[] = "/tmp/test_image.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct gr_error err = { 0 };
	struct store *db = NULL;
	struct image_store *is = NULL;
	assert_int_equal(store_open(dir, &db, &err), 0);
	assert_int_equal(image_store_open(dir, db, &is, &err), 0);
	char bin[256], prog[320], marker[320], script[700], path[256];
	snprintf(bin, sizeof(bin), "%s/bin", dir);
	assert_int_equal(mkdir(bin, 0755), 0);
	snprintf(marker, sizeof(marker), "%s/ran", dir);
	snprintf(script, sizeof(script), "#!/bin/sh\n: > %s\nexit 1\n", marker);
	static const char *const progs[] = { "lrzip", "grzip", "lzop", "lz4" };
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		snprintf(prog, sizeof(prog), "%s/%s", bin, progs[i]);
		assert_int_equal(gr_write_file_new(prog, script, strlen(script), 0755, &err), 0);
	}
	const char *old = getenv("PATH");
	gr_autofree char *saved = old ? strdup(old) : NULL;
	char newpath[512];
	snprintf(newpath, sizeof(newpath), "%s:%s", bin, old ? old : "/usr/bin:/bin");
	setenv("PATH", newpath, 1);
	/* lrzip's header (magic, major 0, minor 6), then anything. */
	static const char lrz[] = "LRZI\0\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
	snprintf(path, sizeof(path), "%s/image.tar.lrz", dir);
	assert_int_equal(gr_write_file_new(path, lrz, sizeof(lrz) - 1, 0600, &err), 0);
	struct image_import_result res;
	assert_true(image_import(is, path, NULL, NULL, &res, &err) < 0);
	if (saved)
		setenv("PATH", saved, 1);
	else
		unsetenv("PATH");
	assert_int_equal(access(marker, F_OK), -1);
	image_store_close(is);
	store_close(db);
	gr_rm_rf(dir, NULL);
}

/* The image's User looked up in its /etc/passwd and /etc/group: an empty
 * field (no password) is a field, not a separator to skip. */
static void test_image_user_empty_fields(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_image.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct gr_error err = { 0 };
	char p[512];
	snprintf(p, sizeof(p), "%s/" H64 "/etc", dir);
	assert_int_equal(gr_mkdir_p(p, 0755, &err), 0);
	snprintf(p, sizeof(p), "%s/" H64 "/etc/passwd", dir);
	const char *pw = "root:x:0:0:root:/root:/bin/sh\napp::1000:1001:App:/home/app:/bin/sh\n";
	assert_int_equal(gr_write_file_new(p, pw, strlen(pw), 0644, &err), 0);
	snprintf(p, sizeof(p), "%s/" H64 "/etc/group", dir);
	const char *gr = "root:x:0:\nwheel::10:root\n";
	assert_int_equal(gr_write_file_new(p, gr, strlen(gr), 0644, &err), 0);
	char *hex[] = { (char *)H64, NULL };
	struct container_image img = { .fingerprint = H64 };
	snprintf(img.layers.layers_dir, sizeof(img.layers.layers_dir), "%s", dir);
	img.layers.hex = hex;
	img.layers.n = 1;
	struct instance_spec spec = { .name = "c1", .type = "container" };
	static const char *const users[] = { "app", "app:wheel" };
	static const long want_gid[] = { 1001, 10 };
	for (size_t i = 0; i < 2; i++) {
		img.layers.config = json_pack("{s:s}", "User", users[i]);
		gr_autojson json_t *cfg = J("{\"process\":{\"env\":[],\"args\":[\"sh\"]}}");
		assert_int_equal(container_config_apply_image(cfg, &spec, &img, &err), 0);
		json_t *u = json_object_get(json_object_get(cfg, "process"), "user");
		assert_int_equal(json_integer_value(json_object_get(u, "uid")), 1000);
		assert_int_equal(json_integer_value(json_object_get(u, "gid")), want_gid[i]);
		json_decref(img.layers.config);
	}
	gr_rm_rf(dir, NULL);
}

/* A rootfs tarball replaced between the hash that names the image and the
 * unpack: the image stored must be what its fingerprint says, or nothing. */
struct swap_ctx {
	const char *from, *to;
	bool done;
};

static int swap_on_read(void *ctx, const char *stage, uint64_t bytes, uint64_t total, const char *line)
{
	(void)bytes, (void)total, (void)line;
	struct swap_ctx *c = ctx;
	if (!c->done && !strcmp(stage, "reading")) {
		c->done = true;
		assert_int_equal(rename(c->from, c->to), 0);
	}
	return 0;
}

static void write_tar_of(const char *dir, const char *name, size_t size, const char *tar)
{
	struct gr_error err = { 0 };
	char p[512];
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	gr_autofree char *data = calloc(1, size + 1);
	assert_non_null(data);
	assert_int_equal(gr_write_file_new(p, data, size, 0644, &err), 0);
	gr_autoclose int fd = open(tar, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(layer_write_tar(dir, fd, NULL, NULL, &err), 0);
}

static void test_import_rootfs_swapped(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char dir[] = "/tmp/test_image.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct gr_error err = { 0 };
	struct store *db = NULL;
	struct image_store *is = NULL;
	assert_int_equal(store_open(dir, &db, &err), 0);
	assert_int_equal(image_store_open(dir, db, &is, &err), 0);
	char a[256], b[256], ta[256], tb[256];
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(ta, sizeof(ta), "%s/a.tar", dir);
	snprintf(tb, sizeof(tb), "%s/b.tar", dir);
	write_tar_of(a, "big", 5u << 20, ta); /* over 4 MiB: "reading" is reported while hashing */
	write_tar_of(b, "other", 10, tb);
	struct swap_ctx c = { .from = tb, .to = ta };
	struct image_progress pr = { swap_on_read, &c };
	struct image_import_result res;
	int r = image_import_rootfs(is, ta, NULL, NULL, NULL, NULL, &pr, &res, &err);
	assert_true(c.done);
	assert_int_equal(r, -EBADMSG);
	gr_autostrv char **fps = NULL;
	assert_int_equal(store_image_list(db, &fps, &err), 0);
	assert_null(fps[0]);
	image_store_close(is);
	store_close(db);
	gr_rm_rf(dir, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alias_rules),
		cmocka_unit_test(test_descriptor_and_index),
		cmocka_unit_test(test_manifest_and_config),
		cmocka_unit_test(test_docker_manifest_paths),
		cmocka_unit_test(test_debian_mirror),
		cmocka_unit_test(test_import_stores_nothing_on_failure),
		cmocka_unit_test(test_import_runs_no_decompressor_program),
		cmocka_unit_test(test_image_user_empty_fields),
		cmocka_unit_test(test_import_rootfs_swapped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
