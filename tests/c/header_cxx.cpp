// The generated header must compile warning-free as C++17 and be usable from C++.
#include <mqttclient.h>

#include <cstdio>

int main() {
    mqttc_options opts;
    mqttc_options_init(&opts);
    mqttc_client *client = nullptr;
    mqttc_status st = mqttc_client_new("localhost", 1883, &opts, &client);
    std::printf("%s\n", mqttc_status_str(st));
    mqttc_client_free(client);
    return st == MQTTC_OK ? 0 : 1;
}
