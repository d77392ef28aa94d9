/* Output formatting and argument parsing for the gureum CLI (format.h). */
#include "cli/format.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/cleanup.h"

/* ---- CSV ---- */

void cli_csv_field(FILE *out, const char *s)
{
	if (!s)
		s = "";
	size_t len = strlen(s);
	bool quote = strpbrk(s, ",\"\r\n") != NULL ||
		(len > 0 && (s[0] == ' ' || s[len - 1] == ' '));
	if (!quote) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (const char *p = s; *p; p++) {
		if (*p == '"')
			fputc('"', out);
		fputc(*p, out);
	}
	fputc('"', out);
}

void cli_csv_row(FILE *out, const char *const *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', out);
		cli_csv_field(out, fields[i]);
	}
	fputc('\n', out);
}

/* ---- YAML ---- */

static bool yaml_special_word(const char *s)
{
	static const char *const words[] = {
		"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
		".inf", "-.inf", "+.inf", ".nan",
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasecmp(s, words[i]) == 0)
			return true;
	return false;
}

static bool yaml_looks_numeric(const char *s)
{
	/* Anything a YAML 1.1 or 1.2 reader could take for a number, a date
	 * or a time (1, -1.5, 0x1f, 0o17, 1e3, 1_000, 12:30, 2024-01-01). */
	const char *p = s;
	if (*p == '+' || *p == '-' || *p == '.')
		p++;
	return *p && (isdigit((unsigned char)*p));
}

static bool yaml_plain_ok(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || s[0] == ' ' || s[len - 1] == ' ')
		return false;
	if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]))
		return false;
	if (yaml_special_word(s) || yaml_looks_numeric(s))
		return false;
	if (strstr(s, ": ") || strstr(s, " #") || s[len - 1] == ':')
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p >= 0x80)
			return false;
	return true;
}

void cli_yaml_scalar(FILE *out, const char *s)
{
	if (!s)
		s = "";
	if (yaml_plain_ok(s)) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\t': fputs("\\t", out); break;
		case '\r': fputs("\\r", out); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\x%02x", *p);
			else
				fputc(*p, out); /* UTF-8 is allowed inside double quotes */
		}
	}
	fputc('"', out);
}

static void yaml_indent(FILE *out, int n)
{
	for (int i = 0; i < n; i++)
		fputc(' ', out);
}

static bool yaml_is_collection(const json_t *v)
{
	return (json_is_object(v) && json_object_size(v) > 0) ||
		(json_is_array(v) && json_array_size(v) > 0);
}

static void yaml_inline(FILE *out, const json_t *v)
{
	char num[64];
	switch (json_typeof(v)) {
	case JSON_STRING: cli_yaml_scalar(out, json_string_value(v)); break;
	case JSON_INTEGER: fprintf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		fputs(num, out);
		break;
	case JSON_TRUE: fputs("true", out); break;
	case JSON_FALSE: fputs("false", out); break;
	case JSON_NULL: fputs("null", out); break;
	case JSON_OBJECT: fputs("{}", out); break;
	case JSON_ARRAY: fputs("[]", out); break;
	}
}

void cli_yaml_dump(FILE *out, const json_t *v, int indent)
{
	if (json_is_object(v) && json_object_size(v) > 0) {
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)v, key, val) {
			yaml_indent(out, indent);
			cli_yaml_scalar(out, key);
			fputc(':', out);
			if (yaml_is_collection(val)) {
				fputc('\n', out);
				cli_yaml_dump(out, val, json_is_array(val) ? indent : indent + 2);
			} else {
				fputc(' ', out);
				yaml_inline(out, val);
				fputc('\n', out);
			}
		}
	} else if (json_is_array(v) && json_array_size(v) > 0) {
		size_t i;
		json_t *val;
		json_array_foreach(v, i, val) {
			yaml_indent(out, indent);
			fputs("- ", out);
			if (json_is_object(val) && json_object_size(val) > 0) {
				/* The first key goes on the dash's line; the
				 * others line up with it. */
				bool first = true;
				const char *key;
				json_t *m;
				json_object_foreach(val, key, m) {
					if (!first)
						yaml_indent(out, indent + 2);
					first = false;
					cli_yaml_scalar(out, key);
					fputc(':', out);
					if (yaml_is_collection(m)) {
						fputc('\n', out);
						cli_yaml_dump(out, m, json_is_array(m) ? indent + 2 : indent + 4);
					} else {
						fputc(' ', out);
						yaml_inline(out, m);
						fputc('\n', out);
					}
				}
			} else if (json_is_array(val) && json_array_size(val) > 0) {
				fputc('\n', out);
				cli_yaml_dump(out, val, indent + 2);
			} else {
				yaml_inline(out, val);
				fputc('\n', out);
			}
		}
	} else {
		yaml_indent(out, indent);
		yaml_inline(out, v);
		fputc('\n', out);
	}
}

