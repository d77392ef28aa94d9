/* The image store (src/daemon/README.md "Images"): content-addressed images
 * under STATE/images, their metadata in gureumd's database.
 *
 *   STATE/images/layers/<diffid-hex>/   one unpacked layer (image/layer.h),
 *                                       shared by every image that has it
 *   STATE/images/<fingerprint>/image.json
 *       {"fingerprint","aliases":[...],"architecture","size","created_at",
 *        "source","description","layers":["sha256:DIFFID" bottom..top],
 *        "config":{"Env","Cmd","Entrypoint","WorkingDir","User"}}
 *   STATE/images/tmp/<random>/          imports in progress (removed at start)
 *
 * The database (images, image_aliases; store/images.c) is the truth for
 * names; image.json is what the container driver reads without it (its
 * "aliases" are rewritten on every alias change, for people reading it).
 *
 * An import stages everything in tmp/<random>/ (layers/<diffid>/ and
 * image.json) and image_store_commit moves it into place only once every
 * digest matched: layers first, then the image directory (its rename is the
 * commit point), then the rows. Start-up (image_store_open) removes tmp/,
 * adds rows for image directories a crash left without one, drops rows whose
 * directory is gone and removes layers no image.json names.
 *
 * Threads: every change (commit, delete, alias) holds the store's mutex; the
 * slow parts of imports and builds (unpacking, debootstrap) run without it. */
#ifndef GR_DAEMON_IMAGE_STORE_H
#define GR_DAEMON_IMAGE_STORE_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

struct store;
struct image_store;

/* Aliases: 1 or 2 segments joined by '/' ("busybox", "debian/12"), each
 * [A-Za-z0-9] followed by up to 63 of [A-Za-z0-9._-], at most 128 bytes in
 * all; the segments "aliases" and "export" are reserved (they are route
 * names), and a 64-hex-digit name would read as a fingerprint. */
#define IMAGE_ALIAS_MAX 128
#define IMAGE_FP_HEX 65               /* 64 hex digits + NUL */
/* A fingerprint prefix names an image when it has at least this many digits
 * and matches exactly one. */
#define IMAGE_PREFIX_MIN 4

int image_alias_validate(const char *name, struct gr_error *err);
bool image_fingerprint_valid(const char *s);

/* Opens the store under STATE/images (made if needed) with its rows in db,
 * and cleans up as described above. */
int image_store_open(const char *state_dir, struct store *db, struct image_store **out, struct gr_error *err);
void image_store_close(struct image_store *is);
const char *image_store_state_dir(const struct image_store *is);
struct store *image_store_db(const struct image_store *is);

/* A new staging directory STATE/images/tmp/XXXXXX (mode 0700), in out. */
int image_store_stage(struct image_store *is, char out[PATH_MAX], struct gr_error *err);
/* Removes a staging directory (whatever is in it). */
void image_store_unstage(const char *staging);

/* What an import or build hands to commit. */
struct image_meta {
	char fingerprint[IMAGE_FP_HEX];
	const char *architecture;     /* "x86_64", ... (uname's names) */
	const char *source;           /* "oci-layout /path", "debootstrap bookworm http://..." */
	const char *description;      /* may be NULL */
	char **layers;                /* n diffid hex strings, bottom..top */
	size_t n_layers;
	uint64_t size;                /* bytes of file data of every layer */
	json_t *config;               /* {"Env","Cmd",...} (borrowed; NULL: {}) */
};

/* Moves STAGING/layers/<diffid>/ (those not in the store yet) and the image
 * into place and records it with the given aliases (NULL-terminated or NULL).
 * An image already there is not touched: *already is set and the aliases are
 * still added (a no-op when they already point to it). An alias that names
 * another image: -EEXIST, nothing stored. The staging directory is removed
 * in every case. */
int image_store_commit(struct image_store *is, const char *staging, const struct image_meta *meta,
		       const char *const *aliases, bool *already, struct gr_error *err);

/* alias, full fingerprint or unique prefix (IMAGE_PREFIX_MIN digits) ->
 * fingerprint. -ENOENT naming the reference; -EINVAL for an ambiguous prefix. */
int image_store_resolve(struct image_store *is, const char *ref, char fp[IMAGE_FP_HEX], struct gr_error *err);
/* The API's image object: {"fingerprint","aliases":[{"name"}],"architecture",
 * "size","created_at","source","description","type":"container",
 * "layers":N,"config":{...},"used_by":["/1.0/instances/NAME"...]}. */
int image_store_get(struct image_store *is, const char *ref, json_t **out, struct gr_error *err);
/* Every image: URLs (/1.0/images/FINGERPRINT) or, with recursion, objects. */
int image_store_list(struct image_store *is, bool recursion, json_t **out, struct gr_error *err);
/* Refused (-EBUSY, naming them) while instances use it; removes its
 * directory, rows and aliases, and the layers no other image uses. */
int image_store_delete(struct image_store *is, const char *ref, struct gr_error *err);
/* Points name at the image ref names; an existing alias moves (*moved_from
 * gets the image it named when not NULL, "" for a new one). */
int image_store_alias_set(struct image_store *is, const char *name, const char *ref,
			  char moved_from[IMAGE_FP_HEX], struct gr_error *err);
int image_store_alias_remove(struct image_store *is, const char *name, struct gr_error *err);

/* STATE/images/<fp>/image.json, parsed. */
int image_store_read_json(const char *state_dir, const char *fp, json_t **out, struct gr_error *err);
/* STATE/images/layers/<hex> into out. */
void image_store_layer_path(const char *state_dir, const char *hex, char out[PATH_MAX]);

#endif
