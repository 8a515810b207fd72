"""
    MQTTClient

An MQTT 3.1.1 client with the API of MQTTClient.jl, on top of the `mqttclient` C library.

The library runs the network on its own threads and never calls into Julia: every client is made
in the library's event mode, where completions, connection changes and messages wait in a queue
that one Julia task per client drains (see `event_loop`).
"""
module MQTTClient

using Libdl
using FileWatching: poll_fd
using Random: randstring

export MakeConnection, Client, MQTTConnection, MQTTFuture, MQTTException, User, Message, QOS,
    QOS_0, QOS_1, QOS_2, connect, connect_async, reconnect, reconnect_async, publish,
    publish_async, subscribe, subscribe_async, unsubscribe, unsubscribe_async, disconnect,
    isconnected

# ------------------------------------------------------------------------------------------------
# The C library

# The library's path is only known at run time (MQTTCLIENT_LIB, or where cargo built it), so the
# functions are looked up once in `__init__` and called through their pointers.
const C_FUNCTIONS = (
    :mqttc_last_error,
    :mqttc_status_str,
    :mqttc_options_init_size,
    :mqttc_client_new,
    :mqttc_client_new_unix,
    :mqttc_client_free,
    :mqttc_connect,
    :mqttc_reconnect,
    :mqttc_disconnect,
    :mqttc_publish,
    :mqttc_subscribe,
    :mqttc_unsubscribe_many,
    :mqttc_event_fd,
    :mqttc_event_pending,
    :mqttc_event_next,
    :mqttc_event_free,
)

const LIBRARY = Ref{Ptr{Cvoid}}(C_NULL)
const SYMBOLS = Dict{Symbol,Ptr{Cvoid}}()

sym(name::Symbol) = SYMBOLS[name]

function library_path()
    path = get(ENV, "MQTTCLIENT_LIB", "")
    isempty(path) || return path
    repo = normpath(joinpath(@__DIR__, "..", "..", ".."))
    for profile in ("release", "debug")
        candidate = joinpath(repo, "target", profile, "libmqttclient." * Libdl.dlext)
        isfile(candidate) && return candidate
    end
    error("libmqttclient not found: run `cargo build --lib` in $repo, or set MQTTCLIENT_LIB")
end

function __init__()
    LIBRARY[] = Libdl.dlopen(library_path())
    for name in C_FUNCTIONS
        SYMBOLS[name] = Libdl.dlsym(LIBRARY[], name)
    end
end

# Mirrors of the header's structs: same fields, same order, same C types (the Rust test
# `julia_wrapper_ccalls_match_the_header` compares them with include/mqttclient.h).

struct mqttc_options
    struct_size::UInt32
    keep_alive::UInt16
    clean_session::Bool
    client_id::Ptr{UInt8}
    username::Ptr{UInt8}
    password::Ptr{UInt8}
    password_len::Csize_t
    will_topic::Ptr{UInt8}
    will_payload::Ptr{UInt8}
    will_payload_len::Csize_t
    will_qos::Cint
    will_retain::Bool
    ping_timeout_ms::UInt32
    connect_timeout_ms::UInt32
    disconnect_timeout_ms::UInt32
    max_inflight::UInt32
    max_packet_size::UInt32
    token_history::UInt32
    callback_queue::UInt32
    auto_reconnect::Bool
    reconnect_min_ms::UInt32
    reconnect_max_ms::UInt32
    offline_max_messages::UInt32
    offline_max_bytes::Csize_t
    offline_overflow::Cint
    queue_before_connect::Bool
    rotate_servers::Bool
    event_mode::Bool
    tls::Bool
    tls_ca_file::Ptr{UInt8}
    tls_cert_file::Ptr{UInt8}
    tls_key_file::Ptr{UInt8}
    tls_server_name::Ptr{UInt8}
    tls_alpn::Ptr{UInt8}
    tls_insecure::Bool
    protocol_version::UInt8
    session_expiry::UInt32
    topic_alias_maximum::UInt16
    connect_properties::Ptr{Cvoid}
    will_properties::Ptr{Cvoid}
    inline_callbacks::Bool
    run_loop::Ptr{Cvoid}
    outgoing_max_messages::UInt32
    outgoing_max_bytes::Csize_t
    outgoing_wait_ms::UInt32
    ack_after_callback::Bool
    store_dir::Ptr{UInt8}
    store_sync::Cint
    store_sync_count::UInt32
    store_sync_ms::UInt32
    store_drop_on_clean::Bool
