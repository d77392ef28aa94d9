/* The VMM's I/O thread: dispatch, the device lock around callbacks,
 * handlers that remove and free themselves, mod to no events, start/stop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vmm/event_loop.h"

struct probe {
	struct ev_handler h;
	struct ev_loop *loop;
	int calls;
	uint32_t events;
	int trylock;            /* pthread_mutex_trylock's result inside the callback */
	bool free_self;
	int *freed;
	int notify_fd;          /* written to from the callback when >= 0 */
};

static void probe_fn(struct ev_handler *h, uint32_t events)
{
	struct probe *p = (struct probe *)h;
	char buf[64];
	(void)!read(h->fd, buf, sizeof(buf));
	p->calls++;
	p->events = events;
	if (h->lock)
		p->trylock = pthread_mutex_trylock(h->lock);
	if (p->notify_fd >= 0)
		(void)!write(p->notify_fd, "x", 1);
	if (p->free_self) {
		ev_loop_del(p->loop, h);
		(*p->freed)++;
		free(p);
	}
}

static void dispatches_with_the_lock_held(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct ev_loop l;
	assert_int_equal(ev_loop_init(&l, &err), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct probe pr = { .h = { .fd = p[0], .fn = probe_fn, .lock = &lock }, .loop = &l, .notify_fd = -1,
			    .trylock = -1 };
	assert_int_equal(ev_loop_add(&l, &pr.h, EPOLLIN, &err), 0);
	assert_int_equal(ev_loop_run_once(&l, 0), 0);          /* nothing yet */
	assert_int_equal(write(p[1], "a", 1), 1);
	assert_int_equal(ev_loop_run_once(&l, 1000), 1);
	assert_int_equal(pr.calls, 1);
	assert_true(pr.events & EPOLLIN);
	assert_int_equal(pr.trylock, EBUSY);                    /* the loop held it */
	assert_int_equal(pthread_mutex_trylock(&lock), 0);      /* and released it */
	pthread_mutex_unlock(&lock);
	/* No events asked for: data waits, nothing is dispatched. */
	assert_int_equal(ev_loop_mod(&l, &pr.h, 0, &err), 0);
	assert_int_equal(write(p[1], "b", 1), 1);
	assert_int_equal(ev_loop_run_once(&l, 10), 0);
	assert_int_equal(ev_loop_mod(&l, &pr.h, EPOLLIN, &err), 0);
	assert_int_equal(ev_loop_run_once(&l, 1000), 1);
	assert_int_equal(pr.calls, 2);
	/* Writer gone: HUP reaches the handler. */
	close(p[1]);
	assert_int_equal(ev_loop_run_once(&l, 1000), 1);
	assert_true(pr.events & EPOLLHUP);
	ev_loop_del(&l, &pr.h);
	assert_int_equal(ev_loop_run_once(&l, 10), 0);
	close(p[0]);
	ev_loop_destroy(&l);
}

static void a_callback_may_free_its_handler(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct ev_loop l;
	assert_int_equal(ev_loop_init(&l, &err), 0);
	int a[2], b[2], freed = 0;
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	struct probe *pa = calloc(1, sizeof(*pa)), *pb = calloc(1, sizeof(*pb));
	*pa = (struct probe){ .h = { .fd = a[0], .fn = probe_fn }, .loop = &l, .free_self = true, .freed = &freed,
			      .notify_fd = -1 };
	*pb = (struct probe){ .h = { .fd = b[0], .fn = probe_fn }, .loop = &l, .free_self = true, .freed = &freed,
			      .notify_fd = -1 };
	assert_int_equal(ev_loop_add(&l, &pa->h, EPOLLIN, &err), 0);
	assert_int_equal(ev_loop_add(&l, &pb->h, EPOLLIN, &err), 0);
	/* Both ready at once: each dispatch frees one, the other is still served. */
	assert_int_equal(write(a[1], "a", 1), 1);
	assert_int_equal(write(b[1], "b", 1), 1);
	assert_int_equal(ev_loop_run_once(&l, 1000), 1);
	assert_int_equal(ev_loop_run_once(&l, 1000), 1);
	assert_int_equal(freed, 2);
	assert_int_equal(ev_loop_run_once(&l, 10), 0);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
	ev_loop_destroy(&l);
}

static void runs_on_its_thread_until_stopped(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct ev_loop l;
	assert_int_equal(ev_loop_init(&l, &err), 0);
	int in[2], out[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	struct probe pr = { .h = { .fd = in[0], .fn = probe_fn }, .loop = &l, .notify_fd = out[1] };
	assert_int_equal(ev_loop_add(&l, &pr.h, EPOLLIN, &err), 0);
	assert_int_equal(ev_loop_start(&l, &err), 0);
	for (int i = 0; i < 3; i++) {
		char c;
		assert_int_equal(write(in[1], "x", 1), 1);
		assert_int_equal(read(out[0], &c, 1), 1);   /* the callback ran */
	}
	ev_loop_stop(&l);
	assert_false(l.running);
	assert_int_equal(pr.calls, 3);
	assert_int_equal(l.dispatched, 3);
	ev_loop_stop(&l);                                   /* twice is harmless */
	for (int i = 0; i < 2; i++) {
		close(in[i]);
		close(out[i]);
	}
	ev_loop_destroy(&l);
}

static void bad_handlers_are_refused(void **state)
{
	(void)state;
	struct gr_error err = { 0 };
	struct ev_loop l;
	assert_int_equal(ev_loop_init(&l, &err), 0);
	struct ev_handler none = { .fd = -1, .fn = probe_fn };
	assert_int_equal(ev_loop_add(&l, &none, EPOLLIN, &err), -EINVAL);
	struct ev_handler closed = { .fd = 1000, .fn = probe_fn };
	assert_int_equal(ev_loop_add(&l, &closed, EPOLLIN, &err), -EBADF);
	assert_non_null(strstr(err.msg, "descriptor 1000"));
	ev_loop_destroy(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dispatches_with_the_lock_held),
		cmocka_unit_test(a_callback_may_free_its_handler),
		cmocka_unit_test(runs_on_its_thread_until_stopped),
		cmocka_unit_test(bad_handlers_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
