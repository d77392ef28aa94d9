/* The control API: libmicrohttpd on a unix socket we create, bind and listen
 * on ourselves (MHD_OPTION_LISTEN_SOCKET), one internal epoll thread, JSON in
 * and out through jansson. See api.h for the routes and status codes. */
#include "api.h"
#include "sock_cleanup.h"
#include "common/cleanup.h"
#include "common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <linux/kvm.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define API_CONNECTION_LIMIT 16
#define API_CONNECTION_TIMEOUT_S 10
#define API_MAX_DROPPED (1024 * 1024)  /* of an oversized chunked body, before the connection is cut */

struct vmm_api {
	struct MHD_Daemon *daemon;
	const struct vmm_api_ops *ops;
	void *opaque;
	struct sock_file sock;  /* the socket file, removed by close or its watcher */
};

#define API_DRAIN_MS 500       /* vmm_api_close waits this long at most for open connections */

/* ---- exit reason names ---- */

static const char *const exit_names[] = {
	[KVM_EXIT_UNKNOWN] = "unknown", [KVM_EXIT_EXCEPTION] = "exception", [KVM_EXIT_IO] = "io",
	[KVM_EXIT_HYPERCALL] = "hypercall", [KVM_EXIT_DEBUG] = "debug", [KVM_EXIT_HLT] = "hlt",
	[KVM_EXIT_MMIO] = "mmio", [KVM_EXIT_IRQ_WINDOW_OPEN] = "irq_window_open",
	[KVM_EXIT_SHUTDOWN] = "shutdown", [KVM_EXIT_FAIL_ENTRY] = "fail_entry", [KVM_EXIT_INTR] = "intr",
	[KVM_EXIT_SET_TPR] = "set_tpr", [KVM_EXIT_TPR_ACCESS] = "tpr_access", [KVM_EXIT_NMI] = "nmi",
	[KVM_EXIT_INTERNAL_ERROR] = "internal_error", [KVM_EXIT_WATCHDOG] = "watchdog",
	[KVM_EXIT_EPR] = "epr", [KVM_EXIT_SYSTEM_EVENT] = "system_event", [KVM_EXIT_IOAPIC_EOI] = "ioapic_eoi",
	[KVM_EXIT_HYPERV] = "hyperv", [KVM_EXIT_X86_RDMSR] = "x86_rdmsr", [KVM_EXIT_X86_WRMSR] = "x86_wrmsr",
	[KVM_EXIT_DIRTY_RING_FULL] = "dirty_ring_full", [KVM_EXIT_AP_RESET_HOLD] = "ap_reset_hold",
	[KVM_EXIT_X86_BUS_LOCK] = "x86_bus_lock", [KVM_EXIT_XEN] = "xen", [KVM_EXIT_NOTIFY] = "notify",
};

const char *vmm_api_exit_reason_name(uint32_t reason)
{
	return reason < sizeof(exit_names) / sizeof(exit_names[0]) ? exit_names[reason] : NULL;
}

