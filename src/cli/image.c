/* gureum image import|build|export|list|info|delete|alias (/1.0/images):
 *   import FILE|DIR [--alias NAME]...   an OCI layout (directory or tarball),
 *                                       a docker-archive or a rootfs tarball
 *   build busybox|debian/12
 *   export NAME FILE                    an OCI layout tarball (podman load -i FILE)
 *   list [--format table|json|yaml|csv]
 *   info NAME
 *   delete NAME...
 *   alias add NAME TARGET | alias delete NAME | alias list
 * Imports, builds and exports are operations: their progress goes to stderr
 * (a line redrawn while stderr is a terminal), then one final line. Files are
 * sent as absolute paths (realpath): the daemon reads and writes them itself,
 * which it allows over the unix socket only. Aliases with a '/' travel as
 * %2F; the daemon decodes them (src/daemon/README.md "Images"). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

static char *image_path(const char *ref, const char *suffix)
{
	gr_autofree char *esc = cli_url_escape(ref);
	char *p = NULL;
	if (!esc || asprintf(&p, "/1.0/images/%s%s", esc, suffix ? suffix : "") < 0)
		return NULL;
	return p;
}

/* --- operations with progress -------------------------------------------------------- */

static void progress_line(const json_t *pr, bool tty, char *last, size_t n)
{
	const char *stage = cli_json_str(pr, "stage", "");
	json_int_t bytes = json_integer_value(json_object_get(pr, "bytes"));
	json_int_t total = json_integer_value(json_object_get(pr, "total"));
	const char *line = json_string_value(json_object_get(pr, "line"));
	char buf[512], a[32], b[32];
	if (total > 0) {
		cli_format_size((uint64_t)bytes, a, sizeof(a));
		cli_format_size((uint64_t)total, b, sizeof(b));
		snprintf(buf, sizeof(buf), "%s: %s of %s (%d%%)", stage, a, b, (int)(bytes * 100 / total));
	} else if (line) {
		snprintf(buf, sizeof(buf), "%s: %.200s", stage, line);
	} else {
		snprintf(buf, sizeof(buf), "%s...", stage);
	}
	if (strcmp(buf, last) == 0)
		return;
	snprintf(last, n, "%s", buf);
	if (tty) {
		fprintf(stderr, "\r\033[K%.*s", 150, buf);
	} else if (!line || getenv("GUREUM_PROGRESS")) {
		/* Not a terminal: stage changes only (logs stay short). */
		static char last_stage[64];
		if (strcmp(stage, last_stage) != 0) {
			fprintf(stderr, "%s\n", buf);
			snprintf(last_stage, sizeof(last_stage), "%s", stage);
		}
	}
	fflush(stderr);
}

/* Sends the request, follows the operation with its progress, returns it. */
static int run_with_progress(struct cli *cli, const char *method, const char *path, const json_t *body,
			     json_t **op_out)
{
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	struct gr_error err = { 0 };
	gr_autojson json_t *env = NULL;
	if (gr_client_call(c, method, path, body, &env, &err) < 0)
		return cli_fail(&err);
	const char *op_url = cli_json_str(env, "operation", "");
	if (strncmp(op_url, "/1.0/operations/", 16) != 0)
		return cli_error("%s %s: gureumd did not start an operation", method, path);
	bool tty = isatty(2);
	char wait[512], last[512] = "";
	snprintf(wait, sizeof(wait), "%s/wait?timeout=0.5", op_url);
	for (;;) {
		json_t *op = NULL;
		if (gr_client_query(c, "GET", wait, NULL, &op, &err) < 0) {
			if (tty && last[0])
				fputc('\n', stderr);
			return cli_fail(&err);
		}
		json_int_t code = json_integer_value(json_object_get(op, "status_code"));
		if (code >= 200) {
			if (tty && last[0])
				fputs("\r\033[K", stderr);
			if (code != 200) {
				const char *msg = cli_json_str(op, "err", "the operation failed");
				int r = cli_error("%s", *msg ? msg : "the operation failed");
				json_decref(op);
				return r;
			}
			*op_out = op;
			return 0;
		}
		json_t *pr = json_object_get(json_object_get(op, "metadata"), "progress");
		if (json_is_object(pr))
			progress_line(pr, tty, last, sizeof(last));
		json_decref(op);
	}
}

