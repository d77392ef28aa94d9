/* An image as the container driver and gureum-supervisor read it: its
 * STATE/images/<fingerprint>/image.json (the image store's contract, see
 * src/daemon/README.md "Image store layout"), without the database.
 *
 *   {"fingerprint":HEX, "layers":[DIFFID bottom..top], "config":{"Env":[...],
 *    "Cmd":[...], "Entrypoint":[...], "WorkingDir":S, "User":S}, ...}
 *
 * A DIFFID is "sha256:HEX" or HEX (64 lowercase hex digits); its unpacked
 * layer is STATE/images/layers/HEX/. Only what a container needs is read
 * here; everything else in image.json belongs to the image store. */
#ifndef GR_SUPERVISOR_IMAGE_H
#define GR_SUPERVISOR_IMAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"

/* Overlayfs takes at most this many lower layers (fs/overlayfs: OVL_MAX_STACK). */
#define IMAGE_LAYERS_MAX 500

struct image_layers {
	char layers_dir[4096];   /* STATE/images/layers */
	char **hex;              /* n layer ids (64 hex each), bottom..top */
	size_t n;
	json_t *config;          /* the "config" object (never NULL after a load: {} when absent) */
};

/* Is s 64 lowercase hex digits? */
bool image_hex_valid(const char *s);
/* Reads STATE/images/FINGERPRINT/image.json: -ENOENT when there is none
 * (err names it), -EINVAL for a file that breaks the contract (which field),
 * -ENOENT naming the layer when a layer directory is missing. */
int image_layers_load(const char *state_dir, const char *fingerprint, struct image_layers *out,
		      struct gr_error *err);
void image_layers_free(struct image_layers *l);

#endif
