#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
	[AGENT_REQUEST] = "REQUEST", [AGENT_RESPONSE] = "RESPONSE", [AGENT_STDIN] = "STDIN",
	[AGENT_STDOUT] = "STDOUT", [AGENT_STDERR] = "STDERR", [AGENT_STDIN_EOF] = "STDIN_EOF",
	[AGENT_EXIT] = "EXIT", [AGENT_RESIZE] = "RESIZE", [AGENT_SIGNAL] = "SIGNAL",
	[AGENT_FILE_DATA] = "FILE_DATA", [AGENT_FILE_END] = "FILE_END", [AGENT_ERROR] = "ERROR",
	[AGENT_HELLO] = "HELLO",
};

const char *agent_frame_type_name(unsigned type)
{
	if (type == 0 || type > AGENT_FRAME_TYPE_LAST)
		return NULL;
	return type_names[type];
}

bool agent_frame_from_host(unsigned type)
{
	switch (type) {
	case AGENT_REQUEST: case AGENT_STDIN: case AGENT_STDIN_EOF: case AGENT_RESIZE:
	case AGENT_SIGNAL: case AGENT_FILE_DATA: case AGENT_FILE_END:
		return true;
	default:
		return false;
	}
}

bool agent_frame_from_agent(unsigned type)
{
	switch (type) {
	case AGENT_RESPONSE: case AGENT_STDOUT: case AGENT_STDERR: case AGENT_EXIT:
	case AGENT_FILE_DATA: case AGENT_FILE_END: case AGENT_ERROR: case AGENT_HELLO:
		return true;
	default:
		return false;
	}
}

int agent_frame_header(uint8_t hdr[AGENT_FRAME_HEADER], unsigned type, size_t payload_len)
{
	if (!agent_frame_type_name(type))
		return -EINVAL;
	if (payload_len > AGENT_PAYLOAD_MAX)
		return -EMSGSIZE;
	uint32_t len = (uint32_t)payload_len + 1;
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	hdr[4] = (uint8_t)type;
	return 0;
}

int agent_frame_parse(const uint8_t *data, size_t len, struct agent_frame *f,
		      enum agent_parse_error *why, size_t *need)
{
	enum agent_parse_error dummy;
	if (!why)
		why = &dummy;
	*why = AGENT_PARSE_OK;
	if (need)
		*need = AGENT_FRAME_HEADER;
	if (len < AGENT_FRAME_HEADER)
		return 0;
	uint32_t flen = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
			(uint32_t)data[2] << 8 | (uint32_t)data[3];
	if (flen == 0) {
		*why = AGENT_PARSE_EMPTY;
		return -1;
	}
	if (flen > AGENT_FRAME_MAX) {
		*why = AGENT_PARSE_TOO_BIG;
		return -1;
	}
	if (!agent_frame_type_name(data[4])) {
		*why = AGENT_PARSE_BAD_TYPE;
		return -1;
	}
	size_t total = (size_t)flen + 4;
	if (need)
		*need = total;
	if (len < total)
		return 0;
	f->type = data[4];
	f->payload = data + AGENT_FRAME_HEADER;
	f->payload_len = flen - 1;
	f->size = total;
	return 1;
}

const char *agent_parse_error_str(enum agent_parse_error why)
{
	switch (why) {
	case AGENT_PARSE_OK: return "no error";
	case AGENT_PARSE_EMPTY: return "frame length 0 (a frame has at least its type byte)";
	case AGENT_PARSE_TOO_BIG: return "frame longer than 1 MiB";
	case AGENT_PARSE_BAD_TYPE: return "unknown frame type";
	}
	return "?";
}

int agent_buf_reserve(struct agent_buf *b, size_t n)
{
	if (b->off > 0 && b->off == b->len) {
		b->off = b->len = 0;
	}
	if (b->cap - b->len >= n)
		return 0;
	/* Move the pending bytes to the front before growing. */
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= n)
			return 0;
	}
	if (n > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return -ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

int agent_buf_append(struct agent_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int r = agent_buf_reserve(b, n);
	if (r < 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int agent_buf_append_frame(struct agent_buf *b, unsigned type, const void *payload, size_t n)
{
	uint8_t hdr[AGENT_FRAME_HEADER];
	int r = agent_frame_header(hdr, type, n);
	if (r < 0)
		return r;
	r = agent_buf_reserve(b, AGENT_FRAME_HEADER + n);
	if (r < 0)
		return r;
	memcpy(b->data + b->len, hdr, AGENT_FRAME_HEADER);
	if (n)
		memcpy(b->data + b->len + AGENT_FRAME_HEADER, payload, n);
	b->len += AGENT_FRAME_HEADER + n;
	return 0;
}

void agent_buf_consume(struct agent_buf *b, size_t n)
{
	if (n > b->len - b->off)
		n = b->len - b->off;
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

void agent_buf_reset(struct agent_buf *b)
{
	b->off = b->len = 0;
}

void agent_buf_free(struct agent_buf *b)
{
	free(b->data);
	*b = (struct agent_buf){ 0 };
}
