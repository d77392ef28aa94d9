/* The image tables of gureumd's database (migration 0002_images): images by
 * fingerprint and image_aliases (name -> fingerprint). Only the image store
 * (image/store.c) calls these; it holds its own mutex around changes that
 * also touch files. Every function returns 0 or a negative errno with err
 * filled. */
#ifndef GR_DAEMON_STORE_IMAGES_H
#define GR_DAEMON_STORE_IMAGES_H

#include <stdint.h>
#include "common/error.h"

struct store;

struct store_image {
	char *fingerprint;
	char *architecture;
	int64_t size;
	char *created_at;             /* RFC 3339 UTC */
	char *source;
	char *description;
};
void store_image_clear(struct store_image *i);

/* One transaction: the row and its aliases (NULL-terminated, may be NULL;
 * an alias that exists is moved). -EEXIST when the fingerprint is there. */
int store_image_insert(struct store *s, const struct store_image *img, const char *const *aliases,
		       struct gr_error *err);
/* -ENOENT when there is none. */
int store_image_get(struct store *s, const char *fp, struct store_image *out, struct gr_error *err);
/* Every fingerprint, oldest first (NULL-terminated; gr_strv_free). */
int store_image_list(struct store *s, char ***out, struct gr_error *err);
/* An alias, then a full fingerprint, then a unique prefix of at least
 * min_prefix hex digits. -ENOENT / -EINVAL (ambiguous). */
int store_image_resolve(struct store *s, const char *ref, unsigned min_prefix, char fp[65], struct gr_error *err);
/* The row and (cascade) its aliases; -ENOENT. */
int store_image_delete(struct store *s, const char *fp, struct gr_error *err);
/* Names of the instances whose image is fp (sorted, NULL-terminated). */
int store_image_users(struct store *s, const char *fp, char ***out, struct gr_error *err);
/* The aliases of fp (sorted). */
int store_image_aliases(struct store *s, const char *fp, char ***out, struct gr_error *err);
/* alias -> fingerprint: 0, or -ENOENT (err may be NULL). */
int store_alias_get(struct store *s, const char *name, char fp[65], struct gr_error *err);
/* Creates or moves an alias (the image must exist: -ENOENT). */
int store_alias_set(struct store *s, const char *name, const char *fp, struct gr_error *err);
int store_alias_delete(struct store *s, const char *name, struct gr_error *err);
/* Instances created before images were pinned hold an alias in
 * instances.image: replaced by the fingerprint that alias names now. */
int store_instances_pin_images(struct store *s, int *changed, struct gr_error *err);

#endif
