# The API of MQTTClient.jl, with keyword access to what the library adds.

# Waits for `future` (draining the queue itself on the event task: see `await_ready`); throws its
# result when that is an exception.
function resolve(client::Client, future::MQTTFuture)
    value = GC.@preserve client fetch(future)
    value isa Exception && throw(value)
    return value
end

"""
    isready(client::Client)

Whether the client has no connection yet: never connected, or a connection being made. As in
MQTTClient.jl, `connect` makes a closed client ready again.
"""
Base.isready(client::Client) = connection_state(client) === :ready

"""
    MQTTClient.isconnected(client)

Whether the client's connection is up (false while the library reconnects after a loss).
"""
isconnected(client::Client) = connection_state(client) === :connected

"""
    MQTTClient.isclosed(client)

Whether the client's connection is over: ended by `disconnect`, or failed (see `iserror`).
"""
isclosed(client::Client) = connection_state(client) in (:closed, :error)

"""
    MQTTClient.isdone(client)

The same as `isclosed`: the client's connection is over.
"""
isdone(client::Client) = isclosed(client)

"""
    MQTTClient.iserror(client)

Whether the client's last connection attempt failed, or its connection was lost without
automatic reconnect (the `auto_reconnect=false` option); `reconnect` or `connect` try again.
"""
iserror(client::Client) = connection_state(client) === :error

# Starts a connect or a reconnect (`call`) on `s`; a closed client becomes ready again, as
# MQTTClient.jl's connect resets it.
function start_connection(call, s::ClientState, future::MQTTFuture, what::AbstractString)
    lock(() -> s.connection in (:closed, :error) && (s.connection = :ready), s.lock)
    return start(call, s, future, what; result = :session_present)
end

"""
    connect_async(client, connection) -> MQTTFuture

Starts connecting with `connection`; the future gives "session present" (a `UInt8`) once the
broker accepted. The first `connect` makes the library's client for `connection`, and so does a
`connect` with a connection different from the last one (after `disconnect`): the client then
starts anew, without the subscriptions made before. Operations called before the first `connect`
start now, just before it.
"""
function connect_async(client::Client, connection::MQTTConnection)
    future = MQTTFuture()
    GC.@preserve client begin
        lock(client.lock) do
            s = client.state
            if s === nothing || client.connection != connection
                if s !== nothing && lock(() -> s.connection in (:connected, :reconnecting), s.lock)
                    throw(MQTTException("connect: the client is connected; disconnect first",
                                        MQTTC_ERR_ALREADY_CONNECTED))
                end
                fresh = new_state(connection, client.ping_timeout)
                client.state = fresh
                client.connection = connection
                s === nothing || release(s)  # the library client of the previous connection
                s = fresh
                start_deferred(client, s)
            end
            start_connection(s, future, "connect") do handle, token
                ccall(sym(:mqttc_connect), Cint, (Ptr{Cvoid}, Ref{UInt64}), handle, token)
            end
        end
    end
    return future
end

"""
    connect(client, connection)

Connects and waits for the broker's answer; returns "session present". Extends
`Sockets.connect`, as MQTTClient.jl does.
"""
connect(client::Client, connection::MQTTConnection) =
    resolve(client, connect_async(client, connection))

"""
    reconnect_async(client[, connection]) -> MQTTFuture

Starts a new connection now, dropping a live one (its session carries on); after `disconnect` or
a failure, connects again. `connection`, when given, must be the one the client connected with.
"""
function reconnect_async(client::Client, connection::Union{Nothing,MQTTConnection} = nothing)
    client.connection === nothing &&
        throw(MQTTException("reconnect: the client never connected; use connect",
                            MQTTC_ERR_NOT_CONNECTED))
    connection === nothing || connection == client.connection ||
        throw(invalid("reconnect: not the client's connection; use connect to change it"))
    return submit(client) do s, future
        start_connection(s, future, "reconnect") do handle, token
            ccall(sym(:mqttc_reconnect), Cint, (Ptr{Cvoid}, Ref{UInt64}), handle, token)
        end
    end
end

"""
    reconnect(client[, connection])

As `reconnect_async`, waiting for the broker's answer; returns "session present".
"""
reconnect(client::Client, connection::Union{Nothing,MQTTConnection} = nothing) =
    resolve(client, reconnect_async(client, connection))

