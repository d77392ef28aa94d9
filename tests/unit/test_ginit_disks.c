/* Unit tests for gureum-init's disks by serial (src/guest/init/disks.c) and
 * instance.json's volumes and root_by_serial (config.c), on a fake sysfs
 * and image files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "guest/init/config.h"
#include "guest/init/disks.h"

static char dir[64];

static void put(const char *rel, const void *data, size_t len)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	char *slash = strrchr(p, '/');
	*slash = 0;
	assert_int_equal(gr_mkdir_p(p, 0755, NULL), 0);
	*slash = '/';
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test-ginit-disks-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return gr_rm_rf(dir, NULL);
}

static void test_find_by_serial(void **state)
{
	(void)state;
	put("block/vda/serial", "gureum-disk0\n", 13);
	put("block/vdb/serial", "gureum-disk2", 12);
	put("block/vdc/serial", "gureum-disk1\n", 13);
	put("block/loop0/size", "0\n", 2);        /* no serial */
	put("block/vdd/serial", "gureum-disk10\n", 14);
	char sys[128], out[16];
	snprintf(sys, sizeof(sys), "%s/block", dir);
	assert_int_equal(disks_find_by_serial(sys, "gureum-disk0", out, sizeof(out)), 0);
	assert_string_equal(out, "vda");
	assert_int_equal(disks_find_by_serial(sys, "gureum-disk1", out, sizeof(out)), 0);
	assert_string_equal(out, "vdc");
	assert_int_equal(disks_find_by_serial(sys, "gureum-disk10", out, sizeof(out)), 0);
	assert_string_equal(out, "vdd");
	assert_int_equal(disks_find_by_serial(sys, "gureum-disk3", out, sizeof(out)), -ENOENT);
	assert_int_equal(disks_find_by_serial(sys, "gureum-disk", out, sizeof(out)), -ENOENT); /* no prefix match */
	assert_int_equal(disks_find_by_serial(sys, "gureum-disk0", out, 3), -ENOENT);          /* no room */
	struct gr_error err = { 0 };
	assert_int_equal(disks_wait_by_serial(sys, "gureum-disk9", 0, out, sizeof(out), &err), -ENODEV);
	assert_non_null(strstr(err.msg, "gureum-disk9"));
	assert_int_equal(disks_wait_by_serial(sys, "gureum-disk2", 0, out, sizeof(out), &err), 0);
	assert_string_equal(out, "vdb");
	snprintf(sys, sizeof(sys), "%s/nonexistent", dir);
	assert_int_equal(disks_find_by_serial(sys, "gureum-disk0", out, sizeof(out)), -ENOENT);
}

static void test_is_ext4(void **state)
{
	(void)state;
	static unsigned char img[4096];
	put("raw.img", img, sizeof(img));
	img[1024 + 56] = 0x53;
	img[1024 + 57] = 0xEF;
	put("ext4.img", img, sizeof(img));
	put("short.img", img, 1000);
	char p[128];
	snprintf(p, sizeof(p), "%s/ext4.img", dir);
	assert_true(disks_is_ext4(p));
	snprintf(p, sizeof(p), "%s/raw.img", dir);
	assert_false(disks_is_ext4(p));
	snprintf(p, sizeof(p), "%s/short.img", dir);
	assert_false(disks_is_ext4(p));
	snprintf(p, sizeof(p), "%s/none.img", dir);
	assert_false(disks_is_ext4(p));
}

static void test_config_volumes(void **state)
{
	(void)state;
	struct ginit_config c;
	struct gr_error err = { 0 };
	assert_int_equal(ginit_config_parse("{\"root_by_serial\": true, \"volumes\": ["
					    "{\"disk\": 1, \"name\": \"data\", \"path\": \"/srv/data\", \"readonly\": false},"
					    "{\"disk\": 2, \"name\": \"logs-2\", \"path\": \"/var/log/app\", \"readonly\": true}]}",
					    &c, &err), 0);
	assert_true(c.has_root_disk);
	assert_int_equal(c.nvolumes, 2);
	assert_int_equal(c.volumes[0].disk, 1);
	assert_string_equal(c.volumes[0].name, "data");
	assert_string_equal(c.volumes[0].path, "/srv/data");
	assert_false(c.volumes[0].readonly);
	assert_int_equal(c.volumes[1].disk, 2);
	assert_true(c.volumes[1].readonly);
	ginit_config_free(&c);
	/* Absent: no volumes, root by path. */
	assert_int_equal(ginit_config_parse("{}", &c, &err), 0);
	assert_false(c.has_root_disk);
	assert_int_equal(c.nvolumes, 0);
	ginit_config_free(&c);
	/* Each bad field is named. */
	static const struct { const char *json, *want; } bad[] = {
		{ "{\"volumes\": {}}", "volumes" },
		{ "{\"volumes\": [1]}", "volumes[0]: expected an object" },
		{ "{\"volumes\": [{\"disk\": 0, \"name\": \"a\", \"path\": \"/a\"}]}", "volumes[0].disk" },
		{ "{\"volumes\": [{\"disk\": 99, \"name\": \"a\", \"path\": \"/a\"}]}", "volumes[0].disk" },
		{ "{\"volumes\": [{\"disk\": 1, \"name\": \"../x\", \"path\": \"/a\"}]}", "volumes[0].name" },
		{ "{\"volumes\": [{\"disk\": 1, \"name\": \"a\"}]}", "volumes[0].path" },
		{ "{\"volumes\": [{\"disk\": 1, \"name\": \"a\", \"path\": \"rel\"}]}", "volumes[0].path" },
		{ "{\"volumes\": [{\"disk\": 1, \"name\": \"a\", \"path\": \"/a/../b\"}]}", "volumes[0].path" },
		{ "{\"volumes\": [{\"disk\": 1, \"name\": \"a\", \"path\": \"/a/..\"}]}", "volumes[0].path" },
		{ "{\"volumes\": [{\"disk\": 1, \"name\": \"a\", \"path\": \"/a//b\"}]}", "volumes[0].path" },
		{ "{\"volumes\": [{\"disk\": 1, \"name\": \"a\", \"path\": \"/\"}]}", "volumes[0].path" },
		{ "{\"volumes\": [{\"disk\": 1, \"name\": \"a\", \"path\": \"/a\", \"readonly\": 1}]}", "readonly" },
		{ "{\"root_by_serial\": \"yes\"}", "root_by_serial" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = (struct gr_error){ 0 };
		int r = ginit_config_parse(bad[i].json, &c, &err);
		if (r != -EINVAL || !strstr(err.msg, bad[i].want))
			fail_msg("%s: %d %s", bad[i].json, r, err.msg);
		assert_int_equal(c.nvolumes, 0); /* freed */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_find_by_serial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_is_ext4, setup, teardown),
		cmocka_unit_test(test_config_volumes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
