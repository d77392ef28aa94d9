/* The host side of virtio-net: an EXISTING tap interface, attached through
 * /dev/net/tun. gureum-vmm never creates (or deletes) an interface: gureumd
 * creates the tap, puts it on its bridge and names it on the command line;
 * a tap that does not exist is a configuration error and leaves nothing
 * behind.
 *
 * The descriptor is non-blocking and close-on-exec, in IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR mode with a 12-byte vnet header (struct virtio_net_hdr_v1,
 * num_buffers included: the modern virtio-net header), host byte order (= the
 * virtio 1.x little-endian on x86-64), and with no receive offloads until the
 * guest driver negotiates them (tap_set_offload). */
#ifndef GR_VMM_TAP_H
#define GR_VMM_TAP_H

#include <linux/if_tun.h>
#include <stdint.h>
#include "common/error.h"

#define TAP_VNET_HDR_LEN 12

/* The TUN_F_* receive offloads gureum-vmm can pass on to a guest: checksum
 * offload and TCP segmentation (IPv4, IPv6, ECN). UFO is left out (removed
 * from Linux 4.14 and only half restored; USO is too new for our hosts). */
#define TAP_OFFLOADS_ALL (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)

/* Whether name is a valid interface name (1..15 bytes, not "." or "..", no
 * '/', ':' or white space); the kernel's dev_valid_name(). */
int tap_check_name(const char *name, struct gr_error *err);

/* Attaches to the existing tap `name`: *fd gets the descriptor, *offloads the
 * subset of TAP_OFFLOADS_ALL this kernel's tap accepts (probed, then reset to
 * none). Errors name the interface and say what to do: ENODEV when it does
 * not exist, EINVAL when it is not a (single-queue) tap, EBUSY when another
 * process has it, EPERM when its owner/group is someone else. */
int tap_open(const char *name, int *fd, uint32_t *offloads, struct gr_error *err);

/* TUNSETOFFLOAD: which offloaded frames (TUN_F_*) the tap may hand us. 0 or
 * -errno. Allowed by the VMM's seccomp filter at run time: the guest driver
 * negotiates its features after boot. */
int tap_set_offload(int fd, uint32_t tun_flags);

#endif
