/* Unit tests for src/vmm/acpi: the AML encoder, the tables acpi_build writes
 * into guest memory (lengths, revisions, checksums, MADT CPUs, FADT flags,
 * DSDT devices), configuration errors, acpi_dump, and a round trip through
 * `iasl -d` (Debian's acpica-tools; skipped when it is not installed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include "vmm/acpi/acpi.h"
#include "vmm/acpi/aml.h"
#include "vmm/layout.h"

#ifndef IASL
#define IASL "/usr/bin/iasl"
#endif

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Name(_S5_, Package(0x02) { 0x05, Zero }) as iasl compiles it: NameOp, the
 * name, PackageOp, PkgLength 5, 2 elements, BytePrefix 5, ZeroOp. */
static const uint8_t s5_aml[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0A, 0x05, 0x00 };

struct machine {
	struct guest_mem gm;
	struct acpi_mmio_device virtio[ACPI_MAX_VIRTIO_DEVICES + 1];
	struct acpi_config cfg;
	uint64_t rsdp;
};

static void machine_config(struct machine *m, unsigned int cpus, int serial, size_t n_virtio)
{
	for (size_t i = 0; i < n_virtio && i < ACPI_MAX_VIRTIO_DEVICES + 1; i++) {
		m->virtio[i].base = LAYOUT_VIRTIO_MMIO_BASE + i * LAYOUT_VIRTIO_MMIO_SIZE;
		m->virtio[i].size = LAYOUT_VIRTIO_MMIO_SIZE;
		m->virtio[i].gsi = LAYOUT_VIRTIO_IRQ_BASE + (uint32_t)i;
	}
	m->cfg = (struct acpi_config){ .n_cpus = cpus, .virtio = m->virtio, .n_virtio = n_virtio, .serial = serial };
}

static void machine_build(struct machine *m, unsigned int cpus, int serial, size_t n_virtio)
{
	struct gr_error err = { 0 };
	assert_int_equal(gm_create(&m->gm, 16 << 20, &err), 0);
	machine_config(m, cpus, serial, n_virtio);
	int r = acpi_build(&m->gm, &m->cfg, &m->rsdp, &err);
	if (r != 0)
		print_error("acpi_build: %s\n", err.msg);
	assert_int_equal(r, 0);
}

/* A table in guest memory: checks it lies in the ACPI area, is 8-byte
 * aligned, has the signature, and its checksum is right. */
static const uint8_t *table_at(struct machine *m, uint64_t gpa, const char *sig, uint8_t revision)
{
	assert_true(gpa >= LAYOUT_ACPI_START && gpa < LAYOUT_ACPI_END);
	assert_int_equal(gpa % 8, 0);
	const uint8_t *t = gm_ptr(&m->gm, gpa, 36);
	assert_non_null(t);
	assert_memory_equal(t, sig, 4);
	uint32_t len = rd32(t + 4);
	assert_true(len >= 36);
	assert_true(gpa + len <= LAYOUT_ACPI_END);
	t = gm_ptr(&m->gm, gpa, len);
	assert_non_null(t);
	assert_int_equal(t[8], revision);
	assert_int_equal(acpi_checksum(t, len), 0);
	assert_memory_equal(t + 10, "GUREUM", 6);
	return t;
}

struct tables {
	const uint8_t *rsdp, *xsdt, *fadt, *madt, *dsdt;
	uint64_t fadt_at, madt_at, dsdt_at;
};

static void find_tables(struct machine *m, struct tables *tb)
{
	assert_int_equal(m->rsdp, LAYOUT_ACPI_START);
	assert_int_equal(m->rsdp % 16, 0);
	tb->rsdp = gm_ptr(&m->gm, m->rsdp, ACPI_RSDP_LEN);
	assert_non_null(tb->rsdp);
	assert_memory_equal(tb->rsdp, "RSD PTR ", 8);
	assert_int_equal(tb->rsdp[15], 2);                       /* revision 2 */
	assert_int_equal(acpi_checksum(tb->rsdp, 20), 0);        /* ACPI 1.0 checksum */
	assert_int_equal(rd32(tb->rsdp + 20), ACPI_RSDP_LEN);
	assert_int_equal(acpi_checksum(tb->rsdp, ACPI_RSDP_LEN), 0); /* extended checksum */
	tb->xsdt = table_at(m, rd64(tb->rsdp + 24), "XSDT", 1);
	uint32_t xlen = rd32(tb->xsdt + 4);
	assert_int_equal(xlen, 36 + 2 * 8);
	tb->fadt = tb->madt = NULL;
	for (uint32_t off = 36; off < xlen; off += 8) {
		uint64_t gpa = rd64(tb->xsdt + off);
		const uint8_t *t = gm_ptr(&m->gm, gpa, 4);
		assert_non_null(t);
		if (memcmp(t, "FACP", 4) == 0) {
			tb->fadt = table_at(m, gpa, "FACP", ACPI_FADT_REVISION);
			tb->fadt_at = gpa;
		} else if (memcmp(t, "APIC", 4) == 0) {
			tb->madt = table_at(m, gpa, "APIC", ACPI_MADT_REVISION);
			tb->madt_at = gpa;
		}
	}
	assert_non_null(tb->fadt);   /* the XSDT lists FACP ... */
	assert_non_null(tb->madt);   /* ... and APIC */
	assert_int_equal(rd32(tb->fadt + 4), ACPI_FADT_LEN);
	tb->dsdt_at = rd64(tb->fadt + ACPI_FADT_OFF_X_DSDT);
	tb->dsdt = table_at(m, tb->dsdt_at, "DSDT", ACPI_DSDT_REVISION);
}

