/* Instance types and their drivers. */
#include "daemon/instance/driver.h"

#include <string.h>

const struct instance_driver *const instance_drivers[] = { &container_driver, &vm_driver, NULL };

const struct instance_driver *instance_driver_for(const char *type)
{
	for (size_t i = 0; type && instance_drivers[i]; i++)
		if (strcmp(type, instance_drivers[i]->type) == 0)
			return instance_drivers[i];
	return NULL;
}
