/* ACPI tables for the guest: see acpi.h. Table layouts from the ACPI 6.5
 * specification, chapter 5.2 (RSDP 5.2.5, XSDT 5.2.8, FADT 5.2.9, MADT
 * 5.2.12); the DSDT is AML from aml.c. FADT offsets checked against ACPICA's
 * struct acpi_table_fadt: V5 ends at 268 with SLEEP_CONTROL_REG at 244 and
 * SLEEP_STATUS_REG at 256, V6 adds the hypervisor ID at 268 (276 bytes).
 *
 * Memory: the RSDP at the (16-byte aligned) start of the window, so the
 * legacy RSDP scan of 0xE0000..0xFFFFF finds it; then DSDT, FADT, MADT and
 * XSDT, each 8-byte aligned. The machine is hardware-reduced (no PM1, GPE or
 * SCI; no FACS), like Firecracker's and Cloud Hypervisor's; power-off goes
 * through the FADT's sleep control register and \_S5_. */
#include "vmm/acpi/acpi.h"
#include "vmm/acpi/aml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"

#define OEM_ID        "GUREUM"   /* 6 characters */
#define OEM_TABLE_ID  "GUREUMVM" /* 8 characters */
#define OEM_REVISION  1
#define CREATOR_ID    "GRUM"
#define CREATOR_REVISION 1
#define HYPERVISOR_VENDOR "GUREUMVM" /* FADT Hypervisor Vendor Identity */

/* FADT fixed feature flags (5.2.9, table 5.10). */
#define FADT_F_PWR_BUTTON     (1u << 4)  /* no fixed power button */
#define FADT_F_SLP_BUTTON     (1u << 5)  /* no fixed sleep button */
#define FADT_F_RESET_REG_SUP  (1u << 10)
/* IA-PC boot architecture flags (5.2.9.3). */
#define IAPC_VGA_NOT_PRESENT  (1u << 2)
#define IAPC_MSI_NOT_SUPPORTED (1u << 3)
#define IAPC_PCIE_ASPM_CONTROLS (1u << 4)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

/* FADT field offsets. */
#define FADT_OFF_IAPC_BOOT_ARCH 109
#define FADT_OFF_MINOR_VERSION  131
#define FADT_OFF_X_FIRMWARE_CTRL 132
#define FADT_OFF_HYPERVISOR_ID  268
#define FADT_OFF_FIRMWARE_CTRL  36
#define FADT_OFF_DSDT           40

/* The i8042 reset: writing 0xFE to port 0x64 pulses the CPU reset line. */
#define RESET_PORT  0x64
#define RESET_VALUE 0xFE

/* MADT structure types (5.2.12). */
#define MADT_LOCAL_APIC       0
#define MADT_IO_APIC          1
#define MADT_INT_SRC_OVERRIDE 2
#define MADT_LAPIC_ENABLED    1u

/* acpi_dump refuses tables larger than this (the whole window is 128 KiB). */
#define DUMP_TABLE_MAX (1u << 20)
#define DUMP_MAX_TABLES 64

static void put16(uint8_t *p, uint16_t v) { p[0] = v & 0xFF; p[1] = v >> 8; }
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

uint8_t acpi_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0x100 - sum);
}

/* The common 36-byte header (5.2.6); the checksum is set by sdt_finish. */
static void sdt_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t revision)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = revision;
	t[9] = 0;
	memcpy(t + 10, OEM_ID, 6);
	memcpy(t + 16, OEM_TABLE_ID, 8);
	put32(t + 24, OEM_REVISION);
	memcpy(t + 28, CREATOR_ID, 4);
	put32(t + 32, CREATOR_REVISION);
}

static void sdt_finish(uint8_t *t, size_t len)
{
	t[9] = 0;
	t[9] = acpi_checksum(t, len);
}

/* Generic Address Structure (5.2.3.2). */
static void put_gas(uint8_t *p, uint8_t space, uint8_t bit_width, uint8_t access_size, uint64_t addr)
{
	p[0] = space;
	p[1] = bit_width;
	p[2] = 0;
	p[3] = access_size;
	put64(p + 4, addr);
}

