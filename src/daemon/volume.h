/* Volumes: storage that lives apart from instances (README "Volumes").
 *
 *   STATE/volumes/NAME/        a directory volume: bind-mounted into container instances
 *   STATE/volumes/NAME.img     a block volume: a sparse file of its size, for VM instances
 *
 * Metadata and attachments are in the database (store/volumes.h). A volume
 * is attached to a stopped instance at a path and mounted there from its
 * next start on (attach and detach refuse a running instance: "stop it
 * first"); deleting the instance detaches it; a volume with attachments
 * cannot be deleted. Files are made aside (STATE/volumes/.tmp-*) and
 * renamed into place, and removed by renaming them away first
 * (STATE/volumes/.trash-*), so a crash leaves only dot-entries, which
 * volume_cleanup removes at start-up.
 *
 * One mutex orders the volume calls of a daemon (they are short: mkdir,
 * a sparse file, renames, rows). Every function returns 0 or a negative
 * errno with err filled. */
#ifndef GR_DAEMON_VOLUME_H
#define GR_DAEMON_VOLUME_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/error.h"
#include "daemon/daemon.h"

#define VOLUME_BLOCK_MIN (1ull << 20)          /* 1 MiB */
#define VOLUME_BLOCK_MAX (64ull << 40)         /* 64 TiB */

/* As instance names: 1-63 of [a-z0-9-], not starting or ending with '-'. */
int volume_name_check(const char *name, struct gr_error *err);
/* An absolute path in an instance where a volume may be mounted: no ".",
 * "..", empty components or trailing '/', not /, not under /proc, /sys or
 * /dev, at most 4095 bytes. */
int volume_path_check(const char *path, struct gr_error *err);

/* type "dir" (size must be 0) or "block" (size: bytes, a multiple of 512,
 * VOLUME_BLOCK_MIN..MAX). -EEXIST when the name is taken. *out (may be
 * NULL): as volume_info. */
int volume_create(struct daemon *d, const char *name, const char *type, uint64_t size, json_t **out,
		  struct gr_error *err);
/* {"name","type","size","created_at","used_by":["/1.0/instances/X"...],
 *  "attachments":[{"instance","path","readonly"}]} */
int volume_info(struct daemon *d, const char *name, json_t **out, struct gr_error *err);
/* Every volume, as volume_info. */
int volume_list(struct daemon *d, json_t **out, struct gr_error *err);
/* -EBUSY naming the instances while attached. */
int volume_delete(struct daemon *d, const char *name, struct gr_error *err);
/* Whether a volume of volume_type suits an instance of instance_type: a
 * container mounts directory volumes, a virtual machine takes block volumes
 * as disks. -EINVAL saying which fits otherwise. */
int volume_fits(const char *volume, const char *volume_type, const char *instance_type, struct gr_error *err);
/* The caller holds the instance's lock and has checked it is stopped;
 * instance_type is its type (volume_fits). */
int volume_attach(struct daemon *d, const char *volume, const char *instance, const char *instance_type,
		  const char *path, bool readonly, struct gr_error *err);
int volume_detach(struct daemon *d, const char *volume, const char *instance, struct gr_error *err);
/* What instance_spec.volumes holds for a start: [{"name","source","path","readonly","type"}]. */
int volume_mounts(struct daemon *d, const char *instance, json_t **out, struct gr_error *err);
/* Start-up: removes the dot-entries a crash left in STATE/volumes. */
void volume_cleanup(const char *state_dir);

#endif
