/* gureum info NAME: the instance (GET /1.0/instances/NAME) and its state
 * (GET .../state): status, pid, CPU time, memory, processes, restarts, last
 * exit, config and command. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s && *s ? s : dflt;
}

static void print_time(const char *label, const char *ts)
{
	char buf[64];
	if (!ts || !*ts)
		return;
	cli_format_timestamp(ts, buf, sizeof(buf));
	printf("%s: %s\n", label, buf);
}

int cmd_info(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1) {
		if (opt == 'h')
			return cli_help(cli);
		return CLI_EXIT_USAGE;
	}
	if (optind >= argc)
		return cli_usage_error(cli, "an instance name is needed");
	if (optind + 1 < argc)
		return cli_usage_error(cli, "unexpected argument \"%s\" (one instance at a time)", argv[optind + 1]);
	const char *name = argv[optind];
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autofree char *path = cli_instance_path(name, NULL);
	gr_autofree char *state_path = cli_instance_path(name, "/state");
	if (!path || !state_path)
		return cli_error("out of memory");
	struct gr_error err = { 0 };
	gr_autojson json_t *inst = NULL;
	gr_autojson json_t *state = NULL;
	if (gr_client_query(c, "GET", path, NULL, &inst, &err) < 0 ||
	    gr_client_query(c, "GET", state_path, NULL, &state, &err) < 0)
		return cli_fail(&err);

	printf("Name: %s\n", str_or(inst, "name", name));
	printf("Type: %s\n", str_or(inst, "type", "container"));
	if (json_string_value(json_object_get(inst, "engine")))
		printf("Engine: %s\n", json_string_value(json_object_get(inst, "engine")));
	printf("Status: %s\n", str_or(state, "status", str_or(inst, "status", "")));
	const char *image = json_string_value(json_object_get(inst, "image"));
	if (!image)
		image = json_string_value(json_object_get(json_object_get(inst, "source"), "alias"));
	if (image)
		printf("Image: %s\n", image);
	print_time("Created", str_or(inst, "created_at", NULL));
	print_time("Last used", str_or(inst, "last_used_at", NULL));
	json_t *command = json_object_get(inst, "command");
	if (json_is_array(command) && json_array_size(command) > 0) {
		gr_autofree char *cmd = cli_shell_join(command);
		if (cmd)
			printf("Command: %s\n", cmd);
	}

	json_t *pid = json_object_get(state, "pid");
	if (json_is_integer(pid) && json_integer_value(pid) > 0)
		printf("PID: %" JSON_INTEGER_FORMAT "\n", json_integer_value(pid));
	char buf[64];
	json_t *cpu = json_object_get(json_object_get(state, "cpu"), "usage");
	if (json_is_integer(cpu) && json_integer_value(cpu) >= 0) {
		cli_format_duration_ns((uint64_t)json_integer_value(cpu), buf, sizeof(buf));
		printf("CPU time: %s\n", buf);
	}
	json_t *mem = json_object_get(json_object_get(state, "memory"), "usage");
	if (json_is_integer(mem) && json_integer_value(mem) >= 0) {
		cli_format_size((uint64_t)json_integer_value(mem), buf, sizeof(buf));
		printf("Memory: %s\n", buf);
	}
	json_t *procs = json_object_get(state, "processes");
	if (json_is_integer(procs) && json_integer_value(procs) >= 0)
		printf("Processes: %" JSON_INTEGER_FORMAT "\n", json_integer_value(procs));
	json_t *restarts = json_object_get(state, "restarts");
	if (json_is_integer(restarts))
		printf("Restarts: %" JSON_INTEGER_FORMAT "\n", json_integer_value(restarts));
	json_t *code = json_object_get(state, "exit_code");
	const char *reason = str_or(state, "stop_reason", str_or(inst, "stop_reason", NULL));
	if (json_is_integer(code) || reason) {
		printf("Last exit:");
		if (json_is_integer(code))
			printf(" %" JSON_INTEGER_FORMAT, json_integer_value(code));
		if (reason)
			printf("%s(%s)", json_is_integer(code) ? " " : " ", reason);
		putchar('\n');
	}
	json_t *config = json_object_get(inst, "config");
	if (json_is_object(config) && json_object_size(config) > 0) {
		printf("Config:\n");
		cli_yaml_dump(stdout, config, 2);
	}
	return 0;
}
