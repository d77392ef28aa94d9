/* OCI hooks: each runs with the container state on stdin, its own args and
 * env, and is killed when its timeout passes. */
#ifndef GR_HOOKS_H
#define GR_HOOKS_H

#include "../common/error.h"
#include "config.h"

/* Runs every hook of one kind in order; the first failure stops the list
 * and is reported as "hooks.KIND[i] (PATH): ...". */
int hooks_run(const struct oci_config *c, enum oci_hook_kind kind, const char *state_json,
	      struct gr_error *err);

/* Runs every hook of one kind even when some fail (poststart, poststop: the
 * spec makes their failures warnings); each failure goes to warn(). */
void hooks_run_all(const struct oci_config *c, enum oci_hook_kind kind, const char *state_json,
		   void (*warn)(const struct gr_error *err));

#endif
