/* gureum logs [-f] NAME: the instance's console log (GET
 * /1.0/instances/NAME/logs, text/plain, rotated files first); with -f, the
 * WebSocket of .../logs?follow=1, which sends the log so far and then what
 * is appended (one stream: no gap, no duplicate), until Ctrl-C or the
 * instance's deletion. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cleanup.h"

static int on_message(struct gr_ws *ws, const void *data, size_t len, bool binary, void *user)
{
	(void)binary; (void)user;
	if (cli_write_all(STDOUT_FILENO, data, len) < 0)
		gr_ws_close(ws); /* stdout went away (| head) */
	return 0;
}

static int on_signal(struct gr_ws *ws, int fd, void *user)
{
	struct signalfd_siginfo si;
	(void)user;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		gr_ws_close(ws);
	return 0;
}

int cmd_logs(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ 0 },
	};
	bool follow = false;
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "f", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 'f': follow = true; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(cli, "an instance name is needed");
	if (optind + 1 < argc)
		return cli_usage_error(cli, "unexpected argument \"%s\"", argv[optind + 1]);
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autofree char *path = cli_instance_path(argv[optind], "/logs");
	gr_autofree char *follow_path = cli_instance_path(argv[optind], "/logs?follow=1");
	if (!path || !follow_path)
		return cli_error("out of memory");
	struct gr_error err = { 0 };
	if (follow)
		goto follow;
	struct gr_response resp;
	if (gr_client_http(c, "GET", path, NULL, &resp, &err) < 0)
		return cli_fail(&err);
	if (resp.status != 200) {
		/* An error envelope. */
		json_error_t jerr;
		gr_autojson json_t *env = json_loadb(resp.body, resp.len, 0, &jerr);
		const char *msg = json_string_value(json_object_get(env, "error"));
		int st = cli_error("%s", msg && *msg ? msg : "gureumd could not read the log");
		gr_response_clear(&resp);
		return st;
	}
	int w = cli_write_all(STDOUT_FILENO, resp.body, resp.len);
	gr_response_clear(&resp);
	if (w < 0)
		return w == -EPIPE ? 0 : cli_error("writing to stdout: %s", strerror(-w));
	return 0;

follow:;
	sigset_t old;
	gr_autoclose int sfd = cli_signalfd(&old, 0);
	if (sfd < 0)
		return CLI_EXIT_FAIL;
	const struct gr_ws_ops ops = { .on_message = on_message, .on_fd = on_signal };
	int r = gr_ws_run(c, follow_path, &ops, &sfd, 1, &err);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r < 0 ? cli_fail(&err) : 0;
}
