/* gureumd: the control plane (README.md). Parses its flags, prepares the
 * state and run directories, takes the run directory's lock (one daemon per
 * run directory), then starts its parts in the order of daemon.h: store,
 * events, operations, reconciliation, server. SIGTERM and SIGINT stop it;
 * instances keep running under their supervisors. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "daemon/api/server.h"
#include "daemon/daemon.h"
#include "daemon/events.h"
#include "daemon/image/builder.h"
#include "daemon/image/store.h"
#include "daemon/operations.h"
#include "daemon/network/network.h"
#include "daemon/reconcile.h"
#include "daemon/volume.h"
#include "daemon/store/images.h"
#include "daemon/store/store.h"

#define DEFAULT_STATE_DIR "/var/lib/gureum"
#define DEFAULT_RUN_DIR "/run/gureum"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gureumd [--state-dir DIR] [--run-dir DIR] [--listen ADDR:PORT]\n"
		"               [--log-level debug|info|warn|error]\n"
		"  --state-dir DIR     persistent state (default $GUREUM_STATE_DIR or " DEFAULT_STATE_DIR ")\n"
		"  --run-dir DIR       sockets and runtime state (default $GUREUM_RUN_DIR or " DEFAULT_RUN_DIR ")\n"
		"  --listen ADDR:PORT  also serve the API over TCP with TLS (token authentication)\n"
		"  --log-level LEVEL   messages on stderr from this level up (default info)\n");
}

static int parse_level(const char *s, enum gr_log_level *out)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum gr_log_level)i;
			return 0;
		}
	if (strcmp(s, "warning") == 0) {
		*out = GR_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

/* Absolute, normalized-enough path of a directory flag, created if missing
 * and given exactly mode: STATE 0700 (owner only: the database, keys);
 * RUN 0711 (others may pass through, to reach the networks' host files that
 * dnsmasq reads as nobody, but list nothing; what is in it is 0600/0700). */
static int prepare_dir(const char *flag, const char *dir, mode_t mode, char **out, struct gr_error *err)
{
	if (!*dir)
		return gr_error_set(err, EINVAL, "%s: empty path", flag);
	int rc = gr_mkdir_p(dir, mode, err);
	if (rc < 0)
		return gr_error_prefix(err, "%s %s", flag, dir);
	char *abs = realpath(dir, NULL);
	if (!abs)
		return gr_error_sys(err, errno, "%s %s", flag, dir);
	struct stat st;
	if (stat(abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(abs);
		return gr_error_set(err, ENOTDIR, "%s %s: not a directory", flag, dir);
	}
	if ((st.st_mode & 07777) != mode && chmod(abs, mode) < 0) {
		rc = gr_error_sys(err, errno, "%s %s: cannot set its mode to %04o", flag, dir, (unsigned)mode);
		free(abs);
		return rc;
	}
	*out = abs;
	return 0;
}

/* RUN/gureumd.lock, flock'ed for the daemon's life (the kernel releases it
 * when the process dies, so a crash leaves no stale lock). */
static int take_lock(const char *run_dir, int *fd_out, struct gr_error *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/gureumd.lock", run_dir);
	gr_autoclose int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open the lock file %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		if (e == EWOULDBLOCK) {
			char buf[32] = "";
			ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			return gr_error_set(err, EBUSY,
					    "another gureumd%s%s%s is already running with run directory %s (lock %s held)",
					    buf[0] ? " (pid " : "", buf[0] ? buf : "", buf[0] ? ")" : "", run_dir, path);
		}
		return gr_error_sys(err, e, "cannot lock %s", path);
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
		return gr_error_sys(err, errno, "cannot write the lock file %s", path);
	*fd_out = gr_steal_fd(fd);
	return 0;
}

/* Where gureum-supervisor is: $GUREUM_LIBEXEC_DIR, else next to gureumd. */
#ifndef GUREUM_INSTALLED_LIBEXEC
#define GUREUM_INSTALLED_LIBEXEC "/usr/local/libexec/gureum"
#endif
#ifndef GUREUM_INSTALLED_BINDIR
#define GUREUM_INSTALLED_BINDIR "/usr/local/bin"
#endif

/* The directory of gureumd's own executable (malloc'd), or NULL. */
static char *exe_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	return strdup(exe);
}

