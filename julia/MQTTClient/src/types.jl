# The public types of MQTTClient.jl: QOS, MQTTException, User, Message, the protocols and the
# connection settings.

@enum QOS::UInt8 QOS_0 = 0x00 QOS_1 = 0x01 QOS_2 = 0x02

"""
    MQTT_ERR_INVAL

The `code` of an `MQTTException` for an argument refused as invalid: by this package (a port out
of range, an unknown keyword, a NUL character in a string) or by the library as
`MQTTC_ERR_INVALID_ARGUMENT`. The library's narrower refusals keep their own codes: an invalid
topic is -4, an invalid filter -5, a QoS outside 0..2 is -3 (`mqttc_status` in the header).
"""
const MQTT_ERR_INVAL = MQTTC_ERR_INVALID_ARGUMENT

"""
    MQTTException(msg, code = 0)

Thrown by every function of this package when an operation is refused or fails, and the value of
a failed `MQTTFuture`. `msg` is the library's own description; `code` the library's status (an
`mqttc_status`, negative), `MQTT_ERR_INVAL` for an argument this package refuses, 0 when neither.
"""
struct MQTTException <: Exception
    msg::AbstractString
    code::Int32
end

MQTTException(msg::AbstractString) = MQTTException(msg, Int32(0))

Base.showerror(io::IO, e::MQTTException) = print(io, "MQTTException: ", e.msg)

invalid(msg::AbstractString) = MQTTException(msg, MQTT_ERR_INVAL)

function c_text(s::AbstractString, what::AbstractString)
    text = String(s)
    occursin('\0', text) && throw(invalid("$what contains a NUL character"))
    return text
end

# Whether two values of one struct type have equal fields (`==` field by field).
same_fields(a::T, b::T) where {T} = all(getfield(a, f) == getfield(b, f) for f in fieldnames(T))

"""
    User(name, password)

Credentials for the connection; an empty name sends none.
"""
struct User
    name::String
    password::String
end

Base.:(==)(a::User, b::User) = same_fields(a, b)

"""
    Message(dup, qos, retain, topic, payload...)
    Message(qos::QOS, topic, payload...)

A message to publish, or a will. The payload arguments are written one after the other, as
`write` does: strings as their UTF-8 bytes, byte vectors as they are, numbers in binary.
"""
struct Message
    dup::Bool
    qos::UInt8
    retain::Bool
    topic::String
    payload::Vector{UInt8}

    function Message(dup::Bool, qos::UInt8, retain::Bool, topic::String, payload...)
        buffer = IOBuffer()
        for part in payload
            write(buffer, part)
        end
        return new(dup, qos, retain, topic, take!(buffer))
    end
end

Message(dup::Bool, qos::QOS, retain::Bool, topic::String, payload...) =
    Message(dup, UInt8(qos), retain, topic, payload...)
Message(qos::QOS, topic::String, payload...) = Message(false, UInt8(qos), false, topic, payload...)

Base.:(==)(a::Message, b::Message) = same_fields(a, b)

"""
    AbstractIOConnection

Where the broker is: `TCP`, `UDS`, or `Servers` (a list of server addresses: TLS, WebSockets,
several brokers).
"""
abstract type AbstractIOConnection end

"""
    TCP(ip = Sockets.localhost, port = 1883)

A broker at an IP address (an `IPAddr`) or host name, and a port. A host name is kept as given
and resolved by the library at each connect (MQTTClient.jl resolves it once, in `IOConnection`).
"""
struct TCP <: AbstractIOConnection
    ip::Union{IPAddr,String}
    port::Int64

    function TCP(ip::Union{IPAddr,AbstractString} = Sockets.localhost, port::Integer = 1883)
        0 < port <= typemax(UInt16) || throw(invalid("port $port is not in 1..65535"))
        return new(ip isa IPAddr ? ip : c_text(ip, "host"), port)
    end
end

"""
    UDS(path = pwd())

A broker listening on the Unix-domain socket at `path`.
"""
struct UDS <: AbstractIOConnection
    path::String

    UDS(path::AbstractString = pwd()) = new(c_text(path, "path"))
