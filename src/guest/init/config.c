#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"

int ginit_parse_cidr(const char *s, struct in_addr *addr, unsigned *prefix)
{
	const char *slash = strchr(s, '/');
	if (!slash || slash - s >= 16 || !slash[1] || strlen(slash + 1) > 2)
		return -EINVAL;
	char a[16];
	memcpy(a, s, (size_t)(slash - s));
	a[slash - s] = 0;
	if (inet_pton(AF_INET, a, addr) != 1)
		return -EINVAL;
	unsigned p = 0;
	for (const char *c = slash + 1; *c; c++) {
		if (!isdigit((unsigned char)*c))
			return -EINVAL;
		p = p * 10 + (unsigned)(*c - '0');
	}
	if (p > 32)
		return -EINVAL;
	*prefix = p;
	return 0;
}

int ginit_parse_mac(const char *s, unsigned char mac[6])
{
	if (strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		const char *c = s + i * 3;
		if (!isxdigit((unsigned char)c[0]) || !isxdigit((unsigned char)c[1]) || (i < 5 && c[2] != ':'))
			return -EINVAL;
		char h[3] = { c[0], c[1], 0 };
		mac[i] = (unsigned char)strtoul(h, NULL, 16);
	}
	return 0;
}

static size_t digits_at_end(const char *s)
{
	size_t n = strlen(s), d = 0;
	while (d < n && isdigit((unsigned char)s[n - 1 - d]))
		d++;
	return d;
}

bool ginit_agent_port_match(const char *agent_port, const char *name)
{
	size_t d = digits_at_end(agent_port);
	if (d == 0)
		return strcmp(agent_port, name) == 0;
	size_t stem = strlen(agent_port) - d;
	if (strncmp(agent_port, name, stem) != 0)
		return false;
	size_t nd = strlen(name + stem);
	return nd >= 1 && nd <= 3 && digits_at_end(name + stem) == nd;
}

static bool hostname_ok(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n > 63 || h[0] == '-' || h[0] == '.')
		return false;
	for (const char *c = h; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.')
			return false;
	return true;
}

static bool port_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (const char *c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' && *c != '-')
			return false;
	return true;
}

static int get_path(json_t *j, const char *key, const char *def, char **out, struct gr_error *err)
{
	const char *v = def;
	int r = gr_json_get_string(j, "", key, &v, err);
	if (r < 0)
		return r;
	if (v[0] != '/')
		return gr_error_set(err, EINVAL, "%s: expected an absolute path, got \"%.256s\"", key, v);
	*out = strdup(v);
	return *out ? 0 : gr_error_set(err, ENOMEM, "out of memory");
}

static int parse_ipv4(json_t *obj, const char *key, struct in_addr *a, bool *has, struct gr_error *err)
{
	const char *s = NULL;
	int r = gr_json_get_string(obj, "network", key, &s, err);
	if (r <= 0)
		return r;
	if (inet_pton(AF_INET, s, a) != 1)
		return gr_error_set(err, EINVAL, "network.%s: expected an IPv4 address, got \"%.64s\"", key, s);
	if (has)
		*has = true;
	return 1;
}

