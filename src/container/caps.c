/* Capabilities: name lookups, masks and applying the five sets. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common/cleanup.h"
#include "../common/log.h"
#include "security.h"

static const char *const cap_names[] = {
	"CAP_CHOWN",              /* 0 */
	"CAP_DAC_OVERRIDE",       /* 1 */
	"CAP_DAC_READ_SEARCH",    /* 2 */
	"CAP_FOWNER",             /* 3 */
	"CAP_FSETID",             /* 4 */
	"CAP_KILL",               /* 5 */
	"CAP_SETGID",             /* 6 */
	"CAP_SETUID",             /* 7 */
	"CAP_SETPCAP",            /* 8 */
	"CAP_LINUX_IMMUTABLE",    /* 9 */
	"CAP_NET_BIND_SERVICE",   /* 10 */
	"CAP_NET_BROADCAST",      /* 11 */
	"CAP_NET_ADMIN",          /* 12 */
	"CAP_NET_RAW",            /* 13 */
	"CAP_IPC_LOCK",           /* 14 */
	"CAP_IPC_OWNER",          /* 15 */
	"CAP_SYS_MODULE",         /* 16 */
	"CAP_SYS_RAWIO",          /* 17 */
	"CAP_SYS_CHROOT",         /* 18 */
	"CAP_SYS_PTRACE",         /* 19 */
	"CAP_SYS_PACCT",          /* 20 */
	"CAP_SYS_ADMIN",          /* 21 */
	"CAP_SYS_BOOT",           /* 22 */
	"CAP_SYS_NICE",           /* 23 */
	"CAP_SYS_RESOURCE",       /* 24 */
	"CAP_SYS_TIME",           /* 25 */
	"CAP_SYS_TTY_CONFIG",     /* 26 */
	"CAP_MKNOD",              /* 27 */
	"CAP_LEASE",              /* 28 */
	"CAP_AUDIT_WRITE",        /* 29 */
	"CAP_AUDIT_CONTROL",      /* 30 */
	"CAP_SETFCAP",            /* 31 */
	"CAP_MAC_OVERRIDE",       /* 32 */
	"CAP_MAC_ADMIN",          /* 33 */
	"CAP_SYSLOG",             /* 34 */
	"CAP_WAKE_ALARM",         /* 35 */
	"CAP_BLOCK_SUSPEND",      /* 36 */
	"CAP_AUDIT_READ",         /* 37 */
	"CAP_PERFMON",            /* 38 */
	"CAP_BPF",                /* 39 */
	"CAP_CHECKPOINT_RESTORE", /* 40 */
};

#define CAP_COUNT ((int)(sizeof(cap_names) / sizeof(cap_names[0])))

int caps_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < CAP_COUNT; i++)
		if (strcmp(cap_names[i], name) == 0)
			return i;
	return -1;
}

const char *caps_to_name(int cap)
{
	return cap >= 0 && cap < CAP_COUNT ? cap_names[cap] : NULL;
}

static const char *cap_name(int cap)
{
	return cap >= 0 && cap < CAP_COUNT ? cap_names[cap] : "CAP_?";
}

int caps_list_to_mask(char *const *names, const char *path, uint64_t *mask, struct gr_error *err)
{
	uint64_t m = 0;

	for (size_t i = 0; names && names[i]; i++) {
		int cap = caps_from_name(names[i]);
		if (cap < 0)
			return gr_error_set(err, EINVAL, "%s[%zu]: unknown capability \"%s\"",
					    path, i, names[i]);
		m |= UINT64_C(1) << cap;
	}
	*mask = m;
	return 0;
}

int caps_last_cap(void)
{
	static int cached = -1;
	char buf[32];

	if (cached >= 0)
		return cached;

	gr_autoclose int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			char *end;
			long v = strtol(buf, &end, 10);
			if (end != buf && v >= 0 && v < 64) {
				cached = (int)v;
				return cached;
			}
		}
	}
	/* No /proc (or an odd value): probe the bounding set until the kernel
	 * says the capability does not exist. */
	int last = 0;
	while (last < 63 && prctl(PR_CAPBSET_READ, (unsigned long)last + 1, 0, 0, 0) >= 0)
		last++;
	cached = last;
	return cached;
}

uint64_t caps_current_bounding(void)
{
	uint64_t m = 0;
	int last = caps_last_cap();

	for (int i = 0; i <= last; i++)
		if (prctl(PR_CAPBSET_READ, (unsigned long)i, 0, 0, 0) == 1)
			m |= UINT64_C(1) << i;
	return m;
}

