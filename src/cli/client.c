/* gureumd's REST client for the CLI (client.h), over libwebsockets' client:
 * HTTP requests and WebSocket sessions, on the unix socket ("+/path", lws
 * 4.1's unix-socket client address) or TLS with the server's certificate
 * pinned. */
#include "cli/client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/format.h"
#include "common/cleanup.h"

#define MAX_BODY (64u << 20)   /* a log can be large; the API's own limit is 1 MiB */
#define MAX_WATCH 4
#define BODY_CHUNK (64u << 10)  /* request bodies are written in pieces of this size */
#define WAIT_SLICE 15           /* seconds per /wait request */
/* Local input is not read while more than QUEUE_HIGH bytes wait to be sent,
 * and read again below QUEUE_LOW (a fast stdin, a slow daemon). */
#define QUEUE_HIGH (1u << 20)
#define QUEUE_LOW (256u << 10)

enum conn_kind { CONN_HTTP, CONN_WS };

struct frame {
	struct frame *next;
	size_t len;
	bool binary;
	unsigned char buf[];    /* LWS_PRE + len */
};

/* One request or session; also the struct gr_ws handed to callbacks. */
struct gr_ws {
	struct gr_client *client;
	enum conn_kind kind;
	struct lws *wsi;
	bool done;
	bool failed;
	int fail_code;
	char fail_msg[GR_ERROR_MSG_MAX];

	/* HTTP */
	const char *method;
	const char *body;
	size_t body_len, body_off;
	bool body_sent;
	const struct gr_http_extra *extra;   /* gr_client_http_ex: body type, headers */
	struct gr_response *resp;
	size_t cap;

	/* WebSocket */
	const struct gr_ws_ops *ops;
	bool established;
	bool closing;
	bool server_closed;
	int upgrade_status;
	struct frame *head, *tail;
	size_t queued;          /* bytes in the frames */
	int active_watch;       /* the watch whose on_fd runs, or -1 */
	unsigned char *msg;
	size_t msg_len, msg_cap;
	bool msg_binary;
	struct {
		int fd;         /* the caller's */
		struct lws *wsi;
		bool unwatched;
		bool paused;
	} watch[MAX_WATCH];
	size_t nwatch;
};

struct gr_client {
	struct lws_context *ctx;
	bool tls;
	char address[sizeof(((struct sockaddr_un *)0)->sun_path) + 2]; /* "+/path" or a host name */
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char host[256];
	int port;
	char target[512];
	char *token;
	bool have_pin;
	unsigned char pin[32];
	struct gr_ws *cur;
};

static struct gr_ws *conn_of(struct lws *wsi)
{
	return lws_get_opaque_user_data(wsi);
}

static void conn_fail(struct gr_ws *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void conn_fail(struct gr_ws *c, int code, const char *fmt, ...)
{
	if (c->failed)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
	va_end(ap);
	c->failed = true;
	c->fail_code = code ? code : EIO;
	c->done = true;
}

/* lws says only "connect failed"; a plain connect() gives the reason. */
static int probe_errno(struct gr_client *cl)
{
	if (cl->tls) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
		char port[16];
		snprintf(port, sizeof(port), "%d", cl->port);
		int g = getaddrinfo(cl->host, port, &hints, &res);
		if (g != 0)
			return g == EAI_SYSTEM ? errno : EHOSTUNREACH;
		int e = ECONNRESET;
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			int tfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (tfd < 0) {
				e = errno;
				continue;
			}
			int rc = connect(tfd, ai->ai_addr, ai->ai_addrlen);
			e = rc < 0 ? errno : ECONNRESET;
			close(tfd);
			if (rc == 0)
				break;
		}
		freeaddrinfo(res);
		return e;
	}
	gr_autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cl->socket_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return errno;
	return ECONNRESET; /* it answers now, but it did not */
}

static void connection_error(struct gr_ws *c, const char *why)
{
	struct gr_client *cl = c->client;
	if (c->kind == CONN_WS && c->upgrade_status && c->upgrade_status != 101) {
		conn_fail(c, EPROTO, "the WebSocket upgrade was refused with HTTP status %d", c->upgrade_status);
		return;
	}
	int e = probe_errno(cl);
	if (cl->tls && e == ECONNRESET) {
		/* TCP works: TLS or the handshake failed. */
		conn_fail(c, EPROTO, "cannot talk to gureumd at %s: %s", cl->target,
			  why && *why ? why : "the TLS handshake failed");
		return;
	}
	conn_fail(c, e, "cannot reach gureumd at %s: %s (is gureumd running?)", cl->target, strerror(e));
}

