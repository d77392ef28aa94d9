/* gureumd's HTTP and WebSocket server over libwebsockets (server.h).
 *
 * Threading: everything here runs on the one service thread (server_run),
 * except server_wake, which any thread may call (lws_cancel_service). A wake
 * delivers LWS_CALLBACK_EVENT_WAIT_CANCELLED, where pending (deferred)
 * requests are polled.
 *
 * Connections: each wsi that carries a request gets a struct conn, kept in
 * the wsi's opaque user data (it survives the HTTP -> WebSocket protocol
 * rebinding, which frees lws' per-session data) and freed at
 * LWS_CALLBACK_WSI_DESTROY. A conn holds the request being read (method,
 * path, query, body up to its route's limit), the reply being written, a
 * deferred reply, and for WebSockets the relay.
 *
 * Relays: the descriptors of every relay are registered in one epoll
 * instance, and that epoll descriptor is adopted into libwebsockets as a raw
 * file: when any relay descriptor is ready, lws reports the epoll descriptor
 * readable (LWS_CALLBACK_RAW_RX_FILE) and the relay code handles what
 * epoll_wait returns, on the service thread. A descriptor whose client is
 * behind (frames queued above RELAY_HIGH) is taken out of the epoll set
 * until the queue drains below RELAY_LOW, so nothing is read faster than the
 * client takes it, and a paused descriptor's hang-up cannot spin the loop;
 * its remaining data is read when it is resumed. */
#include "daemon/api/server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "daemon/api/tls.h"
#include "daemon/api/wake.h"
#include "daemon/operations.h"
#include "daemon/store/store.h"

#define RELAY_CHUNK (16 * 1024)
#define RELAY_HIGH (256 * 1024)
#define RELAY_LOW (64 * 1024)
#define CONTROL_MAX (64 * 1024)
/* Client input that arrives on a pending WebSocket before its relay exists
 * (lws may deliver what came with or right after the upgrade even with rx
 * flow control off) is kept, in order, up to this much, and replayed into
 * the relay once attached; beyond it the connection is closed (1009). */
#define EARLY_MAX (256 * 1024)
#define LINE_MAX_BYTES (2u << 20)
/* Bodies declared up to this size are read and dropped before the 413, so
 * the client sees the reply instead of a reset; larger ones are refused at
 * once and the connection closed. */
#define DISCARD_MAX (16u * API_MAX_BODY)

struct conn;

struct relay_fd {
	struct relay *r;
	int fd;
	int chan;                     /* CHANNELS: 1 or 2 */
	bool watched;                 /* in the epoll set */
	bool eof;
};

struct frame {
	struct frame *next;
	size_t len;
	enum lws_write_protocol type;
	unsigned char data[];         /* LWS_PRE + len */
};

struct relay {
	struct ws_relay spec;
	struct conn *c;
	struct relay_fd src[2];       /* fd -> client */
	int nsrc;
	struct relay_fd dst;          /* client -> fd (fd -1 when none) */
	uint32_t dst_events;
	/* frames for the client */
	struct frame *head, *tail;
	size_t queued;
	bool paused;
	bool finishing;               /* close once the queue is empty */
	/* bytes for dst */
	char *in;
	size_t in_len, in_off, in_cap;
	bool in_eof;                  /* close dst once in is written */
	bool rx_paused;
	/* CHANNELS: the message being received */
	bool in_msg;
	int msg_chan;
	char *ctrl;
	size_t ctrl_len;
	bool ctrl_overflow;
	/* LINES */
	char *line;
	size_t line_len;
	bool closed_called;
};

struct server {
	struct daemon *d;
	struct lws_context *ctx;
	struct lws_vhost *unix_vh, *tls_vh;
	char sock_path[PATH_MAX];
	int epfd;
	struct conn *pending;         /* conns with a deferred reply (doubly linked) */
	char fingerprint[100];
};

struct conn {
	struct server *srv;
	struct lws *wsi;
	bool trusted;                 /* unix socket */
	/* request */
	char method[8];
	char *path, *query;
	char *body;
	size_t body_len, body_cap;
	size_t body_max;              /* the route's limit (API_MAX_BODY by default) */
	bool body_too_big;
	bool websocket;
	bool answered;
	/* reply */
	int status;
	char *resp;
	size_t resp_len, resp_off;
	const char *ctype;
	char allow[64];
	json_t *headers;              /* further response headers (http_reply.headers) */
	bool headers_sent, close_after;
	/* deferred */
	struct http_deferred *deferred;
	lws_sorted_usec_list_t sul;
	struct conn *pend_prev, *pend_next;
	bool pending;
	/* WebSocket */
	struct ws_relay *relay_spec;  /* accepted, not yet established */
	struct relay *relay;
	struct early_frag *early_head, *early_tail;   /* input before the relay (EARLY_MAX) */
	size_t early_len;
	int close_status;
	char close_msg[124];
};

/* A received WebSocket fragment kept until the relay exists. */
struct early_frag {
	struct early_frag *next;
	size_t len;
	bool msg_end;                 /* the message's last fragment */
	char data[];
};

static struct server *g_srv;      /* for the callbacks */

/* A relay handed to the server that never got a connection: its owner
 * still hears closed() once, and its descriptors are closed. */
static void relay_spec_drop(struct ws_relay *spec)
{
	if (!spec)
		return;
	if (spec->closed)
		spec->closed(spec->opaque);
	ws_relay_discard(spec);
}

static const struct route *const route_tables[] = { instance_routes, core_routes, image_routes, volume_routes, network_routes, snapshot_routes,
						     NULL };

/* ------------------------------------------------------------------ */
/* logging */

static void lws_log_emit(int level, const char *line)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", line);
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (level & LLL_ERR)
		gr_warn("libwebsockets: %s", buf);
	else
		gr_debug("libwebsockets: %s", buf);
}

/* ------------------------------------------------------------------ */
/* relays */

static void relay_unwatch(struct server *srv, struct relay_fd *rf)
{
	if (rf->watched) {
		epoll_ctl(srv->epfd, EPOLL_CTL_DEL, rf->fd, NULL);
		rf->watched = false;
	}
}

static int relay_watch(struct server *srv, struct relay_fd *rf, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = rf };
	int op = rf->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(srv->epfd, op, rf->fd, &ev) < 0)
		return -errno;
	rf->watched = true;
	return 0;
}

static void relay_close_fd(struct server *srv, struct relay_fd *rf)
{
	relay_unwatch(srv, rf);
	if (rf->fd >= 0)
		close(rf->fd);
	rf->fd = -1;
	rf->eof = true;
}