end

struct mqttc_message
    topic::Ptr{UInt8}
    topic_len::Csize_t
    payload::Ptr{UInt8}
    payload_len::Csize_t
    qos::Cint
    retain::Bool
    dup::Bool
    properties::Ptr{Cvoid}
end

struct mqttc_connection_event
    change::Cint
    reason::Cint
    session_present::Bool
    server::Ptr{UInt8}
    detail::Ptr{UInt8}
end

struct mqttc_event
    kind::Cint
    token::UInt64
    status::Cint
    message::mqttc_message
    subscriptions::Ptr{Ptr{Cvoid}}
    subscription_count::Csize_t
    connection::mqttc_connection_event
    detail::Ptr{UInt8}
    codes::Ptr{UInt8}
    code_count::Csize_t
    properties::Ptr{Cvoid}
end

const EVENT_MESSAGE = 1
const EVENT_COMPLETE = 2
const EVENT_CONNECTION = 3

const CONNECTION_UP = 0
const CONNECTION_LOST = 1  # anything else is CLOSED

# ------------------------------------------------------------------------------------------------
# The public types of MQTTClient.jl

@enum QOS::UInt8 QOS_0 = 0x00 QOS_1 = 0x01 QOS_2 = 0x02

"""
    MQTTException(msg)

Thrown by every function of this package when the library reports a failure; `msg` is the
library's own description.
"""
struct MQTTException <: Exception
    msg::AbstractString
end

Base.showerror(io::IO, e::MQTTException) = print(io, "MQTTException: ", e.msg)

"""
    User(name, password)

Credentials for `MakeConnection`; an empty name sends none.
"""
struct User
    name::String
    password::String
end

Base.:(==)(a::User, b::User) = a.name == b.name && a.password == b.password

"""
    Message(dup, qos, retain, topic, payload...)
    Message(qos::QOS, topic, payload...)

A message to publish (or a will). The payload arguments are written one after the other, as
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

Base.:(==)(a::Message, b::Message) =
    a.dup == b.dup && a.qos == b.qos && a.retain == b.retain && a.topic == b.topic &&
    a.payload == b.payload

struct TCP
    host::String
    port::UInt16
end

struct UDS
    path::String
end

"""
    MQTTConnection

The settings `MakeConnection` was given. They are applied when the C client is made, so the
connection passed to `connect` and `reconnect` is kept for compatibility only.
"""
struct MQTTConnection{T<:Union{TCP,UDS}}
    protocol::T
    keep_alive::Int64
    client_id::String
    user::User
    will::Message
    clean_session::Bool
end

"""
    MQTTFuture

