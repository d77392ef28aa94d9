/* The pure parts of the gureum CLI: output formatting (tables, CSV, YAML,
 * sizes, durations, timestamps) and argument parsing helpers. No I/O besides
 * the FILE * they are given, no daemon: unit-tested in tests/unit/test_cli.c. */
#ifndef GR_CLI_FORMAT_H
#define GR_CLI_FORMAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "common/error.h"

/* CSV (RFC 4180): a field is quoted when it holds a comma, a double quote,
 * CR or LF, or starts/ends with a space; quotes inside are doubled. Rows end
 * with "\n". */
void cli_csv_field(FILE *out, const char *s);
void cli_csv_row(FILE *out, const char *const *fields, size_t n);

/* YAML: a string as a plain scalar when that reads back as the same string,
 * otherwise double-quoted with escapes (\" \\ \n \t \r \xNN). */
void cli_yaml_scalar(FILE *out, const char *s);
/* Any JSON value as YAML block style, indented by `indent` spaces; objects
 * keep their key order, empty objects/arrays are {} and []. The output ends
 * with a newline. */
void cli_yaml_dump(FILE *out, const json_t *v, int indent);

/* Aligned text table with a border, as Incus prints it:
 *   +------+-------+
 *   | NAME | STATE |
 *   +------+-------+
 *   | c1   | Running |
 */
struct cli_table;
struct cli_table *cli_table_new(size_t ncols, const char *const *headers);
/* Copies the values; NULL is printed as "". Returns 0 or -ENOMEM. */
int cli_table_add(struct cli_table *t, const char *const *values);
void cli_table_print(const struct cli_table *t, FILE *out);
void cli_table_free(struct cli_table *t);

/* 1536 -> "1.50KiB", 0 -> "0B". */
void cli_format_size(uint64_t bytes, char *buf, size_t n);
/* Nanoseconds as "0.25s", "12.00s", "3m4s", "2h3m", "4d5h". */
void cli_format_duration_ns(uint64_t ns, char *buf, size_t n);
/* An RFC 3339 timestamp ("2024-05-01T10:20:30.123Z", "...+02:00") as
 * "2024/05/01 08:20 UTC"; anything unparsable is copied as is. Returns 0
 * when it was parsed, -EINVAL otherwise. */
int cli_format_timestamp(const char *rfc3339, char *buf, size_t n);

/* "key=value": key non-empty; the value may be empty and may contain '='.
 * `what` names the flag in the error ("-c", "--env"). Returns 0 or -EINVAL;
 * *key and *value are malloc'd. */
int cli_parse_key_value(const char *arg, const char *what, char **key, char **value,
			struct gr_error *err);
/* "UID" or "UID:GID", decimal, each < 2^32 - 1. */
int cli_parse_user(const char *arg, uint32_t *uid, uint32_t *gid, bool *has_gid, struct gr_error *err);
/* A decimal integer in [min, max]; `what` names it in the error. */
int cli_parse_long(const char *arg, const char *what, long min, long max, long *out, struct gr_error *err);

/* --format's value: table, json, yaml or csv. Returns 0 or -EINVAL
 * ("--format X: expected table, json, yaml or csv"). */
enum cli_format { CLI_FORMAT_TABLE, CLI_FORMAT_JSON, CLI_FORMAT_YAML, CLI_FORMAT_CSV };
int cli_parse_format(const char *arg, enum cli_format *out, struct gr_error *err);
/* For json and yaml, prints v (JSON indented by 2 with its key order, or
 * YAML block style) and returns 1; for table and csv prints nothing and
 * returns 0 (the caller makes those); -EIO when writing the JSON failed. */
int cli_print_document(FILE *out, const json_t *v, enum cli_format fmt);
/* o[key] when it is a string, else dflt. */
const char *cli_json_str(const json_t *o, const char *key, const char *dflt);

/* Percent-encodes everything but RFC 3986's unreserved characters, so a
 * user's argument is always exactly one path segment or query value.
 * Returns a malloc'd string or NULL (ENOMEM). */
char *cli_url_escape(const char *s);

/* "adjective-noun", a valid instance name; `seed` picks the words (pass
 * random bits). */
void cli_generate_name(uint32_t seed, char *buf, size_t n);

/* The command line of an instance or exec, quoted where needed so it reads
 * back in a POSIX shell: ["sh","-c","echo hi"] -> sh -c 'echo hi'. */
char *cli_shell_join(const json_t *argv);

/* The console's detach sequence, Ctrl-a q (Ctrl-a Ctrl-a sends one
 * Ctrl-a; Ctrl-a and anything else sends both). cli_escape_feed copies the
 * bytes of in that go to the console into out (room for len + 1 bytes) and
 * returns how many, or -1 when the sequence to detach was typed (what came
 * before it is in out, *out_len). The state carries a pending Ctrl-a from
 * one read to the next. */
#define CLI_ESCAPE_CHAR 0x01
#define CLI_ESCAPE_DETACH 'q'
struct cli_escape { bool pending; };
int cli_escape_feed(struct cli_escape *st, const unsigned char *in, size_t len,
		    unsigned char *out, size_t *out_len);

#endif