static int append(struct gr_ws *c, const void *data, size_t len)
{
	struct gr_response *r = c->resp;
	if (r->len + len > MAX_BODY) {
		conn_fail(c, EFBIG, "the response from gureumd is larger than %u bytes", MAX_BODY);
		return -1;
	}
	if (r->len + len + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < r->len + len + 1)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (!b) {
			conn_fail(c, ENOMEM, "out of memory");
			return -1;
		}
		r->body = b;
		c->cap = cap;
	}
	memcpy(r->body + r->len, data, len);
	r->len += len;
	r->body[r->len] = '\0';
	return 0;
}

static int add_headers(struct gr_ws *c, struct lws *wsi, unsigned char **p, unsigned char *end)
{
	struct gr_client *cl = c->client;
	if (cl->token) {
		char auth[1024];
		int n = snprintf(auth, sizeof(auth), "Bearer %s", cl->token);
		if (n < 0 || (size_t)n >= sizeof(auth) ||
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
						 (unsigned char *)auth, n, p, end))
			return -1;
	}
	if (c->kind == CONN_HTTP && c->extra && c->extra->headers) {
		for (const char *const *h = c->extra->headers; h[0] && h[1]; h += 2) {
			char name[128];
			if (snprintf(name, sizeof(name), "%s:", h[0]) >= (int)sizeof(name) ||
			    lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)h[1],
							(int)strlen(h[1]), p, end))
				return -1;
		}
	}
	if (c->kind == CONN_HTTP && c->body) {
		char len[32];
		int n = snprintf(len, sizeof(len), "%zu", c->body_len);
		const char *type = !c->extra ? "application/json"
				   : c->extra->content_type ? c->extra->content_type : "application/octet-stream";
		if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
						 (const unsigned char *)type, (int)strlen(type), p, end) ||
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
						 (unsigned char *)len, n, p, end))
			return -1;
		lws_client_http_body_pending(wsi, 1);
		lws_callback_on_writable(wsi);
	}
	return 0;
}

static int verify_pin(struct gr_client *cl, X509_STORE_CTX *store)
{
	/* The chain's other certificates do not matter: the leaf (depth 0)
	 * is compared with the pinned one. */
	if (X509_STORE_CTX_get_error_depth(store) > 0) {
		X509_STORE_CTX_set_error(store, X509_V_OK);
		return 0;
	}
	X509 *cert = X509_STORE_CTX_get_current_cert(store);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!cert || !X509_digest(cert, EVP_sha256(), md, &mdlen) || mdlen != sizeof(cl->pin) ||
	    memcmp(md, cl->pin, sizeof(cl->pin)) != 0) {
		if (cl->cur) {
			char hex[3 * 32 + 1] = "";
			for (unsigned int i = 0; i < mdlen && i < 32; i++)
				snprintf(hex + 3 * i, sizeof(hex) - 3 * i, "%02x%s", md[i], i + 1 < mdlen ? ":" : "");
			conn_fail(cl->cur, EACCES,
				  "the certificate of %s does not match --accept-certificate "
				  "(it is SHA-256 %s)", cl->target, hex);
		}
		return 1;
	}
	X509_STORE_CTX_set_error(store, X509_V_OK);
	return 0;
}

static void free_frames(struct gr_ws *c)
{
	while (c->head) {
		struct frame *f = c->head;
		c->head = f->next;
		free(f);
	}
	c->tail = NULL;
}

static int watch_index(struct gr_ws *c, struct lws *wsi)
{
	for (size_t i = 0; i < c->nwatch; i++)
		if (c->watch[i].wsi == wsi)
			return (int)i;
	return -1;
}

