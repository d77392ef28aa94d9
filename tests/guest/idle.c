/* Prints a line, then halts with interrupts off for ever: a VM that keeps
 * running, for tests that look at the VMM process while it runs. */
#include "payload.h"

void payload_main(void);

void payload_main(void)
{
	serial_puts("gureum-vmm payload: idle\n");
}