/* --- subcommands ---------------------------------------------------------------------- */

static int img_import(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { { "alias", required_argument, NULL, 'a' }, { 0 } };
	gr_autojson json_t *aliases = json_array();
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "a:", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 'a': json_array_append_new(aliases, json_string(optarg)); break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(cli, "image import: a file or directory is needed");
	if (optind + 1 < argc)
		return cli_usage_error(cli, "image import: unexpected argument \"%s\"", argv[optind + 1]);
	char abs[PATH_MAX];
	if (!realpath(argv[optind], abs))
		return cli_error("%s: %s", argv[optind], strerror(errno));
	gr_autojson json_t *body = json_pack("{s:{s:s, s:s}, s:O}", "source", "type", "file", "path", abs, "aliases",
					     aliases);
	gr_autojson json_t *op = NULL;
	int r = run_with_progress(cli, "POST", "/1.0/images", body, &op);
	if (r)
		return r;
	json_t *md = json_object_get(op, "metadata");
	const char *fp = cli_json_str(md, "fingerprint", "");
	bool already = json_is_true(json_object_get(md, "already_present"));
	fprintf(stderr, "%s %s image %.12s%s%s\n", already ? "Already present:" : "Imported", cli_json_str(md, "format", ""),
		fp, json_array_size(aliases) ? " as " : "",
		json_array_size(aliases) ? json_string_value(json_array_get(aliases, 0)) : "");
	printf("%s\n", fp);
	return 0;
}

static int img_build(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1) {
		if (opt == 'h')
			return cli_help(cli);
		return CLI_EXIT_USAGE;
	}
	if (optind + 1 != argc)
		return cli_usage_error(cli, "image build: one builder name is needed (busybox or debian/12)");
	gr_autojson json_t *body = json_pack("{s:{s:s, s:s}}", "source", "type", "build", "name", argv[optind]);
	gr_autojson json_t *op = NULL;
	int r = run_with_progress(cli, "POST", "/1.0/images", body, &op);
	if (r)
		return r;
	json_t *md = json_object_get(op, "metadata");
	const char *fp = cli_json_str(md, "fingerprint", "");
	fprintf(stderr, "%s %s: image %.12s\n", json_is_true(json_object_get(md, "already_present")) ? "Already built" : "Built",
		argv[optind], fp);
	printf("%s\n", fp);
	return 0;
}

static int img_export(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1) {
		if (opt == 'h')
			return cli_help(cli);
		return CLI_EXIT_USAGE;
	}
	if (optind + 2 != argc)
		return cli_usage_error(cli, "image export: NAME FILE are needed");
	const char *file = argv[optind + 1];
	char abs[PATH_MAX], dir[PATH_MAX];
	/* The file does not exist yet: its directory's real path and its name. */
	snprintf(dir, sizeof(dir), "%s", file);
	char *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : file;
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	if (!*base)
		return cli_usage_error(cli, "image export: \"%s\" is a directory: give a file name", file);
	char rdir[PATH_MAX];
	if (!realpath(dir, rdir))
		return cli_error("%s: %s", dir, strerror(errno));
	if (snprintf(abs, sizeof(abs), "%s/%s", strcmp(rdir, "/") == 0 ? "" : rdir, base) >= (int)sizeof(abs))
		return cli_error("%s: path too long", file);
	gr_autofree char *path = image_path(argv[optind], "/export");
	gr_autojson json_t *body = json_pack("{s:s}", "path", abs);
	if (!path || !body)
		return cli_error("out of memory");
	gr_autojson json_t *op = NULL;
	int r = run_with_progress(cli, "POST", path, body, &op);
	if (r)
		return r;
	fprintf(stderr, "Exported %s to %s\n", argv[optind], abs);
	return 0;
}

