# One library client's state, and the event task that drains its queue.

"""
    MQTTFuture

What the `*_async` functions return. `fetch` waits and gives the result, which is an
`MQTTException` when the operation failed (the blocking forms throw it instead); `wait` and
`isready` work as for a `Channel`; `MQTTClient.properties(future)` gives the MQTT 5 properties of
the acknowledgement that completed it. All may be called inside an `on_msg`.
"""
mutable struct MQTTFuture
    channel::Channel{Any}
    owner::Any              # the ClientState whose event task completes it, once registered
    properties::Properties  # the acknowledgement's, set before the value is put
end

MQTTFuture() = MQTTFuture(Channel{Any}(1), nothing, Properties(Pair{Symbol,Any}[]))

# Marks the event task, so that a blocking call made from an on_msg drains events itself.
const EVENT_TASK_KEY = :mqttclient_event_state

# On the owner's event task (an on_msg that waits), nobody else would drain the completion, so
# it is drained here; anywhere else the event task completes the future.
function await_ready(f::MQTTFuture)
    owner = f.owner
    if owner !== nothing && get(task_local_storage(), EVENT_TASK_KEY, nothing) === owner
        while !isready(f.channel)
            wait_and_drain(owner)
        end
    end
    return nothing
end

Base.fetch(f::MQTTFuture) = (await_ready(f); fetch(f.channel))
Base.wait(f::MQTTFuture) = (await_ready(f); wait(f.channel); nothing)
Base.isready(f::MQTTFuture) = isready(f.channel)

"""
    MQTTClient.properties(future) -> Properties

Waits for the future, then gives the MQTT 5 properties of the acknowledgement that completed it:
the CONNACK's for a connect (the broker's limits, an assigned client identifier), the PUBACK's
or PUBCOMP's, the SUBACK's, the UNSUBACK's. Empty in MQTT 3.1.1.
"""
properties(f::MQTTFuture) = (wait(f); f.properties)

function complete!(f::MQTTFuture, value, properties::Properties = Properties(Pair{Symbol,Any}[]))
    f.properties = properties
    put!(f.channel, value)
end

# Who may free the library client: the finalizer when no event task runs, else the event task
# itself, which is the only one to wait on the library's descriptor and so must stop waiting first.
const TASK_IDLE = 0
const TASK_RUNNING = 1
const TASK_FREE_ASKED = 2
const TASK_FREED = 3

# How often a waiting event task wakes to see whether the finalizer asked it to free the client.
const POLL_SECONDS = 1.0

# An operation whose token has not completed yet.
struct Pending
    future::MQTTFuture
    what::String    # the operation, to name it in an MQTTException
    result::Symbol  # what a success gives: :nothing, :zero, :session_present or :return_codes
    key::UInt       # the subscription key of a subscribe (forgotten if it fails), else 0
end

# A token's completion: its status, the library's description of a failure or the codes of a
# success (connect: [session present]; subscribe: the SUBACK return codes), and the properties
# of the acknowledgement.
struct CompleteEvent
    token::UInt64
    status::Cint
    detail::String
    codes::Vector{UInt8}
    properties::Properties
end

struct MessageEvent
    topic::String
    payload::Vector{UInt8}
    keys::Vector{UInt}
    properties::Properties
end

struct ConnectionEvent
    change::Cint
    reason::Cint
    detail::String
end

# A message the store gave back, under a new token that completes like a publish's.
struct RestoredEvent
    token::UInt64
    topic::String
    payload::Vector{UInt8}
end

# A subscription's callback, and whether it also takes the message's properties.
struct Subscription
    on_msg::Any
    properties::Bool
end

# Everything the event task needs; it never holds the `Client`, so the client's finalizer can run.
mutable struct ClientState
    handle::Ptr{Cvoid}
    fd::Cint
    auto_reconnect::Bool
    on_restored::Any                       # the connection's `on_restored`, or nothing
    lock::ReentrantLock
    task_state::Threads.Atomic{Int}
    next_key::UInt
    keys::Dict{String,UInt}                # topic filter => key of its current subscription
    subscriptions::Dict{UInt,Subscription} # key => callback
    pending::Dict{UInt64,Pending}          # token => operation
    early::Dict{UInt64,CompleteEvent}      # token => completion that came before its registration
    connection::Symbol                     # :ready, :connected, :reconnecting, :closed or :error
end

ClientState(handle::Ptr{Cvoid}, fd::Cint, auto_reconnect::Bool, on_restored) = ClientState(
    handle, fd, auto_reconnect, on_restored, ReentrantLock(), Threads.Atomic{Int}(TASK_IDLE), UInt(0),
    Dict{String,UInt}(), Dict{UInt,Subscription}(), Dict{UInt64,Pending}(),
    Dict{UInt64,CompleteEvent}(), :ready)

# Frees the library client now when no event task runs, else leaves it to that task. Called by
# the `Client`'s finalizer, so only atomics and a ccall that never waits for the network: no
# locks, no task switches.
function release(s::ClientState)
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

# Runs `call(handle, token)`, a C function that starts an operation, and registers `future` to be
# completed with the operation's result. The caller keeps the `Client` rooted, so its finalizer
# cannot free the handle meanwhile.
function start(call, s::ClientState, future::MQTTFuture, what::AbstractString;
               result::Symbol = :nothing, key::UInt = UInt(0))
    token = Ref{UInt64}(0)
    check(call(s.handle, token), what)
    return register(s, token[], Pending(future, what, result, key))
end

function register(s::ClientState, token::UInt64, p::Pending)
    p.future.owner = s
    early = lock(s.lock) do
        ensure_event_task(s)
        found = pop!(s.early, token, nothing)
        found === nothing && (s.pending[token] = p)
        found
    end
    early === nothing || finish(s, p, early)
    return p.future
