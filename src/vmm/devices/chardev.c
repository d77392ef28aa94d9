/* Character backends: stdio, file, unix socket, none (see chardev.h). */
#include "vmm/devices/chardev.h"
#include "common/cleanup.h"
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int chardev_parse(const char *what, const char *spec, enum chardev_kind *kind, const char **path,
		  struct gr_error *err)
{
	*path = NULL;
	if (!spec || strcmp(spec, "stdio") == 0) {
		*kind = CHARDEV_STDIO;
		return 0;
	}
	if (strcmp(spec, "none") == 0) {
		*kind = CHARDEV_NONE;
		return 0;
	}
	if (strncmp(spec, "file=", 5) == 0 && spec[5]) {
		*kind = CHARDEV_FILE;
		*path = spec + 5;
		return 0;
	}
	if (strncmp(spec, "socket=", 7) == 0 && spec[7]) {
		*kind = CHARDEV_SOCKET;
		*path = spec + 7;
		return 0;
	}
	return gr_error_set(err, EINVAL, "%s: expected stdio, file=PATH, socket=PATH or none, got \"%s\"", what, spec);
}

static void chardev_reset(struct chardev *cd, const char *what)
{
	memset(cd, 0, sizeof(*cd));
	cd->what = what;
	cd->out_fd = cd->in_fd = cd->listen_fd = cd->client_fd = -1;
	cd->in_h.fd = cd->listen_h.fd = -1;
	cd->sock = SOCK_FILE_NONE;
	pthread_mutex_init(&cd->lock, NULL);
}

static int set_raw(struct chardev *cd, struct gr_error *err)
{
	if (!isatty(STDIN_FILENO))
		return 0;
	if (tcgetattr(STDIN_FILENO, &cd->tty_saved) < 0)
		return gr_error_sys(err, errno, "%s stdio: tcgetattr on stdin", cd->what);
	struct termios t = cd->tty_saved;
	t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | IEXTEN);   /* ISIG kept: ^C stops the VMM */
	t.c_cflag = (t.c_cflag & ~(tcflag_t)(CSIZE | PARENB)) | CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0)
		return gr_error_sys(err, errno, "%s stdio: putting the terminal in raw mode", cd->what);
	cd->tty_raw = true;
	return 0;
}

int chardev_open(struct chardev *cd, const char *what, const char *spec, struct gr_error *err)
{
	chardev_reset(cd, what);
	const char *path;
	int r = chardev_parse(what, spec, &cd->kind, &path, err);
	if (r < 0)
		return r;
	switch (cd->kind) {
	case CHARDEV_NONE:
		return 0;
	case CHARDEV_STDIO:
		cd->out_fd = STDOUT_FILENO;
		cd->in_fd = STDIN_FILENO;
		return set_raw(cd, err);
	case CHARDEV_FILE:
		cd->out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (cd->out_fd < 0)
			return gr_error_sys(err, errno, "%s: cannot open %s", what, path);
		return 0;
	case CHARDEV_SOCKET: {
		char name[64];
		snprintf(name, sizeof(name), "%s socket", what);
		r = sock_file_listen(&cd->sock, name, path, 4, err);
		if (r < 0)
			return r;
		cd->listen_fd = r;
		return 0;
	}
	}
	return gr_error_set(err, EINVAL, "%s: bad backend", what);
}

int chardev_unlink_at_exit(struct chardev *cd, struct gr_error *err)
{
	if (cd->kind != CHARDEV_SOCKET)
		return 0;
	return sock_file_unlink_at_exit(&cd->sock, err);
}

/* ---- output ---- */

static void ring_add(struct chardev *cd, const uint8_t *buf, size_t n)
{
	if (n >= CHARDEV_RING) {
		cd->bytes_dropped += cd->ring_len + n - CHARDEV_RING;
		buf += n - CHARDEV_RING;
		n = CHARDEV_RING;
		cd->ring_start = cd->ring_len = 0;
	}
	size_t over = cd->ring_len + n > CHARDEV_RING ? cd->ring_len + n - CHARDEV_RING : 0;
	cd->ring_start = (cd->ring_start + over) % CHARDEV_RING;
	cd->ring_len -= over;
	cd->bytes_dropped += over;
	for (size_t i = 0; i < n; i++)
		cd->ring[(cd->ring_start + cd->ring_len + i) % CHARDEV_RING] = buf[i];
	cd->ring_len += n;
}

/* To the client without waiting; what does not fit is dropped. Under cd->lock. */
static void send_client(struct chardev *cd, const uint8_t *buf, size_t n)
{
	while (n) {
		ssize_t w = send(cd->client_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			cd->bytes_dropped += n;  /* full, or gone (the I/O thread sees the hang-up) */
			return;
		}
		buf += w;
		n -= (size_t)w;
	}
}

void chardev_write(struct chardev *cd, const uint8_t *buf, size_t n)
{
	if (!n)
		return;
	pthread_mutex_lock(&cd->lock);
	cd->bytes_out += n;
	if (cd->out_fd >= 0)
		(void)gr_write_all(cd->out_fd, buf, n);
	else if (cd->kind == CHARDEV_SOCKET && cd->client_fd >= 0)
		send_client(cd, buf, n);
	else if (cd->kind == CHARDEV_SOCKET)
		ring_add(cd, buf, n);
	pthread_mutex_unlock(&cd->lock);
}

