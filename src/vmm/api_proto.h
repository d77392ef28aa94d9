/* The control channel between gureum-vmm and its API process
 * (gureum-vmm-api): a SOCK_SEQPACKET socketpair, one message per datagram,
 * host byte order (both ends run on the same machine from the same build).
 *
 *   API -> VMM  hello     header {VMM_CTL_MAGIC_HELLO, 0, result, len} + error text
 *                         (the first message: result 0 = listening, or -errno
 *                         and why the socket could not be set up)
 *   API -> VMM  request   exactly 16 bytes {VMM_CTL_MAGIC_REQUEST, op, seq, arg}
 *   VMM -> API  response  header {VMM_CTL_MAGIC_RESPONSE, seq, result, len} + body
 *
 * Response bodies: result < 0: the error text (printable ASCII, no NUL,
 * at most VMM_CTL_MAX_TEXT bytes); STATUS: struct vmm_ctl_status; PAUSE,
 * RESUME, STOP: empty; METRICS: u32 n_exits (<= VMM_CTL_MAX_EXITS), u64
 * exits[n_exits], u32 n_devices (<= VMM_CTL_MAX_DEVICES), then per device
 * char name[16] (NUL-terminated, [a-z0-9_]), u32 n_counters (<=
 * VMM_CTL_MAX_COUNTERS), {char key[24] (same rule), u64 value}[n_counters].
 *
 * Both ends check everything: the exact datagram length (datagrams longer than
 * the buffer are detected with MSG_TRUNC and refused), the magic, the op, the
 * argument's range, the body length against the header, every count and name.
 * The VMM treats the API process as untrusted: it parses nothing but the
 * fixed 16-byte request. Pure functions, no I/O: unit-tested with hostile
 * inputs (tests/unit/test_vmm_api_proto.c). */
#ifndef GR_VMM_API_PROTO_H
#define GR_VMM_API_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define VMM_CTL_MAGIC_HELLO    0x48435247u /* "GRCH" */
#define VMM_CTL_MAGIC_REQUEST  0x51435247u /* "GRCQ" */
#define VMM_CTL_MAGIC_RESPONSE 0x52435247u /* "GRCR" */

#define VMM_CTL_HEADER_LEN   16u
#define VMM_CTL_REQUEST_LEN  16u
#define VMM_CTL_MAX_TEXT     255u
#define VMM_CTL_MAX_EXITS    64u
#define VMM_CTL_MAX_DEVICES  32u
#define VMM_CTL_MAX_COUNTERS 16u
#define VMM_CTL_NAME_LEN     16u
#define VMM_CTL_KEY_LEN      24u
#define VMM_CTL_MAX_BODY     (4 + 8 * VMM_CTL_MAX_EXITS + 4 + \
			      VMM_CTL_MAX_DEVICES * (VMM_CTL_NAME_LEN + 4 + VMM_CTL_MAX_COUNTERS * (VMM_CTL_KEY_LEN + 8)))
#define VMM_CTL_MAX_MESSAGE  (VMM_CTL_HEADER_LEN + VMM_CTL_MAX_BODY)
/* The largest stop timeout a request may carry (one hour). */
#define VMM_CTL_MAX_STOP_TIMEOUT_MS 3600000u

enum vmm_ctl_op {
	VMM_CTL_STATUS = 1,
	VMM_CTL_PAUSE = 2,
	VMM_CTL_RESUME = 3,
	VMM_CTL_STOP = 4,     /* arg: the forced-stop timeout in milliseconds */
	VMM_CTL_METRICS = 5,
};

struct vmm_ctl_request {
	uint32_t op, seq, arg;
};

struct vmm_ctl_header {
	uint32_t magic, seq;
	int32_t result;        /* 0 or -errno */
	uint32_t len;          /* body bytes after the header */
};

enum vmm_ctl_state { VMM_CTL_RUNNING = 0, VMM_CTL_PAUSED = 1, VMM_CTL_STOPPING = 2 };

struct vmm_ctl_status {
	uint32_t state;        /* enum vmm_ctl_state */
	uint32_t vcpus;
	uint64_t memory;       /* bytes */
	uint64_t uptime_us;
};

struct vmm_ctl_counter {
	char key[VMM_CTL_KEY_LEN];
	uint64_t value;
};

struct vmm_ctl_device {
	char name[VMM_CTL_NAME_LEN];
	uint32_t n_counters;
	struct vmm_ctl_counter counters[VMM_CTL_MAX_COUNTERS];
};

struct vmm_ctl_metrics {
	uint32_t n_exits;
	uint64_t exits[VMM_CTL_MAX_EXITS];
	uint32_t n_devices;
	struct vmm_ctl_device devices[VMM_CTL_MAX_DEVICES];
};

/* Requests. encode writes exactly VMM_CTL_REQUEST_LEN bytes. decode returns
 * 0, -EBADMSG (length or magic), -EOPNOTSUPP (unknown op) or -ERANGE (an
 * argument out of range, or one given to an op that takes none); after the
 * length and magic checks r->seq is set even when the op or argument is
 * refused, so the refusal can answer that request. */
void vmm_ctl_request_encode(const struct vmm_ctl_request *r, uint8_t out[VMM_CTL_REQUEST_LEN]);
int vmm_ctl_request_decode(const void *buf, size_t n, struct vmm_ctl_request *r);

/* Headers (hello and responses). decode checks the magic and that len is
 * exactly n - VMM_CTL_HEADER_LEN and at most VMM_CTL_MAX_BODY; -EBADMSG
 * otherwise, and for a positive result or an error without text. */
void vmm_ctl_header_encode(const struct vmm_ctl_header *h, uint8_t out[VMM_CTL_HEADER_LEN]);
int vmm_ctl_header_decode(const void *buf, size_t n, uint32_t magic, struct vmm_ctl_header *h);

/* Error text: a message of at most VMM_CTL_MAX_TEXT bytes; encode replaces
 * anything but printable ASCII by '?' and cuts at the limit, returning the
 * body length. decode copies it NUL-terminated into out (out_size >
 * VMM_CTL_MAX_TEXT), -EBADMSG when it is empty, too long or not printable. */
size_t vmm_ctl_text_encode(const char *msg, uint8_t *out);
int vmm_ctl_text_decode(const void *body, size_t n, char *out, size_t out_size);

/* Status: a fixed 24-byte body. decode: -EBADMSG for another length, an
 * unknown state or zero vCPUs. */
#define VMM_CTL_STATUS_LEN 24u
void vmm_ctl_status_encode(const struct vmm_ctl_status *s, uint8_t out[VMM_CTL_STATUS_LEN]);
int vmm_ctl_status_decode(const void *body, size_t n, struct vmm_ctl_status *s);

/* Metrics. encode returns the body length (at most VMM_CTL_MAX_BODY), or
 * -EINVAL when a count is over its limit or a name breaks the rule. decode
 * returns 0 or -EBADMSG for anything that does not add up (counts over the
 * limits, the body shorter or longer than its counts say, names that are not
 * NUL-terminated or use other characters). */
int vmm_ctl_metrics_encode(const struct vmm_ctl_metrics *m, uint8_t *out, size_t out_size);
int vmm_ctl_metrics_decode(const void *body, size_t n, struct vmm_ctl_metrics *m);

/* Whether s is a valid device name or counter key: 1..max-1 characters of
 * [a-z0-9_], NUL-terminated within max bytes. */
int vmm_ctl_name_valid(const char *s, size_t max);

#endif
