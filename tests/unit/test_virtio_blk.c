/* Unit tests for src/vmm/devices/virtio_blk.c: the --disk spec, opening the
 * backend, and request validation against crafted (and hostile) chains in a
 * guest_mem, through virtio_blk_handle() and through the virtio-mmio
 * transport (rings, notify, used ring, interrupt). */
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

#include "vmm/devices/virtio_blk.h"
#include "vq_fixture.h"

#define RAM     (4ULL << 20)
#define HDR     0x1000ULL
#define DATA    0x2000ULL    /* 8 KiB */
#define STATUS  0x5000ULL
#define DESC    0x10000ULL
#define AVAIL   0x11000ULL
#define USED    0x12000ULL
#define SECTORS 64           /* disk size */

struct fx {
	struct guest_mem gm;
	struct virtio_blk blk;
	struct vq_chain chain;
	char path[64];
	int irq_raises;
};

static void on_irq(void *opaque, bool level)
{
	struct fx *f = opaque;
	if (level)
		f->irq_raises++;
}

static void make_disk(const char *path, size_t bytes)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	uint8_t *b = malloc(bytes);
	assert_non_null(b);
	for (size_t i = 0; i < bytes; i++)
		b[i] = (uint8_t)(i / 512 + 1);   /* sector n is full of n + 1 */
	assert_int_equal(write(fd, b, bytes), (ssize_t)bytes);
	free(b);
	close(fd);
}

static int fx_open_in(void **state, bool ro, bool direct, const char *dir, size_t sectors)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct gr_error err = { 0 };
	if (!f || gm_create(&f->gm, RAM, &err) < 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/gureum-test-blk-XXXXXX", dir);
	int fd = mkstemp(f->path);
	if (fd < 0)
		return -1;
	close(fd);
	make_disk(f->path, sectors * 512);
	if (virtio_blk_init(&f->blk, &f->gm, f->path, ro, direct, 0, on_irq, f, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int fx_open(void **state, bool ro) { return fx_open_in(state, ro, false, "/tmp", SECTORS); }
/* O_DIRECT needs a file system that takes it: /var/tmp is on disk. */
#define DIRECT_SECTORS 1024
static int fx_setup_direct(void **state) { return fx_open_in(state, false, true, "/var/tmp", DIRECT_SECTORS); }
static int fx_setup(void **state) { return fx_open(state, false); }
static int fx_setup_ro(void **state) { return fx_open(state, true); }

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	virtio_blk_close(&f->blk);
	unlink(f->path);
	gm_destroy(&f->gm);
	free(f);
	return 0;
}

/* ---- crafting chains ---- */

static void chain_reset(struct fx *f)
{
	memset(&f->chain, 0, sizeof(f->chain));
}

static void chain_add(struct fx *f, uint64_t gpa, uint32_t len, bool write)
{
	uint8_t *p = gm_ptr(&f->gm, gpa, len);
	assert_non_null(p);
	f->chain.bufs[f->chain.n++] = (struct vq_buf){ .host = p, .len = len, .write = write };
	if (write)
		f->chain.write_len += len;
	else
		f->chain.read_len += len;
}

static void put_header(struct fx *f, uint32_t type, uint64_t sector)
{
	uint8_t h[16] = { 0 };
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
	assert_int_equal(gm_write(&f->gm, HDR, h, sizeof(h)), 0);
}

static uint8_t *g(struct fx *f, uint64_t gpa) { return gm_ptr(&f->gm, gpa, 1); }

/* header, one data buffer of len (skipped when 0), status */
static int request(struct fx *f, uint32_t type, uint64_t sector, uint32_t len, bool data_write, uint32_t *written)
{
	put_header(f, type, sector);
	*g(f, STATUS) = 0xee;
	chain_reset(f);
	chain_add(f, HDR, 16, false);
	if (len)
		chain_add(f, DATA, len, data_write);
	chain_add(f, STATUS, 1, true);
	return virtio_blk_handle(&f->blk, &f->chain, written);
}

static void file_sector(struct fx *f, uint64_t sector, uint8_t *out)
{
	int fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, out, 512, (off_t)sector * 512), 512);
	close(fd);
}

/* ---- tests ---- */

