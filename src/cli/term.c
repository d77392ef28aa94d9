/* The local terminal for exec -t and console: raw mode, restored on every
 * exit path (cli_term_restore on return, atexit for exit(), and a handler
 * for the fatal signals that would otherwise leave the terminal raw). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

static struct termios saved;
static int saved_fd = -1;
static volatile sig_atomic_t raw_active;

void cli_term_restore(void)
{
	if (raw_active) {
		tcsetattr(saved_fd, TCSADRAIN, &saved);
		raw_active = 0;
	}
}

static void fatal_signal(int sig)
{
	if (raw_active)
		tcsetattr(saved_fd, TCSANOW, &saved); /* async-signal-safe */
	raw_active = 0;
	signal(sig, SIG_DFL);
	raise(sig);
}

int cli_term_raw(int fd, struct gr_error *err)
{
	static bool hooked;
	struct termios t;
	if (tcgetattr(fd, &t) < 0)
		return gr_error_sys(err, errno, "reading the terminal's settings");
	saved = t;
	saved_fd = fd;
	if (!hooked) {
		atexit(cli_term_restore);
		static const int sigs[] = { SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL };
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
			struct sigaction sa = { .sa_handler = fatal_signal, .sa_flags = SA_RESETHAND };
			sigemptyset(&sa.sa_mask);
			sigaction(sigs[i], &sa, NULL);
		}
		hooked = true;
	}
	cfmakeraw(&t);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	raw_active = 1;
	if (tcsetattr(fd, TCSADRAIN, &t) < 0) {
		raw_active = 0;
		return gr_error_sys(err, errno, "putting the terminal in raw mode");
	}
	return 0;
}

void cli_term_size(int fd, unsigned *width, unsigned *height)
{
	struct winsize ws = { 0 };
	*width = *height = 0;
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0) {
		*width = ws.ws_col;
		*height = ws.ws_row;
	}
}

int cli_signalfd(sigset_t *old, ...)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	va_list ap;
	va_start(ap, old);
	for (int sig; (sig = va_arg(ap, int)) != 0;)
		sigaddset(&mask, sig);
	va_end(ap);
	sigprocmask(SIG_BLOCK, &mask, old);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, old, NULL);
		cli_error("signalfd: %s", strerror(e));
	}
	return sfd;
}
