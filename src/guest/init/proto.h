/* The gureum guest agent protocol: frames and byte buffers (docs/guest-agent.md).
 *
 * A frame is a u32 big-endian length, then that many bytes: a u8 type and
 * the payload. The length counts the type byte, so it is 1 at least and
 * AGENT_FRAME_MAX at most. Payloads are JSON objects for the control types
 * and raw bytes for STDIN/STDOUT/STDERR/FILE_DATA.
 *
 * No JSON and no I/O here: the guest agent and the host side both link it. */
#ifndef GR_GUEST_PROTO_H
#define GR_GUEST_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_PROTO_VERSION 1
#define AGENT_FRAME_HEADER 5u               /* u32 length + u8 type */
#define AGENT_FRAME_MAX (1u << 20)          /* the length field's maximum (type byte + payload) */
#define AGENT_PAYLOAD_MAX (AGENT_FRAME_MAX - 1u)

enum agent_frame_type {
	AGENT_REQUEST = 1,    /* host -> agent, JSON */
	AGENT_RESPONSE = 2,   /* agent -> host, JSON */
	AGENT_STDIN = 3,      /* host -> agent, bytes */
	AGENT_STDOUT = 4,     /* agent -> host, bytes */
	AGENT_STDERR = 5,     /* agent -> host, bytes */
	AGENT_STDIN_EOF = 6,  /* host -> agent, empty */
	AGENT_EXIT = 7,       /* agent -> host, JSON {"code","signal"} */
	AGENT_RESIZE = 8,     /* host -> agent, JSON {"width","height"} */
	AGENT_SIGNAL = 9,     /* host -> agent, JSON {"signal"} */
	AGENT_FILE_DATA = 10, /* both ways, bytes */
	AGENT_FILE_END = 11,  /* both ways, empty */
	AGENT_ERROR = 12,     /* agent -> host, JSON {"error","fatal"} */
	AGENT_HELLO = 13,     /* agent -> host, JSON, first frame of every connection */
};
#define AGENT_FRAME_TYPE_LAST AGENT_HELLO

/* "REQUEST", ..., or NULL for a type that does not exist. */
const char *agent_frame_type_name(unsigned type);
/* Whether the host may send it / the agent may send it. */
bool agent_frame_from_host(unsigned type);
bool agent_frame_from_agent(unsigned type);

/* Fills hdr for a frame of `type` with payload_len bytes of payload.
 * -EMSGSIZE when the payload is larger than AGENT_PAYLOAD_MAX, -EINVAL for an unknown type. */
int agent_frame_header(uint8_t hdr[AGENT_FRAME_HEADER], unsigned type, size_t payload_len);

struct agent_frame {
	unsigned type;
	const uint8_t *payload;  /* points into the buffer given to agent_frame_parse */
	size_t payload_len;
	size_t size;             /* the whole frame, header included */
};

enum agent_parse_error {
	AGENT_PARSE_OK = 0,
	AGENT_PARSE_EMPTY,       /* length 0: no type byte */
	AGENT_PARSE_TOO_BIG,     /* length > AGENT_FRAME_MAX */
	AGENT_PARSE_BAD_TYPE,    /* a type that does not exist */
};

/* Looks for one frame at the start of data[0..len).
 * Returns 1 and fills *f when a whole frame is there, 0 when more bytes are
 * needed (the header is checked as soon as its 5 bytes are there), and -1
 * with *why set when the header is invalid (the stream cannot be resynchronised).
 * *need (optional) gets the total size the frame will have once complete,
 * or AGENT_FRAME_HEADER while the header is incomplete. */
int agent_frame_parse(const uint8_t *data, size_t len, struct agent_frame *f,
		      enum agent_parse_error *why, size_t *need);
const char *agent_parse_error_str(enum agent_parse_error why);

/* A byte queue: data[off..len) is pending. */
struct agent_buf {
	uint8_t *data;
	size_t off, len, cap;
};

static inline size_t agent_buf_pending(const struct agent_buf *b) { return b->len - b->off; }
static inline const uint8_t *agent_buf_head(const struct agent_buf *b) { return b->data + b->off; }
/* 0 or -ENOMEM. */
int agent_buf_append(struct agent_buf *b, const void *p, size_t n);
/* Appends a whole frame (header + payload): 0, -EMSGSIZE, -EINVAL or -ENOMEM. */
int agent_buf_append_frame(struct agent_buf *b, unsigned type, const void *payload, size_t n);
/* Room for n more bytes at data+len (for read()): 0 or -ENOMEM. */
int agent_buf_reserve(struct agent_buf *b, size_t n);
void agent_buf_consume(struct agent_buf *b, size_t n);
void agent_buf_reset(struct agent_buf *b);  /* empties, keeps the memory */
void agent_buf_free(struct agent_buf *b);

#endif
