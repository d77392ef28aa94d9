/* JSON helpers over jansson that know where they are: every type error names
 * the JSON path and the offending value, for example
 *   linux.resources.memory.limit: expected an integer, got "1G"
 *
 * Getters return 1 when the key is present and valid, 0 when it is absent or
 * null, and a negative errno (err filled) when it has the wrong type/range. */
#ifndef GR_JSON_H
#define GR_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

#define GR_JPATH_MAX 256

/* "parent.key" (or "key" when parent is empty/NULL). */
void gr_jpath_key(char *out, size_t n, const char *parent, const char *key);
/* "parent[i]". */
void gr_jpath_index(char *out, size_t n, const char *parent, size_t i);

/* Short printable form of a value (malloc'd, truncated to about 60 chars). */
char *gr_json_describe(const json_t *v);

/* Loads a JSON object from a file; syntax errors give "file:line:column: text". */
int gr_json_load_file(const char *path, json_t **out, struct gr_error *err);
/* Parses a JSON object from memory; `what` names the source in errors. */
int gr_json_load_string(const char *what, const char *text, json_t **out, struct gr_error *err);

/* Conversions of a value found at `path`. */
int gr_json_as_string(const json_t *v, const char *path, const char **out, struct gr_error *err);
int gr_json_as_int64(const json_t *v, const char *path, int64_t *out, struct gr_error *err);
int gr_json_as_uint64(const json_t *v, const char *path, uint64_t *out, struct gr_error *err);
int gr_json_as_uint32(const json_t *v, const char *path, uint32_t *out, struct gr_error *err);
int gr_json_as_int32(const json_t *v, const char *path, int32_t *out, struct gr_error *err);
int gr_json_as_bool(const json_t *v, const char *path, bool *out, struct gr_error *err);

/* Members of an object. */
int gr_json_get_string(const json_t *obj, const char *parent, const char *key, const char **out, struct gr_error *err);
/* As above, but a copy (malloc'd) in *out. */
int gr_json_get_strdup(const json_t *obj, const char *parent, const char *key, char **out, struct gr_error *err);
int gr_json_get_int64(const json_t *obj, const char *parent, const char *key, int64_t *out, struct gr_error *err);
int gr_json_get_uint64(const json_t *obj, const char *parent, const char *key, uint64_t *out, struct gr_error *err);
int gr_json_get_uint32(const json_t *obj, const char *parent, const char *key, uint32_t *out, struct gr_error *err);
int gr_json_get_int32(const json_t *obj, const char *parent, const char *key, int32_t *out, struct gr_error *err);
int gr_json_get_bool(const json_t *obj, const char *parent, const char *key, bool *out, struct gr_error *err);
int gr_json_get_object(const json_t *obj, const char *parent, const char *key, json_t **out, struct gr_error *err);
int gr_json_get_array(const json_t *obj, const char *parent, const char *key, json_t **out, struct gr_error *err);
/* An array of strings as a malloc'd NULL-terminated vector (free with gr_strv_free). */
int gr_json_get_strv(const json_t *obj, const char *parent, const char *key, char ***out, struct gr_error *err);

void gr_strv_free(char **v);
size_t gr_strv_len(char *const *v);

#endif
