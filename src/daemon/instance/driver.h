/* The instance driver interface: everything gureumd does to an instance's
 * workload goes through one of these, so containers (container.c, over the
 * same container library as gureum-runtime) and VMs (a later issue) sit
 * behind the same API.
 *
 * The daemon core owns the database, names, operations and locking: it calls
 * a driver with the instance's lock held, one operation at a time per
 * instance, on a worker thread (driver calls may block for as long as the
 * work takes). Drivers keep no state in memory that cannot be rebuilt from
 * the file system: gureumd may be killed at any moment and restarted, and the
 * workloads keep running under their supervisors meanwhile. */
#ifndef GR_DAEMON_DRIVER_H
#define GR_DAEMON_DRIVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/error.h"

/* Where things live, from gureumd's flags. */
struct driver_env {
	const char *state_dir;        /* --state-dir: persistent (instances/NAME/, images/) */
	const char *run_dir;          /* --run-dir: volatile (supervisor sockets, container state) */
	const char *libexec_dir;      /* where gureum-supervisor is */
};

/* An instance's NIC on a gureum network (network/network.h): what a driver
 * needs to plug it in (network/instance.h does it for containers). */
struct instance_nic {
	int64_t instance_id;
	char network[64];             /* the network's name */
	char bridge[16];              /* its bridge */
	char host_ifname[16];         /* the host end: "grv<instance id>" (veth, or tap for VMs) */
	uint8_t mac[6];               /* the instance's side */
	uint32_t addr;                /* host byte order */
	unsigned prefix;
	uint32_t gateway;             /* also the DNS server (the network's dnsmasq) */
};

/* One instance as the daemon knows it (read from the database). */
struct instance_spec {
	int64_t id;
	const char *name;             /* validated: [a-z0-9][a-z0-9-]{0,62}, no trailing '-' */
	const char *type;             /* "container" */
	const char *image;            /* image alias (until the images issue: "busybox") */
	json_t *config;               /* object of string values, Incus-style keys (see README) */
	char **command;               /* NULL-terminated, or NULL for the image's default */
	/* The volumes attached to it, for start: [{"name", "source": host path,
	 * "path": in the instance, "readonly": bool, "type": "dir"|"block"}]
	 * (volume.h); NULL for none or when not needed (status, stop...). */
	const json_t *volumes;
	/* Its NIC, for start; NULL when it has none (network=none: loopback
	 * only) or when not needed. */
	const struct instance_nic *nic;
};

enum instance_run_state {
	INSTANCE_STOPPED,
	INSTANCE_RUNNING,
	INSTANCE_PAUSED,
	INSTANCE_UNKNOWN,             /* cannot be determined (reported, never acted on) */
};

/* What is really running. */
struct instance_status {
	enum instance_run_state state;
	/* With state RUNNING (what the instance is meant to be, and what stop,
	 * restart and delete act on): its supervisor lives but the workload does
	 * not run yet: a start under way, or the restart policy's back-off
	 * between two runs (restarting). pid is 0 or the not yet started init.
	 * The API reports it as "Starting" (106). */
	bool starting;
	bool restarting;              /* starting because of the restart policy (back-off) */
	pid_t pid;                    /* the workload's init, 0 when stopped */
	pid_t supervisor_pid;         /* 0 when none */
	uint64_t cpu_ns;              /* CPU time used (cgroup), 0 if unknown */
	uint64_t memory_bytes;        /* memory in use (cgroup) */
	uint64_t pids;                /* processes in use */
	int exit_code;                /* last exit: code, or 128 + signal; -1 if never exited */
	char stop_reason[128];        /* why it last stopped ("exited with 3", "killed by SIGKILL", ...) */
	unsigned restarts;            /* restarts done by the restart policy since the last start */
	char engine[160];             /* VMs: the engine and why ("qemu with binary translation (TCG) (this
				       * host: ...)"), of the last start; "" for containers */
};

/* An exec request (POST /1.0/instances/NAME/exec). */
struct exec_request {
	char **argv;                  /* NULL-terminated, at least one */
	char **env;                   /* extra "K=V" entries, NULL-terminated or NULL */
	const char *cwd;              /* NULL: the instance's */
	uint32_t uid, gid;
	bool tty;
	unsigned width, height;       /* initial terminal size (tty) */
};

/* A running exec: the driver starts the process and hands back its
 * descriptors; the daemon relays them (WebSocket or recorded output) and
 * calls wait to collect the exit code. */
struct exec_session {
	int stdin_fd;                 /* write end; -1 when tty (use pty_fd) */
	int stdout_fd;                /* read end; -1 when tty */
	int stderr_fd;                /* read end; when tty (may be -1): only errors starting the
				       * process (e.g. its command not found), which the
				       * terminal does not carry */
	int pty_fd;                   /* the terminal's master side when tty, else -1 */
	pid_t pid;                    /* a host process the daemon can wait for (exits with the exec's code) */
};

