/* features: what this runtime supports, in the runtime-spec "features" JSON
 * document (features.md), built from the tables the library itself uses. */
#include "runtime.h"
#include "common/cleanup.h"
#include "container/config.h"
#include "container/mountopt.h"
#include "container/security.h"

#include <getopt.h>

static json_t *strings(const char *const *v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static void add_name(const char *name, void *data)
{
	json_array_append_new(data, json_string(name));
}

int cmd_features(struct globals *g, int argc, char **argv)
{
	(void)g;
	if (getopt_long(argc, argv, "+", (const struct option[]){ { 0 } }, NULL) != -1 || optind < argc)
		return runtime_usage("features", "takes no arguments");
	json_t *hooks = json_array();
	for (int k = 0; k < OCI_HOOK_KINDS; k++)
		json_array_append_new(hooks, json_string(oci_hook_names[k]));
	json_t *ns = json_array();
	for (int t = 0; t < OCI_NS_TYPES; t++)
		json_array_append_new(ns, json_string(oci_ns_names[t]));
	json_t *mount_opts = json_array();
	mount_options_foreach(add_name, mount_opts);
	json_t *caps = json_array();
	for (int c = 0; c <= caps_last_cap(); c++)
		if (caps_to_name(c))
			json_array_append_new(caps, json_string(caps_to_name(c)));
	gr_autojson json_t *doc = json_pack(
		"{s:s, s:s, s:o, s:o, s:{s:o, s:o, s:{s:b, s:b, s:b, s:b}, s:{s:b, s:o, s:o, s:o, s:o, s:o},"
		" s:{s:b}, s:{s:b}, s:{s:b}, s:{s:{s:b}}}, s:{s:s, s:s}}",
		"ociVersionMin", "1.0.0", "ociVersionMax", "1.2.0",
		"hooks", hooks,
		"mountOptions", mount_opts,
		"linux",
		"namespaces", ns,
		"capabilities", caps,
		"cgroup", "v1", 1, "v2", 1, "systemd", 0, "systemdUser", 0,
		"seccomp", "enabled", 1, "actions", strings(seccomp_action_names),
		"operators", strings(seccomp_operator_names), "archs", strings(seccomp_arch_names),
		"knownFlags", strings(seccomp_flag_names), "supportedFlags", strings(seccomp_flag_names),
		"apparmor", "enabled", 0,
		"selinux", "enabled", 0,
		"intelRdt", "enabled", 0,
		"mountExtensions", "idmap", "enabled", 0,
		"annotations", "org.opencontainers.runc.checkpoint.enabled", "false",
		"io.github.gureum.runtime.version", "0.1.0");
	return runtime_print_json(doc);
}
