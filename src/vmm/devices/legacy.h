/* The legacy port-I/O devices: an 8250/16550A UART, the i8042's reset line,
 * the debug-exit port test payloads report through, and the hardware-reduced
 * ACPI sleep registers the FADT points to. */
#ifndef GR_VMM_LEGACY_H
#define GR_VMM_LEGACY_H

#include <pthread.h>
#include "vmm/vm.h"
#include "vmm/devices/chardev.h"

/* The 16550A UART at LAYOUT_SERIAL_PORT (COM1, IRQ 4).
 *
 * Output goes to the chardev at once (THR is always empty again by the next
 * access: LSR always shows THRE and TEMT). Input comes from the chardev on the
 * I/O thread into a 16-byte receive FIFO (SERIAL_FIFO); LSR.DR says data is
 * ready; reading RBR takes the oldest byte. When the FIFO is full the chardev
 * stops reading until the guest drains it, so no byte is lost (LSR.OE stays 0
 * for host input; it is set if the FIFO overflows in loopback mode).
 *
 * Interrupts (IER bits 0-3), highest priority first in IIR:
 *   0x06 receiver line status (IER.ELSI, LSR.OE set)
 *   0x04 received data available (IER.ERBFI, FIFO not empty)
 *   0x02 THR empty (IER.ETBEI; armed by each THR write, the byte being sent
 *        at once, and when ETBEI goes from 0 to 1; disarmed by reading IIR
 *        while it is the source IIR reports)
 *   0x00 modem status (IER.EDSSI, a change of MSR in loopback mode)
 *   0x01 none
 * IIR bits 6-7 are set while the FIFOs are enabled (FCR bit 0). The line
 * (GSI 4) is driven like the UART's INTR pin, high while IIR shows an
 * interrupt and MCR.OUT2 is set (how PC serial ports gate their IRQ), through
 * irq(opaque, level) on each change.
 *
 * MCR loopback (bit 4) is emulated: THR bytes go to the receive FIFO and MSR
 * reflects DTR/RTS/OUT1/OUT2 (Linux's 8250 probe checks this). Divisor
 * latches, LCR, SCR hold what is written. An access wider than a byte acts on
 * the byte at its port; the other bytes read as 0xff and are ignored on
 * write.
 *
 * The lock serialises the port handler (vCPU threads) and the I/O thread's
 * input callback; pass it to chardev_attach. */
#define SERIAL_FIFO 16

struct serial {
	pthread_mutex_t lock;
	struct chardev *cd;              /* NULL: output discarded, no input */
	void (*irq)(void *opaque, bool level);
	void *irq_opaque;
	bool irq_level;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, msr_delta;
	bool overrun;                    /* LSR.OE until LSR is read */
	bool thre_pending;               /* THR-empty interrupt armed */
	uint8_t rx[SERIAL_FIFO];
	unsigned rx_head, rx_len;
	uint64_t bytes_out, bytes_in;
};

/* Sets up the UART state; irq may be NULL (no interrupt line). */
void serial_init(struct serial *s, struct chardev *cd, void (*irq)(void *opaque, bool level), void *irq_opaque);
/* Starts taking input from s->cd on loop. */
int serial_attach(struct serial *s, struct ev_loop *loop, struct gr_error *err);
/* A port access at offset (0..7) from LAYOUT_SERIAL_PORT, size 1, 2 or 4;
 * takes s->lock. What the port handler calls (exposed for tests). */
void serial_io(struct serial *s, unsigned offset, bool is_write, uint8_t *data, uint32_t size);
/* Input from the host (caller holds s->lock): takes up to the FIFO's free
 * room, returns how many bytes were taken. */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t n);
/* An irq callback for GSI LAYOUT_SERIAL_IRQ: opaque is a struct
 * vm_irq_source; drives the line with vm_irq_line. */
void serial_irq_line(void *opaque, bool level);

/* The ACPI sleep registers: SLEEP_CONTROL_REG at LAYOUT_ACPI_SLEEP_CONTROL_PORT
 * and SLEEP_STATUS_REG at LAYOUT_ACPI_SLEEP_STATUS_PORT (8-bit each). A write
 * of SLP_EN with SLP_TYP 5 (\_S5_) stops the VM with VM_EXIT_POWEROFF; a
 * sleep request for any other state is not carried out: the machine "wakes"
 * at once (WAK_STS set) so an OS waiting for the wake does not spin forever.
 * Writes without SLP_EN are ignored. The status register reads WAK_STS (0x80)
 * or 0; writing WAK_STS clears it. Accessed from any vCPU thread (atomics). */
struct acpi_sleep {
	uint8_t status;
};

/* Registers the UART at LAYOUT_SERIAL_PORT, the i8042 at 0x60/0x64, the
 * debug-exit port and the ACPI sleep registers (state in *sleep). */
int legacy_devices_add(struct vm *vm, struct serial *serial, struct acpi_sleep *sleep, struct gr_error *err);

#endif
