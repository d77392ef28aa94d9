/* The event hub: lifecycle events (instance-created, instance-started, ...)
 * and operation events, fanned out to /1.0/events subscribers. Each
 * subscriber is a pipe whose read end the server relays as text frames (one
 * JSON object per line); a subscriber that falls more than 1 MiB behind is
 * dropped (as is one whose reader is gone: the process must ignore SIGPIPE,
 * as gureumd does). Safe from any thread. */
#ifndef GR_DAEMON_EVENTS_H
#define GR_DAEMON_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include "common/error.h"
#include "daemon/daemon.h"

/* type: "lifecycle" or "operation"; steals metadata. For lifecycle events
 * metadata is {"action":"instance-started","source":"/1.0/instances/c1","context":{...}}. */
void events_emit(struct daemon *d, const char *type, json_t *metadata);
/* A new subscriber for the types in the comma-separated filter ("" = all);
 * returns the read end of its pipe (the server relays and closes it). */
int events_subscribe(struct daemon *d, const char *filter, int *read_fd, struct gr_error *err);

/* Helpers: the current time as Incus writes it (RFC 3339 with nanoseconds,
 * UTC: "2026-01-02T03:04:05.123456789Z"; len >= 40); a filter to a type mask
 * (-EINVAL naming an unknown type); the number of subscribers. */
void events_timestamp(char *buf, size_t len);
int events_parse_filter(const char *filter, unsigned *mask, struct gr_error *err);
unsigned events_subscribers(struct daemon *d);

int events_init(struct daemon *d, struct gr_error *err);
void events_free(struct daemon *d);

#endif
