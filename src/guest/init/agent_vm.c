/* The agent process inside the VM: finds its virtio-serial ports (and
 * listens on vsock where there is a transport), then runs agent_run. */
#include "agent_vm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "common/cleanup.h"
#include "console.h"

#define VPORTS_DIR "/sys/class/virtio-ports"
#define MAX_FAILED 16

struct vm_agent {
	const struct ginit_config *cfg;
	int uevent_fd;
	int status_fd;        /* the command's exit status, from PID 1 */
	bool pid1_is_us;
	bool exited;
	int code, sig;
	char failed[MAX_FAILED][64];  /* ports that could not be opened (logged once) */
	size_t nfailed;
};

static void vm_log(void *ctx, const char *line)
{
	(void)ctx;
	console_log("%s", line);
}

static bool failed_before(struct vm_agent *v, const char *name)
{
	for (size_t i = 0; i < v->nfailed; i++)
		if (strcmp(v->failed[i], name) == 0)
			return true;
	if (v->nfailed < MAX_FAILED)
		snprintf(v->failed[v->nfailed++], sizeof(v->failed[0]), "%s", name);
	return false;
}

static int read_line(const char *path, char *buf, size_t n)
{
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t r = read(fd, buf, n - 1);
	if (r < 0)
		return -errno;
	buf[r] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* /dev/vportNpM, made from its sysfs dev file when devtmpfs has not. */
static int open_port(const char *entry)
{
	char dev[300], sys[300], mm[32];
	snprintf(dev, sizeof(dev), "/dev/%s", entry);
	struct stat st;
	if (stat(dev, &st) < 0) {
		unsigned ma, mi;
		snprintf(sys, sizeof(sys), VPORTS_DIR "/%s/dev", entry);
		if (read_line(sys, mm, sizeof(mm)) < 0 || sscanf(mm, "%u:%u", &ma, &mi) != 2)
			return -ENOENT;
		if (mknod(dev, S_IFCHR | 0600, makedev(ma, mi)) < 0 && errno != EEXIST)
			return -errno;
	}
	int fd = open(dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void scan_ports(struct agent *a, struct vm_agent *v)
{
	gr_autoclosedir DIR *d = opendir(VPORTS_DIR);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > 200)
			continue;
		char path[300], name[128];
		snprintf(path, sizeof(path), VPORTS_DIR "/%s/name", de->d_name);
		/* No name yet: the host names ports after they appear (a uevent follows). */
		if (read_line(path, name, sizeof(name)) < 0 || !name[0])
			continue;
		if (!ginit_agent_port_match(v->cfg->agent_port, name) || agent_has_port(a, name))
			continue;
		int fd = open_port(de->d_name);
		if (fd < 0) {
			if (!failed_before(v, name))
				console_log("port %s (/dev/%s): cannot open: %s", name, de->d_name, strerror(-fd));
			continue;
		}
		struct gr_error err = { 0 };
		if (agent_add_port(a, fd, name, AGENT_PORT_VIRTIO, &err) < 0)
			console_log("%s", err.msg);
	}
}

static void vm_watch(struct agent *a, void *ctx)
{
	struct vm_agent *v = ctx;
	char buf[8192];
	/* Any uevent may be a port appearing or being named: drain, then rescan. */
	while (recv(v->uevent_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0 || errno == ENOBUFS)
		;
	scan_ports(a, v);
}

static void vm_health(json_t *resp, void *ctx)
{
	struct vm_agent *v = ctx;
	if (!v->cfg->command) {
		json_object_set_new(resp, "init", json_string(v->cfg->init));
		return;
	}
	char buf[64];
	ssize_t n;
	while (v->status_fd >= 0 && (n = read(v->status_fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = 0;
		if (sscanf(buf, "%d %d", &v->code, &v->sig) == 2)
			v->exited = true;
	}
	json_t *c = v->exited ? json_pack("{s:s, s:i, s:o}", "state", "exited", "code", v->code, "signal",
					  v->sig ? json_integer(v->sig) : json_null())
			      : json_pack("{s:s}", "state", "running");
	json_object_set_new(resp, "command", c);
}

static void run_detached(const char *prog)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (fork() == 0) {
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			signal(SIGPIPE, SIG_DFL);
			setsid();
			char *const argv[] = { (char *)prog, NULL };
			char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
			execve(prog, argv, envp);
			_exit(127);
		}
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void vm_shutdown(void *ctx, bool reboot_)
{
	struct vm_agent *v = ctx;
	if (v->pid1_is_us) {
		/* gureum-init is PID 1: it stops the command and everything else, then powers off. */
		kill(1, reboot_ ? SIGRTMIN + 5 : SIGRTMIN + 4);
		return;
	}
	/* The image's own init: its own programs (systemctl, busybox, sysvinit all have them). */
	static const char *const progs[2][2] = {
		{ "/sbin/poweroff", "/usr/sbin/poweroff" },
		{ "/sbin/reboot", "/usr/sbin/reboot" },
	};
	for (int i = 0; i < 2; i++)
		if (access(progs[reboot_][i], X_OK) == 0) {
			console_log("running %s", progs[reboot_][i]);
			run_detached(progs[reboot_][i]);
			return;
		}
	console_log("no poweroff program in the image: reboot(2) directly");
	sync();
	reboot(reboot_ ? RB_AUTOBOOT : RB_POWER_OFF);
}

static void listen_vsock(struct agent *a, unsigned port)
{
	int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		console_log("no vsock (%s): virtio-serial ports only", strerror(errno));
		return;
	}
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY };
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(s, 16) < 0) {
		console_log("vsock port %u: cannot listen (%s): virtio-serial ports only", port, strerror(errno));
		close(s);
		return;
	}
	char name[32];
	snprintf(name, sizeof(name), "vsock:%u", port);
	struct gr_error err = { 0 };
	if (agent_add_listener(a, s, name, &err) < 0)
		console_log("%s", err.msg);
	else
		console_log("listening on vsock port %u", port);
}

void agent_vm_run(const struct ginit_config *cfg, int status_fd, bool pid1_is_us)
{
	struct vm_agent v = { .cfg = cfg, .status_fd = status_fd, .pid1_is_us = pid1_is_us, .uevent_fd = -1 };
	if (status_fd >= 0)
		fcntl(status_fd, F_SETFL, O_NONBLOCK);
	struct agent_hooks hooks = {
		.shutdown = vm_shutdown, .watch = vm_watch, .health = vm_health, .log = vm_log, .ctx = &v,
	};
	struct agent *a = NULL;
	struct gr_error err = { 0 };
	if (agent_new(&a, &hooks, &err) < 0) {
		console_log("%s", err.msg);
		_exit(1);
	}
	/* The socket first, then the scan: a port named in between is not missed. */
	v.uevent_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	if (v.uevent_fd >= 0 && bind(v.uevent_fd, (struct sockaddr *)&nl, sizeof(nl)) == 0) {
		agent_set_watch_fd(a, v.uevent_fd);
	} else {
		console_log("no uevent socket (%s): ports that appear later are not served", strerror(errno));
		if (v.uevent_fd >= 0)
			close(v.uevent_fd);
		v.uevent_fd = -1;
	}
	scan_ports(a, &v);
	if (cfg->agent_vsock_port)
		listen_vsock(a, cfg->agent_vsock_port);
	int r = agent_run(a, &err);
	if (r < 0)
		console_log("%s", err.msg);
	else
		console_log("no port left to serve");
	agent_free(a);
	_exit(r < 0 ? 1 : 0);
}