static int parse_network(json_t *n, struct ginit_network *net, struct gr_error *err)
{
	const char *s = NULL;
	int r = gr_json_get_string(n, "network", "address", &s, err);
	if (r < 0)
		return r;
	if (r == 0)
		return gr_error_set(err, EINVAL, "network.address: required (A.B.C.D/PREFIX) when network is given");
	if (ginit_parse_cidr(s, &net->address, &net->prefix) < 0)
		return gr_error_set(err, EINVAL, "network.address: expected A.B.C.D/PREFIX, got \"%.64s\"", s);
	if ((r = parse_ipv4(n, "gateway", &net->gateway, &net->has_gateway, err)) < 0)
		return r;
	s = NULL;
	if ((r = gr_json_get_string(n, "network", "mac", &s, err)) < 0)
		return r;
	if (r > 0) {
		if (ginit_parse_mac(s, net->mac) < 0)
			return gr_error_set(err, EINVAL, "network.mac: expected aa:bb:cc:dd:ee:ff, got \"%.64s\"", s);
		net->has_mac = true;
	}
	json_t *dns = json_object_get(n, "dns");
	if (json_is_string(dns)) {
		if ((r = parse_ipv4(n, "dns", &net->dns[0], NULL, err)) < 0)
			return r;
		net->ndns = 1;
	} else if (json_is_array(dns)) {
		size_t i;
		json_t *v;
		json_array_foreach(dns, i, v) {
			if (i >= GINIT_MAX_DNS)
				return gr_error_set(err, EINVAL, "network.dns: at most %d servers", GINIT_MAX_DNS);
			if (!json_is_string(v) || inet_pton(AF_INET, json_string_value(v), &net->dns[i]) != 1)
				return gr_error_set(err, EINVAL, "network.dns[%zu]: expected an IPv4 address", i);
			net->ndns = (unsigned)i + 1;
		}
	} else if (dns && !json_is_null(dns)) {
		return gr_error_set(err, EINVAL, "network.dns: expected an IPv4 address or a list of them");
	}
	return 0;
}

/* A volume's name as gureumd validates it (and safe as a file name). */
static bool volume_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (const char *c = s; *c; c++)
		if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-'))
			return false;
	return true;
}

/* Absolute, not "/", no empty, "." or ".." components. */
static bool volume_path_ok(const char *p)
{
	if (p[0] != '/' || !p[1] || strlen(p) >= 4096)
		return false;
	for (const char *c = p; *c;) {
		const char *e = strchr(c + 1, '/');
		size_t n = e ? (size_t)(e - c - 1) : strlen(c + 1);
		if (n == 0 || (n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.'))
			return false;
		if (!e)
			break;
		c = e;
	}
	return true;
}

static int parse_volumes(json_t *arr, struct ginit_config *c, struct gr_error *err)
{
	size_t n = json_array_size(arr);
	if (n > GINIT_MAX_VOLUMES)
		return gr_error_set(err, EINVAL, "volumes: %zu of them, at most %d", n, GINIT_MAX_VOLUMES);
	if (n && !(c->volumes = calloc(n, sizeof(*c->volumes))))
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);
		struct ginit_volume *vol = &c->volumes[c->nvolumes];
		char where[32];
		snprintf(where, sizeof(where), "volumes[%zu]", i);
		const char *name = NULL, *path = NULL;
		uint32_t disk = 0;
		int r;
		if (!json_is_object(v))
			return gr_error_set(err, EINVAL, "%s: expected an object", where);
		if ((r = gr_json_get_uint32(v, where, "disk", &disk, err)) < 0 ||
		    (r = gr_json_get_string(v, where, "name", &name, err)) < 0 ||
		    (r = gr_json_get_string(v, where, "path", &path, err)) < 0 ||
		    (r = gr_json_get_bool(v, where, "readonly", &vol->readonly, err)) < 0)
			return r;
		if (disk < 1 || disk > GINIT_MAX_VOLUMES)
			return gr_error_set(err, EINVAL, "%s.disk: %u is not 1..%d", where, disk, GINIT_MAX_VOLUMES);
		if (!name || !volume_name_ok(name))
			return gr_error_set(err, EINVAL, "%s.name: expected a volume name", where);
		if (!path || !volume_path_ok(path))
			return gr_error_set(err, EINVAL, "%s.path: expected an absolute path", where);
		vol->disk = disk;
		if (!(vol->name = strdup(name)) || !(vol->path = strdup(path)))
			return gr_error_set(err, ENOMEM, "out of memory");
		c->nvolumes++;
	}
	return 0;
}

