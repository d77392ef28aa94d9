/* AML encoder: see aml.h. Encodings from the ACPI 6.5 specification,
 * chapter 20 (AML grammar) and 6.4 (resource data types). */
#include "vmm/acpi/aml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->data);
	memset(a, 0, sizeof(*a));
}

static void aml_fail(struct aml *a, int code)
{
	if (!a->error)
		a->error = code;
}

/* Makes room for n more bytes; false (and a->error set) when impossible. */
static int aml_reserve(struct aml *a, size_t n)
{
	if (a->error)
		return 0;
	if (n > SIZE_MAX - a->len) {
		aml_fail(a, -ENOMEM);
		return 0;
	}
	if (a->len + n <= a->cap)
		return 1;
	size_t cap = a->cap ? a->cap : 256;
	while (cap < a->len + n) {
		if (cap > SIZE_MAX / 2) {
			aml_fail(a, -ENOMEM);
			return 0;
		}
		cap *= 2;
	}
	uint8_t *p = realloc(a->data, cap);
	if (!p) {
		aml_fail(a, -ENOMEM);
		return 0;
	}
	a->data = p;
	a->cap = cap;
	return 1;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (n == 0 || !aml_reserve(a, n))
		return;
	memcpy(a->data + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

void aml_word(struct aml *a, uint16_t v)
{
	uint8_t b[2] = { v & 0xFF, v >> 8 };
	aml_bytes(a, b, sizeof(b));
}

void aml_dword(struct aml *a, uint32_t v)
{
	uint8_t b[4] = { v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24 };
	aml_bytes(a, b, sizeof(b));
}

static void aml_qword(struct aml *a, uint64_t v)
{
	aml_dword(a, (uint32_t)v);
	aml_dword(a, (uint32_t)(v >> 32));
}

/* The largest value a PkgLength of n bytes can hold. */
static uint32_t pkglen_limit(int n)
{
	return n == 1 ? 0x3F : (1u << (4 + 8 * (n - 1))) - 1;
}

int aml_pkglen_encode(uint32_t total, uint8_t out[4])
{
	if (total > AML_PKGLEN_MAX)
		return -ERANGE;
	if (total <= pkglen_limit(1)) {
		out[0] = (uint8_t)total;
		return 1;
	}
	int n = 2;
	while (total > pkglen_limit(n))
		n++;
	/* Bits 7-6: count of following bytes; bits 3-0: the low nibble. */
	out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0F));
	for (int i = 1; i < n; i++)
		out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	return n;
}

int aml_pkglen_size(size_t body)
{
	for (int n = 1; n <= 4; n++)
		if (body <= pkglen_limit(n) - (uint32_t)n)
			return n;
	return -ERANGE;
}

int aml_pkglen_decode(const uint8_t *p, size_t avail, uint32_t *total)
{
	if (avail < 1)
		return -EINVAL;
	int follow = p[0] >> 6;
	if (follow == 0) {
		*total = p[0] & 0x3F;
		return 1;
	}
	if ((size_t)follow + 1 > avail || (p[0] & 0x30))
		return -EINVAL;
	uint32_t v = p[0] & 0x0F;
	for (int i = 1; i <= follow; i++)
		v |= (uint32_t)p[i] << (4 + 8 * (i - 1));
	*total = v;
	return follow + 1;
}

static int is_lead_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(char c)
{
	return is_lead_name_char(c) || (c >= '0' && c <= '9');
}

void aml_name_string(struct aml *a, const char *path)
{
	if (!path) {
		aml_fail(a, -EINVAL);
		return;
	}
	const char *p = path;
	if (*p == '\\') {
		aml_byte(a, AML_ROOT_CHAR);
		p++;
	} else {
		while (*p == '^') {
			aml_byte(a, AML_PARENT_PREFIX);
			p++;
		}
	}
	/* Split into segments of 1..4 name characters. */
	char segs[255][4];
	size_t n = 0;
	while (*p) {
		if (n == 255) {
			aml_fail(a, -EINVAL);
			return;
		}
		size_t k = 0;
		while (p[k] && p[k] != '.') {
			if (k == 4 || !(k == 0 ? is_lead_name_char(p[k]) : is_name_char(p[k]))) {
				aml_fail(a, -EINVAL);
				return;
			}
			k++;
		}
		if (k == 0) {
			aml_fail(a, -EINVAL);
			return;
		}
		memcpy(segs[n], p, k);
		memset(segs[n] + k, '_', 4 - k);
		n++;
		p += k;
		if (*p == '.') {
			p++;
			if (!*p) { /* trailing dot */
				aml_fail(a, -EINVAL);
				return;
			}
		}
	}
	if (n == 0)
		aml_byte(a, 0x00); /* NullName */
	else if (n == 2)
		aml_byte(a, AML_DUAL_NAME_PREFIX);
	else if (n > 2) {
		aml_byte(a, AML_MULTI_NAME_PREFIX);
		aml_byte(a, (uint8_t)n);
	}
	for (size_t i = 0; i < n; i++)
		aml_bytes(a, segs[i], 4);
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO_OP);
	} else if (v == 1) {
		aml_byte(a, AML_ONE_OP);
	} else if (v <= 0xFF) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_byte(a, (uint8_t)v);
	} else if (v <= 0xFFFF) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_word(a, (uint16_t)v);
	} else if (v <= 0xFFFFFFFFu) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_dword(a, (uint32_t)v);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_qword(a, v);
	}
}