What the `*_async` functions return. `fetch` waits and gives the result, which is an
`MQTTException` when the operation failed (the blocking forms throw it instead); `wait` and
`isready` work as for a `Channel`. Both may be called inside an `on_msg`.
"""
struct MQTTFuture
    channel::Channel{Any}
    owner::Any  # the ClientState whose event task completes it (declared below)
end

MQTTFuture(owner) = MQTTFuture(Channel{Any}(1), owner)

# On the owner's event task (an on_msg that waits), nobody else would drain the completion, so
# it is drained here; anywhere else the event task completes the future.
function await_ready(f::MQTTFuture)
    s = f.owner
    if get(task_local_storage(), EVENT_TASK_KEY, nothing) === s
        while !isready(f.channel)
            wait_and_drain(s)
        end
    end
    return nothing
end

Base.fetch(f::MQTTFuture) = (await_ready(f); fetch(f.channel))
Base.wait(f::MQTTFuture) = (await_ready(f); wait(f.channel); nothing)
Base.isready(f::MQTTFuture) = isready(f.channel)

complete!(f::MQTTFuture, value) = put!(f.channel, value)

# ------------------------------------------------------------------------------------------------
# Client state

# Who may free the C client: the finalizer when no event task runs, else the event task itself,
# which is the only one to wait on the library's descriptor and so must stop waiting first.
const TASK_IDLE = 0
const TASK_RUNNING = 1
const TASK_FREE_ASKED = 2
const TASK_FREED = 3

# How often a waiting event task wakes to see whether the finalizer asked it to free the client.
const POLL_SECONDS = 1.0

# Marks the event task, so that a blocking call made from an on_msg drains events itself.
const EVENT_TASK_KEY = :mqttclient_event_state

# An operation whose token has not completed yet.
struct Pending
    future::MQTTFuture
    what::String    # the operation, to name it in an MQTTException
    result::Symbol  # what a success gives: :nothing, :session_present or :return_codes
    key::UInt       # the subscription key of a subscribe (forgotten if it fails), else 0
end

# A token's completion: its status, and the library's description of a failure or the codes of a
# success (connect: [session present]; subscribe: the SUBACK return codes).
struct CompleteEvent
    token::UInt64
    status::Cint
    detail::String
    codes::Vector{UInt8}
end

# Everything the event task needs; it never holds the `Client`, so the client's finalizer can run.
mutable struct ClientState
    handle::Ptr{Cvoid}
    fd::Cint
    lock::ReentrantLock
    task_state::Threads.Atomic{Int}
    next_key::UInt
    keys::Dict{String,UInt}           # topic filter => key of its current subscription
    on_msg::Dict{UInt,Function}       # key => on_msg
    pending::Dict{UInt64,Pending}     # token => operation
    early::Dict{UInt64,CompleteEvent} # token => completion that came before its registration
    connection::Symbol                # :disconnected, :connected or :reconnecting
end

ClientState(handle::Ptr{Cvoid}, fd::Cint) = ClientState(
    handle, fd, ReentrantLock(), Threads.Atomic{Int}(TASK_IDLE), UInt(0), Dict{String,UInt}(),
    Dict{UInt,Function}(), Dict{UInt64,Pending}(), Dict{UInt64,CompleteEvent}(), :disconnected)

"""
    Client

An MQTT client, made by `MakeConnection`. The C client is released by a finalizer.
"""
mutable struct Client
    state::ClientState
end

function Base.show(io::IO, client::Client)
    s = client.state
    topics, connection = lock(() -> (collect(keys(s.keys)), s.connection), s.lock)
    print(io, "MQTTClient(State: ", connection, ", Topic Subscriptions: ", topics, ")")
end

"""
    isconnected(client)

Whether the client's connection is up (false while the library reconnects after a loss).
"""
isconnected(client::Client) = lock(() -> client.state.connection === :connected, client.state.lock)

"""
    MQTTClient.pending_events(client)