static void relay_free(struct server *srv, struct relay *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nsrc; i++)
		relay_close_fd(srv, &r->src[i]);
	relay_close_fd(srv, &r->dst);
	for (struct frame *f = r->head, *n; f; f = n) {
		n = f->next;
		free(f);
	}
	free(r->in);
	free(r->ctrl);
	free(r->line);
	if (!r->closed_called && r->spec.closed) {
		r->closed_called = true;
		r->spec.closed(r->spec.opaque);
	}
	free(r);
}

static void relay_enqueue(struct relay *r, enum lws_write_protocol type, int chan, const void *data, size_t len)
{
	size_t total = len + (chan >= 0 ? 1 : 0);
	struct frame *f = malloc(sizeof(*f) + LWS_PRE + total);
	if (!f) {
		gr_warn("relay: out of memory, dropping %zu bytes", len);
		return;
	}
	f->next = NULL;
	f->len = total;
	f->type = type;
	unsigned char *p = f->data + LWS_PRE;
	if (chan >= 0)
		*p++ = (unsigned char)chan;
	memcpy(p, data, len);
	if (r->tail)
		r->tail->next = f;
	else
		r->head = f;
	r->tail = f;
	r->queued += total;
}

static void relay_pause_sources(struct server *srv, struct relay *r)
{
	for (int i = 0; i < r->nsrc; i++)
		relay_unwatch(srv, &r->src[i]);
	r->paused = true;
}

static void relay_resume_sources(struct server *srv, struct relay *r)
{
	r->paused = false;
	for (int i = 0; i < r->nsrc; i++)
		if (!r->src[i].eof && relay_watch(srv, &r->src[i], EPOLLIN) < 0) {
			gr_warn("relay: cannot watch descriptor %d again: %s", r->src[i].fd, strerror(errno));
			relay_close_fd(srv, &r->src[i]);
		}
}

static void relay_check_finished(struct relay *r)
{
	bool all_eof = true;
	for (int i = 0; i < r->nsrc; i++)
		if (!r->src[i].eof)
			all_eof = false;
	if (all_eof && !r->finishing) {
		r->finishing = true;
		lws_callback_on_writable(r->c->wsi);
	}
}

static void relay_lines(struct relay *r, const char *data, size_t n)
{
	if (r->line_len + n > LINE_MAX_BYTES) {
		gr_warn("relay: dropping an over-long line (%zu bytes)", r->line_len + n);
		r->line_len = 0;
		return;
	}
	char *nl = realloc(r->line, r->line_len + n);
	if (!nl)
		return;
	r->line = nl;
	memcpy(r->line + r->line_len, data, n);
	r->line_len += n;
	size_t start = 0;
	for (size_t i = 0; i < r->line_len; i++)
		if (r->line[i] == '\n') {
			relay_enqueue(r, LWS_WRITE_TEXT, -1, r->line + start, i - start);
			start = i + 1;
		}
	memmove(r->line, r->line + start, r->line_len - start);
	r->line_len -= start;
}

static void relay_read_source(struct server *srv, struct relay *r, struct relay_fd *rf)
{
	char buf[RELAY_CHUNK];
	ssize_t n = read(rf->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (n < 0 && errno != EIO)
			gr_debug("relay: read from descriptor %d: %s", rf->fd, strerror(errno));
		relay_close_fd(srv, rf);
		relay_check_finished(r);
		return;
	}
	switch (r->spec.mode) {
	case WS_RAW:
		relay_enqueue(r, LWS_WRITE_BINARY, -1, buf, (size_t)n);
		break;
	case WS_CHANNELS:
		relay_enqueue(r, LWS_WRITE_BINARY, rf->chan, buf, (size_t)n);
		break;
	case WS_LINES:
		relay_lines(r, buf, (size_t)n);
		break;
	}
	if (r->queued >= RELAY_HIGH)
		relay_pause_sources(srv, r);
	if (r->head)
		lws_callback_on_writable(r->c->wsi);
}

/* Writes what the client sent to dst, without blocking. */
static void relay_flush_dst(struct server *srv, struct relay *r)
{
	struct relay_fd *d = &r->dst;
	while (d->fd >= 0 && r->in_off < r->in_len) {
		ssize_t n = write(d->fd, r->in + r->in_off, r->in_len - r->in_off);
		if (n > 0) {
			r->in_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (relay_watch(srv, d, EPOLLOUT) < 0) {
				gr_debug("relay: cannot watch descriptor %d for writing", d->fd);
				relay_close_fd(srv, d);
			}
			break;
		}
		/* The reader is gone (EPIPE) or the descriptor failed: input is dropped. */
		gr_debug("relay: write to descriptor %d: %s", d->fd, n < 0 ? strerror(errno) : "short write");
		relay_close_fd(srv, d);
	}
	if (d->fd < 0 || r->in_off == r->in_len) {
		r->in_off = r->in_len = 0;
		if (d->fd >= 0)
			relay_unwatch(srv, d);
		if (r->in_eof && d->fd >= 0)
			relay_close_fd(srv, d);
	}
	size_t pending = r->in_len - r->in_off;
	if (!r->rx_paused && pending >= RELAY_HIGH) {
		r->rx_paused = true;
		lws_rx_flow_control(r->c->wsi, 0);
	} else if (r->rx_paused && pending < RELAY_LOW) {
		r->rx_paused = false;
		lws_rx_flow_control(r->c->wsi, 1);
	}
}

static void relay_append_input(struct server *srv, struct relay *r, const char *data, size_t len)
{
	if (r->dst.fd < 0 || r->in_eof || len == 0)
		return;
	if (r->in_off > 0 && r->in_off == r->in_len)
		r->in_off = r->in_len = 0;
	if (r->in_len + len > r->in_cap) {
		if (r->in_off > 0) {
			memmove(r->in, r->in + r->in_off, r->in_len - r->in_off);
			r->in_len -= r->in_off;
			r->in_off = 0;
		}
		if (r->in_len + len > r->in_cap) {
			size_t cap = r->in_cap ? r->in_cap : 4096;
			while (cap < r->in_len + len)
				cap *= 2;
			char *n = realloc(r->in, cap);
			if (!n) {
				gr_warn("relay: out of memory, dropping input");
				return;
			}
			r->in = n;
			r->in_cap = cap;
		}
	}
	memcpy(r->in + r->in_len, data, len);
	r->in_len += len;
	relay_flush_dst(srv, r);
}