/* A file's permissions and owner (file_push, file_pull). */
struct file_meta {
	uint32_t mode;                /* the permission bits (07777) */
	uint32_t uid, gid;
	uint64_t size;                /* pull: its size when it was opened */
};

/* The largest file the files API moves (both ways). */
#define INSTANCE_FILE_MAX (64ull << 20)

struct instance_driver {
	const char *type;             /* "container" */
	/* Checks config keys and values this driver understands (unknown keys
	 * are refused by name). No side effects. */
	int (*validate)(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err);
	/* Prepares everything the instance needs to start (rootfs, bundle). On
	 * failure nothing is left behind. */
	int (*create)(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err);
	/* Starts the workload under a supervisor that outlives gureumd; returns
	 * once it runs (or failed to start, with the reason). */
	int (*start)(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err);
	/* Asks the workload to stop (SIGTERM, or the guest's shutdown), waits up to
	 * timeout seconds, then kills it; force kills at once. The restart policy
	 * does not restart an instance that was stopped this way. */
	int (*stop)(const struct driver_env *env, const struct instance_spec *spec, int timeout, bool force,
		    struct gr_error *err);
	int (*pause)(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err);
	int (*resume)(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err);
	/* Removes everything of a stopped instance (rootfs, logs, state). Idempotent. */
	int (*remove)(const struct driver_env *env, const struct instance_spec *spec, struct gr_error *err);
	/* What is really running (never changes anything). Cheap: lists call it
	 * for every instance; cpu_ns, memory_bytes and pids are left 0. */
	int (*status)(const struct driver_env *env, const struct instance_spec *spec, struct instance_status *st,
		      struct gr_error *err);
	/* Fills cpu_ns, memory_bytes and pids of a running or paused workload
	 * (its cgroup): the costly part, asked for by GET .../state only. */
	int (*usage)(const struct driver_env *env, const struct instance_spec *spec, struct instance_status *st,
		     struct gr_error *err);
	int (*exec)(const struct driver_env *env, const struct instance_spec *spec, const struct exec_request *req,
		    struct exec_session *out, struct gr_error *err);
	/* Files in a running instance (GET/POST /1.0/instances/NAME/files).
	 * path: absolute, without "." or ".." components, not "/", no
	 * trailing '/', shorter than 4096 bytes (the API checks). Paths are
	 * resolved inside the instance: symlinks never lead out of it.
	 * file_push: the file at path becomes the bytes read from fd (to its
	 * end), with meta's mode, uid and gid, atomically (a temporary file in
	 * its directory renamed over it: a symlink at path is replaced, not
	 * followed; a directory there is refused, -EISDIR); the directory must
	 * exist (-ENOENT). file_pull: writes the regular file at path (symlinks
	 * followed) to fd, at most max bytes (-EFBIG when it is larger), and
	 * fills meta; not a regular file: -EISDIR or -EINVAL. Both need the
	 * instance running (-EBUSY). */
	int (*file_push)(const struct driver_env *env, const struct instance_spec *spec, const char *path, int fd,
			 const struct file_meta *meta, struct gr_error *err);
	int (*file_pull)(const struct driver_env *env, const struct instance_spec *spec, const char *path, int fd,
			 uint64_t max, struct file_meta *meta, struct gr_error *err);
	/* A descriptor connected to the instance's console (read: output, write:
	 * input); -ENOTSUP when the instance has none. */
	int (*console)(const struct driver_env *env, const struct instance_spec *spec, int *fd, struct gr_error *err);
	/* The log file (current; rotated ones are PATH.1, PATH.2 ...), malloc'd. */
	int (*log_path)(const struct driver_env *env, const struct instance_spec *spec, char **path,
			struct gr_error *err);
	/* Reconciliation: calls found() for each workload of this type that
	 * exists on the host (by instance name), so the daemon can report the
	 * ones its database does not know. */
	int (*scan)(const struct driver_env *env, void (*found)(void *opaque, const char *name), void *opaque,
		    struct gr_error *err);
	/* At gureumd's clean exit (optional): removes what the driver shares
	 * between instances once nothing uses it (the container driver: its empty
	 * cgroup parent). Never touches a running workload. */
	void (*cleanup)(const struct driver_env *env);
};

/* Every driver, NULL-terminated. */
extern const struct instance_driver *const instance_drivers[];

extern const struct instance_driver container_driver;
extern const struct instance_driver vm_driver;       /* instance/vm.c: "virtual-machine" */
/* Is RUN/instances/NAME a VM's? (The container driver's scan skips those.) */
bool vm_is_vm_run_dir(const char *run_dir, const char *name);

/* The driver for an instance type, or NULL. */
const struct instance_driver *instance_driver_for(const char *type);

#endif
