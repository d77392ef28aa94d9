/* The core routes: /, /1.0, operations, events, tokens (images: api/images.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "daemon/api/server.h"
#include "daemon/events.h"
#include "daemon/operations.h"
#include "daemon/store/store.h"

#ifndef GUREUM_VERSION
#define GUREUM_VERSION "unknown"
#endif

/* How long a client of .../websocket waits for the exec to register its relay. */
#define WS_CLAIM_TIMEOUT_MS 30000

static void root_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	(void)d;
	(void)rq;
	reply_sync(rp, json_pack("[s]", "/1.0"));
}

static void server_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct utsname u;
	uname(&u);
	json_t *env = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "server_version", GUREUM_VERSION, "kernel",
				u.release, "kernel_architecture", u.machine, "driver", "container", "server_pid",
				(json_int_t)getpid(), "state_dir", d->env.state_dir, "run_dir", d->env.run_dir);
	const char *fp = server_tls_fingerprint(d);
	if (fp)
		json_object_set_new(env, "certificate_fingerprint", json_string(fp));
	if (d->listen)
		json_object_set_new(env, "addresses", json_pack("[s]", d->listen));
	reply_sync(rp, json_pack("{s:s, s:s, s:s, s:o}", "api_version", "1.0", "auth", "trusted", "auth_method",
				 rq->trusted_socket ? "unix" : "token", "environment", env));
}

/* ------------------------------------------------------------------ */
/* operations */

static struct operation *find_op(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct operation *op = op_get(d, rq->route_args[0]);
	if (!op)
		reply_error(rp, 404, "operation %s not found", rq->route_args[0]);
	return op;
}

static void operations_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	reply_sync(rp, operations_list(d, http_query_bool(rq, "recursion")));
}

static void operation_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct operation *op = find_op(d, rq, rp);
	if (!op)
		return;
	reply_sync(rp, op_json(op));
	op_put(op);
}

static void operation_delete(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct gr_error err = { 0 };
	int rc = op_cancel(d, rq->route_args[0], &err);
	if (rc < 0)
		reply_gr_error(rp, rc, &err);
	else
		reply_sync(rp, json_object());
}

static bool wait_poll(struct daemon *d, void *opaque, struct http_reply *rp, bool timed_out)
{
	(void)d;
	struct operation *op = opaque;
	if (!timed_out && !op_done(op))
		return false;
	/* On timeout: the operation as it is now (still running). */
	reply_sync(rp, op_json(op));
	return true;
}

static void wait_free(void *opaque)
{
	op_put(opaque);
}

/* ?timeout=SECONDS (decimal; -1 or absent: no limit). */
static int parse_timeout(const struct http_request *rq, struct http_reply *rp, long *ms)
{
	char v[32];
	int rc = http_query_get(rq, "timeout", v, sizeof(v));
	*ms = -1;
	if (rc == 0)
		return 0;
	char *end = NULL;
	double t = rc > 0 ? strtod(v, &end) : NAN;
	if (rc < 0 || !v[0] || *end || isnan(t) || (t < 0 && t != -1) || t > 86400.0 * 365) {
		reply_error(rp, 400, "timeout: '%s' is not a number of seconds (or -1 for no limit)", rc < 0 ? "..." : v);
		return -EINVAL;
	}
	*ms = t < 0 ? -1 : (long)(t * 1000.0 + 0.5);
	return 0;
}

static void operation_wait(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	long ms;
	if (parse_timeout(rq, rp, &ms) < 0)
		return;
	struct operation *op = find_op(d, rq, rp);
	if (!op)
		return;
	if (op_done(op) || ms == 0) {
		reply_sync(rp, op_json(op));
		op_put(op);
		return;
	}
	struct http_deferred *df = calloc(1, sizeof(*df));
	if (!df) {
		op_put(op);
		reply_error(rp, 500, "out of memory");
		return;
	}
	df->poll = wait_poll;
	df->free_opaque = wait_free;
	df->opaque = op;
	df->timeout_ms = ms < 0 ? 0 : (unsigned)(ms > 0 ? ms : 1);
	rp->deferred = df;
}

struct claim {
	struct operation *op;
	char secret[80];
};

static bool claim_poll(struct daemon *d, void *opaque, struct http_reply *rp, bool timed_out)
{
	(void)d;
	struct claim *cl = opaque;
	struct ws_relay *relay = NULL;
	int rc = op_ws_claim(cl->op, cl->secret, &relay);
	if (rc == 1) {
		rp->ws = relay;
		return true;
	}
	if (rc == 0 && !timed_out)
		return false;
	if (rc == 0)
		reply_error(rp, 504, "the operation did not provide its WebSocket in time");
	else
		reply_error(rp, rc == -EALREADY ? 409 : 404, "%s",
			    rc == -EALREADY ? "the WebSocket of this operation is already connected"
					    : "the operation ended without a WebSocket");
	return true;
}

static void claim_free(void *opaque)
{
	struct claim *cl = opaque;
	op_put(cl->op);
	free(cl);
}

