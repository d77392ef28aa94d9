/* virtio-blk (virtio 1.x, 5.2; device id 2) over a raw file or block device.
 * One request queue, served synchronously on the notifying vCPU's thread
 * with pread/pwrite straight into guest buffers. Offers FLUSH (fdatasync),
 * BLK_SIZE (512) and, for a read-only disk, RO.
 *
 * Every request is validated before any I/O: a 16-byte header in the
 * readable part, a writable status byte at the very end, a data length that
 * is a multiple of 512 for IN/OUT (and no stray buffers in the other
 * direction), a sector range inside the capacity (overflow-proof). A bad
 * request gets IOERR (UNSUPP for unknown types); a chain without a status
 * byte is returned with nothing written. */
#ifndef GR_VMM_VIRTIO_BLK_H
#define GR_VMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"
#include "vmm/devices/virtio_mmio.h"

#define VIRTIO_BLK_SECTOR_SIZE 512u
#define VIRTIO_BLK_ID_BYTES    20u
#define VIRTIO_BLK_BOUNCE      (256u * 1024)   /* O_DIRECT bounce buffer */

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO       5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN     0u
#define VIRTIO_BLK_T_OUT    1u
#define VIRTIO_BLK_T_FLUSH  4u
#define VIRTIO_BLK_T_GET_ID 8u
#define VIRTIO_BLK_S_OK     0u
#define VIRTIO_BLK_S_IOERR  1u
#define VIRTIO_BLK_S_UNSUPP 2u

/* Config space, the fields we present (little-endian in guest view). */
struct virtio_blk_config {
	uint64_t capacity;          /* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads, sectors;
	uint32_t blk_size;
} __attribute__((packed));

struct virtio_blk {
	struct virtio_mmio_dev mmio;   /* the transport; route the window to it */
	int fd;
	bool read_only;
	uint64_t capacity;             /* sectors */
	struct virtio_blk_config config;
	char id[VIRTIO_BLK_ID_BYTES];  /* GET_ID answer (not NUL-terminated when 20 long) */
	bool direct;                   /* opened with O_DIRECT */
	uint32_t dio_mem_align;        /* O_DIRECT: buffer address/length alignment */
	uint32_t dio_offset_align;     /* O_DIRECT: file offset/length alignment (= BLK_SIZE) */
	uint8_t *bounce;               /* O_DIRECT: VIRTIO_BLK_BOUNCE bytes, aligned */
	uint64_t direct_ios, bounced_ios; /* O_DIRECT requests done in place / through the bounce buffer */
	struct vq_chain chain;         /* scratch, under the device's lock */
	uint64_t reads, writes, flushes, errors, bytes_read, bytes_written; /* metrics */
};

/* Parses "PATH[,ro][,direct]": *path is a malloc'd copy. -EINVAL with a
 * message for an empty path or an unknown option. */
int virtio_blk_parse_spec(const char *spec, char **path, bool *read_only, bool *direct, struct gr_error *err);

/* Opens the backend (O_RDWR, or O_RDONLY when read_only; with O_DIRECT when
 * direct) and sets up the device; id_index names the disk in GET_ID
 * ("gureum-disk<N>").
 *
 * direct: the page cache is bypassed. The alignment O_DIRECT needs comes
 * from statx(STATX_DIOALIGN) (fallback: memory 4096, offsets 512); BLK_SIZE
 * tells the guest the offset alignment, and a request whose sector offset or
 * length is not a multiple of it gets IOERR. Guest buffers that are not
 * aligned (address or length) go through a bounce buffer allocated here. A
 * file system that refuses O_DIRECT is an error here (-EINVAL, named). */
int virtio_blk_init(struct virtio_blk *blk, const struct guest_mem *gm, const char *path, bool read_only,
		    bool direct, unsigned id_index, virtio_mmio_irq_fn irq, void *irq_opaque, struct gr_error *err);
/* Closes the backend. */
void virtio_blk_close(struct virtio_blk *blk);

/* Serves one request chain (exposed for tests): returns the status byte it
 * wrote (VIRTIO_BLK_S_*), or -EINVAL when the chain has no writable byte for
 * a status (nothing was done). *written is the used length to report. */
int virtio_blk_handle(struct virtio_blk *blk, const struct vq_chain *chain, uint32_t *written);

#endif