/* ---- tables ---- */

struct cli_table {
	size_t ncols, nrows, cap;
	char **cells; /* (nrows + 1) * ncols, row 0 = headers */
	size_t *width;
};

static int table_push(struct cli_table *t, const char *const *values)
{
	if (t->nrows + 1 >= t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		char **cells = realloc(t->cells, cap * t->ncols * sizeof(*cells));
		if (!cells)
			return -ENOMEM;
		t->cells = cells;
		t->cap = cap;
	}
	char **row = t->cells + (t->nrows + 1) * t->ncols;
	for (size_t c = 0; c < t->ncols; c++) {
		row[c] = strdup(values[c] ? values[c] : "");
		if (!row[c]) {
			while (c-- > 0)
				free(row[c]);
			return -ENOMEM;
		}
		/* One line per cell: a newline would break the border. */
		for (char *p = row[c]; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
		size_t w = strlen(row[c]);
		if (w > t->width[c])
			t->width[c] = w;
	}
	t->nrows++;
	return 0;
}

struct cli_table *cli_table_new(size_t ncols, const char *const *headers)
{
	struct cli_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ncols = ncols;
	t->width = calloc(ncols, sizeof(*t->width));
	t->cells = calloc(8 * ncols, sizeof(*t->cells));
	if (!t->width || !t->cells) {
		free(t->width);
		free(t->cells);
		free(t);
		return NULL;
	}
	t->cap = 8;
	/* Row 0 holds the headers. */
	for (size_t c = 0; c < ncols; c++) {
		t->cells[c] = strdup(headers[c]);
		if (!t->cells[c]) {
			t->nrows = 0;
			while (c-- > 0)
				free(t->cells[c]);
			free(t->width);
			free(t->cells);
			free(t);
			return NULL;
		}
		t->width[c] = strlen(headers[c]);
	}
	return t;
}

int cli_table_add(struct cli_table *t, const char *const *values)
{
	return table_push(t, values);
}

static void table_rule(const struct cli_table *t, FILE *out)
{
	for (size_t c = 0; c < t->ncols; c++) {
		fputc('+', out);
		for (size_t i = 0; i < t->width[c] + 2; i++)
			fputc('-', out);
	}
	fputs("+\n", out);
}

static void table_row(const struct cli_table *t, size_t r, FILE *out)
{
	for (size_t c = 0; c < t->ncols; c++) {
		const char *s = t->cells[r * t->ncols + c];
		fprintf(out, "| %-*s ", (int)t->width[c], s);
	}
	fputs("|\n", out);
}

void cli_table_print(const struct cli_table *t, FILE *out)
{
	table_rule(t, out);
	table_row(t, 0, out);
	table_rule(t, out);
	for (size_t r = 1; r <= t->nrows; r++)
		table_row(t, r, out);
	if (t->nrows)
		table_rule(t, out);
}

void cli_table_free(struct cli_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->width);
	free(t);
}

/* ---- sizes, durations, timestamps ---- */

void cli_format_size(uint64_t bytes, char *buf, size_t n)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	if (bytes < 1024) {
		snprintf(buf, n, "%" PRIu64 "B", bytes);
		return;
	}
	double v = (double)bytes / 1024.0;
	size_t u = 0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, n, "%.2f%s", v, units[u]);
}

