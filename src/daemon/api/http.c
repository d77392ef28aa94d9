/* The parts of server.h that do not touch libwebsockets: the envelope
 * builders (Incus's), the errno mapping, routing by method and pattern,
 * JSON request bodies and query parameters. Unit-tested on their own. */
#include "daemon/api/server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "daemon/validate.h"

static json_t *envelope(const char *type, const char *status, int status_code, const char *operation,
			int error_code, const char *error, json_t *metadata)
{
	json_t *e = json_object();
	json_object_set_new(e, "type", json_string(type));
	json_object_set_new(e, "status", json_string(status));
	json_object_set_new(e, "status_code", json_integer(status_code));
	json_object_set_new(e, "operation", json_string(operation));
	json_object_set_new(e, "error_code", json_integer(error_code));
	json_object_set_new(e, "error", json_string(error));
	json_object_set_new(e, "metadata", metadata ? metadata : json_null());
	return e;
}

static void set_envelope(struct http_reply *r, json_t *e)
{
	json_decref(r->envelope);
	r->envelope = e;
}

void reply_sync(struct http_reply *r, json_t *metadata)
{
	set_envelope(r, envelope("sync", "Success", 200, "", 0, "", metadata));
}

void reply_async(struct http_reply *r, const char *op_id, json_t *operation)
{
	char url[128];
	snprintf(url, sizeof(url), "/1.0/operations/%s", op_id);
	set_envelope(r, envelope("async", "Operation created", 100, url, 0, "", operation));
}

static void reply_errorv(struct http_reply *r, int error_code, const char *fmt, va_list ap)
{
	char msg[GR_ERROR_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (error_code < 400 || error_code > 599)
		error_code = 500;
	set_envelope(r, envelope("error", "", 0, "", error_code, msg, NULL));
}

void reply_error(struct http_reply *r, int error_code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply_errorv(r, error_code, fmt, ap);
	va_end(ap);
}

static int errno_to_http(int e)
{
	switch (e) {
	case ENOENT:
		return 404;
	case EEXIST:
	case EBUSY:
	case EALREADY:
	case EADDRINUSE: /* a subnet, an address or a port that is taken */
		return 409;
	case EINVAL:
	case E2BIG:
	case ERANGE:
		return 400;
	case EPERM:
	case EACCES:
		return 403;
	case ENOTSUP:
		return 501;
	default:
		return 500;
	}
}

void reply_gr_error(struct http_reply *r, int rc, const struct gr_error *err)
{
	int e = rc < 0 ? -rc : (err && err->code ? err->code : EIO);
	const char *msg = err && err->msg[0] ? err->msg : strerror(e);
	reply_error(r, errno_to_http(e), "%s", msg);
}

/* Splits path_buf into segments in place; returns their number or -1 when
 * there are more than max. A single trailing '/' is ignored; "/" has none. */
static int split_path(char *path, char **seg, int max)
{
	int n = 0;
	if (*path != '/')
		return -1;
	char *p = path + 1;
	size_t len = strlen(p);
	if (len > 0 && p[len - 1] == '/')
		p[len - 1] = '\0';
	while (*p) {
		if (n == max)
			return -1;
		seg[n++] = p;
		char *slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
		p = slash + 1;
		if (!*p)
			return -1;    /* "//" or a trailing "//" */
	}
	return n;
}

#define MAX_SEGMENTS 16

/* Matches one pattern against the split path; fills args. */
static bool pattern_match(const char *pattern, char **seg, int nseg, const char *args[4])
{
	int i = 0, nargs = 0;
	const char *p = pattern;
	if (*p != '/')
		return false;
	p++;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (i >= nseg)
			return false;
		if (len == 2 && p[0] == '{' && p[1] == '}') {
			if (!seg[i][0] || nargs == 4)
				return false;
			args[nargs++] = seg[i];
		} else if (strlen(seg[i]) != len || strncmp(seg[i], p, len) != 0) {
			return false;
		}
		i++;
		p += len;
		if (*p == '/')
			p++;
	}
	return i == nseg;
}

