/* gureum exec NAME [-t|-T] [--env K=V]... [--cwd DIR] [--user UID[:GID]]
 * -- COMMAND...: POST /1.0/instances/NAME/exec with "wait-for-websocket",
 * then relays over the operation's WebSocket (README "Exec"): stdin as
 * channel 0 and its end as {"eof":true}, channels 1 and 2 to stdout and
 * stderr, SIGWINCH as {"resize"}, INT/TERM/HUP/QUIT as {"signal"}. When the
 * server closes the WebSocket, the operation's "return" is gureum's exit
 * status. With -t the local terminal is raw for the session and restored
 * on every exit path. */
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

struct exec_session {
	bool tty;
	bool stdin_open;
	bool eof_sent;
	int sfd;
	bool out_broken, err_broken;
};

static int send_control(struct gr_ws *ws, json_t *msg)
{
	gr_autofree char *text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text)
		return gr_ws_fail(ws, ENOMEM, "out of memory");
	if (gr_ws_send_channel(ws, 3, text, strlen(text)) < 0)
		return gr_ws_fail(ws, ENOMEM, "out of memory");
	return 0;
}

static int send_eof(struct gr_ws *ws, struct exec_session *s)
{
	s->stdin_open = false;
	gr_ws_unwatch(ws, STDIN_FILENO);
	if (s->eof_sent)
		return 0;
	s->eof_sent = true;
	return send_control(ws, json_pack("{s:b}", "eof", 1));
}

/* No stdin at all (closed descriptor): its end at once. */
static int on_open(struct gr_ws *ws, void *user)
{
	struct exec_session *s = user;
	return s->stdin_open ? 0 : send_eof(ws, s);
}

static int on_message(struct gr_ws *ws, const void *data, size_t len, bool binary, void *user)
{
	struct exec_session *s = user;
	const unsigned char *p = data;
	(void)ws;
	if (!binary || len < 1)
		return 0;
	if (p[0] == 1 && !s->out_broken)
		s->out_broken = cli_write_all(STDOUT_FILENO, p + 1, len - 1) < 0;
	else if (p[0] == 2 && !s->err_broken)
		s->err_broken = cli_write_all(STDERR_FILENO, p + 1, len - 1) < 0;
	return 0;
}

static int on_fd(struct gr_ws *ws, int fd, void *user)
{
	struct exec_session *s = user;
	if (fd == STDIN_FILENO) {
		char buf[65536];
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return 0;
		if (n <= 0) /* end, or EIO from a terminal that went away */
			return send_eof(ws, s);
		if (gr_ws_send_channel(ws, 0, buf, (size_t)n) < 0)
			return gr_ws_fail(ws, ENOMEM, "out of memory");
		return 0;
	}
	struct signalfd_siginfo si;
	while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGWINCH) {
			unsigned w, h;
			cli_term_size(STDIN_FILENO, &w, &h);
			if (!w)
				cli_term_size(STDOUT_FILENO, &w, &h);
			if (s->tty && w && h &&
			    send_control(ws, json_pack("{s:{s:i,s:i}}", "resize", "width", (int)w,
						       "height", (int)h)) < 0)
				return -1;
			continue;
		}
		if (send_control(ws, json_pack("{s:i}", "signal", (int)si.ssi_signo)) < 0)
			return -1;
	}
	return 0;
}

