/* Unix sockets the VMM listens on (the control API, --serial/--console
 * socket=PATH, vsock's host socket): created with mode 0600, a stale socket
 * file nobody listens on replaced (a live one, or any other kind of file, is
 * an error), and removed when the VMM ends, even though the sandboxed VMM may
 * neither lstat nor unlink: a small watcher process, forked before the
 * seccomp filter is loaded, removes the file when the VMM exits, however it
 * exits (normal exit, crash, SIGKILL, seccomp kill). The file is removed only
 * while it is still the one we created (same device, inode and change
 * time), so a newer
 * VMM's socket at the same path is never touched. */
#ifndef GR_VMM_SOCK_CLEANUP_H
#define GR_VMM_SOCK_CLEANUP_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include <sys/un.h>
#include "common/error.h"

struct sock_file {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "" when none */
	dev_t dev;              /* the socket file we created: inode numbers are */
	ino_t ino;              /* reused at once on ext4, so its change time too */
	struct timespec ctim;
	int watch_fd;           /* write end of the pipe the watcher waits on, or -1 */
	int ack_fd;             /* read end of a pipe the watcher holds until it is done, or -1 */
};

/* A sock_file with no file (sock_file_remove does nothing). */
#define SOCK_FILE_NONE ((struct sock_file){ .watch_fd = -1, .ack_fd = -1 })

/* Creates path as a unix stream socket listening with backlog, mode 0600 from
 * the start (no window where others may connect). what names it in errors
 * ("--serial socket", "api socket"). Returns the listening descriptor
 * (SOCK_CLOEXEC | SOCK_NONBLOCK) or -errno; on failure nothing is left behind
 * and sf is empty. sf needs no initialisation. */
int sock_file_listen(struct sock_file *sf, const char *what, const char *path, int backlog, struct gr_error *err);

/* Forks the watcher that removes sf's file when this process ends. Call it
 * after sock_file_listen and before the seccomp filter is loaded; the
 * watcher ignores SIGINT, SIGHUP and SIGTERM (a terminal's ^C reaches the
 * whole process group) and keeps only its pipe open. Idempotent. */
int sock_file_unlink_at_exit(struct sock_file *sf, struct gr_error *err);

/* Removes the socket file (if it is still ours) or, with a watcher, lets the
 * watcher do it (closes the pipe: no file system access, safe under the
 * sandbox) and waits until it has (at most SOCK_FILE_WATCHER_WAIT_MS: a
 * watcher stuck on a hung file system must not hang us), so the file is gone
 * when this returns. Does not close the listening descriptor. sf may be empty
 * or already removed. */
#define SOCK_FILE_WATCHER_WAIT_MS 2000
void sock_file_remove(struct sock_file *sf);

#endif