static void operation_websocket(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!rq->websocket) {
		reply_error(rp, 400, "%s needs a WebSocket upgrade", rq->path);
		return;
	}
	char secret[80];
	int rc = http_query_get(rq, "secret", secret, sizeof(secret));
	if (rc <= 0) {
		reply_error(rp, 403, "secret: missing or invalid");
		return;
	}
	struct operation *op = find_op(d, rq, rp);
	if (!op)
		return;
	struct ws_relay *relay = NULL;
	rc = op_ws_claim(op, secret, &relay);
	if (rc == 1) {
		op_put(op);
		rp->ws = relay;
		return;
	}
	if (rc < 0) {
		op_put(op);
		if (rc == -EACCES)
			reply_error(rp, 403, "wrong secret for operation %s", rq->route_args[0]);
		else if (rc == -EALREADY)
			reply_error(rp, 409, "the WebSocket of operation %s is already connected", rq->route_args[0]);
		else
			reply_error(rp, 404, "operation %s has no WebSocket", rq->route_args[0]);
		return;
	}
	struct claim *cl = calloc(1, sizeof(*cl));
	struct http_deferred *df = calloc(1, sizeof(*df));
	if (!cl || !df) {
		free(cl);
		free(df);
		op_put(op);
		reply_error(rp, 500, "out of memory");
		return;
	}
	cl->op = op;
	snprintf(cl->secret, sizeof(cl->secret), "%s", secret);
	df->poll = claim_poll;
	df->free_opaque = claim_free;
	df->opaque = cl;
	df->timeout_ms = WS_CLAIM_TIMEOUT_MS;
	rp->deferred = df;
}

/* ------------------------------------------------------------------ */
/* events */

static void events_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!rq->websocket) {
		reply_error(rp, 400, "/1.0/events is a WebSocket: connect with an Upgrade: websocket request");
		return;
	}
	char filter[128] = "";
	if (http_query_get(rq, "type", filter, sizeof(filter)) < 0) {
		reply_error(rp, 400, "type: too long");
		return;
	}
	struct gr_error err = { 0 };
	int fd;
	int rc = events_subscribe(d, filter, &fd, &err);
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	struct ws_relay *ws = calloc(1, sizeof(*ws));
	if (!ws) {
		close(fd);
		reply_error(rp, 500, "out of memory");
		return;
	}
	ws->mode = WS_LINES;
	ws->from_fd = fd;
	ws->to_fd = -1;
	ws->chan_fd[0] = ws->chan_fd[1] = ws->chan_fd[2] = -1;
	rp->ws = ws;
}

/* ------------------------------------------------------------------ */
/* tokens: unix socket only (whoever can reach it is root). */

static bool unix_only(const struct http_request *rq, struct http_reply *rp)
{
	if (rq->trusted_socket)
		return true;
	reply_error(rp, 403, "tokens are managed over the unix socket only");
	return false;
}

static void tokens_post(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!unix_only(rq, rp))
		return;
	const char *description = "";
	gr_autojson json_t *body = NULL;
	if (rq->body_len > 0) {
		if (request_json(rq, &body, rp) < 0)
			return;
		const char *key;
		json_t *v;
		json_object_foreach(body, key, v) {
			if (strcmp(key, "description") != 0) {
				reply_error(rp, 400, "unknown key '%s' (known: description)", key);
				return;
			}
			if (!json_is_string(v)) {
				reply_error(rp, 400, "description: must be a string");
				return;
			}
			description = json_string_value(v);
		}
	}
	if (strlen(description) > 256) {
		reply_error(rp, 400, "description: longer than 256 bytes");
		return;
	}
	unsigned char raw[32];
	size_t got = 0;
	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			reply_error(rp, 500, "getrandom: %s", strerror(errno));
			return;
		}
		got += (size_t)n;
	}
	char token[65];
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(token + 2 * i, 3, "%02x", raw[i]);
	struct gr_error err = { 0 };
	int rc = store_token_add(d->store, token, description, &err);
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	reply_sync(rp, json_pack("{s:s, s:s}", "token", token, "description", description));
}

static void tokens_get(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!unix_only(rq, rp))
		return;
	json_t *list = NULL;
	struct gr_error err = { 0 };
	int rc = store_token_list(d->store, &list, &err);
	if (rc < 0)
		reply_gr_error(rp, rc, &err);
	else
		reply_sync(rp, list);
}

static void token_delete(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (!unix_only(rq, rp))
		return;
	struct gr_error err = { 0 };
	int rc = store_token_remove(d->store, rq->route_args[0], &err);
	if (rc < 0)
		reply_gr_error(rp, rc, &err);
	else
		reply_sync(rp, json_object());
}

const struct route core_routes[] = {
	{ "GET", "/", root_get },
	{ "GET", "/1.0", server_get },
	{ "GET", "/1.0/operations", operations_get },
	{ "GET", "/1.0/operations/{}", operation_get },
	{ "DELETE", "/1.0/operations/{}", operation_delete },
	{ "GET", "/1.0/operations/{}/wait", operation_wait },
	{ "GET", "/1.0/operations/{}/websocket", operation_websocket },
	{ "GET", "/1.0/events", events_get },
	{ "GET", "/1.0/tokens", tokens_get },
	{ "POST", "/1.0/tokens", tokens_post },
	{ "DELETE", "/1.0/tokens/{}", token_delete },
	{ 0 },
};

int reply_op_start(struct daemon *d, struct http_reply *r, const struct op_params *p)
{
	const char *id = NULL;
	json_t *opj = NULL;
	struct gr_error err = { 0 };
	int rc = op_start(d, p, &id, &opj, &err);
	if (rc < 0)
		reply_gr_error(r, rc, &err);
	else
		reply_async(r, id, opj);
	return rc;
}
