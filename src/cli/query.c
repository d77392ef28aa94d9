/* gureum query [-X METHOD] PATH [BODY]: one raw API request. Prints the
 * envelope's metadata (or the whole envelope with --raw) as indented JSON;
 * with --wait, an async answer's operation is waited for and printed. Exits
 * 1 on an error envelope, after printing its error (and, with --raw, the
 * envelope). `gureum query METHOD PATH [BODY]` (the form) works
 * too: a first operand that is an HTTP method is taken as one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cleanup.h"

static bool is_method(const char *s)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(s, methods[i]) == 0)
			return true;
	return false;
}

static int print_json(const json_t *v)
{
	if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) < 0)
		return cli_error("writing JSON failed");
	putchar('\n');
	return 0;
}

int cmd_query(struct cli *cli, int argc, char **argv)
{
	enum { OPT_RAW = 0x100, OPT_WAIT };
	static const struct option longopts[] = {
		{ "request", required_argument, NULL, 'X' },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "wait", no_argument, NULL, OPT_WAIT },
		{ 0 },
	};
	const char *method = NULL;
	bool raw = false, wait = false;
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "X:", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 'X':
			if (!is_method(optarg))
				return cli_usage_error(cli, "-X %s: expected GET, POST, PUT, PATCH or DELETE", optarg);
			method = optarg;
			break;
		case OPT_RAW: raw = true; break;
		case OPT_WAIT: wait = true; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	int n = argc - optind;
	char **ops = argv + optind;
	if (n >= 2 && is_method(ops[0])) {
		if (method && strcmp(method, ops[0]) != 0)
			return cli_usage_error(cli, "the method is given twice (-X %s and %s)", method, ops[0]);
		method = ops[0];
		ops++;
		n--;
	}
	if (n < 1)
		return cli_usage_error(cli, "a path is needed (gureum query [-X METHOD] PATH [BODY])");
	if (n > 2)
		return cli_usage_error(cli, "unexpected argument \"%s\"", ops[2]);
	const char *path = ops[0];
	if (path[0] != '/')
		return cli_usage_error(cli, "%s: the path must start with / (for example /1.0/instances)", path);
	if (strpbrk(path, " \t\r\n"))
		return cli_usage_error(cli, "%s: the path holds white space (percent-encode it)", path);
	gr_autojson json_t *body = NULL;
	if (n == 2) {
		json_error_t jerr;
		if (strcmp(ops[1], "-") == 0)
			body = json_loadf(stdin, JSON_DECODE_ANY, &jerr);
		else
			body = json_loads(ops[1], JSON_DECODE_ANY, &jerr);
		if (!body)
			return cli_usage_error(cli, "the body is not JSON: %s at line %d, column %d", jerr.text,
					       jerr.line, jerr.column);
	}
	if (!method)
		method = body ? "POST" : "GET";

	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	struct gr_error err = { 0 };
	gr_autojson json_t *env = NULL;
	int r = gr_client_call(c, method, path, body, &env, &err);
	if (r < 0) {
		if (raw && env)
			print_json(env);
		return cli_fail(&err);
	}
	const char *type = json_string_value(json_object_get(env, "type"));
	const char *op_url = json_string_value(json_object_get(env, "operation"));
	if (wait && type && strcmp(type, "async") == 0 && op_url && *op_url) {
		gr_autojson json_t *op = NULL;
		r = gr_client_wait(c, op_url, &op, &err);
		if (op)
			print_json(op);
		return r < 0 ? cli_fail(&err) : 0;
	}
	if (raw)
		return print_json(env);
	json_t *md = json_object_get(env, "metadata");
	return print_json(md ? md : json_null());
}