end

"""
    Servers(uri...)

A broker reachable at any of these addresses, tried in order at each connect (an addition to
MQTTClient.jl): `mqtt://host:port`, `mqtts://host:port` (TLS), `ws://host:port/path` and
`wss://host:port/path` (MQTT over WebSockets), `unix:///path`, or `host:port`.
"""
struct Servers <: AbstractIOConnection
    uris::Vector{String}

    function Servers(uris::AbstractString...)
        isempty(uris) && throw(invalid("Servers needs at least one address"))
        return new([c_text(u, "server address") for u in uris])
    end
end

Base.:(==)(a::T, b::T) where {T<:AbstractIOConnection} = same_fields(a, b)

"""
    IOConnection(ip::IPAddr, port)
    IOConnection(host::AbstractString, port)
    IOConnection(path::AbstractString)

A `TCP` protocol for a broker's address and port, or a `UDS` one for a Unix-domain socket.
"""
IOConnection(ip::Union{IPAddr,AbstractString}, port::Integer) = TCP(ip, port)
IOConnection(path::AbstractString) = UDS(path)

"""
    connect(protocol::TCP) -> TCPSocket
    connect(protocol::UDS) -> PipeEndpoint

A plain socket to the broker, as in MQTTClient.jl (which speaks MQTT over it): handy to see
whether a broker listens. The MQTT client is `connect(client, connection)`.
"""
connect(protocol::TCP) = connect(protocol.ip, protocol.port)
connect(protocol::UDS) = connect(protocol.path)

# The library's options a connection may set by keyword beyond MQTTClient.jl's, and what each
# takes: an integer or a Bool (converted to the field's C type), a file name or other text, MQTT 5
# `Properties`, or the name of an overflow policy.
const LIBRARY_OPTIONS = Dict{Symbol,Symbol}(
    :connect_timeout_ms => :integer,
    :disconnect_timeout_ms => :integer,
    :max_inflight => :integer,
    :max_packet_size => :integer,
    :token_history => :integer,
    :callback_queue => :integer,
    :auto_reconnect => :bool,
    :reconnect_min_ms => :integer,
    :reconnect_max_ms => :integer,
    :offline_max_messages => :integer,
    :offline_max_bytes => :integer,
    :offline_overflow => :overflow,
    :rotate_servers => :bool,
    :tls => :bool,
    :tls_ca_file => :text,
    :tls_cert_file => :text,
    :tls_key_file => :text,
    :tls_server_name => :text,
    :tls_alpn => :text,
    :tls_insecure => :bool,
    :tls_ca_path => :text,
    :tls_version => :text,
    :tls_ciphers => :text,
    :proxy => :text,
    :protocol_version => :integer,
    :session_expiry => :integer,
    :topic_alias_maximum => :integer,
    :topic_alias_max_out => :integer,
    :connect_properties => :properties,
    :will_properties => :properties,
    :outgoing_max_messages => :integer,
    :outgoing_max_bytes => :integer,
    :outgoing_wait_ms => :integer,
    :ack_after_callback => :bool,
    :store_dir => :text,
    :store_sync => :store_sync,
    :store_sync_count => :integer,
    :store_sync_ms => :integer,
    :store_drop_on_clean => :bool,
    :bind_address => :text,
    :on_restored => :callback,
)

