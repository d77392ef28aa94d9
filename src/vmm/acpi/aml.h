/* A small encoder for ACPI Machine Language (ACPI 6.5, chapter 20), enough
 * for a DSDT that declares devices: package lengths, name strings, integers,
 * strings, Name, Scope, Device, Package and Buffer objects, and ResourceTemplate
 * buffers (chapter 6.4 resource descriptors) closed by an end tag with a
 * checksum.
 *
 * Output goes into a growable byte buffer. Errors are sticky: the first one
 * (-ENOMEM, -EINVAL for a bad name, -ERANGE for a package that is too long)
 * is kept in aml.error and every later call is a no-op, so a builder checks
 * once at the end. Nested objects are opened with *_begin(), which returns a
 * mark, and closed with aml_end(mark), which inserts the package length. */
#ifndef GR_VMM_ACPI_AML_H
#define GR_VMM_ACPI_AML_H

#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *data;
	size_t len, cap;
	int error;      /* 0, or the first negative errno */
};

/* Opcodes and prefixes used here. */
#define AML_ZERO_OP          0x00
#define AML_ONE_OP           0x01
#define AML_NAME_OP          0x08
#define AML_BYTE_PREFIX      0x0A
#define AML_WORD_PREFIX      0x0B
#define AML_DWORD_PREFIX     0x0C
#define AML_STRING_PREFIX    0x0D
#define AML_QWORD_PREFIX     0x0E
#define AML_SCOPE_OP         0x10
#define AML_BUFFER_OP        0x11
#define AML_PACKAGE_OP       0x12
#define AML_DUAL_NAME_PREFIX 0x2E
#define AML_MULTI_NAME_PREFIX 0x2F
#define AML_EXT_OP_PREFIX    0x5B
#define AML_DEVICE_OP        0x82 /* after AML_EXT_OP_PREFIX */
#define AML_METHOD_OP        0x14
#define AML_LOCAL0_OP        0x60 /* Local0..Local7: 0x60..0x67 */
#define AML_ARG0_OP          0x68 /* Arg0..Arg6: 0x68..0x6E */
#define AML_STORE_OP         0x70
#define AML_AND_OP           0x7B
#define AML_NOTIFY_OP        0x86
#define AML_IF_OP            0xA0
#define AML_OPREGION_OP      0x80 /* after AML_EXT_OP_PREFIX */
#define AML_FIELD_OP         0x81 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR        0x5C /* '\' */
#define AML_PARENT_PREFIX    0x5E /* '^' */

/* The largest value a PkgLength can encode (28 bits). */
#define AML_PKGLEN_MAX 0x0FFFFFFFu

/* Resource descriptor flags (ACPI 6.5, 6.4.3.6: Extended Interrupt). */
#define AML_INT_CONSUMER    0x01
#define AML_INT_EDGE        0x02
#define AML_INT_ACTIVE_LOW  0x04
#define AML_INT_SHARED      0x08
#define AML_INT_WAKE        0x10

void aml_init(struct aml *a);
void aml_free(struct aml *a);
static inline void aml_freep(struct aml *a) { aml_free(a); }
#define aml_auto __attribute__((cleanup(aml_freep)))

void aml_byte(struct aml *a, uint8_t v);
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_word(struct aml *a, uint16_t v);   /* little endian */
void aml_dword(struct aml *a, uint32_t v);

/* Encodes a PkgLength whose value (the length of the package including the
 * PkgLength bytes themselves) is total; returns the number of bytes (1..4)
 * written to out, or -ERANGE when total is above AML_PKGLEN_MAX or does not
 * fit in the encoding it needs. */
int aml_pkglen_encode(uint32_t total, uint8_t out[4]);
/* For a package whose contents after the PkgLength are body bytes long:
 * how many bytes the PkgLength takes (1..4), or -ERANGE. */
int aml_pkglen_size(size_t body);
/* Decodes a PkgLength at p (avail bytes readable): the value in *total and
 * the number of bytes it occupies as the result, or -EINVAL. */
int aml_pkglen_decode(const uint8_t *p, size_t avail, uint32_t *total);

/* A NameString: "\_SB_.COM1", "^PARN", "COM1", "_SB" (segments shorter
 * than four characters are padded with '_'), "\" alone is the root. */
void aml_name_string(struct aml *a, const char *path);
/* An Integer with the shortest encoding (ZeroOp, OneOp, Byte/Word/DWord/QWord). */
void aml_integer(struct aml *a, uint64_t v);
/* A String (printable ASCII, NUL terminated). */
void aml_string(struct aml *a, const char *s);

