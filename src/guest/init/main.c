/* gureum-init: PID 1 of a gureum VM (README.md).
 *
 *  1. devtmpfs, proc, sysfs; /etc/gureum/instance.json; kernel modules
 *  2. the root disk (bounded wait), switch root into it
 *  3. hostname, network, resolv.conf
 *  4. the agent (a child process), then either exec the image's init, or
 *     run the command, reap every orphan, report its exit code
 *     ("gureum-init: exit CODE") and power off; with neither a command nor
 *     an init in the image, stay PID 1 with the agent until told to stop.
 * Every step logs to /dev/console; a fatal error says why and powers off. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_vm.h"
#include "boot.h"
#include "disks.h"
#include "config.h"
#include "console.h"
#include "net.h"

#ifndef GR_GUEST_VERSION
#define GR_GUEST_VERSION "0"
#endif

#define ROOT_WAIT_MS 60000
#define NIC_WAIT_MS 10000
#define TERM_GRACE_MS 5000
#define KILL_GRACE_MS 2000
#define MAX_AGENT_RESTARTS 10
#define MAX_BUTTONS 4

static struct ginit_config cfg;
static int status_pipe[2] = { -1, -1 };   /* command status -> agent */
static pid_t agent_pid = -1;

static void __attribute__((noreturn)) fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	console_log("fatal: %s", msg);
	console_log("powering off");
	boot_poweroff(false);
}

static void reset_signals(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static pid_t start_agent(bool pid1_is_us)
{
	pid_t pid = fork();
	if (pid < 0) {
		console_log("cannot fork the agent: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		reset_signals();
		if (status_pipe[1] >= 0)
			close(status_pipe[1]);
		console_set_prefix("gureum-init: agent: ");
		prctl(PR_SET_NAME, "gureum-agent");
		agent_vm_run(&cfg, status_pipe[0], pid1_is_us);
	}
	return pid;
}

static void setup_network(bool command_mode)
{
	struct gr_error err = { 0 };
	if (net_link_up("lo", &err) < 0)
		console_log("%s", err.msg);
	if (!cfg.has_network) {
		if (!command_mode)
			return;  /* the image's init configures its network */
		/* DHCP, when the image has a client. */
		static const char *const clients[][2] = {
			{ "/sbin/udhcpc", "/usr/share/udhcpc/default.script" },
			{ "/usr/sbin/dhclient", "/sbin/dhclient-script" },
			{ "/sbin/dhclient", "/sbin/dhclient-script" },
		};
		char ifname[32];
		if (net_find_interface(NULL, ifname, sizeof(ifname), 0, &err) < 0) {
			console_log("network: lo only (%s)", err.msg);
			return;
		}
		for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
			if (access(clients[i][0], X_OK) < 0 || access(clients[i][1], R_OK) < 0)
				continue;
			net_link_up(ifname, &err);
			console_log("network: DHCP on %s with %s", ifname, clients[i][0]);
			pid_t pid = fork();
			if (pid == 0) {
				reset_signals();
				bool udhcpc = strstr(clients[i][0], "udhcpc") != NULL;
				char *const uargv[] = { "udhcpc", "-i", ifname, "-b", "-s", (char *)clients[i][1], NULL };
				char *const dargv[] = { "dhclient", "-nw", ifname, NULL };
				char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
				execve(clients[i][0], udhcpc ? uargv : dargv, envp);
				_exit(127);
			}
			return;  /* reaped with the other orphans */
		}
		console_log("network: no address given and no DHCP client in the image: lo only");
		return;
	}
	char ifname[32];
	if (net_find_interface(cfg.net.has_mac ? cfg.net.mac : NULL, ifname, sizeof(ifname), NIC_WAIT_MS, &err) < 0 ||
	    net_configure(ifname, &cfg.net, &err) < 0) {
		console_log("network: %s", err.msg);
		return;
	}
	char a[16];
	inet_ntop(AF_INET, &cfg.net.address, a, sizeof(a));
	console_log("network: %s %s/%u%s", ifname, a, cfg.net.prefix, cfg.net.has_gateway ? " with a default route" : "");
	if (cfg.net.ndns > 0) {
		if (net_write_resolv_conf("/etc/resolv.conf", &cfg.net, &err) < 0)
			console_log("%s", err.msg);
	}
}

static void set_hostname(void)
{
	if (!cfg.hostname)
		return;
	if (sethostname(cfg.hostname, strlen(cfg.hostname)) < 0) {
		console_log("sethostname %s: %s", cfg.hostname, strerror(errno));
		return;
	}
	/* For an image's own init, which sets the name from /etc/hostname. */
	int fd = open("/etc/hostname.gureum-tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd >= 0) {
		size_t n = strlen(cfg.hostname);
		bool ok = write(fd, cfg.hostname, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
		close(fd);
		if (!ok || rename("/etc/hostname.gureum-tmp", "/etc/hostname") < 0)
			unlink("/etc/hostname.gureum-tmp");
	}
}

/* ---- command mode ---- */

static char **command_env(void)
{
	static const char *const defaults[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
						"HOME=/root", "TERM=linux" };
	size_t n = 0;
	while (cfg.env[n])
		n++;
	char **env = calloc(n + 4, sizeof(char *));
	if (!env)
		return cfg.env;
	size_t k = 0;
	for (size_t i = 0; i < 3; i++) {
		size_t klen = strchr(defaults[i], '=') - defaults[i] + 1;
		bool given = false;
		for (size_t j = 0; j < n; j++)
			if (strncmp(cfg.env[j], defaults[i], klen) == 0)
				given = true;
		if (!given)
			env[k++] = (char *)defaults[i];
	}
	for (size_t j = 0; j < n; j++)
		env[k++] = cfg.env[j];
	return env;
}

static pid_t start_command(void)
{
	char **env = command_env();
	char path[4096];
	int r = agent_find_program(cfg.command[0], env, path, sizeof(path));
	if (r < 0) {
		console_log("command %s: %s", cfg.command[0], r == -ENOENT ? "not found in PATH" : strerror(-r));
		return -1;
	}
	console_log("running %s", path);
	pid_t pid = fork();
	if (pid < 0) {
		console_log("cannot fork the command: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		reset_signals();
		setsid();
		int fd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (fd >= 0) {
			ioctl(fd, TIOCSCTTY, 1);
			dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		if (chdir(cfg.cwd) < 0) {
			console_log("command: cannot change to %s: %s", cfg.cwd, strerror(errno));
			_exit(127);
		}
		execve(path, cfg.command, env);
		int e = errno;
		console_log("command: execve %s: %s", path, strerror(e));
		_exit(e == EACCES || e == ENOEXEC ? 126 : 127);
	}
	return pid;
}

static int open_buttons(int *fds)
{
	int n = 0;
	DIR *d = opendir("/sys/class/input");
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < MAX_BUTTONS) {
		if (strncmp(de->d_name, "event", 5) != 0)
			continue;
		char path[300], name[64] = "";
		snprintf(path, sizeof(path), "/sys/class/input/%s/device/name", de->d_name);
		int f = open(path, O_RDONLY | O_CLOEXEC);
		if (f < 0)
			continue;
		ssize_t r = read(f, name, sizeof(name) - 1);
		close(f);
		if (r <= 0 || strncmp(name, "Power Button", 12) != 0)
			continue;
		char dev[300];
		snprintf(dev, sizeof(dev), "/dev/input/%s", de->d_name);
		int fd = open(dev, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			fds[n++] = fd;
	}
	closedir(d);
	return n;
}

static bool power_key_pressed(int fd)
{
	struct input_event ev[16];
	ssize_t n = read(fd, ev, sizeof(ev));
	for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(ev[0]); i++)
		if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
			return true;
	return false;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Reaps until no child is left or ms have passed (SIGCHLD on sfd wakes us). */
static void reap_for(int sfd, long ms)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t p;
		while ((p = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (p < 0 && errno == ECHILD)
			return;
		long left = ms - ms_since(&t0);
		if (left <= 0)
			return;
		struct pollfd pfd = { .fd = sfd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) > 0) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) > 0)
				;
		}
	}
}