/* ---- AML encoder ---- */

static void test_aml_pkglen(void **state)
{
	(void)state;
	uint8_t b[4];
	uint32_t v;
	assert_int_equal(aml_pkglen_encode(0, b), 1);
	assert_int_equal(aml_pkglen_encode(63, b), 1);
	assert_int_equal(b[0], 63);
	assert_int_equal(aml_pkglen_encode(64, b), 2);
	assert_int_equal(b[0], 0x40);          /* one byte follows, low nibble 0 */
	assert_int_equal(b[1], 0x04);
	assert_int_equal(aml_pkglen_encode(0xFFF, b), 2);
	assert_int_equal(aml_pkglen_encode(0x1000, b), 3);
	assert_int_equal(b[0], 0x80);
	assert_int_equal(aml_pkglen_encode(0xFFFFF, b), 3);
	assert_int_equal(aml_pkglen_encode(0x100000, b), 4);
	assert_int_equal(aml_pkglen_encode(AML_PKGLEN_MAX, b), 4);
	assert_int_equal(aml_pkglen_decode(b, 4, &v), 4);
	assert_int_equal(v, AML_PKGLEN_MAX);
	assert_int_equal(aml_pkglen_encode(AML_PKGLEN_MAX + 1, b), -ERANGE);
	uint32_t samples[] = { 5, 63, 64, 300, 0xFFF, 0x1000, 0x12345, 0xFFFFF, 0x100000, 0x1234567 };
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		int n = aml_pkglen_encode(samples[i], b);
		assert_true(n > 0);
		assert_int_equal(aml_pkglen_decode(b, (size_t)n, &v), n);
		assert_int_equal(v, samples[i]);
	}
	/* body sizes at the edges: 62 body + 1 = 63 fits one byte, 63 does not */
	assert_int_equal(aml_pkglen_size(62), 1);
	assert_int_equal(aml_pkglen_size(63), 2);
	assert_int_equal(aml_pkglen_size(0xFFD), 2);
	assert_int_equal(aml_pkglen_size(0xFFE), 3);
	assert_int_equal(aml_pkglen_size(AML_PKGLEN_MAX - 4), 4);
	assert_int_equal(aml_pkglen_size(AML_PKGLEN_MAX - 3), -ERANGE);
}

static void test_aml_names_and_integers(void **state)
{
	(void)state;
	struct aml a aml_auto;
	aml_init(&a);
	aml_name_string(&a, "\\_SB_");
	aml_name_string(&a, "_SB");                /* padded */
	aml_name_string(&a, "\\_SB_.COM1");        /* dual */
	aml_name_string(&a, "A.B.C");              /* multi */
	aml_name_string(&a, "^^PARN");
	aml_name_string(&a, "\\");                 /* root alone: NullName */
	static const uint8_t want[] = {
		0x5C, '_', 'S', 'B', '_',
		'_', 'S', 'B', '_',
		0x5C, 0x2E, '_', 'S', 'B', '_', 'C', 'O', 'M', '1',
		0x2F, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_',
		0x5E, 0x5E, 'P', 'A', 'R', 'N',
		0x5C, 0x00,
	};
	assert_int_equal(a.error, 0);
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.data, want, sizeof(want));

	struct aml i aml_auto;
	aml_init(&i);
	aml_integer(&i, 0);
	aml_integer(&i, 1);
	aml_integer(&i, 0xAB);
	aml_integer(&i, 0x1234);
	aml_integer(&i, 0xD0000000);
	aml_integer(&i, 0x100000000ULL);
	static const uint8_t iwant[] = {
		0x00, 0x01, 0x0A, 0xAB, 0x0B, 0x34, 0x12, 0x0C, 0x00, 0x00, 0x00, 0xD0,
		0x0E, 0, 0, 0, 0, 1, 0, 0, 0,
	};
	assert_int_equal(i.len, sizeof(iwant));
	assert_memory_equal(i.data, iwant, sizeof(iwant));

	uint32_t id;
	assert_int_equal(aml_eisaid("PNP0501", &id), 0);
	assert_int_equal(id, 0x0105D041);
	assert_int_equal(aml_eisaid("PNP0A03", &id), 0);
	assert_int_equal(id, 0x030AD041);
	assert_int_equal(aml_eisaid("pnp0501", &id), -EINVAL);
	assert_int_equal(aml_eisaid("PNP05", &id), -EINVAL);

	/* Bad names are sticky errors. */
	struct aml bad aml_auto;
	aml_init(&bad);
	aml_name_string(&bad, "TOOLONG");
	assert_int_equal(bad.error, -EINVAL);
	aml_integer(&bad, 5);
	assert_int_equal(bad.len, 0);
	struct aml bad2 aml_auto;
	aml_init(&bad2);
	aml_name_string(&bad2, "1ABC");            /* digits may not lead */
	assert_int_equal(bad2.error, -EINVAL);
	struct aml bad3 aml_auto;
	aml_init(&bad3);
	aml_name_string(&bad3, "AB..CD");
	assert_int_equal(bad3.error, -EINVAL);
}