end

# What MQTTClient.jl's futures give: 0 for a QoS 0 publish, "session present" for a connect, the
# SUBACK return codes for a subscribe, else nothing; an MQTTException with the library's
# description for a failure.
function finish(s::ClientState, p::Pending, e::CompleteEvent)
    value = if e.status != 0
        MQTTException(string(p.what, ": ", isempty(e.detail) ? status_text(e.status) : e.detail),
                      e.status)
    elseif p.result === :zero
        0
    elseif p.result === :session_present
        e.codes[1]
    elseif p.result === :return_codes
        e.codes
    else
        nothing
    end
    if value isa MQTTException
        p.key != 0 && forget_key(s, p.key)
        if p.result === :session_present
            # A connection attempt failed (failed attempts are no connection events). Whatever
            # connection there was is gone too: a reconnect drops it first, reporting no loss.
            lock(() -> (s.connection = :error), s.lock)
        end
    end
    complete!(p.future, value, e.properties)
end

function forget_key(s::ClientState, key::UInt)
    lock(s.lock) do
        delete!(s.subscriptions, key)
        filter!(entry -> entry.second != key, s.keys)
    end
end

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

# The task stops once the connection is over (or not yet made) and nothing is pending; and when
# the finalizer asked it to free the client.
function event_loop_done(s::ClientState)
    idle = lock(s.lock) do
        !(s.connection in (:connected, :reconnecting)) && isempty(s.pending) &&
            Threads.atomic_cas!(s.task_state, TASK_RUNNING, TASK_IDLE) == TASK_RUNNING
    end
    idle && return true
    if s.task_state[] == TASK_FREE_ASKED
        free_handle(s)
        # The client is unreachable, but someone may still wait on a future it returned.
        abandon(s, MQTTException("the client was released (garbage-collected)",
                                 MQTTC_ERR_CANCELLED))
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
        event = out[]
        event == C_NULL && return
        try
            dispatch(s, take_event(event))
        finally
            # Only once the message was handled: with `ack_after_callback`, this is what lets
            # its acknowledgement go to the broker.
            ccall(sym(:mqttc_event_free), Cvoid, (Ptr{mqttc_event},), event)
        end
    end
end

# Copies what the event points to: the pointers die with the event.
function take_event(ptr::Ptr{mqttc_event})
    e = unsafe_load(ptr)
    if e.kind == EVENT_MESSAGE
        m = e.message
        topic = unsafe_string(m.topic, m.topic_len)
        payload = copy(unsafe_wrap(Array, m.payload, m.payload_len))
        keys = UInt[UInt(k) for k in unsafe_wrap(Array, e.subscriptions, e.subscription_count)]
        return MessageEvent(topic, payload, keys, read_properties(e.properties))
    elseif e.kind == EVENT_COMPLETE
        detail = e.detail == C_NULL ? "" : unsafe_string(e.detail)
        codes = e.code_count == 0 ? UInt8[] : copy(unsafe_wrap(Array, e.codes, e.code_count))
        return CompleteEvent(e.token, e.status, detail, codes, read_properties(e.properties))
    elseif e.kind == EVENT_CONNECTION
        c = e.connection
        return ConnectionEvent(c.change, c.reason, c.detail == C_NULL ? "" : unsafe_string(c.detail))
    elseif e.kind == EVENT_RESTORED
        m = e.message
        return RestoredEvent(e.token, unsafe_string(m.topic, m.topic_len),
                             copy(unsafe_wrap(Array, m.payload, m.payload_len)))
    end
    return nothing  # a kind newer than this package
end

dispatch(::ClientState, ::Nothing) = nothing

# One event carries the key of every matching subscription; a key without a callback was
# unsubscribed or replaced after the message was queued.
function dispatch(s::ClientState, e::MessageEvent)
    subscriptions = lock(s.lock) do
        Subscription[s.subscriptions[k] for k in e.keys if haskey(s.subscriptions, k)]
    end
    for (i, sub) in enumerate(subscriptions)
        payload = i == 1 ? e.payload : copy(e.payload)
        arguments = sub.properties ? (e.topic, payload, e.properties) : (e.topic, payload)
        try
            # The event task lives for the whole connection in the world age it started in; an
            # on_msg defined after that (a REPL, a lambda written after `connect`) is only
            # visible through invokelatest, as in a new task (MQTTClient.jl calls it so too).
            Base.invokelatest(sub.on_msg, arguments...)
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

# The token is registered even without an `on_restored`: its completion then finds it, instead
# of waiting in `early` for a registration that never comes.
function dispatch(s::ClientState, e::RestoredEvent)
    future = register(s, e.token, Pending(MQTTFuture(), "publish (restored)", :nothing, UInt(0)))
    s.on_restored === nothing && return
    try
        Base.invokelatest(s.on_restored, e.topic, e.payload, future)
    catch err
        @error "MQTTClient: on_restored for $(e.topic) failed" exception = (err, catch_backtrace())
    end
end

function dispatch(s::ClientState, e::ConnectionEvent)
    # A connection dropped by `reconnect` (reason MQTTC_ERR_CANCELLED) is one being made again.
    asked = e.change == CONNECTION_LOST && e.reason == MQTTC_ERR_CANCELLED
    state = if e.change == CONNECTION_UP
        :connected
    elseif asked
        :ready
    elseif e.change == CONNECTION_LOST
        s.auto_reconnect ? :reconnecting : :error
    else
        :closed
    end
    lock(() -> (s.connection = state), s.lock)
    if e.change == CONNECTION_LOST && !asked
        next = s.auto_reconnect ? "reconnecting" : "call reconnect to connect again"
        @warn "MQTTClient: connection lost ($(e.detail)); $next"
    end
end