How many events wait in the library's queue for this client's event task; never more than the
`callback_queue` given to `MakeConnection`.
"""
function pending_events(client::Client)
    count = Ref{Csize_t}(0)
    status = GC.@preserve client ccall(sym(:mqttc_event_pending), Cint,
        (Ptr{Cvoid}, Ref{Csize_t}), client.state.handle, count)
    check(status, "pending_events")
    return Int(count[])
end

last_error() = unsafe_string(ccall(sym(:mqttc_last_error), Ptr{UInt8}, ()))

status_text(status::Integer) =
    unsafe_string(ccall(sym(:mqttc_status_str), Ptr{UInt8}, (Int32,), status))

# Called right after the failed call: the library keeps its last error per OS thread, and a task
# cannot move to another thread without yielding.
check(status::Integer, what::AbstractString) =
    status == 0 || throw(MQTTException(string(what, ": ", last_error())))

function c_text(s::AbstractString, what::AbstractString)
    text = String(s)
    occursin('\0', text) && throw(MQTTException("$what contains a NUL character"))
    return text
end

# Returns a copy of the immutable `x` with the named fields replaced (converted to their types).
function with_fields(x::T, changes) where {T}
    values = Dict{Symbol,Any}(changes)
    for name in keys(values)
        hasfield(T, name) || throw(ArgumentError("$T has no field $name"))
    end
    return T((get(values, name, getfield(x, name)) for name in fieldnames(T))...)
end

# ------------------------------------------------------------------------------------------------
# MakeConnection

"""
    MakeConnection(host, port; ping_timeout=60, keep_alive=32, client_id=randstring(8),
                   user=User("", ""), will=Message(false, 0x00, false, "", UInt8[]),
                   clean_session=true) -> (client, connection)
    MakeConnection(path; ...) -> (client, connection)

