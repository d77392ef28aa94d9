/* The instance API's helpers shared with the rest of gureumd (api/instances.c). */
#ifndef GR_DAEMON_INSTANCES_H
#define GR_DAEMON_INSTANCES_H

#include <jansson.h>
#include "daemon/daemon.h"

/* Per-instance serialization (daemon.h): every operation that changes an
 * instance or calls its driver holds its lock. Blocks: worker threads and
 * start-up only, never a handler on the server thread. */
void instance_lock(struct daemon *d, const char *name);
void instance_unlock(struct daemon *d, const char *name);

/* A lifecycle event for an instance: {"action":ACTION,"source":"/1.0/instances/NAME",
 * "context":CONTEXT (stolen; NULL gives {})}. */
void instance_emit(struct daemon *d, const char *action, const char *name, json_t *context);

#endif
