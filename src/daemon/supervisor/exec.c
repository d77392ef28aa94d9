/* The exec helper (gureum-supervisor exec): one process run in a running
 * container, built from the container's own process settings with the
 * request's command, environment, directory, user and terminal. It runs as a
 * separate, sealed program (never inside gureumd) so that neither gureumd's
 * binary nor its memory is reachable from the container. */
#include "daemon/supervisor/supervisor.h"
#include "common/cleanup.h"
#include "common/json.h"
#include "container/container.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Sets NAME=VALUE in the env array (replacing NAME's entry). */
static int env_set(json_t *env, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t n = (size_t)(eq - kv);
	size_t i;
	json_t *v;
	json_array_foreach(env, i, v) {
		const char *s = json_string_value(v);
		if (s && strncmp(s, kv, n) == 0 && s[n] == '=')
			return json_array_set_new(env, i, json_string(kv));
	}
	return json_array_append_new(env, json_string(kv));
}

static int build_process(const struct oci_config *c, const json_t *req, struct oci_process *proc,
			 struct gr_error *err)
{
	gr_autojson json_t *pj = json_deep_copy(json_object_get(c->json, "process"));
	if (!pj)
		pj = json_pack("{s:s}", "cwd", "/");
	if (!pj)
		return gr_error_set(err, ENOMEM, "out of memory");
	json_t *args = json_object_get(req, "args");
	if (!json_is_array(args) || json_array_size(args) == 0)
		return gr_error_set(err, EINVAL, "exec: args: expected a non-empty array of strings");
	json_object_set(pj, "args", args);
	json_t *env = json_object_get(pj, "env");
	if (!json_is_array(env)) {
		env = json_array();
		json_object_set_new(pj, "env", env);
	}
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(req, "env"), i, v) {
		const char *kv = json_string_value(v);
		if (!kv || !strchr(kv, '=') || kv[0] == '=')
			return gr_error_set(err, EINVAL, "exec: env[%zu]: expected NAME=VALUE", i);
		if (env_set(env, kv) < 0)
			return gr_error_set(err, ENOMEM, "out of memory");
	}
	json_t *cwd = json_object_get(req, "cwd");
	if (json_is_string(cwd))
		json_object_set(pj, "cwd", cwd);
	json_t *user = json_object_get(pj, "user");
	if (!json_is_object(user)) {
		user = json_object();
		json_object_set_new(pj, "user", user);
	}
	json_object_del(user, "additionalGids");
	json_t *uid = json_object_get(req, "uid"), *gid = json_object_get(req, "gid");
	json_object_set_new(user, "uid", json_integer(json_is_integer(uid) ? json_integer_value(uid) : 0));
	json_object_set_new(user, "gid", json_integer(json_is_integer(gid) ? json_integer_value(gid) : 0));
	bool tty = json_is_true(json_object_get(req, "terminal"));
	json_object_set_new(pj, "terminal", json_boolean(tty));
	json_object_del(pj, "consoleSize");
	json_t *w = json_object_get(req, "width"), *h = json_object_get(req, "height");
	if (tty && json_integer_value(w) > 0 && json_integer_value(h) > 0)
		json_object_set_new(pj, "consoleSize", json_pack("{s:I, s:I}", "width", json_integer_value(w),
								  "height", json_integer_value(h)));
	return oci_process_parse(pj, "exec", proc, err);
}

int supervisor_exec(const char *containers_root, const char *name, const json_t *req,
		    const char *console_socket, struct gr_error *err)
{
	struct oci_config *cp = NULL;
	int r = container_load_config(containers_root, name, &cp, err);
	if (r < 0)
		return r;
	_cleanup_(oci_config_freep) struct oci_config *c = cp;
	_cleanup_(oci_process_free) struct oci_process proc = { 0 };
	if ((r = build_process(c, req, &proc, err)) < 0)
		return r;
	if (proc.terminal && !console_socket)
		return gr_error_set(err, EINVAL, "exec: a terminal needs a console socket");
	struct exec_opts eo = { .process = &proc, .console_socket = proc.terminal ? console_socket : NULL };
	int code = 0;
	if ((r = container_exec(containers_root, name, &eo, &code, err)) < 0)
		return r;
	return code;
}
