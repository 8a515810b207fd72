# The Client, and the library client it makes for a connection.

"""
    Client(ping_timeout = 60)

An MQTT client, as in MQTTClient.jl: made without a broker, it gets one from the connection
given to `connect(client, connection)`, which makes the library's client from it. Operations
called before the first `connect` (`subscribe_async`, `publish_async`, ...) wait and start at
that `connect`, as in MQTTClient.jl. `ping_timeout` is in seconds: how long a ping may go
unanswered before the connection counts as lost. The library's client is released by a
finalizer; call `disconnect` first for a clean goodbye.
"""
mutable struct Client
    ping_timeout::UInt64
    lock::ReentrantLock
    state::Union{Nothing,ClientState}            # the library client, once `connect` made one
    connection::Union{Nothing,MQTTConnection}    # the connection it was made for
    deferred::Vector{Tuple{Any,MQTTFuture}}     # operations called before the first connect

    function Client(ping_timeout::Integer = UInt64(60))
        0 <= ping_timeout <= typemax(UInt32) ÷ 1000 ||
            throw(invalid("ping_timeout $ping_timeout is not in 0..$(typemax(UInt32) ÷ 1000) s"))
        client = new(UInt64(ping_timeout), ReentrantLock(), nothing, nothing,
                     Tuple{Any,MQTTFuture}[])
        return finalizer(release, client)
    end
end

# The finalizer. Reads `state` without the lock: a finalizer must not wait, and nothing else can
# touch an unreachable client.
function release(client::Client)
    s = client.state
    s === nothing || release(s)
    return nothing
end

"""
    Configuration(protocol, ping_timeout=60, keep_alive=32, client_id=randstring(8),
                  user=User("", ""), will=Message(false, 0x00, false, "", UInt8[]),
                  clean_session=true)
    Configuration(client, connection)

MQTTClient.jl 0.3's pair of a `Client` and its `MQTTConnection`; `client, connection =
configuration` takes it apart.
"""
struct Configuration
    client::Client
    connection::MQTTConnection
end

Configuration(protocol::AbstractIOConnection, ping_timeout::Integer = UInt64(60),
              keep_alive::Integer = 32, client_id::AbstractString = randstring(8),
              user::User = User("", ""), will::Message = Message(false, 0x00, false, "", UInt8[]),
              clean_session::Bool = true) =
    Configuration(Client(ping_timeout),
                  MQTTConnection(protocol, keep_alive, client_id, user, will, clean_session))

Base.iterate(c::Configuration, state = 1) =
    state == 1 ? (c.client, 2) : state == 2 ? (c.connection, 3) : nothing
Base.length(::Configuration) = 2

"""
    MakeConnection(host, port; ping_timeout=60, keep_alive=32, client_id=randstring(8),
                   user=User("", ""), will=Message(false, 0x00, false, "", UInt8[]),
                   clean_session=true, options...) -> (client, connection)
    MakeConnection(path; ...) -> (client, connection)
    MakeConnection(protocol::AbstractIOConnection; ...) -> (client, connection)

A `Client` and the `MQTTConnection` to give `connect`: for the broker at `host` (a name or an
`IPAddr`) and `port`, at the Unix-domain socket `path`, or at a `TCP`, `UDS` or `Servers`. The
keywords beyond MQTTClient.jl's are the library's options (see `MQTTConnection`). Nothing is
sent before `connect`.
"""
MakeConnection(host::Union{IPAddr,AbstractString}, port::Integer; keywords...) =
    MakeConnection(IOConnection(host, port); keywords...)
MakeConnection(path::AbstractString; keywords...) = MakeConnection(IOConnection(path); keywords...)

function MakeConnection(protocol::AbstractIOConnection; ping_timeout::Integer = UInt64(60),
                        keywords...)
    return (Client(ping_timeout), MQTTConnection(protocol; keywords...))
end