/* Name(name, ...): emits NameOp and the name; the caller then emits the object. */
void aml_name(struct aml *a, const char *name);
void aml_name_integer(struct aml *a, const char *name, uint64_t v);
void aml_name_string_obj(struct aml *a, const char *name, const char *s);
/* Name(name, EisaId("PNP0501")): the compressed EISA ID as an integer. */
void aml_name_eisaid(struct aml *a, const char *name, const char *eisaid);

/* Scope(name) { ... } and Device(name) { ... }: returns the mark for aml_end(). */
size_t aml_scope_begin(struct aml *a, const char *name);
size_t aml_device_begin(struct aml *a, const char *name);
/* Package() { ... } with n_elements elements (0..255), which the caller then
 * emits (integers, say): returns the mark for aml_end(). */
size_t aml_package_begin(struct aml *a, uint8_t n_elements);
/* Closes the package opened at mark, inserting its PkgLength. */
void aml_end(struct aml *a, size_t mark);

/* OperationRegion(name, space, offset, len): space is AML_SPACE_*. */
#define AML_SPACE_SYSTEM_MEMORY 0x00
#define AML_SPACE_SYSTEM_IO     0x01
void aml_operation_region(struct aml *a, const char *name, uint8_t space, uint64_t offset, uint64_t len);
/* Field(region, flags) { units }: returns the mark for aml_end(); then one
 * aml_field_unit() per named field, in order. flags: AML_FIELD_* access type
 * | lock rule | update rule. */
#define AML_FIELD_BYTE_ACC      0x01
#define AML_FIELD_DWORD_ACC     0x03
#define AML_FIELD_LOCK          0x10
#define AML_FIELD_WRITE_AS_ONES  0x20
#define AML_FIELD_WRITE_AS_ZEROS 0x40
size_t aml_field_begin(struct aml *a, const char *region, uint8_t flags);
/* A named field of bits bits (1..AML_PKGLEN_MAX) inside a Field(). */
void aml_field_unit(struct aml *a, const char *name, uint32_t bits);
/* Method(name, n_args, Serialized or NotSerialized) { ... }: n_args 0..7;
 * returns the mark for aml_end(). */
size_t aml_method_begin(struct aml *a, const char *name, unsigned int n_args, int serialized);
/* If (predicate) { ... }: returns the mark for aml_end(); the caller emits
 * the predicate (one TermArg), then the body. */
size_t aml_if_begin(struct aml *a);
/* Operands: LocalN (0..7), ArgN (0..6), and the NullName "no target". */
void aml_local(struct aml *a, unsigned int n);
void aml_arg(struct aml *a, unsigned int n);
void aml_null_target(struct aml *a);
/* Store(src, dst) and And(x, y, target): emit the opcode, then the caller
 * emits the operands (Store: source, destination; And: two operands and a
 * target, aml_null_target() for none). */
void aml_store(struct aml *a);
void aml_and(struct aml *a);
/* Notify(object, value), object a name path like "\_SB_.PWRB". */
void aml_notify(struct aml *a, const char *object, uint64_t value);

/* Buffer() { bytes }. */
void aml_buffer(struct aml *a, const void *bytes, size_t n);

/* Compresses a 7-character EISA ID ("PNP0501": three letters A-Z, four
 * hex digits) into its 32-bit form; -EINVAL when malformed. */
int aml_eisaid(const char *id, uint32_t *out);

/* Resource descriptors, appended to a struct aml that holds the body of a
 * ResourceTemplate; aml_resource_template() closes it. */
/* IO(Decode16, min, max, align, len): small I/O port descriptor. */
void aml_res_io(struct aml *r, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags() { irq }: small IRQ descriptor, irq 0..15. */
void aml_res_irq_noflags(struct aml *r, unsigned int irq);
/* Memory32Fixed(ReadWrite or ReadOnly, base, size). */
void aml_res_memory32_fixed(struct aml *r, int writable, uint32_t base, uint32_t size);
/* Interrupt(flags) { gsi }: extended interrupt descriptor, one interrupt. */
void aml_res_interrupt(struct aml *r, uint8_t flags, uint32_t gsi);
/* Emits Buffer() { body, EndTag, checksum } into a; the checksum byte makes
 * the bytes of the whole template sum to zero. */
void aml_resource_template(struct aml *a, const struct aml *body);

#endif
