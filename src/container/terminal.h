/* Pseudo-terminals for containers: a pty created inside the container's
 * devpts, its master handed to the caller's --console-socket with
 * SCM_RIGHTS, or relayed to the runtime's own stdio when run in the
 * foreground. */
#ifndef GR_TERMINAL_H
#define GR_TERMINAL_H

#include <stdbool.h>
#include <stddef.h>
#include "../common/error.h"

/* Opens a new pty from /dev/ptmx (of the calling mount namespace). */
int terminal_open_pty(int *master, int *slave, char *slave_path, size_t n, struct gr_error *err);
int terminal_set_size(int fd, unsigned int rows, unsigned int cols, struct gr_error *err);
/* Makes fd the controlling terminal and stdin/stdout/stderr of the caller (after setsid). */
int terminal_make_controlling(int slave, struct gr_error *err);
/* Connects to a unix socket (the --console-socket). */
int terminal_connect(const char *path, int *out, struct gr_error *err);
int terminal_send_fd(int sock, int fd, struct gr_error *err);
int terminal_recv_fd(int sock, int *fd, struct gr_error *err);
/* Relays stdin -> master and master -> stdout until the master hangs up
 * (the container side closed). Puts a terminal stdin in raw mode meanwhile. */
int terminal_relay(int master, struct gr_error *err);

#endif
