/* Attaching to an existing tap interface (see tap.h). */
#include "vmm/devices/tap.h"
#include "common/cleanup.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int tap_check_name(const char *name, struct gr_error *err)
{
	size_t n = strlen(name);
	if (n == 0)
		return gr_error_set(err, EINVAL, "no interface name");
	if (n >= IFNAMSIZ)
		return gr_error_set(err, EINVAL, "interface name \"%s\" is longer than %d bytes", name, IFNAMSIZ - 1);
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return gr_error_set(err, EINVAL, "\"%s\" is not a valid interface name", name);
	for (const char *p = name; *p; p++) {
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p))
			return gr_error_set(err, EINVAL, "\"%s\" is not a valid interface name (no '/', ':' or spaces)",
					    name);
	}
	return 0;
}

int tap_set_offload(int fd, uint32_t tun_flags)
{
	return ioctl(fd, TUNSETOFFLOAD, (unsigned long)tun_flags) < 0 ? -errno : 0;
}

int tap_open(const char *name, int *fd_out, uint32_t *offloads, struct gr_error *err)
{
	*fd_out = -1;
	*offloads = 0;
	int r = tap_check_name(name, err);
	if (r < 0)
		return gr_error_prefix(err, "tap");
	/* TUNSETIFF would create a missing interface (with CAP_NET_ADMIN): look
	 * first, and compare the index afterwards in case it vanished between. */
	unsigned index = if_nametoindex(name);
	if (index == 0)
		return gr_error_set(err, ENODEV,
				    "tap %s: no such network interface (gureum-vmm only attaches to an existing tap: create it first, e.g. ip tuntap add dev %s mode tap)",
				    name, name);
	gr_autoclose int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "tap %s: cannot open /dev/net/tun", name);
	struct ifreq ifr = { 0 };
	memcpy(ifr.ifr_name, name, strlen(name)); /* < IFNAMSIZ, checked */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		switch (e) {
		case EINVAL:
			return gr_error_sys(err, e, "tap %s: not a tap interface, or a multi-queue one (gureum-vmm needs a single-queue tap: ip tuntap add dev %s mode tap)",
					    name, name);
		case EBUSY:
			return gr_error_sys(err, e, "tap %s: already in use (by another process, or named twice)", name);
		case EPERM:
			return gr_error_sys(err, e, "tap %s: not allowed to attach (the tap's owner or group is someone else, or CAP_NET_ADMIN is missing)",
					    name);
		default:
			return gr_error_sys(err, e, "tap %s: TUNSETIFF", name);
		}
	}
	if (if_nametoindex(name) != index)
		return gr_error_set(err, ENODEV, "tap %s: the interface disappeared while gureum-vmm attached to it", name);
	int hdr = TAP_VNET_HDR_LEN;
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
		return gr_error_sys(err, errno, "tap %s: TUNSETVNETHDRSZ %d", name, hdr);
	/* Which offloads this tap accepts: all at once, then one by one (the
	 * kernel refuses unknown bits as a whole); TSO needs CSUM. */
	if (tap_set_offload(fd, TAP_OFFLOADS_ALL) == 0) {
		*offloads = TAP_OFFLOADS_ALL;
	} else if (tap_set_offload(fd, TUN_F_CSUM) == 0) {
		*offloads = TUN_F_CSUM;
		static const uint32_t more[] = { TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN };
		for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
			if (tap_set_offload(fd, *offloads | more[i]) == 0)
				*offloads |= more[i];
	}
	r = tap_set_offload(fd, 0);
	if (r < 0)
		return gr_error_sys(err, -r, "tap %s: TUNSETOFFLOAD 0", name);
	*fd_out = gr_steal_fd(fd);
	return 0;
}
