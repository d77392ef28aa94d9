/* Volumes (volume.h). */
#include "daemon/volume.h"
#include "daemon/vm/engine.h"
#include "daemon/store/volumes.h"
#include "daemon/supervisor/supervisor.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t volumes_mu = PTHREAD_MUTEX_INITIALIZER;

static void unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}
#define VOLUMES_LOCK() \
	_cleanup_(unlockp) pthread_mutex_t *_vl_ = (pthread_mutex_lock(&volumes_mu), &volumes_mu)

int volume_name_check(const char *name, struct gr_error *err)
{
	if (!instance_name_valid(name))
		return gr_error_set(err, EINVAL, "invalid volume name \"%.64s\": 1-63 of [a-z0-9-], starting with a "
				    "letter or digit, not ending in '-'", name ? name : "");
	return 0;
}

int volume_path_check(const char *path, struct gr_error *err)
{
	size_t n = path ? strlen(path) : 0;
	if (n == 0 || path[0] != '/')
		return gr_error_set(err, EINVAL, "path \"%.200s\": must be an absolute path in the instance",
				    path ? path : "");
	if (n > 4095)
		return gr_error_set(err, EINVAL, "path: longer than 4095 bytes");
	if (n == 1)
		return gr_error_set(err, EINVAL, "path /: a volume cannot replace the root directory");
	for (const char *c = path; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return gr_error_set(err, EINVAL, "path \"%.200s\": control characters are not allowed", path);
	for (const char *c = path; *c;) {
		const char *e = strchr(c + 1, '/');
		size_t len = e ? (size_t)(e - c - 1) : strlen(c + 1);
		if (len == 0 || (len == 1 && c[1] == '.') || (len == 2 && c[1] == '.' && c[2] == '.'))
			return gr_error_set(err, EINVAL, "path \"%.200s\": no empty, \".\" or \"..\" components, "
					    "no trailing '/'", path);
		if (!e)
			break;
		c = e;
	}
	static const char *const kernel[] = { "/proc", "/sys", "/dev" };
	for (size_t i = 0; i < 3; i++) {
		size_t k = strlen(kernel[i]);
		if (strncmp(path, kernel[i], k) == 0 && (path[k] == '\0' || path[k] == '/'))
			return gr_error_set(err, EINVAL, "path %.200s: %s belongs to the kernel's file systems", path,
					    kernel[i]);
	}
	return 0;
}

static int volumes_dir(const struct daemon *d, char *out, struct gr_error *err)
{
	if (snprintf(out, PATH_MAX, "%s/volumes", d->env.state_dir) >= PATH_MAX - 96)
		return gr_error_set(err, ENAMETOOLONG, "state directory path too long");
	return 0;
}

/* STATE/volumes/NAME (dir) or NAME.img (block) */
static void volume_file(const char *dir, const char *name, const char *type, char *out, size_t n)
{
	snprintf(out, n, "%s/%s%s", dir, name, strcmp(type, "block") == 0 ? ".img" : "");
}

void volume_cleanup(const char *state_dir)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	snprintf(dir, sizeof(dir), "%s/volumes", state_dir);
	gr_autoclosedir DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, ".tmp-", 5) != 0 && strncmp(e->d_name, ".trash-", 7) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		struct gr_error err = { 0 };
		if (gr_rm_rf(path, &err) < 0)
			gr_warn("volumes: cannot remove %s: %s", path, err.msg);
	}
}

static json_t *volume_json(const struct store_volume *v, const struct store_attachment *a, size_t n)
{
	json_t *used = json_array(), *att = json_array();
	for (size_t i = 0; used && att && i < n; i++) {
		char url[96];
		snprintf(url, sizeof(url), "/1.0/instances/%s", a[i].instance);
		json_array_append_new(used, json_string(url));
		json_array_append_new(att, json_pack("{s:s, s:s, s:b}", "instance", a[i].instance, "path", a[i].path,
						     "readonly", a[i].readonly));
	}
	return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "name", v->name, "type", v->type, "size",
			 (json_int_t)v->size, "created_at", v->created_at, "used_by", used ? used : json_array(),
			 "attachments", att ? att : json_array());
}

static int info_locked(struct daemon *d, const char *name, json_t **out, struct gr_error *err)
{
	_cleanup_(store_volume_clear) struct store_volume v = { 0 };
	struct store_attachment *a = NULL;
	size_t n = 0;
	int r = store_volume_get(d->store, name, &v, err);
	if (r < 0 || (r = store_attachment_list(d->store, name, NULL, &a, &n, err)) < 0)
		return r;
	*out = volume_json(&v, a, n);
	store_attachment_list_free(a, n);
	return *out ? 0 : gr_error_set(err, ENOMEM, "out of memory");
}

int volume_info(struct daemon *d, const char *name, json_t **out, struct gr_error *err)
{
	int r = volume_name_check(name, err);
	return r < 0 ? r : info_locked(d, name, out, err);
}

