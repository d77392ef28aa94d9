/* Capability dropping (libcap) and the seccomp allow-list (libseccomp) of
 * gureum-vmm. The list covers what the running VMM does and no more: the vCPU
 * loop (KVM_RUN and the few KVM ioctls used at run time), device I/O on fds
 * opened during setup, the API server's epoll loop and connections, memory
 * management without PROT_EXEC, glibc's thread creation (clone with
 * CLONE_THREAD only; clone3 answers ENOSYS so glibc falls back to clone,
 * whose flags can be checked), signals, clocks and exit, and vsock's
 * socket(AF_UNIX, SOCK_STREAM) + connect. Not allowed, among others:
 * open/openat, execve, fork, other sockets, bind, listen, ptrace, mount,
 * and every KVM ioctl that creates or reconfigures (KVM_CREATE_*, memory
 * slots, CPUID, registers). */
#include "sandbox.h"
#include "vmm/devices/tap.h"
#include "common/cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>

/* ---- capabilities ---- */

static void cap_freep(cap_t *c) { if (*c) cap_free(*c); }
#define gr_autocap _cleanup_(cap_freep)

static int count_threads(void)
{
	gr_autoclosedir DIR *d = opendir("/proc/self/task");
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	return n;
}

int vmm_sandbox_drop_caps(struct gr_error *err)
{
	int n = count_threads();
	if (n > 1)
		return gr_error_set(err, EBUSY,
				    "dropping capabilities: the process has %d threads; capability sets are per thread, so drop them before starting any",
				    n);
	gr_autocap cap_t cur = cap_get_proc();
	if (!cur)
		return gr_error_sys(err, errno, "dropping capabilities: cap_get_proc");
	cap_flag_value_t setpcap = CAP_CLEAR;
	if (cap_get_flag(cur, CAP_SETPCAP, CAP_EFFECTIVE, &setpcap) < 0)
		return gr_error_sys(err, errno, "dropping capabilities: cap_get_flag(CAP_SETPCAP)");
	if (setpcap == CAP_SET) {
		int max = (int)cap_max_bits();
		for (int c = 0; c < max; c++) {
			if (cap_get_bound((cap_value_t)c) > 0 && cap_drop_bound((cap_value_t)c) < 0)
				return gr_error_sys(err, errno, "dropping capabilities: bounding set, %s",
						    cap_to_name((cap_value_t)c) ?: "?");
		}
	}
	/* Without CAP_SETPCAP the bounding set cannot shrink; no_new_privs (below)
	 * then guarantees that no execve can gain anything from it. */
	if (cap_reset_ambient() < 0 && errno != EINVAL)
		return gr_error_sys(err, errno, "dropping capabilities: clearing the ambient set");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return gr_error_sys(err, errno, "dropping capabilities: PR_SET_NO_NEW_PRIVS");
	gr_autocap cap_t none = cap_init();
	if (!none)
		return gr_error_sys(err, errno, "dropping capabilities: cap_init");
	if (cap_set_proc(none) < 0)
		return gr_error_sys(err, errno, "dropping capabilities: capset to the empty set");
	gr_autocap cap_t after = cap_get_proc();
	if (!after || cap_compare(after, none) != 0)
		return gr_error_set(err, EPERM, "dropping capabilities: some capabilities are still held after capset");
	return 0;
}

/* ---- seccomp ---- */

static void seccomp_releasep(scmp_filter_ctx *c) { if (*c) seccomp_release(*c); }
#define gr_autoseccomp _cleanup_(seccomp_releasep)

/* Allowed without conditions. */
static const char *const allowed[] = {
	/* I/O on descriptors opened during setup (disks, taps, serial, eventfds, API connections) */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
	"lseek", "fsync", "fdatasync", "fstat", "close",
	/* waiting */
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "poll", "ppoll", "select", "pselect6",
	/* the API server's connections (the listening socket exists already) */
	"accept4", "accept", "recvfrom", "sendto", "recvmsg", "sendmsg", "shutdown",
	/* memory (mmap and mprotect are conditional, below) */
	"munmap", "madvise", "brk", "mremap",
	/* threads and synchronisation: what glibc's pthread_create/join/mutex/cond use */
	"futex", "set_robust_list", "rseq", "sched_yield", "sched_getaffinity", "exit", "exit_group", "restart_syscall",
	/* signals: the vCPU kick (pthread_kill = getpid + tgkill), masks, handlers */
	"rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack", "tgkill", "getpid", "gettid",
	/* time (normally the vDSO) */
	"clock_gettime", "clock_getres", "gettimeofday", "nanosleep", "clock_nanosleep",
	"timerfd_settime", "timerfd_gettime",
	"getrandom",
};

