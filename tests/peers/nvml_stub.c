/*
 * A stand-in for NVIDIA's libnvidia-ml.so.1, for testing the real nvidia-ml-py bindings
 * (module pynvml) on a machine without a GPU. Build:
 *
 *     gcc -shared -fPIC -O2 -Wall -Wextra -o libnvidia-ml.so.1 nvml_stub.c
 *
 * and put its folder on LD_LIBRARY_PATH. The GPUs it pretends to have are described by a
 * text file named by the environment variable DCMETER_NVML_STUB, re-read on every call so a
 * test can change values live. One `key value` per line, `#` starts a comment:
 *
 *     driver 550.54.15            nvmlSystemGetDriverVersion
 *     init_error 9                nvmlInit* returns this code (default 0: success)
 *     count 2                     number of GPUs
 *     count_error 999             nvmlDeviceGetCount_v2 returns this code
 *     gpu.0.name NVIDIA H100 80GB HBM3
 *     gpu.0.uuid GPU-0a1b...
 *     gpu.0.serial 1654922007123  nvmlDeviceGetSerial (the board serial); without a line,
 *                                 NVML_ERROR_NOT_SUPPORTED, as on a GeForce board
 *     gpu.0.power_mw 301000       nvmlDeviceGetPowerUsage (mW)
 *     gpu.0.power_avg_mw 300500   field 185 NVML_FI_DEV_POWER_AVERAGE (mW)
 *     gpu.0.power_instant_mw 310000  field 186 NVML_FI_DEV_POWER_INSTANT (mW)
 *     gpu.0.energy_mj 123456789   nvmlDeviceGetTotalEnergyConsumption, field 83 (mJ)
 *     gpu.0.util_gpu 87           nvmlDeviceGetUtilizationRates (%)
 *     gpu.0.util_mem 41
 *     gpu.0.lost 1                every call on this GPU returns NVML_ERROR_GPU_IS_LOST
 *     gpu.0.hang_ms 3000          nvmlDeviceGetUtilizationRates blocks this long first, as
 *                                 a call stuck in a sick driver does
 *     gpu.0.error.Q CODE          the call (or field) Q returns CODE; Q is one of handle,
 *                                 name, uuid, serial, power, power_avg, power_instant, energy, util,
 *                                 fields (the whole nvmlDeviceGetFieldValues call)
 *
 * A quantity without a line is NVML_ERROR_NOT_SUPPORTED, as on a GPU that lacks it. Calls
 * before nvmlInit or after the matching nvmlShutdown return NVML_ERROR_UNINITIALIZED. When
 * DCMETER_NVML_STUB_LOG names a file, the name of every called function is appended to it.
 */

#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st {
    int index;
} *nvmlDevice_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    int siVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp; /* us since the epoch */
    long long latencyUsec;
    unsigned int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_UNKNOWN = 999,
};

enum { VALUE_TYPE_UNSIGNED_INT = 1, VALUE_TYPE_UNSIGNED_LONG_LONG = 3 };
enum { FI_TOTAL_ENERGY = 83, FI_POWER_AVERAGE = 185, FI_POWER_INSTANT = 186 };

#define MAX_GPUS 16
#define TEXT 96

/* Quantities of one GPU; `has` and `err` are indexed by enum quantity. */
enum quantity { Q_HANDLE, Q_NAME, Q_UUID, Q_SERIAL, Q_POWER, Q_POWER_AVG, Q_POWER_INSTANT, Q_ENERGY,
                Q_UTIL, Q_FIELDS, Q_COUNT };
static const char *const QUANTITY_NAMES[Q_COUNT] = {
    "handle", "name", "uuid", "serial", "power", "power_avg", "power_instant", "energy", "util", "fields",
};

struct gpu {
    char name[TEXT];
    char uuid[TEXT];
    char serial[TEXT];
    int has_serial;
    unsigned long long power_mw, power_avg_mw, power_instant_mw, energy_mj;
    unsigned long long util_gpu, util_mem;
    int has_power, has_power_avg, has_power_instant, has_energy, has_util_gpu, has_util_mem;
    int lost;
    long hang_ms;
    int err[Q_COUNT];
};