static char *alias_list(const json_t *img)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(img, "aliases"), i, a) fprintf(f, "%s%s", i ? "," : "", cli_json_str(a, "name", ""));
	fclose(f);
	return buf;
}

static int img_list(struct cli *cli, int argc, char **argv)
{
	enum cli_format fmt;
	int code;
	if (!cli_list_options(cli, argc, argv, &fmt, &code))
		return code;
	if (optind < argc)
		return cli_usage_error(cli, "image list: unexpected argument \"%s\"", argv[optind]);
	gr_autojson json_t *list = NULL;
	if ((code = cli_list_fetch(cli, "/1.0/images?recursion=1", NULL, fmt, &list)) >= 0)
		return code;
	static const char *const headers[] = { "ALIAS", "FINGERPRINT", "LAYERS", "SIZE", "ARCHITECTURE", "CREATED" };
	struct cli_table *t = fmt == CLI_FORMAT_TABLE ? cli_table_new(6, headers) : NULL;
	size_t i;
	json_t *img;
	json_array_foreach(list, i, img) {
		gr_autofree char *aliases = alias_list(img);
		char fp[16], layers[16], size[32], created[64];
		snprintf(fp, sizeof(fp), "%.12s", cli_json_str(img, "fingerprint", ""));
		snprintf(layers, sizeof(layers), "%zu", json_array_size(json_object_get(img, "layers")));
		json_int_t sz = json_integer_value(json_object_get(img, "size"));
		if (fmt == CLI_FORMAT_CSV)
			snprintf(size, sizeof(size), "%lld", (long long)sz);
		else
			cli_format_size((uint64_t)sz, size, sizeof(size));
		if (fmt == CLI_FORMAT_CSV)
			snprintf(created, sizeof(created), "%s", cli_json_str(img, "created_at", ""));
		else
			cli_format_timestamp(cli_json_str(img, "created_at", ""), created, sizeof(created));
		const char *row[6] = { aliases ? aliases : "", fmt == CLI_FORMAT_CSV ? cli_json_str(img, "fingerprint", "") : fp,
				       layers, size, cli_json_str(img, "architecture", ""), created };
		if (fmt == CLI_FORMAT_CSV)
			cli_csv_row(stdout, row, 6);
		else
			cli_table_add(t, row);
	}
	if (t) {
		cli_table_print(t, stdout);
		cli_table_free(t);
	}
	return 0;
}

static int img_info(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1) {
		if (opt == 'h')
			return cli_help(cli);
		return CLI_EXIT_USAGE;
	}
	if (optind + 1 != argc)
		return cli_usage_error(cli, "image info: one image name or fingerprint is needed");
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	gr_autofree char *path = image_path(argv[optind], NULL);
	struct gr_error err = { 0 };
	gr_autojson json_t *img = NULL;
	if (!path)
		return cli_error("out of memory");
	if (gr_client_query(c, "GET", path, NULL, &img, &err) < 0)
		return cli_fail(&err);
	gr_autofree char *aliases = alias_list(img);
	char size[32], created[64];
	cli_format_size((uint64_t)json_integer_value(json_object_get(img, "size")), size, sizeof(size));
	cli_format_timestamp(cli_json_str(img, "created_at", ""), created, sizeof(created));
	printf("Fingerprint: %s\nAliases: %s\nArchitecture: %s\nSize: %s\nCreated: %s\nSource: %s\n",
	       cli_json_str(img, "fingerprint", ""), aliases ? aliases : "", cli_json_str(img, "architecture", ""), size, created,
	       cli_json_str(img, "source", ""));
	const char *desc = cli_json_str(img, "description", "");
	if (*desc)
		printf("Description: %s\n", desc);
	size_t i;
	json_t *v;
	printf("Layers:\n");
	json_array_foreach(json_object_get(img, "layers"), i, v) printf("  %s\n", json_string_value(v));
	json_t *cfg = json_object_get(img, "config");
	if (json_object_size(cfg)) {
		printf("Config:\n");
		cli_yaml_dump(stdout, cfg, 2);
	}
	json_t *used = json_object_get(img, "used_by");
	if (json_array_size(used)) {
		printf("Used by:\n");
		json_array_foreach(used, i, v) {
			const char *u = json_string_value(v);
			const char *slash = u ? strrchr(u, '/') : NULL;
			printf("  %s\n", slash ? slash + 1 : "");
		}
	}
	return 0;
}

