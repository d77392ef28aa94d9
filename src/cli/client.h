/* The gureum CLI's client for gureumd's REST API (src/daemon/README.md):
 * HTTP/JSON requests and WebSocket sessions over the unix socket or over TLS,
 * both through libwebsockets' client (lws 4.1 connects to a unix socket when
 * the address is "+/path"), so the CLI has one HTTP library, the daemon's.
 *
 * One request or WebSocket session at a time per client; each runs the lws
 * event loop until it ends. Errors come back as a negative errno with
 * err->msg ready to print: the daemon's error text for an error envelope,
 * "cannot reach gureumd at PATH: REASON (is gureumd running?)" when nothing
 * answers. */
#ifndef GR_CLI_CLIENT_H
#define GR_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

#define GR_DEFAULT_SOCKET "/run/gureum/gureum.sock"

struct gr_client_opts {
	const char *socket_path;   /* unix socket (default GR_DEFAULT_SOCKET) */
	const char *remote;        /* "https://HOST:PORT": TLS instead of the socket */
	const char *token;         /* bearer token for --remote */
	const char *fingerprint;   /* --accept-certificate: SHA-256 of the server's certificate (hex, ':' allowed) */
	const char *server_cert;   /* --server-cert: a PEM file holding the server's certificate */
	bool debug;                /* libwebsockets' own log on stderr */
};

struct gr_client;

int gr_client_new(const struct gr_client_opts *opts, struct gr_client **out, struct gr_error *err);
void gr_client_free(struct gr_client *c);
/* Where requests go, for messages: the socket path or the URL. */
const char *gr_client_target(const struct gr_client *c);

/* A raw HTTP exchange: status, content type and body as received. body may
 * be NULL (no body) and is sent as application/json. */
struct gr_response {
	int status;
	char *body;                /* NUL-terminated, malloc'd */
	size_t len;
	char content_type[128];
};
void gr_response_clear(struct gr_response *r);
int gr_client_http(struct gr_client *c, const char *method, const char *path, const char *body,
		   struct gr_response *resp, struct gr_error *err);

/* A request with a binary body and headers of its own, whose response
 * headers are read too (gureum file). */
struct gr_http_extra {
	const void *body;          /* sent as is; NULL with body_len 0: none */
	size_t body_len;
	const char *content_type;  /* of body (default application/octet-stream) */
	const char *const *headers;/* NULL-terminated name, value, name, value... sent with it */
	const char *const *want;   /* NULL-terminated names of response headers to read */
	char (*got)[256];          /* one per want: its value, "" when absent or too long */
};
int gr_client_http_ex(struct gr_client *c, const char *method, const char *path, const struct gr_http_extra *x,
		      struct gr_response *resp, struct gr_error *err);

/* A request whose answer is a JSON envelope. *envelope receives it whatever
 * its type (the caller decides what to print); the return value is 0 for
 * sync/async envelopes and -EPROTO... for an error envelope, with err->msg =
 * the daemon's "error" text and err->code derived from error_code
 * (404 -> ENOENT, 409 -> EBUSY, 400 -> EINVAL, 401/403 -> EACCES, else EIO). */
int gr_client_call(struct gr_client *c, const char *method, const char *path, const json_t *body,
		   json_t **envelope, struct gr_error *err);
/* As gr_client_call, but *metadata receives only the envelope's metadata
 * (a new reference; may be JSON null). */
int gr_client_query(struct gr_client *c, const char *method, const char *path, const json_t *body,
		    json_t **metadata, struct gr_error *err);

/* Waits for an operation ("/1.0/operations/ID") to finish and returns it in
 * *op. Returns 0 when it succeeded, -EIO... with err->msg = the operation's
 * "err" when it failed or was cancelled. */
int gr_client_wait(struct gr_client *c, const char *op_url, json_t **op, struct gr_error *err);
/* A request answered by an async envelope, then waits for its operation. */
int gr_client_run_operation(struct gr_client *c, const char *method, const char *path,
			    const json_t *body, json_t **op, struct gr_error *err);

/* ---- WebSocket sessions ---- */

struct gr_ws;

struct gr_ws_ops {
	/* The connection is up (may be NULL). */
	int (*on_open)(struct gr_ws *ws, void *user);
	/* One complete message (fragments joined). Return < 0 to end the
	 * session with that error (err filled through gr_ws_fail). */
	int (*on_message)(struct gr_ws *ws, const void *data, size_t len, bool binary, void *user);
	/* A watched descriptor is readable (or hung up). */
	int (*on_fd)(struct gr_ws *ws, int fd, void *user);
	void *user;
};

/* Connects to `path` (with its query) and runs the session until the
 * server closes it, gr_ws_close() is called, or a callback fails. `fds`
 * are local descriptors to watch while it runs (stdin, a signalfd); they
 * stay owned by the caller. Returns 0 or -errno with err filled. */
int gr_ws_run(struct gr_client *c, const char *path, const struct gr_ws_ops *ops,
	      const int *fds, size_t nfds, struct gr_error *err);
/* Queues a message (copied). Returns 0 or -ENOMEM / -ENOTCONN. */
int gr_ws_send(struct gr_ws *ws, const void *data, size_t len, bool binary);
/* As gr_ws_send with a channel byte in front (exec protocol). */
int gr_ws_send_channel(struct gr_ws *ws, uint8_t channel, const void *data, size_t len);
/* Stops watching a descriptor (after its EOF). */
void gr_ws_unwatch(struct gr_ws *ws, int fd);
/* Sends what is queued, then closes the connection normally. */
void gr_ws_close(struct gr_ws *ws);
/* Ends the session with an error (from a callback); returns -code. */
int gr_ws_fail(struct gr_ws *ws, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* True once the session ends because the server closed it. */
bool gr_ws_closed_by_server(const struct gr_ws *ws);

#endif
