/* list: every container under --root, as a table or JSON. */
#include "runtime.h"
#include "common/cleanup.h"

#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

int cmd_list(struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = { { "format", required_argument, NULL, 'f' },
					      { "quiet", no_argument, NULL, 'q' }, { 0 } };
	const char *format = "table";
	bool quiet = false;
	int c;
	while ((c = getopt_long(argc, argv, "+f:q", opts, NULL)) != -1) {
		if (c == 'f')
			format = optarg;
		else if (c == 'q')
			quiet = true;
		else
			return runtime_usage("list", "unknown option \"%s\"", argv[optind - 1]);
	}
	bool json = strcmp(format, "json") == 0;
	if (!json && strcmp(format, "table") != 0)
		return runtime_usage("list", "--format: expected table or json, got \"%s\"", format);
	if (optind < argc)
		return runtime_usage("list", "unexpected argument \"%s\"", argv[optind]);

	gr_autojson json_t *all = json_array();
	gr_autoclosedir DIR *d = opendir(g->root);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		struct container_state st;
		struct gr_error err = { 0 };
		if (state_load(g->root, e->d_name, &st, &err) < 0)
			continue; /* being created or deleted right now */
		enum container_status s;
		container_status(g->root, &st, &s);
		json_array_append_new(all, state_to_json(&st, s));
		state_free(&st);
	}
	if (json)
		return runtime_print_json(all);
	size_t i;
	json_t *v;
	if (!quiet)
		printf("%-20s %-8s %-10s %-40s %-31s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
	json_array_foreach(all, i, v) {
		if (quiet) {
			printf("%s\n", json_string_value(json_object_get(v, "id")));
			continue;
		}
		printf("%-20s %-8lld %-10s %-40s %-31s %s\n", json_string_value(json_object_get(v, "id")),
		       json_integer_value(json_object_get(v, "pid")),
		       json_string_value(json_object_get(v, "status")),
		       json_string_value(json_object_get(v, "bundle")),
		       json_string_value(json_object_get(v, "created")),
		       json_string_value(json_object_get(v, "owner")));
	}
	return 0;
}
