/* Input validation for gureumd (validate.h). */
#include "daemon/validate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"

#define Q(s) validate_quote((s), (char[VALIDATE_QUOTE_MAX]){ 0 }, VALIDATE_QUOTE_MAX)

const char *validate_quote(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, shown = 0;
	if (len < 8) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	if (!s) {
		snprintf(buf, len, "(null)");
		return buf;
	}
	buf[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (shown >= 64 || o + 4 + 5 >= len) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
			buf[o++] = (char)*p;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[*p >> 4];
			buf[o++] = hex[*p & 15];
		}
		shown++;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

int validate_instance_name(const char *name, struct gr_error *err)
{
	if (!name || !*name)
		return gr_error_set(err, EINVAL, "instance name: empty (1-63 characters of a-z, 0-9 and '-')");
	size_t len = strlen(name);
	if (len > INSTANCE_NAME_MAX)
		return gr_error_set(err, EINVAL, "instance name %s: too long (%zu characters, at most %d)", Q(name),
				    len, INSTANCE_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return gr_error_set(err, EINVAL,
					    "instance name %s: invalid character at position %zu (only a-z, 0-9 and '-')",
					    Q(name), i + 1);
	}
	if (name[0] == '-')
		return gr_error_set(err, EINVAL, "instance name %s: must start with a letter or a digit", Q(name));
	if (name[len - 1] == '-')
		return gr_error_set(err, EINVAL, "instance name %s: must not end with '-'", Q(name));
	return 0;
}

static const struct {
	const char *suffix;
	uint64_t mult;
} size_units[] = {
	{ "", 1 },
	{ "B", 1 },
	{ "kB", 1000ull },
	{ "KiB", 1ull << 10 },
	{ "MB", 1000ull * 1000 },
	{ "MiB", 1ull << 20 },
	{ "GB", 1000ull * 1000 * 1000 },
	{ "GiB", 1ull << 30 },
	{ "TB", 1000ull * 1000 * 1000 * 1000 },
	{ "TiB", 1ull << 40 },
};

int validate_size(const char *what, const char *s, uint64_t *bytes, struct gr_error *err)
{
	if (!s || !*s)
		return gr_error_set(err, EINVAL, "%s: empty size (expected e.g. 256MiB)", what);
	size_t digits = strspn(s, "0123456789");
	if (digits == 0)
		return gr_error_set(err, EINVAL, "%s: %s is not a size: expected an integer and a unit (B, kB, KiB, MB, MiB, GB, GiB, TB, TiB), e.g. 256MiB",
				    what, Q(s));
	if (digits > 20)
		return gr_error_set(err, ERANGE, "%s: %s is too large", what, Q(s));
	const char *unit = s + digits;
	uint64_t mult = 0;
	for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++)
		if (strcmp(unit, size_units[i].suffix) == 0) {
			mult = size_units[i].mult;
			break;
		}
	if (!mult)
		return gr_error_set(err, EINVAL, "%s: %s has an unknown unit %s (B, kB, KiB, MB, MiB, GB, GiB, TB, TiB)",
				    what, Q(s), Q(unit));
	char num[24];
	memcpy(num, s, digits);
	num[digits] = '\0';
	uint64_t v;
	if (gr_parse_u64(num, &v) < 0)
		return gr_error_set(err, ERANGE, "%s: %s is too large", what, Q(s));
	uint64_t out;
	if (__builtin_mul_overflow(v, mult, &out))
		return gr_error_set(err, ERANGE, "%s: %s is too large (more than 2^64 bytes)", what, Q(s));
	*bytes = out;
	return 0;
}

