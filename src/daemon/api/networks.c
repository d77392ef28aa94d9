/* /1.0/networks (network/network.h; README "Networks"):
 *   GET    /1.0/networks                         URLs, or objects with ?recursion=1
 *   POST   /1.0/networks {"name","subnet","nat","isolated"}   sync: the new network
 *   GET    /1.0/networks/NAME
 *   DELETE /1.0/networks/NAME                    sync; 409 naming the instances that use it
 *   GET    /1.0/networks/NAME/forwards           the forwards (objects)
 *   POST   /1.0/networks/NAME/forwards {"protocol","host_port","instance","port"}   sync
 *   GET    /1.0/networks/NAME/forwards/PROTOCOL/HOST_PORT
 *   DELETE /1.0/networks/NAME/forwards/PROTOCOL/HOST_PORT
 * Every change is short (a bridge, a dnsmasq, one nftables transaction), so
 * all of them are synchronous, as Incus's network routes are. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "daemon/api/server.h"
#include "daemon/network/network.h"
#include "daemon/validate.h"

/* The network named by the route: 400 for a bad name. */
static int route_name(const struct http_request *rq, struct http_reply *rp)
{
	struct gr_error err = { 0 };
	int rc = validate_instance_name(rq->route_args[0], &err);
	if (rc < 0) {
		gr_error_prefix(&err, "network name");
		reply_gr_error(rp, rc, &err);
	}
	return rc;
}

static void reply_result(struct http_reply *rp, int rc, const struct gr_error *err, json_t *out)
{
	if (rc < 0)
		reply_gr_error(rp, rc, err);
	else
		reply_sync(rp, out ? out : json_object());
}

static void get_networks(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	struct gr_error err = { 0 };
	gr_autojson json_t *list = NULL;
	int rc = network_list(d, &list, &err);
	if (rc < 0) {
		reply_gr_error(rp, rc, &err);
		return;
	}
	reply_list(rq, rp, list, "/1.0/networks");
}

static void post_networks(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	static const char *const keys[] = { "name", "subnet", "nat", "isolated", NULL };
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *name = NULL, *subnet = NULL;
	bool nat = false, isolated = false;
	int rc = request_check_keys(body, "", keys, &err);
	if (rc == 0 && (rc = gr_json_get_string(body, "", "name", &name, &err)) >= 0 &&
	    (rc = gr_json_get_string(body, "", "subnet", &subnet, &err)) >= 0 &&
	    (rc = gr_json_get_bool(body, "", "nat", &nat, &err)) >= 0 &&
	    (rc = gr_json_get_bool(body, "", "isolated", &isolated, &err)) >= 0)
		rc = 0;
	if (rc == 0 && !name)
		rc = gr_error_set(&err, EINVAL, "name: required (1-63 characters of a-z, 0-9 and '-')");
	json_t *out = NULL;
	if (rc == 0)
		rc = network_create(d, name, subnet, nat, isolated, &out, &err);
	reply_result(rp, rc, &err, out);
}

static void get_network(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (route_name(rq, rp) < 0)
		return;
	struct gr_error err = { 0 };
	json_t *out = NULL;
	int rc = network_info(d, rq->route_args[0], &out, &err);
	reply_result(rp, rc, &err, out);
}

static void delete_network(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (route_name(rq, rp) < 0)
		return;
	struct gr_error err = { 0 };
	int rc = network_delete(d, rq->route_args[0], &err);
	reply_result(rp, rc, &err, NULL);
}

/* A port from JSON (an integer 1..65535) or from the route (decimal). */
static int port_of(const json_t *v, const char *text, const char *what, uint16_t *out, struct gr_error *err)
{
	int64_t p = -1;
	if (v && json_is_integer(v))
		p = json_integer_value(v);
	else if (text && gr_parse_i64(text, &p) < 0)
		p = -1;
	else if (!text)
		return gr_error_set(err, EINVAL, "%s: %s", what, v ? "expected an integer from 1 to 65535" : "required");
	if (p < 1 || p > 65535)
		return gr_error_set(err, EINVAL, "%s: expected a port from 1 to 65535", what);
	*out = (uint16_t)p;
	return 0;
}

