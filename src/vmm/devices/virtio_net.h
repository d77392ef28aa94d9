/* virtio-net (virtio 1.x, 5.1; device id 1) over a tap descriptor.
 *
 * Queues: 0 = receiveq1, 1 = transmitq1 (no control queue, no multiqueue).
 * Features: MAC (config space), STATUS (link up; down when the tap goes
 * away), MRG_RXBUF, and, when the tap accepts them, CSUM/GUEST_CSUM,
 * HOST_TSO4/6 and GUEST_TSO4/6, HOST_ECN/GUEST_ECN. Every frame carries the
 * 12-byte virtio 1.x header (struct virtio_net_hdr_v1, num_buffers included),
 * which is also the tap's vnet header: headers go through unchanged, except
 * num_buffers, which the device sets on receive. The receive offloads the
 * tap may use (TUNSETOFFLOAD) follow what the driver negotiated, set when it
 * writes DRIVER_OK and cleared on reset.
 *
 * TX (on the TX queue's notify, on the vCPU's thread, under the window's
 * lock): each chain must be readable only, hold the 12-byte header and an
 * Ethernet frame of 14..VIRTIO_NET_FRAME_MAX bytes, and its header must only
 * use negotiated offloads (NEEDS_CSUM needs CSUM with csum_start/offset inside
 * the frame; GSO needs HOST_TSO4/6 (+ HOST_ECN), a non-zero gso_size and
 * NEEDS_CSUM). A bad chain is returned unsent (used length 0) and counted in
 * tx_errors; the header is copied before it is checked and that copy is what
 * the tap gets. When the tap cannot take more (EAGAIN) the chain stays on the
 * ring and the I/O thread resumes the queue once the tap is writable
 * (EPOLLOUT): no frame is dropped for back-pressure. Other write failures
 * (tap down: EIO) drop the frame, counted in tx_dropped.
 *
 * RX (the I/O thread, EPOLLIN on the tap, under the window's lock): a frame is
 * read into a bounce buffer, then copied into the driver's receive chains:
 * one chain without MRG_RXBUF (num_buffers 1; a frame longer than the chain is
 * dropped, counted in rx_dropped, and the chain reused), as many as needed
 * with it (num_buffers = their count, all published with one used index).
 * When the driver has no (or not enough) buffers, the frame is kept, EPOLLIN
 * is switched off (frames wait in the tap's own queue, where the kernel drops
 * beyond its length) and the RX queue's next notify delivers it and switches
 * EPOLLIN on again. A receive chain with a readable buffer or with fewer than
 * 12 writable bytes breaks the spec (5.1.6.3.1): DEVICE_NEEDS_RESET, the
 * frame dropped, receiving stopped until the driver resets the device.
 *
 * A malformed ring on either queue sets DEVICE_NEEDS_RESET. */
#ifndef GR_VMM_VIRTIO_NET_H
#define GR_VMM_VIRTIO_NET_H

#include <net/if.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "common/error.h"
#include "vmm/event_loop.h"
#include "vmm/devices/virtio_mmio.h"

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM       0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN  9
#define VIRTIO_NET_F_GUEST_UFO  10
#define VIRTIO_NET_F_HOST_TSO4  11
#define VIRTIO_NET_F_HOST_TSO6  12
#define VIRTIO_NET_F_HOST_ECN   13
#define VIRTIO_NET_F_HOST_UFO   14
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16
#define VIRTIO_NET_F_CTRL_VQ    17

#define VIRTIO_NET_S_LINK_UP    1

/* The header (5.1.6). */
#define VIRTIO_NET_HDR_LEN             12
#define VIRTIO_NET_HDR_F_NEEDS_CSUM    1
#define VIRTIO_NET_HDR_F_DATA_VALID    2
#define VIRTIO_NET_HDR_GSO_NONE        0
#define VIRTIO_NET_HDR_GSO_TCPV4       1
#define VIRTIO_NET_HDR_GSO_UDP         3
#define VIRTIO_NET_HDR_GSO_TCPV6       4
#define VIRTIO_NET_HDR_GSO_ECN         0x80

struct virtio_net_hdr_v1 {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));

/* Largest frame either way, header excluded: a 64 KiB IP datagram (TSO) with
 * its Ethernet and VLAN headers. */
#define VIRTIO_NET_FRAME_MAX 65550u
#define VIRTIO_NET_FRAME_MIN 14u          /* an Ethernet header */
#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
#define VIRTIO_NET_RX_BUDGET 64           /* frames per I/O-thread callback */

struct virtio_net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
} __attribute__((packed));

