/* Protection against a container overwriting the binary that put it there
 * (the runc CVE-2019-5736 class): a container whose entry point is a script
 * starting "#!/proc/self/exe" makes the kernel run *the calling binary*
 * inside the container, where another container process can reopen it
 * through /proc/PID/exe and write to it once it is no longer executing. So
 * every program that puts processes into a container (gureum-runtime's
 * create/run/exec, gureum-supervisor) first re-executes itself from a sealed
 * memfd copy: /proc/self/exe then names an anonymous file nobody can write. */
#ifndef GR_SEALED_EXE_H
#define GR_SEALED_EXE_H

#include <stdbool.h>
#include "../common/error.h"

/* Does this process run from a sealed copy already? */
bool sealed_exe_running(void);
/* Re-executes the program (argv, the current environment) from a sealed
 * memfd copy named `name`, unless it already runs from one: returns 0 then.
 * Otherwise returns only on error. Descriptors without close-on-exec stay
 * open across it. */
int sealed_exe_reexec(const char *name, char **argv, struct gr_error *err);

#endif