"""
    disconnect_async(client; reason_code=0x00, properties=nothing) -> MQTTFuture

Starts a clean disconnect: what was queued is sent, in-flight QoS 1/2 messages get the
`disconnect_timeout_ms` option (default 10 s) to be acknowledged, then DISCONNECT goes out. MQTT
5 may send a reason code (0x04 asks the broker to publish the will) and `Properties`.
"""
function disconnect_async(client::Client; reason_code::Integer = 0x00,
                          properties::Union{Nothing,Properties} = nothing)
    client.state === nothing && throw(MQTTException("Not Connected. Cannot Disconnect.",
                                                    MQTTC_ERR_NOT_CONNECTED))
    0 <= reason_code <= 255 || throw(invalid("reason_code $reason_code is not in 0..255"))
    return submit(client) do s, future
        start(s, future, "disconnect") do handle, token
            with_c_properties(properties) do list
                ccall(sym(:mqttc_disconnect_v5), Cint, (Ptr{Cvoid}, UInt8, Ptr{Cvoid}, Ref{UInt64}),
                      handle, reason_code, list, token)
            end
        end
    end
end

"""
    disconnect(client; reason_code=0x00, properties=nothing)

As `disconnect_async`, waiting until the connection is closed. Returns `(0x00, 0x00, 0x00)`, what
MQTTClient.jl returns after a clean shutdown of its three tasks (this package has no such
tasks); a failure throws instead.
"""
function disconnect(client::Client; keywords...)
    resolve(client, disconnect_async(client; keywords...))
    return (0x00, 0x00, 0x00)
end

"""
    MQTTClient.topic_wildcard_len_check(topic)

Throws an `MQTTException` unless `topic` is a topic name one may publish to (not empty, at most
65535 bytes, no wildcard, no NUL), as the library checks it.
"""
function topic_wildcard_len_check(topic::AbstractString)
    check(ccall(sym(:mqttc_topic_check), Cint, (Cstring,), c_text(topic, "topic")), "topic")
    return nothing
end

"""
    MQTTClient.filter_wildcard_len_check(filter)

Throws an `MQTTException` unless `filter` is a topic filter one may subscribe to (`+` and `#` as
whole levels, `#` last), as the library checks it.
"""
function filter_wildcard_len_check(filter::AbstractString)
    check(ccall(sym(:mqttc_filter_check), Cint, (Cstring,), c_text(filter, "filter")), "filter")
    return nothing
end

"""
    MQTTClient.topic_matches(filter, topic) -> Bool

Whether `topic` matches the topic filter `filter` (`+` one level, `#` the rest), as a broker
matches them; throws an `MQTTException` when either is invalid (see the two checks above).
"""
function topic_matches(filter::AbstractString, topic::AbstractString)
    result = Ref{Bool}(false)
    status = ccall(sym(:mqttc_topic_matches), Cint, (Cstring, Cstring, Ref{Bool}),
                   c_text(filter, "filter"), c_text(topic, "topic"), result)
    check(status, "topic_matches")
    return result[]
end

# `mqttc_packet_kind`, by the name `reason_string` takes.
const PACKET_KINDS = Dict(:connack => Cint(2), :puback => Cint(4), :pubrec => Cint(5),
                          :pubrel => Cint(6), :pubcomp => Cint(7), :suback => Cint(9),
                          :unsuback => Cint(11), :disconnect => Cint(14), :auth => Cint(15),
                          :connack_v311 => Cint(0x402), :suback_v311 => Cint(0x409))

"""
    MQTTClient.reason_string(code, kind::Symbol) -> String

The MQTT specification's name for the reason code `code` (0..255) in a packet of kind `kind`:
`:connack`, `:puback`, `:pubrec`, `:pubrel`, `:pubcomp`, `:suback`, `:unsuback`, `:disconnect`,
`:auth` (MQTT 5), `:connack_v311` or `:suback_v311` (MQTT 3.1.1's return codes). For example
`reason_string(0x87, :suback)` is "Not authorized", `reason_string(0x00, :disconnect)` "Normal
disconnection"; a code the packet cannot carry gives "unknown reason code".
"""
function reason_string(code::Integer, kind::Symbol)
    0 <= code <= 255 || throw(invalid("reason code $code is not in 0..255"))
    haskey(PACKET_KINDS, kind) ||
        throw(invalid("unknown packet kind $kind; the kinds are: " *
                      join(sort!(collect(keys(PACKET_KINDS))), ", ")))
    text = ccall(sym(:mqttc_reason_str), Ptr{UInt8}, (UInt8, Cint), code, PACKET_KINDS[kind])
    return unsafe_string(text)
end