/* ioctl requests allowed at run time (compared on the low 32 bits: the
 * kernel's cmd is an unsigned int). */
static const unsigned long allowed_ioctls[] = {
	KVM_RUN,              /* the vCPU loop */
	KVM_IRQ_LINE,         /* device interrupts */
	KVM_IRQ_LINE_STATUS,
	KVM_SIGNAL_MSI,       /* the userspace IOAPIC's interrupts (split irqchip) */
	KVM_SET_GSI_ROUTING,  /* its level-triggered routes, for EOI exits; changes as the guest programs it */
	KVM_KVMCLOCK_CTRL,    /* tell the guest it was paused */
	TCGETS,               /* isatty() in stdio */
	TCSETS,               /* --serial/--console stdio: the terminal restored at exit */
};

static int rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned int n_args,
		const struct scmp_arg_cmp *args, struct gr_error *err)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return 0; /* not on this architecture or unknown to this libseccomp */
	int r = seccomp_rule_add_array(ctx, action, nr, n_args, args);
	if (r < 0)
		return gr_error_sys(err, -r, "seccomp: adding the rule for %s", name);
	return 0;
}

/* A filter (default_action, TSYNC: every thread) allowing names[0..n)
 * unconditionally, and what both filters allow with conditions:
 * mmap/mprotect without PROT_EXEC (W^X for the whole process once set up),
 * newfstatat with AT_EMPTY_PATH only (glibc's fstat: no path lookups),
 * prctl(PR_SET_NAME) (a thread naming itself: libmicrohttpd's may run its
 * first lines only after the filter is in place), and fcntl on flags only
 * (O_NONBLOCK, FD_CLOEXEC; no duplication or locks). */
static int filter_new(scmp_filter_ctx *out, uint32_t default_action, const char *const *names, size_t n,
		      struct gr_error *err)
{
	gr_autoseccomp scmp_filter_ctx ctx = seccomp_init(default_action);
	if (!ctx)
		return gr_error_set(err, EINVAL, "seccomp: seccomp_init failed (default action 0x%x)", default_action);
	int r;
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0)
		return gr_error_sys(err, -r, "seccomp: SECCOMP_FILTER_FLAG_TSYNC");
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1); /* the kernel's errno from seccomp_load */
	for (size_t i = 0; i < n; i++)
		if ((r = rule(ctx, SCMP_ACT_ALLOW, names[i], 0, NULL, err)) < 0)
			return r;
	struct scmp_arg_cmp noexec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	struct scmp_arg_cmp empty_path = SCMP_A3(SCMP_CMP_EQ, AT_EMPTY_PATH);
	struct scmp_arg_cmp set_name = SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME);
	if ((r = rule(ctx, SCMP_ACT_ALLOW, "mmap", 1, &noexec, err)) < 0 ||
	    (r = rule(ctx, SCMP_ACT_ALLOW, "mprotect", 1, &noexec, err)) < 0 ||
	    (r = rule(ctx, SCMP_ACT_ALLOW, "newfstatat", 1, &empty_path, err)) < 0 ||
	    (r = rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, &set_name, err)) < 0)
		return r;
	static const int fcntl_cmds[] = { F_GETFL, F_SETFL, F_GETFD, F_SETFD };
	for (size_t i = 0; i < sizeof(fcntl_cmds) / sizeof(fcntl_cmds[0]); i++) {
		struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)fcntl_cmds[i]);
		if ((r = rule(ctx, SCMP_ACT_ALLOW, "fcntl", 1, &a, err)) < 0)
			return r;
	}
	*out = gr_steal_ptr(ctx);
	return 0;
}

static int filter_load(scmp_filter_ctx ctx, const char *what, struct gr_error *err)
{
	int r = seccomp_load(ctx);
	if (r > 0) /* TSYNC: the id of a thread that could not take the filter */
		return gr_error_set(err, ESRCH, "seccomp: thread %d could not be synchronised (TSYNC)", r);
	if (r < 0)
		return gr_error_sys(err, -r, "seccomp: loading %s", what);
	return 0;
}