static void test_parse_spec(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	char *path;
	bool ro, direct;
	assert_int_equal(virtio_blk_parse_spec("disk.img", &path, &ro, &direct, &err), 0);
	assert_string_equal(path, "disk.img");
	assert_false(ro);
	assert_false(direct);
	free(path);
	assert_int_equal(virtio_blk_parse_spec("d.img,direct,ro", &path, &ro, &direct, &err), 0);
	assert_string_equal(path, "d.img");
	assert_true(ro);
	assert_true(direct);
	free(path);
	assert_int_equal(virtio_blk_parse_spec("d.img,directx", &path, &ro, &direct, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "PATH[,ro][,direct]"));
	assert_int_equal(virtio_blk_parse_spec("/x/disk.img,ro", &path, &ro, &direct, &err), 0);
	assert_string_equal(path, "/x/disk.img");
	assert_true(ro);
	free(path);
	assert_int_equal(virtio_blk_parse_spec("", &path, &ro, &direct, &err), -EINVAL);
	assert_null(path);
	assert_int_equal(virtio_blk_parse_spec(",ro", &path, &ro, &direct, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no path"));
	assert_int_equal(virtio_blk_parse_spec("d.img,rw", &path, &ro, &direct, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown option \"rw\""));
	assert_int_equal(virtio_blk_parse_spec("d.img,ro,", &path, &ro, &direct, &err), -EINVAL);
	assert_null(path);
}

static void test_open_errors(void **state)
{
	(void)state;
	struct guest_mem gm;
	struct gr_error err = { 0 };
	assert_int_equal(gm_create(&gm, RAM, &err), 0);
	struct virtio_blk *b = calloc(1, sizeof(*b));
	assert_int_equal(virtio_blk_init(b, &gm, "/nonexistent/disk.img", false, false, 0, NULL, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/disk.img"));
	assert_int_equal(virtio_blk_init(b, &gm, "/tmp", true, false, 0, NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a regular file"));
	char path[] = "/tmp/gureum-test-blk-small-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "tiny", 4), 4);
	close(fd);
	assert_int_equal(virtio_blk_init(b, &gm, path, false, false, 0, NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "smaller than one"));
	/* A partial last sector is not visible. */
	make_disk(path, 3 * 512 + 100);
	assert_int_equal(virtio_blk_init(b, &gm, path, true, false, 0, NULL, NULL, &err), 0);
	assert_int_equal(b->capacity, 3);
	assert_true(b->mmio.device_features & (1ULL << VIRTIO_BLK_F_RO));
	virtio_blk_close(b);
	unlink(path);
	free(b);
	gm_destroy(&gm);
}

static void test_config_and_features(void **state)
{
	struct fx *f = *state;
	assert_int_equal(f->blk.mmio.device_id, VIRTIO_ID_BLOCK);
	uint64_t feat = f->blk.mmio.device_features;
	assert_true(feat & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_true(feat & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
	assert_false(feat & (1ULL << VIRTIO_BLK_F_RO));
	uint64_t cap = 0;
	virtio_mmio_read(&f->blk.mmio, VIRTIO_MMIO_CONFIG, &cap, 8);
	assert_int_equal(cap, SECTORS);
	uint32_t bs = 0;
	virtio_mmio_read(&f->blk.mmio, VIRTIO_MMIO_CONFIG + 20, &bs, 4);
	assert_int_equal(bs, 512);
	/* Beyond the config space: zeros, no overread. */
	uint32_t v = 0xffffffff;
	virtio_mmio_read(&f->blk.mmio, VIRTIO_MMIO_CONFIG + 22, &v, 4);
	assert_int_equal(v, 0);
}

static void test_write_flush_read(void **state)
{
	struct fx *f = *state;
	uint32_t w;
	for (int i = 0; i < 1024; i++)
		g(f, DATA)[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 5, 1024, false, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(w, 1);
	assert_int_equal(*g(f, STATUS), VIRTIO_BLK_S_OK);
	uint8_t s[512];
	file_sector(f, 6, s);
	assert_memory_equal(s, gm_ptr(&f->gm, DATA + 512, 512), 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, false, &w), VIRTIO_BLK_S_OK);
	memset(g(f, DATA), 0, 1024);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 5, 1024, true, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(w, 1025);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(g(f, DATA)[i], (uint8_t)(i * 13 + 1));
	/* The last sector, read through three buffers of odd sizes. */
	put_header(f, VIRTIO_BLK_T_IN, SECTORS - 1);
	chain_reset(f);
	chain_add(f, HDR, 7, false);            /* the header split over two buffers */
	chain_add(f, HDR + 7, 9, false);
	chain_add(f, DATA, 100, true);
	chain_add(f, DATA + 100, 412, true);
	chain_add(f, STATUS, 1, true);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(w, 513);
	assert_int_equal(g(f, DATA)[0], SECTORS);
	assert_int_equal(g(f, DATA)[511], SECTORS);
	assert_int_equal(f->blk.writes, 1);
	assert_int_equal(f->blk.reads, 2);
	assert_int_equal(f->blk.flushes, 1);
}

/* ---- O_DIRECT ---- */

static void test_direct_aligned_in_place(void **state)
{
	struct fx *f = *state;
	assert_true(f->blk.direct);
	assert_true(f->blk.dio_mem_align >= 1 && f->blk.dio_offset_align >= 512);
	uint32_t bs = 0;
	virtio_mmio_read(&f->blk.mmio, VIRTIO_MMIO_CONFIG + 20, &bs, 4);
	assert_int_equal(bs, f->blk.dio_offset_align);
	f->blk.dio_offset_align = 512; /* as on this machine's ext4; requests below at 512-byte steps */
	uint32_t w;
	for (int i = 0; i < 4096; i++)
		g(f, DATA)[i] = (uint8_t)(i * 5 + 7);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 8, 4096, false, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(f->blk.direct_ios, 1);
	assert_int_equal(f->blk.bounced_ios, 0);
	uint8_t s[512];
	file_sector(f, 9, s);
	assert_memory_equal(s, gm_ptr(&f->gm, DATA + 512, 512), 512);
	memset(g(f, DATA), 0, 4096);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 8, 4096, true, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(w, 4097);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(g(f, DATA)[i], (uint8_t)(i * 5 + 7));
	assert_int_equal(f->blk.direct_ios, 2);
	assert_int_equal(f->blk.bounced_ios, 0);
}

static void test_direct_unaligned_bounced(void **state)
{
	struct fx *f = *state;
	f->blk.dio_offset_align = 512;
	f->blk.dio_mem_align = 4096;   /* stricter than the file system: DATA + 512 is now unaligned */
	uint32_t w;
	/* Unaligned address and odd lengths, the data split over three buffers. */
	for (int i = 0; i < 1024; i++)
		g(f, DATA + 1)[i] = (uint8_t)(i * 3 + 11);
	put_header(f, VIRTIO_BLK_T_OUT, 3);
	chain_reset(f);
	chain_add(f, HDR, 16, false);
	chain_add(f, DATA + 1, 100, false);
	chain_add(f, DATA + 101, 700, false);
	chain_add(f, DATA + 801, 224, false);
	chain_add(f, STATUS, 1, true);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(f->blk.bounced_ios, 1);
	assert_int_equal(f->blk.direct_ios, 0);
	uint8_t s[512];
	file_sector(f, 4, s);
	assert_memory_equal(s, gm_ptr(&f->gm, DATA + 1 + 512, 512), 512);
	/* Read it back into a different unaligned place, again split. */
	put_header(f, VIRTIO_BLK_T_IN, 3);
	chain_reset(f);
	chain_add(f, HDR, 16, false);
	chain_add(f, DATA + 4096 + 512, 1000, true);
	chain_add(f, DATA + 4096 + 1512, 24, true);
	chain_add(f, STATUS, 1, true);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(w, 1025);
	assert_memory_equal(gm_ptr(&f->gm, DATA + 4096 + 512, 1024), gm_ptr(&f->gm, DATA + 1, 1024), 1024);
	assert_int_equal(f->blk.bounced_ios, 2);
	/* More than one bounce buffer's worth (300 KiB), unaligned by 3 bytes. */
	const uint64_t big = 0x100003, n = 300 * 1024;
	for (uint64_t i = 0; i < n; i++)
		g(f, big)[i] = (uint8_t)(i / 512 * 17 + i);
	put_header(f, VIRTIO_BLK_T_OUT, 100);
	chain_reset(f);
	chain_add(f, HDR, 16, false);
	chain_add(f, big, (uint32_t)n, false);
	chain_add(f, STATUS, 1, true);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), VIRTIO_BLK_S_OK);
	file_sector(f, 100 + 599, s);
	assert_memory_equal(s, gm_ptr(&f->gm, big + 599 * 512, 512), 512);
	const uint64_t back = 0x200005;
	memset(g(f, back), 0, n);
	put_header(f, VIRTIO_BLK_T_IN, 100);
	chain_reset(f);
	chain_add(f, HDR, 16, false);
	chain_add(f, back, (uint32_t)n - 512, true);
	chain_add(f, back + n - 512, 512, true);
	chain_add(f, STATUS, 1, true);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(w, n + 1);
	assert_memory_equal(gm_ptr(&f->gm, back, n), gm_ptr(&f->gm, big, n), n);
	/* Sector offsets below the file system's block size: IOERR, nothing done. */
	f->blk.dio_offset_align = 4096;
	uint64_t errors = f->blk.errors;
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 1, 4096, true, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 8, 512, false, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->blk.errors, errors + 2);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 8, 4096, true, &w), VIRTIO_BLK_S_OK);
}

static void test_get_id_and_unsupported(void **state)
{
	struct fx *f = *state;
	uint32_t w;
	memset(g(f, DATA), 0xaa, 32);
	put_header(f, VIRTIO_BLK_T_GET_ID, 0);
	chain_reset(f);
	chain_add(f, HDR, 16, false);
	chain_add(f, DATA, 20, true);
	chain_add(f, STATUS, 1, true);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(w, 21);
	assert_string_equal((char *)g(f, DATA), "gureum-disk0");
	assert_int_equal(request(f, 99, 0, 0, false, &w), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(w, 1);
	assert_int_equal(*g(f, STATUS), VIRTIO_BLK_S_UNSUPP);
}

static void test_short_header(void **state)
{
	struct fx *f = *state;
	uint32_t w;
	put_header(f, VIRTIO_BLK_T_IN, 0);
	chain_reset(f);
	chain_add(f, HDR, 15, false);
	chain_add(f, DATA, 512, true);
	chain_add(f, STATUS, 1, true);
	*g(f, STATUS) = 0xee;
	g(f, DATA)[0] = 0x77;
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*g(f, STATUS), VIRTIO_BLK_S_IOERR);
	assert_int_equal(w, 1);
	assert_int_equal(g(f, DATA)[0], 0x77);  /* nothing read */
	/* No readable part at all. */
	chain_reset(f);
	chain_add(f, STATUS, 1, true);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), VIRTIO_BLK_S_IOERR);
}

static void test_no_status_byte(void **state)
{
	struct fx *f = *state;
	uint32_t w = 123;
	put_header(f, VIRTIO_BLK_T_OUT, 0);
	chain_reset(f);
	chain_add(f, HDR, 16, false);
	chain_add(f, DATA, 512, false);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), -EINVAL);
	assert_int_equal(w, 0);
	uint8_t s[512];
	file_sector(f, 0, s);
	assert_int_equal(s[0], 1);                /* not written */
	/* A zero-length writable buffer is no status byte either. */
	chain_add(f, STATUS, 0, true);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), -EINVAL);
	/* An empty chain. */
	chain_reset(f);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), -EINVAL);
}

