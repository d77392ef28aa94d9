/* exec: run a new process inside a running container, from --process FILE
 * or from the command line over the container's own process settings. */
#include "runtime.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"
#include "container/security.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int strv_append(char ***v, const char *s)
{
	size_t n = gr_strv_len(*v);
	char **nv = realloc(*v, (n + 2) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	nv[n] = strdup(s);
	nv[n + 1] = NULL;
	*v = nv;
	return nv[n] ? 0 : -ENOMEM;
}

/* Replaces or adds NAME=VALUE in env. */
static int env_set(char ***env, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t n = eq ? (size_t)(eq - kv) : strlen(kv);
	for (char **e = *env; e && *e; e++)
		if (strncmp(*e, kv, n) == 0 && (*e)[n] == '=') {
			char *d = strdup(kv);
			if (!d)
				return -ENOMEM;
			free(*e);
			*e = d;
			return 0;
		}
	return strv_append(env, kv);
}

static int parse_user(const char *s, struct oci_user *u)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", s);
	char *colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	uint64_t uid, gid;
	if (gr_parse_u64(buf, &uid) < 0 || uid > UINT32_MAX)
		return -EINVAL;
	u->uid = (uint32_t)uid;
	if (colon) {
		if (gr_parse_u64(colon + 1, &gid) < 0 || gid > UINT32_MAX)
			return -EINVAL;
		u->gid = (uint32_t)gid;
	}
	return 0;
}

int cmd_exec(struct globals *g, int argc, char **argv)
{
	enum { O_PID_FILE = 256, O_CONSOLE, O_CWD, O_NNP, O_PRESERVE, O_APPARMOR, O_LABEL, O_IGNORE };
	static const struct option opts[] = {
		{ "process", required_argument, NULL, 'p' },
		{ "detach", no_argument, NULL, 'd' },
		{ "tty", no_argument, NULL, 't' },
		{ "cwd", required_argument, NULL, O_CWD },
		{ "env", required_argument, NULL, 'e' },
		{ "user", required_argument, NULL, 'u' },
		{ "additional-gids", required_argument, NULL, 'g' },
		{ "cap", required_argument, NULL, 'c' },
		{ "pid-file", required_argument, NULL, O_PID_FILE },
		{ "console-socket", required_argument, NULL, O_CONSOLE },
		{ "no-new-privs", no_argument, NULL, O_NNP },
		{ "preserve-fds", required_argument, NULL, O_PRESERVE },
		{ "apparmor", required_argument, NULL, O_APPARMOR },
		{ "process-label", required_argument, NULL, O_LABEL },
		{ "no-subreaper", no_argument, NULL, O_IGNORE },
		{ 0 },
	};
	struct exec_opts eo = { 0 };
	const char *process_file = NULL, *cwd = NULL, *user = NULL;
	bool tty = false, nnp = false;
	gr_autostrv char **envs = NULL, **caps = NULL, **gids = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "+p:dte:u:g:c:", opts, NULL)) != -1) {
		switch (c) {
		case 'p': process_file = optarg; break;
		case 'd': eo.detach = true; break;
		case 't': tty = true; break;
		case O_CWD: cwd = optarg; break;
		case 'e': strv_append(&envs, optarg); break;
		case 'u': user = optarg; break;
		case 'g': strv_append(&gids, optarg); break;
		case 'c': strv_append(&caps, optarg); break;
		case O_PID_FILE: eo.pid_file = optarg; break;
		case O_CONSOLE: eo.console_socket = optarg; break;
		case O_NNP: nnp = true; break;
		case O_PRESERVE:
			if (runtime_parse_int("exec", "--preserve-fds", optarg, 0, &eo.preserve_fds))
				return 1;
			break;
		case O_APPARMOR:
		case O_LABEL:
			return runtime_usage("exec", "%s: not supported (no AppArmor/SELinux support)", argv[optind - 2]);
		case O_IGNORE:
			break;
		default:
			return runtime_usage("exec", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return runtime_usage("exec", "a container id is required");
	const char *id = argv[optind++];
	struct gr_error err = { 0 };

	_cleanup_(oci_process_free) struct oci_process proc = { 0 };
	if (process_file) {
		if (optind < argc)
			return runtime_usage("exec", "--process and a command line cannot be combined");
		gr_autojson json_t *j = NULL;
		if (gr_json_load_file(process_file, &j, &err) < 0 ||
		    oci_process_parse(j, process_file, &proc, &err) < 0)
			return runtime_fail(&err);
	} else {
		if (optind >= argc)
			return runtime_usage("exec", "a command to run is required (or --process FILE)");
		/* The container's own process settings, with this command line. */
		struct oci_config *cp = NULL;
		if (container_load_config(g->root, id, &cp, &err) < 0)
			return runtime_fail(&err);
		_cleanup_(oci_config_freep) struct oci_config *cfg = cp;
		gr_autojson json_t *pj = json_deep_copy(json_object_get(cfg->json, "process"));
		if (!pj)
			pj = json_pack("{s:s}", "cwd", "/");
		json_t *args = json_array();
		for (int i = optind; i < argc; i++)
			json_array_append_new(args, json_string(argv[i]));
		json_object_set_new(pj, "args", args);
		json_object_set_new(pj, "terminal", json_boolean(false));
		json_object_del(pj, "consoleSize");
		if (oci_process_parse(pj, "process", &proc, &err) < 0)
			return runtime_fail(&err);
	}
	if (tty)
		proc.terminal = true;
	if (cwd) {
		free(proc.cwd);
		proc.cwd = strdup(cwd);
	}
	if (nnp)
		proc.no_new_privileges = true;
	for (char **e = envs; e && *e; e++)
		if (!strchr(*e, '=') || env_set(&proc.env, *e) < 0)
			return runtime_usage("exec", "--env: expected NAME=VALUE, got \"%s\"", *e);
	if (user && parse_user(user, &proc.user) < 0)
		return runtime_usage("exec", "--user: expected UID[:GID], got \"%s\"", user);
	for (char **gid = gids; gid && *gid; gid++) {
		uint64_t v;
		if (gr_parse_u64(*gid, &v) < 0 || v > UINT32_MAX)
			return runtime_usage("exec", "--additional-gids: expected a number, got \"%s\"", *gid);
		uint32_t *n = realloc(proc.user.additional_gids, (proc.user.n_additional_gids + 1) * sizeof(uint32_t));
		if (!n)
			return runtime_usage("exec", "out of memory");
		proc.user.additional_gids = n;
		n[proc.user.n_additional_gids++] = (uint32_t)v;
	}
	for (char **cap = caps; cap && *cap; cap++) {
		if (caps_from_name(*cap) < 0)
			return runtime_usage("exec", "--cap: unknown capability \"%s\"", *cap);
		char ***sets[] = { &proc.caps.bounding, &proc.caps.effective, &proc.caps.permitted,
				   &proc.caps.ambient, &proc.caps.inheritable };
		for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
			strv_append(sets[i], *cap);
		proc.has_caps = true;
	}
	eo.process = &proc;
	int code = 0;
	if (container_exec(g->root, id, &eo, &code, &err) < 0)
		return runtime_fail(&err);
	return code;
}