static int callback_fd(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void)user; (void)in; (void)len;
	struct gr_client *cl = lws_context_user(lws_get_context(wsi));
	struct gr_ws *c = cl ? cl->cur : NULL;
	int i;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (!c || (i = watch_index(c, wsi)) < 0)
			return -1;
		c->active_watch = i;
		if (!c->watch[i].unwatched && c->ops->on_fd &&
		    c->ops->on_fd(c, c->watch[i].fd, c->ops->user) < 0 && !c->failed)
			conn_fail(c, EIO, "reading a local descriptor failed");
		c->active_watch = -1;
		if (c->watch[i].unwatched || c->done) {
			c->watch[i].wsi = NULL;
			return -1;
		}
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (!c || (i = watch_index(c, wsi)) < 0)
			return 0;
		c->watch[i].wsi = NULL;
		/* A hang-up (a pipe's writer closed) closes the watch without
		 * a read: let the owner read what is left and the end, as a
		 * readable descriptor would have. */
		while (!c->watch[i].unwatched && !c->done && c->ops->on_fd)
			if (c->ops->on_fd(c, c->watch[i].fd, c->ops->user) < 0) {
				if (!c->failed)
					conn_fail(c, EIO, "reading a local descriptor failed");
				break;
			}
		return 0;
	default:
		return 0;
	}
}

static int ws_write_one(struct gr_ws *c, struct lws *wsi)
{
	struct frame *f = c->head;
	if (!f)
		return 0;
	int n = lws_write(wsi, f->buf + LWS_PRE, f->len, f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
	if (n < (int)f->len) {
		conn_fail(c, EIO, "sending to gureumd failed");
		return -1;
	}
	c->head = f->next;
	if (!c->head)
		c->tail = NULL;
	c->queued -= f->len;
	free(f);
	if (c->queued < QUEUE_LOW)
		for (size_t i = 0; i < c->nwatch; i++)
			if (c->watch[i].paused) {
				c->watch[i].paused = false;
				if (c->watch[i].wsi)
					lws_rx_flow_control(c->watch[i].wsi, 1);
			}
	return 0;
}

static int callback_client(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void)user;
	struct gr_client *cl = lws_context_user(lws_get_context(wsi));
	struct gr_ws *c;

	if (reason == LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION) {
		if (cl && cl->have_pin)
			return verify_pin(cl, (X509_STORE_CTX *)user);
		return 0;
	}
	c = conn_of(wsi);
	if (!c)
		return 0;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		c->wsi = NULL;
		lws_set_opaque_user_data(wsi, NULL);
		connection_error(c, in ? (const char *)in : NULL);
		return 0;

	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (add_headers(c, wsi, (unsigned char **)in, (*(unsigned char **)in) + len) < 0) {
			conn_fail(c, E2BIG, "the request headers do not fit");
			return -1;
		}
		return 0;

	case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
		if (c->kind == CONN_WS) {
			c->upgrade_status = (int)lws_http_client_http_response(wsi);
			return 0;
		}
		c->resp->status = (int)lws_http_client_http_response(wsi);
		if (lws_hdr_copy(wsi, c->resp->content_type, sizeof(c->resp->content_type),
				 WSI_TOKEN_HTTP_CONTENT_TYPE) < 0)
			c->resp->content_type[0] = '\0';
		for (size_t i = 0; c->extra && c->extra->want && c->extra->want[i]; i++) {
			char name[128];
			size_t n = 0;
			for (const char *k = c->extra->want[i]; *k && n + 2 < sizeof(name); k++)
				name[n++] = (char)tolower((unsigned char)*k);
			name[n++] = ':';
			name[n] = '\0';
			c->extra->got[i][0] = '\0';
			if (lws_hdr_custom_length(wsi, name, (int)n) < 0 ||
			    lws_hdr_custom_copy(wsi, c->extra->got[i], (int)sizeof(c->extra->got[i]), name, (int)n) < 0)
				c->extra->got[i][0] = '\0';
		}
		return 0;

	case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
		if (c->kind != CONN_HTTP || c->body_sent || !c->body)
			return 0;
		{
			/* In pieces: a large body (a file) is not copied whole. */
			size_t n = c->body_len - c->body_off;
			if (n > BODY_CHUNK)
				n = BODY_CHUNK;
			bool last = c->body_off + n == c->body_len;
			unsigned char *buf = malloc(LWS_PRE + n + 1);
			if (!buf) {
				conn_fail(c, ENOMEM, "out of memory");
				return -1;
			}
			memcpy(buf + LWS_PRE, c->body + c->body_off, n);
			if (last)
				lws_client_http_body_pending(wsi, 0);
			int w = lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
			free(buf);
			if (w < (int)n) {
				conn_fail(c, EIO, "sending the request body to gureumd failed");
				return -1;
			}
			c->body_off += n;
			if (last)
				c->body_sent = true;
			else
				lws_callback_on_writable(wsi);
		}
		return 0;

	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
		char buffer[16384 + LWS_PRE];
		char *px = buffer + LWS_PRE;
		int lenx = (int)sizeof(buffer) - LWS_PRE;
		if (lws_http_client_read(wsi, &px, &lenx) < 0)
			return -1;
		return 0;
	}
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		if (c->kind == CONN_HTTP && append(c, in, len) < 0)
			return -1;
		return 0;

	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
		c->done = true;
		c->wsi = NULL;
		lws_set_opaque_user_data(wsi, NULL);
		return -1; /* one request per connection */

	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		c->wsi = NULL;
		lws_set_opaque_user_data(wsi, NULL);
		if (!c->done)
			conn_fail(c, ECONNRESET, "gureumd closed the connection before answering");
		return 0;

	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->established = true;
		if (c->ops->on_open && c->ops->on_open(c, c->ops->user) < 0) {
			if (!c->failed)
				conn_fail(c, EIO, "the session could not start");
			return -1;
		}
		if (c->head || c->closing)
			lws_callback_on_writable(wsi);
		return 0;

	case LWS_CALLBACK_CLIENT_RECEIVE: {
		if (lws_is_first_fragment(wsi)) {
			c->msg_len = 0;
			c->msg_binary = lws_frame_is_binary(wsi);
		}
		if (c->msg_len + len > MAX_BODY) {
			conn_fail(c, EFBIG, "a WebSocket message from gureumd is larger than %u bytes", MAX_BODY);
			return -1;
		}
		if (c->msg_len + len + 1 > c->msg_cap) {
			size_t cap = c->msg_cap ? c->msg_cap : 4096;
			while (cap < c->msg_len + len + 1)
				cap *= 2;
			unsigned char *m = realloc(c->msg, cap);
			if (!m) {
				conn_fail(c, ENOMEM, "out of memory");
				return -1;
			}
			c->msg = m;
			c->msg_cap = cap;
		}
		memcpy(c->msg + c->msg_len, in, len);
		c->msg_len += len;
		c->msg[c->msg_len] = '\0';
		if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
			return 0;
		size_t n = c->msg_len;
		c->msg_len = 0;
		if (c->ops->on_message && c->ops->on_message(c, c->msg, n, c->msg_binary, c->ops->user) < 0) {
			if (!c->failed)
				conn_fail(c, EIO, "handling a message from gureumd failed");
			return -1;
		}
		if (c->done)
			return -1;
		return 0;
	}
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (ws_write_one(c, wsi) < 0)
			return -1;
		if (c->head) {
			lws_callback_on_writable(wsi);
			return 0;
		}
		if (c->closing) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
			return -1;
		}
		return 0;

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		c->server_closed = true;
		return 0;

	case LWS_CALLBACK_CLIENT_CLOSED:
		c->wsi = NULL;
		lws_set_opaque_user_data(wsi, NULL);
		if (!c->closing)
			c->server_closed = true;
		c->done = true;
		return 0;

	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{ .name = "gureum-client", .callback = callback_client, .rx_buffer_size = 65536 },
	{ .name = "gureum-fd", .callback = callback_fd },
	{ 0 }
};