static void test_sector_range(void **state)
{
	struct fx *f = *state;
	uint32_t w;
	/* Entirely beyond the capacity, straddling its end, and far away. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, SECTORS, 512, true, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, SECTORS - 1, 1024, true, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, SECTORS - 1, 1024, false, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, UINT64_MAX, 512, false, &w), VIRTIO_BLK_S_IOERR);
	/* sector * 512 wraps to 0 (and to 512): must not turn into sector 0 (1). */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 1ULL << 55, 512, false, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, (1ULL << 55) + 1, 512, false, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, UINT64_MAX - 1, 1024, true, &w), VIRTIO_BLK_S_IOERR);
	uint8_t s[512];
	file_sector(f, 0, s);
	assert_int_equal(s[0], 1);
	file_sector(f, 1, s);
	assert_int_equal(s[0], 2);
	/* The very last sector is fine. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, SECTORS - 1, 512, true, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(f->blk.errors, 7);
}

static void test_data_not_sector_multiple(void **state)
{
	struct fx *f = *state;
	uint32_t w;
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 100, true, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 513, false, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 511, false, &w), VIRTIO_BLK_S_IOERR);
	/* Data in the wrong direction: a writable buffer for OUT, a readable one for IN. */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512, true, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512, false, &w), VIRTIO_BLK_S_IOERR);
	/* A header longer than 16 bytes for IN is extra readable data. */
	put_header(f, VIRTIO_BLK_T_IN, 0);
	chain_reset(f);
	chain_add(f, HDR, 32, false);
	chain_add(f, DATA, 512, true);
	chain_add(f, STATUS, 1, true);
	assert_int_equal(virtio_blk_handle(&f->blk, &f->chain, &w), VIRTIO_BLK_S_IOERR);
	uint8_t s[512];
	file_sector(f, 0, s);
	assert_int_equal(s[0], 1);
	assert_int_equal(s[511], 1);
}

