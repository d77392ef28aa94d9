/* gureumd's HTTP and WebSocket server (libwebsockets): the unix socket
 * (RUN/gureum.sock, mode 0600, trusted) and, with --listen, TCP with TLS
 * (token or client-certificate authentication). It reads request bodies
 * (limit API_MAX_BODY), routes by method and path to handlers, and sends the
 * JSON envelope they build. WebSockets are relays between a client and
 * descriptors the handler provides, so no handler ever touches
 * libwebsockets. One service thread; handlers run on it and must not block
 * (slow work becomes an async operation, operations.h). */
#ifndef GR_DAEMON_SERVER_H
#define GR_DAEMON_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"
#include "daemon/daemon.h"

#define API_MAX_BODY (1u << 20)

struct http_request {
	const char *method;           /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *path;             /* decoded path without the query, e.g. "/1.0/instances/c1" */
	const char *query;            /* raw query string without '?', "" if none */
	const char *body;             /* NUL-terminated, body_len bytes ("" if none) */
	size_t body_len;
	bool websocket;               /* the client asked for a WebSocket upgrade */
	const char *route_args[4];    /* the path's variable parts, in order (e.g. NAME, ID) */
};

/* A WebSocket relay the handler asks for (reply->ws). The server owns the
 * descriptors from then on and closes them when the connection ends.
 *   RAW:      every frame from the client is written to to_fd; bytes read
 *             from from_fd go out as binary frames (console, logs --follow).
 *   CHANNELS: exec: frames carry a channel byte (README "Exec"): channel 0 is
 *             written to chan_fd[0]; chan_fd[1] and [2] are read and sent as
 *             channel 1 and 2; channel 3 (control JSON) goes to control().
 *             The connection closes once both output channels ended.
 *   LINES:    events: each '\n'-terminated line read from from_fd is one text
 *             frame; nothing is accepted from the client. */
enum ws_mode { WS_RAW, WS_CHANNELS, WS_LINES };

struct ws_relay {
	enum ws_mode mode;
	int to_fd, from_fd;           /* RAW, LINES (-1 when unused) */
	int chan_fd[3];               /* CHANNELS */
	/* CHANNELS: a control message from the client (already parsed). */
	void (*control)(void *opaque, json_t *msg);
	/* Called once when the connection is gone (from the service thread). */
	void (*closed)(void *opaque);
	void *opaque;
};

struct http_reply {
	int status;                   /* HTTP status; 0 means "use the envelope's" */
	json_t *envelope;             /* reply_sync/reply_async/reply_error fill it */
	const char *content_type;     /* non-JSON bodies (logs): "text/plain" ... */
	char *raw_body;               /* malloc'd, sent as is when content_type is set */
	size_t raw_len;
	struct ws_relay *ws;          /* malloc'd; upgrade the connection to this relay */
};

/* Envelope builders (README "REST API"); they steal metadata. */
void reply_sync(struct http_reply *r, json_t *metadata);
void reply_async(struct http_reply *r, const char *op_id, json_t *operation);
/* error_code: an HTTP status (400, 404, 409, 413, 500 ...); printf-style message. */
void reply_error(struct http_reply *r, int error_code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* gr_error -> error reply: -ENOENT 404, -EEXIST/-EBUSY/-EALREADY 409,
 * -EINVAL/-E2BIG/-ERANGE 400, -EPERM/-EACCES 403, -ENOTSUP 501, else 500. */
void reply_gr_error(struct http_reply *r, int rc, const struct gr_error *err);

typedef void (*route_fn)(struct daemon *d, const struct http_request *rq, struct http_reply *rp);

struct route {
	const char *method;
	const char *pattern;          /* "/1.0/instances/{}/state": {} matches one path segment */
	route_fn fn;
};

/* Tables of routes, defined by the files that implement them. The server
 * answers 404 for unknown paths and 405 (with Allow) for known paths with
 * another method. */
extern const struct route instance_routes[];    /* api/instances.c, ends with {0} */
extern const struct route core_routes[];        /* api/core.c: /, /1.0, operations, events, images, tokens */

int server_start(struct daemon *d, struct gr_error *err);
/* Runs the service loop until d->stopping. */
int server_run(struct daemon *d);
void server_stop(struct daemon *d);
/* Wakes the service loop from another thread (a finished operation, an event). */
void server_wake(struct daemon *d);

/* JSON body parsing with errors that name the position ("line 1, column 7,
 * position 6: ..."): 400 in *rp and -EINVAL when malformed or not an object. */
int request_json(const struct http_request *rq, json_t **out, struct http_reply *rp);

#endif