/* Where gureum-supervisor is: $GUREUM_LIBEXEC_DIR, else next to gureumd (the
 * build tree: build/src/daemon), else the installed libexec directory. */
static char *libexec_dir(void)
{
	const char *env = getenv("GUREUM_LIBEXEC_DIR");
	if (env && *env)
		return strdup(env);
	char *dir = exe_dir(), path[PATH_MAX];
	if (dir && snprintf(path, sizeof(path), "%s/gureum-supervisor", dir) < (int)sizeof(path) &&
	    access(path, X_OK) == 0)
		return dir;
	free(dir);
	return strdup(GUREUM_INSTALLED_LIBEXEC);
}

/* How to call the CLI, for the start-up hint: "gureum" when the one on PATH
 * is ours, else the full path of the build tree's or the installed one. */
static void cli_command(char *out, size_t n)
{
	gr_autofree char *dir = exe_dir();
	char path[PATH_MAX];
	/* The build tree: build/src/daemon/gureumd -> build/src/cli/gureum. */
	if (dir && snprintf(path, sizeof(path), "%s/../cli/gureum", dir) < (int)sizeof(path) &&
	    access(path, X_OK) == 0) {
		gr_autofree char *real = realpath(path, NULL);
		snprintf(out, n, "%s", real ? real : path);
		return;
	}
	snprintf(out, n, "%s/gureum", GUREUM_INSTALLED_BINDIR);
	if (access(out, X_OK) < 0)
		snprintf(out, n, "gureum");
}

/* --print-routes (for tests/integration/test_daemon_openapi.py): every route
 * the server serves, "METHOD PATTERN" per line. */
static void print_routes(void)
{
	const struct route *const tables[] = { instance_routes, core_routes, image_routes, volume_routes, network_routes, snapshot_routes };
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct route *r = tables[t]; r->method; r++)
			printf("%s %s\n", r->method, r->pattern);
}

static struct daemon g_daemon;
static sigset_t g_stop_signals;

