/*
 * What a program using an installed mqttclient checks first: that the library it loaded is the
 * version of the header it was compiled against. Then it makes and frees a client (no broker
 * needed). Prints "consumer ok: mqttclient <version>" and exits 0, or says what differs and exits 1.
 *
 * Built by scripts/packaging.sh against an install (find_package, pkg-config) and with
 * add_subdirectory, and by tests/c_programs.rs against cargo's target/debug.
 */
#include <mqttclient.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    const char *version = mqttc_version();
    if (strcmp(version, MQTTC_VERSION_STRING) != 0) {
        fprintf(stderr, "header is version %s, library is %s\n", MQTTC_VERSION_STRING, version);
        return 1;
    }
    if (mqttc_version_number() != MQTTC_VERSION_NUMBER) {
        fprintf(stderr, "header's version number is %d, library's %u\n", MQTTC_VERSION_NUMBER,
                (unsigned)mqttc_version_number());
        return 1;
    }
    /* The parts agree with the string, which may go on with a pre-release or build suffix (strchr
       also finds the terminating NUL, so a string that is just the parts passes). */
    char parts[40];
    snprintf(parts, sizeof parts, "%d.%d.%d", MQTTC_VERSION_MAJOR, MQTTC_VERSION_MINOR,
             MQTTC_VERSION_PATCH);
    size_t n = strlen(parts);
    if (strncmp(MQTTC_VERSION_STRING, parts, n) != 0 || strchr("-+", MQTTC_VERSION_STRING[n]) == NULL ||
        MQTTC_VERSION_NUMBER != MQTTC_VERSION_MAJOR * 10000 + MQTTC_VERSION_MINOR * 100 + MQTTC_VERSION_PATCH) {
        fprintf(stderr, "version macros disagree: %s, %s, %d\n", MQTTC_VERSION_STRING, parts,
                MQTTC_VERSION_NUMBER);
        return 1;
    }

    mqttc_client *client = NULL;
    mqttc_status st = mqttc_client_new("localhost", 1883, NULL, &client);
    if (st != MQTTC_OK) {
        fprintf(stderr, "mqttc_client_new: %s (%s)\n", mqttc_status_str(st), mqttc_last_error());
        return 1;
    }
    mqttc_client_free(client);
    printf("consumer ok: mqttclient %s\n", version);
    return 0;
}
