/* __attribute__((cleanup)) helpers for memory, descriptors and other
 * resources, so ownership is visible at the declaration and no goto ladder
 * is needed. Use gr_steal_ptr()/gr_steal_fd() to hand ownership on. */
#ifndef GR_CLEANUP_H
#define GR_CLEANUP_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
#include <jansson.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void gr_freep(void *p) { free(*(void **)p); }
static inline void gr_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void gr_fclosep(FILE **f) { if (*f) fclose(*f); }
static inline void gr_closedirp(DIR **d) { if (*d) closedir(*d); }
static inline void gr_json_decrefp(json_t **j) { if (*j) json_decref(*j); }
static inline void gr_strvfreep(char ***v)
{
	if (*v) {
		for (char **p = *v; *p; p++)
			free(*p);
		free(*v);
	}
}

#define gr_autofree _cleanup_(gr_freep)
#define gr_autoclose _cleanup_(gr_closep)
#define gr_autofclose _cleanup_(gr_fclosep)
#define gr_autoclosedir _cleanup_(gr_closedirp)
#define gr_autojson _cleanup_(gr_json_decrefp)
#define gr_autostrv _cleanup_(gr_strvfreep)

#define gr_steal_ptr(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define gr_steal_fd(fd) ({ int _t = (fd); (fd) = -1; _t; })

#endif