static void get_forwards(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	if (route_name(rq, rp) < 0)
		return;
	struct gr_error err = { 0 };
	json_t *out = NULL;
	int rc = network_forward_list(d, rq->route_args[0], &out, &err);
	reply_result(rp, rc, &err, out);
}

static void post_forwards(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	static const char *const keys[] = { "protocol", "host_port", "instance", "port", NULL };
	if (route_name(rq, rp) < 0)
		return;
	gr_autojson json_t *body = NULL;
	if (request_json(rq, &body, rp) < 0)
		return;
	struct gr_error err = { 0 };
	const char *protocol = NULL, *instance = NULL;
	uint16_t host_port = 0, port = 0;
	int rc = request_check_keys(body, "", keys, &err);
	if (rc == 0 && (rc = gr_json_get_string(body, "", "protocol", &protocol, &err)) >= 0 &&
	    (rc = gr_json_get_string(body, "", "instance", &instance, &err)) >= 0)
		rc = 0;
	if (rc == 0 && !instance)
		rc = gr_error_set(&err, EINVAL, "instance: required");
	if (rc == 0)
		rc = validate_instance_name(instance, &err);
	if (rc == 0)
		rc = port_of(json_object_get(body, "host_port"), NULL, "host_port", &host_port, &err);
	if (rc == 0)
		rc = port_of(json_object_get(body, "port"), NULL, "port", &port, &err);
	json_t *out = NULL;
	if (rc == 0)
		rc = network_forward_add(d, rq->route_args[0], protocol ? protocol : "tcp", host_port, instance, port,
					 &out, &err);
	reply_result(rp, rc, &err, out);
}

static int route_forward(const struct http_request *rq, struct http_reply *rp, uint16_t *port)
{
	if (route_name(rq, rp) < 0)
		return -EINVAL;
	struct gr_error err = { 0 };
	int rc = 0;
	if (strcmp(rq->route_args[1], "tcp") != 0 && strcmp(rq->route_args[1], "udp") != 0)
		rc = gr_error_set(&err, EINVAL, "protocol: expected tcp or udp");
	if (rc == 0)
		rc = port_of(NULL, rq->route_args[2], "host port", port, &err);
	if (rc < 0)
		reply_gr_error(rp, rc, &err);
	return rc;
}

static void get_forward(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	uint16_t port;
	if (route_forward(rq, rp, &port) < 0)
		return;
	struct gr_error err = { 0 };
	json_t *out = NULL;
	int rc = network_forward_get(d, rq->route_args[0], rq->route_args[1], port, &out, &err);
	reply_result(rp, rc, &err, out);
}

static void delete_forward(struct daemon *d, const struct http_request *rq, struct http_reply *rp)
{
	uint16_t port;
	if (route_forward(rq, rp, &port) < 0)
		return;
	struct gr_error err = { 0 };
	int rc = network_forward_delete(d, rq->route_args[0], rq->route_args[1], port, &err);
	reply_result(rp, rc, &err, NULL);
}

const struct route network_routes[] = {
	{ "GET", "/1.0/networks", get_networks },
	{ "POST", "/1.0/networks", post_networks },
	{ "GET", "/1.0/networks/{}", get_network },
	{ "DELETE", "/1.0/networks/{}", delete_network },
	{ "GET", "/1.0/networks/{}/forwards", get_forwards },
	{ "POST", "/1.0/networks/{}/forwards", post_forwards },
	{ "GET", "/1.0/networks/{}/forwards/{}/{}", get_forward },
	{ "DELETE", "/1.0/networks/{}/forwards/{}/{}", delete_forward },
	{ 0 },
};
