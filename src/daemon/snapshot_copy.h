/* A faithful copy of a directory tree, for snapshots of an instance's
 * overlay upper directory (snapshot.h): contents (reflinked where the file
 * system can, else copy_file_range over the data extents so holes stay
 * holes), type, mode, ownership, timestamps (ns), every extended attribute
 * (trusted.* too: overlay whiteouts are 0/0 character devices and opaque
 * directories carry trusted.overlay.opaque), hard links within the tree,
 * symbolic links as they are, device nodes, FIFOs and sockets.
 *
 * Needs CAP_CHOWN, CAP_MKNOD and CAP_SYS_ADMIN (trusted.*) to copy what the
 * tree has of those; a failure to reproduce anything is an error (naming
 * the entry), never a silent loss. Symbolic links are never followed, and
 * every entry is reached by a descriptor relative to its parent, so a tree
 * that changes under the copy cannot make it write outside dst. */
#ifndef GR_DAEMON_SNAPSHOT_COPY_H
#define GR_DAEMON_SNAPSHOT_COPY_H

#include <stdint.h>
#include "common/error.h"

struct tree_copy_stats {
	uint64_t entries;       /* everything copied, the root included */
	uint64_t bytes;         /* regular files' apparent sizes (hard links once) */
	uint64_t reflinked;     /* files cloned rather than copied */
};

/* Copies the tree at src into dst, which must not exist (its parent must);
 * dst's root gets src's root's metadata. On failure dst is removed. stats
 * may be NULL. */
int tree_copy(const char *src, const char *dst, struct tree_copy_stats *stats, struct gr_error *err);

#endif