/* ---- input (on the I/O thread, under the device lock) ---- */

static void drop_client(struct chardev *cd)
{
	ev_loop_del(cd->loop, &cd->in_h);
	pthread_mutex_lock(&cd->lock);
	close(cd->client_fd);
	cd->client_fd = -1;
	pthread_mutex_unlock(&cd->lock);
	cd->in_h.fd = -1;
	cd->in_registered = cd->in_paused = false;
}

static void on_input(struct ev_handler *h, uint32_t events)
{
	struct chardev *cd = (struct chardev *)((char *)h - offsetof(struct chardev, in_h));
	size_t room = cd->ops && cd->ops->room ? cd->ops->room(cd->opaque) : CHARDEV_READ_MAX;
	if (room == 0) {
		if (ev_loop_mod(cd->loop, h, 0, &(struct gr_error){ 0 }) == 0)
			cd->in_paused = true;
		return;
	}
	uint8_t buf[CHARDEV_READ_MAX];
	ssize_t n = read(h->fd, buf, room < sizeof(buf) ? room : sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		(void)events;
		if (cd->kind == CHARDEV_SOCKET) {
			drop_client(cd);
		} else {                /* end of stdin: no more input */
			ev_loop_del(cd->loop, h);
			cd->in_registered = false;
		}
		return;
	}
	cd->bytes_in += (uint64_t)n;
	if (cd->ops && cd->ops->input)
		cd->ops->input(cd->opaque, buf, (size_t)n);
	if (cd->ops && cd->ops->room && cd->ops->room(cd->opaque) == 0 &&
	    ev_loop_mod(cd->loop, h, 0, &(struct gr_error){ 0 }) == 0)
		cd->in_paused = true;
}

static void on_accept(struct ev_handler *h, uint32_t events)
{
	(void)events;
	struct chardev *cd = (struct chardev *)((char *)h - offsetof(struct chardev, listen_h));
	int fd = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (cd->client_fd >= 0) {   /* one client at a time */
		close(fd);
		return;
	}
	pthread_mutex_lock(&cd->lock);
	cd->client_fd = fd;
	cd->clients++;
	/* Replay what was written while nobody was connected. */
	size_t first = cd->ring_len < CHARDEV_RING - cd->ring_start ? cd->ring_len : CHARDEV_RING - cd->ring_start;
	send_client(cd, cd->ring + cd->ring_start, first);
	send_client(cd, cd->ring, cd->ring_len - first);
	cd->ring_start = cd->ring_len = 0;
	pthread_mutex_unlock(&cd->lock);
	cd->in_h.fd = fd;
	if (ev_loop_add(cd->loop, &cd->in_h, EPOLLIN, &(struct gr_error){ 0 }) < 0) {
		pthread_mutex_lock(&cd->lock);
		close(fd);
		cd->client_fd = cd->in_h.fd = -1;
		pthread_mutex_unlock(&cd->lock);
		return;
	}
	cd->in_registered = true;
	cd->in_paused = false;
}

int chardev_attach(struct chardev *cd, struct ev_loop *loop, pthread_mutex_t *lock, const struct chardev_ops *ops,
		   void *opaque, struct gr_error *err)
{
	cd->loop = loop;
	cd->ops = ops;
	cd->opaque = opaque;
	cd->in_h = (struct ev_handler){ .fd = -1, .fn = on_input, .lock = lock };
	cd->listen_h = (struct ev_handler){ .fd = cd->listen_fd, .fn = on_accept, .lock = lock };
	if (cd->kind == CHARDEV_SOCKET)
		return ev_loop_add(loop, &cd->listen_h, EPOLLIN, err) < 0 ? gr_error_prefix(err, "%s socket", cd->what) : 0;
	if (cd->kind == CHARDEV_STDIO && ops) {
		cd->in_h.fd = cd->in_fd;
		int r = ev_loop_add(loop, &cd->in_h, EPOLLIN, err);
		if (r == -EPERM) {       /* /dev/null or a regular file: no input */
			cd->in_h.fd = -1;
			return 0;
		}
		if (r < 0)
			return gr_error_prefix(err, "%s stdio", cd->what);
		cd->in_registered = true;
	}
	return 0;
}

void chardev_resume_input(struct chardev *cd)
{
	if (cd->in_registered && cd->in_paused && ev_loop_mod(cd->loop, &cd->in_h, EPOLLIN, &(struct gr_error){ 0 }) == 0)
		cd->in_paused = false;
}

void chardev_close(struct chardev *cd)
{
	if (cd->tty_raw) {
		(void)tcsetattr(STDIN_FILENO, TCSANOW, &cd->tty_saved);
		cd->tty_raw = false;
	}
	if (cd->kind == CHARDEV_FILE && cd->out_fd >= 0)
		close(cd->out_fd);
	cd->out_fd = cd->in_fd = -1;
	if (cd->client_fd >= 0)
		close(cd->client_fd);
	if (cd->listen_fd >= 0)
		close(cd->listen_fd);
	cd->client_fd = cd->listen_fd = -1;
	sock_file_remove(&cd->sock);
}