static int img_delete(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1) {
		if (opt == 'h')
			return cli_help(cli);
		return CLI_EXIT_USAGE;
	}
	if (optind >= argc)
		return cli_usage_error(cli, "image delete: at least one image is needed");
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	int status = 0;
	for (int i = optind; i < argc; i++) {
		gr_autofree char *path = image_path(argv[i], NULL);
		struct gr_error err = { 0 };
		gr_autojson json_t *op = NULL;
		if (!path)
			return cli_error("out of memory");
		if (gr_client_run_operation(c, "DELETE", path, NULL, &op, &err) < 0)
			status = cli_fail(&err);
	}
	return status;
}

static int img_alias(struct cli *cli, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(cli, argc, argv, "", NULL)) != -1) {
		if (opt == 'h')
			return cli_help(cli);
		return CLI_EXIT_USAGE;
	}
	if (optind >= argc)
		return cli_usage_error(cli, "image alias: add NAME TARGET, delete NAME or list");
	const char *verb = argv[optind];
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;
	struct gr_error err = { 0 };
	gr_autojson json_t *md = NULL;
	if (strcmp(verb, "add") == 0 || strcmp(verb, "create") == 0) {
		if (optind + 3 != argc)
			return cli_usage_error(cli, "image alias add: NAME TARGET are needed");
		gr_autojson json_t *body = json_pack("{s:s, s:s}", "name", argv[optind + 1], "target", argv[optind + 2]);
		if (gr_client_query(c, "POST", "/1.0/images/aliases", body, &md, &err) < 0)
			return cli_fail(&err);
		const char *moved = cli_json_str(md, "moved_from", "");
		if (*moved)
			fprintf(stderr, "Alias %s moved from %.12s to %.12s\n", argv[optind + 1], moved,
				cli_json_str(md, "target", ""));
		return 0;
	}
	if (strcmp(verb, "delete") == 0 || strcmp(verb, "remove") == 0) {
		if (optind + 2 != argc)
			return cli_usage_error(cli, "image alias delete: NAME is needed");
		gr_autofree char *esc = cli_url_escape(argv[optind + 1]);
		char path[512];
		snprintf(path, sizeof(path), "/1.0/images/aliases/%s", esc ? esc : "");
		if (gr_client_query(c, "DELETE", path, NULL, &md, &err) < 0)
			return cli_fail(&err);
		return 0;
	}
	if (strcmp(verb, "list") == 0) {
		if (gr_client_query(c, "GET", "/1.0/images/aliases", NULL, &md, &err) < 0)
			return cli_fail(&err);
		size_t i;
		json_t *a;
		json_array_foreach(md, i, a) printf("%s\t%s\n", cli_json_str(a, "name", ""), cli_json_str(a, "target", ""));
		return 0;
	}
	return cli_usage_error(cli, "image alias: unknown action \"%s\" (add, delete, list)", verb);
}

int cmd_image(struct cli *cli, int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(struct cli *, int, char **); } subs[] = {
		{ "import", img_import }, { "build", img_build }, { "export", img_export }, { "list", img_list },
		{ "ls", img_list },       { "info", img_info },   { "show", img_info },     { "delete", img_delete },
		{ "rm", img_delete },     { "alias", img_alias },
	};
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
			return cli_help(cli);
		return cli_usage_error(cli, "a subcommand is needed (import, build, export, list, info, delete, alias)");
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0) {
			optind = 0;
			return subs[i].fn(cli, argc - 1, argv + 1);
		}
	return cli_usage_error(cli, "unknown subcommand \"%s\" (import, build, export, list, info, delete, alias)",
			       argv[1]);
}
