/* The Generic Event Device: see ged.h. */
#include "vmm/devices/ged.h"
#include "vmm/layout.h"
#include "vmm/acpi/acpi.h"

#include <string.h>

_Static_assert(GED_EVENT_POWER_BUTTON == ACPI_GED_EVENT_POWER_BUTTON, "the DSDT's _EVT tests the bit the GED sets");

void ged_mmio_read(void *opaque, uint64_t offset, void *data, uint32_t len)
{
	struct ged *g = opaque;
	memset(data, 0, len);
	if (offset != 0)
		return;
	((uint8_t *)data)[0] = __atomic_exchange_n(&g->pending, 0, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&g->reads, 1, __ATOMIC_RELAXED);
}

void ged_mmio_write(void *opaque, uint64_t offset, const void *data, uint32_t len)
{
	(void)opaque; (void)offset; (void)data; (void)len; /* read-only register */
}

void ged_raise(struct ged *g, uint8_t events)
{
	/* The bit before the interrupt: a handler that runs on the interrupt must find it. */
	__atomic_or_fetch(&g->pending, events, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&g->events, 1, __ATOMIC_RELAXED);
	vm_irq_edge(&g->irq, true);
}

void ged_press_power_button(void *opaque)
{
	ged_raise(opaque, GED_EVENT_POWER_BUTTON);
}

int ged_add(struct ged *g, struct vm *vm, struct gr_error *err)
{
	*g = (struct ged){ .irq = { .vm = vm, .gsi = LAYOUT_GED_IRQ } };
	int r = vm_add_mmio(vm, LAYOUT_GED_BASE, LAYOUT_GED_SIZE, ged_mmio_read, ged_mmio_write, g, err);
	if (r < 0)
		return gr_error_prefix(err, "ACPI GED");
	vm_set_power_button(vm, ged_press_power_button, g);
	return 0;
}