int vmm_api_metrics_add_exits(json_t *metrics, const uint64_t *counts, size_t n)
{
	json_t *exits = json_object();
	if (!exits || json_object_set_new(metrics, "vm_exits", exits) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!counts[i])
			continue;
		char buf[32];
		const char *name = vmm_api_exit_reason_name((uint32_t)i);
		if (!name) {
			snprintf(buf, sizeof(buf), "exit_%zu", i);
			name = buf;
		}
		if (json_object_set_new(exits, name, json_integer((json_int_t)counts[i])) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* ---- responses ---- */

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned int status, char *body, const char *allow)
{
	struct MHD_Response *r = body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
				      : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (body)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Takes a reference to j. */
static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned int status, json_t *j)
{
	/* 12 significant digits: the uptime's milliseconds, not 0.55200000000000005. */
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
	json_decref(j);
	if (!s)
		return MHD_NO;
	return respond_text(c, status, s, NULL);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned int status, const char *allow,
				     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned int status, const char *allow,
				     const char *fmt, ...)
{
	char msg[GR_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *j = json_pack("{s:s}", "error", msg);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s)
		return MHD_NO;
	return respond_text(c, status, s, allow);
}

/* A callback's negative errno as an HTTP status. */
static unsigned int status_of_errno(int r)
{
	switch (-r) {
	case EBUSY: case EALREADY: case EINPROGRESS:
		return MHD_HTTP_CONFLICT;
	case EINVAL:
		return MHD_HTTP_BAD_REQUEST;
	case ENOTSUP: case ENOSYS:
		return MHD_HTTP_NOT_IMPLEMENTED;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

static enum MHD_Result respond_callback_error(struct MHD_Connection *c, int r, const struct gr_error *err,
					      const char *what)
{
	return respond_error(c, status_of_errno(r), NULL, "%s: %s", what,
			     err->msg[0] ? err->msg : strerror(r < 0 ? -r : EIO));
}

/* ---- routes ---- */

enum route { ROUTE_VM, ROUTE_ACTIONS, ROUTE_METRICS };

static const struct {
	const char *url, *method;
} routes[] = {
	[ROUTE_VM] = { "/vm", MHD_HTTP_METHOD_GET },
	[ROUTE_ACTIONS] = { "/vm/actions", MHD_HTTP_METHOD_PUT },
	[ROUTE_METRICS] = { "/metrics", MHD_HTTP_METHOD_GET },
};

/* Per request: the route and the body read so far. */
struct request {
	enum route route;
	size_t len;       /* VMM_API_MAX_BODY + 1 once over the limit */
	size_t dropped;   /* bytes read and dropped past the limit */
	char body[VMM_API_MAX_BODY + 1];
};

static const char *state_name(enum vmm_api_state s)
{
	switch (s) {
	case VMM_API_RUNNING: return "running";
	case VMM_API_PAUSED: return "paused";
	case VMM_API_STOPPING: return "stopping";
	}
	return NULL;
}

static enum MHD_Result handle_status(struct vmm_api *api, struct MHD_Connection *c)
{
	struct vmm_api_status st = { 0 };
	struct gr_error err = { 0 };
	int r = api->ops->get_status(api->opaque, &st, &err);
	if (r < 0)
		return respond_callback_error(c, r, &err, "status");
	const char *state = state_name(st.state);
	if (!state)
		return respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "status: unknown state %d", (int)st.state);
	double uptime = st.uptime > 0 ? (double)(uint64_t)(st.uptime * 1000.0 + 0.5) / 1000.0 : 0.0;
	return respond_json(c, MHD_HTTP_OK,
			    json_pack("{s:s, s:I, s:I, s:f}", "state", state, "vcpus", (json_int_t)st.vcpus, "memory",
				      (json_int_t)st.memory, "uptime", uptime));
}

static enum MHD_Result handle_metrics(struct vmm_api *api, struct MHD_Connection *c)
{
	gr_autojson json_t *m = json_object();
	struct gr_error err = { 0 };
	if (!m)
		return MHD_NO;
	int r = api->ops->get_metrics(api->opaque, m, &err);
	if (r < 0)
		return respond_callback_error(c, r, &err, "metrics");
	return respond_json(c, MHD_HTTP_OK, json_incref(m));
}

static enum MHD_Result handle_action(struct vmm_api *api, struct MHD_Connection *c, struct request *req)
{
	if (req->len == 0)
		return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL,
				     "PUT /vm/actions needs a body: {\"action\": \"pause\"|\"resume\"|\"stop\"}");
	json_error_t jerr;
	gr_autojson json_t *j = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j)
		return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL, "malformed JSON at line %d, column %d (byte %d): %s",
				     jerr.line, jerr.column, jerr.position, jerr.text);
	if (!json_is_object(j))
		return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL, "the body must be a JSON object");
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v) {
		if (strcmp(key, "action") != 0 && strcmp(key, "timeout") != 0)
			return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL,
					     "unknown key \"%s\" (expected \"action\" and, for stop, \"timeout\")", key);
	}
	json_t *a = json_object_get(j, "action");
	if (!a)
		return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL, "missing key \"action\"");
	if (!json_is_string(a)) {
		gr_autofree char *d = gr_json_describe(a);
		return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL, "action: expected a string, got %s", d ? d : "?");
	}
	const char *action = json_string_value(a);
	json_t *t = json_object_get(j, "timeout");
	if (t && strcmp(action, "stop") != 0)
		return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL, "timeout: only the stop action takes one");
	unsigned int timeout_ms = VMM_API_STOP_TIMEOUT_DEFAULT_MS;
	if (t) {
		/* Seconds, a JSON number (integer or real); NaN cannot occur in JSON. */
		double secs = json_is_integer(t) ? (double)json_integer_value(t) : json_is_real(t) ? json_real_value(t) : -1;
		if (!json_is_number(t) || secs < 0 || secs > VMM_API_STOP_TIMEOUT_MAX_S) {
			gr_autofree char *d = gr_json_describe(t);
			return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL,
					     "timeout: expected a number of seconds from 0 to %d, got %s",
					     VMM_API_STOP_TIMEOUT_MAX_S, d ? d : "?");
		}
		timeout_ms = (unsigned int)(secs * 1000.0 + 0.5);
	}
	struct gr_error err = { 0 };
	int r;
	if (strcmp(action, "pause") == 0) {
		if ((r = api->ops->pause(api->opaque, &err)) < 0)
			return respond_callback_error(c, r, &err, "pause");
		return respond_text(c, MHD_HTTP_NO_CONTENT, NULL, NULL);
	}
	if (strcmp(action, "resume") == 0) {
		if ((r = api->ops->resume(api->opaque, &err)) < 0)
			return respond_callback_error(c, r, &err, "resume");
		return respond_text(c, MHD_HTTP_NO_CONTENT, NULL, NULL);
	}
	if (strcmp(action, "stop") == 0) {
		if ((r = api->ops->stop(api->opaque, timeout_ms, &err)) < 0)
			return respond_callback_error(c, r, &err, "stop");
		return respond_json(c, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "state", "stopping"));
	}
	gr_autofree char *d = gr_json_describe(a);
	return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL,
			     "unknown action %s (expected \"pause\", \"resume\" or \"stop\")", d ? d : "?");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	(void)version;
	struct vmm_api *api = cls;
	struct request *req = *con_cls;
	if (!req) {
		/* First call: headers only. Route and size errors are answered before the body is read. */
		int route = -1;
		for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
			if (strcmp(url, routes[i].url) == 0)
				route = (int)i;
		if (route < 0)
			return respond_error(c, MHD_HTTP_NOT_FOUND, NULL, "no such route: %s", url);
		if (strcmp(method, routes[route].method) != 0)
			return respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, routes[route].method,
					     "method %s is not allowed on %s (use %s)", method, url, routes[route].method);
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(cl, &end, 10);
			if (errno || end == cl || *end || n > VMM_API_MAX_BODY)
				return respond_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
						     "the body is larger than %d bytes", VMM_API_MAX_BODY);
		}
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		req->route = (enum route)route;
		*con_cls = req;
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* Chunked bodies have no Content-Length: the limit is enforced here too.
		 * libmicrohttpd cannot answer in the middle of an upload, so the rest
		 * is read and dropped (up to a bound, then the connection is cut) and
		 * the 413 goes out at the end. */
		if (req->len > VMM_API_MAX_BODY || *upload_data_size > VMM_API_MAX_BODY - req->len) {
			req->dropped += *upload_data_size;
			req->len = VMM_API_MAX_BODY + 1;
			*upload_data_size = 0;
			return req->dropped > API_MAX_DROPPED ? MHD_NO : MHD_YES;
		}
		memcpy(req->body + req->len, upload_data, *upload_data_size);
		req->len += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->len > VMM_API_MAX_BODY)
		return respond_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, "the body is larger than %d bytes",
				     VMM_API_MAX_BODY);
	req->body[req->len] = '\0';
	switch (req->route) {
	case ROUTE_VM:
	case ROUTE_METRICS:
		if (req->len)
			return respond_error(c, MHD_HTTP_BAD_REQUEST, NULL, "GET %s takes no body", url);
		return req->route == ROUTE_VM ? handle_status(api, c) : handle_metrics(api, c);
	case ROUTE_ACTIONS:
		return handle_action(api, c, req);
	}
	return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls; (void)c; (void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void quiet_logger(void *cls, const char *fmt, va_list ap)
{
	(void)cls; (void)fmt; (void)ap; /* library code never prints */
}

int vmm_api_open(const char *path, const struct vmm_api_ops *ops, void *opaque, struct vmm_api **out,
		 struct gr_error *err)
{
	*out = NULL;
	if (!path)
		return gr_error_set(err, EINVAL, "api socket: no path");
	if (!ops || !ops->get_status || !ops->pause || !ops->resume || !ops->stop || !ops->get_metrics)
		return gr_error_set(err, EINVAL, "api: every callback must be set");
	gr_autofree struct vmm_api *api = calloc(1, sizeof(*api));
	if (!api)
		return gr_error_set(err, ENOMEM, "api: out of memory");
	api->ops = ops;
	api->opaque = opaque;
	int fd = sock_file_listen(&api->sock, "api socket", path, API_CONNECTION_LIMIT, err);
	if (fd < 0)
		return fd;
	/* Do now what would otherwise open files lazily on the API thread, where
	 * the seccomp filter forbids it: jansson's hash seed (/dev/urandom) and
	 * glibc's time zone (/etc/localtime, read by the Date header's gmtime_r). */
	json_object_seed(0);
	tzset();
	api->daemon = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, 0, NULL, NULL, on_request, api,
				       MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				       MHD_OPTION_CONNECTION_LIMIT, (unsigned int)API_CONNECTION_LIMIT,
				       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)API_CONNECTION_TIMEOUT_S,
				       MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
				       MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
				       MHD_OPTION_EXTERNAL_LOGGER, quiet_logger, NULL,
				       MHD_OPTION_END);
	if (!api->daemon) {
		if (fcntl(fd, F_GETFD) >= 0) /* setup is single-threaded: the number is still ours */
			close(fd);
		sock_file_remove(&api->sock);
		return gr_error_set(err, EIO, "api socket %s: libmicrohttpd could not start", path);
	}
	*out = gr_steal_ptr(api);
	return 0;
}

void vmm_api_close(struct vmm_api *api)
{
	if (!api)
		return;
	if (api->daemon) {
		/* Let answers already queued go out (a stop's 202, say, when the VMM
		 * ends right after it): wait, bounded, for the open connections to close. */
		for (int i = 0; i < API_DRAIN_MS / 10; i++) {
			const union MHD_DaemonInfo *info = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
			if (!info || info->num_connections == 0)
				break;
			nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
		}
		MHD_stop_daemon(api->daemon); /* joins the thread, closes the listening socket */
	}
	sock_file_remove(&api->sock); /* or has the watcher remove it, and waits */
	free(api);
}

int vmm_api_unlink_at_exit(struct vmm_api *api, struct gr_error *err)
{
	return sock_file_unlink_at_exit(&api->sock, err);
}
