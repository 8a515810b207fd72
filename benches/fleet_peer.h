/*
 * The command line of the fleet peers benches/fleet_mosquitto.c and benches/fleet_paho.c: that of
 * `mqttc_bench --mode clients` but --threads (they have no pool to size). c_examples/fleet.h
 * does the measurement.
 */
#ifndef MQTTC_FLEET_PEER_H
#define MQTTC_FLEET_PEER_H

#include "../c_examples/fleet.h"
#include "bench_args.h"

/* Fills everything of `f` the command line says (defaults: 127.0.0.1 1883 QoS 0, FLEET_ARGS_DEFAULT). */
static void fleet_peer_args(int argc, char **argv, const char *name, struct fleet *f) {
    bench_name = name;
    bench_usage = "[--host H] [--port P] [--mode clients] [--qos 0|1|2] " FLEET_USAGE;
    f->host = "127.0.0.1";
    f->port = 1883;
    f->a = (struct fleet_args)FLEET_ARGS_DEFAULT;
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            usage("%s needs a value", opt);
        else if (fleet_option(&f->a, opt, val, parse_long))
            continue;
        else if (!strcmp(opt, "--host"))
            f->host = val;
        else if (!strcmp(opt, "--port"))
            f->port = (int)parse_long(opt, val, 1, 65535);
        else if (!strcmp(opt, "--qos"))
            f->qos = (int)parse_long(opt, val, 0, 2);
        else if (strcmp(opt, "--mode"))
            usage("unknown argument %s", opt);
        else if (strcmp(val, "clients"))
            usage("--mode %s: only clients", val);
    }
}

#endif
