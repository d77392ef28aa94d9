/* The VMM's I/O thread: one epoll loop for everything that arrives from the
 * host side (tap frames, vsock connections, console input, the control
 * channel), so vCPU threads never block on host I/O.
 *
 * A handler is embedded in the object it serves (no allocation). When it
 * names a lock, the loop takes it around the callback: virtio devices pass
 * their MMIO window's lock (vm_mmio_lock()), so a callback never races a
 * vCPU inside the same device. Events are taken one at a time, so a callback
 * may remove (and free) any handler, its own included, before it returns.
 * Outside the loop's thread a handler may be removed but not freed while the
 * loop runs (an event for it may already be on its way): shut its
 * descriptor down instead and free it from its callback on EPOLLHUP.
 *
 * ev_loop_add/mod/del may be called from any thread, including callbacks. */
#ifndef GR_VMM_EVENT_LOOP_H
#define GR_VMM_EVENT_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"

struct ev_handler;
/* events: the EPOLL* bits that fired (EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLERR). */
typedef void (*ev_fn)(struct ev_handler *h, uint32_t events);

struct ev_handler {
	int fd;
	ev_fn fn;
	pthread_mutex_t *lock;   /* taken around fn when not NULL */
};

struct ev_loop {
	int epoll_fd;
	int wake_fd;             /* eventfd: ev_loop_stop() */
	pthread_t thread;
	bool running;
	uint64_t dispatched;     /* callbacks run (metrics) */
};

int ev_loop_init(struct ev_loop *l, struct gr_error *err);
/* Closes the epoll and wake descriptors (stop the thread first). */
void ev_loop_destroy(struct ev_loop *l);

/* Watches h->fd for events (EPOLLIN, EPOLLOUT, EPOLLET ...); h must stay
 * valid until ev_loop_del or the loop is destroyed. */
int ev_loop_add(struct ev_loop *l, struct ev_handler *h, uint32_t events, struct gr_error *err);
/* Changes the events watched for h (0: none, keep registered). */
int ev_loop_mod(struct ev_loop *l, struct ev_handler *h, uint32_t events, struct gr_error *err);
/* Stops watching h->fd (does not close it). */
void ev_loop_del(struct ev_loop *l, struct ev_handler *h);

/* Runs the loop on a thread of its own until ev_loop_stop. */
int ev_loop_start(struct ev_loop *l, struct gr_error *err);
/* Wakes the thread, waits for it to end. No-op when not started. */
void ev_loop_stop(struct ev_loop *l);
/* One iteration on the calling thread: waits up to timeout_ms (-1: forever)
 * for one event and dispatches it. Returns 1 when an event was dispatched,
 * 0 on timeout or a stop request, -errno on failure. For tests and ev_loop_start. */
int ev_loop_run_once(struct ev_loop *l, int timeout_ms);

#endif
