#include "legacy.h"
#include "vmm/layout.h"
#include "vmm/acpi/acpi.h"
#include "common/fs.h"

#include <string.h>

#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_LCR_DLAB 0x80

static void serial_pio(struct vm *vm, void *dev, uint16_t port, bool is_write, uint8_t *data, uint32_t size)
{
	(void)vm;
	(void)size;
	struct serial *s = dev;
	unsigned reg = port - LAYOUT_SERIAL_PORT;
	bool dlab = s->lcr & UART_LCR_DLAB;
	if (is_write) {
		switch (reg) {
		case 0:
			if (dlab) {
				s->dll = data[0];
			} else {
				if (s->out_fd >= 0)
					(void)gr_write_all(s->out_fd, data, 1);
				s->bytes_out++;
			}
			break;
		case 1: if (dlab) s->dlm = data[0]; else s->ier = data[0] & 0x0F; break;
		case 3: s->lcr = data[0]; break;
		case 4: s->mcr = data[0]; break;
		case 7: s->scr = data[0]; break;
		default: break;
		}
		return;
	}
	uint8_t v = 0;
	switch (reg) {
	case 0: v = dlab ? s->dll : 0; break;         /* no input yet */
	case 1: v = dlab ? s->dlm : s->ier; break;
	case 2: v = 0x01; break;                       /* IIR: no interrupt pending */
	case 3: v = s->lcr; break;
	case 4: v = s->mcr; break;
	case 5: v = UART_LSR_THRE | UART_LSR_TEMT; break;
	case 6: v = 0xB0; break;                       /* MSR: DCD, DSR, CTS */
	case 7: v = s->scr; break;
	}
	data[0] = v;
}

static void i8042_pio(struct vm *vm, void *dev, uint16_t port, bool is_write, uint8_t *data, uint32_t size)
{
	(void)dev;
	(void)size;
	if (is_write) {
		if (port == 0x64 && data[0] == 0xFE) /* pulse the reset line */
			vm_stop(vm, VM_EXIT_RESET, "guest reset through the i8042");
		return;
	}
	data[0] = 0; /* no data, input buffer empty */
}

static void debug_exit_pio(struct vm *vm, void *dev, uint16_t port, bool is_write, uint8_t *data, uint32_t size)
{
	(void)dev;
	(void)port;
	(void)size;
	if (!is_write) {
		data[0] = 0;
		return;
	}
	unsigned v = data[0];
	if (v == 0)
		vm_stop(vm, VM_EXIT_POWEROFF, "guest payload reported success");
	else
		vm_stop(vm, VM_EXIT_DEBUG_BASE + (v > 63 ? 63 : (int)v), "guest payload reported failure %u", v);
}

_Static_assert(LAYOUT_ACPI_SLEEP_STATUS_PORT == LAYOUT_ACPI_SLEEP_CONTROL_PORT + 1,
	       "the sleep registers are registered as one 2-port range");

static void acpi_sleep_pio(struct vm *vm, void *dev, uint16_t port, bool is_write, uint8_t *data, uint32_t size)
{
	struct acpi_sleep *s = dev;
	if (!is_write) {
		memset(data, 0, size);
		if (port == LAYOUT_ACPI_SLEEP_STATUS_PORT)
			data[0] = __atomic_load_n(&s->status, __ATOMIC_SEQ_CST);
		return; /* the control register reads 0: SLP_EN is write-only */
	}
	uint8_t v = data[0];
	if (port == LAYOUT_ACPI_SLEEP_STATUS_PORT) {
		if (v & ACPI_WAK_STS) /* write 1 to clear */
			__atomic_and_fetch(&s->status, (uint8_t)~ACPI_WAK_STS, __ATOMIC_SEQ_CST);
		return;
	}
	if (!(v & ACPI_SLP_EN))
		return;
	unsigned typ = (v & ACPI_SLP_TYP_MASK) >> ACPI_SLP_TYP_SHIFT;
	if (typ == ACPI_SLP_TYP_S5)
		vm_stop(vm, VM_EXIT_POWEROFF, "guest powered off (ACPI S5)");
	else /* no such sleep state here: wake at once */
		__atomic_or_fetch(&s->status, (uint8_t)ACPI_WAK_STS, __ATOMIC_SEQ_CST);
}

int legacy_devices_add(struct vm *vm, struct serial *serial, struct acpi_sleep *sleep, struct gr_error *err)
{
	int r;
	if ((r = vm_add_pio(vm, LAYOUT_SERIAL_PORT, 8, serial_pio, serial, err)) < 0 ||
	    (r = vm_add_pio(vm, 0x60, 1, i8042_pio, NULL, err)) < 0 ||
	    (r = vm_add_pio(vm, 0x64, 1, i8042_pio, NULL, err)) < 0 ||
	    (r = vm_add_pio(vm, LAYOUT_DEBUG_EXIT_PORT, 1, debug_exit_pio, NULL, err)) < 0 ||
	    (r = vm_add_pio(vm, LAYOUT_ACPI_SLEEP_CONTROL_PORT, 2, acpi_sleep_pio, sleep, err)) < 0)
		return r;
	return 0;
}