Makes a client for the broker at `host`:`port`, or at the Unix-domain socket `path`. Nothing is
sent before `connect`. `callback_queue` (an addition) bounds the events waiting for the client's
event task; when it is full the library stops reading from the broker until they are handled.
"""
function MakeConnection(host, port::Integer; ping_timeout = 60, keep_alive::Integer = 32,
                        client_id::String = randstring(8), user::User = User("", ""),
                        will::Message = Message(false, 0x00, false, "", UInt8[]),
                        clean_session::Bool = true, callback_queue = nothing)
    0 < port <= typemax(UInt16) || throw(MQTTException("port $port is not in 1..65535"))
    protocol = TCP(string(host), UInt16(port))
    connection = MQTTConnection(protocol, Int64(keep_alive), client_id, user, will, clean_session)
    return (new_client(connection, ping_timeout, callback_queue), connection)
end

function MakeConnection(path::AbstractString; ping_timeout = 60, keep_alive::Integer = 32,
                        client_id::String = randstring(8), user::User = User("", ""),
                        will::Message = Message(false, 0x00, false, "", UInt8[]),
                        clean_session::Bool = true, callback_queue = nothing)
    connection = MQTTConnection(UDS(String(path)), Int64(keep_alive), client_id, user, will,
                                clean_session)
    return (new_client(connection, ping_timeout, callback_queue), connection)
end

function new_client(connection::MQTTConnection, ping_timeout, callback_queue)
    0 <= connection.keep_alive <= typemax(UInt16) ||
        throw(MQTTException("keep_alive $(connection.keep_alive) is not in 0..65535"))
    client_id = c_text(connection.client_id, "client_id")
    name = c_text(connection.user.name, "user name")
    password = Vector{UInt8}(connection.user.password)
    will = connection.will
    will_topic = c_text(will.topic, "will topic")
    will_payload = will.payload
    defaults = Ref{mqttc_options}()
    ccall(sym(:mqttc_options_init_size), Cvoid, (Ref{mqttc_options}, Csize_t), defaults, sizeof(mqttc_options))
    handle = Ref{Ptr{Cvoid}}(C_NULL)
    # The options point into these buffers; the library copies them during mqttc_client_new*.
    status = GC.@preserve client_id name password will_topic will_payload begin
        changes = Pair{Symbol,Any}[
            :event_mode => true,
            :keep_alive => connection.keep_alive,
            :ping_timeout_ms => round(UInt32, Float64(ping_timeout) * 1000),
            :client_id => pointer(client_id),
            :clean_session => connection.clean_session,
        ]
        callback_queue === nothing || push!(changes, :callback_queue => callback_queue)
        if !isempty(name)
            push!(changes, :username => pointer(name))
            if !isempty(password)
                push!(changes, :password => pointer(password), :password_len => length(password))
            end
        end
        if !isempty(will_topic)
            push!(changes, :will_topic => pointer(will_topic),
                  :will_payload => pointer(will_payload),
                  :will_payload_len => length(will_payload), :will_qos => will.qos,
                  :will_retain => will.retain)
        end
        options = Ref(with_fields(defaults[], changes))
        protocol = connection.protocol
        if protocol isa UDS
            ccall(sym(:mqttc_client_new_unix), Cint,
                  (Cstring, Ref{mqttc_options}, Ref{Ptr{Cvoid}}),
                  c_text(protocol.path, "path"), options, handle)
        else
            ccall(sym(:mqttc_client_new), Cint,
                  (Cstring, UInt16, Ref{mqttc_options}, Ref{Ptr{Cvoid}}),
                  c_text(protocol.host, "host"), protocol.port, options, handle)
        end
    end
    check(status, "MakeConnection")
    fd = Ref{Cint}(-1)
    status = ccall(sym(:mqttc_event_fd), Cint, (Ptr{Cvoid}, Ref{Cint}), handle[], fd)
    if status != 0
        err = MQTTException(string("MakeConnection: ", last_error()))
        ccall(sym(:mqttc_client_free), Cvoid, (Ptr{Cvoid},), handle[])
        throw(err)
    end
    return finalizer(release, Client(ClientState(handle[], fd[])))
end

# The finalizer: frees the C client now when no event task runs, else leaves it to that task.
# Only atomics and a ccall that never waits for the network: no locks, no task switches.
function release(client::Client)
    s = client.state
    while true
        old = s.task_state[]
        old == TASK_IDLE || old == TASK_RUNNING || return
        wanted = old == TASK_IDLE ? TASK_FREED : TASK_FREE_ASKED
        if Threads.atomic_cas!(s.task_state, old, wanted) == old
            old == TASK_IDLE && ccall(sym(:mqttc_client_free), Cvoid, (Ptr{Cvoid},), s.handle)
            return
        end
    end
end

# ------------------------------------------------------------------------------------------------
# Operations and their futures

# Runs `call(handle, token)`, a C function that starts an operation, and returns the future the
# event task completes with the operation's result. `client` stays rooted across the call so its
# finalizer cannot free the handle under it.
function start(call, client::Client, what::AbstractString; result::Symbol = :nothing,
               key::UInt = UInt(0))
    token = Ref{UInt64}(0)
    future = GC.@preserve client begin
        s = client.state
        check(call(s.handle, token), what)
        register(s, token[], Pending(MQTTFuture(s), what, result, key))
    end
    return future
end

function register(s::ClientState, token::UInt64, p::Pending)
    early = lock(s.lock) do
        ensure_event_task(s)
        found = pop!(s.early, token, nothing)
        found === nothing && (s.pending[token] = p)
        found
    end
    early === nothing || finish(s, p, early)
    return p.future
end

# What MQTTClient.jl's futures give: "session present" for a connect, the SUBACK return codes for
# a subscribe; an MQTTException with the library's description for a failure.
function finish(s::ClientState, p::Pending, e::CompleteEvent)
    value = if e.status != 0
        MQTTException(string(p.what, ": ", isempty(e.detail) ? status_text(e.status) : e.detail))
    elseif p.result === :nothing
        nothing
    elseif p.result === :session_present
        e.codes[1]
    else
        e.codes
    end
    value isa MQTTException && p.key != 0 && forget_key(s, p.key)
    complete!(p.future, value)
end

function forget_key(s::ClientState, key::UInt)
    lock(s.lock) do
        delete!(s.on_msg, key)
        filter!(entry -> entry.second != key, s.keys)
    end
end

# Waits for `future` (draining the queue itself on the event task: see `await_ready`); throws its
# result when that is an exception.
function resolve(client::Client, future::MQTTFuture)
    value = GC.@preserve client fetch(future)
    value isa Exception && throw(value)
    return value
end

# ------------------------------------------------------------------------------------------------
# The event task

# Caller holds s.lock, which `event_loop_done` also takes to decide to stop: so either the task
# still running sees what the caller registered, or a new task is started here.
function ensure_event_task(s::ClientState)
    if Threads.atomic_cas!(s.task_state, TASK_IDLE, TASK_RUNNING) == TASK_IDLE
        Threads.@spawn event_loop(s)
    end
    return nothing
end

function event_loop(s::ClientState)
    task_local_storage(EVENT_TASK_KEY, s)
    try
        while true
            wait_and_drain(s)
            event_loop_done(s) && return
        end
    catch err
        @error "MQTTClient: the event task failed" exception = (err, catch_backtrace())
        # Going idle and taking the pending operations under one lock: an operation registered
        # after this starts a new task, none is left waiting for this one.
        pending, stopped = lock(s.lock) do
            idle = Threads.atomic_cas!(s.task_state, TASK_RUNNING, TASK_IDLE) == TASK_RUNNING
            (take_pending!(s), idle)
        end
        stopped || free_handle(s)
        failure = MQTTException(string("event task failed: ", sprint(showerror, err)))
        foreach(p -> complete!(p.future, failure), pending)
    end
end

function event_loop_done(s::ClientState)
    idle = lock(s.lock) do
        s.connection === :disconnected && isempty(s.pending) &&
            Threads.atomic_cas!(s.task_state, TASK_RUNNING, TASK_IDLE) == TASK_RUNNING
    end
    idle && return true
    if s.task_state[] == TASK_FREE_ASKED
        free_handle(s)
        # The client is unreachable, but someone may still wait on a future it returned.
        abandon(s, MQTTException("the client was released (garbage-collected)"))
        return true
    end
    return false
end

function free_handle(s::ClientState)
    ccall(sym(:mqttc_client_free), Cvoid, (Ptr{Cvoid},), s.handle)
    s.task_state[] = TASK_FREED
end

# Caller holds s.lock.
function take_pending!(s::ClientState)
    p = collect(values(s.pending))
    empty!(s.pending)
    return p
end

function abandon(s::ClientState, err::MQTTException)
    pending = lock(() -> take_pending!(s), s.lock)
    foreach(p -> complete!(p.future, err), pending)
end

# The descriptor is readable exactly while events wait; the timeout only serves `release`.
function wait_and_drain(s::ClientState)
    poll_fd(RawFD(s.fd), POLL_SECONDS; readable = true)
    drain(s)
end

function drain(s::ClientState)
    out = Ref{Ptr{mqttc_event}}(C_NULL)
    while true
        status = ccall(sym(:mqttc_event_next), Cint, (Ptr{Cvoid}, Ref{Ptr{mqttc_event}}),
                       s.handle, out)
        check(status, "mqttc_event_next")
        out[] == C_NULL && return
        dispatch(s, take_event(out[]))
    end
end

struct MessageEvent
    topic::String
    payload::Vector{UInt8}
    keys::Vector{UInt}
end

struct ConnectionEvent
    change::Cint
    detail::String
end

# Copies what the event points to, then frees it: the pointers die with the event.
function take_event(ptr::Ptr{mqttc_event})
    try
        e = unsafe_load(ptr)
        if e.kind == EVENT_MESSAGE
            m = e.message
            topic = unsafe_string(m.topic, m.topic_len)
            payload = copy(unsafe_wrap(Array, m.payload, m.payload_len))
            keys = UInt[UInt(k) for k in unsafe_wrap(Array, e.subscriptions, e.subscription_count)]
            return MessageEvent(topic, payload, keys)
        elseif e.kind == EVENT_COMPLETE
            detail = e.detail == C_NULL ? "" : unsafe_string(e.detail)
            codes = e.code_count == 0 ? UInt8[] : copy(unsafe_wrap(Array, e.codes, e.code_count))
            return CompleteEvent(e.token, e.status, detail, codes)
        elseif e.kind == EVENT_CONNECTION
            c = e.connection
            return ConnectionEvent(c.change, c.detail == C_NULL ? "" : unsafe_string(c.detail))
        end
        return nothing  # a kind newer than this package
    finally
        ccall(sym(:mqttc_event_free), Cvoid, (Ptr{mqttc_event},), ptr)
    end
end

dispatch(::ClientState, ::Nothing) = nothing

# One event carries the key of every matching subscription; a key without a callback was
# unsubscribed or replaced after the message was queued.
function dispatch(s::ClientState, e::MessageEvent)
    callbacks = lock(s.lock) do
        Function[s.on_msg[k] for k in e.keys if haskey(s.on_msg, k)]
    end
    for (i, on_msg) in enumerate(callbacks)
        try
            # The event task lives for the whole connection in the world age it started in; an
            # on_msg defined after that (a REPL, a lambda written after `connect`) is only
            # visible through invokelatest, as in a new task (MQTTClient.jl spawns one per message).
            Base.invokelatest(on_msg, e.topic, i == 1 ? e.payload : copy(e.payload))
        catch err
            @error "MQTTClient: on_msg for $(e.topic) failed" exception = (err, catch_backtrace())
        end
    end
end

function dispatch(s::ClientState, e::CompleteEvent)
    p = lock(s.lock) do
        pending = pop!(s.pending, e.token, nothing)
        pending === nothing && (s.early[e.token] = e)
        pending
    end
    p === nothing || finish(s, p, e)
end

function dispatch(s::ClientState, e::ConnectionEvent)
    state = if e.change == CONNECTION_UP
        :connected
    elseif e.change == CONNECTION_LOST
        :reconnecting
    else
        :disconnected
    end
    lock(() -> (s.connection = state), s.lock)
    e.change == CONNECTION_LOST && @warn "MQTTClient: connection lost ($(e.detail)); reconnecting"
end

# ------------------------------------------------------------------------------------------------
# The API of MQTTClient.jl

"""
    connect_async(client, connection) -> MQTTFuture