struct placer {
	uint64_t next, end;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Places a table of len bytes; -ENOSPC naming the table when the window is full. */
static int place(struct placer *pl, const char *what, size_t len, uint64_t align, uint64_t *gpa,
		 struct gr_error *err)
{
	uint64_t at = align_up(pl->next, align);
	if (at < pl->next || at > pl->end || len > pl->end - at)
		return gr_error_set(err, ENOSPC,
				    "ACPI tables do not fit: the %s (%zu bytes) would end at 0x%llx, past the end of the "
				    "ACPI area at 0x%llx; use fewer vCPUs or devices",
				    what, len, (unsigned long long)(at + len), (unsigned long long)pl->end);
	*gpa = at;
	pl->next = at + len;
	return 0;
}

static int write_table(struct guest_mem *gm, uint64_t gpa, const void *t, size_t len, const char *what,
		       struct gr_error *err)
{
	if (gm_write(gm, gpa, t, len) < 0)
		return gr_error_set(err, EFAULT, "ACPI: cannot write the %s (%zu bytes) at guest address 0x%llx: not RAM",
				    what, len, (unsigned long long)gpa);
	return 0;
}

static int validate_config(const struct acpi_config *cfg, struct gr_error *err)
{
	if (!cfg)
		return gr_error_set(err, EINVAL, "ACPI: no configuration given");
	if (cfg->n_cpus < 1 || cfg->n_cpus > ACPI_MAX_CPUS)
		return gr_error_set(err, EINVAL,
				    "ACPI: %u vCPUs requested; the MADT describes 1 to %d (xAPIC IDs 0..%d)",
				    cfg->n_cpus, ACPI_MAX_CPUS, ACPI_MAX_CPUS - 1);
	if (cfg->n_virtio > ACPI_MAX_VIRTIO_DEVICES)
		return gr_error_set(err, E2BIG,
				    "ACPI: %zu virtio-mmio devices requested; at most %d fit (one I/O APIC pin each, "
				    "GSI %d..%d)",
				    cfg->n_virtio, ACPI_MAX_VIRTIO_DEVICES, LAYOUT_VIRTIO_IRQ_BASE, ACPI_IOAPIC_PINS - 1);
	if (cfg->n_virtio > 0 && !cfg->virtio)
		return gr_error_set(err, EINVAL, "ACPI: %zu virtio-mmio devices announced but none given",
				    cfg->n_virtio);
	for (size_t i = 0; i < cfg->n_virtio; i++) {
		const struct acpi_mmio_device *d = &cfg->virtio[i];
		if (d->size == 0 || d->size > UINT32_MAX)
			return gr_error_set(err, EINVAL, "ACPI: virtio-mmio device %zu: window size 0x%llx is not in 1..4 GiB",
					    i, (unsigned long long)d->size);
		if (d->base > UINT32_MAX || d->size > (uint64_t)UINT32_MAX + 1 - d->base)
			return gr_error_set(err, ERANGE,
					    "ACPI: virtio-mmio device %zu: window 0x%llx+0x%llx does not lie below 4 GiB "
					    "(Memory32Fixed)",
					    i, (unsigned long long)d->base, (unsigned long long)d->size);
		if (d->gsi >= ACPI_IOAPIC_PINS)
			return gr_error_set(err, ERANGE,
					    "ACPI: virtio-mmio device %zu: GSI %u is beyond the I/O APIC's %d pins (0..%d)",
					    i, d->gsi, ACPI_IOAPIC_PINS, ACPI_IOAPIC_PINS - 1);
		if (cfg->serial && d->gsi == LAYOUT_SERIAL_IRQ)
			return gr_error_set(err, EBUSY, "ACPI: virtio-mmio device %zu: GSI %u is COM1's interrupt",
					    i, d->gsi);
		if (cfg->ged && d->gsi == LAYOUT_GED_IRQ)
			return gr_error_set(err, EBUSY, "ACPI: virtio-mmio device %zu: GSI %u is the GED's interrupt",
					    i, d->gsi);
		if (cfg->ged && d->base < LAYOUT_GED_BASE + LAYOUT_GED_SIZE && LAYOUT_GED_BASE < d->base + d->size)
			return gr_error_set(err, EBUSY, "ACPI: virtio-mmio device %zu: window 0x%llx overlaps the GED's",
					    i, (unsigned long long)d->base);
		for (size_t j = 0; j < i; j++) {
			const struct acpi_mmio_device *o = &cfg->virtio[j];
			if (o->gsi == d->gsi)
				return gr_error_set(err, EBUSY,
						    "ACPI: virtio-mmio devices %zu and %zu share GSI %u; each needs its own",
						    j, i, d->gsi);
			if (d->base < o->base + o->size && o->base < d->base + d->size)
				return gr_error_set(err, EBUSY,
						    "ACPI: virtio-mmio windows of devices %zu (0x%llx) and %zu (0x%llx) overlap",
						    j, (unsigned long long)o->base, i, (unsigned long long)d->base);
		}
	}
	return 0;
}

/* Inside Scope(\_SB): the power button (PNP0C0C) and the Generic Event
 * Device that signals it (ACPI 6.5, 5.6.9), as Cloud Hypervisor's:
 *   Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, Zero) }
 *   Device (GED_) {
 *     Name (_HID, "ACPI0013") Name (_UID, Zero)
 *     Name (_CRS, ResourceTemplate () { Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { GSI } })
 *     OperationRegion (GDST, SystemMemory, LAYOUT_GED_BASE, One)
 *     Field (GDST, ByteAcc, NoLock, WriteAsZeros) { GDAT, 8 }
 *     Method (_EVT, 1, Serialized) {      // Arg0: the GSI that fired
 *       Local0 = GDAT                       // reading clears the pending events
 *       If (Local0 & ACPI_GED_EVENT_POWER_BUTTON) { Notify (\_SB.PWRB, 0x80) }
 *     }
 *   }
 * Notify 0x80 on a power button device is "button pressed" (5.6.6). */
static void build_ged_aml(struct aml *a)
{
	size_t dev = aml_device_begin(a, "PWRB");
	aml_name_eisaid(a, "_HID", "PNP0C0C");
	aml_name_integer(a, "_UID", 0);
	aml_end(a, dev);

	dev = aml_device_begin(a, "GED_");
	aml_name_string_obj(a, "_HID", "ACPI0013");
	aml_name_integer(a, "_UID", 0);
	struct aml r aml_auto;
	aml_init(&r);
	aml_res_interrupt(&r, AML_INT_CONSUMER | AML_INT_EDGE, LAYOUT_GED_IRQ);
	aml_name(a, "_CRS");
	aml_resource_template(a, &r);
	aml_operation_region(a, "GDST", AML_SPACE_SYSTEM_MEMORY, LAYOUT_GED_BASE, 1);
	size_t field = aml_field_begin(a, "GDST", AML_FIELD_BYTE_ACC | AML_FIELD_WRITE_AS_ZEROS);
	aml_field_unit(a, "GDAT", 8);
	aml_end(a, field);
	size_t method = aml_method_begin(a, "_EVT", 1, 1);
	aml_store(a);
	aml_name_string(a, "GDAT");
	aml_local(a, 0);
	size_t cond = aml_if_begin(a);
	aml_and(a);
	aml_local(a, 0);
	aml_integer(a, ACPI_GED_EVENT_POWER_BUTTON);
	aml_null_target(a);
	aml_notify(a, "\\_SB_.PWRB", 0x80);
	aml_end(a, cond);
	aml_end(a, method);
	aml_end(a, dev);
}

/* The DSDT's AML body: Scope(\_SB) with COM1 and the virtio-mmio devices,
 * then \_S5_ (soft off) in the root scope, where the OS looks it up. */
static int build_dsdt_aml(const struct acpi_config *cfg, struct aml *a)
{
	size_t sb = aml_scope_begin(a, "\\_SB_");
	if (cfg->serial) {
		size_t dev = aml_device_begin(a, "COM1");
		aml_name_eisaid(a, "_HID", "PNP0501");
		aml_name_integer(a, "_UID", 0);
		struct aml r aml_auto;
		aml_init(&r);
		aml_res_io(&r, LAYOUT_SERIAL_PORT, LAYOUT_SERIAL_PORT, 0x01, 8);
		aml_res_irq_noflags(&r, LAYOUT_SERIAL_IRQ);
		aml_name(a, "_CRS");
		aml_resource_template(a, &r);
		aml_end(a, dev);
	}
	for (size_t i = 0; i < cfg->n_virtio; i++) {
		const struct acpi_mmio_device *d = &cfg->virtio[i];
		char name[5];
		snprintf(name, sizeof(name), "VR%02X", (unsigned int)i);
		size_t dev = aml_device_begin(a, name);
		aml_name_string_obj(a, "_HID", "LNRO0005");
		aml_name_integer(a, "_UID", i);
		struct aml r aml_auto;
		aml_init(&r);
		aml_res_memory32_fixed(&r, 1, (uint32_t)d->base, (uint32_t)d->size);
		aml_res_interrupt(&r, AML_INT_CONSUMER | AML_INT_EDGE, d->gsi); /* active high, exclusive */
		aml_name(a, "_CRS");
		aml_resource_template(a, &r);
		aml_end(a, dev);
	}
	if (cfg->ged)
		build_ged_aml(a);
	aml_end(a, sb);
	/* Name(_S5_, Package() { SLP_TYPa, SLP_TYPb }): in hardware-reduced mode
	 * only SLP_TYPa matters (it goes to the sleep control register); 0 for
	 * SLP_TYPb, as Cloud Hypervisor does. */
	aml_name(a, "_S5_");
	size_t pkg = aml_package_begin(a, 2);
	aml_integer(a, ACPI_SLP_TYP_S5);
	aml_integer(a, 0);
	aml_end(a, pkg);
	return a->error;
}

int acpi_build_at(struct guest_mem *gm, const struct acpi_config *cfg, uint64_t start, uint64_t end,
		  uint64_t *rsdp_gpa, struct gr_error *err)
{
	int r = validate_config(cfg, err);
	if (r < 0)
		return r;
	if (start % 16 || end < start)
		return gr_error_set(err, EINVAL, "ACPI: bad table area 0x%llx..0x%llx (start must be 16-byte aligned)",
				    (unsigned long long)start, (unsigned long long)end);
	uint8_t *area = gm_ptr(gm, start, end - start);
	if (!area)
		return gr_error_set(err, EFAULT, "ACPI: table area 0x%llx..0x%llx is not guest RAM",
				    (unsigned long long)start, (unsigned long long)end);
	memset(area, 0, end - start); /* no stale tables or RSDP signatures */

	struct placer pl = { .next = start, .end = end };
	uint64_t rsdp_at, dsdt_at, fadt_at, madt_at, xsdt_at;
	if ((r = place(&pl, "RSDP", ACPI_RSDP_LEN, 16, &rsdp_at, err)) < 0)
		return r;

	/* DSDT. */
	struct aml a aml_auto;
	aml_init(&a);
	r = build_dsdt_aml(cfg, &a);
	if (r < 0)
		return gr_error_set(err, -r, "ACPI: cannot encode the DSDT's AML (error %d)", r);
	size_t dsdt_len = ACPI_SDT_HEADER_LEN + a.len;
	if (dsdt_len > UINT32_MAX)
		return gr_error_set(err, E2BIG, "ACPI: DSDT of %zu bytes is too large", dsdt_len);
	gr_autofree uint8_t *dsdt = calloc(1, dsdt_len);
	if (!dsdt)
		return gr_error_set(err, ENOMEM, "ACPI: out of memory for the DSDT (%zu bytes)", dsdt_len);
	sdt_header(dsdt, "DSDT", (uint32_t)dsdt_len, ACPI_DSDT_REVISION);
	memcpy(dsdt + ACPI_SDT_HEADER_LEN, a.data, a.len);
	sdt_finish(dsdt, dsdt_len);
	if ((r = place(&pl, "DSDT", dsdt_len, 8, &dsdt_at, err)) < 0 ||
	    (r = write_table(gm, dsdt_at, dsdt, dsdt_len, "DSDT", err)) < 0)
		return r;

	/* FADT, hardware-reduced. */
	uint8_t fadt[ACPI_FADT_LEN] = { 0 };
	sdt_header(fadt, "FACP", ACPI_FADT_LEN, ACPI_FADT_REVISION);
	put16(fadt + FADT_OFF_IAPC_BOOT_ARCH, IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED |
						       IAPC_PCIE_ASPM_CONTROLS | IAPC_CMOS_RTC_NOT_PRESENT);
	put32(fadt + ACPI_FADT_OFF_FLAGS,
	      ACPI_FADT_HW_REDUCED_ACPI | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP);
	put_gas(fadt + ACPI_FADT_OFF_RESET_REG, 1 /* SystemIO */, 8, 1 /* byte access */, RESET_PORT);
	fadt[ACPI_FADT_OFF_RESET_VALUE] = RESET_VALUE;
	/* The HW-reduced sleep registers (Linux offers ACPI power-off only with both). */
	put_gas(fadt + ACPI_FADT_OFF_SLEEP_CONTROL, 1 /* SystemIO */, 8, 1 /* byte access */,
		LAYOUT_ACPI_SLEEP_CONTROL_PORT);
	put_gas(fadt + ACPI_FADT_OFF_SLEEP_STATUS, 1 /* SystemIO */, 8, 1 /* byte access */,
		LAYOUT_ACPI_SLEEP_STATUS_PORT);
	fadt[FADT_OFF_MINOR_VERSION] = ACPI_FADT_MINOR_REVISION;
	put64(fadt + ACPI_FADT_OFF_X_DSDT, dsdt_at); /* the 32-bit DSDT field stays 0, as 5.2.9 asks */
	memcpy(fadt + FADT_OFF_HYPERVISOR_ID, HYPERVISOR_VENDOR, 8);
	sdt_finish(fadt, sizeof(fadt));
	if ((r = place(&pl, "FADT", sizeof(fadt), 8, &fadt_at, err)) < 0 ||
	    (r = write_table(gm, fadt_at, fadt, sizeof(fadt), "FADT", err)) < 0)
		return r;

	/* MADT: a local APIC per vCPU, the I/O APIC, and IRQ0 (the PIT) routed to GSI 2. */
	size_t madt_len = ACPI_SDT_HEADER_LEN + 8 + (size_t)cfg->n_cpus * 8 + 12 + 10;
	gr_autofree uint8_t *madt = calloc(1, madt_len);
	if (!madt)
		return gr_error_set(err, ENOMEM, "ACPI: out of memory for the MADT (%zu bytes)", madt_len);
	sdt_header(madt, "APIC", (uint32_t)madt_len, ACPI_MADT_REVISION);
	put32(madt + 36, (uint32_t)LAYOUT_LAPIC_BASE);
	put32(madt + 40, 0); /* no PCAT_COMPAT: no dual 8259 setup to program */
	uint8_t *p = madt + 44;
	for (unsigned int i = 0; i < cfg->n_cpus; i++, p += 8) {
		p[0] = MADT_LOCAL_APIC;
		p[1] = 8;
		p[2] = (uint8_t)i; /* ACPI processor UID */
		p[3] = (uint8_t)i; /* APIC ID */
		put32(p + 4, MADT_LAPIC_ENABLED);
	}
	p[0] = MADT_IO_APIC;
	p[1] = 12;
	p[2] = 0; /* I/O APIC ID */
	p[3] = 0;
	put32(p + 4, (uint32_t)LAYOUT_IOAPIC_BASE);
	put32(p + 8, 0); /* GSI base */
	p += 12;
	p[0] = MADT_INT_SRC_OVERRIDE;
	p[1] = 10;
	p[2] = 0;          /* bus: ISA */
	p[3] = 0;          /* source: IRQ0 */
	put32(p + 4, 2);   /* GSI 2 */
	put16(p + 8, 0);   /* conforms to the bus: edge, active high */
	sdt_finish(madt, madt_len);
	if ((r = place(&pl, "MADT", madt_len, 8, &madt_at, err)) < 0 ||
	    (r = write_table(gm, madt_at, madt, madt_len, "MADT", err)) < 0)
		return r;

	/* XSDT: the FADT and the MADT (the DSDT hangs off the FADT). */
	uint8_t xsdt[ACPI_SDT_HEADER_LEN + 2 * 8] = { 0 };
	sdt_header(xsdt, "XSDT", sizeof(xsdt), 1);
	put64(xsdt + 36, fadt_at);
	put64(xsdt + 44, madt_at);
	sdt_finish(xsdt, sizeof(xsdt));
	if ((r = place(&pl, "XSDT", sizeof(xsdt), 8, &xsdt_at, err)) < 0 ||
	    (r = write_table(gm, xsdt_at, xsdt, sizeof(xsdt), "XSDT", err)) < 0)
		return r;

	/* RSDP, revision 2: no RSDT, the XSDT only. */
	uint8_t rsdp[ACPI_RSDP_LEN] = { 0 };
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, OEM_ID, 6);
	rsdp[15] = 2;
	put32(rsdp + 16, 0);
	put32(rsdp + 20, ACPI_RSDP_LEN);
	put64(rsdp + 24, xsdt_at);
	rsdp[8] = acpi_checksum(rsdp, 20);
	rsdp[32] = acpi_checksum(rsdp, ACPI_RSDP_LEN);
	if ((r = write_table(gm, rsdp_at, rsdp, sizeof(rsdp), "RSDP", err)) < 0)
		return r;
	if (rsdp_gpa)
		*rsdp_gpa = rsdp_at;
	return 0;
}

