/* Named network namespaces, kept alive by a bind mount of the namespace
 * onto a file (as `ip netns add` does), so an instance's network outlives
 * the processes in it (a restart of the container keeps its address and
 * link). Work that needs to be inside a namespace runs on a short-lived
 * thread: no thread of the caller ever changes namespace. */
#ifndef GR_DAEMON_NETWORK_NETNS_H
#define GR_DAEMON_NETWORK_NETNS_H

#include "common/error.h"

/* A new network namespace (with only a down lo) bound at path, a file
 * created mode 0600 (its directory must exist: else -ENOENT). The bind
 * mount is made in the caller's mount namespace. -EEXIST when path exists.
 * On failure nothing is left at path. */
int netns_create(const char *path, struct gr_error *err);
/* Unmounts (MNT_DETACH) and unlinks path. 0 when path does not exist; a
 * plain file left there (no mount) is removed too. The namespace itself
 * lives on while a process or an open descriptor still holds it. */
int netns_remove(const char *path, struct gr_error *err);
/* An O_RDONLY|O_CLOEXEC descriptor of the namespace bound at path;
 * -ENOENT when there is none, -EINVAL when path is not a network namespace
 * (a file with nothing bound onto it, or another kind of namespace). */
int netns_open(const char *path, struct gr_error *err);

#endif