/* "tap=IF[,mac=MAC]", parsed. */
struct virtio_net_spec {
	char tap[IFNAMSIZ];
	uint8_t mac[6];
	bool has_mac;
};

struct virtio_net {
	struct virtio_mmio_dev mmio;   /* the transport; route the window to it */
	int fd;                        /* the tap (or, in tests, any packet descriptor) */
	char name[IFNAMSIZ];           /* for messages */
	uint32_t tap_offloads;         /* TUN_F_* the backend accepts (0: offer no offloads) */
	uint32_t tun_offloads;         /* TUN_F_* in force (what the driver negotiated) */
	int (*set_offload)(int fd, uint32_t tun_flags);  /* tap_set_offload; tests replace it */
	struct virtio_net_config config;

	/* The I/O thread: the tap's handler, and what it watches for now. */
	struct ev_loop *loop;          /* NULL until virtio_net_attach */
	struct ev_handler io;
	bool io_registered;
	uint32_t io_events;

	bool active;                   /* DRIVER_OK, not reset since */
	bool backend_gone;             /* the tap failed or went away: link down */
	bool rx_waiting;               /* a frame is waiting for receive buffers: EPOLLIN off */
	bool rx_broken;                /* NEEDS_RESET set by a bad receive chain */
	bool tx_waiting;               /* the tap was full: waiting for EPOLLOUT */
	uint8_t *rx_buf;               /* bounce buffer: header + VIRTIO_NET_FRAME_MAX + 1 */
	uint32_t rx_len;               /* bytes of the pending frame in rx_buf, header included (0: none) */

	/* Scratch, under the device's lock. */
	struct vq_chain chain;
	struct vq_used used[VQ_MAX_SIZE];
	struct iovec iov[VQ_MAX_SIZE + 1];

	/* Metrics (frames and bytes without the vnet header). tx_errors: malformed
	 * chains; tx_dropped: frames the tap refused; rx_dropped: frames lost
	 * (too long for the chain or the bounce buffer, pending at a reset);
	 * rx_errors: bad receive chains and runt reads. */
	uint64_t rx_packets, rx_bytes, rx_dropped, rx_errors;
	uint64_t tx_packets, tx_bytes, tx_dropped, tx_errors;
};

/* Parses "tap=IF[,mac=MAC]" (keys in any order, each once). Errors say what
 * is wrong (bad MAC "zz", unknown option "k", no tap=, ...); the caller
 * prefixes the flag and the spec. */
int virtio_net_parse_spec(const char *spec, struct virtio_net_spec *out, struct gr_error *err);
/* "aa:bb:cc:dd:ee:ff", unicast and not all zero. 0 or -EINVAL (no message). */
int virtio_net_parse_mac(const char *s, uint8_t mac[6]);
/* The MAC of a --net without mac=: locally administered, unicast,
 * 02:67:72:HH:HH:II, HH:HH a hash of the tap's name, II the net's index, so
 * the same command line always gives the same address and two VMs on one
 * bridge (different taps) do not collide. gureumd passes mac= anyway. */
void virtio_net_default_mac(const char *tap, unsigned index, uint8_t mac[6]);

/* Sets up the device over fd (taken over: closed by virtio_net_close, also
 * on failure). tap_offloads: TUN_F_* the backend accepts (tap_open's), 0 to
 * offer no offloads. name: for messages (the tap's name). */
int virtio_net_init(struct virtio_net *net, const struct guest_mem *gm, int fd, const char *name,
		    const uint8_t mac[6], uint32_t tap_offloads, virtio_mmio_irq_fn irq, void *irq_opaque,
		    struct gr_error *err);
/* Opens the tap of spec (tap_open) and sets up the device; index: the net's
 * position among the --nets (the default MAC). */
int virtio_net_open(struct virtio_net *net, const struct guest_mem *gm, const struct virtio_net_spec *spec,
		    unsigned index, virtio_mmio_irq_fn irq, void *irq_opaque, struct gr_error *err);
/* Hands the tap to the I/O thread; lock: the device's MMIO window lock
 * (vm_mmio_lock), taken around every callback. Nothing is watched until the
 * driver sets DRIVER_OK. */
int virtio_net_attach(struct virtio_net *net, struct ev_loop *loop, pthread_mutex_t *lock, struct gr_error *err);
/* Stops watching (if attached; the loop must be stopped) and closes the tap. */
void virtio_net_close(struct virtio_net *net);

/* What the I/O thread's callback does with the tap's events (EPOLLIN,
 * EPOLLOUT, EPOLLERR/HUP); exposed for tests. Call with the device's lock. */
void virtio_net_handle_io(struct virtio_net *net, uint32_t events);

#endif