struct state {
    char driver[TEXT];
    int init_error;
    int count;
    int count_error;
    struct gpu gpus[MAX_GPUS];
};

static struct nvmlDevice_st devices[MAX_GPUS];
static int init_count; /* nvmlInit minus nvmlShutdown calls, as NVML counts them */

static void log_call(const char *fn)
{
    const char *path = getenv("DCMETER_NVML_STUB_LOG");
    if (path == NULL || *path == '\0')
        return;
    FILE *f = fopen(path, "a");
    if (f == NULL)
        return;
    fprintf(f, "%s\n", fn);
    fclose(f);
}

static void copy_text(char *dst, const char *src)
{
    snprintf(dst, TEXT, "%s", src);
}

static void set_gpu_key(struct gpu *g, const char *key, const char *value)
{
    unsigned long long n = strtoull(value, NULL, 10);
    if (strcmp(key, "name") == 0) {
        copy_text(g->name, value);
    } else if (strcmp(key, "uuid") == 0) {
        copy_text(g->uuid, value);
    } else if (strcmp(key, "serial") == 0) {
        copy_text(g->serial, value);
        g->has_serial = 1;
    } else if (strcmp(key, "power_mw") == 0) {
        g->power_mw = n;
        g->has_power = 1;
    } else if (strcmp(key, "power_avg_mw") == 0) {
        g->power_avg_mw = n;
        g->has_power_avg = 1;
    } else if (strcmp(key, "power_instant_mw") == 0) {
        g->power_instant_mw = n;
        g->has_power_instant = 1;
    } else if (strcmp(key, "energy_mj") == 0) {
        g->energy_mj = n;
        g->has_energy = 1;
    } else if (strcmp(key, "util_gpu") == 0) {
        g->util_gpu = n;
        g->has_util_gpu = 1;
    } else if (strcmp(key, "util_mem") == 0) {
        g->util_mem = n;
        g->has_util_mem = 1;
    } else if (strcmp(key, "lost") == 0) {
        g->lost = (int)n;
    } else if (strcmp(key, "hang_ms") == 0) {
        g->hang_ms = (long)n;
    } else if (strncmp(key, "error.", 6) == 0) {
        for (int q = 0; q < Q_COUNT; q++)
            if (strcmp(key + 6, QUANTITY_NAMES[q]) == 0)
                g->err[q] = (int)n;
    }
}

/* Read the state file; return 0 on success. */
static int load_state(struct state *s)
{
    memset(s, 0, sizeof *s);
    copy_text(s->driver, "550.54.15");
    for (int i = 0; i < MAX_GPUS; i++) {
        snprintf(s->gpus[i].name, TEXT, "Stub GPU %d", i);
        snprintf(s->gpus[i].uuid, TEXT, "GPU-00000000-0000-0000-0000-%012d", i);
    }
    const char *path = getenv("DCMETER_NVML_STUB");
    if (path == NULL || *path == '\0') {
        fprintf(stderr, "nvml stub: DCMETER_NVML_STUB is not set\n");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "nvml stub: cannot read %s\n", path);
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *value = strchr(line, ' ');
        if (value == NULL)
            continue;
        *value++ = '\0';
        int n = atoi(value);
        if (strcmp(line, "driver") == 0) {
            copy_text(s->driver, value);
        } else if (strcmp(line, "init_error") == 0) {
            s->init_error = n;
        } else if (strcmp(line, "count") == 0) {
            s->count = n < 0 ? 0 : n > MAX_GPUS ? MAX_GPUS : n;
        } else if (strcmp(line, "count_error") == 0) {
            s->count_error = n;
        } else if (strncmp(line, "gpu.", 4) == 0) {
            char *end;
            long i = strtol(line + 4, &end, 10);
            if (end != line + 4 && *end == '.' && i >= 0 && i < MAX_GPUS)
                set_gpu_key(&s->gpus[i], end + 1, value);
        }
    }
    fclose(f);
    return 0;
}