static int parse_remote(struct gr_client *cl, const char *url, struct gr_error *err)
{
	if (strncmp(url, "https://", 8) != 0)
		return gr_error_set(err, EINVAL, "--remote %s: expected https://HOST:PORT", url);
	const char *h = url + 8, *end = h + strcspn(h, "/");
	if (*end && strcmp(end, "/") != 0)
		return gr_error_set(err, EINVAL, "--remote %s: expected https://HOST:PORT without a path", url);
	const char *colon;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (!rb)
			return gr_error_set(err, EINVAL, "--remote %s: unterminated IPv6 address", url);
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		if ((size_t)(rb - h - 1) >= sizeof(cl->host))
			return gr_error_set(err, EINVAL, "--remote %s: the host name is too long", url);
		memcpy(cl->host, h + 1, (size_t)(rb - h - 1));
		cl->host[rb - h - 1] = '\0';
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		const char *hend = colon ? colon : end;
		if (hend == h || (size_t)(hend - h) >= sizeof(cl->host))
			return gr_error_set(err, EINVAL, "--remote %s: a host name is needed", url);
		memcpy(cl->host, h, (size_t)(hend - h));
		cl->host[hend - h] = '\0';
	}
	cl->port = 8443;
	if (colon) {
		char port[16];
		size_t pl = (size_t)(end - colon - 1);
		if (pl == 0 || pl >= sizeof(port))
			return gr_error_set(err, EINVAL, "--remote %s: bad port", url);
		memcpy(port, colon + 1, pl);
		port[pl] = '\0';
		long v;
		int r = cli_parse_long(port, "--remote port", 1, 65535, &v, err);
		if (r < 0)
			return r;
		cl->port = (int)v;
	}
	snprintf(cl->address, sizeof(cl->address), "%s", cl->host);
	snprintf(cl->target, sizeof(cl->target), "https://%s:%d", cl->host, cl->port);
	return 0;
}

