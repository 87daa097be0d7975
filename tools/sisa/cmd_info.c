/* cmd_info.c — `sisa info`: every backend this build knows, whether it is usable here and why
 * not, and each device's properties. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "sisa.h"

static void print_device(const char *backend, int d) {
    sisa_device_info di;
    if (sisa_device_get_info(backend, d, &di) != SISA_OK) {
        printf("    device %d: cannot open: %s\n", d, sisa_last_error());
        return;
    }
    printf("    device %d: %s (%s%s%s)\n", d, di.name, di.vendor, di.driver[0] ? ", driver " : "",
           di.driver);
    printf("      memory %.1f GiB", (double)di.memory_bytes / (1 << 30));
    if (di.max_buffer_bytes) printf(", max buffer %.1f MiB", (double)di.max_buffer_bytes / (1 << 20));
    if (di.max_storage_range)
        printf(", max storage range %.1f MiB", (double)di.max_storage_range / (1 << 20));
    printf("\n      f16 %s, bf16 %s, f64 %s", di.has_f16 ? "yes" : "no", di.has_bf16 ? "yes" : "no",
           di.has_f64 ? "yes" : "no");
    if (di.subgroup_size) printf(", subgroup %d", di.subgroup_size);
    printf(", matrix units %s\n", di.has_coopmat ? "yes" : "no");
}

int sisa_cmd_info(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: sisa info\n");
        return 0;
    }
    printf("sisa %s\n", sisa_version());
    for (int i = 0; i < sisa_backend_count(); i++) {
        sisa_backend_info bi;
        if (sisa_backend_get_info(i, &bi) != SISA_OK) return cli_fail("backend info");
        if (!bi.available) {
            printf("  %-8s absent: %s\n", bi.name, bi.reason);
            continue;
        }
        printf("  %-8s %d device(s)\n", bi.name, bi.n_devices);
        for (int d = 0; d < bi.n_devices; d++) print_device(bi.name, d);
    }
    return 0;
}
