#include "json.h"
#include "cleanup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gr_jpath_key(char *out, size_t n, const char *parent, const char *key)
{
	if (parent && parent[0])
		snprintf(out, n, "%s.%s", parent, key);
	else
		snprintf(out, n, "%s", key);
}

void gr_jpath_index(char *out, size_t n, const char *parent, size_t i)
{
	snprintf(out, n, "%s[%zu]", parent ? parent : "", i);
}

char *gr_json_describe(const json_t *v)
{
	if (!v)
		return strdup("nothing");
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	if (!s)
		return strdup("?");
	if (strlen(s) > 60)
		strcpy(s + 57, "...");
	return s;
}

static int type_error(const json_t *v, const char *path, const char *expected, struct gr_error *err)
{
	gr_autofree char *d = gr_json_describe(v);
	return gr_error_set(err, EINVAL, "%s: expected %s, got %s", path, expected, d);
}

static int load_common(json_t *j, const json_error_t *je, const char *what, json_t **out, struct gr_error *err)
{
	if (!j)
		return gr_error_set(err, EINVAL, "%s:%d:%d: invalid JSON: %s", what, je->line, je->column, je->text);
	if (!json_is_object(j)) {
		json_decref(j);
		return gr_error_set(err, EINVAL, "%s: expected a JSON object at the top level", what);
	}
	*out = j;
	return 0;
}

int gr_json_load_file(const char *path, json_t **out, struct gr_error *err)
{
	json_error_t je;
	FILE *f = fopen(path, "re");
	if (!f)
		return gr_error_sys(err, errno, "cannot open %s", path);
	json_t *j = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	fclose(f);
	return load_common(j, &je, path, out, err);
}

int gr_json_load_string(const char *what, const char *text, json_t **out, struct gr_error *err)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	return load_common(j, &je, what, out, err);
}

int gr_json_as_string(const json_t *v, const char *path, const char **out, struct gr_error *err)
{
	if (!json_is_string(v))
		return type_error(v, path, "a string", err);
	*out = json_string_value(v);
	return 1;
}

int gr_json_as_int64(const json_t *v, const char *path, int64_t *out, struct gr_error *err)
{
	if (!json_is_integer(v))
		return type_error(v, path, "an integer", err);
	*out = json_integer_value(v);
	return 1;
}

int gr_json_as_uint64(const json_t *v, const char *path, uint64_t *out, struct gr_error *err)
{
	/* jansson holds integers as long long: values above INT64_MAX do not parse. */
	if (!json_is_integer(v))
		return type_error(v, path, "an unsigned integer", err);
	if (json_integer_value(v) < 0)
		return type_error(v, path, "an unsigned integer", err);
	*out = (uint64_t)json_integer_value(v);
	return 1;
}

int gr_json_as_uint32(const json_t *v, const char *path, uint32_t *out, struct gr_error *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
		return type_error(v, path, "an integer between 0 and 4294967295", err);
	*out = (uint32_t)json_integer_value(v);
	return 1;
}

int gr_json_as_int32(const json_t *v, const char *path, int32_t *out, struct gr_error *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
		return type_error(v, path, "a 32-bit integer", err);
	*out = (int32_t)json_integer_value(v);
	return 1;
}

int gr_json_as_bool(const json_t *v, const char *path, bool *out, struct gr_error *err)
{
	if (!json_is_boolean(v))
		return type_error(v, path, "true or false", err);
	*out = json_is_true(v);
	return 1;
}

/* Looks up obj[key]; 0 when absent or null, 1 with *v and path filled. */
static int lookup(const json_t *obj, const char *parent, const char *key, json_t **v, char *path)
{
	gr_jpath_key(path, GR_JPATH_MAX, parent, key);
	*v = json_object_get(obj, key);
	return *v && !json_is_null(*v);
}

#define DEFINE_GETTER(name, type, conv)                                                         \
	int name(const json_t *obj, const char *parent, const char *key, type *out, struct gr_error *err) \
	{                                                                                       \
		char path[GR_JPATH_MAX];                                                        \
		json_t *v;                                                                      \
		if (!lookup(obj, parent, key, &v, path))                                        \
			return 0;                                                               \
		return conv(v, path, out, err);                                                 \
	}

DEFINE_GETTER(gr_json_get_string, const char *, gr_json_as_string)
DEFINE_GETTER(gr_json_get_int64, int64_t, gr_json_as_int64)
DEFINE_GETTER(gr_json_get_uint64, uint64_t, gr_json_as_uint64)
DEFINE_GETTER(gr_json_get_uint32, uint32_t, gr_json_as_uint32)
DEFINE_GETTER(gr_json_get_int32, int32_t, gr_json_as_int32)
DEFINE_GETTER(gr_json_get_bool, bool, gr_json_as_bool)

int gr_json_get_strdup(const json_t *obj, const char *parent, const char *key, char **out, struct gr_error *err)
{
	const char *s;
	int r = gr_json_get_string(obj, parent, key, &s, err);
	if (r <= 0)
		return r;
	*out = strdup(s);
	if (!*out)
		return gr_error_set(err, ENOMEM, "out of memory");
	return 1;
}

static int get_typed(const json_t *obj, const char *parent, const char *key, json_t **out,
		     int want_object, struct gr_error *err)
{
	char path[GR_JPATH_MAX];
	json_t *v;
	if (!lookup(obj, parent, key, &v, path))
		return 0;
	if (want_object ? !json_is_object(v) : !json_is_array(v))
		return type_error(v, path, want_object ? "an object" : "an array", err);
	*out = v;
	return 1;
}

int gr_json_get_object(const json_t *obj, const char *parent, const char *key, json_t **out, struct gr_error *err)
{
	return get_typed(obj, parent, key, out, 1, err);
}

int gr_json_get_array(const json_t *obj, const char *parent, const char *key, json_t **out, struct gr_error *err)
{
	return get_typed(obj, parent, key, out, 0, err);
}

int gr_json_get_strv(const json_t *obj, const char *parent, const char *key, char ***out, struct gr_error *err)
{
	json_t *arr;
	int r = gr_json_get_array(obj, parent, key, &arr, err);
	if (r <= 0)
		return r;
	char base[GR_JPATH_MAX], path[GR_JPATH_MAX];
	gr_jpath_key(base, sizeof(base), parent, key);
	size_t n = json_array_size(arr);
	gr_autostrv char **v = calloc(n + 1, sizeof(char *));
	if (!v)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *s;
		gr_jpath_index(path, sizeof(path), base, i);
		r = gr_json_as_string(json_array_get(arr, i), path, &s, err);
		if (r < 0)
			return r;
		v[i] = strdup(s);
		if (!v[i])
			return gr_error_set(err, ENOMEM, "out of memory");
	}
	*out = gr_steal_ptr(v);
	return 1;
}

void gr_strv_free(char **v)
{
	gr_strvfreep(&v);
}

size_t gr_strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}