static void relay_control(struct server *srv, struct relay *r)
{
	json_error_t jerr;
	json_t *msg = json_loadb(r->ctrl, r->ctrl_len, 0, &jerr);
	r->ctrl_len = 0;
	if (!msg || !json_is_object(msg)) {
		gr_debug("relay: ignoring a control message that is not a JSON object");
		json_decref(msg);
		return;
	}
	if (json_is_true(json_object_get(msg, "eof"))) {
		r->in_eof = true;
		relay_flush_dst(srv, r);
	}
	if (r->spec.control)
		r->spec.control(r->spec.opaque, msg);
	json_decref(msg);
}

/* Whether the fragment being received ends its message. */
static bool ws_msg_end(struct lws *wsi)
{
	return lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
}

static void relay_receive(struct server *srv, struct relay *r, const char *data, size_t len, bool msg_end)
{
	switch (r->spec.mode) {
	case WS_RAW:
		relay_append_input(srv, r, data, len);
		break;
	case WS_LINES:
		break;                /* nothing is accepted from the client */
	case WS_CHANNELS:
		if (!r->in_msg) {
			if (len == 0)
				break;
			r->in_msg = true;
			r->msg_chan = (unsigned char)data[0];
			r->ctrl_len = 0;
			r->ctrl_overflow = false;
			data++;
			len--;
		}
		if (r->msg_chan == 0) {
			relay_append_input(srv, r, data, len);
		} else if (r->msg_chan == 3) {
			if (r->ctrl_len + len > CONTROL_MAX) {
				r->ctrl_overflow = true;
			} else if (len) {
				char *n = realloc(r->ctrl, r->ctrl_len + len);
				if (n) {
					r->ctrl = n;
					memcpy(r->ctrl + r->ctrl_len, data, len);
					r->ctrl_len += len;
				}
			}
			if (msg_end) {
				if (r->ctrl_overflow)
					gr_debug("relay: dropping a control message over %d bytes", CONTROL_MAX);
				else
					relay_control(srv, r);
			}
		} else {
			gr_debug("relay: ignoring data for channel %d", r->msg_chan);
		}
		break;
	}
	if (msg_end)
		r->in_msg = false;
}

/* The relay's descriptors, in their roles: a descriptor already used by an
 * earlier role is dup()ed, so each epoll registration is its own. */
static int relay_take_fd(int fd, int *used, int *nused)
{
	if (fd < 0)
		return -1;
	for (int i = 0; i < *nused; i++)
		if (used[i] == fd) {
			int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
			return d;
		}
	used[(*nused)++] = fd;
	return fd;
}