int volume_list(struct daemon *d, json_t **out, struct gr_error *err)
{
	struct store_volume *v = NULL;
	struct store_attachment *a = NULL;
	size_t nv = 0, na = 0;
	int r = store_volume_list(d->store, &v, &nv, err);
	if (r < 0 || (r = store_attachment_list(d->store, NULL, NULL, &a, &na, err)) < 0) {
		store_volume_list_free(v, nv);
		return r;
	}
	json_t *list = json_array();
	size_t k = 0;
	for (size_t i = 0; list && i < nv; i++) {
		/* a is sorted by volume name as v is */
		size_t from = k;
		while (k < na && strcmp(a[k].volume, v[i].name) == 0)
			k++;
		json_array_append_new(list, volume_json(&v[i], a + from, k - from));
	}
	store_volume_list_free(v, nv);
	store_attachment_list_free(a, na);
	if (!list)
		return gr_error_set(err, ENOMEM, "out of memory");
	*out = list;
	return 0;
}

/* The volume's files, made aside in tmp (a path that does not exist). */
static int make_files(const char *tmp, const char *type, uint64_t size, struct gr_error *err)
{
	if (strcmp(type, "dir") == 0) {
		if (mkdir(tmp, 0755) < 0)
			return gr_error_sys(err, errno, "cannot create %s", tmp);
		return 0;
	}
	gr_autoclose int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot create %s", tmp);
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		unlink(tmp);
		return gr_error_sys(err, e, "cannot size %s to %llu bytes", tmp, (unsigned long long)size);
	}
	return 0;
}

int volume_create(struct daemon *d, const char *name, const char *type, uint64_t size, json_t **out,
		  struct gr_error *err)
{
	int r = volume_name_check(name, err);
	if (r < 0)
		return r;
	if (!type || (strcmp(type, "dir") != 0 && strcmp(type, "block") != 0))
		return gr_error_set(err, EINVAL, "type \"%.32s\": expected dir or block", type ? type : "");
	bool block = strcmp(type, "block") == 0;
	if (!block && size)
		return gr_error_set(err, EINVAL, "size: only block volumes have a size (directory volumes grow as "
				    "their file system allows)");
	if (block && !size)
		return gr_error_set(err, EINVAL, "size: required for a block volume (e.g. 10GiB)");
	if (block && (size < VOLUME_BLOCK_MIN || size > VOLUME_BLOCK_MAX || size % 512))
		return gr_error_set(err, EINVAL, "size %llu: a block volume is 1MiB to 64TiB, a multiple of 512 bytes",
				    (unsigned long long)size);
	char dir[PATH_MAX], final[PATH_MAX], tmp[PATH_MAX];
	if ((r = volumes_dir(d, dir, err)) < 0 || (r = gr_mkdir_p(dir, 0700, err)) < 0)
		return r;
	volume_file(dir, name, type, final, sizeof(final));
	VOLUMES_LOCK();
	if ((r = store_volume_insert(d->store, name, type, size, err)) < 0)
		return r;
	/* Something at final with no row is what an interrupted delete left. */
	char other[PATH_MAX];
	volume_file(dir, name, block ? "dir" : "block", other, sizeof(other));
	struct gr_error e2 = { 0 };
	if ((access(final, F_OK) == 0 && gr_rm_rf(final, &e2) < 0) || (access(other, F_OK) == 0 && gr_rm_rf(other, &e2) < 0))
		gr_warn("volume %s: cannot remove a stale %s: %s", name, final, e2.msg);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%s-XXXXXX", dir, name);
	int fd = mkstemp(tmp); /* a unique name, replaced by the real thing */
	if (fd < 0) {
		r = gr_error_sys(err, errno, "cannot create a file in %s", dir);
	} else {
		close(fd);
		unlink(tmp);
		r = make_files(tmp, type, size, err);
		if (r == 0 && rename(tmp, final) < 0) {
			r = gr_error_sys(err, errno, "cannot rename %s to %s", tmp, final);
			(void)gr_rm_rf(tmp, NULL);
		}
	}
	if (r < 0) {
		(void)store_volume_delete(d->store, name, &e2);
		return r;
	}
	return out ? info_locked(d, name, out, err) : 0;
}

int volume_delete(struct daemon *d, const char *name, struct gr_error *err)
{
	int r = volume_name_check(name, err);
	char dir[PATH_MAX], final[PATH_MAX], trash[PATH_MAX];
	if (r < 0 || (r = volumes_dir(d, dir, err)) < 0)
		return r;
	{
		VOLUMES_LOCK();
		_cleanup_(store_volume_clear) struct store_volume v = { 0 };
		if ((r = store_volume_get(d->store, name, &v, err)) < 0 ||
		    (r = store_volume_delete(d->store, name, err)) < 0)
			return r;
		volume_file(dir, name, v.type, final, sizeof(final));
		snprintf(trash, sizeof(trash), "%s/.trash-%s-XXXXXX", dir, name);
		int fd = mkstemp(trash);
		if (fd >= 0) {
			close(fd);
			unlink(trash);
		}
		if (fd < 0 || rename(final, trash) < 0) {
			if (fd >= 0 && errno == ENOENT)
				return 0; /* no files (an interrupted create) */
			/* The row is gone: the files go now, or with the next create of the name. */
			snprintf(trash, sizeof(trash), "%s", final);
		}
	}
	/* Outside the lock: a large directory takes a while. */
	if ((r = gr_rm_rf(trash, err)) < 0)
		return gr_error_prefix(err, "volume %s was deleted but its files were not all removed", name);
	return 0;
}

