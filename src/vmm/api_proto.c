/* The control channel's messages: see api_proto.h. */
#include "vmm/api_proto.h"

#include <errno.h>
#include <string.h>

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

void vmm_ctl_request_encode(const struct vmm_ctl_request *r, uint8_t out[VMM_CTL_REQUEST_LEN])
{
	put32(out, VMM_CTL_MAGIC_REQUEST);
	put32(out + 4, r->op);
	put32(out + 8, r->seq);
	put32(out + 12, r->arg);
}

int vmm_ctl_request_decode(const void *buf, size_t n, struct vmm_ctl_request *r)
{
	const uint8_t *p = buf;
	if (n != VMM_CTL_REQUEST_LEN || get32(p) != VMM_CTL_MAGIC_REQUEST)
		return -EBADMSG;
	struct vmm_ctl_request q = { .op = get32(p + 4), .seq = get32(p + 8), .arg = get32(p + 12) };
	r->seq = q.seq; /* known from here on, so even a refusal can name the request */
	switch (q.op) {
	case VMM_CTL_STATUS: case VMM_CTL_PAUSE: case VMM_CTL_RESUME: case VMM_CTL_METRICS:
		if (q.arg != 0)
			return -ERANGE;
		break;
	case VMM_CTL_STOP:
		if (q.arg > VMM_CTL_MAX_STOP_TIMEOUT_MS)
			return -ERANGE;
		break;
	default:
		return -EOPNOTSUPP;
	}
	*r = q;
	return 0;
}

void vmm_ctl_header_encode(const struct vmm_ctl_header *h, uint8_t out[VMM_CTL_HEADER_LEN])
{
	put32(out, h->magic);
	put32(out + 4, h->seq);
	put32(out + 8, (uint32_t)h->result);
	put32(out + 12, h->len);
}

int vmm_ctl_header_decode(const void *buf, size_t n, uint32_t magic, struct vmm_ctl_header *h)
{
	const uint8_t *p = buf;
	if (n < VMM_CTL_HEADER_LEN || n - VMM_CTL_HEADER_LEN > VMM_CTL_MAX_BODY || get32(p) != magic)
		return -EBADMSG;
	struct vmm_ctl_header x = { .magic = magic, .seq = get32(p + 4), .result = (int32_t)get32(p + 8),
				    .len = get32(p + 12) };
	if (x.len != n - VMM_CTL_HEADER_LEN)
		return -EBADMSG;
	/* A result is 0 or a negative errno (1..4095), and an error always says why. */
	if (x.result > 0 || x.result < -4095 || (x.result < 0 && x.len == 0))
		return -EBADMSG;
	*h = x;
	return 0;
}

size_t vmm_ctl_text_encode(const char *msg, uint8_t *out)
{
	size_t n = 0;
	for (; msg && msg[n] && n < VMM_CTL_MAX_TEXT; n++) {
		unsigned char c = (unsigned char)msg[n];
		out[n] = c >= 0x20 && c < 0x7F ? c : '?';
	}
	if (n == 0)
		out[n++] = '?';
	return n;
}

int vmm_ctl_text_decode(const void *body, size_t n, char *out, size_t out_size)
{
	const uint8_t *p = body;
	if (n == 0 || n > VMM_CTL_MAX_TEXT || out_size <= n)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] >= 0x7F)
			return -EBADMSG;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

void vmm_ctl_status_encode(const struct vmm_ctl_status *s, uint8_t out[VMM_CTL_STATUS_LEN])
{
	put32(out, s->state);
	put32(out + 4, s->vcpus);
	put64(out + 8, s->memory);
	put64(out + 16, s->uptime_us);
}

int vmm_ctl_status_decode(const void *body, size_t n, struct vmm_ctl_status *s)
{
	const uint8_t *p = body;
	if (n != VMM_CTL_STATUS_LEN)
		return -EBADMSG;
	struct vmm_ctl_status x = { .state = get32(p), .vcpus = get32(p + 4), .memory = get64(p + 8),
				    .uptime_us = get64(p + 16) };
	if (x.state > VMM_CTL_STOPPING || x.vcpus == 0)
		return -EBADMSG;
	*s = x;
	return 0;
}