# Runs `call(handle)`, a C call that changes the library client of `client`, and checks its
# status. Before the first `connect` there is no library client: the connection's `user` and
# `will` are what it will be made with.
function change_library_client(call, client::Client, what::AbstractString)
    GC.@preserve client begin
        lock(client.lock) do
            s = client.state
            s === nothing &&
                throw(MQTTException("$what: the client never connected; give the connection " *
                                    "its user and will instead", MQTTC_ERR_NOT_CONNECTED))
            check(call(s.handle), what)
        end
    end
    return nothing
end

"""
    MQTTClient.set_credentials(client, user::User)

The user name and password of the client's connections from now on: the next `reconnect`, or
the next automatic reconnect, sends them; the live connection keeps its own. An empty name sends
none, an empty password no password. Replaces the connection's `user` until `connect` is given
another connection. Needs a client that connected once.
"""
function set_credentials(client::Client, user::User)
    name = c_text(user.name, "user name")
    password = Vector{UInt8}(user.password)
    change_library_client(client, "set_credentials") do handle
        GC.@preserve name password begin
            name_pointer = isempty(name) ? Ptr{UInt8}(C_NULL) : pointer(name)
            ccall(sym(:mqttc_client_set_credentials), Cint,
                  (Ptr{Cvoid}, Ptr{UInt8}, Ptr{UInt8}, Csize_t),
                  handle, name_pointer, password, length(password))
        end
    end
end

"""
    MQTTClient.set_will(client, will::Message; properties=nothing)

The will of the client's connections from now on, as `set_credentials` does for the user: the
broker publishes it when a connection made from then on ends without a DISCONNECT. `properties`
are MQTT 5's will properties (`will_delay_interval`, `content_type`, ...). Replaces the
connection's `will` until `connect` is given another connection; `clear_will` removes it.
"""
function set_will(client::Client, will::Message; properties::Union{Nothing,Properties} = nothing)
    topic = c_text(will.topic, "will topic")
    payload = will.payload
    change_library_client(client, "set_will") do handle
        with_c_properties(properties) do list
            ccall(sym(:mqttc_client_set_will), Cint,
                  (Ptr{Cvoid}, Cstring, Ptr{UInt8}, Csize_t, Cint, Bool, Ptr{Cvoid}),
                  handle, topic, payload, length(payload), will.qos, will.retain, list)
        end
    end
end

"""
    MQTTClient.clear_will(client)

No will for the client's connections from now on (the live connection keeps its own).
"""
clear_will(client::Client) =
    change_library_client(handle -> ccall(sym(:mqttc_client_clear_will), Cint, (Ptr{Cvoid},),
                                          handle), client, "clear_will")

function qos_value(qos)
    q = qos isa QOS ? Int(qos) : qos
    q isa Integer && 0 <= q <= 2 ||
        throw(MQTTException("qos is $(repr(qos)), not 0, 1 or 2", MQTTC_ERR_INVALID_QOS))
    return Cint(q)
end

"""
    publish_async(client, message; properties=nothing) -> MQTTFuture
    publish_async(client, topic, payload...; dup=false, qos=QOS_0, retain=false,
                  properties=nothing) -> MQTTFuture

Queues a publish; the future completes when it was written (QoS 0, giving 0), acknowledged
(QoS 1) or fully handed over (QoS 2). `dup` is accepted and ignored: the library sets DUP on
resends. `properties` (MQTT 5): `Properties` such as `content_type`, `response_topic`,
`correlation_data`, `message_expiry_interval`, `user_property`.
"""
function publish_async(client::Client, message::Message;
                       properties::Union{Nothing,Properties} = nothing)
    topic_wildcard_len_check(message.topic)
    qos = qos_value(message.qos)
    topic = message.topic
    payload = message.payload
    retain = message.retain
    return submit(client) do s, future
        start(s, future, "publish"; result = qos == 0 ? :zero : :nothing) do handle, token
            with_c_properties(properties) do list
                ccall(sym(:mqttc_publish_v5), Cint,
                      (Ptr{Cvoid}, Cstring, Ptr{UInt8}, Csize_t, Cint, Bool, Ptr{Cvoid},
                       Ref{UInt64}),
                      handle, topic, payload, length(payload), qos, retain, list, token)
            end
        end
    end
end

publish_async(client::Client, topic::String, payload...; dup::Bool = false, qos = QOS_0,
              retain::Bool = false, properties::Union{Nothing,Properties} = nothing) =
    publish_async(client, Message(dup, UInt8(qos_value(qos)), retain, topic, payload...);
                  properties = properties)

"""
    publish(client, topic, payload...; dup=false, qos=QOS_0, retain=false, properties=nothing)

As `publish_async`, waiting until the publish completed: gives 0 at QoS 0, else `nothing`.
"""
publish(client::Client, topic::String, payload...; keywords...) =
    resolve(client, publish_async(client, topic, payload...; keywords...))

