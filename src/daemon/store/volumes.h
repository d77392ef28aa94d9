/* The volume tables of gureumd's database (migration 0003_volumes):
 * volumes by name and volume_attachments (volume, instance, path,
 * readonly). An attachment goes with its instance (ON DELETE CASCADE: an
 * instance deleted is detached); a volume with attachments cannot be
 * deleted (ON DELETE RESTRICT, and store_volume_delete says which). Only
 * volume.c calls these, under its own mutex. Every function returns 0 or a
 * negative errno with err filled. */
#ifndef GR_DAEMON_STORE_VOLUMES_H
#define GR_DAEMON_STORE_VOLUMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

struct store;

struct store_volume {
	int64_t id;
	char *name;
	char *type;                   /* "dir" or "block" */
	uint64_t size;                /* block: bytes; dir: 0 */
	char *created_at;             /* RFC 3339 UTC */
};

struct store_attachment {
	char *volume;
	char *instance;
	char *path;                   /* in the instance */
	bool readonly;
};

void store_volume_clear(struct store_volume *v);
void store_volume_list_free(struct store_volume *v, size_t n);
void store_attachment_list_free(struct store_attachment *a, size_t n);

/* -EEXIST when the name is taken. */
int store_volume_insert(struct store *s, const char *name, const char *type, uint64_t size, struct gr_error *err);
/* -ENOENT when there is none. */
int store_volume_get(struct store *s, const char *name, struct store_volume *out, struct gr_error *err);
/* Every volume, by name. */
int store_volume_list(struct store *s, struct store_volume **out, size_t *n, struct gr_error *err);
/* -ENOENT; -EBUSY naming the instances when attached. */
int store_volume_delete(struct store *s, const char *name, struct gr_error *err);
/* The attachments of a volume, or of an instance (the other NULL), by
 * volume then instance name. */
int store_attachment_list(struct store *s, const char *volume, const char *instance, struct store_attachment **out,
			  size_t *n, struct gr_error *err);
/* -ENOENT for an unknown volume or instance, -EEXIST when the volume is
 * attached to the instance already or the path is taken there. */
int store_volume_attach(struct store *s, const char *volume, const char *instance, const char *path, bool readonly,
			struct gr_error *err);
/* -ENOENT when it is not attached. */
int store_volume_detach(struct store *s, const char *volume, const char *instance, struct gr_error *err);

#endif
