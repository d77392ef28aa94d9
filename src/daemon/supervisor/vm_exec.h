/* gureum-supervisor vm-exec: one command in a running VM, through its
 * guest agent (docs/guest-agent.md), bridged to this process's stdio or to
 * a pty whose master goes to console_socket — so that the VM driver hands
 * gureumd the same descriptors and pid as the container's exec helper. */
#ifndef GR_SUPERVISOR_VM_EXEC_H
#define GR_SUPERVISOR_VM_EXEC_H

#include <jansson.h>
#include "common/error.h"

/* req is the exec helper's request (supervisor_exec's):
 * {"args":[...],"env":["K=V"...],"cwd":S,"uid":N,"gid":N,"terminal":bool,
 * "width":N,"height":N}. The agent of the VM whose run directory is
 * RUN/instances/NAME runs it; stdin (fd 0) goes to it, its stdout and stderr
 * come out on fds 1 and 2 — or, with a terminal, a pty made here carries
 * both ways, its master sent to console_socket (SCM_RIGHTS) once the
 * agent answered, before the command starts (a command that cannot start
 * is then said on stderr, as the container's exec helper does). INT, TERM,
 * HUP, QUIT, USR1, USR2 sent to this process are forwarded to the command
 * (WINCH with a terminal: its new size). Returns
 * the command's exit code (128 + N when signal N killed it; 137 when the
 * VM's agent connection ended before its exit: the agent kills it then), or
 * a negative errno (-ENOENT: the command was not found) with err filled. */
int supervisor_vm_exec(const char *run_dir, const char *name, const json_t *req, const char *console_socket,
		       struct gr_error *err);

#endif