/* Common checks of a per-GPU call: loaded state, initialised, valid handle, GPU present. */
static nvmlReturn_t device_call(const char *fn, nvmlDevice_t device, struct state *s,
                                struct gpu **g)
{
    log_call(fn);
    if (load_state(s) != 0)
        return NVML_ERROR_UNKNOWN;
    if (init_count <= 0)
        return NVML_ERROR_UNINITIALIZED;
    if (device < devices || device >= devices + MAX_GPUS)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device->index >= s->count)
        return NVML_ERROR_GPU_IS_LOST;
    *g = &s->gpus[device->index];
    return (*g)->lost ? NVML_ERROR_GPU_IS_LOST : NVML_SUCCESS;
}

static nvmlReturn_t init(const char *fn)
{
    struct state s;
    log_call(fn);
    if (load_state(&s) != 0)
        return NVML_ERROR_UNKNOWN;
    if (s.init_error != 0)
        return s.init_error;
    init_count++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit(void) { return init("nvmlInit"); }
nvmlReturn_t nvmlInit_v2(void) { return init("nvmlInit_v2"); }
nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags;
    return init("nvmlInitWithFlags");
}

nvmlReturn_t nvmlShutdown(void)
{
    log_call("nvmlShutdown");
    if (init_count <= 0)
        return NVML_ERROR_UNINITIALIZED;
    init_count--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 6: return "Not Found";
    case 9: return "Driver Not Loaded";
    case 10: return "Timeout";
    case 12: return "NVML Shared Library Not Found";
    case 15: return "GPU is lost";
    case 16: return "GPU requires restart";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    case 21: return "No data";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    struct state s;
    log_call("nvmlSystemGetDriverVersion");
    if (load_state(&s) != 0)
        return NVML_ERROR_UNKNOWN;
    if (init_count <= 0)
        return NVML_ERROR_UNINITIALIZED;
    if (version == NULL || strlen(s.driver) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(version, s.driver);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    struct state s;
    log_call("nvmlDeviceGetCount_v2");
    if (load_state(&s) != 0)
        return NVML_ERROR_UNKNOWN;
    if (init_count <= 0)
        return NVML_ERROR_UNINITIALIZED;
    if (s.count_error != 0)
        return s.count_error;
    if (count == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned int)s.count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    struct state s;
    log_call("nvmlDeviceGetHandleByIndex_v2");
    if (load_state(&s) != 0)
        return NVML_ERROR_UNKNOWN;
    if (init_count <= 0)
        return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= (unsigned int)s.count)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (s.gpus[index].err[Q_HANDLE] != 0)
        return s.gpus[index].err[Q_HANDLE];
    if (s.gpus[index].lost)
        return NVML_ERROR_GPU_IS_LOST;
    devices[index].index = (int)index;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    struct state s;
    log_call("nvmlDeviceGetHandleByUUID");
    if (load_state(&s) != 0)
        return NVML_ERROR_UNKNOWN;
    if (init_count <= 0)
        return NVML_ERROR_UNINITIALIZED;
    if (uuid == NULL || device == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < s.count; i++) {
        if (strcmp(s.gpus[i].uuid, uuid) == 0) {
            devices[i].index = i;
            *device = &devices[i];
            return NVML_SUCCESS;
        }
    }
    return 6; /* NVML_ERROR_NOT_FOUND */
}