int cmd_exec(struct cli *cli, int argc, char **argv)
{
	enum { OPT_ENV = 0x100, OPT_CWD, OPT_USER };
	static const struct option longopts[] = {
		{ "tty", no_argument, NULL, 't' },
		{ "no-tty", no_argument, NULL, 'T' },
		{ "env", required_argument, NULL, OPT_ENV },
		{ "cwd", required_argument, NULL, OPT_CWD },
		{ "user", required_argument, NULL, OPT_USER },
		{ 0 },
	};
	int force_tty = -1; /* -1: decide from stdin and stdout */
	gr_autojson json_t *env = json_object();
	const char *cwd = NULL;
	uint32_t uid = 0, gid = 0;
	bool has_user = false, has_gid = false;
	struct gr_error err = { 0 };
	int opt;
	if (!env)
		return cli_error("out of memory");
	int dd = cli_dashdash(argc, argv);
	while ((opt = cli_getopt(cli, dd, argv, "tT", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 't': force_tty = 1; break;
		case 'T': force_tty = 0; break;
		case OPT_ENV: {
			gr_autofree char *k = NULL;
			gr_autofree char *v = NULL;
			if (cli_parse_key_value(optarg, "--env", &k, &v, &err) < 0)
				return cli_usage_error(cli, "%s", err.msg);
			json_t *js = json_string(v);
			if (!js || json_object_set_new(env, k, js) < 0)
				return cli_usage_error(cli, "--env %s: not valid UTF-8", optarg);
			break;
		}
		case OPT_CWD:
			if (optarg[0] != '/')
				return cli_usage_error(cli, "--cwd %s: the directory must be an absolute path", optarg);
			cwd = optarg;
			break;
		case OPT_USER:
			if (cli_parse_user(optarg, &uid, &gid, &has_gid, &err) < 0)
				return cli_usage_error(cli, "%s", err.msg);
			has_user = true;
			break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind >= dd)
		return cli_usage_error(cli, "an instance name is needed (gureum exec NAME -- COMMAND...)");
	const char *name = argv[optind];
	gr_autojson json_t *command = NULL;
	if (dd < argc) {
		if (optind + 1 < dd)
			return cli_usage_error(cli, "unexpected argument \"%s\" before --", argv[optind + 1]);
		command = cli_argv_json(cli, argv, dd + 1, argc);
	} else {
		command = cli_argv_json(cli, argv, optind + 1, argc);
	}
	if (!command)
		return CLI_EXIT_USAGE;
	if (json_array_size(command) == 0)
		return cli_usage_error(cli, "a command is needed (gureum exec NAME -- COMMAND...)");

	bool tty = force_tty >= 0 ? force_tty : (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
	bool stdin_ok = fcntl(STDIN_FILENO, F_GETFD) >= 0;
	unsigned width = 0, height = 0;
	if (tty) {
		cli_term_size(STDIN_FILENO, &width, &height);
		if (!width)
			cli_term_size(STDOUT_FILENO, &width, &height);
	}
	gr_autojson json_t *body = json_pack("{s:O,s:b,s:b}", "command", command, "interactive", tty,
					     "wait-for-websocket", 1);
	if (!body)
		return cli_error("out of memory");
	if (json_object_size(env) && json_object_set(body, "environment", env) < 0)
		return cli_error("out of memory");
	if (cwd && json_object_set_new(body, "cwd", json_string(cwd)) < 0)
		return cli_error("out of memory");
	if (has_user && json_object_set_new(body, "user", json_integer(uid)) < 0)
		return cli_error("out of memory");
	if (has_gid && json_object_set_new(body, "group", json_integer(gid)) < 0)
		return cli_error("out of memory");
	if (tty && width && height &&
	    (json_object_set_new(body, "width", json_integer(width)) < 0 ||
	     json_object_set_new(body, "height", json_integer(height)) < 0))
		return cli_error("out of memory");

	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autofree char *path = cli_instance_path(name, "/exec");
	if (!path)
		return cli_error("out of memory");
	gr_autojson json_t *envelope = NULL;
	if (gr_client_call(c, "POST", path, body, &envelope, &err) < 0)
		return cli_fail(&err);
	const char *op_url = json_string_value(json_object_get(envelope, "operation"));
	json_t *md = json_object_get(envelope, "metadata");
	json_t *opmd = json_object_get(md, "metadata");
	const char *ws_url = json_string_value(json_object_get(opmd, "websocket"));
	if (!ws_url)
		ws_url = json_string_value(json_object_get(md, "websocket"));
	if (!op_url || !*op_url || !ws_url)
		return cli_error("exec: gureumd did not give an operation with a WebSocket");

	/* Signals become messages while the session runs. */
	sigset_t old;
	gr_autoclose int sfd = cli_signalfd(&old, SIGWINCH, SIGQUIT, 0);
	if (sfd < 0)
		return CLI_EXIT_FAIL;
	struct exec_session s = { .tty = tty, .stdin_open = stdin_ok, .sfd = sfd };
	if (tty && isatty(STDIN_FILENO) && cli_term_raw(STDIN_FILENO, &err) < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return cli_fail(&err);
	}
	const struct gr_ws_ops ops = { .on_open = on_open, .on_message = on_message, .on_fd = on_fd, .user = &s };
	int fds[2] = { sfd, STDIN_FILENO };
	int r = gr_ws_run(c, ws_url, &ops, fds, stdin_ok ? 2 : 1, &err);
	cli_term_restore();
	if (r < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return cli_fail(&err);
	}
	gr_autojson json_t *op = NULL;
	gr_error_clear(&err);
	r = gr_client_wait(c, op_url, &op, &err);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return cli_fail(&err);
	json_t *ret = json_object_get(json_object_get(op, "metadata"), "return");
	if (!json_is_integer(ret))
		return cli_error("exec: the operation has no exit code");
	json_int_t code = json_integer_value(ret);
	return code < 0 || code > 255 ? CLI_EXIT_FAIL : (int)code;
}
