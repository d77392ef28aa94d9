/* One dnsmasq per network (Debian's dnsmasq-base, run as a daemon), for
 * DHCP (static leases only: the database's IPAM decides every address) and
 * DNS (instance names, NAME and NAME.gureum; other names go to the host's
 * resolvers).
 *
 *   RUN/networks/NAME/                 0711 (dnsmasq_write_hosts makes it so)
 *   RUN/networks/NAME/dhcp-hosts       0644, MAC,ADDR,NAME lines
 *                                      (--dhcp-hostsfile); just MAC,ADDR when
 *                                      dnsmasq would read NAME as a lease
 *                                      time (123, 1h, 2d, infinite) or as
 *                                      "ignore"
 *   RUN/networks/NAME/hosts            0644, "ADDR NAME NAME.gureum" lines
 *                                      (--addn-hosts)
 *   RUN/networks/NAME/dnsmasq.pid      --pid-file
 *   RUN/networks/NAME/dnsmasq.log      --log-facility
 *   STATE/networks/NAME/leases         --dhcp-leasefile (0700 directory)
 *
 * dnsmasq parses packets from the guests, so it does not keep root: it is
 * given --user=nobody --group=nogroup (Debian's names; its default group
 * would be "dip") and drops to them once its sockets are bound, keeping
 * only CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE (for DHCP). What
 * that means for its files (dnsmasq 2.90, checked by test):
 * - The host files are read after the drop, at start and at every SIGHUP,
 *   so they are derived data in RUN (gureumd rewrites them from its
 *   database at every start), files 0644 in a 0711 directory: nobody opens
 *   them by name, lists nothing, and can change nothing there. Every
 *   directory above must let others through: gureumd makes RUN and
 *   RUN/networks 0711 (dnsmasq_write_hosts adds the search bits to
 *   RUN/networks; RUN is main.c's). dnsmasq starts without complaint when
 *   it cannot read them and then serves no names, so dnsmasq_ensure checks
 *   the way first (-EACCES). Versions that ran dnsmasq as root kept them in
 *   STATE/networks/NAME; dnsmasq_write_hosts removes those copies.
 * - The lease file is opened (created) while still root and kept open; each
 *   update rewrites it in place through that descriptor (rewind, ftruncate,
 *   write, fsync), never as a new file renamed over it. So it stays in the
 *   0700 STATE directory, root's, and survives a reboot.
 * - The pid file is written while still root, then chowned to nobody by
 *   dnsmasq. Its content is never trusted alone (below).
 * - The log file is opened while still root and chowned to nobody. SIGUSR2
 *   reopens it by name as nobody: that works while the file is there, but
 *   nobody cannot create one in the 0711 directory, so it must not be
 *   rotated by renaming (truncate it in place instead).
 *
 * dnsmasq is started with an argument vector (no shell) and a config of
 * /dev/null; it is not gureumd's child (it daemonizes), so it outlives a
 * gureumd restart as instances do. It is identified by its pid file and
 * checked to be a dnsmasq with that pid file on its command line before
 * anything is sent to it: /proc/PID/exe must be the dnsmasq binary (also
 * when a package upgrade replaced it since) and /proc/PID/cmdline must hold
 * --pid-file=RUN/networks/NAME/dnsmasq.pid; a stale pid file is never
 * followed by a signal. It inherits no descriptor of gureumd's.
 *
 * Its arguments: --conf-file=/dev/null --user=nobody --group=nogroup
 * --no-hosts --strict-order --bind-interfaces --except-interface=lo
 * --interface=BRIDGE --listen-address=GATEWAY, the files above,
 * --dhcp-range=FIRST_HOST,static,NETMASK,1h --dhcp-lease-max=(hosts in the
 * subnet) --dhcp-no-override --dhcp-authoritative --dhcp-ignore-names (a
 * guest cannot name itself into DNS) --domain=gureum --local=/gureum/
 * --domain-needed (a dotless name that is no instance is not forwarded). No
 * --no-resolv: other names go to the resolvers of the host's
 * /etc/resolv.conf.
 *
 * The binary is /usr/sbin/dnsmasq, or the path in the environment variable
 * GUREUM_DNSMASQ (for tests). */
#ifndef GR_DAEMON_NETWORK_DNSMASQ_H
#define GR_DAEMON_NETWORK_DNSMASQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/error.h"
#include "daemon/network/addr.h"

#define DNSMASQ_DOMAIN "gureum"

struct dnsmasq_net {
	const char *name;         /* the network's name */
	const char *bridge;
	struct ipv4_net subnet;
	const char *state_dir;    /* STATE/networks/NAME (made 0700 if missing) */
	const char *run_dir;      /* RUN/networks/NAME (made 0711, see above) */
};

struct dnsmasq_host {
	const char *name;         /* instance name */
	const uint8_t *mac;       /* 6 bytes */
	uint32_t addr;
};

/* Atomically and durably rewrites dhcp-hosts and hosts in the run
 * directory (a new temporary file, fsync, rename, fsync of the directory),
 * making the state and run directories if missing, the run directory 0711
 * and its parent searchable by others. -EINVAL, with nothing written, for a
 * name that is not 1-63 of a-z, 0-9 and '-', a NULL MAC, or an address
 * outside the subnet. */
int dnsmasq_write_hosts(const struct dnsmasq_net *n, const struct dnsmasq_host *hosts, size_t count,
			struct gr_error *err);
/* The running dnsmasq of the network (checked as above), or 0. */
pid_t dnsmasq_pid(const struct dnsmasq_net *n);
/* Makes it run: when it runs with the arguments above, SIGHUP (rereads
 * both host files; it does so in its own time, shortly after); when it runs
 * with others (an earlier version's, or the subnet changed), stops it and
 * starts a new one; else starts it and returns once it serves (its launcher
 * exited 0 and the pid file names it; a failure carries dnsmasq's message,
 * -EIO). The host files must have been written (-ENOENT) and be reachable
 * by nobody (-EACCES, naming the directory that is not). */
int dnsmasq_ensure(const struct dnsmasq_net *n, struct gr_error *err);
/* SIGTERM, waits for it to exit (SIGKILL after 5 s; -ETIMEDOUT if even
 * that does not end it within 5 s more), removes the pid file. 0 when it
 * does not run (a stale pid file is removed). */
int dnsmasq_stop(const struct dnsmasq_net *n, struct gr_error *err);

#endif