static void __attribute__((noreturn)) shutdown_all(int sfd, bool reboot_)
{
	console_log("%s: stopping every process", reboot_ ? "rebooting" : "powering off");
	kill(-1, SIGTERM);
	kill(-1, SIGCONT);
	reap_for(sfd, TERM_GRACE_MS);
	kill(-1, SIGKILL);
	reap_for(sfd, KILL_GRACE_MS);
	sync();
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		console_log("cannot remount / read-only: %s", strerror(errno));
	boot_poweroff(reboot_);
}

static void __attribute__((noreturn)) run_command_mode(sigset_t *mask)
{
	int sfd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fatal("signalfd: %s", strerror(errno));
	if (pipe2(status_pipe, O_CLOEXEC) < 0)
		status_pipe[0] = status_pipe[1] = -1;
	agent_pid = start_agent(true);
	int agent_restarts = 0;
	int buttons[MAX_BUTTONS];
	int nbuttons = open_buttons(buttons);  /* before the command: a press from then on is seen */
	pid_t cmd = cfg.command ? start_command() : 0;  /* 0: no command, only the agent */
	bool done = cmd < 0;
	int status = 127 << 8;  /* "not found" when it could not start */
	for (;;) {
		if (done) {
			int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
			int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
			if (sig)
				console_log("the command was killed by signal %d (%s)", sig, strsignal(sig));
			console_log("exit %d", code);
			if (status_pipe[1] >= 0) {
				char line[32];
				int n = snprintf(line, sizeof(line), "%d %d\n", code, sig);
				if (write(status_pipe[1], line, (size_t)n) < 0)
					console_log("cannot tell the agent the exit code: %s", strerror(errno));
			}
			shutdown_all(sfd, false);
		}
		struct pollfd pfd[1 + MAX_BUTTONS] = { { .fd = sfd, .events = POLLIN } };
		for (int i = 0; i < nbuttons; i++)
			pfd[1 + i] = (struct pollfd){ .fd = buttons[i], .events = POLLIN };
		if (poll(pfd, (nfds_t)(1 + nbuttons), -1) < 0)
			continue;
		for (int i = 0; i < nbuttons; i++)
			if ((pfd[1 + i].revents & POLLIN) && power_key_pressed(buttons[i])) {
				console_log("power button pressed");
				shutdown_all(sfd, false);
			}
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			int s = (int)si.ssi_signo;
			if (s == SIGCHLD) {
				int st;
				pid_t p;
				while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
					if (p == cmd) {
						status = st;
						done = true;
					} else if (p == agent_pid) {
						console_log("the agent ended (status 0x%x)%s", st,
							    agent_restarts < MAX_AGENT_RESTARTS ? ": restarting it" : "");
						agent_pid = agent_restarts++ < MAX_AGENT_RESTARTS ? start_agent(true) : -1;
					}
				}
			} else if (s == SIGINT || s == SIGRTMIN + 5) {
				shutdown_all(sfd, true);
			} else if (s == SIGTERM || s == SIGUSR1 || s == SIGUSR2 || s == SIGPWR ||
				   s == SIGRTMIN + 3 || s == SIGRTMIN + 4) {
				shutdown_all(sfd, false);
			}
		}
	}
}

