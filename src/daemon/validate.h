/* Validation of user input that reaches gureumd's API: instance names,
 * sizes with units, and instance config keys and values (README "Instance
 * config keys"). Every refusal is -EINVAL (-ERANGE for numbers out of
 * range) with a message that names the key and quotes the value (escaped
 * and shortened, so hostile input cannot garble a log or a terminal). */
#ifndef GR_DAEMON_VALIDATE_H
#define GR_DAEMON_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

#define INSTANCE_NAME_MAX 63
#define CONFIG_VALUE_MAX 4096

/* 1-63 of [a-z0-9-], starting with a letter or digit, not ending in '-'. */
int validate_instance_name(const char *name, struct gr_error *err);

/* "256MiB", "1GiB", "512MB", "100kB", "4096B", "4096": a non-negative
 * integer and an optional unit (B, kB/KiB, MB/MiB, GB/GiB, TB/TiB; decimal
 * units are powers of 1000, binary ones of 1024); overflow is -ERANGE.
 * `what` names the value in messages ("limits.memory"). */
int validate_size(const char *what, const char *s, uint64_t *bytes, struct gr_error *err);

/* limits.cpu: a decimal > 0 with at most 3 decimals, at most the host's
 * online CPUs; *millicpus = value * 1000. */
int validate_cpu(const char *what, const char *s, uint64_t *millicpus, struct gr_error *err);

/* boot.restart: "no", "on-failure", "on-failure:N" (1 <= N <= 1000000), "always". */
enum boot_restart { BOOT_RESTART_NO, BOOT_RESTART_ON_FAILURE, BOOT_RESTART_ALWAYS };
int validate_restart(const char *what, const char *s, enum boot_restart *policy, unsigned *max_retries,
		     struct gr_error *err);

/* An environment variable name: [A-Za-z_][A-Za-z0-9_]*, at most 255 bytes. */
int validate_env_name(const char *what, const char *name, struct gr_error *err);

/* An instance's config: an object whose keys are known (README table) and
 * whose values are strings valid for their key. Unknown keys are refused by
 * name. NULL is an empty config. */
int validate_config(const json_t *config, struct gr_error *err);

/* An instance's or an exec's command: a non-empty array of strings, the
 * first one non-empty, none longer than 128 KiB. `what` names it ("command"). */
int validate_command(const char *what, const json_t *command, struct gr_error *err);

/* An environment object {NAME: "value"} (exec's "environment"). */
int validate_environment(const char *what, const json_t *env, struct gr_error *err);

/* Writes s into buf as printable ASCII in double quotes: other bytes as
 * \xNN, shortened to about 64 characters with "...". Returns buf. */
const char *validate_quote(const char *s, char *buf, size_t len);
#define VALIDATE_QUOTE_MAX 300

#endif
