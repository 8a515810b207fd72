"""
    MQTTClient

An MQTT 3.1.1 and MQTT 5 client with the API of MQTTClient.jl, on top of the `mqttclient` C
library (libmqttclient).

The library runs the network on its own threads and never calls into Julia: every library client
is made in the library's event mode, where completions, connection changes and messages wait in
a queue that one Julia task per client drains (see `event_loop` in state.jl).
"""
module MQTTClient

using Libdl
using FileWatching: poll_fd
using Random: randstring
using Sockets: Sockets, IPAddr
import Sockets: connect

include("library.jl")
include("types.jl")
include("properties.jl")
include("state.jl")
include("client.jl")
include("interface.jl")

# MQTTClient.jl's exports (those of 0.3 and of the versions before it), then this package's own.
export MakeConnection, Configuration, Client, Connection, MQTTConnection, IOConnection,
    MQTTException, User, QOS_0, QOS_1, QOS_2, connect_async, connect, subscribe_async, subscribe,
    unsubscribe_async, unsubscribe, publish_async, publish, disconnect, MQTT_ERR_INVAL
export MQTTFuture, Properties, Servers, reconnect, reconnect_async, disconnect_async

end # module
