/* The ACPI Generic Event Device (ACPI 6.5, 5.6.9: _HID "ACPI0013") of the
 * hardware-reduced machine, as Cloud Hypervisor has one: how the VMM tells
 * the guest about an event without GPE blocks or an SCI. Here one event, the
 * power button.
 *
 * Hardware: an 8-bit event register at offset 0 of the MMIO window at
 * LAYOUT_GED_BASE, and an edge-triggered, active-high interrupt on GSI
 * LAYOUT_GED_IRQ. Raising an event sets its bit, then pulses the GSI; a read
 * of the register returns the pending bits and clears them (so an event is
 * handled once, whoever reads it); other offsets read 0 and writes are
 * ignored.
 *
 * The DSDT (acpi.c) declares the GED with that interrupt, the register as an
 * OperationRegion, and _EVT, which reads it and, for GED_EVENT_POWER_BUTTON,
 * does Notify(\_SB.PWRB, 0x80) on the power button device (PNP0C0C): Linux
 * then runs its power-button handling (orderly shutdown, ACPI S5). */
#ifndef GR_VMM_GED_H
#define GR_VMM_GED_H

#include <stdint.h>
#include "common/error.h"
#include "vmm/vm.h"

#define GED_EVENT_POWER_BUTTON 0x01u

struct ged {
	uint8_t pending;               /* event bits not read yet (atomic) */
	struct vm_irq_source irq;
	uint64_t events, reads;        /* metrics (atomic) */
};

/* Registers the window and the interrupt source (the VM must exist) and
 * becomes the VM's power button (vm_set_power_button: vm_request_stop presses it). */
int ged_add(struct ged *g, struct vm *vm, struct gr_error *err);
/* Raises events (bits) and the interrupt. Any thread. */
void ged_raise(struct ged *g, uint8_t events);
/* ged_raise(opaque, GED_EVENT_POWER_BUTTON): for vm_set_power_button. */
void ged_press_power_button(void *opaque);

/* The register accesses (exposed for tests): offset inside the window, len 1..8. */
void ged_mmio_read(void *opaque, uint64_t offset, void *data, uint32_t len);
void ged_mmio_write(void *opaque, uint64_t offset, const void *data, uint32_t len);

#endif