int ginit_config_parse(const char *text, struct ginit_config *c, struct gr_error *err)
{
	*c = (struct ginit_config){ 0 };
	gr_autojson json_t *j = NULL;
	int r = gr_json_load_string(GINIT_CONFIG_PATH, text, &j, err);
	if (r < 0)
		return r;
	const char *s = NULL;
	if ((r = gr_json_get_string(j, "", "hostname", &s, err)) < 0)
		goto fail;
	if (r > 0) {
		if (!hostname_ok(s)) {
			r = gr_error_set(err, EINVAL, "hostname: \"%.80s\" is not a host name (letters, digits, '-', '.'; 63 at most)", s);
			goto fail;
		}
		if (!(c->hostname = strdup(s)))
			goto nomem;
	}
	if ((r = gr_json_get_strv(j, "", "command", &c->command, err)) < 0)
		goto fail;
	if (r > 0 && (!c->command[0] || !c->command[0][0])) {
		r = gr_error_set(err, EINVAL, "command: expected a non-empty list of strings, or null for the image's init");
		goto fail;
	}
	if ((r = gr_json_get_strv(j, "", "env", &c->env, err)) < 0)
		goto fail;
	if (r == 0 && !(c->env = calloc(1, sizeof(char *))))
		goto nomem;
	for (size_t i = 0; c->env[i]; i++) {
		const char *eq = strchr(c->env[i], '=');
		if (!eq || eq == c->env[i]) {
			r = gr_error_set(err, EINVAL, "env[%zu]: expected NAME=VALUE, got \"%.80s\"", i, c->env[i]);
			goto fail;
		}
	}
	if ((r = get_path(j, "cwd", "/", &c->cwd, err)) < 0 ||
	    (r = get_path(j, "root", "/dev/vda", &c->root, err)) < 0 ||
	    (r = get_path(j, "init", "/sbin/init", &c->init, err)) < 0)
		goto fail;
	s = "ext4";
	if ((r = gr_json_get_string(j, "", "rootfstype", &s, err)) < 0)
		goto fail;
	if (!(c->rootfstype = strdup(s)))
		goto nomem;
	json_t *net = NULL;
	if ((r = gr_json_get_object(j, "", "network", &net, err)) < 0)
		goto fail;
	if (r > 0) {
		if ((r = parse_network(net, &c->net, err)) < 0)
			goto fail;
		c->has_network = true;
	}
	s = "org.gureum.agent.0";
	if ((r = gr_json_get_string(j, "", "agent_port", &s, err)) < 0)
		goto fail;
	if (!port_name_ok(s)) {
		r = gr_error_set(err, EINVAL, "agent_port: \"%.80s\" is not a port name (letters, digits, '.', '_', '-')", s);
		goto fail;
	}
	if (!(c->agent_port = strdup(s)))
		goto nomem;
	if ((r = gr_json_get_bool(j, "", "root_by_serial", &c->has_root_disk, err)) < 0)
		goto fail;
	json_t *vols = NULL;
	if ((r = gr_json_get_array(j, "", "volumes", &vols, err)) < 0 || (r > 0 && (r = parse_volumes(vols, c, err)) < 0))
		goto fail;
	uint32_t vp = 1024;
	if ((r = gr_json_get_uint32(j, "", "agent_vsock_port", &vp, err)) < 0)
		goto fail;
	c->agent_vsock_port = vp;
	return 0;
nomem:
	r = gr_error_set(err, ENOMEM, "out of memory");
fail:
	ginit_config_free(c);
	return r;
}

int ginit_config_load(const char *path, struct ginit_config *c, struct gr_error *err)
{
	gr_autofclose FILE *f = fopen(path, "re");
	if (!f)
		return gr_error_sys(err, errno, "cannot open %s", path);
	char *text = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&text, &cap, '\0', f);
	if (n < 0) {
		free(text);
		return gr_error_sys(err, errno ? errno : EINVAL, "cannot read %s", path);
	}
	int r = ginit_config_parse(text, c, err);
	free(text);
	return r;
}

void ginit_config_free(struct ginit_config *c)
{
	free(c->hostname);
	gr_strv_free(c->command);
	gr_strv_free(c->env);
	free(c->cwd);
	free(c->agent_port);
	free(c->root);
	free(c->rootfstype);
	free(c->init);
	for (size_t i = 0; i < c->nvolumes; i++) {
		free(c->volumes[i].name);
		free(c->volumes[i].path);
	}
	free(c->volumes);
	*c = (struct ginit_config){ 0 };
}
