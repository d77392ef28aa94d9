/* Control groups on cgroup v1, v2 and hybrid hosts.
 *
 * The layout (which hierarchies exist and where they are mounted) is read
 * from a mountinfo file, so unit tests can point it at fake trees. A
 * container's cgroup is a path relative to each hierarchy's root, e.g.
 * "/gureum-runtime/c1"; on v1 it exists once per controller hierarchy, on v2
 * once, on hybrid hosts in every v1 hierarchy plus the unified one (which
 * then carries only the controllers it has, such as hugetlb). */
#ifndef GR_CGROUP_H
#define GR_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "../common/error.h"
#include "config.h"

enum cgroup_mode { CGROUP_MODE_V1, CGROUP_MODE_V2, CGROUP_MODE_HYBRID };

struct cgroup_v1_hierarchy {
	char *mount;        /* mount point, e.g. /sys/fs/cgroup/cpu,cpuacct */
	char **controllers; /* NULL-terminated: {"cpu", "cpuacct", NULL}; "name=systemd" for named */
};

struct cgroup_layout {
	enum cgroup_mode mode;
	char *unified_mount;                  /* cgroup2 mount point, NULL when none */
	struct cgroup_v1_hierarchy *v1; size_t n_v1;
};

/* Reads mountinfo (NULL: /proc/self/mountinfo). Fails with a clear error when
 * no cgroup file system is mounted. */
int cgroup_layout_detect(const char *mountinfo_path, struct cgroup_layout *out, struct gr_error *err);
void cgroup_layout_free(struct cgroup_layout *l);
/* The host's layout, detected once per process and kept: for long-running
 * callers that look often (gureumd's status of every instance). NULL (err
 * filled) when detection failed; never freed. Thread-safe. */
const struct cgroup_layout *cgroup_layout_cached(struct gr_error *err);
const char *cgroup_mode_name(enum cgroup_mode m); /* "v1", "v2", "hybrid" */

/* The cgroup path for a container: cgroupsPath from the config when given
 * (it must be absolute or relative without ".." components; relative ones are
 * placed under the hierarchy root), else "/gureum-runtime/<id>". Systemd
 * "slice:prefix:name" paths are refused with a clear error. */
int cgroup_path_resolve(const char *cgroups_path, const char *id, char **out, struct gr_error *err);

/* Creates the cgroup in every hierarchy (v1: cpuset.cpus/mems initialised from
 * the parent; v2: controllers enabled in the ancestors' cgroup.subtree_control). */
int cgroup_create(const struct cgroup_layout *l, const char *path, struct gr_error *err);
/* Moves pid into the cgroup in every hierarchy. */
int cgroup_enter(const struct cgroup_layout *l, const char *path, pid_t pid, struct gr_error *err);
/* Moves the calling (single-threaded) process into the cgroup of every v1
 * hierarchy by writing "0" to its tasks file. Unlike a pid written to
 * cgroup.procs, that takes no global lock, so it does not wait for an RCU
 * grace period (several milliseconds on an idle host). Needs write access to
 * the host's cgroup files. */
int cgroup_enter_self_v1(const struct cgroup_layout *l, const char *path, struct gr_error *err);
/* Moves pid into the cgroup of the unified (v2) hierarchy only. */
int cgroup_enter_unified(const struct cgroup_layout *l, const char *path, pid_t pid, struct gr_error *err);
/* Must processes join the unified hierarchy? Always on v2; on hybrid hosts
 * only when r asks for what only it has there (hugetlb without a v1 hugetlb
 * hierarchy, or linux.resources.unified); never on v1. */
bool cgroup_unified_needed(const struct cgroup_layout *l, const struct oci_resources *r);
/* Writes the resource limits. A limit the host cannot apply (controller absent)
 * is an error naming the field, except blockIO which is skipped when the host
 * has no blkio/io controller. */
int cgroup_apply(const struct cgroup_layout *l, const char *path, const struct oci_resources *r,
		 struct gr_error *err);
/* Freezes or thaws every process (v1 freezer.state, v2 cgroup.freeze) and waits
 * until the state is reached. */
int cgroup_freeze(const struct cgroup_layout *l, const char *path, bool frozen, struct gr_error *err);
int cgroup_is_frozen(const struct cgroup_layout *l, const char *path, bool *out, struct gr_error *err);
/* Every pid in the cgroup and its descendants (malloc'd array). */
int cgroup_pids(const struct cgroup_layout *l, const char *path, pid_t **pids, size_t *n,
		struct gr_error *err);
/* Sends sig to every process in the cgroup (freezing around it so none escapes by forking). */
int cgroup_kill_all(const struct cgroup_layout *l, const char *path, int sig, struct gr_error *err);
/* Removes the cgroup (and empty child cgroups) from every hierarchy; absent is fine. */
int cgroup_destroy(const struct cgroup_layout *l, const char *path, struct gr_error *err);
/* Does the cgroup exist in at least one hierarchy? */
bool cgroup_exists(const struct cgroup_layout *l, const char *path);

/* Usage counters of a cgroup (cpuacct.usage or cpu.stat usage_usec,
 * memory.usage_in_bytes or memory.current, pids.current); a counter the host
 * does not have is left at 0 with its has_ flag false. -ENOENT when the
 * cgroup does not exist. */
struct cgroup_stats {
	uint64_t cpu_ns, memory_bytes, pids;
	bool has_cpu, has_memory, has_pids;
};
int cgroup_stats(const struct cgroup_layout *l, const char *path, struct cgroup_stats *out, struct gr_error *err);

/* Conversions used on v2 (exposed for tests). */
uint64_t cgroup_shares_to_weight(uint64_t shares);      /* cpu.shares -> cpu.weight */
uint64_t cgroup_blkio_to_io_weight(uint64_t weight);    /* blkio.weight -> io.weight */

#endif