Starts connecting; the future gives "session present" (a `UInt8`) once the broker accepted.
"""
connect_async(client::Client, ::MQTTConnection) =
    start(client, "connect"; result = :session_present) do handle, token
        ccall(sym(:mqttc_connect), Cint, (Ptr{Cvoid}, Ref{UInt64}), handle, token)
    end

"""
    connect(client, connection)

Connects and waits for the broker's answer; returns "session present".
"""
connect(client::Client, connection::MQTTConnection) =
    resolve(client, connect_async(client, connection))

"""
    reconnect_async(client, connection) -> MQTTFuture

Starts a new connection now, dropping a live one (its session carries on); after `disconnect`,
connects again.
"""
reconnect_async(client::Client, ::MQTTConnection) =
    start(client, "reconnect"; result = :session_present) do handle, token
        ccall(sym(:mqttc_reconnect), Cint, (Ptr{Cvoid}, Ref{UInt64}), handle, token)
    end

"""
    reconnect(client, connection)

As `reconnect_async`, waiting for the broker's answer.
"""
reconnect(client::Client, connection::MQTTConnection) =
    resolve(client, reconnect_async(client, connection))

"""
    disconnect(client)

Sends what was queued, waits for in-flight QoS 1/2 acknowledgements, then says goodbye.
"""
function disconnect(client::Client)
    future = start(client, "disconnect") do handle, token
        ccall(sym(:mqttc_disconnect), Cint, (Ptr{Cvoid}, Ref{UInt64}), handle, token)
    end
    resolve(client, future)
    return nothing
end

"""
    publish_async(client, message) -> MQTTFuture
    publish_async(client, topic, payload...; dup=false, qos=QOS_0, retain=false) -> MQTTFuture

