/* The OCI runtime-spec config.json (versions 1.0.0 to 1.2.x), parsed and
 * validated into plain C structures. Every error names the JSON path and the
 * bad value. Parsing never touches the system. */
#ifndef GR_CONFIG_H
#define GR_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "../common/error.h"

/* A value that may be absent. */
#define GR_OPT(type) struct { bool set; type v; }

struct oci_mount {
	char *destination;
	char *type;         /* may be NULL: a bind mount when options say so */
	char *source;
	char **options;     /* raw option strings, NULL-terminated (may be NULL) */
	/* Parsed from options (see mount_options_parse in mount.h). */
	unsigned long flags;        /* MS_* to set */
	unsigned long clear_flags;  /* MS_* explicitly cleared (e.g. "rw", "suid") */
	unsigned long propagation;  /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC), 0 if none */
	unsigned long rec_flags;    /* recursive attributes (rro, rnosuid...) as MOUNT_ATTR_* */
	unsigned long rec_clear;    /* recursive attributes to clear (rrw, rsuid...) */
	char *data;                 /* file-system specific options joined by ',' */
	bool bind;                  /* bind or rbind */
	bool idmap;                 /* idmap/ridmap requested (unsupported: rejected) */
	struct oci_idmap *uid_mappings; size_t n_uid_mappings;
	struct oci_idmap *gid_mappings; size_t n_gid_mappings;
	bool tmpcopyup;             /* crun's "tmpcopyup": copy the image's directory into a new tmpfs */
};

struct oci_idmap {
	uint32_t container_id, host_id, size;
};

struct oci_rlimit {
	int resource;       /* RLIMIT_* */
	char *type;         /* as written, e.g. "RLIMIT_NOFILE" */
	uint64_t soft, hard;
};

struct oci_user {
	uint32_t uid, gid;
	GR_OPT(uint32_t) umask;
	uint32_t *additional_gids; size_t n_additional_gids;
	char *username;     /* Windows only; ignored */
};

struct oci_capabilities {
	/* Each a NULL-terminated list of names ("CAP_CHOWN"); NULL when absent. */
	char **bounding, **effective, **inheritable, **permitted, **ambient;
};

struct oci_console_size { uint32_t height, width; };

struct oci_process {
	bool terminal;
	GR_OPT(struct oci_console_size) console_size;
	char *cwd;
	char **env;         /* NULL-terminated */
	char **args;        /* NULL-terminated, at least one element */
	char *command_line; /* Windows only; ignored */
	struct oci_user user;
	struct oci_capabilities caps;
	bool has_caps;
	struct oci_rlimit *rlimits; size_t n_rlimits;
	bool no_new_privileges;
	GR_OPT(int) oom_score_adj;
	char *apparmor_profile;
	char *selinux_label;
	/* ioPriority, scheduler and execCPUAffinity (1.2) */
	bool has_io_priority; int io_priority_class; int io_priority;
};

struct oci_hook {
	char *path;
	char **args;
	char **env;
	GR_OPT(int) timeout; /* seconds, > 0 */
};

struct oci_hook_list { struct oci_hook *v; size_t n; };

enum oci_hook_kind {
	OCI_HOOK_PRESTART, OCI_HOOK_CREATE_RUNTIME, OCI_HOOK_CREATE_CONTAINER,
	OCI_HOOK_START_CONTAINER, OCI_HOOK_POSTSTART, OCI_HOOK_POSTSTOP, OCI_HOOK_KINDS
};
extern const char *const oci_hook_names[OCI_HOOK_KINDS]; /* JSON names: "prestart", ... */

enum oci_ns_type {
	OCI_NS_PID, OCI_NS_NETWORK, OCI_NS_MOUNT, OCI_NS_IPC, OCI_NS_UTS,
	OCI_NS_USER, OCI_NS_CGROUP, OCI_NS_TIME, OCI_NS_TYPES
};
extern const char *const oci_ns_names[OCI_NS_TYPES];  /* JSON names: "pid", "network", ... */
extern const int oci_ns_clone_flags[OCI_NS_TYPES];    /* CLONE_NEWPID, ... */
extern const char *const oci_ns_proc_names[OCI_NS_TYPES]; /* /proc/PID/ns names: "pid", "net", ... */

struct oci_namespace {
	bool requested;  /* listed in linux.namespaces */
	char *path;      /* join this one instead of creating (NULL: create) */
};

struct oci_device {
	char *path;
	char type;       /* 'c', 'b', 'u' or 'p' */
	int64_t major, minor;
	GR_OPT(uint32_t) file_mode;
	GR_OPT(uint32_t) uid;
	GR_OPT(uint32_t) gid;
};

struct oci_device_rule {
	bool allow;
	char type;       /* 'a', 'c' or 'b' ('a' when absent) */
	int64_t major, minor; /* -1 = wildcard */
	char *access;    /* "rwm" subset; NULL = "rwm" */
};

struct oci_weight_device {
	int64_t major, minor;
	GR_OPT(uint16_t) weight;
	GR_OPT(uint16_t) leaf_weight;
};

struct oci_throttle_device {
	int64_t major, minor;
	uint64_t rate;
};

struct oci_hugepage_limit {
	char *page_size;  /* "2MB", "1GB" */
	uint64_t limit;
};

struct oci_kv { char *key, *value; };