int validate_cpu(const char *what, const char *s, uint64_t *millicpus, struct gr_error *err)
{
	if (!s || !*s)
		return gr_error_set(err, EINVAL, "%s: empty (expected a number of CPUs, e.g. 1 or 0.5)", what);
	size_t ip = strspn(s, "0123456789");
	size_t fp = 0;
	if (s[ip] == '.')
		fp = strspn(s + ip + 1, "0123456789");
	size_t total = ip + (s[ip] == '.' ? 1 + fp : 0);
	if (ip == 0 || s[total] != '\0' || (s[ip] == '.' && fp == 0))
		return gr_error_set(err, EINVAL, "%s: %s is not a number of CPUs (a decimal such as 1, 2 or 0.5)", what,
				    Q(s));
	if (fp > 3)
		return gr_error_set(err, EINVAL, "%s: %s has more than 3 decimals", what, Q(s));
	if (ip > 6)
		return gr_error_set(err, ERANGE, "%s: %s is too large", what, Q(s));
	uint64_t m = 0;
	for (size_t i = 0; i < ip; i++)
		m = m * 10 + (uint64_t)(s[i] - '0');
	m *= 1000;
	uint64_t scale = 100;
	for (size_t i = 0; i < fp; i++, scale /= 10)
		m += (uint64_t)(s[ip + 1 + i] - '0') * scale;
	if (m == 0)
		return gr_error_set(err, ERANGE, "%s: %s must be more than 0", what, Q(s));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu > 0 && m > (uint64_t)ncpu * 1000)
		return gr_error_set(err, ERANGE, "%s: %s is more than this host's %ld CPUs", what, Q(s), ncpu);
	*millicpus = m;
	return 0;
}

int validate_restart(const char *what, const char *s, enum boot_restart *policy, unsigned *max_retries,
		     struct gr_error *err)
{
	enum boot_restart p;
	unsigned n = 0;
	if (!s)
		s = "";
	if (strcmp(s, "no") == 0) {
		p = BOOT_RESTART_NO;
	} else if (strcmp(s, "always") == 0) {
		p = BOOT_RESTART_ALWAYS;
	} else if (strcmp(s, "on-failure") == 0) {
		p = BOOT_RESTART_ON_FAILURE;
	} else if (strncmp(s, "on-failure:", 11) == 0) {
		uint64_t v;
		if (gr_parse_u64(s + 11, &v) < 0 || v < 1 || v > 1000000)
			return gr_error_set(err, EINVAL, "%s: %s: the retry count after on-failure: must be an integer from 1 to 1000000",
					    what, Q(s));
		p = BOOT_RESTART_ON_FAILURE;
		n = (unsigned)v;
	} else {
		return gr_error_set(err, EINVAL, "%s: %s is not a restart policy (no, on-failure, on-failure:N, always)",
				    what, Q(s));
	}
	if (policy)
		*policy = p;
	if (max_retries)
		*max_retries = n;
	return 0;
}