void cli_format_duration_ns(uint64_t ns, char *buf, size_t n)
{
	uint64_t s = ns / 1000000000ull;
	if (s < 60)
		snprintf(buf, n, "%.2fs", (double)ns / 1e9);
	else if (s < 3600)
		snprintf(buf, n, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, n, "%" PRIu64 "h%" PRIu64 "m", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, n, "%" PRIu64 "d%" PRIu64 "h", s / 86400, (s % 86400) / 3600);
}

static const char *parse_digits(const char *p, int count, int *out)
{
	int v = 0;
	for (int i = 0; i < count; i++) {
		if (!isdigit((unsigned char)p[i]))
			return NULL;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return p + count;
}

int cli_format_timestamp(const char *s, char *buf, size_t n)
{
	struct tm tm = { 0 };
	int year, mon, day, hour, min, sec, offset = 0;
	const char *p = s;
	if (!s)
		goto raw;
	if (!(p = parse_digits(p, 4, &year)) || *p++ != '-' ||
	    !(p = parse_digits(p, 2, &mon)) || *p++ != '-' ||
	    !(p = parse_digits(p, 2, &day)) || (*p != 'T' && *p != 't' && *p != ' ') ||
	    !(p = parse_digits(p + 1, 2, &hour)) || *p++ != ':' ||
	    !(p = parse_digits(p, 2, &min)) || *p++ != ':' ||
	    !(p = parse_digits(p, 2, &sec)))
		goto raw;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			goto raw;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		if (!(p = parse_digits(p + 1, 2, &oh)) || *p++ != ':' || !(p = parse_digits(p, 2, &om)))
			goto raw;
		offset = sign * (oh * 3600 + om * 60);
	} else {
		goto raw;
	}
	if (*p || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
		goto raw;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	time_t t = timegm(&tm) - offset;
	struct tm utc;
	if (!gmtime_r(&t, &utc))
		goto raw;
	strftime(buf, n, "%Y/%m/%d %H:%M UTC", &utc);
	return 0;
raw:
	snprintf(buf, n, "%s", s ? s : "");
	return -EINVAL;
}

/* ---- arguments ---- */

int cli_parse_key_value(const char *arg, const char *what, char **key, char **value,
			struct gr_error *err)
{
	const char *eq = strchr(arg, '=');
	if (!eq)
		return gr_error_set(err, EINVAL, "%s %s: expected KEY=VALUE", what, arg);
	if (eq == arg)
		return gr_error_set(err, EINVAL, "%s %s: the key is empty", what, arg);
	gr_autofree char *k = strndup(arg, (size_t)(eq - arg));
	gr_autofree char *v = strdup(eq + 1);
	if (!k || !v)
		return gr_error_set(err, ENOMEM, "out of memory");
	*key = gr_steal_ptr(k);
	*value = gr_steal_ptr(v);
	return 0;
}

static int parse_id(const char *s, const char *what, const char *arg, uint32_t *out, struct gr_error *err)
{
	if (!*s || !isdigit((unsigned char)*s))
		return gr_error_set(err, EINVAL, "--user %s: the %s must be a decimal number", arg, what);
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || errno || v >= UINT32_MAX)
		return gr_error_set(err, EINVAL, "--user %s: the %s must be a decimal number below 4294967295",
				    arg, what);
	*out = (uint32_t)v;
	return 0;
}

int cli_parse_user(const char *arg, uint32_t *uid, uint32_t *gid, bool *has_gid, struct gr_error *err)
{
	char buf[64];
	if (strlen(arg) >= sizeof(buf))
		return gr_error_set(err, EINVAL, "--user %s: expected UID or UID:GID", arg);
	strcpy(buf, arg);
	char *colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	int r = parse_id(buf, "user id", arg, uid, err);
	if (r < 0)
		return r;
	*has_gid = colon != NULL;
	if (colon)
		return parse_id(colon + 1, "group id", arg, gid, err);
	return 0;
}

