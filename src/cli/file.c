/* gureum file push|pull: a file into or out of a running instance
 * (POST/GET /1.0/instances/NAME/files?path=PATH; its mode and owner in the
 * X-Gureum-Mode, X-Gureum-Uid and X-Gureum-Gid headers):
 *
 *   push [--mode MODE] [--uid N] [--gid N] LOCAL NAME/PATH
 *        LOCAL - is stdin; a PATH ending in '/' gets LOCAL's name; the mode
 *        is LOCAL's (0644 for stdin) unless given; the owner 0:0 unless given
 *   pull NAME/PATH LOCAL
 *        LOCAL - is stdout; an existing directory gets PATH's name; a new
 *        file gets the instance file's permissions (less the umask)
 *
 * Files go through gureumd's memory: 64 MiB at most. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cleanup.h"

#define FILE_MAX (64u << 20)   /* the daemon's INSTANCE_FILE_MAX */

/* "NAME/PATH" -> name (malloc'd) and "/PATH" (malloc'd). */
static int split_target(const struct cli *cli, const char *arg, char **name, char **path)
{
	const char *slash = strchr(arg, '/');
	if (!slash || slash == arg || !slash[1])
		return cli_usage_error(cli, "\"%s\": expected INSTANCE/PATH (such as c1/etc/motd)", arg);
	*name = strndup(arg, (size_t)(slash - arg));
	*path = strdup(slash);
	if (!*name || !*path)
		return cli_error("out of memory");
	return 0;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* An error reply's message. */
static int reply_failure(const char *name, struct gr_response *resp)
{
	gr_autojson json_t *env = json_loadb(resp->body, resp->len, 0, NULL);
	const char *msg = json_string_value(json_object_get(env, "error"));
	struct gr_error err = { .code = EIO };
	if (msg && *msg)
		snprintf(err.msg, sizeof(err.msg), "%s", msg);
	else
		snprintf(err.msg, sizeof(err.msg), "gureumd answered with HTTP status %d", resp->status);
	cli_instance_error(name, &err);
	return CLI_EXIT_FAIL;
}

/* The whole of fd (at most FILE_MAX bytes). */
static int read_local(const char *what, int fd, char **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		return cli_error("out of memory");
	for (;;) {
		if (n == cap) {
			if (cap > FILE_MAX) {
				free(buf);
				return cli_error("%s: larger than %u MiB, the largest file gureum moves", what, FILE_MAX >> 20);
			}
			cap *= 2;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return cli_error("out of memory");
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			return cli_error("%s: cannot read: %s", what, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > FILE_MAX) {
		free(buf);
		return cli_error("%s: larger than %u MiB, the largest file gureum moves", what, FILE_MAX >> 20);
	}
	*out = buf;
	*len = n;
	return 0;
}

/* An octal mode or a decimal id. */
static int parse_num(const struct cli *cli, const char *opt, const char *s, int base, unsigned long max,
		     unsigned long *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long v = s[0] >= '0' && s[0] <= '9' ? strtoul(s, &end, base) : 0;
	if (!end || *end || errno || v > max)
		return cli_usage_error(cli, "%s: \"%s\" is not %s", opt, s,
				       base == 8 ? "an octal mode (0644...)" : "a number from 0 to 4294967294");
	*out = v;
	return 0;
}

static int file_push(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ 0 },
	};
	const char *mode_s = NULL, *uid_s = NULL, *gid_s = NULL;
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 'm': mode_s = optarg; break;
		case 'u': uid_s = optarg; break;
		case 'g': gid_s = optarg; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "file push: expected LOCAL INSTANCE/PATH");
	const char *local = argv[optind];
	unsigned long mode = 0644, uid = 0, gid = 0;
	int r;
	if ((mode_s && (r = parse_num(cli, "--mode", mode_s, 8, 07777, &mode)) != 0) ||
	    (uid_s && (r = parse_num(cli, "--uid", uid_s, 10, 4294967294ul, &uid)) != 0) ||
	    (gid_s && (r = parse_num(cli, "--gid", gid_s, 10, 4294967294ul, &gid)) != 0))
		return r;
	gr_autofree char *name = NULL, *path = NULL;
	if ((r = split_target(cli, argv[optind + 1], &name, &path)) != 0)
		return r;
	bool is_stdin = strcmp(local, "-") == 0;
	if (path[strlen(path) - 1] == '/') {
		if (is_stdin)
			return cli_usage_error(cli, "file push: with stdin (-) the target needs a file name, not \"%s\"", path);
		char *full = NULL;
		if (asprintf(&full, "%s%s", path, base_name(local)) < 0)
			return cli_error("out of memory");
		free(path);
		path = full;
	}
	gr_autoclose int fd = is_stdin ? dup(STDIN_FILENO) : open(local, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_error("%s: %s", local, strerror(errno));
	struct stat st;
	if (!is_stdin) {
		if (fstat(fd, &st) < 0)
			return cli_error("%s: %s", local, strerror(errno));
		if (!S_ISREG(st.st_mode))
			return cli_error("%s: not a regular file", local);
		if (!mode_s)
			mode = st.st_mode & 07777;
	}
	gr_autofree char *data = NULL;
	size_t len = 0;
	if ((r = read_local(is_stdin ? "stdin" : local, fd, &data, &len)) != 0)
		return r;
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autofree char *esc = cli_url_escape(path);
	gr_autofree char *suffix = NULL;
	if (!esc || asprintf(&suffix, "/files?path=%s", esc) < 0)
		return cli_error("out of memory");
	gr_autofree char *url = cli_instance_path(name, suffix);
	if (!url)
		return cli_error("out of memory");
	char mode_v[16], uid_v[16], gid_v[16];
	snprintf(mode_v, sizeof(mode_v), "%04lo", mode);
	snprintf(uid_v, sizeof(uid_v), "%lu", uid);
	snprintf(gid_v, sizeof(gid_v), "%lu", gid);
	const char *headers[] = { "X-Gureum-Type", "file", "X-Gureum-Mode", mode_v, "X-Gureum-Uid", uid_v,
				  "X-Gureum-Gid", gid_v, NULL };
	struct gr_http_extra x = { .body = data ? data : "", .body_len = len,
				   .content_type = "application/octet-stream", .headers = headers };
	struct gr_response resp;
	struct gr_error err = { 0 };
	if (gr_client_http_ex(c, "POST", url, &x, &resp, &err) < 0)
		return cli_fail(&err);
	int st_code = resp.status == 200 ? 0 : reply_failure(name, &resp);
	gr_response_clear(&resp);
	return st_code;
}

static int file_pull(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1)
		return opt == 'h' ? cli_help(cli) : CLI_EXIT_USAGE;
	if (argc - optind != 2)
		return cli_usage_error(cli, "file pull: expected INSTANCE/PATH LOCAL");
	gr_autofree char *name = NULL, *path = NULL, *target = NULL;
	int r;
	if ((r = split_target(cli, argv[optind], &name, &path)) != 0)
		return r;
	const char *local = argv[optind + 1];
	bool is_stdout = strcmp(local, "-") == 0;
	struct stat st;
	if (!is_stdout && stat(local, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (asprintf(&target, "%s/%s", local, base_name(path)) < 0)
			return cli_error("out of memory");
	} else if (!(target = strdup(local))) {
		return cli_error("out of memory");
	}
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autofree char *esc = cli_url_escape(path);
	gr_autofree char *suffix = NULL;
	if (!esc || asprintf(&suffix, "/files?path=%s", esc) < 0)
		return cli_error("out of memory");
	gr_autofree char *url = cli_instance_path(name, suffix);
	if (!url)
		return cli_error("out of memory");
	const char *want[] = { "X-Gureum-Mode", NULL };
	char got[1][256];
	struct gr_http_extra x = { .want = want, .got = got };
	struct gr_response resp;
	struct gr_error err = { 0 };
	if (gr_client_http_ex(c, "GET", url, &x, &resp, &err) < 0)
		return cli_fail(&err);
	if (resp.status != 200) {
		int s = reply_failure(name, &resp);
		gr_response_clear(&resp);
		return s;
	}
	int w;
	if (is_stdout) {
		w = cli_write_all(STDOUT_FILENO, resp.body, resp.len);
		gr_response_clear(&resp);
		if (w < 0 && w != -EPIPE)
			return cli_error("writing to stdout: %s", strerror(-w));
		return 0;
	}
	char *end = NULL;
	unsigned long mode = got[0][0] ? strtoul(got[0], &end, 8) : 0644;
	if (!end || *end || mode > 07777)
		mode = 0644;
	int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, (mode_t)(mode & 0777));
	if (fd < 0) {
		int e = errno;
		gr_response_clear(&resp);
		return cli_error("%s: %s", target, strerror(e));
	}
	w = cli_write_all(fd, resp.body, resp.len);
	gr_response_clear(&resp);
	if (w < 0 || close(fd) < 0)
		return cli_error("%s: cannot write: %s", target, strerror(w < 0 ? -w : errno));
	return 0;
}

int cmd_file(struct cli *cli, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return argc < 2 ? cli_usage_error(cli, "a subcommand is needed (push, pull)") : cli_help(cli);
	optind = 0;
	if (strcmp(argv[1], "push") == 0)
		return file_push(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "pull") == 0)
		return file_pull(cli, argc - 1, argv + 1);
	return cli_usage_error(cli, "unknown subcommand \"%s\" (push, pull)", argv[1]);
}
