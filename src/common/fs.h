/* File-system and process helpers shared by every component. */
#ifndef GR_FS_H
#define GR_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "error.h"

/* Reads a whole file (NUL-terminated, length in *len when len != NULL). */
int gr_read_file(const char *path, char **out, size_t *len, struct gr_error *err);
/* Writes data to path atomically (temporary file in the same directory, then
 * rename): readers see the old or the new content, never a mix. Not durable
 * (no fsync): it is for runtime state, which a reboot makes meaningless
 * anyway, and an fsync per write costs milliseconds where /run is on disk. */
int gr_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, struct gr_error *err);
/* Creates path (which must not exist; symlinks are not followed) with data. */
int gr_write_file_new(const char *path, const void *data, size_t len, mode_t mode, struct gr_error *err);
/* Writes a string into an existing file (cgroup and proc knobs): open O_WRONLY|O_TRUNC, one write. */
int gr_write_knob(const char *path, const char *value, struct gr_error *err);
/* Like gr_write_knob, relative to a directory descriptor. */
int gr_write_knob_at(int dirfd, const char *name, const char *value, struct gr_error *err);
/* mkdir -p; existing directories are fine. */
int gr_mkdir_p(const char *path, mode_t mode, struct gr_error *err);
/* rm -rf that never crosses into another file system and never follows symlinks. */
int gr_rm_rf(const char *path, struct gr_error *err);
/* openat2 with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: root is "/" for
 * path, whose ".." and symlinks (absolute ones too) never lead out of it;
 * magic links (/proc/PID/root and the like) are refused. O_CLOEXEC is
 * added. Returns the descriptor or -errno. */
int gr_open_in_root(int root, const char *path, int flags);
/* Writes all bytes, retrying on EINTR and short writes. */
int gr_write_all(int fd, const void *buf, size_t len);
/* Reads until EOF or len bytes; returns bytes read or -errno. */
ssize_t gr_read_all(int fd, void *buf, size_t len);

/* Process start time (field 22 of /proc/PID/stat, clock ticks since boot);
 * together with the pid it identifies a process across PID reuse. */
int gr_proc_start_time(pid_t pid, uint64_t *out, struct gr_error *err);
/* count numeric fields of /proc/PID/stat from field `first` (numbered as in
 * proc(5), 4 or later: utime is 14, rss 24) into out. -ENOENT when gone,
 * -EINVAL when the line is short. */
int gr_proc_stat_fields(pid_t pid, int first, int count, uint64_t *out);
/* Process state letter from /proc/PID/stat ('R', 'S', 'Z', ...); 0 when gone. */
char gr_proc_state(pid_t pid);

/* Parses a decimal non-negative integer that must fill the whole string. */
int gr_parse_u64(const char *s, uint64_t *out);
int gr_parse_i64(const char *s, int64_t *out);

#endif