int cli_parse_long(const char *arg, const char *what, long min, long max, long *out, struct gr_error *err)
{
	errno = 0;
	char *end;
	long v = strtol(arg, &end, 10);
	if (!*arg || *end || isspace((unsigned char)*arg))
		return gr_error_set(err, EINVAL, "%s %s: expected an integer", what, arg);
	if (errno == ERANGE || v < min || v > max)
		return gr_error_set(err, ERANGE, "%s %s: out of range (%ld to %ld)", what, arg, min, max);
	*out = v;
	return 0;
}

int cli_parse_format(const char *arg, enum cli_format *out, struct gr_error *err)
{
	static const char *const names[] = { "table", "json", "yaml", "csv" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(arg, names[i]) == 0) {
			*out = (enum cli_format)i;
			return 0;
		}
	return gr_error_set(err, EINVAL, "--format %s: expected table, json, yaml or csv", arg);
}

int cli_print_document(FILE *out, const json_t *v, enum cli_format fmt)
{
	if (fmt == CLI_FORMAT_JSON) {
		if (json_dumpf(v, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
			return -EIO;
		fputc('\n', out);
		return 1;
	}
	if (fmt == CLI_FORMAT_YAML) {
		cli_yaml_dump(out, v, 0);
		return 1;
	}
	return 0;
}

const char *cli_json_str(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

char *cli_url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(s);
	char *out = malloc(len * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

void cli_generate_name(uint32_t seed, char *buf, size_t n)
{
	static const char *const adjectives[] = {
		"amber", "brave", "calm", "clever", "cosmic", "daring", "eager", "fancy", "gentle",
		"happy", "jolly", "keen", "lively", "lucky", "mellow", "merry", "nimble", "noble",
		"polite", "proud", "quick", "quiet", "rapid", "shiny", "silent", "sunny", "swift",
		"tidy", "vivid", "warm", "witty", "zesty",
	};
	static const char *const nouns[] = {
		"badger", "beaver", "bison", "cloud", "comet", "crane", "dolphin", "eagle", "falcon",
		"ferret", "gecko", "heron", "ibis", "koala", "lemur", "lynx", "magpie", "marmot",
		"newt", "otter", "panda", "puffin", "quokka", "raven", "salmon", "seal", "sparrow",
		"tiger", "walrus", "wombat", "yak", "zebra",
	};
	size_t na = sizeof(adjectives) / sizeof(adjectives[0]);
	size_t nn = sizeof(nouns) / sizeof(nouns[0]);
	snprintf(buf, n, "%s-%s", adjectives[seed % na], nouns[(seed / na) % nn]);
}

static bool shell_safe(const char *s)
{
	if (!*s)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_./=:,+@%", *p))
			return false;
	return true;
}

char *cli_shell_join(const json_t *argv)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	size_t i;
	json_t *a;
	json_array_foreach(argv, i, a) {
		const char *s = json_string_value(a);
		if (!s)
			s = "";
		if (i)
			fputc(' ', f);
		if (shell_safe(s)) {
			fputs(s, f);
			continue;
		}
		fputc('\'', f);
		for (const char *p = s; *p; p++) {
			if (*p == '\'')
				fputs("'\\''", f);
			else
				fputc(*p, f);
		}
		fputc('\'', f);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int cli_escape_feed(struct cli_escape *st, const unsigned char *in, size_t len,
		    unsigned char *out, size_t *out_len)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = in[i];
		if (st->pending) {
			st->pending = false;
			if (ch == CLI_ESCAPE_DETACH || ch == (CLI_ESCAPE_DETACH & 0x1f)) {
				*out_len = o;
				return -1;
			}
			out[o++] = CLI_ESCAPE_CHAR;
			if (ch != CLI_ESCAPE_CHAR)
				out[o++] = ch;
			continue;
		}
		if (ch == CLI_ESCAPE_CHAR) {
			st->pending = true;
			continue;
		}
		out[o++] = ch;
	}
	*out_len = o;
	return (int)o;
}
