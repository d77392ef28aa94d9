/* gureum monitor [--type lifecycle,operation]: the events WebSocket
 * (GET /1.0/events?type=...), one JSON object per line on stdout, flushed
 * per event, until Ctrl-C or gureumd goes away. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

static int on_message(struct gr_ws *ws, const void *data, size_t len, bool binary, void *user)
{
	bool *stopped = user;
	(void)binary;
	const char *p = data;
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	if (cli_write_all(STDOUT_FILENO, p, len) < 0 || cli_write_all(STDOUT_FILENO, "\n", 1) < 0) {
		*stopped = true; /* stdout went away (| head) */
		gr_ws_close(ws);
	}
	return 0;
}

static int on_signal(struct gr_ws *ws, int fd, void *user)
{
	struct signalfd_siginfo si;
	bool *stopped = user;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		*stopped = true;
		gr_ws_close(ws);
	}
	return 0;
}

int cmd_monitor(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "type", required_argument, NULL, 't' },
		{ 0 },
	};
	const char *types = NULL;
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "t:", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 't': types = optarg; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error(cli, "unexpected argument \"%s\"", argv[optind]);
	if (types) {
		gr_autofree char *copy = strdup(types);
		if (!copy)
			return cli_error("out of memory");
		char *save = NULL;
		int n = 0;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save), n++)
			if (strcmp(t, "lifecycle") != 0 && strcmp(t, "operation") != 0)
				return cli_usage_error(cli, "--type %s: unknown event type \"%s\" "
						       "(expected lifecycle, operation)", types, t);
		if (n == 0)
			return cli_usage_error(cli, "--type: no event type given");
	}
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autofree char *path = NULL;
	gr_autofree char *esc = types ? cli_url_escape(types) : NULL;
	if ((types && !esc) || asprintf(&path, "/1.0/events%s%s", types ? "?type=" : "", types ? esc : "") < 0)
		return cli_error("out of memory");

	sigset_t old;
	gr_autoclose int sfd = cli_signalfd(&old, 0);
	if (sfd < 0)
		return CLI_EXIT_FAIL;
	struct gr_error err = { 0 };
	bool stopped = false;
	const struct gr_ws_ops ops = { .on_message = on_message, .on_fd = on_signal, .user = &stopped };
	int r = gr_ws_run(c, path, &ops, &sfd, 1, &err);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return cli_fail(&err);
	if (!stopped)
		return cli_error("gureumd closed the event stream (it stopped?)");
	return 0;
}
