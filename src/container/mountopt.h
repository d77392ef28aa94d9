/* Mount options of config.json ("ro", "nosuid", "rbind", "rprivate",
 * "size=64m", ...) translated to mount(2) flags, propagation, recursive
 * attributes (mount_setattr) and file-system data. */
#ifndef GR_MOUNTOPT_H
#define GR_MOUNTOPT_H

#include "../common/error.h"
#include "config.h"

/* Fills m->flags, clear_flags, propagation, rec_flags, rec_clear, data, bind
 * and idmap from options. `path` names the mount for errors, e.g.
 * "mounts[2].options". Unknown options that look like flags are an error;
 * "key=value" options and unknown plain words are passed to the file system
 * as data (as runc does). */
int mount_options_parse(char *const *options, const char *path, struct oci_mount *m, struct gr_error *err);
/* Parses one propagation word ("shared", "rslave", ...) into MS_* flags; -EINVAL when unknown. */
int mount_propagation_parse(const char *word, unsigned long *flags);

/* Calls fn with every option word mount_options_parse understands (for "features"). */
void mount_options_foreach(void (*fn)(const char *name, void *data), void *data);

#endif