int acpi_build(struct guest_mem *gm, const struct acpi_config *cfg, uint64_t *rsdp_gpa, struct gr_error *err)
{
	return acpi_build_at(gm, cfg, LAYOUT_ACPI_START, LAYOUT_ACPI_END, rsdp_gpa, err);
}

/* ---- acpi_dump ---- */

struct dumper {
	const struct guest_mem *gm;
	const char *dir;
	char names[DUMP_MAX_TABLES][8];
	size_t n;
};

static int dump_write(struct dumper *d, const char *sig, const void *data, size_t len, struct gr_error *err)
{
	if (d->n == DUMP_MAX_TABLES)
		return gr_error_set(err, E2BIG, "ACPI dump: more than %d tables", DUMP_MAX_TABLES);
	/* A second table with the same signature (SSDT, say) gets a number. */
	char name[8];
	snprintf(name, sizeof(name), "%s", sig);
	for (unsigned int k = 2; ; k++) {
		int taken = 0;
		for (size_t i = 0; i < d->n; i++)
			taken |= strcmp(d->names[i], name) == 0;
		if (!taken)
			break;
		snprintf(name, sizeof(name), "%.4s%u", sig, k);
	}
	memcpy(d->names[d->n++], name, sizeof(name));

	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.dat", d->dir, name) >= sizeof(path))
		return gr_error_set(err, ENAMETOOLONG, "ACPI dump: directory name too long: %s", d->dir);
	gr_autoclose int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return gr_error_sys(err, errno, "ACPI dump: cannot create %s", path);
	int r = gr_write_all(fd, data, len);
	if (r < 0)
		return gr_error_sys(err, -r, "ACPI dump: cannot write %s", path);
	int fdc = gr_steal_fd(fd);
	if (close(fdc) < 0)
		return gr_error_sys(err, errno, "ACPI dump: cannot write %s", path);
	return 0;
}

