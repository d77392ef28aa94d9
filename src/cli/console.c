/* gureum console NAME: the instance's console over a WebSocket
 * (GET /1.0/instances/NAME/console, raw bytes both ways), with the local
 * terminal raw. Ctrl-a q detaches; SIGTERM/SIGHUP detach as well. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

struct console_session {
	struct cli_escape esc;
	int sfd;
	bool detached;
	bool out_broken;
};

static int on_message(struct gr_ws *ws, const void *data, size_t len, bool binary, void *user)
{
	struct console_session *s = user;
	(void)ws; (void)binary;
	if (!s->out_broken)
		s->out_broken = cli_write_all(STDOUT_FILENO, data, len) < 0;
	return 0;
}

static int on_fd(struct gr_ws *ws, int fd, void *user)
{
	struct console_session *s = user;
	if (fd == s->sfd) {
		struct signalfd_siginfo si;
		while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			if (si.ssi_signo != SIGWINCH) {
				s->detached = true;
				gr_ws_close(ws);
			}
		return 0;
	}
	unsigned char in[16384], out[16384 + 1];
	ssize_t n = read(fd, in, sizeof(in));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		/* Local input ended (a pipe): stay attached to print the
		 * output until the console ends or a signal detaches. */
		gr_ws_unwatch(ws, fd);
		return 0;
	}
	size_t olen;
	int r = cli_escape_feed(&s->esc, in, (size_t)n, out, &olen);
	if (olen && gr_ws_send(ws, out, olen, true) < 0)
		return gr_ws_fail(ws, ENOMEM, "out of memory");
	if (r < 0) {
		s->detached = true;
		gr_ws_close(ws);
	}
	return 0;
}

int cmd_console(struct cli *cli, int argc, char **argv)
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
		return cli_usage_error(cli, "unexpected argument \"%s\"", argv[optind + 1]);
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autofree char *path = cli_instance_path(argv[optind], "/console");
	if (!path)
		return cli_error("out of memory");

	sigset_t old;
	gr_autoclose int sfd = cli_signalfd(&old, SIGWINCH, 0);
	if (sfd < 0)
		return CLI_EXIT_FAIL;
	struct gr_error err = { 0 };
	bool term = isatty(STDIN_FILENO);
	if (term) {
		fprintf(stderr, "To detach from the console, press Ctrl-a q\n");
		if (cli_term_raw(STDIN_FILENO, &err) < 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			return cli_fail(&err);
		}
	}
	struct console_session s = { .sfd = sfd };
	const struct gr_ws_ops ops = { .on_message = on_message, .on_fd = on_fd, .user = &s };
	int fds[2] = { sfd, STDIN_FILENO };
	int r = gr_ws_run(c, path, &ops, fds, fcntl(STDIN_FILENO, F_GETFD) >= 0 ? 2 : 1, &err);
	cli_term_restore();
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return cli_fail(&err);
	if (term)
		fprintf(stderr, "\n%s\n", s.detached ? "Detached from the console." : "The console ended.");
	return 0;
}
