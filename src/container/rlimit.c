/* rlimits and personality. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/resource.h>

#include "../common/cleanup.h"
#include "security.h"

static const struct {
	const char *name;
	int resource;
} rlimit_table[] = {
	{ "RLIMIT_AS", RLIMIT_AS },
	{ "RLIMIT_CORE", RLIMIT_CORE },
	{ "RLIMIT_CPU", RLIMIT_CPU },
	{ "RLIMIT_DATA", RLIMIT_DATA },
	{ "RLIMIT_FSIZE", RLIMIT_FSIZE },
	{ "RLIMIT_LOCKS", RLIMIT_LOCKS },
	{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
	{ "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
	{ "RLIMIT_NICE", RLIMIT_NICE },
	{ "RLIMIT_NOFILE", RLIMIT_NOFILE },
	{ "RLIMIT_NPROC", RLIMIT_NPROC },
	{ "RLIMIT_RSS", RLIMIT_RSS },
	{ "RLIMIT_RTPRIO", RLIMIT_RTPRIO },
	{ "RLIMIT_RTTIME", RLIMIT_RTTIME },
	{ "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
	{ "RLIMIT_STACK", RLIMIT_STACK },
};

int rlimit_from_name(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < sizeof(rlimit_table) / sizeof(rlimit_table[0]); i++)
		if (strcmp(rlimit_table[i].name, name) == 0)
			return rlimit_table[i].resource;
	return -1;
}

static const char *rlimit_name(const struct oci_rlimit *l)
{
	if (l->type)
		return l->type;
	for (size_t i = 0; i < sizeof(rlimit_table) / sizeof(rlimit_table[0]); i++)
		if (rlimit_table[i].resource == l->resource)
			return rlimit_table[i].name;
	return "RLIMIT_?";
}

static void rlimit_format(uint64_t v, char *buf, size_t size)
{
	if (v == (uint64_t)RLIM_INFINITY)
		snprintf(buf, size, "unlimited");
	else
		snprintf(buf, size, "%" PRIu64, v);
}

/* fs.nr_open, the ceiling for RLIMIT_NOFILE; 0 when unknown. */
static uint64_t rlimit_nr_open(void)
{
	gr_autofclose FILE *f = fopen("/proc/sys/fs/nr_open", "re");
	unsigned long long v = 0;

	if (!f || fscanf(f, "%llu", &v) != 1)
		return 0;
	return v;
}

static int rlimit_apply_one(const struct oci_rlimit *l, size_t i, struct gr_error *err)
{
	const char *name = rlimit_name(l);
	char soft[32], hard[32];
	struct rlimit want = { .rlim_cur = (rlim_t)l->soft, .rlim_max = (rlim_t)l->hard };
	struct rlimit cur;

	rlimit_format(l->soft, soft, sizeof(soft));
	rlimit_format(l->hard, hard, sizeof(hard));
	if (l->resource < 0 || l->resource >= RLIM_NLIMITS)
		return gr_error_set(err, EINVAL, "process.rlimits[%zu] %s: unknown resource", i, name);
	if (l->soft > l->hard)
		return gr_error_set(err, EINVAL,
				    "process.rlimits[%zu] %s: soft limit %s is above the hard limit %s",
				    i, name, soft, hard);
	if (prlimit(0, (__rlimit_resource_t)l->resource, &want, NULL) == 0)
		return 0;

	int e = errno;
	if (e == EPERM && getrlimit((__rlimit_resource_t)l->resource, &cur) == 0) {
		if (l->resource == RLIMIT_NOFILE) {
			uint64_t nr_open = rlimit_nr_open();
			if (nr_open && l->hard != (uint64_t)RLIM_INFINITY && l->hard > nr_open)
				return gr_error_sys(err, e,
						    "process.rlimits[%zu] %s: cannot set %s/%s (above the "
						    "kernel's fs.nr_open %" PRIu64 ")",
						    i, name, soft, hard, nr_open);
		}
		if ((uint64_t)cur.rlim_max != (uint64_t)RLIM_INFINITY &&
		    (l->hard == (uint64_t)RLIM_INFINITY || l->hard > (uint64_t)cur.rlim_max)) {
			char host[32];
			rlimit_format(cur.rlim_max, host, sizeof(host));
			return gr_error_sys(err, e,
					    "process.rlimits[%zu] %s: cannot set %s/%s (the host's hard limit "
					    "is %s and raising it needs CAP_SYS_RESOURCE)",
					    i, name, soft, hard, host);
		}
	}
	return gr_error_sys(err, e, "process.rlimits[%zu] %s: cannot set %s/%s", i, name, soft, hard);
}

int rlimits_apply(const struct oci_rlimit *v, size_t n, struct gr_error *err)
{
	for (size_t i = 0; i < n; i++) {
		int r = rlimit_apply_one(&v[i], i, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int personality_apply(const struct oci_personality *p, struct gr_error *err)
{
	unsigned long persona;

	if (!p)
		return 0;
	if (!p->domain)
		return gr_error_set(err, EINVAL, "linux.personality.domain: missing (expected LINUX or LINUX32)");
	if (strcmp(p->domain, "LINUX") == 0)
		persona = PER_LINUX;
	else if (strcmp(p->domain, "LINUX32") == 0)
		persona = PER_LINUX32;
	else
		return gr_error_set(err, EINVAL,
				    "linux.personality.domain: unknown domain \"%s\" (expected LINUX or LINUX32)",
				    p->domain);
	if (p->flags && p->flags[0])
		return gr_error_set(err, EINVAL,
				    "linux.personality.flags[0]: unsupported personality flag \"%s\" "
				    "(the runtime spec defines none; remove linux.personality.flags)",
				    p->flags[0]);
	if (personality(persona) < 0)
		return gr_error_sys(err, errno, "linux.personality: setting domain %s", p->domain);
	return 0;
}
