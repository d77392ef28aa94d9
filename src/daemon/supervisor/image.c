/* image.json as a container reads it (image.h). */
#include "daemon/supervisor/image.h"
#include "common/cleanup.h"
#include "common/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool image_hex_valid(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

void image_layers_free(struct image_layers *l)
{
	if (!l)
		return;
	gr_strv_free(l->hex);
	l->hex = NULL;
	l->n = 0;
	json_decref(l->config);
	l->config = NULL;
}

static int check_strv(const json_t *cfg, const char *key, const char *path, struct gr_error *err)
{
	json_t *v = json_object_get(cfg, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return gr_error_set(err, EINVAL, "%s: config.%s: expected an array of strings", path, key);
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x) {
		if (!json_is_string(x))
			return gr_error_set(err, EINVAL, "%s: config.%s[%zu]: expected a string", path, key, i);
	}
	return 0;
}

int image_layers_load(const char *state_dir, const char *fingerprint, struct image_layers *out,
		      struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!image_hex_valid(fingerprint))
		return gr_error_set(err, EINVAL, "\"%s\" is not an image fingerprint (64 hex digits)",
				    fingerprint ? fingerprint : "");
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/images/%s/image.json", state_dir, fingerprint) >= (int)sizeof(path) ||
	    snprintf(out->layers_dir, sizeof(out->layers_dir), "%s/images/layers", state_dir) >=
		    (int)sizeof(out->layers_dir))
		return gr_error_set(err, ENAMETOOLONG, "state directory path too long: %s", state_dir);
	gr_autojson json_t *j = NULL;
	int r = gr_json_load_file(path, &j, err);
	if (r < 0)
		return r;
	if (!json_is_object(j))
		return gr_error_set(err, EINVAL, "%s: expected an object", path);
	json_t *layers = json_object_get(j, "layers");
	if (!json_is_array(layers) || json_array_size(layers) == 0)
		return gr_error_set(err, EINVAL, "%s: layers: expected a non-empty array of layer ids", path);
	if (json_array_size(layers) > IMAGE_LAYERS_MAX)
		return gr_error_set(err, E2BIG, "%s: %zu layers, more than overlayfs stacks (%d)", path,
				    json_array_size(layers), IMAGE_LAYERS_MAX);
	json_t *cfg = json_object_get(j, "config");
	if (cfg && !json_is_null(cfg) && !json_is_object(cfg))
		return gr_error_set(err, EINVAL, "%s: config: expected an object", path);
	static const char *const strv_keys[] = { "Env", "Cmd", "Entrypoint" };
	for (size_t k = 0; k < 3; k++)
		if ((r = check_strv(cfg, strv_keys[k], path, err)) < 0)
			return r;
	static const char *const str_keys[] = { "WorkingDir", "User" };
	for (size_t k = 0; k < 2; k++) {
		json_t *v = json_object_get(cfg, str_keys[k]);
		if (v && !json_is_null(v) && !json_is_string(v))
			return gr_error_set(err, EINVAL, "%s: config.%s: expected a string", path, str_keys[k]);
	}
	out->hex = calloc(json_array_size(layers) + 1, sizeof(char *));
	if (!out->hex)
		return gr_error_set(err, ENOMEM, "out of memory");
	size_t i;
	json_t *x;
	json_array_foreach(layers, i, x) {
		const char *id = json_string_value(x);
		if (id && strncmp(id, "sha256:", 7) == 0)
			id += 7;
		if (!image_hex_valid(id)) {
			image_layers_free(out);
			return gr_error_set(err, EINVAL, "%s: layers[%zu]: expected \"sha256:\" and 64 hex digits", path, i);
		}
		char dir[4096 + 80];
		struct stat st;
		snprintf(dir, sizeof(dir), "%s/%s", out->layers_dir, id);
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			image_layers_free(out);
			return gr_error_set(err, ENOENT, "image %.12s: its layer %.12s is missing (%s)", fingerprint, id, dir);
		}
		if (!(out->hex[i] = strdup(id))) {
			image_layers_free(out);
			return gr_error_set(err, ENOMEM, "out of memory");
		}
		out->n++;
	}
	out->config = json_is_object(cfg) ? json_incref(cfg) : json_object();
	if (!out->config) {
		image_layers_free(out);
		return gr_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}
