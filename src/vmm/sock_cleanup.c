/* Listening unix sockets with a stale-socket check, mode 0600, and removal
 * at exit by a watcher process (see sock_cleanup.h). */
#include "sock_cleanup.h"
#include "common/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Removes path if it is a socket nobody listens on; fails if something does
 * or if it is not a socket. */
static int remove_stale_socket(const char *what, const char *path, const struct sockaddr_un *sa,
			       struct gr_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return gr_error_sys(err, errno, "%s %s", what, path);
	}
	if (!S_ISSOCK(st.st_mode))
		return gr_error_set(err, EEXIST, "%s %s: the path exists and is not a socket; remove it or choose another path",
				    what, path);
	gr_autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return gr_error_sys(err, errno, "%s %s: socket", what, path);
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		return gr_error_set(err, EADDRINUSE,
				    "%s %s: another process is listening on it (is a gureum-vmm already running?)", what,
				    path);
	if (errno != ECONNREFUSED)
		return gr_error_sys(err, errno, "%s %s: cannot tell whether it is in use", what, path);
	if (unlink(path) < 0 && errno != ENOENT)
		return gr_error_sys(err, errno, "%s %s: cannot remove the stale socket", what, path);
	return 0;
}

int sock_file_listen(struct sock_file *sf, const char *what, const char *path, int backlog, struct gr_error *err)
{
	*sf = SOCK_FILE_NONE;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = path ? strlen(path) : 0;
	if (n == 0)
		return gr_error_set(err, EINVAL, "%s: empty path", what);
	if (n >= sizeof(sa.sun_path))
		return gr_error_set(err, ENAMETOOLONG, "%s %s: the path is longer than %zu bytes", what, path,
				    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, n + 1);
	int r = remove_stale_socket(what, path, &sa, err);
	if (r < 0)
		return r;
	gr_autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return gr_error_sys(err, errno, "%s %s: socket", what, path);
	/* The mode of the socket inode is what bind gives the file (less the
	 * umask): 0600 from the start. */
	if (fchmod(fd, 0600) < 0)
		return gr_error_sys(err, errno, "%s %s: fchmod", what, path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return gr_error_sys(err, errno, "%s %s: bind", what, path);
	struct stat st;
	if (chmod(path, 0600) < 0 || lstat(path, &st) < 0) {
		r = gr_error_sys(err, errno, "%s %s: chmod", what, path);
		unlink(path);
		return r;
	}
	if (listen(fd, backlog) < 0) {
		r = gr_error_sys(err, errno, "%s %s: listen", what, path);
		unlink(path);
		return r;
	}
	memcpy(sf->path, path, n + 1);
	sf->dev = st.st_dev;
	sf->ino = st.st_ino;
	sf->ctim = st.st_ctim;
	return gr_steal_fd(fd);
}

/* Async-signal-safe (the watcher calls it after fork). */
static void remove_if_ours(const struct sock_file *sf)
{
	struct stat st;
	if (sf->path[0] && lstat(sf->path, &st) == 0 && st.st_dev == sf->dev && st.st_ino == sf->ino &&
	    st.st_ctim.tv_sec == sf->ctim.tv_sec && st.st_ctim.tv_nsec == sf->ctim.tv_nsec)
		unlink(sf->path);
}

void sock_file_remove(struct sock_file *sf)
{
	if (sf->watch_fd >= 0) {
		close(sf->watch_fd); /* the watcher removes the file and ends, closing its end of ack */
		sf->watch_fd = -1;
		struct pollfd pfd = { .fd = sf->ack_fd, .events = POLLIN };
		char c;
		while (poll(&pfd, 1, SOCK_FILE_WATCHER_WAIT_MS) > 0 && read(sf->ack_fd, &c, 1) > 0)
			;
		close(sf->ack_fd);
		sf->ack_fd = -1;
	} else {
		remove_if_ours(sf);
	}
	sf->path[0] = '\0';
}

static void close_pipe(int p[2])
{
	close(p[0]);
	close(p[1]);
}

int sock_file_unlink_at_exit(struct sock_file *sf, struct gr_error *err)
{
	if (sf->watch_fd >= 0 || !sf->path[0])
		return 0;
	int p[2], ack[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "%s: pipe for the watcher", sf->path);
	if (pipe2(ack, O_CLOEXEC) < 0) {
		int e = errno;
		close_pipe(p);
		return gr_error_sys(err, e, "%s: pipe for the watcher", sf->path);
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close_pipe(p);
		close_pipe(ack);
		return gr_error_sys(err, e, "%s: fork of the watcher", sf->path);
	}
	if (pid == 0) {
		/* The watcher. Other threads may exist: async-signal-safe calls only. */
		struct sigaction ign = { .sa_handler = SIG_IGN };
		sigaction(SIGINT, &ign, NULL);
		sigaction(SIGHUP, &ign, NULL);
		sigaction(SIGTERM, &ign, NULL);
		sigaction(SIGPIPE, &ign, NULL);
		/* Keep only the pipe it waits on and the one it holds until done. */
		unsigned lo = (unsigned)(p[0] < ack[1] ? p[0] : ack[1]), hi = (unsigned)(p[0] < ack[1] ? ack[1] : p[0]);
		if (lo > 0)
			close_range(0, lo - 1, 0);
		if (hi > lo + 1)
			close_range(lo + 1, hi - 1, 0);
		close_range(hi + 1, ~0U, 0);
		char c;
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		remove_if_ours(sf);
		_exit(0);
	}
	close(p[0]);
	close(ack[1]);
	sf->watch_fd = p[1];
	sf->ack_fd = ack[0];
	return 0;
}