int validate_env_name(const char *what, const char *name, struct gr_error *err)
{
	size_t len = name ? strlen(name) : 0;
	if (len == 0)
		return gr_error_set(err, EINVAL, "%s: empty environment variable name", what);
	if (len > 255)
		return gr_error_set(err, EINVAL, "%s: environment variable name %s is too long (at most 255)", what,
				    Q(name));
	if (!((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z') || name[0] == '_') ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != len)
		return gr_error_set(err, EINVAL,
				    "%s: %s is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", what,
				    Q(name));
	return 0;
}

static int check_string_value(const char *key, const json_t *v, const char **out, struct gr_error *err)
{
	if (!json_is_string(v))
		return gr_error_set(err, EINVAL, "config.%s: expected a string value (config values are strings, e.g. \"1\")",
				    key);
	if (json_string_length(v) > CONFIG_VALUE_MAX)
		return gr_error_set(err, EINVAL, "config.%s: value too long (%zu bytes, at most %d)", key,
				    json_string_length(v), CONFIG_VALUE_MAX);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return gr_error_set(err, EINVAL, "config.%s: value contains a NUL byte", key);
	*out = json_string_value(v);
	return 0;
}

int validate_config(const json_t *config, struct gr_error *err)
{
	if (!config || json_is_null(config))
		return 0;
	if (!json_is_object(config))
		return gr_error_set(err, EINVAL, "config: expected an object of string values");
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)config, key, v) {
		char path[320];
		snprintf(path, sizeof(path), "config.%s", key);
		const char *s;
		int rc;
		if (strlen(key) > 255)
			return gr_error_set(err, EINVAL, "config: unknown key %s", Q(key));
		if (strcmp(key, "limits.cpu") == 0) {
			uint64_t m;
			if ((rc = check_string_value(key, v, &s, err)) < 0 || (rc = validate_cpu(path, s, &m, err)) < 0)
				return rc;
		} else if (strcmp(key, "limits.memory") == 0) {
			uint64_t b;
			if ((rc = check_string_value(key, v, &s, err)) < 0 || (rc = validate_size(path, s, &b, err)) < 0)
				return rc;
			if (b < (1u << 20))
				return gr_error_set(err, ERANGE, "%s: %s is below the minimum of 1MiB", path, Q(s));
		} else if (strcmp(key, "limits.processes") == 0) {
			uint64_t n;
			if ((rc = check_string_value(key, v, &s, err)) < 0)
				return rc;
			if (gr_parse_u64(s, &n) < 0 || n < 1 || n > 4194304)
				return gr_error_set(err, EINVAL, "%s: %s must be an integer from 1 to 4194304", path, Q(s));
		} else if (strcmp(key, "boot.restart") == 0) {
			if ((rc = check_string_value(key, v, &s, err)) < 0 ||
			    (rc = validate_restart(path, s, NULL, NULL, err)) < 0)
				return rc;
		} else if (strcmp(key, "network") == 0 || strcmp(key, "ipv4.address") == 0 ||
			   strcmp(key, "vm.engine") == 0 || strcmp(key, "vm.kernel") == 0 ||
			   strcmp(key, "root.size") == 0) {
			/* Their values are checked against the networks
			 * (network_instance_check). */
			if ((rc = check_string_value(key, v, &s, err)) < 0)
				return rc;
		} else if (strncmp(key, "environment.", 12) == 0) {
			if ((rc = validate_env_name("config: environment key", key + 12, err)) < 0 ||
			    (rc = check_string_value(key, v, &s, err)) < 0)
				return rc;
		} else {
			return gr_error_set(err, EINVAL,
					    "config: unknown key %s (known: limits.cpu, limits.memory, limits.processes, "
					    "boot.restart, environment.NAME, network, ipv4.address, root.size, vm.engine, vm.kernel)",
					    Q(key));
		}
	}
	return 0;
}

int validate_command(const char *what, const json_t *command, struct gr_error *err)
{
	if (!json_is_array(command))
		return gr_error_set(err, EINVAL, "%s: expected an array of strings", what);
	if (json_array_size(command) == 0)
		return gr_error_set(err, EINVAL, "%s: empty (give at least the program)", what);
	if (json_array_size(command) > 4096)
		return gr_error_set(err, EINVAL, "%s: too many arguments (%zu, at most 4096)", what,
				    json_array_size(command));
	size_t i;
	json_t *v;
	json_array_foreach(command, i, v) {
		if (!json_is_string(v))
			return gr_error_set(err, EINVAL, "%s[%zu]: expected a string", what, i);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return gr_error_set(err, EINVAL, "%s[%zu]: contains a NUL byte", what, i);
		if (json_string_length(v) > 128 * 1024)
			return gr_error_set(err, EINVAL, "%s[%zu]: too long (%zu bytes, at most 128 KiB)", what, i,
					    json_string_length(v));
	}
	if (json_string_length(json_array_get(command, 0)) == 0)
		return gr_error_set(err, EINVAL, "%s[0]: the program is empty", what);
	return 0;
}

int validate_environment(const char *what, const json_t *env, struct gr_error *err)
{
	if (!env || json_is_null(env))
		return 0;
	if (!json_is_object(env))
		return gr_error_set(err, EINVAL, "%s: expected an object of string values", what);
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)env, key, v) {
		int rc = validate_env_name(what, key, err);
		if (rc < 0)
			return rc;
		if (!json_is_string(v))
			return gr_error_set(err, EINVAL, "%s.%s: expected a string", what, key);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return gr_error_set(err, EINVAL, "%s.%s: contains a NUL byte", what, key);
		if (json_string_length(v) > 128 * 1024)
			return gr_error_set(err, EINVAL, "%s.%s: value too long (at most 128 KiB)", what, key);
	}
	return 0;
}