static void test_write_on_read_only(void **state)
{
	struct fx *f = *state;
	uint32_t w;
	assert_true(f->blk.mmio.device_features & (1ULL << VIRTIO_BLK_F_RO));
	memset(g(f, DATA), 0x55, 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512, false, &w), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*g(f, STATUS), VIRTIO_BLK_S_IOERR);
	uint8_t s[512];
	file_sector(f, 0, s);
	assert_int_equal(s[0], 1);
	/* Reads and flushes still work. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 2, 512, true, &w), VIRTIO_BLK_S_OK);
	assert_int_equal(g(f, DATA)[0], 3);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, false, &w), VIRTIO_BLK_S_OK);
}

/* ---- through the transport ---- */

static uint32_t rd(struct fx *f, uint64_t off) { return vqf_rd(&f->blk.mmio, off); }

static void driver_up(struct fx *f)
{
	assert_true(vqf_negotiate(&f->blk.mmio, 1ULL << 32 | 1u << VIRTIO_BLK_F_FLUSH) & VIRTIO_STATUS_FEATURES_OK);
	vqf_queue(&f->blk.mmio, 0, 8, DESC, AVAIL, USED);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	vqf_driver_ok(&f->blk.mmio);
}

static void put_desc(struct fx *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	vqf_desc(&f->gm, DESC, i, addr, len, flags, next);
}