Queues a publish; the future completes when it was written (QoS 0), acknowledged (QoS 1) or
fully handed over (QoS 2). `dup` is accepted and ignored: the library sets DUP on resends.
"""
function publish_async(client::Client, message::Message)
    topic = c_text(message.topic, "topic")
    payload = message.payload
    return start(client, "publish") do handle, token
        ccall(sym(:mqttc_publish), Cint,
              (Ptr{Cvoid}, Cstring, Ptr{UInt8}, Csize_t, Cint, Bool, Ref{UInt64}),
              handle, topic, payload, length(payload), message.qos, message.retain, token)
    end
end

publish_async(client::Client, topic::String, payload...; dup::Bool = false, qos = QOS_0,
              retain::Bool = false) =
    publish_async(client, Message(dup, UInt8(qos), retain, topic, payload...))

"""
    publish(client, topic, payload...; dup=false, qos=QOS_0, retain=false)

As `publish_async`, waiting until the publish completed.
"""
publish(client::Client, topic::String, payload...; dup::Bool = false, qos = QOS_0,
        retain::Bool = false) =
    resolve(client, publish_async(client, topic, payload...; dup = dup, qos = qos,
                                  retain = retain))

"""
    subscribe_async(client, topic, on_msg; qos=QOS_0) -> MQTTFuture