int vmm_ctl_name_valid(const char *s, size_t max)
{
	size_t i = 0;
	for (; i < max && s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return i > 0 && i < max;
}

int vmm_ctl_metrics_encode(const struct vmm_ctl_metrics *m, uint8_t *out, size_t out_size)
{
	if (m->n_exits > VMM_CTL_MAX_EXITS || m->n_devices > VMM_CTL_MAX_DEVICES)
		return -EINVAL;
	size_t need = 4 + 8 * (size_t)m->n_exits + 4;
	for (uint32_t d = 0; d < m->n_devices; d++) {
		const struct vmm_ctl_device *dev = &m->devices[d];
		if (dev->n_counters > VMM_CTL_MAX_COUNTERS || !vmm_ctl_name_valid(dev->name, VMM_CTL_NAME_LEN))
			return -EINVAL;
		for (uint32_t c = 0; c < dev->n_counters; c++)
			if (!vmm_ctl_name_valid(dev->counters[c].key, VMM_CTL_KEY_LEN))
				return -EINVAL;
		need += VMM_CTL_NAME_LEN + 4 + (size_t)dev->n_counters * (VMM_CTL_KEY_LEN + 8);
	}
	if (need > out_size)
		return -EINVAL;
	uint8_t *p = out;
	put32(p, m->n_exits);
	p += 4;
	for (uint32_t i = 0; i < m->n_exits; i++, p += 8)
		put64(p, m->exits[i]);
	put32(p, m->n_devices);
	p += 4;
	for (uint32_t d = 0; d < m->n_devices; d++) {
		const struct vmm_ctl_device *dev = &m->devices[d];
		memset(p, 0, VMM_CTL_NAME_LEN);
		memcpy(p, dev->name, strlen(dev->name));
		p += VMM_CTL_NAME_LEN;
		put32(p, dev->n_counters);
		p += 4;
		for (uint32_t c = 0; c < dev->n_counters; c++) {
			memset(p, 0, VMM_CTL_KEY_LEN);
			memcpy(p, dev->counters[c].key, strlen(dev->counters[c].key));
			put64(p + VMM_CTL_KEY_LEN, dev->counters[c].value);
			p += VMM_CTL_KEY_LEN + 8;
		}
	}
	return (int)(p - out);
}

/* A bounded reader: every take checks what is left first. */
struct reader {
	const uint8_t *p;
	size_t left;
};

static const uint8_t *take(struct reader *r, size_t n)
{
	if (n > r->left)
		return NULL;
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

int vmm_ctl_metrics_decode(const void *body, size_t n, struct vmm_ctl_metrics *m)
{
	struct reader r = { .p = body, .left = n };
	const uint8_t *p;
	memset(m, 0, sizeof(*m));
	if (!(p = take(&r, 4)) || (m->n_exits = get32(p)) > VMM_CTL_MAX_EXITS)
		return -EBADMSG;
	for (uint32_t i = 0; i < m->n_exits; i++) {
		if (!(p = take(&r, 8)))
			return -EBADMSG;
		m->exits[i] = get64(p);
	}
	if (!(p = take(&r, 4)) || (m->n_devices = get32(p)) > VMM_CTL_MAX_DEVICES)
		return -EBADMSG;
	for (uint32_t d = 0; d < m->n_devices; d++) {
		struct vmm_ctl_device *dev = &m->devices[d];
		if (!(p = take(&r, VMM_CTL_NAME_LEN)))
			return -EBADMSG;
		memcpy(dev->name, p, VMM_CTL_NAME_LEN);
		if (!vmm_ctl_name_valid(dev->name, VMM_CTL_NAME_LEN))
			return -EBADMSG;
		if (!(p = take(&r, 4)) || (dev->n_counters = get32(p)) > VMM_CTL_MAX_COUNTERS)
			return -EBADMSG;
		for (uint32_t c = 0; c < dev->n_counters; c++) {
			if (!(p = take(&r, VMM_CTL_KEY_LEN + 8)))
				return -EBADMSG;
			memcpy(dev->counters[c].key, p, VMM_CTL_KEY_LEN);
			if (!vmm_ctl_name_valid(dev->counters[c].key, VMM_CTL_KEY_LEN))
				return -EBADMSG;
			dev->counters[c].value = get64(p + VMM_CTL_KEY_LEN);
		}
	}
	return r.left == 0 ? 0 : -EBADMSG; /* nothing after the last device */
}
