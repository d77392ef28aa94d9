/* See sealed_exe.h. */
#include "sealed_exe.h"
#include "../common/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

bool sealed_exe_running(void)
{
	gr_autoclose int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	int seals = fcntl(fd, F_GET_SEALS);
	return seals >= 0 && (seals & SEALS) == SEALS;
}

int sealed_exe_reexec(const char *name, char **argv, struct gr_error *err)
{
	if (sealed_exe_running())
		return 0;
	gr_autoclose int src = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return gr_error_sys(err, errno, "cannot open /proc/self/exe");
	struct stat st;
	if (fstat(src, &st) < 0)
		return gr_error_sys(err, errno, "cannot stat /proc/self/exe");
	gr_autoclose int mfd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return gr_error_sys(err, errno, "memfd_create");
	for (off_t left = st.st_size; left > 0;) {
		ssize_t n = sendfile(mfd, src, NULL, (size_t)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return gr_error_sys(err, n < 0 ? errno : EIO, "cannot copy /proc/self/exe into a memfd");
		left -= n;
	}
	if (fcntl(mfd, F_ADD_SEALS, SEALS) < 0)
		return gr_error_sys(err, errno, "cannot seal the memfd copy of %s", name);
	extern char **environ;
	fexecve(mfd, argv, environ);
	return gr_error_sys(err, errno, "cannot re-execute %s from its sealed copy", name);
}