int vmm_sandbox_seccomp_with(uint32_t default_action, struct gr_error *err)
{
	gr_autoseccomp scmp_filter_ctx ctx = NULL;
	int r = filter_new(&ctx, default_action, allowed, sizeof(allowed) / sizeof(allowed[0]), err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(allowed_ioctls) / sizeof(allowed_ioctls[0]); i++) {
		struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, allowed_ioctls[i] & 0xFFFFFFFFu);
		if ((r = rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &a, err)) < 0)
			return r;
	}
	/* virtio-net: TUNSETOFFLOAD at run time (the driver negotiates its
	 * offloads after boot), with no TUN_F_* bit beyond those the device
	 * uses. The vnet header size is set once, before the sandbox. */
	struct scmp_arg_cmp offload[] = {
		SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, TUNSETOFFLOAD & 0xFFFFFFFFu),
		SCMP_A2(SCMP_CMP_MASKED_EQ, ~(scmp_datum_t)TAP_OFFLOADS_ALL, 0),
	};
	if ((r = rule(ctx, SCMP_ACT_ALLOW, "ioctl", 2, offload, err)) < 0)
		return r;
	/* Threads only (pthread_create), never a new process. */
	const uint64_t thread = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND;
	struct scmp_arg_cmp clone_thread = SCMP_A0(SCMP_CMP_MASKED_EQ, thread, thread);
	if ((r = rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &clone_thread, err)) < 0)
		return r;
	/* clone3 takes its flags in memory, which seccomp cannot read: ENOSYS makes glibc use clone. */
	if ((r = rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err)) < 0)
		return r;
	/* vsock's guest-initiated connections: a unix stream socket connected to
	 * PATH_<port>. Other families (AF_INET, AF_NETLINK, ...) and types stay
	 * forbidden; the type's low bits are the type, the rest flags. */
	struct scmp_arg_cmp unix_stream[] = { SCMP_A0(SCMP_CMP_EQ, AF_UNIX), SCMP_A1(SCMP_CMP_MASKED_EQ, 0xF, SOCK_STREAM) };
	if ((r = rule(ctx, SCMP_ACT_ALLOW, "socket", 2, unix_stream, err)) < 0 ||
	    (r = rule(ctx, SCMP_ACT_ALLOW, "connect", 0, NULL, err)) < 0)
		return r;
	return filter_load(ctx, "the filter", err);
}

int vmm_sandbox_seccomp(struct gr_error *err)
{
	return vmm_sandbox_seccomp_with(SCMP_ACT_KILL_PROCESS, err);
}

/* ---- the API process (gureum-vmm-api) ---- */

/* What the API process does once its socket is bound and its watcher
 * forked: libmicrohttpd's one epoll thread accepting and serving
 * connections, jansson, the channel to the VMM, and the main thread waiting
 * for the channel to close, then stopping the server (joining its thread)
 * and waiting for the watcher. No open, socket, bind, connect, exec, fork or
 * new threads, no ioctl at all. */
static const char *const allowed_api[] = {
	"read", "write", "close", "fstat",
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "poll", "ppoll",
	"accept4", "accept", "recvfrom", "sendto", "recvmsg", "sendmsg", "shutdown",
	"munmap", "madvise", "brk", "mremap",
	"futex", "set_robust_list", "rseq", "sched_yield", "exit", "exit_group", "restart_syscall",
	/* sched_getaffinity and sigaltstack: glibc and ASan at the start and end of libmicrohttpd's
	 * thread, which may run only after the filter is in place */
	"sched_getaffinity", "rt_sigreturn", "rt_sigprocmask", "sigaltstack", "getpid", "gettid",
	"clock_gettime", "clock_getres", "gettimeofday", "nanosleep", "clock_nanosleep",
	"getrandom",
};

int vmm_sandbox_seccomp_api_with(uint32_t default_action, struct gr_error *err)
{
	gr_autoseccomp scmp_filter_ctx ctx = NULL;
	int r = filter_new(&ctx, default_action, allowed_api, sizeof(allowed_api) / sizeof(allowed_api[0]), err);
	return r < 0 ? r : filter_load(ctx, "the API process's filter", err);
}

int vmm_sandbox_seccomp_api(struct gr_error *err)
{
	return vmm_sandbox_seccomp_api_with(SCMP_ACT_KILL_PROCESS, err);
}