/* SIGTERM and SIGINT are blocked in every thread and taken here. */
static void *signal_thread(void *arg)
{
	struct daemon *d = arg;
	for (;;) {
		int sig;
		if (sigwait(&g_stop_signals, &sig) != 0)
			continue;
		gr_info("gureumd: %s received, stopping (instances keep running)", strsignal(sig));
		d->stopping = 1;
		server_wake(d);
		return NULL;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "listen", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "print-routes", no_argument, NULL, 'R' },
		{ 0 },
	};
	const char *state = getenv("GUREUM_STATE_DIR");
	const char *run = getenv("GUREUM_RUN_DIR");
	if (!state || !*state)
		state = DEFAULT_STATE_DIR;
	if (!run || !*run)
		run = DEFAULT_RUN_DIR;
	const char *listen = NULL;
	enum gr_log_level level = GR_LOG_INFO;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': state = optarg; break;
		case 'r': run = optarg; break;
		case 'l': listen = optarg; break;
		case 'L':
			if (parse_level(optarg, &level) < 0) {
				fprintf(stderr, "gureumd: --log-level: unknown level '%s' (debug, info, warn, error)\n", optarg);
				return 1;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'R': print_routes(); return 0;
		default:
			fprintf(stderr, "gureumd: %s: %s\n", argv[optind - 1],
				optopt && strchr("srlL", optopt) ? "missing value" : "unknown option");
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "gureumd: unexpected argument '%s'\n", argv[optind]);
		return 1;
	}
	gr_log_set_stderr_level(level);

	struct daemon *d = &g_daemon;
	struct gr_error err = { 0 };
	gr_autofree char *state_dir = NULL, *run_dir = NULL, *libexec = libexec_dir();
	gr_autoclose int lock_fd = -1;
	if (prepare_dir("--state-dir", state, 0700, &state_dir, &err) < 0 ||
	    prepare_dir("--run-dir", run, 0711, &run_dir, &err) < 0 || take_lock(run_dir, &lock_fd, &err) < 0) {
		fprintf(stderr, "gureumd: %s\n", err.msg);
		return 1;
	}
	d->env.state_dir = state_dir;
	d->env.run_dir = run_dir;
	d->env.libexec_dir = libexec;
	d->listen = listen;
	pthread_mutex_init(&d->locks_mu, NULL);

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&g_stop_signals);
	sigaddset(&g_stop_signals, SIGTERM);
	sigaddset(&g_stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &g_stop_signals, NULL);
	pthread_t sig_thread;
	pthread_create(&sig_thread, NULL, signal_thread, d);

	int status = 1;
	if (store_open(state_dir, &d->store, &err) < 0 || events_init(d, &err) < 0 || operations_init(d, &err) < 0)
		goto out;
	/* The image store (cleans STATE/images/tmp, checks files against rows)
	 * and the busybox image, built on first start; instances made before
	 * images were pinned get their fingerprint. Without busybox-static the
	 * daemon still runs: imports work, launch busybox says what is missing. */
	if (image_store_open(state_dir, d->store, &d->images, &err) < 0) {
		gr_error_prefix(&err, "image store");
		goto out;
	}
	if (image_builder_ensure(d->images, &err) < 0)
		gr_warn("gureumd: %s", err.msg);
	if (store_instances_pin_images(d->store, NULL, &err) < 0)
		gr_warn("gureumd: %s", err.msg);
	if (reconcile(d, &err) < 0) {
		gr_error_prefix(&err, "reconciliation");
		goto out;
	}
	volume_cleanup(state_dir);
	/* Networks: the default one on the first start, then every bridge,
	 * dnsmasq and the nftables table made to match the database. */
	if (network_startup(d, &err) < 0) {
		gr_error_prefix(&err, "networks");
		goto out;
	}
	if (server_start(d, &err) < 0)
		goto out;

	printf("gureumd: ready; state %s, run %s, API on %s/gureum.sock%s%s\n", state_dir, run_dir, run_dir,
	       listen ? " and https://" : "", listen ? listen : "");
	char cli[PATH_MAX + 16];
	cli_command(cli, sizeof(cli));
	if (strcmp(run_dir, DEFAULT_RUN_DIR) == 0)
		printf("gureumd: launch an instance with:  %s launch busybox c1\n", cli);
	else
		printf("gureumd: launch an instance with:  %s --socket %s/gureum.sock launch busybox c1\n", cli, run_dir);
	fflush(stdout);
	if (!d->stopping && server_run(d) < 0)
		gr_warn("gureumd: the service loop failed");
	status = 0;
out:
	if (status != 0)
		fprintf(stderr, "gureumd: %s\n", err.msg);
	/* The server first: closing its connections tells relay owners (exec
	 * operations) that their clients are gone, so their workers can end. */
	server_stop(d);
	operations_free(d);
	if (d->ops) {
		/* Workers still run and use the events and the store: leave them to the exit. */
		fflush(stdout);
		_exit(status);
	}
	network_shutdown(d);
	events_free(d);
	image_store_close(d->images);   /* before the store: it uses it */
	d->images = NULL;
	if (d->store)
		store_close(d->store);
	d->store = NULL;
	/* No operation runs any more: the drivers may drop what their instances
	 * shared and no longer use (the container driver's empty cgroup parent). */
	for (size_t i = 0; status == 0 && instance_drivers[i]; i++)
		if (instance_drivers[i]->cleanup)
			instance_drivers[i]->cleanup(&d->env);
	pthread_cancel(sig_thread);
	pthread_join(sig_thread, NULL);
	if (status == 0)
		gr_info("gureumd: stopped");
	return status;
}
