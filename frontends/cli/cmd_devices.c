/* lorac devices — list every compute device lorac can open, and why a backend offered none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lorac/lorac.h"

void cli_devices_help(void) {
    printf("Usage: lorac devices [--help]\n\n"
           "Lists every device of every backend that loads: its spec (what --device takes), backend, name,\n"
           "memory, threads (CPU) or compute units (GPU), and driver. A backend that offers no device\n"
           "(plugin not built, runtime missing, no devices) gets a 'skipped' line with the reason.\n"
           "Devices that emulate a GPU on the CPU (PoCL, lavapipe) are marked; --device auto skips them.\n"
           "Environment: LORAC_DEVICE (default device), LORAC_THREADS (CPU threads),\n"
           "LORAC_PLUGIN_DIR (where liblorac-opencl.so / liblorac-vulkan.so are looked up).\n");
}

int cli_devices(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_devices_help();
            return CLI_EXIT_OK;
        }
        return cli_usage_error("devices", "unknown argument '%s' (this command takes no options)", argv[i]);
    }
    int count = 0;
    if (lc_device_list(NULL, 0, &count) != LC_OK) return cli_lib_error("devices", "listing devices");
    lc_device_info *infos = calloc((size_t)(count > 0 ? count : 1), sizeof *infos);
    if (!infos) {
        fprintf(stderr, "lorac devices: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    int n = 0;
    if (lc_device_list(infos, count, &n) != LC_OK) {
        free(infos);
        return cli_lib_error("devices", "listing devices");
    }
    if (n > count) n = count;
    const char *env = getenv("LORAC_DEVICE");
    printf("%d device%s (default: %s)\n", n, n == 1 ? "" : "s",
           env && env[0] ? env : "auto = the first real GPU, else cpu");
    for (int i = 0; i < n; i++) {
        const lc_device_info *d = &infos[i];
        char mem[32];
        cli_format_bytes(mem, sizeof mem, d->memory_bytes);
        printf("  %-10s %-7s %s%s%s\n", d->spec, d->backend, d->name, d->vendor[0] ? " - " : "", d->vendor);
        if (strcmp(d->backend, "cpu") == 0) {
            printf("             memory %s, threads %d of %d hardware threads%s%s\n", mem, d->threads, d->compute_units,
                   d->api_version[0] ? ", " : "", d->api_version);
        } else {
            printf("             memory %s, compute units %d", mem, d->compute_units);
            if (d->subgroup_size) printf(", subgroup size %d", d->subgroup_size);
            if (d->api_version[0]) printf(", %s %s", d->backend, d->api_version);
            printf("\n");
        }
        if (d->driver[0]) printf("             driver %s\n", d->driver);
        if (d->is_cpu && strcmp(d->backend, "cpu") != 0)
            printf("             runs on the host CPU (emulation); 'auto' does not pick it\n");
    }
    const char *backends[] = {"opencl", "vulkan"};
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        const char *why = lc_device_skipped(backends[b]);
        if (why) printf("  skipped %s: %s\n", backends[b], why);
    }
    free(infos);
    return CLI_EXIT_OK;
}