static int relay_attach(struct server *srv, struct conn *c, struct ws_relay *spec, struct gr_error *err)
{
	struct relay *r = calloc(1, sizeof(*r));
	if (!r) {
		relay_spec_drop(spec);
		return gr_error_set(err, ENOMEM, "cannot allocate a relay");
	}
	r->spec = *spec;
	free(spec);
	r->c = c;
	r->dst.r = r;
	c->relay = r;
	int used[5], nused = 0;
	int in_fd = -1, out_fd[2] = { -1, -1 };
	switch (r->spec.mode) {
	case WS_RAW:
		out_fd[0] = relay_take_fd(r->spec.from_fd, used, &nused);
		in_fd = relay_take_fd(r->spec.to_fd, used, &nused);
		r->nsrc = 1;
		break;
	case WS_LINES:
		out_fd[0] = relay_take_fd(r->spec.from_fd, used, &nused);
		if (r->spec.to_fd >= 0 && r->spec.to_fd != r->spec.from_fd)
			close(r->spec.to_fd);
		r->nsrc = 1;
		break;
	case WS_CHANNELS:
		out_fd[0] = relay_take_fd(r->spec.chan_fd[1], used, &nused);
		out_fd[1] = relay_take_fd(r->spec.chan_fd[2], used, &nused);
		in_fd = relay_take_fd(r->spec.chan_fd[0], used, &nused);
		r->nsrc = 2;
		break;
	}
	r->dst.fd = in_fd;
	r->dst.eof = in_fd < 0;
	if (in_fd >= 0)
		fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
	for (int i = 0; i < r->nsrc; i++) {
		struct relay_fd *rf = &r->src[i];
		rf->r = r;
		rf->fd = out_fd[i];
		rf->chan = i + 1;
		rf->eof = rf->fd < 0;
	}
	for (int i = 0; i < r->nsrc; i++) {
		struct relay_fd *rf = &r->src[i];
		if (rf->fd < 0)
			continue;
		fcntl(rf->fd, F_SETFL, fcntl(rf->fd, F_GETFL) | O_NONBLOCK);
		if (relay_watch(srv, rf, EPOLLIN) < 0)
			return gr_error_sys(err, errno, "cannot relay descriptor %d (it must be a pipe, socket or terminal)",
					    rf->fd);
	}
	relay_check_finished(r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* connections and replies */

static struct conn *conn_get(struct server *srv, struct lws *wsi)
{
	struct conn *c = lws_get_opaque_user_data(wsi);
	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->srv = srv;
	c->wsi = wsi;
	c->trusted = lws_get_vhost(wsi) == srv->unix_vh;
	lws_set_opaque_user_data(wsi, c);
	return c;
}

static void pending_remove(struct conn *c)
{
	if (!c->pending)
		return;
	struct server *srv = c->srv;
	if (c->pend_prev)
		c->pend_prev->pend_next = c->pend_next;
	else
		srv->pending = c->pend_next;
	if (c->pend_next)
		c->pend_next->pend_prev = c->pend_prev;
	c->pend_prev = c->pend_next = NULL;
	c->pending = false;
	lws_sul_cancel(&c->sul);
}

static void early_free(struct conn *c)
{
	for (struct early_frag *f = c->early_head, *next; f; f = next) {
		next = f->next;
		free(f);
	}
	c->early_head = c->early_tail = NULL;
	c->early_len = 0;
}

/* Keeps input that came before the relay; false when over EARLY_MAX. */
static bool early_keep(struct conn *c, const void *in, size_t len, bool msg_end)
{
	if (c->early_len + len > EARLY_MAX)
		return false;
	struct early_frag *f = malloc(sizeof(*f) + len);
	if (!f)
		return false;
	f->next = NULL;
	f->len = len;
	f->msg_end = msg_end;
	if (len)
		memcpy(f->data, in, len);
	if (c->early_tail)
		c->early_tail->next = f;
	else
		c->early_head = f;
	c->early_tail = f;
	c->early_len += len;
	return true;
}

/* Feeds the kept input to the newly attached relay, in order. */
static void early_replay(struct server *srv, struct conn *c)
{
	if (c->early_head)
		gr_debug("websocket %s: %zu bytes received before the relay existed, now relayed", c->path ? c->path : "",
			 c->early_len);
	for (struct early_frag *f = c->early_head; f && c->relay; f = f->next)
		relay_receive(srv, c->relay, f->data, f->len, f->msg_end);
	early_free(c);
}

static void deferred_free(struct conn *c)
{
	pending_remove(c);
	if (c->deferred) {
		if (c->deferred->free_opaque)
			c->deferred->free_opaque(c->deferred->opaque);
		free(c->deferred);
		c->deferred = NULL;
	}
}

static void conn_reset_request(struct conn *c)
{
	free(c->path);
	free(c->query);
	free(c->body);
	free(c->resp);
	c->path = c->query = c->body = c->resp = NULL;
	c->body_len = c->body_cap = c->resp_len = c->resp_off = 0;
	c->body_too_big = c->websocket = c->answered = c->headers_sent = c->close_after = false;
	c->body_max = API_MAX_BODY;
	json_decref(c->headers);
	c->headers = NULL;
	c->status = 0;
	c->ctype = NULL;
	c->allow[0] = '\0';
	c->method[0] = '\0';
}

static void conn_free(struct conn *c)
{
	deferred_free(c);
	if (c->relay_spec) {
		relay_spec_drop(c->relay_spec);
		c->relay_spec = NULL;
	}
	relay_free(c->srv, c->relay);
	c->relay = NULL;
	early_free(c);
	conn_reset_request(c);
	free(c);
}

static void reply_clear(struct http_reply *rp)
{
	json_decref(rp->envelope);
	json_decref(rp->headers);
	free(rp->raw_body);
	if (rp->ws)
		relay_spec_drop(rp->ws);
	if (rp->deferred) {
		if (rp->deferred->free_opaque)
			rp->deferred->free_opaque(rp->deferred->opaque);
		free(rp->deferred);
	}
	memset(rp, 0, sizeof(*rp));
}

/* Turns a finished reply (envelope or raw body) into the conn's response. */
static void conn_set_response(struct conn *c, struct http_reply *rp)
{
	free(c->resp);
	c->resp = NULL;
	if (rp->content_type && rp->raw_body) {
		c->resp = gr_steal_ptr(rp->raw_body);
		c->resp_len = rp->raw_len;
		c->ctype = rp->content_type;
		c->status = rp->status ? rp->status : 200;
	} else {
		if (!rp->envelope)
			reply_error(rp, 500, "the handler produced no reply");
		const char *type = json_string_value(json_object_get(rp->envelope, "type"));
		int status = 200;
		if (type && strcmp(type, "async") == 0)
			status = 202;
		else if (type && strcmp(type, "error") == 0)
			status = (int)json_integer_value(json_object_get(rp->envelope, "error_code"));
		c->status = rp->status ? rp->status : status;
		c->resp = json_dumps(rp->envelope, JSON_COMPACT);
		if (!c->resp) {
			c->resp = strdup("{\"type\":\"error\",\"status\":\"\",\"status_code\":0,\"operation\":\"\","
					 "\"error_code\":500,\"error\":\"cannot serialize the reply\",\"metadata\":null}");
			c->status = 500;
		}
		c->resp_len = strlen(c->resp);
		c->ctype = "application/json";
	}
	if (rp->allow)
		snprintf(c->allow, sizeof(c->allow), "%s", rp->allow);
	json_decref(c->headers);
	c->headers = gr_steal_ptr(rp->headers);
	c->resp_off = 0;
	c->headers_sent = false;
	c->answered = true;
	reply_clear(rp);
}

static int write_headers(struct conn *c)
{
	unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
	if (lws_add_http_common_headers(c->wsi, (unsigned)c->status, c->ctype, (lws_filepos_t)c->resp_len, &p, end))
		return -1;
	if (c->allow[0] && lws_add_http_header_by_name(c->wsi, (const unsigned char *)"allow:",
						       (const unsigned char *)c->allow, (int)strlen(c->allow), &p, end))
		return -1;
	const char *hk;
	json_t *hv;
	json_object_foreach(c->headers, hk, hv) {
		char name[128];
		const char *v = json_string_value(hv);
		if (!v || snprintf(name, sizeof(name), "%s:", hk) >= (int)sizeof(name))
			continue;
		if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)name, (const unsigned char *)v,
						(int)strlen(v), &p, end))
			return -1;
	}
	if (c->close_after && lws_add_http_header_by_token(c->wsi, WSI_TOKEN_CONNECTION,
							   (const unsigned char *)"close", 5, &p, end))
		return -1;
	if (lws_finalize_write_http_header(c->wsi, start, &p, end))
		return -1;
	c->headers_sent = true;
	return 0;
}

/* Writes the response at once (small replies outside a writeable callback:
 * upgrade refusals, early 411/413). */
static int write_response_now(struct conn *c)
{
	if (write_headers(c) < 0)
		return -1;
	if (c->resp_len == 0)
		return 0;
	size_t n = c->resp_len;
	unsigned char *buf = malloc(LWS_PRE + n);
	if (!buf)
		return -1;
	memcpy(buf + LWS_PRE, c->resp, n);
	int w = lws_write(c->wsi, buf + LWS_PRE, n, LWS_WRITE_HTTP_FINAL);
	free(buf);
	return w < (int)n ? -1 : 0;
}

