#include "vmm/event_loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

int ev_loop_init(struct ev_loop *l, struct gr_error *err)
{
	*l = (struct ev_loop){ .epoll_fd = -1, .wake_fd = -1 };
	l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epoll_fd < 0)
		return gr_error_sys(err, errno, "I/O thread: epoll_create1");
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		int e = errno;
		ev_loop_destroy(l);
		return gr_error_sys(err, e, "I/O thread: eventfd");
	}
	/* data.ptr NULL marks the wake descriptor. */
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
		int e = errno;
		ev_loop_destroy(l);
		return gr_error_sys(err, e, "I/O thread: epoll_ctl");
	}
	return 0;
}

void ev_loop_destroy(struct ev_loop *l)
{
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	if (l->epoll_fd >= 0)
		close(l->epoll_fd);
	l->wake_fd = l->epoll_fd = -1;
}

static int ctl(struct ev_loop *l, int op, struct ev_handler *h, uint32_t events, struct gr_error *err)
{
	if (!h || h->fd < 0 || !h->fn)
		return gr_error_set(err, EINVAL, "I/O thread: a handler needs a descriptor and a callback");
	struct epoll_event ev = { .events = events, .data.ptr = h };
	if (epoll_ctl(l->epoll_fd, op, h->fd, &ev) < 0)
		return gr_error_sys(err, errno, "I/O thread: epoll_ctl on descriptor %d", h->fd);
	return 0;
}

int ev_loop_add(struct ev_loop *l, struct ev_handler *h, uint32_t events, struct gr_error *err)
{
	return ctl(l, EPOLL_CTL_ADD, h, events, err);
}

int ev_loop_mod(struct ev_loop *l, struct ev_handler *h, uint32_t events, struct gr_error *err)
{
	return ctl(l, EPOLL_CTL_MOD, h, events, err);
}

void ev_loop_del(struct ev_loop *l, struct ev_handler *h)
{
	if (h && h->fd >= 0)
		(void)epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, h->fd, NULL);
}

int ev_loop_run_once(struct ev_loop *l, int timeout_ms)
{
	struct epoll_event ev;
	int n = epoll_wait(l->epoll_fd, &ev, 1, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0 || !ev.data.ptr)
		return 0;   /* timeout, or the wake descriptor: the caller checks whether to stop */
	struct ev_handler *h = ev.data.ptr;
	pthread_mutex_t *lock = h->lock;   /* h may be freed by its own callback */
	if (lock)
		pthread_mutex_lock(lock);
	h->fn(h, ev.events);
	if (lock)
		pthread_mutex_unlock(lock);
	__atomic_fetch_add(&l->dispatched, 1, __ATOMIC_RELAXED);
	return 1;
}

static void *loop_thread(void *p)
{
	struct ev_loop *l = p;
	for (;;) {
		uint64_t v;
		if (read(l->wake_fd, &v, sizeof(v)) == sizeof(v))
			break;
		if (ev_loop_run_once(l, -1) < 0)
			break;   /* epoll itself failed: nothing more can be served */
	}
	return NULL;
}

int ev_loop_start(struct ev_loop *l, struct gr_error *err)
{
	int e = pthread_create(&l->thread, NULL, loop_thread, l);
	if (e)
		return gr_error_sys(err, e, "cannot start the I/O thread");
	l->running = true;
	return 0;
}

void ev_loop_stop(struct ev_loop *l)
{
	if (!l->running)
		return;
	uint64_t one = 1;
	(void)!write(l->wake_fd, &one, sizeof(one));
	pthread_join(l->thread, NULL);
	l->running = false;
}