static void test_aml_device_and_template(void **state)
{
	(void)state;
	struct aml a aml_auto;
	aml_init(&a);
	size_t dev = aml_device_begin(&a, "DEV0");
	aml_name_string_obj(&a, "_HID", "LNRO0005");
	struct aml r aml_auto;
	aml_init(&r);
	aml_res_memory32_fixed(&r, 1, 0xD0000000, 0x1000);
	aml_res_interrupt(&r, AML_INT_CONSUMER | AML_INT_EDGE, 5);
	aml_name(&a, "_CRS");
	aml_resource_template(&a, &r);
	/* enough names to push the device past 63 bytes: a 2-byte PkgLength */
	for (int k = 0; k < 8; k++)
		aml_name_integer(&a, "_ADR", 0x12345678);
	aml_end(&a, dev);
	assert_int_equal(a.error, 0);
	assert_int_equal(a.data[0], 0x5B);
	assert_int_equal(a.data[1], 0x82);
	uint32_t total;
	int n = aml_pkglen_decode(a.data + 2, a.len - 2, &total);
	assert_int_equal(n, 2);
	assert_int_equal(total, a.len - 2);
	assert_memory_equal(a.data + 2 + n, "DEV0", 4);
	/* the template: Buffer, PkgLength, size, descriptors, end tag, checksum */
	const uint8_t *crs = memmem(a.data, a.len, "_CRS", 4);
	assert_non_null(crs);
	assert_int_equal(crs[4], 0x11);
	assert_int_equal(crs[5], 1 + 2 + 12 + 9 + 2);       /* PkgLength: itself, 0x0A nn, body */
	assert_int_equal(crs[6], 0x0A);
	assert_int_equal(crs[7], 12 + 9 + 2);
	const uint8_t *t = crs + 8;
	static const uint8_t want[] = {
		0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xD0, 0x00, 0x10, 0x00, 0x00,
		0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00,
		0x79,
	};
	assert_memory_equal(t, want, sizeof(want));
	uint8_t sum = 0;
	for (size_t k = 0; k < 12 + 9 + 2; k++)
		sum = (uint8_t)(sum + t[k]);
	assert_int_equal(sum, 0);

	struct aml s aml_auto;
	aml_init(&s);
	aml_res_io(&s, 0x3F8, 0x3F8, 1, 8);
	aml_res_irq_noflags(&s, 4);
	static const uint8_t swant[] = { 0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00 };
	assert_int_equal(s.len, sizeof(swant));
	assert_memory_equal(s.data, swant, sizeof(swant));
	aml_res_irq_noflags(&s, 16);
	assert_int_equal(s.error, -EINVAL);

	/* Package() { 5, 0 } and one long enough for a 2-byte PkgLength */
	struct aml p aml_auto;
	aml_init(&p);
	aml_name(&p, "_S5");
	size_t pkg = aml_package_begin(&p, 2);
	aml_integer(&p, 5);
	aml_integer(&p, 0);
	aml_end(&p, pkg);
	assert_int_equal(p.error, 0);
	assert_int_equal(p.len, sizeof(s5_aml));
	assert_memory_equal(p.data, s5_aml, sizeof(s5_aml));
	struct aml q aml_auto;
	aml_init(&q);
	pkg = aml_package_begin(&q, 20);
	for (int k = 0; k < 20; k++)
		aml_integer(&q, 0x12345678);
	aml_end(&q, pkg);
	assert_int_equal(q.error, 0);
	assert_int_equal(q.data[0], 0x12);
	uint32_t ptotal;
	assert_int_equal(aml_pkglen_decode(q.data + 1, q.len - 1, &ptotal), 2);
	assert_int_equal(ptotal, q.len - 1);
	assert_int_equal(q.data[3], 20);
}

/* ---- tables ---- */

static void test_tables_basic(void **state)
{
	(void)state;
	struct machine m;
	machine_build(&m, 2, 1, 2);
	struct tables tb;
	find_tables(&m, &tb);
	/* FADT: hardware-reduced, revision 6.5, X_DSDT to the DSDT, 32-bit DSDT 0 */
	uint32_t flags = rd32(tb.fadt + ACPI_FADT_OFF_FLAGS);
	assert_true(flags & ACPI_FADT_HW_REDUCED_ACPI);
	assert_int_equal(tb.fadt[131], ACPI_FADT_MINOR_REVISION);
	assert_int_equal(rd32(tb.fadt + 40), 0);
	assert_int_equal(rd32(tb.fadt + 36), 0);          /* no FACS */
	assert_memory_equal(gm_ptr(&m.gm, tb.dsdt_at, 4), "DSDT", 4);
	/* reset register: SystemIO, 8 bits, byte access, port 0x64, value 0xFE */
	static const uint8_t reset_gas[] = { 1, 8, 0, 1, 0x64, 0, 0, 0, 0, 0, 0, 0 };
	assert_memory_equal(tb.fadt + ACPI_FADT_OFF_RESET_REG, reset_gas, sizeof(reset_gas));
	assert_int_equal(tb.fadt[ACPI_FADT_OFF_RESET_VALUE], 0xFE);
	/* sleep control and status registers (FADT offsets 244 and 256, GAS of 12 bytes):
	 * SystemIO, 8 bits wide, offset 0, byte access, the ports of layout.h */
	assert_int_equal(ACPI_FADT_OFF_SLEEP_CONTROL, 244);
	assert_int_equal(ACPI_FADT_OFF_SLEEP_STATUS, 256);
	const uint8_t *gas[] = { tb.fadt + ACPI_FADT_OFF_SLEEP_CONTROL, tb.fadt + ACPI_FADT_OFF_SLEEP_STATUS };
	const uint64_t port[] = { LAYOUT_ACPI_SLEEP_CONTROL_PORT, LAYOUT_ACPI_SLEEP_STATUS_PORT };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(gas[i][0], 1);       /* address space: system I/O */
		assert_int_equal(gas[i][1], 8);       /* register bit width */
		assert_int_equal(gas[i][2], 0);       /* bit offset */
		assert_int_equal(gas[i][3], 1);       /* access size: byte */
		assert_int_equal(rd64(gas[i] + 4), port[i]);
	}
	assert_int_equal(LAYOUT_ACPI_SLEEP_CONTROL_PORT, 0x600);
	assert_int_equal(LAYOUT_ACPI_SLEEP_STATUS_PORT, 0x601);
	/* the hypervisor ID right after them still */
	assert_memory_equal(tb.fadt + 268, "GUREUMVM", 8);
	/* \_S5_ in the root scope, after \_SB_ (dsdt_devices checks where) */
	uint32_t dlen = rd32(tb.dsdt + 4);
	assert_memory_equal(tb.dsdt + dlen - sizeof(s5_aml), s5_aml, sizeof(s5_aml));
	/* tables do not overlap each other or the RSDP */
	uint64_t at[] = { m.rsdp, tb.dsdt_at, tb.fadt_at, tb.madt_at, rd64(tb.rsdp + 24) };
	uint64_t len[] = { ACPI_RSDP_LEN, rd32(tb.dsdt + 4), ACPI_FADT_LEN, rd32(tb.madt + 4), rd32(tb.xsdt + 4) };
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < i; j++)
			assert_true(at[i] + len[i] <= at[j] || at[j] + len[j] <= at[i]);
	gm_destroy(&m.gm);
}