/* HTTP_WRITEABLE: headers, then the body in chunks. Returns -1 to close. */
static int write_response_part(struct conn *c)
{
	if (!c->answered)
		return 0;
	if (!c->headers_sent) {
		if (write_headers(c) < 0)
			return -1;
		if (c->resp_len > 0) {
			lws_callback_on_writable(c->wsi);
			return 0;
		}
	} else {
		size_t n = c->resp_len - c->resp_off;
		if (n > RELAY_CHUNK)
			n = RELAY_CHUNK;
		unsigned char buf[LWS_PRE + RELAY_CHUNK];
		memcpy(buf + LWS_PRE, c->resp + c->resp_off, n);
		bool last = c->resp_off + n == c->resp_len;
		if (lws_write(c->wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
			return -1;
		c->resp_off += n;
		if (!last) {
			lws_callback_on_writable(c->wsi);
			return 0;
		}
	}
	bool close_after = c->close_after;
	conn_reset_request(c);
	if (close_after)
		return -1;
	return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

static void sul_timeout(lws_sorted_usec_list_t *sul);

static void deferred_poll(struct conn *c, bool timed_out);

static void pending_add(struct conn *c)
{
	struct server *srv = c->srv;
	/* Appended: pending requests are polled oldest first (the first client
	 * of an exec WebSocket gets it). */
	c->pending = true;
	c->pend_next = NULL;
	c->pend_prev = NULL;
	struct conn **pp = &srv->pending;
	while (*pp) {
		c->pend_prev = *pp;
		pp = &(*pp)->pend_next;
	}
	*pp = c;
	if (c->deferred->timeout_ms)
		lws_sul_schedule(srv->ctx, 0, &c->sul, sul_timeout, (lws_usec_t)c->deferred->timeout_ms * LWS_US_PER_MS);
	/* The answer may be ready already (the operation ended meanwhile). */
	deferred_poll(c, false);
}

static void sul_timeout(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, sul);
	deferred_poll(c, true);
}

/* Polls a deferred reply; on completion the reply is sent (HTTP) or the
 * relay attached / the WebSocket closed with the error. */
static void deferred_poll(struct conn *c, bool timed_out)
{
	if (!c->deferred)
		return;
	struct http_reply rp = { 0 };
	struct daemon *d = c->srv->d;
	bool done = c->deferred->poll(d, c->deferred->opaque, &rp, timed_out);
	if (!done && timed_out) {
		reply_clear(&rp);
		reply_error(&rp, 504, "timed out");
		done = true;
	}
	if (!done) {
		reply_clear(&rp);
		return;
	}
	deferred_free(c);
	if (c->websocket) {
		struct gr_error err = { 0 };
		if (rp.ws) {
			struct ws_relay *spec = gr_steal_ptr(rp.ws);
			if (relay_attach(c->srv, c, spec, &err) < 0) {
				c->close_status = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
				snprintf(c->close_msg, sizeof(c->close_msg), "%s", err.msg);
			}
			early_replay(c->srv, c);
			lws_rx_flow_control(c->wsi, 1);
		} else {
			early_free(c);
			const char *msg = json_string_value(json_object_get(rp.envelope, "error"));
			c->close_status = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
			snprintf(c->close_msg, sizeof(c->close_msg), "%s", msg && *msg ? msg : "no relay");
		}
		reply_clear(&rp);
		lws_callback_on_writable(c->wsi);
		return;
	}
	conn_set_response(c, &rp);
	lws_callback_on_writable(c->wsi);
}

static void poll_all_pending(struct server *srv)
{
	for (struct conn *c = srv->pending, *next; c; c = next) {
		next = c->pend_next;
		deferred_poll(c, false);
	}
}

/* ------------------------------------------------------------------ */
/* requests */

static const char *request_method(struct lws *wsi)
{
	static const struct {
		enum lws_token_indexes tok;
		const char *name;
	} methods[] = {
		{ WSI_TOKEN_GET_URI, "GET" },       { WSI_TOKEN_POST_URI, "POST" },
		{ WSI_TOKEN_PUT_URI, "PUT" },       { WSI_TOKEN_PATCH_URI, "PATCH" },
		{ WSI_TOKEN_DELETE_URI, "DELETE" }, { WSI_TOKEN_OPTIONS_URI, "OPTIONS" },
		{ WSI_TOKEN_HEAD_URI, "HEAD" },
	};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (lws_hdr_total_length(wsi, methods[i].tok) > 0)
			return methods[i].name;
	return NULL;
}

/* The request's path (decoded by lws), malloc'd. */
static char *method_uri(struct lws *wsi, const char *method)
{
	enum lws_token_indexes tok = strcmp(method, "GET") == 0      ? WSI_TOKEN_GET_URI
				     : strcmp(method, "POST") == 0   ? WSI_TOKEN_POST_URI
				     : strcmp(method, "PUT") == 0    ? WSI_TOKEN_PUT_URI
				     : strcmp(method, "PATCH") == 0  ? WSI_TOKEN_PATCH_URI
				     : strcmp(method, "DELETE") == 0 ? WSI_TOKEN_DELETE_URI
				     : strcmp(method, "OPTIONS") == 0 ? WSI_TOKEN_OPTIONS_URI
								      : WSI_TOKEN_HEAD_URI;
	int n = lws_hdr_total_length(wsi, tok);
	char *p = n > 0 ? malloc((size_t)n + 1) : NULL;
	if (p && lws_hdr_copy(wsi, p, n + 1, tok) < 0) {
		free(p);
		p = NULL;
	}
	return p;
}

static void append_encoded(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		if (*len + 4 > *cap) {
			size_t nc = *cap ? *cap * 2 : 64;
			char *p = realloc(*out, nc);
			if (!p)
				return;
			*out = p;
			*cap = nc;
		}
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || ch == '.' || ch == '~' || ch == ',') {
			(*out)[(*len)++] = (char)ch;
		} else {
			(*out)[(*len)++] = '%';
			(*out)[(*len)++] = hex[ch >> 4];
			(*out)[(*len)++] = hex[ch & 15];
		}
	}
}

/* The raw query string, rebuilt from lws' decoded fragments with each key
 * and value percent-encoded again. */
static char *request_query(struct lws *wsi)
{
	int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
	char *out = NULL;
	size_t len = 0, cap = 0;
	if (total > 0) {
		char *frag = malloc((size_t)total + 1);
		for (int i = 0; frag; i++) {
			int n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
			if (n < 0)
				break;
			if (len) {
				if (len + 2 > cap) {
					char *p = realloc(out, cap * 2 + 2);
					if (!p)
						break;
					out = p;
					cap = cap * 2 + 2;
				}
				out[len++] = '&';
			}
			char *eq = memchr(frag, '=', (size_t)n);
			if (eq) {
				append_encoded(&out, &len, &cap, frag, (size_t)(eq - frag));
				if (len + 2 > cap) {
					char *p = realloc(out, cap * 2 + 2);
					if (!p)
						break;
					out = p;
					cap = cap * 2 + 2;
				}
				out[len++] = '=';
				append_encoded(&out, &len, &cap, eq + 1, (size_t)(n - (eq + 1 - frag)));
			} else {
				append_encoded(&out, &len, &cap, frag, (size_t)n);
			}
		}
		free(frag);
	}
	char *res = malloc(len + 1);
	if (res) {
		if (len)
			memcpy(res, out, len);
		res[len] = '\0';
	}
	free(out);
	return res;
}