void aml_string(struct aml *a, const char *s)
{
	if (!s) {
		aml_fail(a, -EINVAL);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p > 0x7F) {
			aml_fail(a, -EINVAL);
			return;
		}
	}
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

void aml_name(struct aml *a, const char *name)
{
	aml_byte(a, AML_NAME_OP);
	aml_name_string(a, name);
}

void aml_name_integer(struct aml *a, const char *name, uint64_t v)
{
	aml_name(a, name);
	aml_integer(a, v);
}

void aml_name_string_obj(struct aml *a, const char *name, const char *s)
{
	aml_name(a, name);
	aml_string(a, s);
}

int aml_eisaid(const char *id, uint32_t *out)
{
	if (!id || strlen(id) != 7)
		return -EINVAL;
	uint32_t v = 0;
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return -EINVAL;
		v = (v << 5) | (uint32_t)(id[i] - 0x40);
	}
	for (int i = 3; i < 7; i++) {
		char c = id[i];
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = (uint32_t)(c - '0');
		else if (c >= 'A' && c <= 'F')
			d = (uint32_t)(c - 'A' + 10);
		else
			return -EINVAL;
		v = (v << 4) | d;
	}
	/* v holds the 15-bit vendor code and the 16-bit product number, most
	 * significant first; the encoding stores those bytes in that order. */
	*out = ((v >> 24) & 0xFF) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | ((v << 24) & 0xFF000000u);
	return 0;
}

void aml_name_eisaid(struct aml *a, const char *name, const char *eisaid)
{
	uint32_t v;
	if (aml_eisaid(eisaid, &v) < 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_name(a, name);
	aml_byte(a, AML_DWORD_PREFIX); /* EisaId() always compiles to a DWord */
	aml_dword(a, v);
}

size_t aml_scope_begin(struct aml *a, const char *name)
{
	aml_byte(a, AML_SCOPE_OP);
	size_t mark = a->len;
	aml_name_string(a, name);
	return mark;
}

size_t aml_device_begin(struct aml *a, const char *name)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	size_t mark = a->len;
	aml_name_string(a, name);
	return mark;
}

size_t aml_package_begin(struct aml *a, uint8_t n_elements)
{
	aml_byte(a, AML_PACKAGE_OP);
	size_t mark = a->len;
	aml_byte(a, n_elements);
	return mark;
}

void aml_end(struct aml *a, size_t mark)
{
	if (a->error)
		return;
	if (mark > a->len) {
		aml_fail(a, -EINVAL);
		return;
	}
	size_t body = a->len - mark;
	int n = aml_pkglen_size(body);
	if (n < 0) {
		aml_fail(a, n);
		return;
	}
	uint8_t enc[4];
	if (aml_pkglen_encode((uint32_t)(body + (size_t)n), enc) != n) {
		aml_fail(a, -ERANGE);
		return;
	}
	if (!aml_reserve(a, (size_t)n))
		return;
	memmove(a->data + mark + n, a->data + mark, body);
	memcpy(a->data + mark, enc, (size_t)n);
	a->len += (size_t)n;
}

void aml_operation_region(struct aml *a, const char *name, uint8_t space, uint64_t offset, uint64_t len)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_OPREGION_OP);
	aml_name_string(a, name);
	aml_byte(a, space);
	aml_integer(a, offset);
	aml_integer(a, len);
}

size_t aml_field_begin(struct aml *a, const char *region, uint8_t flags)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_FIELD_OP);
	size_t mark = a->len;
	aml_name_string(a, region);
	aml_byte(a, flags);
	return mark;
}