# Checks one option keyword and gives its value as it is kept: integers and Bools as the C
# field's type, text as a String, the overflow policy as its `mqttc_overflow` value.
function library_option(name::Symbol, value)
    kind = get(LIBRARY_OPTIONS, name, nothing)
    kind === nothing &&
        throw(invalid("unknown option $name; the options are: " *
                      join(sort!(collect(keys(LIBRARY_OPTIONS))), ", ")))
    if kind === :integer
        field = fieldtype(mqttc_options, name)
        value isa Integer && !(value isa Bool) && 0 <= value <= typemax(field) ||
            throw(invalid("$name must be an integer in 0..$(typemax(field)), not $(repr(value))"))
        return field(value)
    elseif kind === :bool
        value isa Bool || throw(invalid("$name must be true or false, not $(repr(value))"))
        return value
    elseif kind === :text
        value isa AbstractString || throw(invalid("$name must be a string, not $(repr(value))"))
        return c_text(value, string(name))
    elseif kind === :properties
        value isa Properties || throw(invalid("$name must be Properties, not $(repr(value))"))
        return value
    elseif kind === :callback
        value isa Base.Callable || throw(invalid("$name must be a function, not $(repr(value))"))
        return value
    elseif kind === :store_sync
        haskey(STORE_SYNC_POLICIES, value) ||
            throw(invalid("$name must be :batch, :every or :none, not $(repr(value))"))
        return STORE_SYNC_POLICIES[value]
    end
    haskey(OVERFLOW_POLICIES, value) ||
        throw(invalid("$name must be :reject_new or :drop_oldest, not $(repr(value))"))
    return OVERFLOW_POLICIES[value]
end

# The option keywords, checked, in name order (so that equal settings compare equal).
library_options(options) =
    sort!(Pair{Symbol,Any}[name => library_option(name, value) for (name, value) in options];
          by = first)

"""
    MQTTConnection(protocol; keep_alive=32, client_id=randstring(8), user=User("", ""),
                   will=Message(false, 0x00, false, "", UInt8[]), clean_session=true,
                   options...)
    MQTTConnection(protocol, keep_alive, client_id, user, will, clean_session)

How a client connects: the broker (`protocol`: `TCP`, `UDS` or `Servers`) and the session
settings of MQTTClient.jl, plus any of the library's options as keywords (an addition; see the
package README): MQTT 5 (`protocol_version=5`, `session_expiry`, `connect_properties`,
`will_properties`, ...), TLS (`tls`, `tls_ca_file`, ...), reconnecting and offline buffering
(`auto_reconnect`, `offline_max_messages`, ...), `ack_after_callback`, the outgoing budget
(`outgoing_max_messages`, `outgoing_max_bytes`, `outgoing_wait_ms`), and the message store
(`store_dir`, `store_sync`, ...; `on_restored(topic, payload, future)` hears of each message
the store gives back). `connect(client, connection)`
makes the library's client from it. Also known as `Connection`, its name in MQTTClient.jl 0.3.
"""
struct MQTTConnection{T<:AbstractIOConnection}
    protocol::T
    keep_alive::Int64
    client_id::String
    user::User
    will::Message
    clean_session::Bool
    options::Vector{Pair{Symbol,Any}}

    function MQTTConnection(protocol::T, keep_alive::Integer, client_id::AbstractString,
                            user::User, will::Message, clean_session::Bool,
                            options = ()) where {T<:AbstractIOConnection}
        0 <= keep_alive <= typemax(UInt16) ||
            throw(invalid("keep_alive $keep_alive is not in 0..65535"))
        return new{T}(protocol, keep_alive, client_id, user, will, clean_session,
                      library_options(options))
    end
end

MQTTConnection(protocol::AbstractIOConnection; keep_alive::Integer = 32,
               client_id::AbstractString = randstring(8), user::User = User("", ""),
               will::Message = Message(false, 0x00, false, "", UInt8[]),
               clean_session::Bool = true, options...) =
    MQTTConnection(protocol, keep_alive, client_id, user, will, clean_session, options)

"""
    Connection

MQTTClient.jl 0.3's name for `MQTTConnection`.
"""
const Connection = MQTTConnection

Base.:(==)(a::MQTTConnection, b::MQTTConnection) = typeof(a) == typeof(b) && same_fields(a, b)

function Base.show(io::IO, connection::MQTTConnection)
    print(io, "MQTTConnection(Protocol: ", connection.protocol, ", Client ID: ",
          connection.client_id)
    connection.user == User("", "") || print(io, ", User Name: ", connection.user.name)
    print(io, ")")
end

# The value of an option keyword the connection was given, or `default`.
function option(connection::MQTTConnection, name::Symbol, default)
    for (key, value) in connection.options
        key === name && return value
    end
    return default
end
