/* gureum start|stop|restart|pause|resume NAME...: PUT
 * /1.0/instances/NAME/state {"action", "timeout", "force"} for every name
 * first (the daemon works on them in parallel), then waits for each
 * operation. Every failure is reported; the exit status is 1 if any. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

/* "NAME: message" unless the message already names the instance. */
void cli_instance_error(const char *name, const struct gr_error *err)
{
	if (strstr(err->msg, name))
		cli_fail(err);
	else
		cli_error("%s: %s", name, err->msg);
}

/* The request for every name first (the daemon works on them in parallel),
 * then the wait for each operation; every failure is reported. */
int cli_instances_run(struct gr_client *c, const char *method, const char *suffix, const json_t *body,
		      char **names, int n)
{
	int status = 0;
	struct gr_error err = { 0 };
	gr_autofree char **ops = calloc((size_t)n, sizeof(*ops));
	if (!ops)
		return cli_error("out of memory");
	for (int i = 0; i < n; i++) {
		gr_autofree char *path = cli_instance_path(names[i], suffix);
		gr_autojson json_t *env = NULL;
		if (!path)
			return cli_error("out of memory");
		gr_error_clear(&err);
		if (gr_client_call(c, method, path, body, &env, &err) < 0) {
			cli_instance_error(names[i], &err);
			status = CLI_EXIT_FAIL;
			continue;
		}
		const char *url = json_string_value(json_object_get(env, "operation"));
		if (url && *url)
			ops[i] = strdup(url);
	}
	for (int i = 0; i < n; i++) {
		if (!ops[i])
			continue;
		gr_autojson json_t *op = NULL;
		gr_error_clear(&err);
		if (gr_client_wait(c, ops[i], &op, &err) < 0) {
			cli_instance_error(names[i], &err);
			status = CLI_EXIT_FAIL;
		}
		free(ops[i]);
	}
	return status;
}

int cmd_state(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'f' },
		{ 0 },
	};
	const char *action = cli->command;
	bool stops = strcmp(action, "stop") == 0 || strcmp(action, "restart") == 0;
	long timeout = -1;
	bool force = false;
	int opt;
	struct gr_error err = { 0 };
	while ((opt = cli_getopt(cli, argc, argv, stops ? "t:f" : "", stops ? longopts : NULL)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 't':
			if (cli_parse_long(optarg, "--timeout", 0, 86400, &timeout, &err) < 0)
				return cli_usage_error(cli, "%s", err.msg);
			break;
		case 'f': force = true; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(cli, "at least one instance name is needed");
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autojson json_t *body = json_pack("{s:s}", "action", action);
	if (!body || (timeout >= 0 && json_object_set_new(body, "timeout", json_integer(timeout)) < 0) ||
	    (force && json_object_set_new(body, "force", json_true()) < 0))
		return cli_error("out of memory");
	return cli_instances_run(c, "PUT", "/state", body, argv + optind, argc - optind);
}
