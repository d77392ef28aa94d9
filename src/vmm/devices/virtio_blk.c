/* virtio-blk over a raw file: request validation and synchronous I/O. */
#include "vmm/devices/virtio_blk.h"
#include "common/cleanup.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define BLK_HEADER_BYTES 16u

struct blk_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

int virtio_blk_parse_spec(const char *spec, char **path, bool *read_only, struct gr_error *err)
{
	*path = NULL;
	*read_only = false;
	const char *comma = strchr(spec, ',');
	size_t plen = comma ? (size_t)(comma - spec) : strlen(spec);
	if (plen == 0)
		return gr_error_set(err, EINVAL, "disk \"%s\": no path (expected PATH[,ro])", spec);
	while (comma) {
		const char *opt = comma + 1;
		comma = strchr(opt, ',');
		size_t olen = comma ? (size_t)(comma - opt) : strlen(opt);
		if (olen == 2 && strncmp(opt, "ro", 2) == 0)
			*read_only = true;
		else
			return gr_error_set(err, EINVAL, "disk \"%s\": unknown option \"%.*s\" (expected PATH[,ro])",
					    spec, (int)olen, opt);
	}
	*path = strndup(spec, plen);
	if (!*path)
		return gr_error_set(err, ENOMEM, "out of memory");
	return 0;
}

/* ---- the chain as two byte ranges: readable part, then writable part ---- */

/* iovecs covering [start, start + len) of the readable (write false) or
 * writable part of the chain; returns how many, or -1 when the part is shorter. */
static int chain_iov(const struct vq_chain *c, bool write, uint64_t start, uint64_t len, struct iovec *iov)
{
	int n = 0;
	uint64_t pos = 0;
	for (size_t i = 0; i < c->n && len; i++) {
		const struct vq_buf *b = &c->bufs[i];
		if (b->write != write)
			continue;
		uint64_t end = pos + b->len;
		if (end > start) {
			uint64_t skip = start > pos ? start - pos : 0;
			uint64_t take = b->len - skip;
			if (take > len)
				take = len;
			if (take) {
				iov[n++] = (struct iovec){ .iov_base = b->host + skip, .iov_len = (size_t)take };
				start += take;
				len -= take;
			}
		}
		pos = end;
	}
	return len ? -1 : n;
}

/* preadv/pwritev the whole of iov at off, resuming after short transfers;
 * 0 or -errno (-EIO on an unexpected end of file). */
