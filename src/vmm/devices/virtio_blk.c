/* virtio-blk over a raw file: request validation and synchronous I/O. */
#include "vmm/devices/virtio_blk.h"
#include "common/cleanup.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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

int virtio_blk_parse_spec(const char *spec, char **path, bool *read_only, bool *direct, struct gr_error *err)
{
	*path = NULL;
	*read_only = false;
	*direct = false;
	const char *comma = strchr(spec, ',');
	size_t plen = comma ? (size_t)(comma - spec) : strlen(spec);
	if (plen == 0)
		return gr_error_set(err, EINVAL, "disk \"%s\": no path (expected PATH[,ro][,direct])", spec);
	while (comma) {
		const char *opt = comma + 1;
		comma = strchr(opt, ',');
		size_t olen = comma ? (size_t)(comma - opt) : strlen(opt);
		if (olen == 2 && strncmp(opt, "ro", 2) == 0)
			*read_only = true;
		else if (olen == 6 && strncmp(opt, "direct", 6) == 0)
			*direct = true;
		else
			return gr_error_set(err, EINVAL, "disk \"%s\": unknown option \"%.*s\" (expected PATH[,ro][,direct])",
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

/* O_DIRECT: straight into guest buffers when every buffer's address and
 * length are multiples of the memory alignment, else through the aligned
 * bounce buffer, VIRTIO_BLK_BOUNCE bytes at a time. off and len must be
 * multiples of the offset alignment (checked by the caller). */
static int rw_direct(struct virtio_blk *blk, bool write, struct iovec *iov, int cnt, off_t off)
{
	bool aligned = true;
	for (int i = 0; i < cnt && aligned; i++)
		aligned = (uintptr_t)iov[i].iov_base % blk->dio_mem_align == 0 && iov[i].iov_len % blk->dio_mem_align == 0;
	if (aligned) {
		blk->direct_ios++;
		return rw_all(blk->fd, write, iov, cnt, off);
	}
	blk->bounced_ios++;
	int i = 0;
	size_t in_iov = 0;   /* bytes of iov[i] already done */
	while (i < cnt) {
		size_t chunk = 0;   /* gather up to a bounce buffer's worth */
		int j = i;
		size_t at = in_iov;
		while (j < cnt && chunk < VIRTIO_BLK_BOUNCE) {
			size_t take = iov[j].iov_len - at;
			if (take > VIRTIO_BLK_BOUNCE - chunk)
				take = VIRTIO_BLK_BOUNCE - chunk;
			if (write)
				memcpy(blk->bounce + chunk, (uint8_t *)iov[j].iov_base + at, take);
			chunk += take;
			at += take;
			if (at == iov[j].iov_len) {
				j++;
				at = 0;
			}
		}
		struct iovec b = { .iov_base = blk->bounce, .iov_len = chunk };
		int r = rw_all(blk->fd, write, &b, 1, off);
		if (r < 0)
			return r;
		if (!write) {   /* scatter the chunk back */
			size_t done = 0;
			while (done < chunk) {
				size_t take = iov[i].iov_len - in_iov;
				if (take > chunk - done)
					take = chunk - done;
				memcpy((uint8_t *)iov[i].iov_base + in_iov, blk->bounce + done, take);
				done += take;
				in_iov += take;
				if (in_iov == iov[i].iov_len) {
					i++;
					in_iov = 0;
				}
			}
		} else {
			i = j;
			in_iov = at;
		}
		off += (off_t)chunk;
	}
	return 0;
}

static int blk_rw(struct virtio_blk *blk, bool write, struct iovec *iov, int cnt, uint64_t sector, uint64_t len)
{
	off_t off = (off_t)(sector * VIRTIO_BLK_SECTOR_SIZE);
	if (!blk->direct)
		return rw_all(blk->fd, write, iov, cnt, off);
	if ((uint64_t)off % blk->dio_offset_align || len % blk->dio_offset_align)
		return -EINVAL;   /* below the file system's block size: the guest was told BLK_SIZE */
	return rw_direct(blk, write, iov, cnt, off);
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
		if (cnt < 0 || blk_rw(blk, false, iov, cnt, sector, out_room) < 0)
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
		if (cnt < 0 || blk_rw(blk, true, iov, cnt, sector, in_data) < 0)
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

static const struct virtio_mmio_ops blk_ops = {
	.queue_notify = blk_notify,
};

/* The memory and file-offset alignment O_DIRECT needs for this file:
 * statx(STATX_DIOALIGN) when the kernel and file system report it, else 4096
 * for memory (the safe choice) and 512 for offsets (the sector size; a file
 * system that needs more fails those requests with IOERR). */
static void dio_alignment(int fd, uint32_t *mem, uint32_t *offset)
{
	*mem = 4096;
	*offset = VIRTIO_BLK_SECTOR_SIZE;
#ifdef STATX_DIOALIGN
	struct statx stx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
	    stx.stx_dio_mem_align && stx.stx_dio_offset_align) {
		*mem = stx.stx_dio_mem_align;
		*offset = stx.stx_dio_offset_align;
	}
#endif
}

int virtio_blk_init(struct virtio_blk *blk, const struct guest_mem *gm, const char *path, bool read_only,
		    bool direct, unsigned id_index, virtio_mmio_irq_fn irq, void *irq_opaque, struct gr_error *err)
{
	memset(blk, 0, sizeof(*blk));
	blk->fd = -1;
	gr_autoclose int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (fd < 0 && direct && errno == EINVAL)
		return gr_error_set(err, EINVAL, "disk %s: the file system refuses O_DIRECT (\"direct\"); drop the option or move the image",
				    path);
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
	if (direct) {
		uint32_t mem, offset;
		dio_alignment(fd, &mem, &offset);
		if ((mem & (mem - 1)) || (offset & (offset - 1)) || mem > VIRTIO_BLK_BOUNCE || offset > VIRTIO_BLK_BOUNCE)
			return gr_error_set(err, EINVAL, "disk %s: unusable O_DIRECT alignment (memory %u, offset %u)", path,
					    mem, offset);
		if (posix_memalign((void **)&blk->bounce, mem < 4096 ? 4096 : mem, VIRTIO_BLK_BOUNCE) != 0)
			return gr_error_set(err, ENOMEM, "disk %s: out of memory for the O_DIRECT bounce buffer", path);
		blk->direct = true;
		blk->dio_mem_align = mem;
		blk->dio_offset_align = offset;
	}
	blk->config.capacity = htole64(blk->capacity);
	blk->config.blk_size = htole32(blk->direct ? blk->dio_offset_align : VIRTIO_BLK_SECTOR_SIZE);
	snprintf(blk->id, sizeof(blk->id), "gureum-disk%u", id_index);
	uint64_t features = (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_BLK_SIZE);
	if (read_only)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	struct virtio_mmio_params p = {
		.device_id = VIRTIO_ID_BLOCK, .features = features, .num_queues = 1, .queue_num_max = 0,
		.config_size = sizeof(blk->config), .config = &blk->config, .ops = &blk_ops, .opaque = blk,
		.irq = irq, .irq_opaque = irq_opaque,
	};
	int r = virtio_mmio_init(&blk->mmio, gm, &p, err);
	if (r < 0) {
		free(blk->bounce);
		blk->bounce = NULL;
		return gr_error_prefix(err, "disk %s", path);
	}
	blk->fd = gr_steal_fd(fd);
	return 0;
}

void virtio_blk_close(struct virtio_blk *blk)
{
	if (blk->fd >= 0)
		close(blk->fd);
	blk->fd = -1;
	free(blk->bounce);
	blk->bounce = NULL;
}
