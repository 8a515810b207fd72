# MQTT 5 properties: the Julia value, and its conversion to and from the library's lists.

# The properties of MQTT 5 (table 2-4) by name: their identifier and the kind of value they hold.
const PROPERTY_IDS = Dict{Symbol,Tuple{Cint,Symbol}}(
    :payload_format_indicator => (1, :integer),
    :message_expiry_interval => (2, :integer),
    :content_type => (3, :string),
    :response_topic => (8, :string),
    :correlation_data => (9, :binary),
    :subscription_identifier => (11, :integer),
    :session_expiry_interval => (17, :integer),
    :assigned_client_identifier => (18, :string),
    :server_keep_alive => (19, :integer),
    :authentication_method => (21, :string),
    :authentication_data => (22, :binary),
    :request_problem_information => (23, :integer),
    :will_delay_interval => (24, :integer),
    :request_response_information => (25, :integer),
    :response_information => (26, :string),
    :server_reference => (28, :string),
    :reason_string => (31, :string),
    :receive_maximum => (33, :integer),
    :topic_alias_maximum => (34, :integer),
    :topic_alias => (35, :integer),
    :maximum_qos => (36, :integer),
    :retain_available => (37, :integer),
    :user_property => (38, :user),
    :maximum_packet_size => (39, :integer),
    :wildcard_subscription_available => (40, :integer),
    :subscription_identifier_available => (41, :integer),
    :shared_subscription_available => (42, :integer),
)

const PROPERTY_NAMES = Dict(id => name for (name, (id, _)) in PROPERTY_IDS)

"""
    Properties(name => value, ...; name = value, ...)

MQTT 5 properties, in order; names are those of the MQTT 5 specification in snake case
(`:content_type`, `:correlation_data`, `:message_expiry_interval`, `:user_property`, ...).
Integers for integer properties, strings for string ones, byte vectors (or strings) for
`:correlation_data` and `:authentication_data`, and `"name" => "value"` for a user property, which
may repeat: as a keyword, `user_property` also takes a vector of pairs.

Given to `publish` and the other operations as `properties`, to `MQTTConnection` as
`connect_properties` and `will_properties`; received ones come with messages (see `subscribe`)
and with the acknowledgements of futures (`MQTTClient.properties(future)`). `p[name]` gives the
first value of a property, `get(p, name, default)` and `haskey` work as for a `Dict`, and
iterating gives every `name => value` in order.
"""
struct Properties
    items::Vector{Pair{Symbol,Any}}

    # Only for items already checked (`property_item`) or read from the library.
    Properties(items::Vector{Pair{Symbol,Any}}) = new(items)
end

function Properties(pairs::Pair...; keywords...)
    items = Pair{Symbol,Any}[]
    for (name, value) in pairs
        push!(items, property_item(Symbol(name), value))
    end
    for (name, value) in keywords
        values = name === :user_property && value isa AbstractVector ? value : (value,)
        append!(items, [property_item(name, v) for v in values])
    end
    return Properties(items)
end

# One property as it is kept, after checking that the value fits the property's kind.
function property_item(name::Symbol, value)
    haskey(PROPERTY_IDS, name) || throw(invalid("unknown MQTT 5 property $name"))
    kind = PROPERTY_IDS[name][2]
    bad() = invalid("property $name cannot take $(repr(value))")
    if kind === :integer
        value isa Integer && !(value isa Bool) && 0 <= value <= typemax(UInt32) || throw(bad())
        return name => Int(value)
    elseif kind === :string
        value isa AbstractString || throw(bad())
        return name => c_text(value, string(name))
    elseif kind === :binary
        value isa Union{AbstractString,AbstractVector{UInt8}} || throw(bad())
        return name => Vector{UInt8}(value)
    end
    value isa Pair{<:AbstractString,<:AbstractString} || throw(bad())
    return name => (c_text(value.first, "user property name") =>
                    c_text(value.second, "user property value"))
end

Base.iterate(p::Properties, i...) = iterate(p.items, i...)
Base.length(p::Properties) = length(p.items)
Base.isempty(p::Properties) = isempty(p.items)
Base.:(==)(a::Properties, b::Properties) = a.items == b.items
Base.haskey(p::Properties, name::Symbol) = any(item -> item.first === name, p.items)

function Base.get(p::Properties, name::Symbol, default)
    for (key, value) in p.items
        key === name && return value
    end
    return default
end

function Base.getindex(p::Properties, name::Symbol)
    haskey(p, name) || throw(KeyError(name))
    return get(p, name, nothing)
end

Base.show(io::IO, p::Properties) = print(io, "Properties(", join(map(repr, p.items), ", "), ")")

"""
    MQTTClient.user_properties(p::Properties) -> Vector{Pair{String,String}}

Every user property, in order.
"""
user_properties(p::Properties) = Pair{String,String}[v for (k, v) in p.items if k === :user_property]

# Runs `f` with a library copy of `p` (C_NULL for nothing or none), released afterwards.
function with_c_properties(f, p::Union{Nothing,Properties})
    (p === nothing || isempty(p)) && return f(C_NULL)
    list = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall(sym(:mqttc_properties_new), Cint, (Ref{Ptr{Cvoid}},), list), "properties")
    try
        for (name, value) in p.items
            id, kind = PROPERTY_IDS[name]
            status = if kind === :integer
                ccall(sym(:mqttc_properties_set_int), Cint, (Ptr{Cvoid}, Cint, UInt32),
                      list[], id, value)
            elseif kind === :string
                ccall(sym(:mqttc_properties_set_string), Cint, (Ptr{Cvoid}, Cint, Cstring),
                      list[], id, value)
            elseif kind === :binary
                ccall(sym(:mqttc_properties_set_binary), Cint,
                      (Ptr{Cvoid}, Cint, Ptr{UInt8}, Csize_t), list[], id, value, length(value))
            else
                ccall(sym(:mqttc_properties_add_user), Cint, (Ptr{Cvoid}, Cstring, Cstring),
                      list[], value.first, value.second)
            end
            check(status, "property $name")
        end
        return f(list[])
    finally
        ccall(sym(:mqttc_properties_free), Cvoid, (Ptr{Cvoid},), list[])
    end
end

# A Julia copy of a list the library lends (a message's, an acknowledgement's).
function read_properties(list::Ptr{Cvoid})
    items = Pair{Symbol,Any}[]
    list == C_NULL && return Properties(items)
    count = Ref{Csize_t}(0)
    check(ccall(sym(:mqttc_properties_count), Cint, (Ptr{Cvoid}, Ref{Csize_t}), list, count),
          "properties")
    for index in 0:(Int(count[]) - 1)
        out = Ref(mqttc_property(sizeof(mqttc_property), 0, 0, C_NULL, C_NULL, C_NULL, 0))
        check(ccall(sym(:mqttc_properties_at), Cint, (Ptr{Cvoid}, Csize_t, Ref{mqttc_property}),
                    list, index, out), "properties")
        push!(items, received_item(out[]))
    end
    return Properties(items)
end

function received_item(p::mqttc_property)
    name = get(PROPERTY_NAMES, p.id, Symbol("property_", p.id))
    kind = haskey(PROPERTY_IDS, name) ? PROPERTY_IDS[name][2] : :integer
    value = if kind === :user
        unsafe_string(p.name) => unsafe_string(p.string)
    elseif kind === :string
        unsafe_string(p.string)
    elseif kind === :binary
        p.binary_len == 0 ? UInt8[] : copy(unsafe_wrap(Array, p.binary, p.binary_len))
    else
        Int(p.integer)
    end
    return name => value
end
