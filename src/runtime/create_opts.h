/* Options shared by "create" and "run". */
#ifndef GR_RUNTIME_CREATE_OPTS_H
#define GR_RUNTIME_CREATE_OPTS_H

#include "runtime.h"

/* Parses create/run options into o; detach is NULL for create. Returns 0 or 1 (usage error reported). */
int create_parse(const char *verb, struct globals *g, int argc, char **argv, struct container_opts *o,
		 bool *detach);

#endif