static int parse_fingerprint(struct gr_client *cl, const char *s, struct gr_error *err)
{
	size_t n = 0;
	for (const char *p = s; *p;) {
		if (*p == ':') {
			p++;
			continue;
		}
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || n >= sizeof(cl->pin))
			return gr_error_set(err, EINVAL, "--accept-certificate %s: expected the certificate's "
					    "SHA-256 fingerprint (64 hex digits, ':' allowed)", s);
		char byte[3] = { p[0], p[1], 0 };
		cl->pin[n++] = (unsigned char)strtoul(byte, NULL, 16);
		p += 2;
	}
	if (n != sizeof(cl->pin))
		return gr_error_set(err, EINVAL, "--accept-certificate %s: expected the certificate's "
				    "SHA-256 fingerprint (64 hex digits, ':' allowed)", s);
	cl->have_pin = true;
	return 0;
}

/* --server-cert FILE: the certificate in FILE is pinned by its SHA-256. */
static int pin_cert_file(struct gr_client *cl, const char *path, struct gr_error *err)
{
	gr_autofclose FILE *f = fopen(path, "re");
	if (!f)
		return gr_error_sys(err, errno, "--server-cert %s", path);
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	if (!cert)
		return gr_error_set(err, EINVAL, "--server-cert %s: not a PEM certificate", path);
	unsigned int mdlen = 0;
	int ok = X509_digest(cert, EVP_sha256(), cl->pin, &mdlen);
	X509_free(cert);
	if (!ok || mdlen != sizeof(cl->pin))
		return gr_error_set(err, EIO, "--server-cert %s: cannot compute its fingerprint", path);
	cl->have_pin = true;
	return 0;
}

int gr_client_new(const struct gr_client_opts *opts, struct gr_client **out, struct gr_error *err)
{
	struct gr_client *cl = calloc(1, sizeof(*cl));
	int r;
	if (!cl)
		return gr_error_set(err, ENOMEM, "out of memory");
	if (opts->remote) {
		cl->tls = true;
		if ((r = parse_remote(cl, opts->remote, err)) < 0)
			goto fail;
		if (!opts->fingerprint && !opts->server_cert) {
			r = gr_error_set(err, EINVAL, "--remote needs the server's certificate pinned: "
					 "--accept-certificate SHA256 or --server-cert FILE "
					 "(gureumd prints the fingerprint at start)");
			goto fail;
		}
		if (opts->fingerprint && opts->server_cert) {
			r = gr_error_set(err, EINVAL, "--accept-certificate and --server-cert both pin the "
					 "server's certificate: give one");
			goto fail;
		}
		if (opts->fingerprint && (r = parse_fingerprint(cl, opts->fingerprint, err)) < 0)
			goto fail;
		if (opts->server_cert && (r = pin_cert_file(cl, opts->server_cert, err)) < 0)
			goto fail;
		if (opts->token && !(cl->token = strdup(opts->token))) {
			r = gr_error_set(err, ENOMEM, "out of memory");
			goto fail;
		}
		if (opts->token && strpbrk(opts->token, "\r\n")) {
			r = gr_error_set(err, EINVAL, "the token holds a line break");
			goto fail;
		}
	} else {
		const char *path = opts->socket_path ? opts->socket_path : GR_DEFAULT_SOCKET;
		if (!*path) {
			r = gr_error_set(err, EINVAL, "--socket: the path is empty");
			goto fail;
		}
		if (strlen(path) >= sizeof(cl->socket_path)) {
			r = gr_error_set(err, ENAMETOOLONG, "--socket %s: longer than a unix socket path may be (%zu bytes)",
					 path, sizeof(cl->socket_path) - 1);
			goto fail;
		}
		snprintf(cl->socket_path, sizeof(cl->socket_path), "%s", path);
		snprintf(cl->address, sizeof(cl->address), "+%s", path);
		snprintf(cl->target, sizeof(cl->target), "%s", path);
		snprintf(cl->host, sizeof(cl->host), "localhost");
	}

	lws_set_log_level(opts->debug ? (LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO) : 0, NULL);
	struct lws_context_creation_info info = { 0 };
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = cl;
	info.fd_limit_per_thread = 1 + 3 + MAX_WATCH + 8;
	info.timeout_secs = WAIT_SLICE + 30;
	info.connect_timeout_secs = 10;
	info.gid = -1;
	info.uid = -1;
	if (cl->tls) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
	}
	cl->ctx = lws_create_context(&info);
	if (!cl->ctx) {
		r = gr_error_set(err, ENOMEM, "cannot set up the libwebsockets client");
		goto fail;
	}
	*out = cl;
	return 0;
