/* gureum launch IMAGE [NAME] [--vm] [-c KEY=VALUE]... [-- COMMAND...]: create an
 * instance and start it (one operation: POST /1.0/instances with
 * "start": true), wait for it, print the name. Without NAME a name is made
 * up, and another one tried while the made-up one is taken. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/cleanup.h"

static int create(struct gr_client *c, const char *name, const char *type, const char *image, json_t *config,
		  json_t *command, bool start, struct gr_error *err)
{
	gr_autojson json_t *body = json_pack("{s:s,s:s,s:{s:s,s:s},s:O,s:b}",
		"name", name, "type", type,
		"source", "type", "image", "alias", image,
		"config", config, "start", start);
	if (!body)
		return gr_error_set(err, ENOMEM, "out of memory");
	if (command && json_object_set(body, "command", command) < 0)
		return gr_error_set(err, ENOMEM, "out of memory");
	gr_autojson json_t *op = NULL;
	return gr_client_run_operation(c, "POST", "/1.0/instances", body, &op, err);
}

int cmd_launch(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "empty", no_argument, NULL, 'e' },
		{ "vm", no_argument, NULL, 'v' },
		{ 0 },
	};
	gr_autojson json_t *config = json_object();
	bool start = true;
	const char *type = "container";
	int opt;
	struct gr_error err = { 0 };
	if (!config)
		return cli_error("out of memory");
	int dd = cli_dashdash(argc, argv);
	while ((opt = cli_getopt(cli, dd, argv, "c:e", longopts)) != -1) {
		switch (opt) {
		case 'h': return cli_help(cli);
		case 'c': {
			gr_autofree char *k = NULL;
			gr_autofree char *v = NULL;
			if (cli_parse_key_value(optarg, "-c", &k, &v, &err) < 0)
				return cli_usage_error(cli, "%s", err.msg);
			if (json_object_get(config, k))
				return cli_usage_error(cli, "-c %s: the key %s is given twice", optarg, k);
			json_t *s = json_string(v);
			if (!s || json_object_set_new(config, k, s) < 0)
				return cli_usage_error(cli, "-c %s: not valid UTF-8", optarg);
			break;
		}
		case 'e': start = false; break;
		case 'v': type = "virtual-machine"; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	int nops = dd - optind;
	if (nops < 1)
		return cli_usage_error(cli, "an image is needed (gureum launch IMAGE [NAME])");
	if (nops > 2)
		return cli_usage_error(cli, "unexpected argument \"%s\" (the command goes after --)", argv[optind + 2]);
	const char *image = argv[optind];
	const char *name = nops == 2 ? argv[optind + 1] : NULL;
	if (!*image)
		return cli_usage_error(cli, "the image name is empty");
	gr_autojson json_t *command = NULL;
	if (dd < argc) {
		if (dd + 1 >= argc)
			return cli_usage_error(cli, "a command is needed after --");
		if (!(command = cli_argv_json(cli, argv, dd + 1, argc)))
			return CLI_EXIT_USAGE;
	}
	struct gr_client *c = cli_client(cli);
	if (!c)
		return CLI_EXIT_FAIL;

	char made_up[64];
	for (int attempt = 0;; attempt++) {
		if (!name) {
			uint32_t seed = 0;
			if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
				seed = (uint32_t)getpid() * 2654435761u + (uint32_t)attempt;
			cli_generate_name(seed, made_up, sizeof(made_up));
		}
		int r = create(c, name ? name : made_up, type, image, config, command, start, &err);
		if (r == 0)
			break;
		/* A made-up name that is taken: make up another. */
		if (!name && r == -EBUSY && strstr(err.msg, "exists") && attempt < 8) {
			gr_error_clear(&err);
			continue;
		}
		return cli_fail(&err);
	}
	printf("%s\n", name ? name : made_up);
	return 0;
}