/* TLS clients: Authorization: Bearer TOKEN, checked against the store. */
static bool authorized(struct conn *c, struct http_reply *rp)
{
	if (c->trusted)
		return true;
	char auth[512];
	int n = lws_hdr_copy(c->wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n <= 0) {
		reply_error(rp, 403, "not authorized: send 'Authorization: Bearer TOKEN' (make a token with "
				     "POST /1.0/tokens over the unix socket)");
		return false;
	}
	const char *tok = auth;
	if (strncasecmp(tok, "Bearer ", 7) != 0) {
		reply_error(rp, 403, "not authorized: the Authorization header must be 'Bearer TOKEN'");
		return false;
	}
	tok += 7;
	while (*tok == ' ')
		tok++;
	struct gr_error err = { 0 };
	struct store *st = c->srv->d->store;
	if (!st || store_token_check(st, tok, &err) < 0) {
		reply_error(rp, 403, "not authorized: unknown token");
		return false;
	}
	return true;
}

int http_header_get(const struct http_request *rq, const char *name, char *buf, size_t len)
{
	const struct conn *c = rq->conn;
	char key[128];
	size_t n = strlen(name);
	if (!c || !c->wsi || n == 0 || n + 2 > sizeof(key) || len == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		key[i] = (char)tolower((unsigned char)name[i]);
	key[n] = ':';
	key[n + 1] = '\0';
	int vlen = lws_hdr_custom_length(c->wsi, key, (int)n + 1);
	if (vlen < 0)
		return 0;
	if ((size_t)vlen + 1 > len)
		return -E2BIG;
	if (lws_hdr_custom_copy(c->wsi, buf, (int)len, key, (int)n + 1) < 0)
		return 0;
	return 1;
}

/* The largest body the route of method + path takes. */
static size_t route_body_max(const char *method, const char *path)
{
	gr_autofree char *pb = strdup(path);
	const struct route *r = NULL;
	const char *args[4];
	char allow[64];
	if (pb && route_lookup(route_tables, method, pb, &r, args, allow, sizeof(allow)) == 0 && r->max_body)
		return r->max_body;
	return API_MAX_BODY;
}

/* Routes the request and runs its handler; the reply ends up in rp. */
static void dispatch(struct conn *c, struct http_reply *rp)
{
	struct daemon *d = c->srv->d;
	if (!authorized(c, rp))
		return;
	struct http_request rq = {
		.method = c->method,
		.path = c->path,
		.query = c->query ? c->query : "",
		.body = c->body ? c->body : "",
		.body_len = c->body_len,
		.websocket = c->websocket,
		.trusted_socket = c->trusted,
		.conn = c,
	};
	gr_autofree char *pb = strdup(c->path);
	if (!pb) {
		reply_error(rp, 500, "out of memory");
		return;
	}
	const struct route *r = NULL;
	char allow[64];
	int rc = route_lookup(route_tables, c->method, pb, &r, rq.route_args, allow, sizeof(allow));
	if (rc == -ENOENT) {
		reply_error(rp, 404, "not found: %s", c->path);
		return;
	}
	if (rc == -EOPNOTSUPP) {
		reply_error(rp, 405, "method %s not allowed on %s (allowed: %s)", c->method, c->path, allow);
		snprintf(c->allow, sizeof(c->allow), "%s", allow);
		return;
	}
	/* Logged without the secret of an exec WebSocket. */
	const char *sec = strstr(rq.query, "secret=");
	gr_debug("%s %s%s%.*s%s", c->method, c->path, rq.query[0] ? "?" : "",
		 sec ? (int)(sec - rq.query) : (int)strlen(rq.query), rq.query, sec ? "secret=..." : "");
	r->fn(d, &rq, rp);
	if (rp->ws && !c->websocket) {
		relay_spec_drop(rp->ws);
		rp->ws = NULL;
		reply_clear(rp);
		reply_error(rp, 400, "%s needs a WebSocket upgrade", c->path);
	}
}

/* A plain HTTP request whose body (if any) is complete. */
static int handle_http(struct conn *c)
{
	struct http_reply rp = { 0 };
	if (c->body_too_big) {
		reply_error(&rp, 413, "request body too large (limit %zu bytes)", c->body_max);
		conn_set_response(c, &rp);
		lws_callback_on_writable(c->wsi);
		return 0;
	}
	dispatch(c, &rp);
	if (rp.deferred) {
		c->deferred = gr_steal_ptr(rp.deferred);
		reply_clear(&rp);
		lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
		pending_add(c);
		return 0;
	}
	conn_set_response(c, &rp);
	lws_callback_on_writable(c->wsi);
	return 0;
}

static int start_request(struct conn *c, const char *method, const char *path, bool websocket)
{
	conn_reset_request(c);
	snprintf(c->method, sizeof(c->method), "%s", method);
	c->path = strdup(path && *path ? path : "/");
	c->query = request_query(c->wsi);
	c->websocket = websocket;
	return c->path && c->query ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* the callback */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void)user;
	struct server *srv = g_srv;
	struct conn *c;

	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (srv)
			poll_all_pending(srv);
		return 0;

	case LWS_CALLBACK_RAW_RX_FILE: {
		/* The relays' epoll descriptor. */
		struct epoll_event evs[64];
		int n = epoll_wait(srv->epfd, evs, 64, 0);
		for (int i = 0; i < n; i++) {
			struct relay_fd *rf = evs[i].data.ptr;
			struct relay *r = rf->r;
			if (rf == &r->dst) {
				if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
					r->in_off = r->in_len;
					relay_close_fd(srv, rf);
				}
				relay_flush_dst(srv, r);
			} else if (rf->watched) {
				relay_read_source(srv, r, rf);
			}
		}
		return 0;
	}
	case LWS_CALLBACK_RAW_CLOSE_FILE:
	case LWS_CALLBACK_RAW_ADOPT_FILE:
		return 0;

	case LWS_CALLBACK_HTTP: {
		c = conn_get(srv, wsi);
		if (!c)
			return -1;
		const char *method = request_method(wsi);
		if (!method || start_request(c, method, in, false) < 0)
			return -1;
		char cl[32];
		bool has_cl = lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
		unsigned long long clen = has_cl ? strtoull(cl, NULL, 10) : 0;
		bool body_method = !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
		struct http_reply rp = { 0 };
		if (body_method && !has_cl) {
			if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
				reply_error(&rp, 411, "Content-Length is required (chunked request bodies are not accepted)");
				c->close_after = true;
				conn_set_response(c, &rp);
				write_response_now(c);
				return -1;
			}
			/* No length and no transfer coding: an empty body (RFC 9112
			 * 6.3). lws would take what follows as body, so the
			 * connection ends with this reply. */
			c->close_after = true;
			return handle_http(c);
		}
		c->body_max = route_body_max(method, c->path);
		if (clen > c->body_max && clen > DISCARD_MAX) {
			reply_error(&rp, 413, "request body too large (limit %zu bytes)", c->body_max);
			c->close_after = true;
			conn_set_response(c, &rp);
			write_response_now(c);
			return -1;
		}
		if (clen > c->body_max)
			c->body_too_big = true;
		/* lws delivers the body (HTTP_BODY ... HTTP_BODY_COMPLETION) when
		 * there is one; a POST with an explicit length 0 gets those too. */
		if (clen > 0 || (has_cl && !strcmp(method, "POST")))
			return 0;
		return handle_http(c);
	}
	case LWS_CALLBACK_HTTP_BODY:
		c = lws_get_opaque_user_data(wsi);
		if (!c || c->body_too_big || len == 0)
			return 0;
		if (c->body_len + len > c->body_max) {
			c->body_too_big = true;
			return 0;
		}
		if (c->body_len + len + 1 > c->body_cap) {
			size_t cap = c->body_cap ? c->body_cap : 4096;
			while (cap < c->body_len + len + 1)
				cap *= 2;
			char *nb = realloc(c->body, cap);
			if (!nb)
				return -1;
			c->body = nb;
			c->body_cap = cap;
		}
		memcpy(c->body + c->body_len, in, len);
		c->body_len += len;
		c->body[c->body_len] = '\0';
		return 0;

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		c = lws_get_opaque_user_data(wsi);
		if (!c)
			return -1;
		return handle_http(c);

	case LWS_CALLBACK_HTTP_WRITEABLE:
		c = lws_get_opaque_user_data(wsi);
		if (!c)
			return 0;
		return write_response_part(c);

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
		c = conn_get(srv, wsi);
		if (!c)
			return -1;
		const char *method = request_method(wsi);
		struct http_reply rp = { 0 };
		gr_autofree char *uri = method ? method_uri(wsi, method) : NULL;
		if (!method || !uri || start_request(c, method, uri, true) < 0)
			return -1;
		if (strcasecmp((const char *)in, "websocket") != 0) {
			reply_error(&rp, 400, "unsupported upgrade '%s'", (const char *)in);
		} else {
			dispatch(c, &rp);
			if (rp.ws) {
				c->relay_spec = gr_steal_ptr(rp.ws);
				reply_clear(&rp);
				return 0;
			}
			if (rp.deferred) {
				c->deferred = gr_steal_ptr(rp.deferred);
				reply_clear(&rp);
				return 0;
			}
			const char *type = json_string_value(json_object_get(rp.envelope, "type"));
			if (!type || strcmp(type, "error") != 0) {
				reply_clear(&rp);
				reply_error(&rp, 400, "%s does not accept a WebSocket upgrade", c->path);
			}
		}
		c->websocket = false;
		conn_set_response(c, &rp);
		if (write_response_now(c) < 0)
			return -1;
		conn_reset_request(c);
		return 1;
	}

	case LWS_CALLBACK_ESTABLISHED:
		c = lws_get_opaque_user_data(wsi);
		if (!c)
			return -1;
		if (c->relay_spec) {
			struct gr_error err = { 0 };
			struct ws_relay *spec = gr_steal_ptr(c->relay_spec);
			if (relay_attach(srv, c, spec, &err) < 0) {
				c->close_status = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
				snprintf(c->close_msg, sizeof(c->close_msg), "%s", err.msg);
				lws_callback_on_writable(wsi);
			}
		} else if (c->deferred) {
			lws_rx_flow_control(wsi, 0);
			pending_add(c);
		}
		return 0;

	case LWS_CALLBACK_RECEIVE:
		c = lws_get_opaque_user_data(wsi);
		if (!c)
			return 0;
		if (c->relay) {
			relay_receive(srv, c->relay, in, len, ws_msg_end(wsi));
		} else if (c->deferred && !c->close_status) {
			/* Accepted, relay not attached yet (its process is starting). */
			if (!early_keep(c, in, len, ws_msg_end(wsi))) {
				early_free(c);
				c->close_status = LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
				snprintf(c->close_msg, sizeof(c->close_msg),
					 "more than %d KiB of input before the process started", EARLY_MAX / 1024);
				lws_callback_on_writable(wsi);
			}
		}
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE: {
		c = lws_get_opaque_user_data(wsi);
		if (!c)
			return -1;
		if (c->close_status) {
			lws_close_reason(wsi, (enum lws_close_status)c->close_status, (unsigned char *)c->close_msg,
					 strlen(c->close_msg));
			return -1;
		}
		struct relay *r = c->relay;
		if (!r)
			return 0;
		struct frame *f = r->head;
		if (f) {
			r->head = f->next;
			if (!r->head)
				r->tail = NULL;
			r->queued -= f->len;
			int w = lws_write(wsi, f->data + LWS_PRE, f->len, f->type);
			free(f);
			if (w < 0)
				return -1;
			if (r->paused && r->queued < RELAY_LOW)
				relay_resume_sources(srv, r);
		}
		if (r->head) {
			lws_callback_on_writable(wsi);
		} else if (r->finishing) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
			return -1;
		}
		return 0;
	}

	case LWS_CALLBACK_CLOSED:
		c = lws_get_opaque_user_data(wsi);
		if (c) {
			relay_free(srv, c->relay);
			c->relay = NULL;
			early_free(c);
			deferred_free(c);
		}
		return 0;

	case LWS_CALLBACK_CLOSED_HTTP:
		c = lws_get_opaque_user_data(wsi);
		if (c)
			deferred_free(c);
		return 0;

	case LWS_CALLBACK_WSI_DESTROY:
		c = lws_get_opaque_user_data(wsi);
		if (c && srv && c->srv == srv) {
			lws_set_opaque_user_data(wsi, NULL);
			conn_free(c);
		}
		return 0;

	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{ "gureum", callback, 0, 64 * 1024, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* ------------------------------------------------------------------ */
/* start, run, stop */

/* A socket file at path: a live daemon answers on it (refused), a stale one
 * is removed, anything else is refused. */
static int check_socket_path(const char *path, struct gr_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : gr_error_sys(err, errno, "cannot inspect %s", path);
	if (!S_ISSOCK(st.st_mode))
		return gr_error_set(err, EEXIST, "%s exists and is not a socket; remove it", path);
	gr_autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return gr_error_sys(err, errno, "socket");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return gr_error_set(err, EADDRINUSE, "%s is in use by a running server", path);
	if (errno != ECONNREFUSED && errno != ENOENT)
		return gr_error_sys(err, errno, "cannot check %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return gr_error_sys(err, errno, "cannot remove the stale socket %s", path);
	gr_info("gureumd: removed the stale socket %s", path);
	return 0;
}

/* "ADDR:PORT", "[V6ADDR]:PORT" or ":PORT" (every address). */
static int parse_listen(const char *s, char *addr, size_t alen, int *port, bool *v6, struct gr_error *err)
{
	const char *colon;
	*v6 = false;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return gr_error_set(err, EINVAL, "--listen %s: expected [ADDRESS]:PORT", s);
		if ((size_t)(close - s - 1) >= alen)
			return gr_error_set(err, EINVAL, "--listen %s: address too long", s);
		memcpy(addr, s + 1, (size_t)(close - s - 1));
		addr[close - s - 1] = '\0';
		colon = close + 1;
		*v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return gr_error_set(err, EINVAL, "--listen %s: expected ADDRESS:PORT", s);
		if ((size_t)(colon - s) >= alen)
			return gr_error_set(err, EINVAL, "--listen %s: address too long", s);
		memcpy(addr, s, (size_t)(colon - s));
		addr[colon - s] = '\0';
	}
	uint64_t p;
	if (gr_parse_u64(colon + 1, &p) < 0 || p == 0 || p > 65535)
		return gr_error_set(err, EINVAL, "--listen %s: port must be 1-65535", s);
	*port = (int)p;
	unsigned char buf[16];
	if (addr[0] && inet_pton(*v6 ? AF_INET6 : AF_INET, addr, buf) != 1)
		return gr_error_set(err, EINVAL, "--listen %s: '%s' is not an IP%s address", s, addr, *v6 ? "v6" : "v4");
	return 0;
}

int server_start(struct daemon *d, struct gr_error *err)
{
	struct server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return gr_error_set(err, ENOMEM, "cannot allocate the server");
	srv->d = d;
	srv->epfd = -1;
	int rc;
	char addr[64] = "";
	int port = 0;
	bool v6 = false;
	gr_autofree char *crt = NULL, *key = NULL;

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
	snprintf(srv->sock_path, sizeof(srv->sock_path), "%s/gureum.sock", d->env.run_dir);
	if (strlen(srv->sock_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		rc = gr_error_set(err, ENAMETOOLONG, "socket path %s is too long for a unix socket", srv->sock_path);
		goto fail;
	}
	if (d->listen) {
		if ((rc = parse_listen(d->listen, addr, sizeof(addr), &port, &v6, err)) < 0)
			goto fail;
		if ((rc = tls_ensure_cert(d->env.state_dir, &crt, &key, srv->fingerprint, sizeof(srv->fingerprint),
					  err)) < 0)
			goto fail;
	}
	if ((rc = check_socket_path(srv->sock_path, err)) < 0)
		goto fail;

	struct lws_context_creation_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | (d->listen ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
	ci.gid = -1;
	ci.uid = -1;
	g_srv = srv;
	srv->ctx = lws_create_context(&ci);
	if (!srv->ctx) {
		rc = gr_error_set(err, EIO, "cannot create the libwebsockets context");
		goto fail;
	}

	struct lws_context_creation_info vi;
	memset(&vi, 0, sizeof(vi));
	vi.vhost_name = "unix";
	vi.iface = srv->sock_path;
	vi.port = 0;
	vi.protocols = protocols;
	vi.options = LWS_SERVER_OPTION_UNIX_SOCK | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	mode_t old = umask(0177);
	srv->unix_vh = lws_create_vhost(srv->ctx, &vi);
	umask(old);
	if (!srv->unix_vh) {
		rc = gr_error_set(err, EADDRINUSE, "cannot listen on %s", srv->sock_path);
		goto fail;
	}
	if (chmod(srv->sock_path, 0600) < 0) {
		rc = gr_error_sys(err, errno, "cannot chmod %s", srv->sock_path);
		goto fail;
	}

	if (d->listen) {
		memset(&vi, 0, sizeof(vi));
		vi.vhost_name = "tls";
		vi.iface = addr[0] ? addr : NULL;
		vi.port = port;
		vi.protocols = protocols;
		vi.ssl_cert_filepath = crt;
		vi.ssl_private_key_filepath = key;
		vi.alpn = "http/1.1";
		vi.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
			     (v6 ? 0 : LWS_SERVER_OPTION_DISABLE_IPV6);
		srv->tls_vh = lws_create_vhost(srv->ctx, &vi);
		if (!srv->tls_vh) {
			rc = gr_error_set(err, EADDRINUSE, "cannot listen on %s (address in use or not available)", d->listen);
			goto fail;
		}
	}

	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0) {
		rc = gr_error_sys(err, errno, "epoll_create1");
		goto fail;
	}
	lws_sock_file_fd_type fdt;
	fdt.filefd = srv->epfd;
	if (!lws_adopt_descriptor_vhost(srv->unix_vh, LWS_ADOPT_RAW_FILE_DESC, fdt, "gureum", NULL)) {
		rc = gr_error_set(err, EIO, "cannot watch the relays' epoll descriptor");
		goto fail;
	}
	d->server = srv;
	server_wake_set_context(srv->ctx);
	if (d->listen)
		gr_info("gureumd: API on https://%s (certificate SHA-256 %s)", d->listen, srv->fingerprint);
	return 0;

fail:
	if (srv->ctx)
		lws_context_destroy(srv->ctx);
	else if (srv->epfd >= 0)
		close(srv->epfd);
	g_srv = NULL;
	free(srv);
	return rc;
}

int server_run(struct daemon *d)
{
	struct server *srv = d->server;
	while (!d->stopping)
		if (lws_service(srv->ctx, 0) < 0)
			return -EIO;
	return 0;
}

void server_stop(struct daemon *d)
{
	struct server *srv = d->server;
	if (!srv)
		return;
	server_wake_set_context(NULL);
	/* Closes every connection (relays call their closed()) and the
	 * adopted epoll descriptor. */
	lws_context_destroy(srv->ctx);
	srv->ctx = NULL;
	unlink(srv->sock_path);
	d->server = NULL;
	g_srv = NULL;
	free(srv);
}

const char *server_tls_fingerprint(struct daemon *d)
{
	return d->server && d->server->fingerprint[0] ? d->server->fingerprint : NULL;
}