static void check_madt(unsigned int cpus)
{
	struct machine m;
	machine_build(&m, cpus, 0, 0);
	struct tables tb;
	find_tables(&m, &tb);
	uint32_t len = rd32(tb.madt + 4);
	assert_int_equal(len, 44 + cpus * 8 + 12 + 10);
	assert_int_equal(rd32(tb.madt + 36), LAYOUT_LAPIC_BASE);
	unsigned int lapics = 0, ioapics = 0, overrides = 0;
	uint32_t off = 44;
	while (off < len) {
		const uint8_t *e = tb.madt + off;
		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], lapics);          /* processor UID */
			assert_int_equal(e[3], lapics);          /* APIC ID = index */
			assert_int_equal(rd32(e + 4) & 1, 1);    /* enabled */
			lapics++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(rd32(e + 4), LAYOUT_IOAPIC_BASE);
			assert_int_equal(rd32(e + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[3], 0);
			assert_int_equal(rd32(e + 4), 2);
			overrides++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(off, len);
	assert_int_equal(lapics, cpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(overrides, 1);
	gm_destroy(&m.gm);
}

static void test_madt_1(void **state) { (void)state; check_madt(1); }
static void test_madt_2(void **state) { (void)state; check_madt(2); }
static void test_madt_255(void **state) { (void)state; check_madt(255); }

/* Walks the DSDT's AML: Scope(\_SB_), then Device()s back to back inside it;
 * after the scope, exactly \_S5_ ends the table. Returns the devices' names
 * ("COM1VR00..."). */
static void dsdt_devices(const uint8_t *dsdt, char *names, size_t max)
{
	uint32_t len = rd32(dsdt + 4);
	const uint8_t *p = dsdt + 36, *end = dsdt + len;
	assert_int_equal(p[0], 0x10);
	uint32_t total;
	int n = aml_pkglen_decode(p + 1, (size_t)(end - p - 1), &total);
	assert_true(n > 0);
	assert_int_equal(total, (uint32_t)(end - p - 1 - sizeof(s5_aml)));
	assert_memory_equal(end - sizeof(s5_aml), s5_aml, sizeof(s5_aml));
	end -= sizeof(s5_aml);
	p += 1 + n;
	assert_memory_equal(p, "\\_SB_", 5);
	p += 5;
	names[0] = 0;
	while (p < end) {
		assert_int_equal(p[0], 0x5B);
		assert_int_equal(p[1], 0x82);
		n = aml_pkglen_decode(p + 2, (size_t)(end - p - 2), &total);
		assert_true(n > 0);
		assert_true(p + 2 + total <= end);
		assert_true(strlen(names) + 4 < max);
		strncat(names, (const char *)p + 2 + n, 4);
		p += 2 + total;
	}
	assert_true(p == end);
}

/* The _CRS buffer inside the named device. */
static const uint8_t *device_crs(const uint8_t *dsdt, const char *dev, size_t *tlen)
{
	uint32_t len = rd32(dsdt + 4);
	const uint8_t *d = memmem(dsdt, len, dev, 4);
	assert_non_null(d);
	const uint8_t *crs = memmem(d, (size_t)(dsdt + len - d), "_CRS", 4);
	assert_non_null(crs);
	assert_int_equal(crs[4], 0x11);
	assert_true(crs[5] < 0x40);          /* small templates: one-byte PkgLength */
	assert_int_equal(crs[6], 0x0A);
	*tlen = crs[7];
	const uint8_t *t = crs + 8;
	assert_int_equal(t[*tlen - 2], 0x79);
	uint8_t sum = 0;
	for (size_t k = 0; k < *tlen; k++)
		sum = (uint8_t)(sum + t[k]);
	assert_int_equal(sum, 0);
	return t;
}

static void test_dsdt_devices(void **state)
{
	(void)state;
	struct machine m;
	machine_build(&m, 4, 1, 3);
	struct tables tb;
	find_tables(&m, &tb);
	char names[128];
	dsdt_devices(tb.dsdt, names, sizeof(names));
	assert_string_equal(names, "COM1VR00VR01VR02");
	uint32_t len = rd32(tb.dsdt + 4);
	static const uint8_t com1_hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x05, 0x01 };
	assert_non_null(memmem(tb.dsdt, len, com1_hid, sizeof(com1_hid)));
	size_t tl;
	const uint8_t *t = device_crs(tb.dsdt, "COM1", &tl);
	static const uint8_t com1_crs[] = { 0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79 };
	assert_int_equal(tl, sizeof(com1_crs) + 1);
	assert_memory_equal(t, com1_crs, sizeof(com1_crs));
	for (unsigned int i = 0; i < 3; i++) {
		char dev[5];
		snprintf(dev, sizeof(dev), "VR%02X", i);
		const uint8_t *d = memmem(tb.dsdt, len, dev, 4);
		static const uint8_t hid[] = "\x08_HID\x0DLNRO0005";
		assert_memory_equal(d + 4, hid, sizeof(hid)); /* includes the string's NUL */
		/* _UID i: ZeroOp, OneOp, BytePrefix 2 */
		const uint8_t *uid = memmem(d, (size_t)(tb.dsdt + len - d), "_UID", 4);
		if (i < 2)
			assert_int_equal(uid[4], i);
		else
			assert_true(uid[4] == 0x0A && uid[5] == i);
		t = device_crs(tb.dsdt, dev, &tl);
		assert_int_equal(tl, 12 + 9 + 2);
		assert_int_equal(t[0], 0x86);
		assert_int_equal(rd32(t + 4), LAYOUT_VIRTIO_MMIO_BASE + i * LAYOUT_VIRTIO_MMIO_SIZE);
		assert_int_equal(rd32(t + 8), LAYOUT_VIRTIO_MMIO_SIZE);
		assert_int_equal(t[12], 0x89);
		assert_int_equal(t[15], 0x03);     /* consumer, edge, active high, exclusive */
		assert_int_equal(t[16], 1);
		assert_int_equal(rd32(t + 17), LAYOUT_VIRTIO_IRQ_BASE + i);
	}
	gm_destroy(&m.gm);

	/* without serial or devices: an empty \_SB_ scope */
	machine_build(&m, 1, 0, 0);
	find_tables(&m, &tb);
	dsdt_devices(tb.dsdt, names, sizeof(names));
	assert_string_equal(names, "");
	assert_null(memmem(tb.dsdt, rd32(tb.dsdt + 4), "PNP", 3));
	gm_destroy(&m.gm);

	/* the most devices there can be */
	machine_build(&m, 8, 0, ACPI_MAX_VIRTIO_DEVICES);
	find_tables(&m, &tb);
	dsdt_devices(tb.dsdt, names, sizeof(names));
	assert_int_equal(strlen(names), 4 * ACPI_MAX_VIRTIO_DEVICES);
	gm_destroy(&m.gm);
}