# Makes the library's client for `connection`, in event mode, and its state.
function new_state(connection::MQTTConnection, ping_timeout::UInt64)
    client_id = c_text(connection.client_id, "client_id")
    name = c_text(connection.user.name, "user name")
    password = Vector{UInt8}(connection.user.password)
    will = connection.will
    will_topic = c_text(will.topic, "will topic")
    will_payload = will.payload
    defaults = Ref{mqttc_options}()
    ccall(sym(:mqttc_options_init_size), Cvoid, (Ref{mqttc_options}, Csize_t), defaults,
          sizeof(mqttc_options))
    handle = Ref{Ptr{Cvoid}}(C_NULL)
    auto_reconnect = option(connection, :auto_reconnect, defaults[].auto_reconnect)
    # The library copies what the options point to during mqttc_client_new*: these only need to
    # live until it returns.
    status = with_c_properties(option(connection, :connect_properties, nothing)) do connect_list
        with_c_properties(option(connection, :will_properties, nothing)) do will_list
            GC.@preserve client_id name password will_topic will_payload connection begin
                changes = Pair{Symbol,Any}[
                    :event_mode => true,
                    # Operations called before the first connect are started just before it.
                    :queue_before_connect => true,
                    :keep_alive => connection.keep_alive,
                    :ping_timeout_ms => ping_timeout * 1000,
                    :client_id => pointer(client_id),
                    :clean_session => connection.clean_session,
                ]
                if !isempty(name)
                    push!(changes, :username => pointer(name))
                    if !isempty(password)
                        push!(changes, :password => pointer(password),
                              :password_len => length(password))
                    end
                end
                if !isempty(will_topic)
                    push!(changes, :will_topic => pointer(will_topic),
                          :will_payload => pointer(will_payload),
                          :will_payload_len => length(will_payload), :will_qos => will.qos,
                          :will_retain => will.retain)
                end
                for (key, value) in connection.options
                    key === :on_restored && continue  # the event task's, not the library's
                    push!(changes, key => (value isa String ? pointer(value) :
                                           key === :connect_properties ? connect_list :
                                           key === :will_properties ? will_list : value))
                end
                options = Ref(with_fields(defaults[], changes))
                new_library_client(connection.protocol, options, handle)
            end
        end
    end
    check(status, "connect")
    fd = Ref{Cint}(-1)
    status = ccall(sym(:mqttc_event_fd), Cint, (Ptr{Cvoid}, Ref{Cint}), handle[], fd)
    if status != 0
        err = MQTTException(string("connect: ", last_error()), status)
        ccall(sym(:mqttc_client_free), Cvoid, (Ptr{Cvoid},), handle[])
        throw(err)
    end
    return ClientState(handle[], fd[], auto_reconnect,
                       option(connection, :on_restored, nothing))
end

new_library_client(protocol::TCP, options, handle) =
    ccall(sym(:mqttc_client_new), Cint, (Cstring, UInt16, Ref{mqttc_options}, Ref{Ptr{Cvoid}}),
          string(protocol.ip), protocol.port, options, handle)

new_library_client(protocol::UDS, options, handle) =
    ccall(sym(:mqttc_client_new_unix), Cint, (Cstring, Ref{mqttc_options}, Ref{Ptr{Cvoid}}),
          protocol.path, options, handle)

function new_library_client(protocol::Servers, options, handle)
    uris = protocol.uris
    return GC.@preserve uris begin
        pointers = Ptr{UInt8}[pointer(u) for u in uris]
        ccall(sym(:mqttc_client_new_uris), Cint,
              (Ptr{Ptr{UInt8}}, Csize_t, Ref{mqttc_options}, Ref{Ptr{Cvoid}}),
              pointers, length(pointers), options, handle)
    end
end

# Starts `issue(state, future)`, an operation on the client's library client, and returns the
# future it completes. Before the first `connect` there is no library client: the operation
# waits in `deferred` and starts at that `connect`.
function submit(issue, client::Client)
    future = MQTTFuture()
    GC.@preserve client begin
        lock(client.lock) do
            s = client.state
            s === nothing ? push!(client.deferred, (issue, future)) : issue(s, future)
        end
    end
    return future
end

# Starts the operations called before the first `connect` on its new library client. One that
# the library refuses completes its future with the refusal.
function start_deferred(client::Client, s::ClientState)
    deferred = client.deferred
    client.deferred = Tuple{Any,MQTTFuture}[]
    for (issue, future) in deferred
        try
            issue(s, future)
        catch err
            err isa MQTTException || rethrow()
            complete!(future, err)
        end
    end
end

# :ready (no connection made yet, or one being made), :connected, :reconnecting (lost, the library
# reconnects), :closed (after `disconnect`) or :error (a connect failed, or a connection was lost
# without automatic reconnect).
function connection_state(client::Client)
    s = client.state
    return s === nothing ? :ready : lock(() -> s.connection, s.lock)
end

function Base.show(io::IO, client::Client)
    s = client.state
    topics = s === nothing ? String[] : lock(() -> sort!(collect(keys(s.keys))), s.lock)
    print(io, "MQTTClient[state: ", connection_state(client), ", subscriptions: ", topics, "]")
end

"""
    MQTTClient.pending_events(client)

How many events wait in the library's queue for the client's event task; never more than the
`callback_queue` option of its connection (default 4096), at which the library stops reading
from the broker until the task catches up.
"""
function pending_events(client::Client)
    s = client.state
    s === nothing && return 0
    count = Ref{Csize_t}(0)
    status = GC.@preserve client ccall(sym(:mqttc_event_pending), Cint,
                                       (Ptr{Cvoid}, Ref{Csize_t}), s.handle, count)
    check(status, "pending_events")
    return Int(count[])
end