struct oci_resources {
	struct oci_device_rule *devices; size_t n_devices;
	struct {
		GR_OPT(int64_t) limit, reservation, swap, kernel, kernel_tcp;
		GR_OPT(uint64_t) swappiness;
		GR_OPT(bool) disable_oom_killer;
		GR_OPT(bool) use_hierarchy;
		GR_OPT(bool) check_before_update;
	} memory;
	struct {
		GR_OPT(uint64_t) shares;
		GR_OPT(int64_t) quota;
		GR_OPT(uint64_t) burst;
		GR_OPT(uint64_t) period;
		GR_OPT(int64_t) realtime_runtime;
		GR_OPT(uint64_t) realtime_period;
		char *cpus, *mems;
		GR_OPT(int64_t) idle;
	} cpu;
	struct {
		GR_OPT(int64_t) limit;
	} pids;
	struct {
		GR_OPT(uint16_t) weight, leaf_weight;
		struct oci_weight_device *weight_device; size_t n_weight_device;
		struct oci_throttle_device *throttle_read_bps, *throttle_write_bps,
			*throttle_read_iops, *throttle_write_iops;
		size_t n_throttle_read_bps, n_throttle_write_bps, n_throttle_read_iops, n_throttle_write_iops;
	} blkio;
	struct oci_hugepage_limit *hugepage_limits; size_t n_hugepage_limits;
	struct {
		GR_OPT(uint32_t) class_id;
		struct oci_kv *priorities; size_t n_priorities; /* name -> priority (as string) */
	} network;
	struct oci_kv *rdma; size_t n_rdma; /* unsupported beyond parsing */
	struct oci_kv *unified; size_t n_unified;
};

enum oci_seccomp_op { SC_OP_NE, SC_OP_LT, SC_OP_LE, SC_OP_EQ, SC_OP_GE, SC_OP_GT, SC_OP_MASKED_EQ };

struct oci_seccomp_arg {
	uint32_t index;
	uint64_t value, value_two;
	enum oci_seccomp_op op;
};

struct oci_seccomp_rule {
	char **names;
	char *action;        /* "SCMP_ACT_ERRNO", ... */
	GR_OPT(uint32_t) errno_ret;
	struct oci_seccomp_arg *args; size_t n_args;
};

struct oci_seccomp {
	char *default_action;
	GR_OPT(uint32_t) default_errno_ret;
	char **architectures;
	char **flags;
	char *listener_path;
	char *listener_metadata;
	struct oci_seccomp_rule *syscalls; size_t n_syscalls;
};

struct oci_personality {
	char *domain;   /* "LINUX" or "LINUX32" */
	char **flags;
};

struct oci_time_offset { int64_t secs; uint32_t nanosecs; bool set; };

struct oci_linux {
	struct oci_namespace ns[OCI_NS_TYPES];
	struct oci_idmap *uid_mappings; size_t n_uid_mappings;
	struct oci_idmap *gid_mappings; size_t n_gid_mappings;
	struct oci_device *devices; size_t n_devices;
	char *cgroups_path;
	bool has_resources;
	struct oci_resources resources;
	struct oci_kv *sysctl; size_t n_sysctl;
	struct oci_seccomp *seccomp;          /* NULL when absent */
	char *rootfs_propagation;             /* NULL or "shared"/"slave"/"private"/"unbindable" */
	unsigned long rootfs_propagation_flags;
	char **masked_paths;
	char **readonly_paths;
	char *mount_label;
	struct oci_personality *personality;  /* NULL when absent */
	struct oci_time_offset time_monotonic, time_boottime;
	char *intel_rdt_clos;                 /* parsed; rejected when set */
	bool has_intel_rdt;                   /* linux.intelRdt present (with or without closID) */
};

struct oci_config {
	char *oci_version;
	char *root_path;     /* as written (relative to the bundle or absolute) */
	bool root_readonly;
	struct oci_mount *mounts; size_t n_mounts;
	bool has_process;
	struct oci_process process;
	char *hostname;
	char *domainname;
	struct oci_hook_list hooks[OCI_HOOK_KINDS];
	struct oci_kv *annotations; size_t n_annotations;
	bool has_linux;
	struct oci_linux linux_;
	json_t *json;        /* the document it came from (owned) */
};

/* Parses a whole config.json document. On success *out owns a reference to json. */
int oci_config_parse(json_t *json, struct oci_config **out, struct gr_error *err);
/* Reads and parses BUNDLE/config.json (or a path to a file). */
int oci_config_load(const char *path, struct oci_config **out, struct gr_error *err);
void oci_config_free(struct oci_config *c);
static inline void oci_config_freep(struct oci_config **c)
{
	if (*c)
		oci_config_free(*c);
}

/* Parses a process object (config's "process", or exec --process FILE). `path`
 * is the JSON path for errors ("process" or the file name). */
int oci_process_parse(const json_t *obj, const char *path, struct oci_process *out, struct gr_error *err);
void oci_process_free(struct oci_process *p);

/* Parses a linux.resources object (also used by "update --resources"). */
int oci_resources_parse(const json_t *obj, const char *path, struct oci_resources *out, struct gr_error *err);
void oci_resources_free(struct oci_resources *r);

/* Accepted ociVersion range: 1.0.0 <= v < 1.3.0 (pre-release suffixes allowed). */
int oci_version_check(const char *version, struct gr_error *err);

#endif
