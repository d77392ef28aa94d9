/* Unit tests for src/daemon/image/layer.c: layer tars built in memory with
 * libarchive's writer, unpacked into a fresh directory next to a sentinel
 * directory. Whiteouts both ways, opaque directories, digests against
 * OpenSSL, gzip/xz/zstd, path sanitizing, every hostile case of issue 5
 * (absolute paths, '..', symlinks and hard links pointing outside, device
 * nodes, huge and truncated entries, a directory replaced by a symlink and
 * written through): each refused or contained, nothing written outside, the
 * destination removed. Flatten; write_tar round trip. Runs as root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "daemon/image/layer.h"

/* ------------------------------------------------------------ fixture */

struct fixture {
	char dir[64];
	char dest[96], dest2[96], dest3[96];
	char sentinel[96];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_layer.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->dest, sizeof(f->dest), "%s/dest", f->dir);
	snprintf(f->dest2, sizeof(f->dest2), "%s/dest2", f->dir);
	snprintf(f->dest3, sizeof(f->dest3), "%s/dest3", f->dir);
	snprintf(f->sentinel, sizeof(f->sentinel), "%s/sentinel", f->dir);
	mkdir(f->sentinel, 0755);
	char p[160];
	snprintf(p, sizeof(p), "%s/file", f->sentinel);
	struct gr_error err = { 0 };
	if (gr_write_file_new(p, "keep\n", 5, 0644, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	gr_rm_rf(f->dir, &err);
	free(f);
	return 0;
}

/* The sentinel holds exactly its one file, unchanged; the fixture directory
 * holds only the sentinel (no destination left behind, nothing beside it). */
static void assert_contained(struct fixture *f)
{
	gr_autoclosedir DIR *d = opendir(f->sentinel);
	assert_non_null(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			assert_string_equal(de->d_name, "file");
			n++;
		}
	assert_int_equal(n, 1);
	char p[160], *data = NULL;
	snprintf(p, sizeof(p), "%s/file", f->sentinel);
	struct gr_error err = { 0 };
	assert_int_equal(gr_read_file(p, &data, NULL, &err), 0);
	assert_string_equal(data, "keep\n");
	free(data);
	gr_autoclosedir DIR *top = opendir(f->dir);
	n = 0;
	while ((de = readdir(top)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			assert_string_equal(de->d_name, "sentinel");
			n++;
		}
	assert_int_equal(n, 1);
	struct stat st;
	assert_int_equal(lstat("/etc/passwd", &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

/* ------------------------------------------------------------ tar builder */

struct tb {
	struct archive *a;
	unsigned char *buf;
	size_t cap, used;
};

static struct tb *tb_new(void)
{
	struct tb *t = calloc(1, sizeof(*t));
	t->cap = 32u << 20;
	t->buf = malloc(t->cap);
	t->a = archive_write_new();
	assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
	archive_write_set_bytes_in_last_block(t->a, 1);
	assert_int_equal(archive_write_open_memory(t->a, t->buf, t->cap, &t->used), ARCHIVE_OK);
	return t;
}

static struct archive_entry *tb_entry(const char *path, mode_t type, mode_t perm)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_mtime(e, 1600000000, 0);
	return e;
}

static void tb_put(struct tb *t, struct archive_entry *e, const void *data, size_t len)
{
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	if (len)
		assert_int_equal(archive_write_data(t->a, data, len), (la_ssize_t)len);
	archive_entry_free(e);
}

static void tb_file(struct tb *t, const char *path, const char *content)
{
	struct archive_entry *e = tb_entry(path, AE_IFREG, 0644);
	archive_entry_set_size(e, (la_int64_t)strlen(content));
	tb_put(t, e, content, strlen(content));
}

static void tb_dir(struct tb *t, const char *path)
{
	tb_put(t, tb_entry(path, AE_IFDIR, 0755), NULL, 0);
}

static void tb_symlink(struct tb *t, const char *path, const char *target)
{
	struct archive_entry *e = tb_entry(path, AE_IFLNK, 0777);
	archive_entry_set_symlink(e, target);
	tb_put(t, e, NULL, 0);
}

static void tb_hardlink(struct tb *t, const char *path, const char *target)
{
	struct archive_entry *e = tb_entry(path, AE_IFREG, 0644);
	archive_entry_set_hardlink(e, target);
	archive_entry_set_size(e, 0);
	tb_put(t, e, NULL, 0);
}

static void tb_dev(struct tb *t, const char *path, mode_t type, unsigned maj, unsigned min)
{
	struct archive_entry *e = tb_entry(path, type, 0666);
	archive_entry_set_rdevmajor(e, maj);
	archive_entry_set_rdevminor(e, min);
	tb_put(t, e, NULL, 0);
}

/* Closes the archive; returns its bytes (the caller frees), length in *len. */
static unsigned char *tb_finish(struct tb *t, size_t *len)
{
	assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
	archive_write_free(t->a);
	unsigned char *buf = t->buf;
	*len = t->used;
	free(t);
	return buf;
}

/* Compresses bytes with a libarchive filter ("raw" format: the stream as is). */
static unsigned char *compress(const unsigned char *in, size_t len, const char *filter, size_t *out_len)
{
	struct archive *a = archive_write_new();
	assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_by_name(a, filter), ARCHIVE_OK);
	size_t cap = len + (1u << 20), used = 0;
	unsigned char *buf = malloc(cap);
	assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "data");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_size(e, (la_int64_t)len);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, in, len), (la_ssize_t)len);
	archive_entry_free(e);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*out_len = used;
	return buf;
}

