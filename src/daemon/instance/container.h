/* The container driver's pure parts, exposed for unit tests. */
#ifndef GR_DAEMON_INSTANCE_CONTAINER_H
#define GR_DAEMON_INSTANCE_CONTAINER_H

#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include "common/error.h"
#include "daemon/instance/driver.h"
#include "daemon/supervisor/image.h"

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

/* The image under an instance: a fingerprint whose image.json lists the
 * layers (layers.n > 0), or the built-in image's single rootfs (lower). */
struct container_image {
	char fingerprint[65];         /* "" for the single-rootfs image */
	char lower[PATH_MAX];         /* that rootfs */
	struct image_layers layers;
};
/* ref: the instance's image (a fingerprint, or the built-in alias). */
int container_image_resolve(const char *state_dir, const char *ref, struct container_image *out,
			    struct gr_error *err);
void container_image_clear(struct container_image *img);
/* Adds the image's config to cfg (from container_config_generate): its Env
 * under the instance's environment.* (replacing the defaults), Entrypoint +
 * Cmd as the command when the instance has none (an instance's command
 * replaces both), WorkingDir as the cwd, User (name or id, [:group]) looked
 * up in the image's /etc/passwd and /etc/group. */
int container_config_apply_image(json_t *cfg, const struct instance_spec *spec, const struct container_image *img,
				 struct gr_error *err);
/* Adds a bind mount per volume ([{"source","path","readonly"}]). */
int container_config_add_volumes(json_t *cfg, const json_t *volumes, struct gr_error *err);
/* Joins the network namespace bound at netns (network/instance.h) instead
 * of a new one, and binds BUNDLE/resolv.conf and BUNDLE/hosts over the
 * image's /etc/resolv.conf and /etc/hosts. */
int container_config_add_network(json_t *cfg, const char *netns, const char *bundle, struct gr_error *err);

#endif