static int rw_all(int fd, bool write, struct iovec *iov, int cnt, off_t off)
{
	while (cnt > 0) {
		ssize_t n = write ? pwritev(fd, iov, cnt, off) : preadv(fd, iov, cnt, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		off += n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* The last writable byte of the chain (the status), or NULL. */
static volatile uint8_t *status_byte(const struct vq_chain *c)
{
	for (size_t i = c->n; i-- > 0;) {
		const struct vq_buf *b = &c->bufs[i];
		if (!b->write)
			return NULL;
		if (b->len)
			return b->host + b->len - 1;
	}
	return NULL;
}

/* [sector, sector + bytes / 512) inside the disk, without overflow. */
static bool range_ok(const struct virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t n = bytes / VIRTIO_BLK_SECTOR_SIZE;
	return sector <= blk->capacity && n <= blk->capacity - sector;
}

static uint8_t do_request(struct virtio_blk *blk, const struct vq_chain *c, uint32_t *written)
{
	struct iovec iov[VQ_MAX_SIZE];
	*written = 1; /* the status byte */
	if (c->read_len < BLK_HEADER_BYTES)
		return VIRTIO_BLK_S_IOERR;
	uint8_t raw[BLK_HEADER_BYTES];
	int cnt = chain_iov(c, false, 0, BLK_HEADER_BYTES, iov);
	if (cnt < 0)
		return VIRTIO_BLK_S_IOERR;
	size_t at = 0;
	for (int i = 0; i < cnt; i++) {
		memcpy(raw + at, iov[i].iov_base, iov[i].iov_len); /* one copy: the guest may change it */
		at += iov[i].iov_len;
	}
	struct blk_header h;
	memcpy(&h, raw, sizeof(h));
	uint32_t type = le32toh(h.type);
	uint64_t sector = le64toh(h.sector);
	uint64_t in_data = c->read_len - BLK_HEADER_BYTES; /* readable bytes after the header */
	uint64_t out_room = c->write_len - 1;               /* writable bytes before the status */

	switch (type) {
	case VIRTIO_BLK_T_IN: {
		if (in_data != 0 || out_room % VIRTIO_BLK_SECTOR_SIZE || !range_ok(blk, sector, out_room))
			break;
		cnt = chain_iov(c, true, 0, out_room, iov);
		if (cnt < 0 || rw_all(blk->fd, false, iov, cnt, (off_t)(sector * VIRTIO_BLK_SECTOR_SIZE)) < 0)
			break;
		blk->reads++;
		blk->bytes_read += out_room;
		*written = (uint32_t)out_room + 1;
		return VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_OUT: {
		if (blk->read_only || out_room != 0 || in_data % VIRTIO_BLK_SECTOR_SIZE || !range_ok(blk, sector, in_data))
			break;
		cnt = chain_iov(c, false, BLK_HEADER_BYTES, in_data, iov);
		if (cnt < 0 || rw_all(blk->fd, true, iov, cnt, (off_t)(sector * VIRTIO_BLK_SECTOR_SIZE)) < 0)
			break;
		blk->writes++;
		blk->bytes_written += in_data;
		return VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (fdatasync(blk->fd) < 0 && errno != EINVAL) /* EINVAL: a file that cannot be synced */
			break;
		blk->flushes++;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID: {
		if (in_data != 0 || out_room == 0)
			break;
		uint64_t n = out_room < VIRTIO_BLK_ID_BYTES ? out_room : VIRTIO_BLK_ID_BYTES;
		cnt = chain_iov(c, true, 0, n, iov);
		if (cnt < 0)
			break;
		at = 0;
		for (int i = 0; i < cnt; i++) {
			memcpy(iov[i].iov_base, blk->id + at, iov[i].iov_len);
			at += iov[i].iov_len;
		}
		*written = (uint32_t)n + 1;
		return VIRTIO_BLK_S_OK;
	}
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
	blk->errors++;
	return VIRTIO_BLK_S_IOERR;
}

int virtio_blk_handle(struct virtio_blk *blk, const struct vq_chain *chain, uint32_t *written)
{
	*written = 0;
	volatile uint8_t *status = status_byte(chain);
	if (!status) {
		blk->errors++;
		return -EINVAL;
	}
	uint8_t s = do_request(blk, chain, written);
	*status = s;
	return s;
}

static uint32_t blk_serve(void *opaque, struct vq_chain *chain)
{
	uint32_t written;
	(void)virtio_blk_handle(opaque, chain, &written);
	return written;
}

static void blk_notify(struct virtio_mmio_dev *dev, uint32_t index)
{
	struct virtio_blk *blk = dev->opaque;
	virtio_mmio_serve_queue(dev, index, &blk->chain, blk_serve, blk);
}

static void blk_config_read(struct virtio_mmio_dev *dev, uint32_t offset, void *data, uint32_t len)
{
	struct virtio_blk *blk = dev->opaque;
	memcpy(data, (const uint8_t *)&blk->config + offset, len); /* bounds checked by the transport */
}

static const struct virtio_mmio_ops blk_ops = {
	.config_read = blk_config_read,
	.queue_notify = blk_notify,
};

int virtio_blk_init(struct virtio_blk *blk, const struct guest_mem *gm, const char *path, bool read_only,
		    unsigned id_index, virtio_mmio_irq_fn irq, void *irq_opaque, struct gr_error *err)
{
	memset(blk, 0, sizeof(*blk));
	blk->fd = -1;
	gr_autoclose int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "disk %s: cannot open%s", path, read_only ? "" : " for writing");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return gr_error_sys(err, errno, "disk %s: fstat", path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return gr_error_set(err, EINVAL, "disk %s: not a regular file or a block device", path);
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return gr_error_sys(err, errno, "disk %s: cannot find its size", path);
	if ((uint64_t)size < VIRTIO_BLK_SECTOR_SIZE)
		return gr_error_set(err, EINVAL, "disk %s: %lld bytes, smaller than one 512-byte sector", path,
				    (long long)size);
	blk->capacity = (uint64_t)size / VIRTIO_BLK_SECTOR_SIZE; /* a partial last sector is not visible */
	blk->read_only = read_only;
	blk->config.capacity = htole64(blk->capacity);
	blk->config.blk_size = htole32(VIRTIO_BLK_SECTOR_SIZE);
	snprintf(blk->id, sizeof(blk->id), "gureum-disk%u", id_index);
	uint64_t features = (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_BLK_SIZE);
	if (read_only)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	struct virtio_mmio_params p = {
		.device_id = VIRTIO_ID_BLOCK, .features = features, .num_queues = 1, .queue_num_max = 0,
		.config_size = sizeof(blk->config), .ops = &blk_ops, .opaque = blk,
		.irq = irq, .irq_opaque = irq_opaque,
	};
	int r = virtio_mmio_init(&blk->mmio, gm, &p, err);
	if (r < 0)
		return gr_error_prefix(err, "disk %s", path);
	blk->fd = gr_steal_fd(fd);
	return 0;
}

void virtio_blk_close(struct virtio_blk *blk)
{
	if (blk->fd >= 0)
		close(blk->fd);
	blk->fd = -1;
}
