/* The container driver's pure parts, exposed for unit tests. */
#ifndef GR_DAEMON_INSTANCE_CONTAINER_H
#define GR_DAEMON_INSTANCE_CONTAINER_H

#include <jansson.h>
#include <stddef.h>
#include "common/error.h"
#include "daemon/instance/driver.h"

/* The image's command when the instance has none. */
#define CONTAINER_DEFAULT_COMMAND "/bin/sh"
/* The cgroup of instance NAME: PARENT/NAME, PARENT being "/gureum" for the
 * default run directory (/run/gureum) and "/gureum-XXXXXXXX" (a hash of the
 * run directory) for any other, so that several daemons on one host (tests)
 * never share a cgroup (cgroups are host-wide, unlike everything else). */
#define CONTAINER_CGROUP_PARENT "/gureum"
void container_cgroup_parent(const char *run_dir, char *out, size_t n);
/* CPU quota period (µs) for limits.cpu. */
#define CONTAINER_CPU_PERIOD 100000

/* Checks the instance's config keys and values (unknown keys refused by
 * name). */
int container_config_validate(const json_t *config, struct gr_error *err);
/* The OCI config.json of an instance (root.path "rootfs" in its bundle);
 * cgroup_parent from container_cgroup_parent (NULL: CONTAINER_CGROUP_PARENT). */
int container_config_generate(const struct instance_spec *spec, const char *cgroup_parent, json_t **out,
			      struct gr_error *err);

#endif