static nvmlReturn_t get_text(const char *fn, enum quantity q, nvmlDevice_t device, char *out,
                             unsigned int length)
{
    struct state s;
    struct gpu *g = NULL;
    nvmlReturn_t ret = device_call(fn, device, &s, &g);
    if (ret != NVML_SUCCESS)
        return ret;
    if (g->err[q] != 0)
        return g->err[q];
    if (q == Q_SERIAL && !g->has_serial)
        return NVML_ERROR_NOT_SUPPORTED;
    const char *text = q == Q_NAME ? g->name : q == Q_SERIAL ? g->serial : g->uuid;
    if (out == NULL || strlen(text) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, text);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    return get_text("nvmlDeviceGetName", Q_NAME, device, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    return get_text("nvmlDeviceGetUUID", Q_UUID, device, uuid, length);
}

nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length)
{
    return get_text("nvmlDeviceGetSerial", Q_SERIAL, device, serial, length);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    struct state s;
    struct gpu *g = NULL;
    nvmlReturn_t ret = device_call("nvmlDeviceGetIndex", device, &s, &g);
    if (ret != NVML_SUCCESS)
        return ret;
    *index = (unsigned int)device->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)
{
    struct state s;
    struct gpu *g = NULL;
    nvmlReturn_t ret = device_call("nvmlDeviceGetPowerUsage", device, &s, &g);
    if (ret != NVML_SUCCESS)
        return ret;
    if (g->err[Q_POWER] != 0)
        return g->err[Q_POWER];
    if (!g->has_power)
        return NVML_ERROR_NOT_SUPPORTED;
    *power = (unsigned int)g->power_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy)
{
    struct state s;
    struct gpu *g = NULL;
    nvmlReturn_t ret = device_call("nvmlDeviceGetTotalEnergyConsumption", device, &s, &g);
    if (ret != NVML_SUCCESS)
        return ret;
    if (g->err[Q_ENERGY] != 0)
        return g->err[Q_ENERGY];
    if (!g->has_energy)
        return NVML_ERROR_NOT_SUPPORTED;
    *energy = g->energy_mj;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util)
{
    struct state s;
    struct gpu *g = NULL;
    nvmlReturn_t ret = device_call("nvmlDeviceGetUtilizationRates", device, &s, &g);
    if (ret != NVML_SUCCESS)
        return ret;
    if (g->hang_ms > 0) {
        struct timespec pause = {g->hang_ms / 1000, (g->hang_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    if (g->err[Q_UTIL] != 0)
        return g->err[Q_UTIL];
    if (!g->has_util_gpu || !g->has_util_mem)
        return NVML_ERROR_NOT_SUPPORTED;
    util->gpu = (unsigned int)g->util_gpu;
    util->memory = (unsigned int)g->util_mem;
    return NVML_SUCCESS;
}

static void fill_field(const struct gpu *g, nvmlFieldValue_t *v, long long now_us)
{
    v->timestamp = now_us;
    v->latencyUsec = 0;
    v->valueType = VALUE_TYPE_UNSIGNED_INT;
    v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
    switch (v->fieldId) {
    case FI_POWER_AVERAGE:
        if (g->err[Q_POWER_AVG] != 0) {
            v->nvmlReturn = g->err[Q_POWER_AVG];
        } else if (g->has_power_avg) {
            v->value.uiVal = (unsigned int)g->power_avg_mw;
            v->nvmlReturn = NVML_SUCCESS;
        }
        break;
    case FI_POWER_INSTANT:
        if (g->err[Q_POWER_INSTANT] != 0) {
            v->nvmlReturn = g->err[Q_POWER_INSTANT];
        } else if (g->has_power_instant) {
            v->value.uiVal = (unsigned int)g->power_instant_mw;
            v->nvmlReturn = NVML_SUCCESS;
        }
        break;
    case FI_TOTAL_ENERGY:
        v->valueType = VALUE_TYPE_UNSIGNED_LONG_LONG;
        if (g->err[Q_ENERGY] != 0) {
            v->nvmlReturn = g->err[Q_ENERGY];
        } else if (g->has_energy) {
            v->value.ullVal = g->energy_mj;
            v->nvmlReturn = NVML_SUCCESS;
        }
        break;
    default:
        break;
    }
}

nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int valuesCount,
                                      nvmlFieldValue_t *values)
{
    struct state s;
    struct gpu *g = NULL;
    nvmlReturn_t ret = device_call("nvmlDeviceGetFieldValues", device, &s, &g);
    if (ret != NVML_SUCCESS)
        return ret;
    if (g->err[Q_FIELDS] != 0)
        return g->err[Q_FIELDS];
    if (values == NULL || valuesCount < 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long now_us = (long long)tv.tv_sec * 1000000LL + tv.tv_usec;
    for (int i = 0; i < valuesCount; i++)
        fill_field(g, &values[i], now_us);
    return NVML_SUCCESS;
}