/* ---- image-init mode ---- */

static void __attribute__((noreturn)) exec_image_init(void)
{
	struct stat st;
	if (stat(cfg.init, &st) < 0)
		fatal("the image has no %s (%s): give the instance a command, or use an image with an init",
		      cfg.init, strerror(errno));
	agent_pid = start_agent(false);
	console_log("starting the image's init %s", cfg.init);
	reset_signals();
	char *const argv[] = { cfg.init, NULL };
	char *const envp[] = { "HOME=/", "TERM=linux", NULL };
	execve(cfg.init, argv, envp);
	fatal("execve %s: %s", cfg.init, strerror(errno));
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("gureum-init %s\n", GR_GUEST_VERSION);
		return 0;
	}
	if (getpid() != 1) {
		fprintf(stderr, "gureum-init: runs only as PID 1, the /init of a gureum VM's initramfs\n");
		return 2;
	}
	umask(022);
	/* Signals PID 1 acts on are read from a signalfd (the kernel ignores
	 * unhandled signals for init anyway). */
	sigset_t mask;
	sigemptyset(&mask);
	int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGPWR,
		       SIGRTMIN + 3, SIGRTMIN + 4, SIGRTMIN + 5 };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&mask, sigs[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	reboot(RB_DISABLE_CAD);  /* Ctrl-Alt-Del: SIGINT to us */

	struct gr_error err = { 0 };
	int early = boot_early_mounts(&err);
	console_open();
	/* The kernel gives /init no stdio when the initramfs has no /dev/console. */
	if (fcntl(0, F_GETFD) < 0) {
		int fd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (fd >= 0 && fd != 0)
			dup2(fd, 0);
		if (fcntl(1, F_GETFD) < 0)
			dup2(0, 1);
		if (fcntl(2, F_GETFD) < 0)
			dup2(0, 2);
		if (fd > 2)
			close(fd);
	}
	struct utsname u;
	uname(&u);
	console_log("gureum-init %s on Linux %s", GR_GUEST_VERSION, u.release);
	if (early < 0)
		fatal("%s", err.msg);
	if (ginit_config_load(GINIT_CONFIG_PATH, &cfg, &err) < 0)
		fatal("%s", err.msg);
	boot_load_modules(GINIT_MODULES_LIST);
	if (cfg.has_root_disk) {
		/* Found by its serial: with volumes, vda is not always the root. */
		char dev[64], serial[32];
		snprintf(serial, sizeof(serial), GINIT_DISK_SERIAL, 0u);
		if (disks_wait_by_serial("/sys/block", serial, ROOT_WAIT_MS, dev, sizeof(dev), &err) < 0)
			fatal("no root disk: %s (is virtio_blk loaded, and does the VM have its disk?)", err.msg);
		free(cfg.root);
		if (asprintf(&cfg.root, "/dev/%s", dev) < 0)
			fatal("out of memory");
	}
	if (boot_wait_for_block(cfg.root, ROOT_WAIT_MS, &err) < 0)
		fatal("%s", err.msg);
	if (boot_switch_root(cfg.root, cfg.rootfstype, &err) < 0)
		fatal("%s", err.msg);
	console_log("root: %s (%s)", cfg.root, cfg.rootfstype);
	/* No command and no init in the image (a minimal image such as
	 * debian/12's minbase): gureum-init stays PID 1 with the agent only,
	 * the way a container with no long-running command would idle. */
	bool command_mode = cfg.command != NULL || access(cfg.init, X_OK) < 0; /* as gureumd's root check */
	if (!cfg.command)
		console_log(command_mode ? "the image has no %s: gureum-init stays PID 1 and serves the agent "
					   "(give the instance a command to run one)"
					 : "the image's init is %s", cfg.init);
	boot_finish_mounts(command_mode);
	boot_mount_volumes(&cfg);
	set_hostname();
	setup_network(command_mode);
	if (command_mode)
		run_command_mode(&mask);
	exec_image_init();
}