static void expect_error(struct machine *m, int code, const char *needle)
{
	struct gr_error err = { 0 };
	uint64_t rsdp = 0;
	int r = acpi_build(&m->gm, &m->cfg, &rsdp, &err);
	assert_int_equal(r, -code);
	if (!strstr(err.msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
}

static void test_bad_configs(void **state)
{
	(void)state;
	struct machine m;
	struct gr_error err = { 0 };
	assert_int_equal(gm_create(&m.gm, 16 << 20, &err), 0);

	machine_config(&m, 0, 1, 0);
	expect_error(&m, EINVAL, "0 vCPUs");
	machine_config(&m, 256, 1, 0);
	expect_error(&m, EINVAL, "256 vCPUs requested; the MADT describes 1 to 255");
	machine_config(&m, 2, 0, ACPI_MAX_VIRTIO_DEVICES + 1);
	expect_error(&m, E2BIG, "at most 19");
	machine_config(&m, 2, 0, 2);
	m.virtio[1].gsi = 24;
	expect_error(&m, ERANGE, "GSI 24 is beyond");
	machine_config(&m, 2, 0, 2);
	m.virtio[1].gsi = m.virtio[0].gsi;
	expect_error(&m, EBUSY, "share GSI 5");
	machine_config(&m, 2, 1, 1);
	m.virtio[0].gsi = 4;
	expect_error(&m, EBUSY, "COM1");
	machine_config(&m, 2, 0, 1);
	m.virtio[0].size = 0;
	expect_error(&m, EINVAL, "window size");
	machine_config(&m, 2, 0, 1);
	m.virtio[0].base = 0x100000000ULL;
	expect_error(&m, ERANGE, "below 4 GiB");
	machine_config(&m, 2, 0, 2);
	m.virtio[1].base = m.virtio[0].base + 0x800;
	expect_error(&m, EBUSY, "overlap");
	machine_config(&m, 2, 0, 1);
	m.cfg.virtio = NULL;
	expect_error(&m, EINVAL, "none given");
	assert_int_equal(acpi_build(&m.gm, NULL, NULL, &err), -EINVAL);

	/* tables that do not fit the window */
	machine_config(&m, 255, 1, ACPI_MAX_VIRTIO_DEVICES);
	uint64_t rsdp;
	int r = acpi_build_at(&m.gm, &m.cfg, LAYOUT_ACPI_START, LAYOUT_ACPI_START + 1024, &rsdp, &err);
	assert_int_equal(r, -ENOSPC);
	assert_non_null(strstr(err.msg, "do not fit"));
	/* a window that is not RAM */
	r = acpi_build_at(&m.gm, &m.cfg, (16 << 20) - 0x1000, (16 << 20) + 0x1000, &rsdp, &err);
	assert_int_equal(r, -EFAULT);
	assert_non_null(strstr(err.msg, "not guest RAM"));
	gm_destroy(&m.gm);
}

/* ---- acpi_dump and iasl ---- */

struct tmpdir {
	char path[64];
};

static void tmpdir_remove(struct tmpdir *t)
{
	if (!t->path[0])
		return;
	DIR *d = opendir(t->path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[512];
			snprintf(p, sizeof(p), "%s/%s", t->path, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(t->path);
}

static void tmpdir_make(struct tmpdir *t)
{
	snprintf(t->path, sizeof(t->path), "/tmp/gureum-acpi-XXXXXX");
	assert_non_null(mkdtemp(t->path));
}

static size_t file_size(const char *dir, const char *name)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (stat(p, &st) < 0)
		return 0;
	return (size_t)st.st_size;
}

static char *file_read(const char *dir, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&buf, &n);
	char chunk[4096];
	size_t k;
	while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, k, m);
	fclose(f);
	fclose(m);
	return buf;
}

static void test_dump(void **state)
{
	(void)state;
	struct machine m;
	machine_build(&m, 4, 1, 3);
	struct tables tb;
	find_tables(&m, &tb);
	struct tmpdir td;
	tmpdir_make(&td);
	struct gr_error err = { 0 };
	int r = acpi_dump(&m.gm, m.rsdp, td.path, &err);
	if (r)
		print_error("acpi_dump: %s\n", err.msg);
	assert_int_equal(r, 0);
	assert_int_equal(file_size(td.path, "RSDP.dat"), ACPI_RSDP_LEN);
	assert_int_equal(file_size(td.path, "XSDT.dat"), rd32(tb.xsdt + 4));
	assert_int_equal(file_size(td.path, "FACP.dat"), ACPI_FADT_LEN);
	assert_int_equal(file_size(td.path, "APIC.dat"), rd32(tb.madt + 4));
	assert_int_equal(file_size(td.path, "DSDT.dat"), rd32(tb.dsdt + 4));
	char *dsdt = file_read(td.path, "DSDT.dat");
	assert_non_null(dsdt);
	assert_memory_equal(dsdt, tb.dsdt, rd32(tb.dsdt + 4));
	free(dsdt);

	/* errors: no RSDP there, a directory that does not exist */
	assert_int_equal(acpi_dump(&m.gm, m.rsdp + 16, td.path, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no RSDP signature"));
	assert_int_equal(acpi_dump(&m.gm, m.rsdp, "/nonexistent/gureum-acpi", &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/gureum-acpi"));
	tmpdir_remove(&td);
	gm_destroy(&m.gm);
}

/* Runs argv (no shell) in dir, with stdout and stderr into *out. */
static int run_capture(const char *dir, char *const argv[], char **out)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		if (chdir(dir) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	char *buf = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&buf, &n);
	char chunk[4096];
	ssize_t k;
	while ((k = read(pfd[0], chunk, sizeof(chunk))) > 0 || (k < 0 && errno == EINTR))
		if (k > 0)
			fwrite(chunk, 1, (size_t)k, m);
	close(pfd[0]);
	fclose(m);
	*out = buf;
	int status;
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Lines of iasl's output that report a problem. */
static int problem_lines(const char *out, const char *what)
{
	int bad = 0;
	const char *line = out;
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[1024];
		snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) - 1 ? len : sizeof(buf) - 1), line);
		if (strstr(buf, "Error") || strstr(buf, "Warning") || strstr(buf, "Incorrect checksum") ||
		    strstr(buf, "Invalid")) {
			/* the compiler's summary line "0 Errors, 0 Warnings" is fine */
			if (!(strstr(buf, " 0 Errors,") && strstr(buf, " 0 Warnings"))) {
				print_error("iasl %s: %s\n", what, buf);
				bad++;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	return bad;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* ---- the power button and its Generic Event Device ---- */

/* iasl -oa (no name optimisation) of:
 *   Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, Zero) }
 *   Device (GED) { Name (_HID, "ACPI0013") Name (_UID, Zero)
 *     Name (_CRS, ResourceTemplate () { Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 3 } })
 *     OperationRegion (GDST, SystemMemory, 0xD0100000, One)
 *     Field (GDST, ByteAcc, NoLock, WriteAsZeros) { GDAT, 8 }
 *     Method (_EVT, 1, Serialized) { Local0 = GDAT  If ((Local0 & One)) { Notify (\_SB.PWRB, 0x80) } } } */
static const uint8_t ged_aml[] = {
	0x5b, 0x82, 0x15, 'P', 'W', 'R', 'B', 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x0c,
	0x08, '_', 'U', 'I', 'D', 0x00,
	0x5b, 0x82, 0x49, 0x06, 'G', 'E', 'D', '_', 0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3',
	0x00, 0x08, '_', 'U', 'I', 'D', 0x00, 0x08, '_', 'C', 'R', 'S', 0x11, 0x0e, 0x0a, 0x0b, 0x89, 0x06, 0x00, 0x03,
	0x01, 0x03, 0x00, 0x00, 0x00, 0x79, 0xf1,   /* iasl leaves the end tag's checksum 0 ("none"); ours is computed */
	0x5b, 0x80, 'G', 'D', 'S', 'T', 0x00, 0x0c, 0x00, 0x00, 0x10, 0xd0, 0x01,
	0x5b, 0x81, 0x0b, 'G', 'D', 'S', 'T', 0x41, 'G', 'D', 'A', 'T', 0x08,
	0x14, 0x1f, '_', 'E', 'V', 'T', 0x09, 0x70, 'G', 'D', 'A', 'T', 0x60,
	0xa0, 0x12, 0x7b, 0x60, 0x01, 0x00, 0x86, 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x0a, 0x80,
};

static int contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t k)
{
	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(hay + i, needle, k) == 0)
			return 1;
	return 0;
}

static void test_dsdt_ged(void **state)
{
	(void)state;
	_Static_assert(LAYOUT_GED_BASE == 0xD0100000ULL && LAYOUT_GED_IRQ == 3, "ged_aml encodes these");
	struct machine m;
	struct gr_error err = { 0 };
	assert_int_equal(gm_create(&m.gm, 16 << 20, &err), 0);
	machine_config(&m, 2, 1, 2);
	m.cfg.ged = 1;
	assert_int_equal(acpi_build(&m.gm, &m.cfg, &m.rsdp, &err), 0);
	struct tables tb;
	find_tables(&m, &tb);
	uint32_t len = rd32(tb.dsdt + 4);
	assert_true(contains(tb.dsdt, len, ged_aml, sizeof(ged_aml)));   /* byte for byte what iasl makes */
	assert_true(contains(tb.dsdt, len, s5_aml, sizeof(s5_aml)));
	gm_destroy(&m.gm);

	/* Without it, none of it. */
	machine_build(&m, 1, 1, 0);
	find_tables(&m, &tb);
	assert_false(contains(tb.dsdt, rd32(tb.dsdt + 4), (const uint8_t *)"ACPI0013", 8));
	gm_destroy(&m.gm);

	/* A virtio device on the GED's GSI, or its window over the GED's. */
	assert_int_equal(gm_create(&m.gm, 16 << 20, &err), 0);
	machine_config(&m, 1, 1, 1);
	m.cfg.ged = 1;
	m.virtio[0].gsi = LAYOUT_GED_IRQ;
	assert_int_equal(acpi_build(&m.gm, &m.cfg, &m.rsdp, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "GED"));
	machine_config(&m, 1, 1, 1);
	m.cfg.ged = 1;
	m.virtio[0].base = LAYOUT_GED_BASE;
	assert_int_equal(acpi_build(&m.gm, &m.cfg, &m.rsdp, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "GED"));
	gm_destroy(&m.gm);
}

static void test_aml_method_builders(void **state)
{
	(void)state;
	struct aml a aml_auto;
	aml_init(&a);
	size_t mth = aml_method_begin(&a, "_EVT", 1, 1);
	aml_store(&a);
	aml_arg(&a, 0);
	aml_local(&a, 7);
	size_t cond = aml_if_begin(&a);
	aml_and(&a);
	aml_local(&a, 7);
	aml_integer(&a, 0x100);
	aml_null_target(&a);
	aml_notify(&a, "^PWRB", 2);
	aml_end(&a, cond);
	aml_end(&a, mth);
	assert_int_equal(a.error, 0);
	static const uint8_t want[] = { 0x14, 0x19, '_', 'E', 'V', 'T', 0x09, 0x70, 0x68, 0x67, 0xa0, 0x0f, 0x7b, 0x67,
					0x0b, 0x00, 0x01, 0x00, 0x86, 0x5e, 'P', 'W', 'R', 'B', 0x0a, 0x02 };
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.data, want, sizeof(want));
	/* A field wider than one PkgLength byte encodes its width in two. */
	aml_free(&a);
	aml_init(&a);
	size_t f = aml_field_begin(&a, "REGN", AML_FIELD_DWORD_ACC);
	aml_field_unit(&a, "WIDE", 0x100);
	aml_end(&a, f);
	static const uint8_t want_field[] = { 0x5b, 0x81, 0x0c, 'R', 'E', 'G', 'N', 0x03, 'W', 'I', 'D', 'E', 0x40, 0x10 };
	assert_int_equal(a.error, 0);
	assert_int_equal(a.len, sizeof(want_field));
	assert_memory_equal(a.data, want_field, sizeof(want_field));
	/* Bad operands are sticky errors. */
	aml_free(&a);
	aml_init(&a);
	aml_local(&a, 8);
	assert_int_equal(a.error, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_arg(&a, 7);
	assert_int_equal(a.error, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_field_unit(&a, "GDA", 8);       /* a field name is exactly one 4-character segment */
	assert_int_equal(a.error, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_field_unit(&a, "GD.T", 8);
	assert_int_equal(a.error, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_field_unit(&a, "GDAT", 0);
	assert_int_equal(a.error, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_method_begin(&a, "_EVT", 8, 0);
	assert_int_equal(a.error, -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_operation_region(&a, "gdst", AML_SPACE_SYSTEM_MEMORY, 0, 1);   /* lower case: not a name */
	assert_int_equal(a.error, -EINVAL);
}

static void test_iasl_roundtrip(void **state)
{
	(void)state;
	if (access(IASL, X_OK) != 0) {
		print_message("SKIP: %s not found; install Debian's acpica-tools (scripts/install-deps.sh) "
			      "to decode the ACPI tables with iasl -d\n", IASL);
		skip();
	}
	struct machine m;
	machine_build(&m, 4, 1, 3);
	struct tmpdir td;
	tmpdir_make(&td);
	struct gr_error err = { 0 };
	assert_int_equal(acpi_dump(&m.gm, m.rsdp, td.path, &err), 0);

	/* Not the RSDP: iasl cannot load one from a file (ACPICA's acfileio.c: "Loading
	 * an RSDP is not supported"); test_tables_basic checks it, both checksums included. */
	static const char *const tables[] = { "XSDT", "FACP", "APIC", "DSDT" };
	int problems = 0;
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char dat[16];
		snprintf(dat, sizeof(dat), "%s.dat", tables[i]);
		char *argv[] = { (char *)IASL, (char *)"-d", dat, NULL };
		char *out = NULL;
		int rc = run_capture(td.path, argv, &out);
		if (rc != 0)
			print_error("iasl -d %s exited %d:\n%s\n", dat, rc, out);
		assert_int_equal(rc, 0);
		problems += problem_lines(out, dat);
		free(out);
		char dsl[16];
		snprintf(dsl, sizeof(dsl), "%s.dsl", tables[i]);
		assert_true(file_size(td.path, dsl) > 0);
	}
	assert_int_equal(problems, 0);

	/* What iasl decoded. */
	char *apic = file_read(td.path, "APIC.dsl");
	assert_non_null(apic);
	assert_int_equal(count(apic, "Processor Local APIC"), 4);
	assert_int_equal(count(apic, "I/O APIC"), 1);
	free(apic);
	char *facp = file_read(td.path, "FACP.dsl");
	assert_non_null(facp);
	assert_non_null(strstr(facp, "Hardware Reduced (V5) : 1"));
	assert_non_null(strstr(facp, "Sleep Control Register"));
	assert_non_null(strstr(facp, "Sleep Status Register"));
	assert_non_null(strstr(facp, "0000000000000600"));
	assert_non_null(strstr(facp, "0000000000000601"));
	free(facp);
	char *dsdt = file_read(td.path, "DSDT.dsl");
	assert_non_null(dsdt);
	assert_non_null(strstr(dsdt, "EisaId (\"PNP0501\")"));
	assert_int_equal(count(dsdt, "\"LNRO0005\""), 3);
	assert_int_equal(count(dsdt, "Memory32Fixed (ReadWrite,"), 3);
	assert_int_equal(count(dsdt, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )"), 3);
	assert_non_null(strstr(dsdt, "IRQNoFlags ()"));
	assert_non_null(strstr(dsdt, "Name (_S5, Package (0x02)"));
	free(dsdt);

	/* And the disassembled DSDT compiles back without errors or warnings. */
	char *argv[] = { (char *)IASL, (char *)"-p", (char *)"DSDT-recompiled", (char *)"DSDT.dsl", NULL };
	char *out = NULL;
	int rc = run_capture(td.path, argv, &out);
	if (rc != 0)
		print_error("iasl DSDT.dsl exited %d:\n%s\n", rc, out);
	assert_int_equal(rc, 0);
	assert_int_equal(problem_lines(out, "DSDT.dsl"), 0);
	assert_non_null(strstr(out, "0 Errors, 0 Warnings"));
	free(out);
	/* iasl's AML equals ours but for two things it is free to do: it drops the root
	 * prefix of \_SB_ (the DefinitionBlock is the root scope) and it writes 0 as
	 * the resource templates' end-tag checksums ("checksum ignored"). */
	size_t ours_len = file_size(td.path, "DSDT.dat"), theirs_len = file_size(td.path, "DSDT-recompiled.aml");
	char *ours = file_read(td.path, "DSDT.dat"), *theirs = file_read(td.path, "DSDT-recompiled.aml");
	assert_non_null(ours);
	assert_non_null(theirs);
	assert_int_equal(theirs_len + 1, ours_len);
	const uint8_t *o = (const uint8_t *)ours + 36, *t = (const uint8_t *)theirs + 36;
	uint32_t olen, tlen;
	int on = aml_pkglen_decode(o + 1, ours_len - 37, &olen), tn = aml_pkglen_decode(t + 1, theirs_len - 37, &tlen);
	assert_true(on > 0 && tn > 0);
	assert_memory_equal(o + 1 + on, "\\_SB_", 5);
	assert_memory_equal(t + 1 + tn, "_SB_", 4);
	o += 1 + on + 5;
	t += 1 + tn + 4;
	size_t rest = ours_len - (size_t)(o - (const uint8_t *)ours);
	assert_int_equal(rest, theirs_len - (size_t)(t - (const uint8_t *)theirs));
	for (size_t k = 0; k < rest; k++) {
		if (o[k] == t[k])
			continue;
		if (k > 0 && o[k - 1] == 0x79 && t[k - 1] == 0x79 && t[k] == 0)
			continue;
		fail_msg("DSDT differs from iasl's recompilation at body offset %zu: 0x%02x vs 0x%02x", k, o[k], t[k]);
	}
	free(ours);
	free(theirs);

	tmpdir_remove(&td);
	gm_destroy(&m.gm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aml_pkglen),
		cmocka_unit_test(test_aml_names_and_integers),
		cmocka_unit_test(test_aml_device_and_template),
		cmocka_unit_test(test_tables_basic),
		cmocka_unit_test(test_madt_1),
		cmocka_unit_test(test_madt_2),
		cmocka_unit_test(test_madt_255),
		cmocka_unit_test(test_dsdt_devices),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_dump),
		cmocka_unit_test(test_iasl_roundtrip),
		cmocka_unit_test(test_dsdt_ged),
		cmocka_unit_test(test_aml_method_builders),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