Subscribes `on_msg(topic::String, payload::Vector{UInt8})` to the filter `topic`, replacing the
callback of an earlier subscription to the same filter. The future gives the SUBACK return codes.
`on_msg` runs on the client's event task, once per message for each matching filter.
"""
function subscribe_async(client::Client, topic::String, on_msg::Function; qos = QOS_0)
    topic_filter = c_text(topic, "topic")
    s = client.state
    # Held from registering the key until the topic maps to it, so that an event drained
    # meanwhile finds the callback.
    return lock(s.lock) do
        s.next_key += 1
        key = s.next_key
        s.on_msg[key] = on_msg
        future = try
            start(client, "subscribe"; result = :return_codes, key = key) do handle, token
                ccall(sym(:mqttc_subscribe), Cint,
                      (Ptr{Cvoid}, Cstring, Cint, Ptr{Cvoid}, Ptr{Cvoid}, Ref{UInt64}),
                      handle, topic_filter, Cint(qos), C_NULL, Ptr{Cvoid}(key), token)
            end
        catch
            delete!(s.on_msg, key)
            rethrow()
        end
        replaced = get(s.keys, topic, UInt(0))
        s.keys[topic] = key
        delete!(s.on_msg, replaced)
        future
    end
end

"""
    subscribe(client, topic, on_msg; qos=QOS_0)

As `subscribe_async`, waiting for the SUBACK; returns its return codes.
"""
subscribe(client::Client, topic::String, on_msg::Function; qos = QOS_0) =
    resolve(client, subscribe_async(client, topic, on_msg; qos = qos))

"""
    unsubscribe_async(client, topics...) -> MQTTFuture

Unsubscribes the filters; their callbacks stop at once, and the future completes on UNSUBACK.
"""
function unsubscribe_async(client::Client, topics::String...)
    filters = String[c_text(t, "topic") for t in topics]
    s = client.state
    return lock(s.lock) do
        future = GC.@preserve filters begin
            pointers = Ptr{UInt8}[pointer(f) for f in filters]
            start(client, "unsubscribe") do handle, token
                ccall(sym(:mqttc_unsubscribe_many), Cint,
                      (Ptr{Cvoid}, Ptr{Ptr{UInt8}}, Csize_t, Ref{UInt64}),
                      handle, pointers, length(pointers), token)
            end
        end
        for t in topics
            delete!(s.on_msg, pop!(s.keys, t, UInt(0)))
        end
        future
    end
end

"""
    unsubscribe(client, topics...)

As `unsubscribe_async`, waiting for the UNSUBACK.
"""
function unsubscribe(client::Client, topics::String...)
    resolve(client, unsubscribe_async(client, topics...))
    return nothing
end

end # module
