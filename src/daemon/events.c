/* The event hub (events.h): a list of subscribers, each the write end of a
 * non-blocking pipe (1 MiB where the kernel allows) and a mask of the types
 * it wants. events_emit serializes the event once, as one line, and writes it
 * to every subscriber under the hub's mutex; a subscriber whose pipe cannot
 * take the whole line (it fell behind by the pipe's size) or whose reader is
 * gone is dropped: its write end is closed, so the relay sees EOF and closes
 * the WebSocket. */
#include "daemon/events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

#define EVENTS_PIPE_SIZE (1 << 20)

static const char *const event_types[] = { "lifecycle", "operation", "logging" };
#define N_EVENT_TYPES (sizeof(event_types) / sizeof(event_types[0]))

struct subscriber {
	struct subscriber *next;
	int fd;                       /* write end, O_NONBLOCK */
	unsigned mask;                /* bit i: event_types[i] */
};

struct events {
	pthread_mutex_t mu;
	struct subscriber *subs;
	unsigned n_subs;
};

void events_timestamp(char *buf, size_t len)
{
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n > 0 && n < len)
		snprintf(buf + n, len - n, ".%09ldZ", now.tv_nsec);
}

int events_parse_filter(const char *filter, unsigned *mask, struct gr_error *err)
{
	*mask = 0;
	if (!filter || !*filter) {
		*mask = (1u << N_EVENT_TYPES) - 1;
		return 0;
	}
	const char *p = filter;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		size_t i;
		for (i = 0; i < N_EVENT_TYPES; i++)
			if (strlen(event_types[i]) == len && strncmp(event_types[i], p, len) == 0)
				break;
		if (i == N_EVENT_TYPES)
			return gr_error_set(err, EINVAL, "unknown event type '%.*s' (known: lifecycle, operation, logging)",
					    (int)(len > 64 ? 64 : len), p);
		*mask |= 1u << i;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int type_index(const char *type)
{
	for (size_t i = 0; i < N_EVENT_TYPES; i++)
		if (strcmp(event_types[i], type) == 0)
			return (int)i;
	return -1;
}

int events_init(struct daemon *d, struct gr_error *err)
{
	struct events *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return gr_error_set(err, ENOMEM, "cannot allocate the event hub");
	pthread_mutex_init(&ev->mu, NULL);
	d->events = ev;
	return 0;
}

void events_free(struct daemon *d)
{
	struct events *ev = d->events;
	if (!ev)
		return;
	for (struct subscriber *s = ev->subs, *next; s; s = next) {
		next = s->next;
		close(s->fd);
		free(s);
	}
	pthread_mutex_destroy(&ev->mu);
	free(ev);
	d->events = NULL;
}

int events_subscribe(struct daemon *d, const char *filter, int *read_fd, struct gr_error *err)
{
	struct events *ev = d->events;
	unsigned mask;
	int rc = events_parse_filter(filter, &mask, err);
	if (rc < 0)
		return rc;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "cannot create an event pipe");
	/* Best effort: the unprivileged limit (/proc/sys/fs/pipe-max-size) may be lower. */
	(void)fcntl(p[1], F_SETPIPE_SZ, EVENTS_PIPE_SIZE);
	if (fcntl(p[1], F_SETFL, O_NONBLOCK) < 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		rc = gr_error_sys(err, errno, "cannot make the event pipe non-blocking");
		close(p[0]);
		close(p[1]);
		return rc;
	}
	struct subscriber *s = calloc(1, sizeof(*s));
	if (!s) {
		close(p[0]);
		close(p[1]);
		return gr_error_set(err, ENOMEM, "cannot allocate an event subscriber");
	}
	s->fd = p[1];
	s->mask = mask;
	pthread_mutex_lock(&ev->mu);
	s->next = ev->subs;
	ev->subs = s;
	ev->n_subs++;
	pthread_mutex_unlock(&ev->mu);
	*read_fd = p[0];
	return 0;
}

unsigned events_subscribers(struct daemon *d)
{
	struct events *ev = d->events;
	pthread_mutex_lock(&ev->mu);
	unsigned n = ev->n_subs;
	pthread_mutex_unlock(&ev->mu);
	return n;
}

void events_emit(struct daemon *d, const char *type, json_t *metadata)
{
	gr_autojson json_t *md = metadata;
	struct events *ev = d ? d->events : NULL;
	int ti = type_index(type);
	if (!ev || ti < 0)
		return;
	pthread_mutex_lock(&ev->mu);
	if (!ev->subs) {
		pthread_mutex_unlock(&ev->mu);
		return;
	}
	char ts[64];
	events_timestamp(ts, sizeof(ts));
	gr_autojson json_t *o = json_pack("{s:s, s:s, s:O}", "type", type, "timestamp", ts, "metadata",
					  md ? md : json_null());
	/* JSON_COMPACT never emits a newline: one event is one line. */
	gr_autofree char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (!line) {
		pthread_mutex_unlock(&ev->mu);
		gr_warn("events: cannot serialize a %s event", type);
		return;
	}
	size_t len = strlen(line);
	gr_autofree char *buf = malloc(len + 1);
	if (!buf) {
		pthread_mutex_unlock(&ev->mu);
		return;
	}
	memcpy(buf, line, len);
	buf[len] = '\n';
	for (struct subscriber **pp = &ev->subs; *pp;) {
		struct subscriber *s = *pp;
		if (!(s->mask & (1u << ti))) {
			pp = &s->next;
			continue;
		}
		ssize_t n;
		do
			n = write(s->fd, buf, len + 1);
		while (n < 0 && errno == EINTR);
		if (n == (ssize_t)(len + 1)) {
			pp = &s->next;
			continue;
		}
		/* Full (slow reader: a partial line is discarded by the relay at
		 * EOF) or gone (EPIPE): drop it. */
		gr_debug("events: dropping a subscriber (%s)",
			 n < 0 ? strerror(errno) : "more than its pipe's size behind");
		close(s->fd);
		*pp = s->next;
		free(s);
		ev->n_subs--;
	}
	pthread_mutex_unlock(&ev->mu);
}