fail:
	gr_client_free(cl);
	return r;
}

void gr_client_free(struct gr_client *c)
{
	if (!c)
		return;
	if (c->ctx)
		lws_context_destroy(c->ctx);
	free(c->token);
	free(c);
}

const char *gr_client_target(const struct gr_client *c)
{
	return c->target;
}

void gr_response_clear(struct gr_response *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static int conn_start(struct gr_client *cl, struct gr_ws *c, const char *path)
{
	struct lws_client_connect_info i = { 0 };
	i.context = cl->ctx;
	i.address = cl->address;
	i.port = cl->tls ? cl->port : 0;
	i.path = path;
	i.host = cl->host;
	i.origin = cl->host;
	i.opaque_user_data = c;
	i.pwsi = &c->wsi;
	if (cl->tls) {
		/* The certificate is pinned (verify_pin), not found through a
		 * CA: the name in it is not what identifies the server. No
		 * ALLOW_SELFSIGNED: lws would accept a self-signed certificate
		 * without asking verify_pin. */
		i.ssl_connection = LCCSCF_USE_SSL | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
	}
	if (c->kind == CONN_HTTP) {
		i.method = c->method;
		i.protocol = protocols[0].name;
		i.alpn = "http/1.1";
	} else {
		i.local_protocol_name = protocols[0].name;
		i.alpn = "http/1.1";
	}
	cl->cur = c;
	if (!lws_client_connect_via_info(&i)) {
		if (!c->failed)
			connection_error(c, NULL);
		return -1;
	}
	return 0;
}

static void conn_loop(struct gr_client *cl, struct gr_ws *c)
{
	while (!c->done)
		if (lws_service(cl->ctx, 0) < 0)
			break;
	cl->cur = NULL;
}

static int client_http(struct gr_client *cl, const char *method, const char *path, const char *body, size_t body_len,
		       const struct gr_http_extra *extra, struct gr_response *resp, struct gr_error *err)
{
	struct gr_ws c = { .client = cl, .kind = CONN_HTTP, .active_watch = -1, .method = method, .body = body,
			   .body_len = body_len, .extra = extra, .resp = resp };
	memset(resp, 0, sizeof(*resp));
	if (conn_start(cl, &c, path) == 0)
		conn_loop(cl, &c);
	if (c.wsi) {
		lws_set_opaque_user_data(c.wsi, NULL);
		lws_set_timeout(c.wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_SYNC);
	}
	cl->cur = NULL;
	if (c.failed) {
		gr_response_clear(resp);
		return gr_error_set(err, c.fail_code, "%s", c.fail_msg);
	}
	if (!resp->body && !(resp->body = calloc(1, 1)))
		return gr_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int gr_client_http(struct gr_client *cl, const char *method, const char *path, const char *body,
		   struct gr_response *resp, struct gr_error *err)
{
	return client_http(cl, method, path, body, body ? strlen(body) : 0, NULL, resp, err);
}

int gr_client_http_ex(struct gr_client *cl, const char *method, const char *path, const struct gr_http_extra *x,
		      struct gr_response *resp, struct gr_error *err)
{
	/* A body pointer for an empty body too: a POST says Content-Length: 0. */
	const char *body = x->body ? (const char *)x->body : strcmp(method, "GET") != 0 ? "" : NULL;
	return client_http(cl, method, path, body, x->body ? x->body_len : 0, x, resp, err);
}

static int code_to_errno(long code)
{
	switch (code) {
	case 400: return EINVAL;
	case 401: case 403: return EACCES;
	case 404: return ENOENT;
	case 405: return EOPNOTSUPP;
	case 409: return EBUSY;
	case 413: return EFBIG;
	default: return EIO;
	}
}

int gr_client_call(struct gr_client *cl, const char *method, const char *path, const json_t *body,
		   json_t **envelope, struct gr_error *err)
{
	gr_autofree char *text = NULL;
	if (body && !(text = json_dumps(body, JSON_COMPACT)))
		return gr_error_set(err, ENOMEM, "out of memory");
	struct gr_response resp;
	int r = gr_client_http(cl, method, path, text, &resp, err);
	if (r < 0)
		return r;
	json_error_t jerr;
	json_t *env = json_loadb(resp.body, resp.len, 0, &jerr);
	if (!env || !json_is_object(env)) {
		r = gr_error_set(err, EPROTO, "%s %s: gureumd answered HTTP %d with %s", method, path, resp.status,
				 env ? "JSON that is not an envelope" : "a body that is not JSON");
		json_decref(env);
		gr_response_clear(&resp);
		return r;
	}
	gr_response_clear(&resp);
	*envelope = env;
	const char *type = json_string_value(json_object_get(env, "type"));
	if (type && strcmp(type, "error") == 0) {
		const char *msg = json_string_value(json_object_get(env, "error"));
		long code = (long)json_integer_value(json_object_get(env, "error_code"));
		return gr_error_set(err, code_to_errno(code), "%s", msg && *msg ? msg : "gureumd reported an error");
	}
	if (!type || (strcmp(type, "sync") != 0 && strcmp(type, "async") != 0))
		return gr_error_set(err, EPROTO, "%s %s: the envelope's type is not sync, async or error", method, path);
	return 0;
}

int gr_client_query(struct gr_client *cl, const char *method, const char *path, const json_t *body,
		    json_t **metadata, struct gr_error *err)
{
	gr_autojson json_t *env = NULL;
	int r = gr_client_call(cl, method, path, body, &env, err);
	if (r < 0)
		return r;
	json_t *md = json_object_get(env, "metadata");
	*metadata = json_incref(md ? md : json_null());
	return 0;
}

static bool op_final(const json_t *op)
{
	json_int_t code = json_integer_value(json_object_get(op, "status_code"));
	return code == 200 || code == 400 || code == 401;
}

int gr_client_wait(struct gr_client *cl, const char *op_url, json_t **out, struct gr_error *err)
{
	if (!op_url || strncmp(op_url, "/1.0/operations/", 16) != 0 || strpbrk(op_url, "?#"))
		return gr_error_set(err, EPROTO, "gureumd named an operation that is not /1.0/operations/ID: %s",
				    op_url ? op_url : "(none)");
	char path[512];
	if ((size_t)snprintf(path, sizeof(path), "%s/wait?timeout=%d", op_url, WAIT_SLICE) >= sizeof(path))
		return gr_error_set(err, ENAMETOOLONG, "operation URL too long: %s", op_url);
	for (;;) {
		json_t *op = NULL;
		int r = gr_client_query(cl, "GET", path, NULL, &op, err);
		if (r < 0)
			return r;
		if (!json_is_object(op)) {
			json_decref(op);
			return gr_error_set(err, EPROTO, "%s: the answer is not an operation", path);
		}
		if (!op_final(op)) {
			json_decref(op);
			continue;
		}
		*out = op;
		json_int_t code = json_integer_value(json_object_get(op, "status_code"));
		if (code == 200)
			return 0;
		const char *msg = json_string_value(json_object_get(op, "err"));
		if (code == 401)
			return gr_error_set(err, ECANCELED, "%s", msg && *msg ? msg : "the operation was cancelled");
		return gr_error_set(err, EIO, "%s", msg && *msg ? msg : "the operation failed");
	}
}

int gr_client_run_operation(struct gr_client *cl, const char *method, const char *path,
			    const json_t *body, json_t **op, struct gr_error *err)
{
	gr_autojson json_t *env = NULL;
	int r = gr_client_call(cl, method, path, body, &env, err);
	if (r < 0)
		return r;
	const char *url = json_string_value(json_object_get(env, "operation"));
	if (strcmp(json_string_value(json_object_get(env, "type")), "async") != 0 || !url || !*url) {
		/* Done at once: the metadata is the result. */
		json_t *md = json_object_get(env, "metadata");
		*op = json_pack("{s:i,s:O}", "status_code", 200, "metadata", md ? md : json_null());
		return *op ? 0 : gr_error_set(err, ENOMEM, "out of memory");
	}
	return gr_client_wait(cl, url, op, err);
}

/* ---- WebSocket sessions ---- */

int gr_ws_send(struct gr_ws *c, const void *data, size_t len, bool binary)
{
	if (c->done || c->closing)
		return -ENOTCONN;
	struct frame *f = malloc(sizeof(*f) + LWS_PRE + len);
	if (!f)
		return -ENOMEM;
	f->next = NULL;
	f->len = len;
	f->binary = binary;
	memcpy(f->buf + LWS_PRE, data, len);
	if (c->tail)
		c->tail->next = f;
	else
		c->head = f;
	c->tail = f;
	c->queued += len;
	int w = c->active_watch;
	if (c->queued > QUEUE_HIGH && w >= 0 && !c->watch[w].paused && c->watch[w].wsi) {
		c->watch[w].paused = true;
		lws_rx_flow_control(c->watch[w].wsi, 0);
	}
	if (c->wsi && c->established)
		lws_callback_on_writable(c->wsi);
	return 0;
}

int gr_ws_send_channel(struct gr_ws *c, uint8_t channel, const void *data, size_t len)
{
	gr_autofree unsigned char *buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	buf[0] = channel;
	if (len)
		memcpy(buf + 1, data, len);
	return gr_ws_send(c, buf, len + 1, true);
}

void gr_ws_unwatch(struct gr_ws *c, int fd)
{
	for (size_t i = 0; i < c->nwatch; i++)
		if (c->watch[i].fd == fd)
			c->watch[i].unwatched = true;
}

void gr_ws_close(struct gr_ws *c)
{
	if (c->closing || c->done)
		return;
	c->closing = true;
	if (c->wsi && c->established)
		lws_callback_on_writable(c->wsi);
	else
		c->done = true;
}

int gr_ws_fail(struct gr_ws *c, int code, const char *fmt, ...)
{
	if (!c->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
		va_end(ap);
		c->failed = true;
		c->fail_code = code ? code : EIO;
	}
	c->done = true;
	return -c->fail_code;
}

bool gr_ws_closed_by_server(const struct gr_ws *c)
{
	return c->server_closed;
}

/* An upgrade the server refused: the same path as a plain GET gives the
 * error envelope and its message. */
static void explain_refused_upgrade(struct gr_client *cl, const char *path, struct gr_ws *c)
{
	gr_autojson json_t *env = NULL;
	struct gr_error e = { 0 };
	int r = gr_client_call(cl, "GET", path, NULL, &env, &e);
	if (r < 0 && e.msg[0]) {
		snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", e.msg);
		c->fail_code = -r;
	}
}

int gr_ws_run(struct gr_client *cl, const char *path, const struct gr_ws_ops *ops,
	      const int *fds, size_t nfds, struct gr_error *err)
{
	struct gr_ws c = { .client = cl, .kind = CONN_WS, .ops = ops, .active_watch = -1 };
	int r = 0;
	if (nfds > MAX_WATCH)
		return gr_error_set(err, EINVAL, "too many descriptors to watch");
	if (conn_start(cl, &c, path) == 0) {
		struct lws_vhost *vh = lws_get_vhost_by_name(cl->ctx, "default");
		for (size_t i = 0; i < nfds && !c.failed; i++) {
			/* lws closes what it adopted: give it a duplicate. */
			int dup_fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
			if (dup_fd < 0) {
				conn_fail(&c, errno, "dup: %s", strerror(errno));
				break;
			}
			lws_sock_file_fd_type fd = { .filefd = dup_fd };
			c.watch[c.nwatch].fd = fds[i];
			struct lws *w = vh ? lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd,
									 protocols[1].name, NULL) : NULL;
			if (!w) {
				close(dup_fd);
				conn_fail(&c, EIO, "cannot watch descriptor %d", fds[i]);
				break;
			}
			c.watch[c.nwatch++].wsi = w;
		}
		conn_loop(cl, &c);
	}
	cl->cur = NULL;
	for (size_t i = 0; i < c.nwatch; i++)
		if (c.watch[i].wsi)
			lws_set_timeout(c.watch[i].wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_SYNC);
	if (c.wsi) {
		lws_set_opaque_user_data(c.wsi, NULL);
		lws_set_timeout(c.wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_SYNC);
	}
	if (c.failed && c.upgrade_status && c.upgrade_status != 101)
		explain_refused_upgrade(cl, path, &c);
	if (c.failed)
		r = gr_error_set(err, c.fail_code, "%s", c.fail_msg);
	free_frames(&c);
	free(c.msg);
	return r;
}
