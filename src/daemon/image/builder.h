/* Offline image builders (src/daemon/README.md "Images"): each makes a root
 * file system in a staging directory, writes it as one layer tar
 * (layer_write_tar, with every mtime set to one value so the same inputs
 * give the same image) and imports that as a one-layer image with its
 * alias. The fingerprint is the tar's sha256: building again from the same
 * inputs finds the image already present.
 *
 *   busybox    Debian's busybox-static (GUREUM_BUSYBOX overrides the binary,
 *              which must be a static ELF): the applets as symlinks, /etc
 *              basics. gureumd builds it on first start (image_builder_ensure).
 *   debian/12  debootstrap --variant=minbase bookworm from the host's Debian
 *              mirror (the first deb URI of /etc/apt/sources.list or
 *              sources.list.d/ (one-line or deb822 format) whose suite is a
 *              release, else http://deb.debian.org/debian; GUREUM_DEBIAN_MIRROR
 *              overrides), its output lines reported as progress. */
#ifndef GR_DAEMON_IMAGE_BUILDER_H
#define GR_DAEMON_IMAGE_BUILDER_H

#include <stddef.h>
#include "common/error.h"
#include "daemon/image/import.h"

#define IMAGE_BUSYBOX_ALIAS "busybox"
#define IMAGE_BUSYBOX_BINARY "/bin/busybox"
#define IMAGE_DEBIAN_ALIAS "debian/12"
#define IMAGE_DEBIAN_MIRROR_DEFAULT "http://deb.debian.org/debian"

/* Is name a builder ("busybox", "debian/12")? */
bool image_builder_known(const char *name);
/* Builds it and gives it its alias (moving the alias if it named an older
 * build). */
int image_build(struct image_store *is, const char *name, const struct image_progress *pr,
		struct image_import_result *res, struct gr_error *err);
/* Builds busybox unless the alias exists (gureumd's start). */
int image_builder_ensure(struct image_store *is, struct gr_error *err);

/* The Debian mirror from apt's sources (tests: the files' text). */
int image_debian_mirror_from(const char *sources_list, const char *const *deb822, char *out, size_t n);
void image_debian_mirror(char *out, size_t n);

#endif
