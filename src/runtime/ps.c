/* ps: the processes of a container: their pids as JSON, or the lines of
 * ps(1) (default "ps -ef") that belong to the container. */
#include "runtime.h"
#include "common/cleanup.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static bool has_pid(const pid_t *v, size_t n, long pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

int cmd_ps(struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = { { "format", required_argument, NULL, 'f' }, { 0 } };
	const char *format = "table";
	int c;
	while ((c = getopt_long(argc, argv, "+f:", opts, NULL)) != -1) {
		if (c != 'f')
			return runtime_usage("ps", "unknown option \"%s\"", argv[optind - 1]);
		format = optarg;
	}
	bool json = strcmp(format, "json") == 0;
	if (!json && strcmp(format, "table") != 0)
		return runtime_usage("ps", "--format: expected table or json, got \"%s\"", format);
	if (optind >= argc)
		return runtime_usage("ps", "a container id is required");
	const char *id = argv[optind++];
	struct gr_error err = { 0 };
	gr_autofree pid_t *pids = NULL;
	size_t n = 0;
	if (container_pids(g->root, id, &pids, &n, &err) < 0)
		return runtime_fail(&err);
	if (json) {
		if (optind < argc)
			return runtime_usage("ps", "--format json takes no ps(1) options");
		gr_autojson json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_integer(pids[i]));
		return runtime_print_json(a);
	}

	/* ps [options] with no shell: argv is passed as is. */
	int pfd[2];
	if (pipe(pfd) < 0)
		return runtime_usage("ps", "pipe failed");
	pid_t child = fork();
	if (child == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		char *def[] = { "ps", "-ef", NULL };
		char **args = def;
		if (optind < argc) {
			args = calloc((size_t)(argc - optind) + 2, sizeof(char *));
			if (!args)
				_exit(127);
			args[0] = "ps";
			for (int i = optind; i < argc; i++)
				args[i - optind + 1] = argv[i];
		}
		execvp("ps", args);
		_exit(127);
	}
	close(pfd[1]);
	gr_autofclose FILE *f = fdopen(pfd[0], "r");
	char line[4096];
	int pid_col = -1;
	while (f && fgets(line, sizeof(line), f)) {
		if (pid_col < 0) {
			char copy[4096];
			snprintf(copy, sizeof(copy), "%s", line);
			int col = 0;
			for (char *save, *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save), col++)
				if (strcmp(t, "PID") == 0) {
					pid_col = col;
					break;
				}
			if (pid_col < 0) {
				fprintf(stderr, "error: ps: the ps(1) output has no PID column\n");
				waitpid(child, NULL, 0);
				return 1;
			}
			fputs(line, stdout);
			continue;
		}
		char copy[4096];
		snprintf(copy, sizeof(copy), "%s", line);
		char *save, *t = strtok_r(copy, " \t\n", &save);
		for (int col = 0; t && col < pid_col; col++)
			t = strtok_r(NULL, " \t\n", &save);
		if (t && has_pid(pids, n, strtol(t, NULL, 10)))
			fputs(line, stdout);
	}
	int status;
	waitpid(child, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return runtime_usage("ps", "ps(1) failed (exit status %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