int volume_fits(const char *volume, const char *volume_type, const char *instance_type, struct gr_error *err)
{
	bool vm = strcmp(instance_type, "virtual-machine") == 0, block = strcmp(volume_type, "block") == 0;
	if (vm && !block)
		return gr_error_set(err, EINVAL, "volume %s is a directory volume: a virtual machine takes block "
				    "volumes (as its disks)", volume);
	if (!vm && block)
		return gr_error_set(err, EINVAL, "volume %s is a block volume, for virtual machines: container "
				    "instances take directory volumes", volume);
	return 0;
}

/* A block volume is a disk: written by one VM at a time (read-only in any
 * number), and a VM takes at most VM_MAX_VOLUMES of them. */
static int block_attach_ok(struct daemon *d, const char *volume, const char *instance, bool readonly,
			   struct gr_error *err)
{
	struct store_attachment *a = NULL;
	size_t n = 0;
	int r = store_attachment_list(d->store, volume, NULL, &a, &n, err);
	for (size_t i = 0; r == 0 && i < n; i++)
		if (strcmp(a[i].instance, instance) != 0 && (!readonly || !a[i].readonly))
			r = gr_error_set(err, EBUSY, "volume %s is attached to %s%s: a block volume is one VM's disk "
					 "unless every attachment is read-only (detach it there, or attach it read-only "
					 "everywhere)", volume, a[i].instance, a[i].readonly ? " read-only" : "");
	store_attachment_list_free(a, n);
	if (r < 0)
		return r;
	if ((r = store_attachment_list(d->store, NULL, instance, &a, &n, err)) < 0)
		return r;
	store_attachment_list_free(a, n);
	if (n >= VM_MAX_VOLUMES)
		return gr_error_set(err, E2BIG, "instance %s has %zu volumes: a VM takes at most %d (detach one first)",
				    instance, n, VM_MAX_VOLUMES);
	return 0;
}

int volume_attach(struct daemon *d, const char *volume, const char *instance, const char *instance_type,
		  const char *path, bool readonly, struct gr_error *err)
{
	int r;
	if ((r = volume_name_check(volume, err)) < 0 || (r = volume_path_check(path, err)) < 0)
		return r;
	VOLUMES_LOCK();
	_cleanup_(store_volume_clear) struct store_volume v = { 0 };
	if ((r = store_volume_get(d->store, volume, &v, err)) < 0)
		return r;
	if ((r = volume_fits(volume, v.type, instance_type, err)) < 0 ||
	    (strcmp(v.type, "block") == 0 && (r = block_attach_ok(d, volume, instance, readonly, err)) < 0))
		return r;
	return store_volume_attach(d->store, volume, instance, path, readonly, err);
}

int volume_detach(struct daemon *d, const char *volume, const char *instance, struct gr_error *err)
{
	int r = volume_name_check(volume, err);
	if (r < 0)
		return r;
	VOLUMES_LOCK();
	_cleanup_(store_volume_clear) struct store_volume v = { 0 };
	if ((r = store_volume_get(d->store, volume, &v, err)) < 0)
		return r;
	return store_volume_detach(d->store, volume, instance, err);
}

int volume_mounts(struct daemon *d, const char *instance, json_t **out, struct gr_error *err)
{
	char dir[PATH_MAX], file[PATH_MAX];
	int r = volumes_dir(d, dir, err);
	if (r < 0)
		return r;
	VOLUMES_LOCK();
	struct store_attachment *a = NULL;
	size_t n = 0;
	if ((r = store_attachment_list(d->store, NULL, instance, &a, &n, err)) < 0)
		return r;
	json_t *list = json_array();
	for (size_t i = 0; list && i < n; i++) {
		_cleanup_(store_volume_clear) struct store_volume v = { 0 };
		if ((r = store_volume_get(d->store, a[i].volume, &v, err)) < 0)
			break;
		volume_file(dir, v.name, v.type, file, sizeof(file));
		struct stat st;
		bool dir_type = strcmp(v.type, "dir") == 0;
		if (lstat(file, &st) < 0 || (dir_type && !S_ISDIR(st.st_mode)) || (!dir_type && !S_ISREG(st.st_mode))) {
			r = gr_error_set(err, ENOENT, "volume %s: %s is missing", v.name, file);
			break;
		}
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:b, s:s}", "name", v.name, "source", file, "path",
						      a[i].path, "readonly", a[i].readonly, "type", v.type));
	}
	store_attachment_list_free(a, n);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	if (!list)
		return gr_error_set(err, ENOMEM, "out of memory");
	*out = list;
	return 0;
}