void aml_field_unit(struct aml *a, const char *name, uint32_t bits)
{
	/* NamedField := NameSeg PkgLength, the PkgLength being the width in bits
	 * (not a package: it does not count its own bytes). Exactly one segment. */
	if (!name || strlen(name) != 4 || strchr(name, '.') || !is_lead_name_char(name[0]) ||
	    !is_name_char(name[1]) || !is_name_char(name[2]) || !is_name_char(name[3]) || bits == 0) {
		aml_fail(a, -EINVAL);
		return;
	}
	uint8_t enc[4];
	int n = aml_pkglen_encode(bits, enc);
	if (n < 0) {
		aml_fail(a, n);
		return;
	}
	aml_bytes(a, name, 4);
	aml_bytes(a, enc, (size_t)n);
}

size_t aml_method_begin(struct aml *a, const char *name, unsigned int n_args, int serialized)
{
	aml_byte(a, AML_METHOD_OP);
	size_t mark = a->len;
	if (n_args > 7)
		aml_fail(a, -EINVAL);
	aml_name_string(a, name);
	aml_byte(a, (uint8_t)((n_args & 7) | (serialized ? 0x08 : 0))); /* SyncLevel 0 */
	return mark;
}

size_t aml_if_begin(struct aml *a)
{
	aml_byte(a, AML_IF_OP);
	return a->len;
}

void aml_local(struct aml *a, unsigned int n)
{
	if (n > 7) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, (uint8_t)(AML_LOCAL0_OP + n));
}

void aml_arg(struct aml *a, unsigned int n)
{
	if (n > 6) {
		aml_fail(a, -EINVAL);
		return;
	}
	aml_byte(a, (uint8_t)(AML_ARG0_OP + n));
}

void aml_null_target(struct aml *a)
{
	aml_byte(a, 0x00); /* NullName */
}

void aml_store(struct aml *a)
{
	aml_byte(a, AML_STORE_OP);
}

void aml_and(struct aml *a)
{
	aml_byte(a, AML_AND_OP);
}

void aml_notify(struct aml *a, const char *object, uint64_t value)
{
	aml_byte(a, AML_NOTIFY_OP);
	aml_name_string(a, object);
	aml_integer(a, value);
}

void aml_buffer(struct aml *a, const void *bytes, size_t n)
{
	aml_byte(a, AML_BUFFER_OP);
	size_t mark = a->len;
	aml_integer(a, n);
	aml_bytes(a, bytes, n);
	aml_end(a, mark);
}

/* Small resource descriptors: byte 0 is (type << 3) | length. */
void aml_res_io(struct aml *r, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	aml_byte(r, (0x08 << 3) | 7);
	aml_byte(r, 0x01); /* decodes 16 address bits */
	aml_word(r, min);
	aml_word(r, max);
	aml_byte(r, align);
	aml_byte(r, len);
}

void aml_res_irq_noflags(struct aml *r, unsigned int irq)
{
	if (irq > 15) {
		aml_fail(r, -EINVAL);
		return;
	}
	aml_byte(r, (0x04 << 3) | 2); /* no information byte: edge, active high */
	aml_word(r, (uint16_t)(1u << irq));
}

/* Large resource descriptors: byte 0 is 0x80 | type, then a 16-bit length. */
void aml_res_memory32_fixed(struct aml *r, int writable, uint32_t base, uint32_t size)
{
	aml_byte(r, 0x80 | 0x06);
	aml_word(r, 9);
	aml_byte(r, writable ? 0x01 : 0x00);
	aml_dword(r, base);
	aml_dword(r, size);
}

void aml_res_interrupt(struct aml *r, uint8_t flags, uint32_t gsi)
{
	aml_byte(r, 0x80 | 0x09);
	aml_word(r, 6);    /* flags, count, one interrupt number */
	aml_byte(r, flags);
	aml_byte(r, 1);
	aml_dword(r, gsi);
}

void aml_resource_template(struct aml *a, const struct aml *body)
{
	if (body->error) {
		aml_fail(a, body->error);
		return;
	}
	struct aml t aml_auto;
	aml_init(&t);
	aml_bytes(&t, body->data, body->len);
	aml_byte(&t, (0x0F << 3) | 1); /* End Tag */
	uint8_t sum = 0;
	for (size_t i = 0; i < t.len; i++)
		sum = (uint8_t)(sum + t.data[i]);
	aml_byte(&t, (uint8_t)(0x100 - sum));
	if (t.error) {
		aml_fail(a, t.error);
		return;
	}
	aml_buffer(a, t.data, t.len);
}
