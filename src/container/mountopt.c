/* Mount options of config.json translated to mount(2) flags, propagation,
 * recursive mount_setattr(2) attributes and file-system data. The tables
 * follow runc (libcontainer/specconv) so bundles behave the same. */
#include "mountopt.h"
#include "../common/cleanup.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h> /* MS_*, and MOUNT_ATTR_* through <linux/mount.h> */

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#ifndef MOUNT_ATTR_NOSYMFOLLOW
#define MOUNT_ATTR_NOSYMFOLLOW 0x00200000
#endif

struct flag_opt {
	const char *name;
	bool clear;           /* the option clears the flag ("rw", "suid") */
	unsigned long flag;
};

static const struct flag_opt flag_opts[] = {
	{ "defaults", false, 0 },
	{ "ro", false, MS_RDONLY },
	{ "rw", true, MS_RDONLY },
	{ "nosuid", false, MS_NOSUID },
	{ "suid", true, MS_NOSUID },
	{ "nodev", false, MS_NODEV },
	{ "dev", true, MS_NODEV },
	{ "noexec", false, MS_NOEXEC },
	{ "exec", true, MS_NOEXEC },
	{ "sync", false, MS_SYNCHRONOUS },
	{ "async", true, MS_SYNCHRONOUS },
	{ "dirsync", false, MS_DIRSYNC },
	{ "remount", false, MS_REMOUNT },
	{ "mand", false, MS_MANDLOCK },
	{ "nomand", true, MS_MANDLOCK },
	{ "noatime", false, MS_NOATIME },
	{ "atime", true, MS_NOATIME },
	{ "nodiratime", false, MS_NODIRATIME },
	{ "diratime", true, MS_NODIRATIME },
	{ "relatime", false, MS_RELATIME },
	{ "norelatime", true, MS_RELATIME },
	{ "strictatime", false, MS_STRICTATIME },
	{ "nostrictatime", true, MS_STRICTATIME },
	{ "nosymfollow", false, MS_NOSYMFOLLOW },
	{ "symfollow", true, MS_NOSYMFOLLOW },
};

