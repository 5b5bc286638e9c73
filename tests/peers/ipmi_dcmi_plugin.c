/*
 * DCMI for OpenIPMI's ipmi_sim: a plug-in loaded with `loadlib "PATH.so" "STATEFILE"`.
 *
 * Stock ipmi_sim answers no DCMI command (completion code 0xC1). This module registers a
 * handler for the DCMI group extension (netfn 0x2C, group 0xDC) that answers
 *   0x01 Get DCMI Capabilities Info (parameter 1: supported capabilities, power management)
 *   0x02 Get Power Reading (DCMI 1.5, table 6-16)
 * Every power reading re-reads STATEFILE, six whitespace-separated integers:
 *   current_w minimum_w maximum_w average_w period_ms active
 * so a test changes the reading live by rewriting the file. `active` 0 clears bit 6 of
 * the reading-state byte ("power measurement not active"). A missing or malformed file
 * answers completion code 0xD5 (command not supported in present state).
 * Each answered power reading appends one line to STATEFILE.log, so a test can count them.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <OpenIPMI/mcserv.h>
#include <OpenIPMI/serv.h>

#define DCMI_GROUP 0xDC
#define DCMI_GET_CAPABILITIES 0x01
#define DCMI_GET_POWER_READING 0x02
#define STATE_ACTIVE 0x40
#define CC_NOT_IN_PRESENT_STATE 0xD5
#define CC_INVALID_DATA_FIELD 0xCC

static char *state_file;

static void put_u16(unsigned char *p, unsigned int v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    put_u16(p, v & 0xffff);
    put_u16(p + 2, v >> 16);
}

static void log_request(void)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s.log", state_file);
    f = fopen(path, "a");
    if (f) {
        fputs("power reading\n", f);
        fclose(f);
    }
}

static void power_reading(unsigned char *rdata, unsigned int *rdata_len)
{
    unsigned int cur, min, max, avg, period_ms, active;
    FILE *f = fopen(state_file, "r");
    int n = 0;

    if (f) {
        n = fscanf(f, "%u %u %u %u %u %u", &cur, &min, &max, &avg, &period_ms, &active);
        fclose(f);
    }
    if (n != 6) {
        rdata[0] = CC_NOT_IN_PRESENT_STATE;
        *rdata_len = 1;
        return;
    }
    rdata[0] = 0;
    rdata[1] = DCMI_GROUP;
    put_u16(rdata + 2, cur);
    put_u16(rdata + 4, min);
    put_u16(rdata + 6, max);
    put_u16(rdata + 8, avg);
    put_u32(rdata + 10, (uint32_t) time(NULL));
    put_u32(rdata + 14, period_ms);
    rdata[18] = active ? STATE_ACTIVE : 0;
    *rdata_len = 19;
    log_request();
}

static void capabilities(msg_t *msg, unsigned char *rdata, unsigned int *rdata_len)
{
    if (check_msg_length(msg, 2, rdata, rdata_len))
        return;
    if (msg->data[1] != 1) {
        rdata[0] = CC_INVALID_DATA_FIELD;
        *rdata_len = 1;
        return;
    }
    rdata[0] = 0;
    rdata[1] = DCMI_GROUP;
    rdata[2] = 1;    /* DCMI specification conformance: 1.5 */
    rdata[3] = 5;
    rdata[4] = 2;    /* parameter revision */
    rdata[5] = 0;    /* reserved */
    rdata[6] = 0x01; /* platform capabilities: power management */
    rdata[7] = 0x00; /* manageability access capabilities */
    rdata[8] = 0x00; /* auxiliary capabilities */
    *rdata_len = 9;
}

static void handle_dcmi(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
                        unsigned int *rdata_len, void *cb_data)
{
    (void) cb_data;
    switch (msg->cmd) {
    case DCMI_GET_CAPABILITIES:
        capabilities(msg, rdata, rdata_len);
        break;
    case DCMI_GET_POWER_READING:
        if (check_msg_length(msg, 4, rdata, rdata_len))
            return;
        power_reading(rdata, rdata_len);
        break;
    default:
        handle_invalid_cmd(mc, rdata, rdata_len);
    }
}

int ipmi_sim_module_print_version(sys_data_t *sys, char *options)
{
    (void) sys;
    (void) options;
    printf("dcmeter DCMI test module\n");
    return 0;
}

int ipmi_sim_module_init(sys_data_t *sys, const char *options)
{
    (void) sys;
    if (!options || !*options)
        return 22; /* EINVAL: the state file is required */
    state_file = strdup(options);
    if (!state_file)
        return 12; /* ENOMEM */
    ipmi_emu_register_group_extension_handler(DCMI_GROUP, handle_dcmi, NULL);
    return 0;
}
