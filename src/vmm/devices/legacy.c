#include "legacy.h"
#include "vmm/layout.h"
#include "vmm/acpi/acpi.h"
#include "common/fs.h"

#include <string.h>
#include <pthread.h>

#define UART_IER_ERBFI 0x01   /* received data available */
#define UART_IER_ETBEI 0x02   /* THR empty */
#define UART_IER_ELSI  0x04   /* receiver line status */
#define UART_IER_EDSSI 0x08   /* modem status */
#define UART_IIR_NONE  0x01
#define UART_IIR_MSI   0x00
#define UART_IIR_THRI  0x02
#define UART_IIR_RDI   0x04
#define UART_IIR_RLSI  0x06
#define UART_IIR_FIFO  0xC0
#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_LSR_DR   0x01
#define UART_LSR_OE   0x02
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_LCR_DLAB 0x80
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10

void serial_init(struct serial *s, struct chardev *cd, void (*irq)(void *opaque, bool level), void *irq_opaque)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->cd = cd;
	s->irq = irq;
	s->irq_opaque = irq_opaque;
}

void serial_irq_line(void *opaque, bool level)
{
	struct vm_irq_source *src = opaque;
	int r = vm_irq_line(src->vm, src->gsi, level);
	if (r < 0)
		vm_stop(src->vm, VM_EXIT_VMM_ERROR, "KVM_IRQ_LINE for GSI %u: %s", src->gsi, strerror(-r));
}

/* MSR: DCD, DSR, CTS asserted; in loopback, the MCR outputs instead. */
static uint8_t serial_msr(const struct serial *s)
{
	uint8_t v = 0xB0;
	if (s->mcr & UART_MCR_LOOP)
		v = (uint8_t)(((s->mcr & 0x08) << 4) | ((s->mcr & 0x04) << 4) | ((s->mcr & 0x01) << 5) |
			      ((s->mcr & 0x02) << 3));
	return (uint8_t)(v | s->msr_delta);
}

static uint8_t serial_iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0;
	if ((s->ier & UART_IER_ELSI) && s->overrun)
		return fifo | UART_IIR_RLSI;
	if ((s->ier & UART_IER_ERBFI) && s->rx_len)
		return fifo | UART_IIR_RDI;
	if ((s->ier & UART_IER_ETBEI) && s->thre_pending)
		return fifo | UART_IIR_THRI;
	if ((s->ier & UART_IER_EDSSI) && s->msr_delta)
		return fifo | UART_IIR_MSI;
	return fifo | UART_IIR_NONE;
}

/* Drives the line after any state change (under s->lock). */
static void serial_update_irq(struct serial *s)
{
	bool level = !(serial_iir(s) & UART_IIR_NONE) && (s->mcr & UART_MCR_OUT2);
	if (level != s->irq_level) {
		s->irq_level = level;
		if (s->irq)
			s->irq(s->irq_opaque, level);
	}
}

static size_t serial_push(struct serial *s, const uint8_t *buf, size_t n)
{
	size_t i = 0;
	for (; i < n && s->rx_len < SERIAL_FIFO; i++)
		s->rx[(s->rx_head + s->rx_len++) % SERIAL_FIFO] = buf[i];
	s->bytes_in += i;
	return i;
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t n)
{
	if (s->mcr & UART_MCR_LOOP)
		return 0;    /* the receiver is cut off from the line in loopback */
	size_t took = serial_push(s, buf, n);
	serial_update_irq(s);
	return took;
}

static size_t serial_room(void *opaque)
{
	struct serial *s = opaque;
	return (s->mcr & UART_MCR_LOOP) ? 0 : SERIAL_FIFO - s->rx_len;
}

static void serial_input(void *opaque, const uint8_t *buf, size_t n)
{
	(void)serial_receive(opaque, buf, n);
}

static const struct chardev_ops serial_chardev_ops = { .room = serial_room, .input = serial_input };

int serial_attach(struct serial *s, struct ev_loop *loop, struct gr_error *err)
{
	if (!s->cd)
		return 0;
	return chardev_attach(s->cd, loop, &s->lock, &serial_chardev_ops, s, err);
}

static void serial_write_reg(struct serial *s, unsigned reg, uint8_t v)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	switch (reg) {
	case 0:
		if (dlab) {
			s->dll = v;
			break;
		}
		if (s->mcr & UART_MCR_LOOP) {
			if (serial_push(s, &v, 1) == 0)
				s->overrun = true;
		} else {
			if (s->cd)
				chardev_write(s->cd, &v, 1);
			s->bytes_out++;
		}
		s->thre_pending = true;   /* sent at once: THR is empty again */
		break;
	case 1:
		if (dlab) {
			s->dlm = v;
			break;
		}
		if ((v & UART_IER_ETBEI) && !(s->ier & UART_IER_ETBEI))
			s->thre_pending = true;
		s->ier = v & 0x0F;
		break;
	case 2: /* FCR */
		s->fcr = v & (UART_FCR_ENABLE | 0xC0);
		if (v & UART_FCR_CLEAR_RX) {
			s->rx_head = s->rx_len = 0;
			if (s->cd)
				chardev_resume_input(s->cd);
		}
		break;
	case 3: s->lcr = v; break;
	case 4: {
		uint8_t old_msr = serial_msr(s);
		bool was_loop = s->mcr & UART_MCR_LOOP;
		s->mcr = v & 0x1F;
		uint8_t new_msr = serial_msr(s) & 0xF0;
		if ((old_msr & 0xF0) != new_msr)
			s->msr_delta |= (uint8_t)((((old_msr ^ new_msr) >> 4) & 0x0B) |
						  ((old_msr & 0x40) && !(new_msr & 0x40) ? 0x04 : 0));
		if (was_loop && !(s->mcr & UART_MCR_LOOP) && s->cd)
			chardev_resume_input(s->cd);
		break;
	}
	case 7: s->scr = v; break;
	default: break;   /* LSR, MSR: read-only */
	}
}

static uint8_t serial_read_reg(struct serial *s, unsigned reg)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t v = 0;
	switch (reg) {
	case 0:
		if (dlab)
			return s->dll;
		if (s->rx_len) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_FIFO;
			s->rx_len--;
			if (s->cd && !(s->mcr & UART_MCR_LOOP))
				chardev_resume_input(s->cd);
		}
		return v;
	case 1: return dlab ? s->dlm : s->ier;
	case 2:
		v = serial_iir(s);
		if ((v & 0x0F) == UART_IIR_THRI)
			s->thre_pending = false;
		return v;
	case 3: return s->lcr;
	case 4: return s->mcr;
	case 5:
		v = UART_LSR_THRE | UART_LSR_TEMT | (s->rx_len ? UART_LSR_DR : 0) | (s->overrun ? UART_LSR_OE : 0);
		s->overrun = false;
		return v;
	case 6:
		v = serial_msr(s);
		s->msr_delta = 0;
		return v;
	default: return s->scr;
	}
}

void serial_io(struct serial *s, unsigned offset, bool is_write, uint8_t *data, uint32_t size)
{
	if (!size)
		return;
	if (!is_write)
		memset(data, 0xFF, size);
	if (offset > 7)
		return;
	pthread_mutex_lock(&s->lock);
	if (is_write)
		serial_write_reg(s, offset, data[0]);
	else
		data[0] = serial_read_reg(s, offset);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_pio(struct vm *vm, void *dev, uint16_t port, bool is_write, uint8_t *data, uint32_t size)
{
	(void)vm;
	serial_io(dev, (unsigned)(port - LAYOUT_SERIAL_PORT), is_write, data, size);
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