/* Makes head available as the idx-th entry and notifies. */
static void post(struct fx *f, uint16_t head, uint16_t idx)
{
	uint16_t before = (uint16_t)(idx - 1);
	vqf_offer(&f->gm, AVAIL, 8, &before, head);
	vqf_wr(&f->blk.mmio, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

static void test_through_the_queue(void **state)
{
	struct fx *f = *state;
	driver_up(f);
	put_header(f, VIRTIO_BLK_T_IN, 3);
	*g(f, STATUS) = 0xee;
	put_desc(f, 0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(f, 1, DATA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put_desc(f, 2, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	post(f, 0, 1);
	uint16_t *used = gm_ptr(&f->gm, USED, 4 + 8 * 8);
	assert_int_equal(used[1], 1);
	uint32_t *elem = (uint32_t *)(used + 2);
	assert_int_equal(elem[0], 0);
	assert_int_equal(elem[1], 513);
	assert_int_equal(*g(f, STATUS), VIRTIO_BLK_S_OK);
	assert_int_equal(g(f, DATA)[0], 4);
	assert_int_equal(f->irq_raises, 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);

	/* A chain without a status byte comes back with nothing written. */
	put_desc(f, 3, HDR, 16, 0, 0);
	post(f, 3, 2);
	assert_int_equal(used[1], 2);
	assert_int_equal(elem[2], 3);
	assert_int_equal(elem[3], 0);

	/* A descriptor outside guest RAM: the device needs a reset, no I/O. */
	put_desc(f, 4, RAM - 8, 16, 0, 0);
	post(f, 4, 3);
	assert_int_equal(used[1], 2);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
#define T_RO(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_ro, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_spec),
		cmocka_unit_test_setup_teardown(test_direct_aligned_in_place, fx_setup_direct, fx_teardown),
		cmocka_unit_test_setup_teardown(test_direct_unaligned_bounced, fx_setup_direct, fx_teardown),
		cmocka_unit_test(test_open_errors),
		T(test_config_and_features),
		T(test_write_flush_read),
		T(test_get_id_and_unsupported),
		T(test_short_header),
		T(test_no_status_byte),
		T(test_sector_range),
		T(test_data_not_sector_multiple),
		T_RO(test_write_on_read_only),
		T(test_through_the_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