"""
    subscribe_async(client, topic, on_msg; qos=QOS_0, no_local=false,
                    retain_as_published=false, retain_handling=0, properties=nothing,
                    message_properties=false) -> MQTTFuture

Subscribes `on_msg(topic::String, payload::Vector{UInt8})` to the filter `topic`, replacing the
callback of an earlier subscription to the same filter. The future gives the SUBACK return codes.
`on_msg` runs on the client's event task, once per message for each matching filter.

MQTT 5 additions: the subscription options `no_local`, `retain_as_published` and
`retain_handling` (0: send retained messages at subscribe, 1: only if the subscription is new,
2: never), SUBSCRIBE `properties` (user properties), and with `message_properties=true` the
callback is `on_msg(topic, payload, properties::Properties)`.
"""
function subscribe_async(client::Client, topic::String, on_msg; qos = QOS_0,
                         no_local::Bool = false, retain_as_published::Bool = false,
                         retain_handling::Integer = 0,
                         properties::Union{Nothing,Properties} = nothing,
                         message_properties::Bool = false)
    filter_wildcard_len_check(topic)
    granted = qos_value(qos)
    0 <= retain_handling <= 2 ||
        throw(invalid("retain_handling $retain_handling is not 0, 1 or 2"))
    options = (no_local ? SUB_NO_LOCAL : Cint(0)) |
              (retain_as_published ? SUB_RETAIN_AS_PUBLISHED : Cint(0)) |
              (retain_handling == 1 ? SUB_RETAIN_IF_NEW : Cint(0)) |
              (retain_handling == 2 ? SUB_RETAIN_NEVER : Cint(0))
    return submit(client) do s, future
        # Held from registering the key until the topic maps to it, so that an event drained
        # meanwhile finds the callback.
        lock(s.lock) do
            s.next_key += 1
            key = s.next_key
            s.subscriptions[key] = Subscription(on_msg, message_properties)
            try
                start(s, future, "subscribe"; result = :return_codes, key = key) do handle, token
                    GC.@preserve topic begin
                        entry = Ref(mqttc_subscription(sizeof(mqttc_subscription), pointer(topic),
                                                       granted, C_NULL, Ptr{Cvoid}(key), C_NULL,
                                                       options))
                        with_c_properties(properties) do list
                            ccall(sym(:mqttc_subscribe_v5), Cint,
                                  (Ptr{Cvoid}, Ref{mqttc_subscription}, Csize_t, Ptr{Cvoid},
                                   Ref{UInt64}),
                                  handle, entry, 1, list, token)
                        end
                    end
                end
            catch
                delete!(s.subscriptions, key)
                rethrow()
            end
            replaced = get(s.keys, topic, UInt(0))
            s.keys[topic] = key
            delete!(s.subscriptions, replaced)
        end
    end
end

"""
    subscribe(client, topic, on_msg; qos=QOS_0, keywords...)

As `subscribe_async`, waiting for the SUBACK; returns its return codes.
"""
subscribe(client::Client, topic::String, on_msg; keywords...) =
    resolve(client, subscribe_async(client, topic, on_msg; keywords...))

"""
    unsubscribe_async(client, topics...; properties=nothing) -> MQTTFuture

Unsubscribes the filters; their callbacks stop at once, and the future completes on UNSUBACK.
"""
function unsubscribe_async(client::Client, topics::String...;
                           properties::Union{Nothing,Properties} = nothing)
    foreach(filter_wildcard_len_check, topics)
    filters = collect(topics)
    return submit(client) do s, future
        lock(s.lock) do
            start(s, future, "unsubscribe") do handle, token
                GC.@preserve filters begin
                    pointers = Ptr{UInt8}[pointer(f) for f in filters]
                    with_c_properties(properties) do list
                        ccall(sym(:mqttc_unsubscribe_v5), Cint,
                              (Ptr{Cvoid}, Ptr{Ptr{UInt8}}, Csize_t, Ptr{Cvoid}, Ref{UInt64}),
                              handle, pointers, length(pointers), list, token)
                    end
                end
            end
            for t in filters
                delete!(s.subscriptions, pop!(s.keys, t, UInt(0)))
            end
        end
    end
end

"""
    unsubscribe(client, topics...; properties=nothing)

As `unsubscribe_async`, waiting for the UNSUBACK.
"""
function unsubscribe(client::Client, topics::String...; keywords...)
    resolve(client, unsubscribe_async(client, topics...; keywords...))
    return nothing
end