/* Reads the table at gpa (its length from its header) into *out. */
static int dump_read_table(const struct dumper *d, uint64_t gpa, const char *what, uint8_t **out, size_t *len,
			   char sig[5], struct gr_error *err)
{
	uint8_t hdr[8];
	if (gm_read(d->gm, gpa, hdr, sizeof(hdr)) < 0)
		return gr_error_set(err, EFAULT, "ACPI dump: %s at 0x%llx is not in guest RAM", what,
				    (unsigned long long)gpa);
	for (int i = 0; i < 4; i++) {
		char c = (char)hdr[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return gr_error_set(err, EINVAL, "ACPI dump: %s at 0x%llx has no valid signature", what,
					    (unsigned long long)gpa);
		sig[i] = c;
	}
	sig[4] = 0;
	uint32_t l = get32(hdr + 4);
	/* The FACS has a 64-byte header of its own; everything else the common one. */
	uint32_t min = strcmp(sig, "FACS") == 0 ? 64 : ACPI_SDT_HEADER_LEN;
	if (l < min || l > DUMP_TABLE_MAX)
		return gr_error_set(err, EINVAL, "ACPI dump: %s %s at 0x%llx has a bad length %u", what, sig,
				    (unsigned long long)gpa, l);
	uint8_t *t = malloc(l);
	if (!t)
		return gr_error_set(err, ENOMEM, "ACPI dump: out of memory (%u bytes)", l);
	if (gm_read(d->gm, gpa, t, l) < 0) {
		free(t);
		return gr_error_set(err, EFAULT, "ACPI dump: %s %s at 0x%llx (%u bytes) runs out of guest RAM", what,
				    sig, (unsigned long long)gpa, l);
	}
	*out = t;
	*len = l;
	return 0;
}

static int dump_table(struct dumper *d, uint64_t gpa, const char *what, int follow, struct gr_error *err);

/* The FADT's pointers: the DSDT and the FACS (64-bit fields preferred). */
static int dump_fadt_children(struct dumper *d, const uint8_t *t, size_t len, struct gr_error *err)
{
	uint64_t dsdt = len >= 44 ? get32(t + FADT_OFF_DSDT) : 0;
	if (len >= ACPI_FADT_OFF_X_DSDT + 8 && get64(t + ACPI_FADT_OFF_X_DSDT))
		dsdt = get64(t + ACPI_FADT_OFF_X_DSDT);
	uint64_t facs = len >= 40 ? get32(t + FADT_OFF_FIRMWARE_CTRL) : 0;
	if (len >= FADT_OFF_X_FIRMWARE_CTRL + 8 && get64(t + FADT_OFF_X_FIRMWARE_CTRL))
		facs = get64(t + FADT_OFF_X_FIRMWARE_CTRL);
	int r;
	if (dsdt && (r = dump_table(d, dsdt, "the FADT's DSDT", 0, err)) < 0)
		return r;
	if (facs && (r = dump_table(d, facs, "the FADT's FACS", 0, err)) < 0)
		return r;
	return 0;
}

/* follow: also dump what a FADT points to (only for tables the root lists). */
static int dump_table(struct dumper *d, uint64_t gpa, const char *what, int follow, struct gr_error *err)
{
	gr_autofree uint8_t *t = NULL;
	size_t len;
	char sig[5];
	int r = dump_read_table(d, gpa, what, &t, &len, sig, err);
	if (r < 0)
		return r;
	if ((r = dump_write(d, sig, t, len, err)) < 0)
		return r;
	if (follow && strcmp(sig, "FACP") == 0)
		return dump_fadt_children(d, t, len, err);
	return 0;
}

int acpi_dump(const struct guest_mem *gm, uint64_t rsdp_gpa, const char *dir, struct gr_error *err)
{
	struct dumper d = { .gm = gm, .dir = dir };
	uint8_t rsdp[ACPI_RSDP_LEN];
	if (!dir)
		return gr_error_set(err, EINVAL, "ACPI dump: no directory given");
	if (gm_read(gm, rsdp_gpa, rsdp, 20) < 0)
		return gr_error_set(err, EFAULT, "ACPI dump: RSDP at 0x%llx is not in guest RAM",
				    (unsigned long long)rsdp_gpa);
	if (memcmp(rsdp, "RSD PTR ", 8) != 0)
		return gr_error_set(err, EINVAL, "ACPI dump: no RSDP signature at 0x%llx", (unsigned long long)rsdp_gpa);
	size_t rsdp_len = 20;
	if (rsdp[15] >= 2) {
		if (gm_read(gm, rsdp_gpa, rsdp, ACPI_RSDP_LEN) < 0)
			return gr_error_set(err, EFAULT, "ACPI dump: RSDP at 0x%llx is not in guest RAM",
					    (unsigned long long)rsdp_gpa);
		rsdp_len = ACPI_RSDP_LEN;
	}
	struct stat st;
	if (stat(dir, &st) < 0)
		return gr_error_sys(err, errno, "ACPI dump: directory %s", dir);
	if (!S_ISDIR(st.st_mode))
		return gr_error_set(err, ENOTDIR, "ACPI dump: %s is not a directory", dir);
	int r = dump_write(&d, "RSDP", rsdp, rsdp_len, err);
	if (r < 0)
		return r;

	uint64_t root = rsdp_len == ACPI_RSDP_LEN ? get64(rsdp + 24) : 0;
	size_t entry = 8;
	if (!root) {
		root = get32(rsdp + 16);
		entry = 4;
	}
	if (!root)
		return gr_error_set(err, EINVAL, "ACPI dump: the RSDP at 0x%llx points to neither an XSDT nor an RSDT",
				    (unsigned long long)rsdp_gpa);
	gr_autofree uint8_t *rt = NULL;
	size_t rt_len;
	char sig[5];
	if ((r = dump_read_table(&d, root, entry == 8 ? "the XSDT" : "the RSDT", &rt, &rt_len, sig, err)) < 0)
		return r;
	if (strcmp(sig, entry == 8 ? "XSDT" : "RSDT") != 0)
		return gr_error_set(err, EINVAL, "ACPI dump: the RSDP points to a %s table at 0x%llx, not an %s", sig,
				    (unsigned long long)root, entry == 8 ? "XSDT" : "RSDT");
	if ((r = dump_write(&d, sig, rt, rt_len, err)) < 0)
		return r;
	size_t n = (rt_len - ACPI_SDT_HEADER_LEN) / entry;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *e = rt + ACPI_SDT_HEADER_LEN + i * entry;
		uint64_t gpa = entry == 8 ? get64(e) : get32(e);
		char what[48];
		snprintf(what, sizeof(what), "%s entry %zu", sig, i);
		if ((r = dump_table(&d, gpa, what, 1, err)) < 0)
			return r;
	}
	return 0;
}
