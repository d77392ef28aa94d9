/* gureumd's HTTP and WebSocket server (libwebsockets): the unix socket
 * (RUN/gureum.sock, mode 0600, trusted) and, with --listen, TCP with TLS
 * (token or client-certificate authentication). It reads request bodies
 * (limit API_MAX_BODY, or the route's max_body), routes by method and path to
 * handlers, and sends the JSON envelope they build (or a raw body, with
 * further headers). WebSockets are relays between a client and
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
	bool trusted_socket;          /* came over the unix socket (not TCP/TLS) */
	const void *conn;             /* the server's, for http_header_get (NULL: no headers) */
};

/* The value of a request header (name in any case, without ':', e.g.
 * "X-Gureum-Mode"), during the handler only: 1 found (copied into buf,
 * NUL-terminated), 0 absent, -E2BIG when it does not fit. */
int http_header_get(const struct http_request *rq, const char *name, char *buf, size_t len);

/* The decoded value of a query parameter (?force=1&recursion=1): 1 found
 * (copied into buf, NUL-terminated; a key without '=' gives ""), 0 absent,
 * -E2BIG when it does not fit. */
int http_query_get(const struct http_request *rq, const char *key, char *buf, size_t len);
/* True when the parameter is present with value "1" or "true" or without a value. */
bool http_query_bool(const struct http_request *rq, const char *key);

/* A WebSocket relay the handler asks for (reply->ws). The server owns the
 * descriptors from then on and closes them when the connection ends.
 *   RAW:      every frame from the client is written to to_fd; bytes read
 *             from from_fd go out as binary frames (console, logs --follow).
 *   CHANNELS: exec: frames carry a channel byte (README "Exec"): channel 0 is
 *             written to chan_fd[0]; chan_fd[1] and [2] are read and sent as
 *             channel 1 and 2; channel 3 (control JSON) goes to control().
 *             The connection closes once both output channels ended.
 *   LINES:    events: each '\n'-terminated line read from from_fd is one text
 *             frame; nothing is accepted from the client.
 * The same descriptor may fill two roles (a console or pty is read and
 * written): the server dup()s it. Descriptors become non-blocking. Reading
 * follows the client: a descriptor is not read while more than 256 KiB of
 * frames wait for the client, and the client is not read while more than
 * 256 KiB wait to be written to a descriptor. End of input is read() = 0 or
 * EIO (a pty whose other side closed). CHANNELS: the server itself handles
 * the control message {"eof":true} (closes chan_fd[0] once what the client
 * sent before it is written) and passes every control message (eof
 * included) to control(). */
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
	struct http_deferred *deferred; /* malloc'd; answer later (below) */
	const char *allow;            /* 405: the Allow header (set by the router) */
	json_t *headers;              /* optional further headers: {"X-Name": "value"} (strings) */
};

/* A reply that is not ready yet (GET /1.0/operations/ID/wait, the exec
 * WebSocket before its process runs). The handler fills rp->deferred instead
 * of an envelope; the server keeps the request pending without blocking and
 * calls poll() on the service thread after every server_wake() and once
 * more when timeout_ms (0: none) has passed (timed_out true), until it
 * returns true having filled rp: an envelope, or for a WebSocket request a
 * relay in rp->ws (an error envelope then closes the WebSocket with the
 * message as the close reason: WebSocket requests are accepted at once and
 * the client's input waits until the relay exists). free_opaque runs once
 * when the request is answered or the client is gone. */
struct http_deferred {
	bool (*poll)(struct daemon *d, void *opaque, struct http_reply *rp, bool timed_out);
	void (*free_opaque)(void *opaque);
	void *opaque;
	unsigned timeout_ms;
};

/* Envelope builders (README "REST API"); they steal metadata. */
void reply_sync(struct http_reply *r, json_t *metadata);
void reply_async(struct http_reply *r, const char *op_id, json_t *operation);
/* error_code: an HTTP status (400, 404, 409, 413, 500 ...); printf-style message. */
void reply_error(struct http_reply *r, int error_code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* gr_error -> error reply: -ENOENT 404, -EEXIST/-EBUSY/-EALREADY 409,
 * -EINVAL/-E2BIG/-ERANGE 400, -EPERM/-EACCES 403, -ENOTSUP 501, else 500. */
void reply_gr_error(struct http_reply *r, int rc, const struct gr_error *err);
/* Starts the operation (op_start, which frees p->arg when it fails) and
 * replies 202 with it, or with op_start's error. Returns op_start's result
 * (api/core.c). */
struct op_params;
int reply_op_start(struct daemon *d, struct http_reply *r, const struct op_params *p);

typedef void (*route_fn)(struct daemon *d, const struct http_request *rq, struct http_reply *rp);

struct route {
	const char *method;
	const char *pattern;          /* "/1.0/instances/{}/state": {} matches one path segment */
	route_fn fn;
	size_t max_body;              /* the largest request body it takes; 0: API_MAX_BODY */
};

/* Tables of routes, defined by the files that implement them. The server
 * answers 404 for unknown paths and 405 (with Allow) for known paths with
 * another method. */
extern const struct route instance_routes[];    /* api/instances.c, ends with {0} */
extern const struct route core_routes[];        /* api/core.c: /, /1.0, operations, events, tokens */
extern const struct route image_routes[];       /* api/images.c: /1.0/images */
extern const struct route volume_routes[];      /* api/volumes.c: /1.0/volumes */
extern const struct route network_routes[];     /* api/networks.c: /1.0/networks */
extern const struct route snapshot_routes[];    /* api/snapshots.c: /1.0/instances/NAME/snapshots */

/* Route lookup in NULL-terminated tables, searched in order (the server's:
 * instance_routes, core_routes): 0 with *out and args filled (pointers into
 * path_buf, a writable copy of the path that is split in place); -ENOENT for
 * an unknown path; -EOPNOTSUPP when the path is known for other methods
 * (allow gets them, ", "-separated). A trailing '/' is ignored. */
int route_lookup(const struct route *const tables[], const char *method, char *path_buf,
		 const struct route **out, const char *args[4], char *allow, size_t allow_len);
/* The error message of a JSON parse failure, as request_json words it. */
void json_error_message(const json_error_t *jerr, char *buf, size_t len);

int server_start(struct daemon *d, struct gr_error *err);
/* Runs the service loop until d->stopping. */
int server_run(struct daemon *d);
void server_stop(struct daemon *d);
/* Wakes the service loop from another thread (a finished operation, an event).
 * Safe from any thread at any time (a no-op while no server runs). */
void server_wake(struct daemon *d);
/* The TLS certificate's SHA-256 fingerprint (hex, ':'-separated), or NULL
 * without --listen. */
const char *server_tls_fingerprint(struct daemon *d);

/* JSON body parsing with errors that name the position ("line 1, column 7,
 * position 6: ..."): 400 in *rp and -EINVAL when malformed or not an object. */
int request_json(const struct http_request *rq, json_t **out, struct http_reply *rp);
/* -EINVAL naming the first key of obj that is not in allowed (NULL-terminated),
 * and the known ones; where: "" or the member's path ("source"). */
int request_check_keys(const json_t *obj, const char *where, const char *const allowed[], struct gr_error *err);
/* A collection's GET: the objects of list (each with a "name") with
 * ?recursion=1, else their URLs, PREFIX/NAME. list stays the caller's. */
void reply_list(const struct http_request *rq, struct http_reply *rp, json_t *list, const char *prefix);

#endif
