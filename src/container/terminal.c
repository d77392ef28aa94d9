#include "terminal.h"
#include "../common/cleanup.h"
#include "../common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

int terminal_open_pty(int *master, int *slave, char *slave_path, size_t n, struct gr_error *err)
{
	gr_autoclose int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return gr_error_sys(err, errno, "cannot open /dev/ptmx");
	if (unlockpt(m) < 0)
		return gr_error_sys(err, errno, "unlockpt");
	if (ptsname_r(m, slave_path, n) != 0)
		return gr_error_sys(err, errno, "ptsname");
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		s = open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		return gr_error_sys(err, errno, "cannot open the pty slave %s", slave_path);
	*slave = s;
	*master = gr_steal_fd(m);
	return 0;
}

int terminal_set_size(int fd, unsigned int rows, unsigned int cols, struct gr_error *err)
{
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
	if (ioctl(fd, TIOCSWINSZ, &ws) < 0)
		return gr_error_sys(err, errno, "cannot set the terminal size");
	return 0;
}

int terminal_make_controlling(int slave, struct gr_error *err)
{
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		return gr_error_sys(err, errno, "cannot make the pty the controlling terminal");
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0)
			return gr_error_sys(err, errno, "cannot attach the pty to fd %d", fd);
	return 0;
}

int terminal_connect(const char *path, int *out, struct gr_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path))
		return gr_error_set(err, ENAMETOOLONG, "--console-socket %s: path too long", path);
	strcpy(addr.sun_path, path);
	gr_autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return gr_error_sys(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return gr_error_sys(err, errno, "cannot connect to --console-socket %s", path);
	*out = gr_steal_fd(fd);
	return 0;
}

int terminal_send_fd(int sock, int fd, struct gr_error *err)
{
	char byte = 'T';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t r;
	do
		r = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return gr_error_sys(err, errno, "cannot send the pty to the console socket");
	return 0;
}

int terminal_recv_fd(int sock, int *fd, struct gr_error *err)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	ssize_t r;
	do
		r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return gr_error_sys(err, errno, "cannot receive the pty");
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (r == 0 || !c || c->cmsg_type != SCM_RIGHTS)
		return gr_error_set(err, EPROTO, "the container did not send a pty");
	memcpy(fd, CMSG_DATA(c), sizeof(int));
	return 0;
}

int terminal_relay(int master, struct gr_error *err)
{
	struct termios saved;
	bool raw = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (raw) {
		struct termios t = saved;
		cfmakeraw(&t);
		tcsetattr(STDIN_FILENO, TCSANOW, &t);
		struct winsize ws;
		if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
			ioctl(master, TIOCSWINSZ, &ws);
	}
	/* Window size changes follow the caller's terminal (the kernel then
	 * signals the container's foreground process group itself). */
	sigset_t winch, old_mask;
	sigemptyset(&winch);
	sigaddset(&winch, SIGWINCH);
	sigprocmask(SIG_BLOCK, &winch, &old_mask);
	gr_autoclose int sfd = raw ? signalfd(-1, &winch, SFD_CLOEXEC | SFD_NONBLOCK) : -1;
	char buf[8192];
	bool stdin_open = true;
	int r = 0;
	for (;;) {
		struct pollfd p[3] = { { .fd = master, .events = POLLIN },
				       { .fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = gr_error_sys(err, errno, "poll");
			break;
		}
		if (p[2].revents & POLLIN) {
			struct signalfd_siginfo si;
			struct winsize ws;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
				ioctl(master, TIOCSWINSZ, &ws);
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(master, buf, sizeof(buf));
			if (n <= 0)
				break; /* EIO once every slave is closed */
			if (gr_write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				break;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0) {
				stdin_open = false;
				char eot = 4;
				(void)gr_write_all(master, &eot, 1);
			} else if (gr_write_all(master, buf, (size_t)n) < 0) {
				stdin_open = false;
			}
		}
	}
	if (raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return r;
}
