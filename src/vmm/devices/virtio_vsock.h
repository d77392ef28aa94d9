/* virtio-vsock (virtio 1.x, 5.10; device id 19) with Firecracker-style
 * "hybrid" host sockets: the guest (context id cid >= 3) talks AF_VSOCK
 * streams; the host side is unix sockets.
 *
 * - Host-initiated: the VMM listens on the unix socket PATH. A client
 *   connects and writes "CONNECT <port>\n"; the device sends REQUEST to guest
 *   port <port> from a fresh host-side port, and when the guest answers
 *   RESPONSE writes "OK <host-side port>\n" to the client; then bytes are
 *   relayed both ways. A refusal (RST) closes the client's socket.
 * - Guest-initiated: a guest connecting to CID 2 port P makes the device
 *   connect to the unix socket "PATH_P"; when that fails the guest gets RST.
 *
 * Queues: 0 rx (device -> guest), 1 tx (guest -> device), 2 event (unused:
 * no event is ever sent). Config space: le64 guest_cid. Only STREAM sockets.
 *
 * Every packet from the guest is validated (header in the readable part,
 * len <= VSOCK_MAX_PAYLOAD and <= the bytes after the header, src_cid the
 * guest's, dst_cid the host, type STREAM, a known op, a known connection):
 * a bad one is answered with RST (or dropped when it cannot be answered:
 * spoofed src_cid, short header, RST itself). Flow control both ways: data
 * to the guest only within its credit (buf_alloc - (sent - fwd_cnt)); data
 * from the guest beyond ours resets the connection.
 *
 * Threads: guest notifications arrive on vCPU threads, host socket events on
 * the VMM's I/O thread (event_loop.h), each under the device's MMIO window
 * lock, so the device state is only ever touched under that lock. */
#ifndef GR_VMM_VIRTIO_VSOCK_H
#define GR_VMM_VIRTIO_VSOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include "common/error.h"
#include "vmm/event_loop.h"
#include "vmm/sock_cleanup.h"
#include "vmm/devices/virtio_mmio.h"

#define VSOCK_HOST_CID      2u
#define VSOCK_MIN_GUEST_CID 3u
#define VSOCK_HDR_BYTES     44u
#define VSOCK_MAX_PAYLOAD   (64u * 1024)  /* largest len accepted from the guest, and sent */
#define VSOCK_BUF_ALLOC     (64u * 1024)  /* our receive buffer per connection (advertised buf_alloc) */
#define VSOCK_MAX_CONNS     1024u         /* connections, including host clients still in CONNECT */
#define VSOCK_RST_RING      256u          /* RSTs for connections that no longer exist, waiting for rx buffers */
#define VSOCK_HASH_BUCKETS  256u
#define VSOCK_LOCAL_PORT_BASE (1u << 30)  /* host-side ports of host-initiated connections */

#define VSOCK_QUEUE_RX    0u
#define VSOCK_QUEUE_TX    1u
#define VSOCK_QUEUE_EVENT 2u

#define VIRTIO_VSOCK_TYPE_STREAM 1u

#define VIRTIO_VSOCK_OP_INVALID        0u
#define VIRTIO_VSOCK_OP_REQUEST        1u
#define VIRTIO_VSOCK_OP_RESPONSE       2u
#define VIRTIO_VSOCK_OP_RST            3u
#define VIRTIO_VSOCK_OP_SHUTDOWN       4u
#define VIRTIO_VSOCK_OP_RW             5u
#define VIRTIO_VSOCK_OP_CREDIT_UPDATE  6u
#define VIRTIO_VSOCK_OP_CREDIT_REQUEST 7u

#define VIRTIO_VSOCK_SHUTDOWN_RCV  1u
#define VIRTIO_VSOCK_SHUTDOWN_SEND 2u

/* The packet header (5.10.6), little-endian in guest memory. */
struct virtio_vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));

struct vsock_conn;

struct virtio_vsock {
	struct virtio_mmio_dev mmio;   /* the transport; route the window to it */
	uint64_t guest_cid;
	uint64_t config_cid;           /* le64, the config space */
	struct sock_file sock;         /* PATH, the listening socket's file */
	int listen_fd;
	struct ev_handler listener;
	struct ev_loop *loop;          /* set by virtio_vsock_start */
	struct vsock_conn *buckets[VSOCK_HASH_BUCKETS]; /* by (host port, guest port) */
	LIST_HEAD(, vsock_conn) all;   /* every connection, dead ones waiting for their last event too */
	TAILQ_HEAD(, vsock_conn) ctrl; /* connections with control packets to send, in order */
	size_t n_conns;
	uint32_t next_local_port;
	struct { uint32_t src_port, dst_port; } rst_ring[VSOCK_RST_RING];
	uint32_t rst_first, rst_n;
	bool rx_starved;               /* a connection waits for rx buffers */
	bool in_loop_callback;         /* running an I/O-thread callback (may free handlers) */
	bool reap;                     /* dead connections to free on the way out */
	bool listen_paused;            /* out of descriptors: not accepting until a connection ends */
	struct vq_chain chain;         /* scratch, under the lock */
	/* metrics */
	uint64_t pkts_from_guest, pkts_to_guest, bytes_from_guest, bytes_to_guest;
	uint64_t bad_packets, rsts_sent, rsts_dropped, conns_opened, conns_refused;
};

/* Parses "cid=N,socket=PATH" (either order): 3 <= N < 2^32 - 1, PATH short
 * enough for a unix socket address including the "_<port>" suffix of
 * guest-initiated connections (10 more bytes). *path is malloc'd. */
int virtio_vsock_parse_spec(const char *spec, uint64_t *cid, char **path, struct gr_error *err);

/* Sets the device up and creates the listening socket at path (mode 0600,
 * stale socket replaced; see sock_cleanup.h). */
int virtio_vsock_init(struct virtio_vsock *v, const struct guest_mem *gm, uint64_t cid, const char *path,
		      virtio_mmio_irq_fn irq, void *irq_opaque, struct gr_error *err);
/* Watches the listening socket on loop; lock is the device's MMIO window
 * lock (taken around every callback). Call once the window exists. */
int virtio_vsock_start(struct virtio_vsock *v, struct ev_loop *loop, pthread_mutex_t *lock, struct gr_error *err);
/* Closes every connection and the listening socket, removes the socket file
 * (or leaves it to the watcher, see sock_file_unlink_at_exit). The loop must
 * no longer run. */
void virtio_vsock_close(struct virtio_vsock *v);

/* For tests: the connection count. */
size_t virtio_vsock_connections(const struct virtio_vsock *v);

#endif