static void sha256_hex(const void *data, size_t len, char out[LAYER_DIGEST_HEX])
{
	unsigned char md[32];
	unsigned n = 0;
	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

struct mem {
	const unsigned char *p;
	size_t len, pos, chunk;
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem *m = ctx;
	size_t n = m->len - m->pos;
	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

struct failing {
	struct mem *m;
	size_t fail_at;
};

static ssize_t failing_read(void *ctx, void *buf, size_t len)
{
	struct failing *fm = ctx;
	if (fm->m->pos >= fm->fail_at)
		return -EIO;
	return mem_read(fm->m, buf, len);
}

static int unpack_mem(const unsigned char *buf, size_t len, const char *dest, const struct layer_opts *o,
                      struct layer_result *res, struct gr_error *err)
{
	struct mem m = { .p = buf, .len = len, .chunk = 1000 };
	return layer_unpack(mem_read, &m, dest, o, res, err);
}

/* Unpacks a hostile archive: it must fail with code, a message containing
 * want (the entry named), and leave nothing anywhere. */
static void assert_refused(struct fixture *f, struct tb *t, const struct layer_opts *o, int code, const char *want)
{
	size_t len;
	gr_autofree unsigned char *buf = tb_finish(t, &len);
	struct gr_error err = { 0 };
	struct layer_result res;
	int r = unpack_mem(buf, len, f->dest, o, &res, &err);
	if (r >= 0)
		fail_msg("unpack succeeded; expected: %s", want);
	if (!strstr(err.msg, want) || r != -code)
		fail_msg("got %d \"%s\"; expected %d \"%s\"", r, err.msg, -code, want);
	assert_contained(f);
}

static char *slurp(const char *dir, const char *rel)
{
	char p[512], *data = NULL;
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	struct gr_error err = { 0 };
	if (gr_read_file(p, &data, NULL, &err) < 0)
		return NULL;
	return data;
}

static int lstat_in(const char *dir, const char *rel, struct stat *st)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return lstat(p, st);
}

static bool exists_in(const char *dir, const char *rel)
{
	struct stat st;
	return lstat_in(dir, rel, &st) == 0;
}

static bool opaque_in(const char *dir, const char *rel)
{
	char p[512], v[4];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	ssize_t n = lgetxattr(p, "trusted.overlay.opaque", v, sizeof(v));
	return n == 1 && v[0] == 'y';
}

static void assert_whiteout(const char *dir, const char *rel)
{
	struct stat st;
	assert_int_equal(lstat_in(dir, rel, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(0, 0));
}

/* ------------------------------------------------------------ basics */

static void test_unpack_tree(void **state)
{
	struct fixture *f = *state;
	struct tb *t = tb_new();
	tb_dir(t, "./");
	tb_dir(t, "etc/");
	tb_file(t, "etc/hostname", "layer\n");
	struct archive_entry *e = tb_entry("bin/su", AE_IFREG, 04755);
	archive_entry_set_uid(e, 1000);
	archive_entry_set_gid(e, 1001);
	archive_entry_set_mtime(e, 1500000000, 123456789);
	archive_entry_xattr_add_entry(e, "user.note", "hi", 2);
	archive_entry_xattr_add_entry(e, "security.selinux", "x", 1); /* dropped */
	archive_entry_xattr_add_entry(e, "user.overlay.opaque", "y", 1); /* dropped */
	archive_entry_set_size(e, 3);
	tb_put(t, e, "su\n", 3);
	tb_symlink(t, "bin/sh", "/bin/busybox");
	tb_hardlink(t, "etc/hostname2", "etc/hostname");
	tb_dev(t, "run/fifo", AE_IFIFO, 0, 0); /* parent created implicitly */
	e = tb_entry("ro/", AE_IFDIR, 0555);
	archive_entry_set_mtime(e, 1234567890, 0);
	tb_put(t, e, NULL, 0);
	tb_file(t, "ro/inside", "x");
	size_t len;
	gr_autofree unsigned char *buf = tb_finish(t, &len);

	struct gr_error err = { 0 };
	struct layer_result res;
	if (unpack_mem(buf, len, f->dest, NULL, &res, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(res.entries, 9);
	assert_string_equal(res.compression, "none");
	assert_true(res.skipped >= 1); /* security.selinux */
	gr_autofree char *h = slurp(f->dest, "etc/hostname");
	assert_string_equal(h, "layer\n");
	struct stat st, st2;
	assert_int_equal(lstat_in(f->dest, "bin/su", &st), 0);
	assert_int_equal(st.st_mode & 07777, 04755);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 1001);
	assert_int_equal(st.st_mtim.tv_sec, 1500000000);
	assert_int_equal(st.st_mtim.tv_nsec, 123456789);
	char p[256], v[8];
	snprintf(p, sizeof(p), "%s/bin/su", f->dest);
	assert_int_equal(lgetxattr(p, "user.note", v, sizeof(v)), 2);
	assert_int_equal(lgetxattr(p, "security.selinux", v, sizeof(v)), -1);
	assert_int_equal(lgetxattr(p, "user.overlay.opaque", v, sizeof(v)), -1);
	assert_int_equal(lstat_in(f->dest, "bin/sh", &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_mtim.tv_sec, 1600000000);
	char target[64] = "";
	snprintf(p, sizeof(p), "%s/bin/sh", f->dest);
	assert_int_equal(readlink(p, target, sizeof(target)), 12);
	assert_int_equal(lstat_in(f->dest, "etc/hostname", &st), 0);
	assert_int_equal(lstat_in(f->dest, "etc/hostname2", &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(lstat_in(f->dest, "run/fifo", &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(lstat_in(f->dest, "ro", &st), 0);
	assert_int_equal(st.st_mode & 07777, 0555);
	assert_int_equal(st.st_mtim.tv_sec, 1234567890); /* after ro/inside was written */
	assert_int_equal(lstat_in(f->dest, "etc", &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1600000000);
	assert_int_equal(lstat_in(f->dest, "", &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1600000000);
}

static void test_digests_and_filters(void **state)
{
	struct fixture *f = *state;
	struct tb *t = tb_new();
	tb_dir(t, "usr/");
	char big[300000];
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + (i * 7919 % 26));
	big[sizeof(big) - 1] = '\0';
	tb_file(t, "usr/big", big);
	size_t len;
	gr_autofree unsigned char *tar = tb_finish(t, &len);
	char want_tar[LAYER_DIGEST_HEX];
	sha256_hex(tar, len, want_tar);

	struct gr_error err = { 0 };
	struct layer_result res;
	if (unpack_mem(tar, len, f->dest, NULL, &res, &err) < 0)
		fail_msg("%s", err.msg);
	assert_string_equal(res.diff_id, want_tar);
	assert_string_equal(res.blob, want_tar);
	assert_int_equal(res.tar_size, len);
	assert_int_equal(res.blob_size, len);
	assert_int_equal(res.content_size, strlen(big));
	gr_rm_rf(f->dest, &err);

	/* Bytes after the end-of-archive blocks are part of both digests. */
	gr_autofree unsigned char *padded = calloc(1, len + 9216);
	memcpy(padded, tar, len);
	char want_padded[LAYER_DIGEST_HEX];
	sha256_hex(padded, len + 9216, want_padded);
	if (unpack_mem(padded, len + 9216, f->dest, NULL, &res, &err) < 0)
		fail_msg("%s", err.msg);
	assert_string_equal(res.diff_id, want_padded);
	assert_string_equal(res.blob, want_padded);
	assert_int_equal(res.tar_size, len + 9216);
	gr_rm_rf(f->dest, &err);

	static const char *filters[] = { "gzip", "xz", "zstd", "bzip2" };
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		size_t clen;
		gr_autofree unsigned char *c = compress(tar, len, filters[i], &clen);
		char want_blob[LAYER_DIGEST_HEX];
		sha256_hex(c, clen, want_blob);
		char expect[80];
		snprintf(expect, sizeof(expect), "sha256:%s", want_blob);
		struct layer_opts o = { .name = filters[i], .expect_blob = expect, .expect_diff_id = want_tar };
		if (unpack_mem(c, clen, f->dest, &o, &res, &err) < 0)
			fail_msg("%s: %s", filters[i], err.msg);
		assert_string_equal(res.diff_id, want_tar);
		assert_string_equal(res.blob, want_blob);
		assert_int_equal(res.blob_size, clen);
		assert_int_equal(res.tar_size, len);
		assert_string_equal(res.compression, filters[i]);
		gr_autofree char *data = slurp(f->dest, "usr/big");
		assert_string_equal(data, big);
		gr_rm_rf(f->dest, &err);

		/* Wrong digest: nothing kept. */
		o.expect_blob = want_tar;
		assert_int_equal(unpack_mem(c, clen, f->dest, &o, &res, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "digest mismatch"));
		assert_false(exists_in(f->dest, ""));

		/* A truncated compressed stream. */
		assert_true(unpack_mem(c, clen / 2, f->dest, NULL, &res, &err) < 0);
		assert_false(exists_in(f->dest, ""));
	}
	assert_contained(f);
}

static void test_whiteouts(void **state)
{
	struct fixture *f = *state;
	struct tb *t = tb_new();
	tb_file(t, ".wh.gone", "");
	tb_dir(t, "etc/");
	tb_file(t, "etc/.wh.passwd", "");
	tb_dir(t, "opt/");
	tb_file(t, "opt/.wh..wh..opq", "");
	tb_file(t, "opt/new", "n");
	tb_file(t, "var/.wh..wh..opq", ""); /* parent not declared */
	tb_file(t, "keep", "k");
	tb_file(t, ".wh.keep", ""); /* same layer: the file wins */
	tb_file(t, ".wh.later", "");
	tb_file(t, "later", "l"); /* replaces the whiteout */
	size_t len;
	gr_autofree unsigned char *buf = tb_finish(t, &len);
	struct gr_error err = { 0 };
	struct layer_result res;
	if (unpack_mem(buf, len, f->dest, NULL, &res, &err) < 0)
		fail_msg("%s", err.msg);
	assert_whiteout(f->dest, "gone");
	assert_whiteout(f->dest, "etc/passwd");
	assert_false(exists_in(f->dest, ".wh.gone"));
	assert_false(exists_in(f->dest, "etc/.wh.passwd"));
	assert_true(opaque_in(f->dest, "opt"));
	assert_true(opaque_in(f->dest, "var"));
	assert_false(opaque_in(f->dest, "etc"));
	assert_false(exists_in(f->dest, "opt/.wh..wh..opq"));
	gr_autofree char *n = slurp(f->dest, "opt/new");
	assert_string_equal(n, "n");
	gr_autofree char *k = slurp(f->dest, "keep");
	assert_string_equal(k, "k");
	gr_autofree char *l = slurp(f->dest, "later");
	assert_string_equal(l, "l");
	assert_int_equal(res.whiteouts, 3);
	assert_int_equal(res.opaques, 2);

	/* A whiteout without a name. */
	gr_rm_rf(f->dest, &err);
	t = tb_new();
	tb_file(t, "a/.wh.", "");
	assert_refused(f, t, NULL, EINVAL, "entry a/.wh.: a whiteout without a valid name");
}

static void test_sanitize(void **state)
{
	struct fixture *f = *state;
	struct tb *t = tb_new();
	tb_file(t, "/abs/file", "1");             /* made relative */
	tb_file(t, "./a/./b//c", "2");
	tb_file(t, "//double", "3");
	tb_dir(t, "/");                           /* the root */
	tb_file(t, "x/./y/.", "4");
	size_t len;
	gr_autofree unsigned char *buf = tb_finish(t, &len);
	struct gr_error err = { 0 };
	if (unpack_mem(buf, len, f->dest, NULL, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	gr_autofree char *a = slurp(f->dest, "abs/file");
	gr_autofree char *b = slurp(f->dest, "a/b/c");
	gr_autofree char *c = slurp(f->dest, "double");
	gr_autofree char *d = slurp(f->dest, "x/y");
	assert_string_equal(a, "1");
	assert_string_equal(b, "2");
	assert_string_equal(c, "3");
	assert_string_equal(d, "4");
	gr_rm_rf(f->dest, &err);
	assert_contained(f);

	static const char *dotdot[] = { "../sentinel/evil", "a/../../sentinel/evil", "a/..", "..", "/../evil" };
	for (size_t i = 0; i < sizeof(dotdot) / sizeof(dotdot[0]); i++) {
		t = tb_new();
		tb_file(t, "ok", "fine");
		tb_file(t, dotdot[i], "evil");
		assert_refused(f, t, NULL, EPERM, "has a '..' component");
	}
	/* The entry is named in the message, control bytes escaped. */
	t = tb_new();
	tb_file(t, "bad\n/../x", "evil");
	assert_refused(f, t, NULL, EPERM, "entry bad\\x0a/../x: the path has a '..' component");

	/* Limits on the path. */
	char longname[300];
	memset(longname, 'n', 256);
	longname[256] = '\0';
	t = tb_new();
	tb_file(t, longname, "x");
	assert_refused(f, t, NULL, ENAMETOOLONG, "a component of 256 bytes");
	char deep[600] = "";
	for (int i = 0; i < 129; i++)
		strcat(deep, "d/");
	strcat(deep, "f");
	t = tb_new();
	tb_file(t, deep, "x");
	assert_refused(f, t, NULL, ELOOP, "nested more than 128 directories deep");
	struct layer_opts o = { .max_path = 20 };
	t = tb_new();
	tb_file(t, "0123456789/0123456789/x", "x");
	assert_refused(f, t, &o, ENAMETOOLONG, "longer than 20 bytes");
}

/* ------------------------------------------------------------ hostile */

static void test_symlink_escape(void **state)
{
	struct fixture *f = *state;
	char evil[160];
	snprintf(evil, sizeof(evil), "%s", f->sentinel);

	/* An absolute symlink to the sentinel, then a file through it. */
	struct tb *t = tb_new();
	tb_symlink(t, "a", evil);
	tb_file(t, "a/evil", "evil");
	assert_refused(f, t, NULL, ELOOP, "entry a/evil: a is a symbolic link in the layer (refusing to write through it)");

	/* Relative, and deeper: a/b -> ../../sentinel, then a/b/c/evil. */
	t = tb_new();
	tb_dir(t, "a/");
	tb_symlink(t, "a/b", "../../sentinel");
	tb_file(t, "a/b/c/evil", "evil");
	assert_refused(f, t, NULL, ELOOP, "a/b is a symbolic link");

	/* Through /etc: a -> /etc, then a/passwd. */
	t = tb_new();
	tb_symlink(t, "a", "/etc");
	tb_file(t, "a/passwd", "root::0:0::/:/bin/sh\n");
	assert_refused(f, t, NULL, ELOOP, "entry a/passwd");

	/* A directory replaced by a symlink, then written through. */
	t = tb_new();
	tb_dir(t, "d/");
	tb_file(t, "d/x", "inside");
	tb_symlink(t, "d", evil);
	tb_file(t, "d/evil", "evil");
	assert_refused(f, t, NULL, ELOOP, "entry d/evil: d is a symbolic link");

	/* A directory entry through the symlink, and a whiteout through it. */
	t = tb_new();
	tb_symlink(t, "d", evil);
	tb_dir(t, "d/sub/");
	assert_refused(f, t, NULL, ELOOP, "entry d/sub/");
	t = tb_new();
	tb_symlink(t, "d", evil);
	tb_file(t, "d/.wh.file", "");
	assert_refused(f, t, NULL, ELOOP, "entry d/.wh.file");
	t = tb_new();
	tb_symlink(t, "d", evil);
	tb_file(t, "d/.wh..wh..opq", "");
	assert_refused(f, t, NULL, ELOOP, "entry d/.wh..wh..opq");

	/* A file in the way of a directory. */
	t = tb_new();
	tb_file(t, "f", "x");
	tb_file(t, "f/g", "x");
	assert_refused(f, t, NULL, ENOTDIR, "f is not a directory");

	/* Symlinks themselves are stored as they are (contained: never
	 * followed here; resolved inside the container's root). */
	t = tb_new();
	tb_symlink(t, "up", "../../../../etc/passwd");
	tb_symlink(t, "abs", evil);
	tb_file(t, "up", "replaces the link, not its target");
	size_t len;
	gr_autofree unsigned char *buf = tb_finish(t, &len);
	struct gr_error err = { 0 };
	if (unpack_mem(buf, len, f->dest, NULL, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	gr_autofree char *up = slurp(f->dest, "up");
	assert_string_equal(up, "replaces the link, not its target");
	struct stat st;
	assert_int_equal(lstat_in(f->dest, "abs", &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	gr_rm_rf(f->dest, &err);
	assert_contained(f);
}

static void test_hardlink_escape(void **state)
{
	struct fixture *f = *state;
	char abs[160];
	snprintf(abs, sizeof(abs), "%s/file", f->sentinel);

	struct tb *t = tb_new();
	tb_hardlink(t, "h", "../sentinel/file");
	assert_refused(f, t, NULL, EPERM, "entry h: the hard link's target has a '..' component");

	/* An absolute target is taken inside the layer, where it is not. */
	t = tb_new();
	tb_hardlink(t, "h", abs);
	assert_refused(f, t, NULL, ENOENT, "the target is not a file of this layer");
	t = tb_new();
	tb_hardlink(t, "passwd", "/etc/passwd");
	assert_refused(f, t, NULL, ENOENT, "hard link to /etc/passwd");

	/* Through a symlink planted in the layer. */
	t = tb_new();
	tb_symlink(t, "s", f->sentinel);
	tb_hardlink(t, "h", "s/file");
	assert_refused(f, t, NULL, ENOENT, "its path goes through a symbolic link");

	/* To a directory, to itself. */
	t = tb_new();
	tb_dir(t, "d/");
	tb_hardlink(t, "h", "d");
	assert_refused(f, t, NULL, EPERM, "the target is a directory");
	t = tb_new();
	tb_file(t, "x", "1");
	tb_hardlink(t, "x", "x");
	assert_refused(f, t, NULL, EINVAL, "hard link to x");

	/* A hard link to a symlink links the symlink, not what it points at. */
	t = tb_new();
	tb_symlink(t, "s", abs);
	tb_hardlink(t, "h", "s");
	size_t len;
	gr_autofree unsigned char *buf = tb_finish(t, &len);
	struct gr_error err = { 0 };
	if (unpack_mem(buf, len, f->dest, NULL, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	struct stat st, st2;
	assert_int_equal(lstat_in(f->dest, "h", &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(lstat(abs, &st2), 0);
	assert_int_equal(st2.st_nlink, 1);
	gr_rm_rf(f->dest, &err);
	assert_contained(f);
}

static void test_devices(void **state)
{
	struct fixture *f = *state;
	struct tb *t = tb_new();
	tb_dev(t, "dev/sda", AE_IFBLK, 8, 0);
	assert_refused(f, t, NULL, EPERM, "entry dev/sda: block device 8:0 refused");
	t = tb_new();
	tb_dev(t, "dev/mem", AE_IFCHR, 1, 1);
	assert_refused(f, t, NULL, EPERM, "entry dev/mem: character device 1:1 refused");
	/* A 0/0 device in the tar is a device too (whiteouts are .wh. files). */
	t = tb_new();
	tb_dev(t, "x", AE_IFCHR, 0, 0);
	assert_refused(f, t, NULL, EPERM, "character device 0:0 refused");

	t = tb_new();
	tb_dev(t, "dev/null", AE_IFCHR, 1, 3);
	tb_file(t, "ok", "ok");
	size_t len;
	gr_autofree unsigned char *buf = tb_finish(t, &len);
	struct gr_error err = { 0 };
	struct layer_result res;
	struct layer_opts o = { .devices = LAYER_DEVICES_SKIP };
	if (unpack_mem(buf, len, f->dest, &o, &res, &err) < 0)
		fail_msg("%s", err.msg);
	assert_false(exists_in(f->dest, "dev/null"));
	assert_true(exists_in(f->dest, "ok"));
	assert_int_equal(res.skipped, 1);
	gr_rm_rf(f->dest, &err);
	o.devices = LAYER_DEVICES_CREATE;
	if (unpack_mem(buf, len, f->dest, &o, &res, &err) < 0)
		fail_msg("%s", err.msg);
	struct stat st;
	assert_int_equal(lstat_in(f->dest, "dev/null", &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(1, 3));
	gr_rm_rf(f->dest, &err);
	assert_contained(f);
}

static void test_xattrs_refused(void **state)
{
	struct fixture *f = *state;
	struct tb *t = tb_new();
	tb_dir(t, "d/");
	struct archive_entry *e = tb_entry("d/x", AE_IFDIR, 0755);
	archive_entry_xattr_add_entry(e, "trusted.overlay.opaque", "y", 1);
	tb_put(t, e, NULL, 0);
	assert_refused(f, t, NULL, EPERM, "entry d/x/: xattr trusted.overlay.opaque refused");
	t = tb_new();
	e = tb_entry("l", AE_IFLNK, 0777);
	archive_entry_set_symlink(e, "x");
	archive_entry_xattr_add_entry(e, "trusted.overlay.redirect", "/etc", 4);
	tb_put(t, e, NULL, 0);
	assert_refused(f, t, NULL, EPERM, "xattr trusted.overlay.redirect refused");
}

/* A tar header's size field set to a base-256 value (GNU), checksum fixed. */
static void set_huge_size(unsigned char *hdr, uint64_t size)
{
	memset(hdr + 124, 0, 12);
	hdr[124] = 0x80;
	for (int i = 0; i < 8; i++)
		hdr[135 - i] = (unsigned char)(size >> (8 * i));
	memset(hdr + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += hdr[i];
	snprintf((char *)hdr + 148, 8, "%06o", sum);
	hdr[155] = ' ';
}

static void test_huge_and_truncated(void **state)
{
	struct fixture *f = *state;
	/* Over the configured limit. */
	struct tb *t = tb_new();
	static char two_mib[(2u << 20) + 1];
	memset(two_mib, 'z', sizeof(two_mib) - 1);
	tb_file(t, "usr/bin/big", two_mib);
	struct layer_opts o = { .max_bytes = 1u << 20 };
	assert_refused(f, t, &o, EFBIG, "entry usr/bin/big: 2097152 bytes: over the limit of 1048576 bytes");
	/* Several files that add up over it. */
	t = tb_new();
	for (int i = 0; i < 5; i++) {
		char name[32];
		snprintf(name, sizeof(name), "f%d", i);
		tb_file(t, name, two_mib + (2u << 20) - 300000);
	}
	assert_refused(f, t, &o, EFBIG, "entry f3:");

	/* A header claiming 2^62 bytes: over the default 64 GiB. */
	t = tb_new();
	tb_file(t, "usr/bin/x", "small");
	size_t len;
	unsigned char *buf = tb_finish(t, &len);
	assert_int_equal(memcmp(buf, "usr/bin/x", 9), 0); /* ustar: the header is first */
	set_huge_size(buf, 1ull << 62);
	struct gr_error err = { 0 };
	assert_int_equal(unpack_mem(buf, len, f->dest, NULL, NULL, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "entry usr/bin/x: 4611686018427387904 bytes: over the limit"));
	assert_contained(f);
	/* 8 GiB claimed, 5 bytes there: truncated. */
	set_huge_size(buf, 8ull << 30);
	assert_int_equal(unpack_mem(buf, len, f->dest, NULL, NULL, &err), -EIO);
	assert_non_null(strstr(err.msg, "layer: entry usr/bin/x: truncated entry"));
	assert_contained(f);
	free(buf);

	/* Cut in the middle of a file's data, with a name. */
	t = tb_new();
	tb_file(t, "ok", "fine");
	tb_file(t, "usr/bin/x", two_mib);
	buf = tb_finish(t, &len);
	o = (struct layer_opts){ .name = "layer.tar" };
	assert_int_equal(unpack_mem(buf, len / 2, f->dest, &o, NULL, &err), -EIO);
	assert_non_null(strstr(err.msg, "layer.tar: entry usr/bin/x: truncated entry: "));
	assert_contained(f);
	/* Cut inside a header (after the first file). */
	assert_true(unpack_mem(buf, 1024 + 100, f->dest, &o, NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "layer.tar: "));
	assert_non_null(strstr(err.msg, "ok"));
	assert_contained(f);
	free(buf);

	/* A decompression bomb hidden in data that is never written (a
	 * whiteout's): the uncompressed tar is bounded too. */
	t = tb_new();
	size_t piece = 900u << 10;
	gr_autofree char *zeros = calloc(1, piece);
	for (int i = 0; i < 30; i++) {
		char name[32];
		snprintf(name, sizeof(name), ".wh.x%d", i);
		struct archive_entry *e = tb_entry(name, AE_IFREG, 0644);
		archive_entry_set_size(e, (la_int64_t)piece);
		tb_put(t, e, zeros, piece);
	}
	buf = tb_finish(t, &len);
	size_t glen;
	gr_autofree unsigned char *gz = compress(buf, len, "gzip", &glen);
	free(buf);
	assert_true(glen < (1u << 20));
	o = (struct layer_opts){ .max_bytes = 1u << 20 };
	assert_int_equal(unpack_mem(gz, glen, f->dest, &o, NULL, &err), -EFBIG);
	if (!strstr(err.msg, "layer: cannot read the layer: the uncompressed layer is over "))
		fail_msg("%s", err.msg);
	assert_contained(f);

	/* The source fails midway: its error, not libarchive's guess. */
	t = tb_new();
	tb_file(t, "ok", "fine");
	tb_file(t, "usr/bin/x", two_mib);
	buf = tb_finish(t, &len);
	struct mem m = { .p = buf, .len = len, .chunk = 1000 };
	struct failing fm = { .m = &m, .fail_at = len / 2 };
	assert_int_equal(layer_unpack(failing_read, &fm, f->dest, NULL, NULL, &err), -EIO);
	if (!strstr(err.msg, "read error: Input/output error"))
		fail_msg("%s", err.msg);
	assert_contained(f);
	free(buf);

	/* Entry count. */
	t = tb_new();
	for (int i = 0; i < 11; i++) {
		char name[32];
		snprintf(name, sizeof(name), "e%d", i);
		tb_file(t, name, "");
	}
	o = (struct layer_opts){ .max_entries = 10 };
	assert_refused(f, t, &o, EFBIG, "more than 10 entries");
}

static void test_not_a_layer(void **state)
{
	struct fixture *f = *state;
	struct gr_error err = { 0 };
	unsigned char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	assert_true(unpack_mem(junk, sizeof(junk), f->dest, NULL, NULL, &err) < 0);
	if (!strstr(err.msg, "layer: not a tar archive: "))
		fail_msg("%s", err.msg);
	assert_contained(f);
	assert_true(unpack_mem(junk, 0, f->dest, NULL, NULL, &err) < 0);
	if (!strstr(err.msg, "empty"))
		fail_msg("%s", err.msg);
	assert_contained(f);

	/* An empty layer (just the end blocks) is valid. */
	unsigned char zeros[1024] = { 0 };
	struct layer_result res;
	if (unpack_mem(zeros, sizeof(zeros), f->dest, NULL, &res, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(res.entries, 0);
	char want[LAYER_DIGEST_HEX];
	sha256_hex(zeros, sizeof(zeros), want);
	assert_string_equal(res.diff_id, want);

	/* The destination exists: refused, and left alone. */
	assert_int_equal(unpack_mem(zeros, sizeof(zeros), f->dest, NULL, &res, &err), -EEXIST);
	assert_true(exists_in(f->dest, ""));
	gr_rm_rf(f->dest, &err);
}

static int cancel_cb(void *ctx, uint64_t r, uint64_t w)
{
	(void)r;
	int *calls = ctx;
	return ++*calls >= 2 && w > 0;
}

static void test_progress_cancel(void **state)
{
	struct fixture *f = *state;
	struct tb *t = tb_new();
	static char data[(5u << 20) + 1];
	memset(data, 'q', sizeof(data) - 1);
	tb_file(t, "a", data);
	tb_file(t, "b", data);
	int calls = 0;
	struct layer_opts o = { .progress = cancel_cb, .progress_ctx = &calls };
	assert_refused(f, t, &o, ECANCELED, "cancelled");
	assert_true(calls >= 2);
}

/* ------------------------------------------------------------ flatten, write_tar */

static void unpack_tb(struct tb *t, const char *dest, struct layer_result *res)
{
	size_t len;
	gr_autofree unsigned char *buf = tb_finish(t, &len);
	struct gr_error err = { 0 };
	if (unpack_mem(buf, len, dest, NULL, res, &err) < 0)
		fail_msg("%s", err.msg);
}

static void test_flatten(void **state)
{
	struct fixture *f = *state;
	struct tb *t = tb_new();
	tb_file(t, "etc/passwd", "root\n");
	tb_file(t, "etc/group", "root\n");
	tb_file(t, "opt/app/old", "old");
	tb_file(t, "opt/keep/x", "x");
	tb_file(t, "lib/a", "aaa");
	tb_hardlink(t, "lib/b", "lib/a");
	tb_symlink(t, "bin", "usr/bin");
	tb_file(t, "usr/bin/sh", "sh");
	unpack_tb(t, f->dest, NULL);

	t = tb_new();
	tb_file(t, "etc/.wh.group", "");
	tb_file(t, "opt/app/.wh..wh..opq", "");
	tb_file(t, "opt/app/new", "new");
	tb_file(t, "etc/passwd", "root\nuser\n");
	tb_file(t, ".wh.bin", "");
	tb_dir(t, "bin/"); /* a directory where the symlink was */
	tb_file(t, "bin/tool", "t");
	unpack_tb(t, f->dest2, NULL);

	t = tb_new();
	tb_file(t, "etc/group", "back\n");
	tb_file(t, ".wh.usr", "");
	struct archive_entry *e = tb_entry("opt/keep/", AE_IFDIR, 0700);
	archive_entry_set_mtime(e, 1111111111, 0);
	tb_put(t, e, NULL, 0);
	unpack_tb(t, f->dest3, NULL);

	char out[128];
	snprintf(out, sizeof(out), "%s/flat", f->dir);
	const char *layers[] = { f->dest, f->dest2, f->dest3 };
	struct gr_error err = { 0 };
	if (layer_flatten(layers, 3, out, &err) < 0)
		fail_msg("%s", err.msg);
	gr_autofree char *pw = slurp(out, "etc/passwd");
	assert_string_equal(pw, "root\nuser\n");
	gr_autofree char *gr = slurp(out, "etc/group");
	assert_string_equal(gr, "back\n");
	assert_false(exists_in(out, "opt/app/old"));
	gr_autofree char *nw = slurp(out, "opt/app/new");
	assert_string_equal(nw, "new");
	assert_true(exists_in(out, "opt/keep/x"));
	assert_false(exists_in(out, "usr"));
	struct stat st, st2;
	assert_int_equal(lstat_in(out, "bin", &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_true(exists_in(out, "bin/tool"));
	assert_false(opaque_in(out, "opt/app"));
	assert_int_equal(lstat_in(out, "lib/a", &st), 0);
	assert_int_equal(lstat_in(out, "lib/b", &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	assert_int_equal(lstat_in(out, "opt/keep", &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_mtim.tv_sec, 1111111111);
	/* No whiteout devices in the result. */
	assert_int_equal(lstat_in(out, "etc", &st), 0);
	assert_false(exists_in(out, "etc/.wh.group"));

	/* The destination exists: refused, left alone. */
	assert_int_equal(layer_flatten(layers, 3, out, &err), -EEXIST);
	assert_true(exists_in(out, "etc/passwd"));
	/* A missing layer: nothing left. */
	char out2[128], missing[128];
	snprintf(out2, sizeof(out2), "%s/flat2", f->dir);
	snprintf(missing, sizeof(missing), "%s/nope", f->dir);
	const char *bad[] = { f->dest, missing };
	assert_true(layer_flatten(bad, 2, out2, &err) < 0);
	assert_non_null(strstr(err.msg, "nope"));
	assert_false(exists_in(out2, ""));
}

/* Compares two trees: types, modes, owners, mtimes (seconds), contents,
 * symlink targets, device numbers, allowed xattrs and the opaque marker. */
static void assert_same_tree(const char *a, const char *b, const char *rel)
{
	char pa[600], pb[600];
	snprintf(pa, sizeof(pa), "%s/%s", a, rel);
	snprintf(pb, sizeof(pb), "%s/%s", b, rel);
	struct stat sa, sb;
	assert_int_equal(lstat(pa, &sa), 0);
	if (lstat(pb, &sb) < 0)
		fail_msg("%s missing in %s", rel, b);
	assert_int_equal(sa.st_mode, sb.st_mode);
	assert_int_equal(sa.st_uid, sb.st_uid);
	assert_int_equal(sa.st_gid, sb.st_gid);
	if (!S_ISDIR(sa.st_mode) || *rel)
		assert_int_equal(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
	char xa[64] = "", xb[64] = "";
	lgetxattr(pa, "user.note", xa, sizeof(xa));
	lgetxattr(pb, "user.note", xb, sizeof(xb));
	assert_string_equal(xa, xb);
	if (S_ISDIR(sa.st_mode)) {
		assert_int_equal(opaque_in(a, rel), opaque_in(b, rel));
		gr_autoclosedir DIR *da = opendir(pa);
		int na = 0, nb = 0;
		struct dirent *de;
		while ((de = readdir(da))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char child[400];
			snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
			assert_same_tree(a, b, child);
			na++;
		}
		gr_autoclosedir DIR *db = opendir(pb);
		while ((de = readdir(db)))
			nb += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
		assert_int_equal(na, nb);
	} else if (S_ISREG(sa.st_mode)) {
		gr_autofree char *ca = slurp(a, rel);
		gr_autofree char *cb = slurp(b, rel);
		assert_string_equal(ca, cb);
		assert_int_equal(sa.st_nlink, sb.st_nlink);
	} else if (S_ISLNK(sa.st_mode)) {
		char ta[256] = "", tb2[256] = "";
		assert_true(readlink(pa, ta, sizeof(ta) - 1) > 0);
		assert_true(readlink(pb, tb2, sizeof(tb2) - 1) > 0);
		assert_string_equal(ta, tb2);
	} else {
		assert_int_equal(sa.st_rdev, sb.st_rdev);
	}
}

static void read_tar_names(const char *path, char *names, size_t n)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_filename(a, path, 65536), ARCHIVE_OK);
	struct archive_entry *e;
	names[0] = '\0';
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		strncat(names, archive_entry_pathname(e), n - strlen(names) - 2);
		strncat(names, " ", n - strlen(names) - 1);
	}
	archive_read_free(a);
}

static void test_write_tar_round_trip(void **state)
{
	struct fixture *f = *state;
	struct tb *t = tb_new();
	tb_file(t, "zeta", "last");
	tb_file(t, "etc/.wh.shadow", "");
	tb_file(t, "etc/passwd", "root\n");
	tb_file(t, "opt/.wh..wh..opq", "");
	tb_file(t, "opt/-first", "dash sorts before the dot");
	tb_file(t, "opt/b", "b");
	struct archive_entry *e = tb_entry("bin/ping", AE_IFREG, 04711);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 7);
	archive_entry_xattr_add_entry(e, "user.note", "cap", 3);
	archive_entry_set_size(e, 4);
	tb_put(t, e, "ping", 4);
	tb_hardlink(t, "bin/ping6", "bin/ping");
	tb_symlink(t, "bin/sh", "busybox");
	tb_dev(t, "run/fifo", AE_IFIFO, 0, 0);
	char deep[300] = "";
	for (int i = 0; i < 12; i++)
		strcat(deep, "long-directory-name/");
	strcat(deep, "file"); /* over ustar's 100+155: needs pax */
	tb_file(t, deep, "deep");
	struct layer_result r1, r2, r3;
	unpack_tb(t, f->dest, &r1);

	char tar1[128], tar2[128];
	snprintf(tar1, sizeof(tar1), "%s/one.tar", f->dir);
	snprintf(tar2, sizeof(tar2), "%s/two.tar", f->dir);
	struct gr_error err = { 0 };
	char d1[LAYER_DIGEST_HEX], d2[LAYER_DIGEST_HEX];
	uint64_t s1, s2;
	{
		gr_autoclose int fd = open(tar1, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (layer_write_tar(f->dest, fd, d1, &s1, &err) < 0)
			fail_msg("%s", err.msg);
	}
	gr_autofree char *bytes = NULL;
	size_t blen = 0;
	assert_int_equal(gr_read_file(tar1, &bytes, &blen, &err), 0);
	assert_int_equal(blen, s1);
	char want[LAYER_DIGEST_HEX];
	sha256_hex(bytes, blen, want);
	assert_string_equal(d1, want);
	char names[4096];
	read_tar_names(tar1, names, sizeof(names));
	if (!strstr(names, "bin/ bin/ping bin/ping6 bin/sh etc/ etc/.wh.shadow etc/passwd "))
		fail_msg("%s", names);
	assert_non_null(strstr(names, "opt/ opt/.wh..wh..opq opt/-first opt/b run/ run/fifo zeta "));

	{
		gr_autoclose int fd = open(tar1, O_RDONLY | O_CLOEXEC);
		if (layer_unpack_fd(fd, f->dest2, NULL, &r2, &err) < 0)
			fail_msg("%s", err.msg);
	}
	assert_string_equal(r2.diff_id, d1);
	assert_same_tree(f->dest, f->dest2, "");
	assert_whiteout(f->dest2, "etc/shadow");
	assert_true(opaque_in(f->dest2, "opt"));
	{
		gr_autoclose int fd = open(tar2, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (layer_write_tar(f->dest2, fd, d2, &s2, &err) < 0)
			fail_msg("%s", err.msg);
	}
	assert_string_equal(d1, d2);
	assert_int_equal(s1, s2);
	{
		gr_autoclose int fd = open(tar2, O_RDONLY | O_CLOEXEC);
		if (layer_unpack_fd(fd, f->dest3, NULL, &r3, &err) < 0)
			fail_msg("%s", err.msg);
	}
	assert_string_equal(r3.diff_id, d1);
	assert_same_tree(f->dest, f->dest3, "");

	/* Device nodes and sockets are left out. */
	char p[200];
	snprintf(p, sizeof(p), "%s/run/null", f->dest3);
	assert_int_equal(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
	{
		gr_autoclose int fd = open(tar2, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (layer_write_tar(f->dest3, fd, d2, &s2, &err) < 0)
			fail_msg("%s", err.msg);
	}
	assert_string_equal(d1, d2);

	/* A real file named .wh.* cannot be carried: refused, named. */
	snprintf(p, sizeof(p), "%s/etc/.wh.real", f->dest3);
	assert_int_equal(gr_write_file_new(p, "", 0, 0644, &err), 0);
	gr_autoclose int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_int_equal(layer_write_tar(f->dest3, null, NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "etc/.wh.real"));
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_layer: needs root (ownership, whiteout devices, trusted.* xattrs); skipped\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unpack_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_digests_and_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whiteouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sanitize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardlink_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xattrs_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_and_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_progress_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flatten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_tar_round_trip, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