/* Recursive attributes for mount_setattr(2) (MOUNT_ATTR_*). */
static const struct flag_opt rec_opts[] = {
	{ "rro", false, MOUNT_ATTR_RDONLY },
	{ "rrw", true, MOUNT_ATTR_RDONLY },
	{ "rnosuid", false, MOUNT_ATTR_NOSUID },
	{ "rsuid", true, MOUNT_ATTR_NOSUID },
	{ "rnodev", false, MOUNT_ATTR_NODEV },
	{ "rdev", true, MOUNT_ATTR_NODEV },
	{ "rnoexec", false, MOUNT_ATTR_NOEXEC },
	{ "rexec", true, MOUNT_ATTR_NOEXEC },
	{ "rnodiratime", false, MOUNT_ATTR_NODIRATIME },
	{ "rdiratime", true, MOUNT_ATTR_NODIRATIME },
	{ "rrelatime", false, MOUNT_ATTR_RELATIME },
	{ "rnorelatime", true, MOUNT_ATTR_RELATIME },
	{ "rnoatime", false, MOUNT_ATTR_NOATIME },
	{ "ratime", true, MOUNT_ATTR_NOATIME },
	{ "rstrictatime", false, MOUNT_ATTR_STRICTATIME },
	{ "rnostrictatime", true, MOUNT_ATTR_STRICTATIME },
	{ "rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW },
	{ "rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW },
};

static const struct {
	const char *name;
	unsigned long flags;
} propagation_opts[] = {
	{ "private", MS_PRIVATE },
	{ "rprivate", MS_PRIVATE | MS_REC },
	{ "shared", MS_SHARED },
	{ "rshared", MS_SHARED | MS_REC },
	{ "slave", MS_SLAVE },
	{ "rslave", MS_SLAVE | MS_REC },
	{ "unbindable", MS_UNBINDABLE },
	{ "runbindable", MS_UNBINDABLE | MS_REC },
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

int mount_propagation_parse(const char *word, unsigned long *flags)
{
	if (!word)
		return -EINVAL;
	for (size_t i = 0; i < N_ELEMS(propagation_opts); i++) {
		if (strcmp(word, propagation_opts[i].name) == 0) {
			*flags = propagation_opts[i].flags;
			return 0;
		}
	}
	return -EINVAL;
}

static const struct flag_opt *find_opt(const struct flag_opt *table, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

/* The later option wins: "ro,rw" leaves MS_RDONLY in clear only. */
static void apply_flag(const struct flag_opt *o, unsigned long *set, unsigned long *clear)
{
	if (o->clear) {
		*clear |= o->flag;
		*set &= ~o->flag;
	} else {
		*set |= o->flag;
		*clear &= ~o->flag;
	}
}

static int data_append(char **data, const char *opt)
{
	size_t old = *data ? strlen(*data) : 0;
	size_t add = strlen(opt);
	char *n = realloc(*data, old + add + 2);
	if (!n)
		return -ENOMEM;
	if (old)
		n[old++] = ',';
	memcpy(n + old, opt, add + 1);
	*data = n;
	return 0;
}

int mount_options_parse(char *const *options, const char *path, struct oci_mount *m, struct gr_error *err)
{
	gr_autofree char *data = NULL;
	unsigned long flags = 0, clear = 0, propagation = 0, rec_set = 0, rec_clear = 0;
	bool bind = false, idmap = false, tmpcopyup = false;

	for (size_t i = 0; options && options[i]; i++) {
		const char *o = options[i];
		const struct flag_opt *f;
		unsigned long prop;

		if (o[0] == '\0')
			return gr_error_set(err, EINVAL, "%s[%zu]: empty mount option", path, i);
		if (strchr(o, ','))
			return gr_error_set(err, EINVAL,
					    "%s[%zu]: invalid mount option \"%s\" (list each option separately, without ',')",
					    path, i, o);

		if ((f = find_opt(flag_opts, N_ELEMS(flag_opts), o))) {
			apply_flag(f, &flags, &clear);
		} else if ((f = find_opt(rec_opts, N_ELEMS(rec_opts), o))) {
			apply_flag(f, &rec_set, &rec_clear);
			/* mount_setattr(2): an access-time mode in attr_set needs
			 * MOUNT_ATTR__ATIME in attr_clr. */
			if (!f->clear && (f->flag & MOUNT_ATTR__ATIME) == f->flag)
				rec_clear |= MOUNT_ATTR__ATIME;
		} else if (strcmp(o, "bind") == 0) {
			flags |= MS_BIND;
			bind = true;
		} else if (strcmp(o, "rbind") == 0) {
			flags |= MS_BIND | MS_REC;
			bind = true;
		} else if (mount_propagation_parse(o, &prop) == 0) {
			propagation = prop;
		} else if (strcmp(o, "idmap") == 0 || strcmp(o, "ridmap") == 0) {
			idmap = true;
		} else if (strcmp(o, "tmpcopyup") == 0) {
			tmpcopyup = true;
		} else if (strcmp(o, "notmpcopyup") == 0) {
			tmpcopyup = false;
		} else if (data_append(&data, o) < 0) {
			return gr_error_set(err, ENOMEM, "out of memory");
		}
	}

	free(m->data);
	m->data = gr_steal_ptr(data);
	m->flags = flags;
	m->clear_flags = clear;
	m->propagation = propagation;
	m->rec_flags = rec_set;
	m->rec_clear = rec_clear;
	m->bind = bind;
	m->idmap = idmap;
	m->tmpcopyup = tmpcopyup;
	return 0;
}

void mount_options_foreach(void (*fn)(const char *name, void *data), void *data)
{
	for (size_t i = 0; i < N_ELEMS(flag_opts); i++)
		fn(flag_opts[i].name, data);
	for (size_t i = 0; i < N_ELEMS(rec_opts); i++)
		fn(rec_opts[i].name, data);
	for (size_t i = 0; i < N_ELEMS(propagation_opts); i++)
		fn(propagation_opts[i].name, data);
	static const char *const others[] = { "bind", "rbind", "idmap", "ridmap", "tmpcopyup", "notmpcopyup" };
	for (size_t i = 0; i < N_ELEMS(others); i++)
		fn(others[i], data);
}
