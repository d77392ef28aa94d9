/* The container driver's pure parts, exposed for unit tests. */
#ifndef GR_DAEMON_INSTANCE_CONTAINER_H
#define GR_DAEMON_INSTANCE_CONTAINER_H

#include <jansson.h>
#include "common/error.h"
#include "daemon/instance/driver.h"

/* The image's command when the instance has none. */
#define CONTAINER_DEFAULT_COMMAND "/bin/sh"
/* The cgroup of instance NAME: CONTAINER_CGROUP_PARENT/NAME. */
#define CONTAINER_CGROUP_PARENT "/gureum"
/* CPU quota period (µs) for limits.cpu. */
#define CONTAINER_CPU_PERIOD 100000

/* Checks the instance's config keys and values (unknown keys refused by
 * name). */
int container_config_validate(const json_t *config, struct gr_error *err);
/* The OCI config.json of an instance (root.path "rootfs" in its bundle). */
int container_config_generate(const struct instance_spec *spec, json_t **out, struct gr_error *err);

#endif
