/* Named network namespaces bound to files (netns.h). */
#include "daemon/network/netns.h"
#include "common/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

struct create_job {
	const char *path;
	int r;
	struct gr_error err;
};

/* On a thread of its own: a new network namespace, bound onto the file.
 * The thread (and its namespace membership) ends right after. */
static void *create_main(void *p)
{
	struct create_job *j = p;
	if (unshare(CLONE_NEWNET) < 0) {
		j->r = gr_error_sys(&j->err, errno, "cannot create a network namespace for %s", j->path);
		return NULL;
	}
	char src[64];
	snprintf(src, sizeof(src), "/proc/self/task/%d/ns/net", (int)gettid());
	if (mount(src, j->path, "none", MS_BIND, NULL) < 0) {
		j->r = gr_error_sys(&j->err, errno, "cannot bind the new network namespace onto %s", j->path);
		return NULL;
	}
	j->r = 0;
	return NULL;
}

int netns_create(const char *path, struct gr_error *err)
{
	if (!path || !*path)
		return gr_error_set(err, EINVAL, "no path for the network namespace");
	int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST)
		return gr_error_set(err, EEXIST, "cannot create network namespace %s: the file exists already "
				    "(remove it with netns_remove if it is a stale namespace)", path);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot create network namespace file %s", path);
	close(fd);

	struct create_job j = { .path = path, .r = -EINTR };
	pthread_attr_t attr;
	pthread_t t;
	int e = pthread_attr_init(&attr);
	if (e == 0) {
		/* Signals stay with the threads that expect them. */
		sigset_t all;
		sigfillset(&all);
		(void)pthread_attr_setsigmask_np(&attr, &all);
		e = pthread_create(&t, &attr, create_main, &j);
		pthread_attr_destroy(&attr);
	}
	if (e) {
		j.r = gr_error_sys(&j.err, e, "cannot start a thread to create network namespace %s", path);
	} else {
		pthread_join(t, NULL);
	}
	if (j.r < 0) {
		(void)unlink(path);
		if (err)
			*err = j.err;
	}
	return j.r;
}

int netns_remove(const char *path, struct gr_error *err)
{
	if (!path || !*path)
		return gr_error_set(err, EINVAL, "no path for the network namespace");
	/* Every mount stacked on the path (normally one); EINVAL: no more. */
	for (int i = 0; i < 64; i++) {
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			continue;
		if (errno == EINVAL || errno == ENOENT)
			break;
		return gr_error_sys(err, errno, "cannot unmount network namespace %s", path);
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return gr_error_sys(err, errno, "cannot remove network namespace file %s", path);
	return 0;
}

int netns_open(const char *path, struct gr_error *err)
{
	if (!path || !*path)
		return gr_error_set(err, EINVAL, "no path for the network namespace");
	/* O_NONBLOCK: a FIFO at path must not hang us; cleared below. */
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		return gr_error_set(err, ENOENT, "there is no network namespace at %s", path);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open network namespace %s", path);
	struct statfs sfs;
	if (fstatfs(fd, &sfs) < 0)
		return gr_error_sys(err, errno, "cannot inspect network namespace %s", path);
	if (sfs.f_type != NSFS_MAGIC)
		return gr_error_set(err, EINVAL, "%s is not a namespace (nothing is bound onto it: a leftover of a failed "
				    "create or of a reboot? remove it with netns_remove and create it again)", path);
	int type = ioctl(fd, NS_GET_NSTYPE);
	if (type < 0 && errno != ENOTTY && errno != EINVAL)
		return gr_error_sys(err, errno, "cannot read the namespace type of %s", path);
	if (type >= 0 && type != CLONE_NEWNET)
		return gr_error_set(err, EINVAL, "%s is a namespace but not a network namespace", path);
	if (fcntl(fd, F_SETFL, 0) < 0)
		return gr_error_sys(err, errno, "cannot set the flags of network namespace %s", path);
	return gr_steal_fd(fd);
}
