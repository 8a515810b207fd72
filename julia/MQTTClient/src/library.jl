# The C library: where it is found, the functions called, the mirrors of its structs.

# The library's path is only known at run time, so the functions are looked up once in `__init__`
# and called through their pointers (`sym`). The Rust test `julia_wrapper_ccalls_match_the_header`
# checks that this list names exactly the functions the package calls.
const C_FUNCTIONS = (
    :mqttc_last_error,
    :mqttc_status_str,
    :mqttc_options_init_size,
    :mqttc_client_new,
    :mqttc_client_new_unix,
    :mqttc_client_new_uris,
    :mqttc_client_free,
    :mqttc_connect,
    :mqttc_reconnect,
    :mqttc_disconnect_v5,
    :mqttc_publish_v5,
    :mqttc_subscribe_v5,
    :mqttc_unsubscribe_v5,
    :mqttc_topic_check,
    :mqttc_filter_check,
    :mqttc_topic_matches,
    :mqttc_reason_str,
    :mqttc_client_set_credentials,
    :mqttc_client_set_will,
    :mqttc_client_clear_will,
    :mqttc_properties_new,
    :mqttc_properties_free,
    :mqttc_properties_set_int,
    :mqttc_properties_set_string,
    :mqttc_properties_set_binary,
    :mqttc_properties_add_user,
    :mqttc_properties_count,
    :mqttc_properties_at,
    :mqttc_event_fd,
    :mqttc_event_pending,
    :mqttc_event_next,
    :mqttc_event_free,
)

const LIBRARY = Ref{Ptr{Cvoid}}(C_NULL)
const SYMBOLS = Dict{Symbol,Ptr{Cvoid}}()

sym(name::Symbol) = SYMBOLS[name]

const LIBRARY_FILE = "libmqttclient." * Libdl.dlext

# Where an installed copy may be: below each install prefix (`cmake --install build --prefix P`;
# CMake's default is /usr/local), in each library directory GNUInstallDirs may choose.
function installed_candidates(env)
    prefixes = String[]
    haskey(env, "MQTTCLIENT_PREFIX") && push!(prefixes, env["MQTTCLIENT_PREFIX"])
    push!(prefixes, "/usr/local", "/usr")
    multiarch = string(Sys.ARCH, "-linux-gnu")
    return [joinpath(prefix, dir, LIBRARY_FILE)
            for prefix in prefixes for dir in ("lib", "lib64", joinpath("lib", multiarch))]
end

"""
    MQTTClient.library_path(env = ENV, repo = <this repository>) -> String

Where libmqttclient is loaded from, the first of:

1. `env["MQTTCLIENT_LIB"]`, the library file itself, when set (an error if it is not a file);
2. an installed copy: under `env["MQTTCLIENT_PREFIX"]` when set, /usr/local and /usr (in `lib`,
   `lib64` and the multiarch `lib/<arch>-linux-gnu`), then the system library path (what the
   dynamic loader finds: `LD_LIBRARY_PATH`, the ld.so cache);
3. this repository's build (`repo`, the checkout this package is in): `target/release`, then
   `target/debug`.

When none has it, the error names every place looked at.
"""
function library_path(env = ENV, repo = normpath(joinpath(@__DIR__, "..", "..", "..")))
    explicit = get(env, "MQTTCLIENT_LIB", "")
    if !isempty(explicit)
        isfile(explicit) && return explicit
        error("MQTTCLIENT_LIB is set to $explicit, which is not a file")
    end
    tried = ["MQTTCLIENT_LIB (not set)"]
    for candidate in installed_candidates(env)
        isfile(candidate) && return candidate
        push!(tried, candidate)
    end
    found = Libdl.find_library(["libmqttclient"])
    isempty(found) || return found
    push!(tried, "libmqttclient on the system library path (LD_LIBRARY_PATH, the ld.so cache)")
    for profile in ("release", "debug")
        candidate = joinpath(repo, "target", profile, LIBRARY_FILE)
        isfile(candidate) && return candidate
        push!(tried, candidate)
    end
    error("libmqttclient not found; looked at:\n  ", join(tried, "\n  "),
          "\nBuild it (`cargo build --release --lib` in $repo), install it (`cmake --install`), ",
          "or set MQTTCLIENT_LIB to the library file.")
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
    pool::Ptr{Cvoid}
    bind_address::Ptr{UInt8}
    store::Ptr{Cvoid}
    topic_alias_max_out::UInt16
    tls_ca_path::Ptr{UInt8}
    tls_version::Ptr{UInt8}
    tls_ciphers::Ptr{UInt8}
    proxy::Ptr{UInt8}
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
    packet_id::UInt16
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

struct mqttc_subscription
    struct_size::UInt32
    filter::Ptr{UInt8}
    qos::Cint
    on_message::Ptr{Cvoid}
    userdata::Ptr{Cvoid}
    drop_userdata::Ptr{Cvoid}
    options::Cint
end

struct mqttc_property
    struct_size::UInt32
    id::Cint
    integer::UInt32
    name::Ptr{UInt8}
    string::Ptr{UInt8}
    binary::Ptr{UInt8}
    binary_len::Csize_t
end

const EVENT_MESSAGE = 1
const EVENT_COMPLETE = 2
const EVENT_CONNECTION = 3
const EVENT_RESTORED = 4

const CONNECTION_UP = 0
const CONNECTION_LOST = 1  # anything else is CLOSED

# The library's statuses this package gives itself (see `mqttc_status` in the header).
const MQTTC_ERR_INVALID_QOS = Int32(-3)
const MQTTC_ERR_INVALID_ARGUMENT = Int32(-7)
const MQTTC_ERR_NOT_CONNECTED = Int32(-20)
const MQTTC_ERR_ALREADY_CONNECTED = Int32(-21)
const MQTTC_ERR_CANCELLED = Int32(-26)

# The subscription option bits of `mqttc_sub_option`.
const SUB_NO_LOCAL = Cint(4)
const SUB_RETAIN_AS_PUBLISHED = Cint(8)
const SUB_RETAIN_IF_NEW = Cint(16)
const SUB_RETAIN_NEVER = Cint(32)

# `mqttc_overflow`, by the name the `offline_overflow` keyword takes.
const OVERFLOW_POLICIES = Dict(:reject_new => Cint(0), :drop_oldest => Cint(1))

# `mqttc_store_sync`, by the name the `store_sync` keyword takes.
const STORE_SYNC_POLICIES = Dict(:batch => Cint(0), :every => Cint(1), :none => Cint(2))

last_error() = unsafe_string(ccall(sym(:mqttc_last_error), Ptr{UInt8}, ()))

status_text(status::Integer) =
    unsafe_string(ccall(sym(:mqttc_status_str), Ptr{UInt8}, (Int32,), status))

# Called right after the failed call: the library keeps its last error per OS thread, and a task
# cannot move to another thread without yielding.
check(status::Integer, what::AbstractString) =
    status == 0 || throw(MQTTException(string(what, ": ", last_error()), status))

# Returns a copy of the immutable `x` with the named fields replaced (converted to their types).
function with_fields(x::T, changes) where {T}
    values = Dict{Symbol,Any}(changes)
    for name in keys(values)
        hasfield(T, name) || throw(ArgumentError("$T has no field $name"))
    end
    return T((get(values, name, getfield(x, name)) for name in fieldnames(T))...)
end