/* The names of the capabilities in mask, for messages. */
static void caps_mask_describe(uint64_t mask, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < 64 && len < size; i++) {
		if (!(mask & (UINT64_C(1) << i)))
			continue;
		int n;
		if (i < CAP_COUNT)
			n = snprintf(buf + len, size - len, "%s%s", len ? "," : "", cap_names[i]);
		else
			n = snprintf(buf + len, size - len, "%s%d", len ? "," : "", i);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

static int caps_drop_bounding(uint64_t keep, struct gr_error *err)
{
	int last = caps_last_cap();

	for (int i = 0; i <= last; i++) {
		if (keep & (UINT64_C(1) << i))
			continue;
		if (prctl(PR_CAPBSET_READ, (unsigned long)i, 0, 0, 0) != 1)
			continue;
		if (prctl(PR_CAPBSET_DROP, (unsigned long)i, 0, 0, 0) < 0)
			return gr_error_sys(err, errno,
					    "process.capabilities.bounding: dropping %s from the bounding set "
					    "(needs CAP_SETPCAP)", cap_name(i));
	}
	return 0;
}

static int caps_set(uint64_t eff, uint64_t prm, uint64_t inh, struct gr_error *err)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2] = {
		{ .effective = (uint32_t)eff, .permitted = (uint32_t)prm, .inheritable = (uint32_t)inh },
		{ .effective = (uint32_t)(eff >> 32), .permitted = (uint32_t)(prm >> 32),
		  .inheritable = (uint32_t)(inh >> 32) },
	};

	if (syscall(SYS_capset, &hdr, data) < 0) {
		int e = errno;
		char want[768];
		caps_mask_describe(prm, want, sizeof(want));
		return gr_error_sys(err, e,
				    "process.capabilities: capset (permitted %s) failed; the permitted set "
				    "cannot grow and effective must be within permitted",
				    want[0] ? want : "empty");
	}
	return 0;
}

static void caps_note_dropped(const char *set, uint64_t requested, uint64_t kept)
{
	uint64_t lost = requested & ~kept;
	char names[768];

	if (!lost)
		return;
	caps_mask_describe(lost, names, sizeof(names));
	gr_debug("process.capabilities.%s: %s not in the bounding set, dropped", set, names);
}

int caps_apply_bounding(const struct oci_capabilities *c, struct gr_error *err)
{
	uint64_t bnd;
	int r = caps_list_to_mask(c ? c->bounding : NULL, "process.capabilities.bounding", &bnd, err);
	if (r < 0)
		return r;
	return caps_drop_bounding(bnd, err);
}

int caps_apply(const struct oci_capabilities *c, struct gr_error *err)
{
	static const struct oci_capabilities empty = { 0 };
	uint64_t bnd, eff, prm, inh, amb;
	int r;

	if (!c)
		c = &empty;
	if ((r = caps_list_to_mask(c->bounding, "process.capabilities.bounding", &bnd, err)) < 0 ||
	    (r = caps_list_to_mask(c->effective, "process.capabilities.effective", &eff, err)) < 0 ||
	    (r = caps_list_to_mask(c->permitted, "process.capabilities.permitted", &prm, err)) < 0 ||
	    (r = caps_list_to_mask(c->inheritable, "process.capabilities.inheritable", &inh, err)) < 0 ||
	    (r = caps_list_to_mask(c->ambient, "process.capabilities.ambient", &amb, err)) < 0)
		return r;

	if ((r = caps_drop_bounding(bnd, err)) < 0)
		return r;

	uint64_t cur = caps_current_bounding();
	caps_note_dropped("effective", eff, cur);
	caps_note_dropped("permitted", prm, cur);
	caps_note_dropped("inheritable", inh, cur);
	eff &= cur;
	prm &= cur;
	inh &= cur;

	if ((r = caps_set(eff, prm, inh, err)) < 0)
		return r;

	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
		/* Kernels before 4.3 have no ambient set: fine unless one is asked for. */
		if (errno == EINVAL && !amb)
			return 0;
		return gr_error_sys(err, errno, "process.capabilities.ambient: clearing the ambient set");
	}
	for (int i = 0; i < 64; i++) {
		uint64_t bit = UINT64_C(1) << i;
		if (!(amb & bit))
			continue;
		if (!(prm & bit) || !(inh & bit)) {
			gr_debug("process.capabilities.ambient: %s is not both permitted and inheritable, skipped",
				 cap_name(i));
			continue;
		}
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)i, 0, 0) < 0)
			return gr_error_sys(err, errno, "process.capabilities.ambient: raising %s",
					    cap_name(i));
	}
	return 0;
}