int route_lookup(const struct route *const tables[], const char *method, char *path_buf,
		 const struct route **out, const char *args[4], char *allow, size_t allow_len)
{
	char *seg[MAX_SEGMENTS];
	int nseg = split_path(path_buf, seg, MAX_SEGMENTS);
	if (allow_len)
		allow[0] = '\0';
	if (nseg < 0)
		return -ENOENT;
	bool path_known = false;
	size_t used = 0;
	for (int t = 0; tables[t]; t++) {
		for (const struct route *r = tables[t]; r->method; r++) {
			const char *a[4] = { 0 };
			if (!pattern_match(r->pattern, seg, nseg, a))
				continue;
			if (strcmp(r->method, method) == 0) {
				*out = r;
				memcpy(args, a, sizeof(a));
				return 0;
			}
			path_known = true;
			if (allow_len && !strstr(allow, r->method)) {
				int n = snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", r->method);
				if (n > 0 && (size_t)n < allow_len - used)
					used += (size_t)n;
			}
		}
	}
	return path_known ? -EOPNOTSUPP : -ENOENT;
}

void json_error_message(const json_error_t *jerr, char *buf, size_t len)
{
	snprintf(buf, len, "malformed JSON: line %d, column %d, position %d: %s", jerr->line, jerr->column,
		 jerr->position, jerr->text);
}

int request_json(const struct http_request *rq, json_t **out, struct http_reply *rp)
{
	*out = NULL;
	if (!rq->body || rq->body_len == 0) {
		reply_error(rp, 400, "the request needs a JSON object body");
		return -EINVAL;
	}
	json_error_t jerr;
	json_t *j = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		char msg[GR_ERROR_MSG_MAX];
		json_error_message(&jerr, msg, sizeof(msg));
		reply_error(rp, 400, "%s", msg);
		return -EINVAL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		reply_error(rp, 400, "the request body must be a JSON object");
		return -EINVAL;
	}
	*out = j;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes [s, s+n) into buf ('+' is a space); -E2BIG when it does not fit. */
static int decode(const char *s, size_t n, char *buf, size_t len)
{
	size_t o = 0;
	if (len == 0)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		if (o + 1 >= len)
			return -E2BIG;
		buf[o++] = c;
	}
	buf[o] = '\0';
	return 0;
}

int http_query_get(const struct http_request *rq, const char *key, char *buf, size_t len)
{
	const char *p = rq->query ? rq->query : "";
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', plen);
		size_t klen = eq ? (size_t)(eq - p) : plen;
		char k[128];
		if (klen > 0 && decode(p, klen, k, sizeof(k)) == 0 && strcmp(k, key) == 0) {
			if (!eq) {
				if (len == 0)
					return -E2BIG;
				buf[0] = '\0';
				return 1;
			}
			int rc = decode(eq + 1, plen - klen - 1, buf, len);
			return rc < 0 ? rc : 1;
		}
		p += plen;
		if (*p == '&')
			p++;
	}
	return 0;
}

bool http_query_bool(const struct http_request *rq, const char *key)
{
	char v[16];
	if (http_query_get(rq, key, v, sizeof(v)) != 1)
		return false;
	return !v[0] || strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
}

int request_check_keys(const json_t *obj, const char *where, const char *const allowed[], struct gr_error *err)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			if (strcmp(key, allowed[i]) == 0)
				ok = true;
		if (!ok) {
			char q[VALIDATE_QUOTE_MAX], known[256] = "";
			size_t o = 0;
			for (size_t i = 0; allowed[i] && o < sizeof(known); i++)
				o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", i ? ", " : "", allowed[i]);
			return gr_error_set(err, EINVAL, "%s%sunknown key %s (known: %s)", where, *where ? ": " : "",
					    validate_quote(key, q, sizeof(q)), known);
		}
	}
	return 0;
}

void reply_list(const struct http_request *rq, struct http_reply *rp, json_t *list, const char *prefix)
{
	char buf[16];
	if (http_query_get(rq, "recursion", buf, sizeof(buf)) == 1 && strcmp(buf, "0") != 0) {
		reply_sync(rp, json_incref(list));
		return;
	}
	json_t *urls = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v) {
		char *url = NULL;
		if (asprintf(&url, "%s/%s", prefix, json_string_value(json_object_get(v, "name"))) >= 0)
			json_array_append_new(urls, json_string(url));
		free(url);
	}
	reply_sync(rp, urls);
}
