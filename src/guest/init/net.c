#include "net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

static int read_small(const char *path, char *buf, size_t n)
{
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t r = read(fd, buf, n - 1);
	if (r < 0)
		return -errno;
	buf[r] = 0;
	while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == ' '))
		buf[--r] = 0;
	return 0;
}

/* 1 found, 0 not (yet). */
static int scan_interfaces(const unsigned char *mac, char *ifname, size_t n)
{
	gr_autoclosedir DIR *d = opendir("/sys/class/net");
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || (strcmp(de->d_name, "lo") == 0 && mac == NULL))
			continue;
		char path[512], buf[64];
		snprintf(path, sizeof(path), "/sys/class/net/%s/address", de->d_name);
		if (read_small(path, buf, sizeof(buf)) < 0)
			continue;
		if (mac) {
			unsigned char m[6];
			if (ginit_parse_mac(buf, m) < 0 || memcmp(m, mac, 6) != 0)
				continue;
		} else {
			snprintf(path, sizeof(path), "/sys/class/net/%s/flags", de->d_name);
			char fl[32];
			if (read_small(path, fl, sizeof(fl)) == 0 && (strtoul(fl, NULL, 0) & IFF_LOOPBACK))
				continue;
		}
		if (strlen(de->d_name) >= n || strlen(de->d_name) >= IFNAMSIZ)
			continue;
		snprintf(ifname, n, "%s", de->d_name);
		return 1;
	}
	return 0;
}

int net_find_interface(const unsigned char *mac, char *ifname, size_t n, int timeout_ms, struct gr_error *err)
{
	for (int waited = 0;; waited += 10) {
		if (scan_interfaces(mac, ifname, n))
			return 0;
		if (waited >= timeout_ms)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	if (mac)
		return gr_error_set(err, ENODEV, "no network interface has the MAC %02x:%02x:%02x:%02x:%02x:%02x "
				    "(is virtio_net loaded? see the module lines above)",
				    mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	return gr_error_set(err, ENODEV, "no network interface besides lo");
}

static int ifreq_for(struct ifreq *ifr, const char *ifname, struct gr_error *err)
{
	memset(ifr, 0, sizeof(*ifr));
	if (strlen(ifname) >= sizeof(ifr->ifr_name))
		return gr_error_set(err, ENAMETOOLONG, "interface name %s too long", ifname);
	memcpy(ifr->ifr_name, ifname, strlen(ifname));
	return 0;
}

int net_link_up(const char *ifname, struct gr_error *err)
{
	gr_autoclose int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return gr_error_sys(err, errno, "socket(AF_INET)");
	struct ifreq ifr;
	int r = ifreq_for(&ifr, ifname, err);
	if (r < 0)
		return r;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return gr_error_sys(err, errno, "%s: SIOCGIFFLAGS", ifname);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return gr_error_sys(err, errno, "%s: cannot bring the link up", ifname);
	return 0;
}

static void set_sin(struct sockaddr *sa, struct in_addr a)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = a };
	memcpy(sa, &sin, sizeof(sin));
}

int net_configure(const char *ifname, const struct ginit_network *net, struct gr_error *err)
{
	gr_autoclose int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return gr_error_sys(err, errno, "socket(AF_INET)");
	struct ifreq ifr;
	char a[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &net->address, a, sizeof(a));
	int r = ifreq_for(&ifr, ifname, err);
	if (r < 0)
		return r;
	set_sin(&ifr.ifr_addr, net->address);
	if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
		return gr_error_sys(err, errno, "%s: cannot set the address %s", ifname, a);
	struct in_addr mask = { .s_addr = net->prefix ? htonl(~0u << (32 - net->prefix)) : 0 };
	ifreq_for(&ifr, ifname, err);
	set_sin(&ifr.ifr_netmask, mask);
	if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
		return gr_error_sys(err, errno, "%s: cannot set the netmask /%u", ifname, net->prefix);
	if ((r = net_link_up(ifname, err)) < 0)
		return r;
	if (!net->has_gateway)
		return 0;
	struct rtentry rt = { 0 };
	set_sin(&rt.rt_dst, (struct in_addr){ 0 });
	set_sin(&rt.rt_genmask, (struct in_addr){ 0 });
	set_sin(&rt.rt_gateway, net->gateway);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	char dev[IFNAMSIZ];
	snprintf(dev, sizeof(dev), "%s", ifname);
	rt.rt_dev = dev;
	if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST) {
		char g[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &net->gateway, g, sizeof(g));
		return gr_error_sys(err, errno, "%s: cannot add the default route via %s", ifname, g);
	}
	return 0;
}

int net_write_resolv_conf(const char *path, const struct ginit_network *net, struct gr_error *err)
{
	char text[256] = "";
	size_t len = 0;
	for (unsigned i = 0; i < net->ndns; i++) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &net->dns[i], a, sizeof(a));
		len += (size_t)snprintf(text + len, sizeof(text) - len, "nameserver %s\n", a);
	}
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.gureum-tmp", path);
	gr_autoclose int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot create %s", tmp);
	if (write(fd, text, len) != (ssize_t)len || fchmod(fd, 0644) < 0) {
		int e = errno;
		unlink(tmp);
		return gr_error_sys(err, e ? e : EIO, "cannot write %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return gr_error_sys(err, e, "cannot rename %s to %s", tmp, path);
	}
	return 0;
}
