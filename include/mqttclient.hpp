/**
 * @file
 * mqttclient.hpp — a header-only C++17 API over the C API of mqttclient.h (namespace mqttc).
 *
 * Every call is the C call of the same name, and the rules of mqttclient.h (threads, what is
 * borrowed, what each status means) hold as written there. What the header adds is ownership,
 * types, per-token completion callbacks and a guard against exceptions in callbacks:
 *  - mqttc::Client owns a client and frees it in its destructor (mqttc_client_free: the
 *    connection drops at once, so call disconnect().wait(...) first for a clean goodbye). It is
 *    move-only. mqttc::ClientRef is a copyable, non-owning reference for callbacks to capture:
 *    after the Client is gone its calls fail with MQTTC_ERR_INVALID_HANDLE, never touching freed
 *    memory (a handle is a slot and a generation, see docs/threading.md).
 *  - Callbacks are any callable (lambdas with captures, move-only ones too). A subscription's
 *    callable travels through the C `userdata` and is destroyed in `drop_userdata`, which the
 *    library calls exactly once, after its last call (unsubscribe, a replacing subscribe, refusal
 *    by the broker, or the client's destruction).
 *  - A message store the application supplies (mqttc::Store, given to Options::store) is held
 *    through std::shared_ptr by the Options, each client made with them and the library, which
 *    lets go in the store's `drop`, once no client uses it: it lives while anything may call it.
 *  - Messages, properties, connection events and log lines reach callbacks as views
 *    (mqttc::Message, mqttc::PropertiesView, std::string_view, mqttc::bytes_view) BORROWED from
 *    the library: valid only until the callback returns. Message::copy() gives an OwnedMessage,
 *    PropertiesView::copy() an owning Properties, to keep after it.
 *  - Errors: mqttc::error (a std::system_error, so a std::runtime_error) carries the mqttc_status
 *    and the library's text for it (mqttc_last_error), and from Token::wait the broker's reason
 *    code when it refused with one (mqttc::Reason, named by mqttc_reason_str). Every throwing call also has a noexcept
 *    overload whose last parameter is a std::error_code& (as std::filesystem's), set on failure
 *    and cleared on success; mqttc::last_error() then gives the text. A std::error_code compares
 *    equal to an mqttc_status (`ec == MQTTC_ERR_TIMEOUT`). Built without exceptions (no
 *    __cpp_exceptions, e.g. -fno-exceptions), or with MQTTC_CPP_EXCEPTIONS defined to 0, only the
 *    noexcept overloads exist. (Running out of memory for the C++ side of a call, a vector or a
 *    callable, ends the program in a noexcept call, as it does in a build without exceptions.)
 *
 * Callbacks and exceptions: a callback runs on a library thread (or inside Loop::run /
 * Token::wait with a loop), called from Rust through C, and an exception must never unwind into
 * those frames. Every callback this header installs therefore runs the user's callable inside a
 * catch-all. The first exception caught is kept by the client until Client::take_callback_error()
 * takes it; any other one (while one is kept, or once the Client is destroyed) is written to
 * stderr, and so is a kept one the Client is destroyed with: none goes unreported. The callback
 * that threw simply ends; the client carries on.
 *
 * Threads: as in C, every call may be made from any thread, including from inside any callback,
 * and a Client may be destroyed inside one of its own callbacks (the running callback finishes,
 * none runs after it). Token::wait inside a callback fails with MQTTC_ERR_IN_CALLBACK.
 *
 * Completion callbacks (Token::on_complete) ride on the C completion callback, which the Client
 * sets when it is made, before any token exists: set later, it could miss a completion racing the
 * setting. The cost: with it set, the library never writes a QoS 0 publish from the calling thread
 * (docs/threading.md, "Direct writes"), and every completion goes through the callback thread.
 */
#ifndef MQTTCLIENT_HPP
#define MQTTCLIENT_HPP

#include "mqttclient.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#ifndef MQTTC_CPP_EXCEPTIONS
#if defined(__cpp_exceptions)
#define MQTTC_CPP_EXCEPTIONS 1
#else
#define MQTTC_CPP_EXCEPTIONS 0
#endif
#endif

#if MQTTC_CPP_EXCEPTIONS
#include <exception>
#include <stdexcept>
#endif

namespace mqttc {

// ---------------------------------------------------------------------------------------------
// Errors

namespace detail {
class status_category final : public std::error_category {
public:
    const char *name() const noexcept override { return "mqttclient"; }
    std::string message(int status) const override { return mqttc_status_str(status); }
};
} // namespace detail

/// The category of every std::error_code this header sets: its values are mqttc_status values.
inline const std::error_category &category() noexcept {
    static const detail::status_category instance;
    return instance;
}

/// The library's text for the last failure on this thread (mqttc_last_error), copied.
inline std::string last_error() { return mqttc_last_error(); }

} // namespace mqttc

/// Lets `std::error_code ec = MQTTC_ERR_TIMEOUT;` and `ec == MQTTC_ERR_TIMEOUT` work (found by
/// argument-dependent lookup, hence in the namespace of mqttc_status, the global one).
inline std::error_code make_error_code(mqttc_status status) noexcept {
    return {static_cast<int>(status), mqttc::category()};
}

namespace std {
template <> struct is_error_code_enum<mqttc_status> : true_type {};
} // namespace std

namespace mqttc {

/// The specification's name of reason code `code` in a packet of kind `kind` (mqttc_reason_str):
/// "Not authorized", "Granted QoS 1", ...; "unknown reason code" for a code that packet cannot
/// carry. The text is the library's, valid for the life of the process.
inline std::string_view reason_str(std::uint8_t code, mqttc_packet_kind kind) noexcept {
    return mqttc_reason_str(code, kind);
}

/// What the broker said when it refused an operation: a reason code and the kind of packet it
/// came in (a refused MQTT 3.1.1 CONNACK's return code as its MQTT 5 equivalent, as the library
/// reports it). Token::reason() gives it; mqttc::error carries it.
struct Reason {
    std::uint8_t code;
    mqttc_packet_kind kind;
    /// The specification's name for it (reason_str).
    std::string_view name() const noexcept { return reason_str(code, kind); }
};

#if MQTTC_CPP_EXCEPTIONS
/// What the throwing calls throw: the status (code(), status()), the library's text for it and,
/// when the broker refused with a reason code (Token::wait), that reason, which what() names.
class error : public std::system_error {
public:
    error(mqttc_status status, const std::string &detail, std::optional<Reason> reason = std::nullopt)
        : std::system_error(make_error_code(status), with_reason(detail, reason)), detail_(detail),
          reason_(reason) {}
    mqttc_status status() const noexcept { return static_cast<mqttc_status>(code().value()); }
    /// mqttc_last_error() as it was when the call failed.
    const char *detail() const noexcept { return detail_.what(); }
    /// The broker's reason code and its name (reason().name()), when it gave one.
    std::optional<Reason> reason() const noexcept { return reason_; }

private:
    static std::string with_reason(const std::string &detail, std::optional<Reason> reason) {
        if (!reason || detail.find(reason->name()) != std::string::npos)
            return detail; // the library's text names it already
        char code[8];
        std::snprintf(code, sizeof code, "0x%02x", reason->code);
        return detail + " (reason " + code + ": " + std::string(reason->name()) + ")";
    }
    std::runtime_error detail_; // copies without throwing (a shared string), as exceptions must
    std::optional<Reason> reason_;
};
#endif

namespace detail {

/// Sets `ec` from a C status: cleared for MQTTC_OK. Returns whether it was MQTTC_OK.
inline bool check(mqttc_status status, std::error_code &ec) noexcept {
    if (status == MQTTC_OK) {
        ec.clear();
        return true;
    }
    ec = make_error_code(status);
    return false;
}

#if MQTTC_CPP_EXCEPTIONS
/// Runs the noexcept form `call(ec)` and throws mqttc::error if it set `ec`: each throwing call
/// is its noexcept overload plus this, so the two can never disagree.
template <class Call> decltype(auto) or_throw(Call &&call) {
    std::error_code ec;
    if constexpr (std::is_void_v<decltype(call(ec))>) {
        call(ec);
        if (ec)
            throw error(static_cast<mqttc_status>(ec.value()), last_error());
    } else {
        decltype(auto) result = call(ec); // a reference stays one (the fluent setters)
        if (ec)
            throw error(static_cast<mqttc_status>(ec.value()), last_error());
        return result;
    }
}
#endif

/// A count (of seconds, milliseconds) for an unsigned field of the C API, clamped to its range.
template <class T> T clamp_to(long long v) noexcept {
    return static_cast<T>(std::clamp<long long>(v, 0, static_cast<long long>(std::numeric_limits<T>::max())));
}
inline std::uint32_t to_ms(std::chrono::milliseconds d) noexcept {
    return clamp_to<std::uint32_t>(static_cast<long long>(d.count()));
}

/// std::make_shared<T>(), or null when memory runs out.
template <class T> std::shared_ptr<T> make_shared_or_null() noexcept {
#if MQTTC_CPP_EXCEPTIONS
    try {
        return std::make_shared<T>();
    } catch (const std::bad_alloc &) {
        return nullptr;
    }
#else
    return std::make_shared<T>();
#endif
}

/// A move-only type-erased callable (std::function requires copyable ones).
template <class Sig> class callback;
template <class R, class... A> class callback<R(A...)> {
    struct base {
        virtual ~base() = default;
        virtual R call(A... args) = 0;
    };
    template <class F> struct holder final : base {
        F fn;
        explicit holder(F &&f) : fn(std::move(f)) {}
        explicit holder(const F &f) : fn(f) {}
        R call(A... args) override { return fn(std::forward<A>(args)...); }
    };
    std::unique_ptr<base> fn_;

public:
    callback() noexcept = default;
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, callback>>>
    explicit callback(F &&f) : fn_(new holder<std::decay_t<F>>(std::forward<F>(f))) {}
    explicit operator bool() const noexcept { return fn_ != nullptr; }
    R operator()(A... args) const { return fn_->call(std::forward<A>(args)...); }
};

} // namespace detail

// ---------------------------------------------------------------------------------------------
// Views

/// A NUL-terminated string the library reads during the call (topics, filters, names): a string
/// literal, a const char * or a std::string. (A std::string_view need not end in NUL: make a
/// std::string of it.)
class zstring {
public:
    zstring(const char *s) noexcept : s_(s) {}
    zstring(const std::string &s) noexcept : s_(s.c_str()) {}
    const char *c_str() const noexcept { return s_; }

private:
    const char *s_;
};

namespace detail {
template <class C, class = void> struct is_byte_range : std::false_type {};
template <class C>
struct is_byte_range<C, std::void_t<decltype(std::data(std::declval<const C &>())),
                                    decltype(std::size(std::declval<const C &>()))>>
    : std::bool_constant<!std::is_array_v<C> &&
                         sizeof(*std::data(std::declval<const C &>())) == 1 &&
                         std::is_trivially_copyable_v<
                             std::remove_pointer_t<decltype(std::data(std::declval<const C &>()))>>> {};
} // namespace detail

/// A span of bytes it does not own (payloads, binary properties): from a pointer and a length, a
/// C string, or any contiguous range of 1-byte elements (std::string, std::string_view,
/// std::vector<std::uint8_t>, std::array<char, N>, ...). A view the library hands to a callback
/// is valid only until the callback returns.
class bytes_view {
public:
    using value_type = std::uint8_t;
    using const_iterator = const std::uint8_t *;

    constexpr bytes_view() noexcept = default;
    bytes_view(const void *data, std::size_t size) noexcept
        : data_(static_cast<const std::uint8_t *>(data)), size_(size) {}
    bytes_view(const char *s) noexcept : bytes_view(s, s ? std::strlen(s) : 0) {}
    template <class C, class = std::enable_if_t<detail::is_byte_range<C>::value>>
    bytes_view(const C &range) noexcept : bytes_view(std::data(range), std::size(range)) {}

    const std::uint8_t *data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const std::uint8_t *begin() const noexcept { return data_; }
    const std::uint8_t *end() const noexcept { return data_ + size_; }
    std::uint8_t operator[](std::size_t i) const noexcept { return data_[i]; }
    /// The same bytes as characters.
    std::string_view as_string() const noexcept {
        return {reinterpret_cast<const char *>(data_), size_};
    }

private:
    const std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

class Properties;

/// One property of a list, as mqttc_properties_at gives it: views into the list.
struct Property {
    mqttc_property_id id;
    std::uint32_t integer;   ///< integer properties
    std::string_view name;   ///< user properties: the name
    std::string_view string; ///< string properties, and a user property's value
    bytes_view binary;       ///< binary properties (correlation data, authentication data)
};

/// A property list the caller does not own (MQTT 5): a received message's, an event's, or a
/// Properties object's. Null (the default) reads as an empty list and, passed to a call, means
/// "no properties". A list lent to a callback is valid only until it returns; copy() keeps it.
class PropertiesView {
public:
    PropertiesView() noexcept = default;
    explicit PropertiesView(const mqttc_properties *list) noexcept : p_(list) {}
    const mqttc_properties *get() const noexcept { return p_; }

    /// The number of properties (each user property counts once); 0 for a null view.
    std::size_t size() const noexcept {
        std::size_t n = 0;
        return p_ && mqttc_properties_count(p_, &n) == MQTTC_OK ? n : 0;
    }
    bool empty() const noexcept { return size() == 0; }
    /// The property at `index`, in the order of the packet; nullopt past the end.
    std::optional<Property> at(std::size_t index) const noexcept {
        mqttc_property p;
        p.struct_size = sizeof p;
        if (!p_ || mqttc_properties_at(p_, index, &p) != MQTTC_OK)
            return std::nullopt;
        return Property{static_cast<mqttc_property_id>(p.id), p.integer, p.name ? p.name : "",
                        p.string ? p.string : "", bytes_view(p.binary, p.binary_len)};
    }
    /// The value of an integer, string or binary property, or of the first user property named
    /// `name`; nullopt when the list lacks it.
    std::optional<std::uint32_t> get_int(mqttc_property_id id) const noexcept {
        std::uint32_t v = 0;
        return p_ && mqttc_properties_get_int(p_, id, &v) == MQTTC_OK ? std::optional(v) : std::nullopt;
    }
    std::optional<std::string_view> get_string(mqttc_property_id id) const noexcept {
        const char *s = nullptr;
        return p_ && mqttc_properties_get_string(p_, id, &s) == MQTTC_OK ? std::optional<std::string_view>(s)
                                                                          : std::nullopt;
    }
    std::optional<bytes_view> get_binary(mqttc_property_id id) const noexcept {
        const std::uint8_t *d = nullptr;
        std::size_t n = 0;
        return p_ && mqttc_properties_get_binary(p_, id, &d, &n) == MQTTC_OK ? std::optional(bytes_view(d, n))
                                                                              : std::nullopt;
    }
    std::optional<std::string_view> get_user(zstring name) const noexcept {
        const char *s = nullptr;
        return p_ && mqttc_properties_get_user(p_, name.c_str(), &s) == MQTTC_OK
                   ? std::optional<std::string_view>(s)
                   : std::nullopt;
    }

    /// Walks the list: `for (mqttc::Property p : message.properties())`.
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = Property;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = Property;
        iterator(const PropertiesView *list, std::size_t i) noexcept : list_(list), i_(i) {}
        Property operator*() const noexcept { return *list_->at(i_); }
        iterator &operator++() noexcept {
            ++i_;
            return *this;
        }
        bool operator==(const iterator &o) const noexcept { return i_ == o.i_; }
        bool operator!=(const iterator &o) const noexcept { return i_ != o.i_; }

    private:
        const PropertiesView *list_;
        std::size_t i_;
    };
    iterator begin() const noexcept { return {this, 0}; }
    iterator end() const noexcept { return {this, size()}; }

    /// An owning copy, to keep past the callback. A null view copies to an empty Properties.
    inline Properties copy(std::error_code &ec) const noexcept;
#if MQTTC_CPP_EXCEPTIONS
    inline Properties copy() const;
#endif

protected:
    const mqttc_properties *p_ = nullptr;
};

namespace detail {
/// The setters of a property list the caller may write: Properties (which it owns) and AuthReply
/// (which the library lends). `Self::writable(ec)` gives the list, or null with `ec` set.
template <class Self> class property_writer {
public:
    Self &set_int(mqttc_property_id id, std::uint32_t value, std::error_code &ec) noexcept {
        if (mqttc_properties *list = self().writable(ec))
            check(mqttc_properties_set_int(list, id, value), ec);
        return self();
    }
    Self &set_string(mqttc_property_id id, zstring value, std::error_code &ec) noexcept {
        if (mqttc_properties *list = self().writable(ec))
            check(mqttc_properties_set_string(list, id, value.c_str()), ec);
        return self();
    }
    Self &set_binary(mqttc_property_id id, bytes_view value, std::error_code &ec) noexcept {
        if (mqttc_properties *list = self().writable(ec))
            check(mqttc_properties_set_binary(list, id, value.data(), value.size()), ec);
        return self();
    }
    Self &add_user(zstring name, zstring value, std::error_code &ec) noexcept {
        if (mqttc_properties *list = self().writable(ec))
            check(mqttc_properties_add_user(list, name.c_str(), value.c_str()), ec);
        return self();
    }
#if MQTTC_CPP_EXCEPTIONS
    Self &set_int(mqttc_property_id id, std::uint32_t value) {
        return or_throw([&](std::error_code &ec) -> Self & { return set_int(id, value, ec); });
    }
    Self &set_string(mqttc_property_id id, zstring value) {
        return or_throw([&](std::error_code &ec) -> Self & { return set_string(id, value, ec); });
    }
    Self &set_binary(mqttc_property_id id, bytes_view value) {
        return or_throw([&](std::error_code &ec) -> Self & { return set_binary(id, value, ec); });
    }
    Self &add_user(zstring name, zstring value) {
        return or_throw([&](std::error_code &ec) -> Self & { return add_user(name, value, ec); });
    }
#endif

private:
    Self &self() noexcept { return static_cast<Self &>(*this); }
};
} // namespace detail

/// A property list the caller owns (mqttc_properties_new / _copy, freed by the destructor), to
/// send with publish, subscribe, unsubscribe, disconnect, or as the connect or will properties.
/// Move-only; copy() makes another. The list is allocated by the first setter, so a default
/// Properties costs nothing and sends nothing. Setters (set_int, set_string, set_binary,
/// add_user) return *this, to chain.
class Properties : public PropertiesView, public detail::property_writer<Properties> {
public:
    Properties() noexcept = default;
    /// Takes ownership of a list made by the library (mqttc_properties_new / _copy,
    /// mqttc_token_properties).
    explicit Properties(mqttc_properties *owned) noexcept : PropertiesView(owned) {}
    Properties(Properties &&o) noexcept : PropertiesView(std::exchange(o.p_, nullptr)) {}
    Properties &operator=(Properties &&o) noexcept {
        if (this != &o) {
            mqttc_properties_free(list());
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    Properties(const Properties &) = delete;
    Properties &operator=(const Properties &) = delete;
    ~Properties() { mqttc_properties_free(list()); }

    /// Removes every property with this id (all user properties for MQTTC_PROP_USER_PROPERTY).
    Properties &remove(mqttc_property_id id, std::error_code &ec) noexcept {
        detail::check(p_ ? mqttc_properties_remove(list(), id) : MQTTC_OK, ec);
        return *this;
    }
#if MQTTC_CPP_EXCEPTIONS
    Properties &remove(mqttc_property_id id) {
        return detail::or_throw([&](std::error_code &ec) -> Properties & { return remove(id, ec); });
    }
#endif

private:
    friend class detail::property_writer<Properties>;
    // The list is this object's own, so writing through the view's pointer is sound.
    mqttc_properties *list() const noexcept { return const_cast<mqttc_properties *>(p_); }
    /// The list, made by the first setter.
    mqttc_properties *writable(std::error_code &ec) noexcept {
        mqttc_properties *made = nullptr;
        if (p_)
            return list();
        if (!detail::check(mqttc_properties_new(&made), ec))
            return nullptr;
        p_ = made;
        return made;
    }
};

inline Properties PropertiesView::copy(std::error_code &ec) const noexcept {
    mqttc_properties *out = nullptr;
    if (!p_) {
        ec.clear();
        return Properties();
    }
    return detail::check(mqttc_properties_copy(p_, &out), ec) ? Properties(out) : Properties();
}
#if MQTTC_CPP_EXCEPTIONS
inline Properties PropertiesView::copy() const {
    return detail::or_throw([&](std::error_code &ec) { return copy(ec); });
}
#endif

class OwnedMessage;

/// A message as a callback (or an event) sees it: views BORROWED from the library, valid only
/// until the callback returns (the event is freed). copy() keeps it.
class Message {
public:
    explicit Message(const mqttc_message *m) noexcept : m_(m) {}
    const mqttc_message *get() const noexcept { return m_; }

    std::string_view topic() const noexcept { return {m_->topic, m_->topic_len}; }
    bytes_view payload() const noexcept { return {m_->payload, m_->payload_len}; }
    /// The payload as characters (it need not be text, nor end in NUL).
    std::string_view payload_str() const noexcept { return payload().as_string(); }
    int qos() const noexcept { return m_->qos; }
    bool retain() const noexcept { return m_->retain; }
    bool dup() const noexcept { return m_->dup; }
    /// The packet identifier the broker gave the message: 0 at QoS 0 (see mqttc_message).
    std::uint16_t packet_id() const noexcept { return m_->packet_id; }
    /// MQTT 5 properties (response topic, correlation data, user properties, ...); empty in
    /// MQTT 3.1.1.
    PropertiesView properties() const noexcept { return PropertiesView(m_->properties); }

    /// An owning copy, properties included (mqttc_message_copy).
    inline OwnedMessage copy(std::error_code &ec) const noexcept;
#if MQTTC_CPP_EXCEPTIONS
    inline OwnedMessage copy() const;
#endif

protected:
    const mqttc_message *m_;
};

/// A message the caller owns (from Message::copy), freed by its destructor; usable wherever a
/// Message is, for as long as it lives. Move-only; empty (false) after a move or a failed copy.
class OwnedMessage : public Message {
public:
    OwnedMessage() noexcept : Message(nullptr) {}
    explicit OwnedMessage(mqttc_message *owned) noexcept : Message(owned) {}
    OwnedMessage(OwnedMessage &&o) noexcept : Message(std::exchange(o.m_, nullptr)) {}
    OwnedMessage &operator=(OwnedMessage &&o) noexcept {
        if (this != &o) {
            mqttc_message_free(const_cast<mqttc_message *>(m_)); // our own copy
            m_ = std::exchange(o.m_, nullptr);
        }
        return *this;
    }
    OwnedMessage(const OwnedMessage &) = delete;
    OwnedMessage &operator=(const OwnedMessage &) = delete;
    ~OwnedMessage() { mqttc_message_free(const_cast<mqttc_message *>(m_)); }
    explicit operator bool() const noexcept { return m_ != nullptr; }
};

inline OwnedMessage Message::copy(std::error_code &ec) const noexcept {
    mqttc_message *out = nullptr;
    return detail::check(mqttc_message_copy(m_, &out), ec) ? OwnedMessage(out) : OwnedMessage();
}
#if MQTTC_CPP_EXCEPTIONS
inline OwnedMessage Message::copy() const {
    return detail::or_throw([&](std::error_code &ec) { return copy(ec); });
}
#endif

/// A connection change, as the connection callback sees it; the strings are borrowed for the
/// callback (copy them to keep them).
struct ConnectionEvent {
    mqttc_connection_change change;
    mqttc_status reason;     ///< LOST: why; MQTTC_OK otherwise
    bool session_present;    ///< UP: the broker kept the session
    std::string_view server; ///< UP and LOST: the server, e.g. "mqtt://host:port"; empty for CLOSED
    std::string_view detail; ///< LOST: a readable reason; empty otherwise

    static ConnectionEvent from(const mqttc_connection_event &e) noexcept {
        return {static_cast<mqttc_connection_change>(e.change), e.reason, e.session_present,
                e.server ? e.server : "", e.detail ? e.detail : ""};
    }
};

/// One challenge of the broker in MQTT 5 enhanced authentication, as the authentication callback
/// (ClientRef::on_auth) sees it: borrowed for the callback.
struct AuthChallenge {
    std::string_view method;   ///< the Authentication Method
    bytes_view data;           ///< the broker's Authentication Data; empty when it sent none
    bool connecting;           ///< during the connect (before CONNACK); false for a re-authentication
    PropertiesView properties; ///< every property of the broker's AUTH

    static AuthChallenge from(const mqttc_auth_challenge &c) noexcept {
        return {c.method ? c.method : "", bytes_view(c.data, c.data_len), c.connecting,
                PropertiesView(c.properties)};
    }
};

/// The answer to an AuthChallenge: the properties of the AUTH the library sends when the
/// callback returns true, chiefly the next Authentication Data (data()); also a reason string
/// and user properties (the setters of Properties). The list is the library's, lent for the
/// callback: keep no AuthReply past it.
class AuthReply : public detail::property_writer<AuthReply> {
public:
    explicit AuthReply(mqttc_properties *lent) noexcept : p_(lent) {}
    /// Sets the Authentication Data to send (copied).
    AuthReply &data(bytes_view bytes, std::error_code &ec) noexcept {
        return set_binary(MQTTC_PROP_AUTHENTICATION_DATA, bytes, ec);
    }
#if MQTTC_CPP_EXCEPTIONS
    AuthReply &data(bytes_view bytes) { return set_binary(MQTTC_PROP_AUTHENTICATION_DATA, bytes); }
#endif
    mqttc_properties *get() const noexcept { return p_; }

private:
    friend class detail::property_writer<AuthReply>;
    mqttc_properties *writable(std::error_code &) const noexcept { return p_; }
    mqttc_properties *p_;
};

// ---------------------------------------------------------------------------------------------
// What a client shares with its callbacks

namespace detail {

class store_handle;

/// The part of a client its C callbacks reach through their userdata: the C++ handlers, the
/// callbacks waiting for tokens, and the first exception a callback threw. Shared (not owned by
/// the Client alone) so that a callback running while its Client is destroyed, from inside that
/// callback, still has it; subscriptions and ClientRefs share it too. It holds no library
/// resource, so outliving the client costs only memory.
class State : public std::enable_shared_from_this<State> {
public:
    mqttc_client *handle = nullptr;
    /// The caller's reference to the library's store of an mqttc::Store the client was made
    /// with: held while the client lives, so that every client made with that Store meanwhile
    /// gets the same store, which the library lets one client at a time use. close() drops it.
    std::shared_ptr<store_handle> store;

    /// Runs a user callable, catching what it throws (see the file comment).
    template <class Fn> void guarded(Fn &&fn) noexcept {
#if MQTTC_CPP_EXCEPTIONS
        try {
            fn();
        } catch (...) {
            report(std::current_exception());
        }
#else
        fn();
#endif
    }

    /// Calls `cb(status)` once `token` completes: now, on this thread, if it already has (or the
    /// client is gone), else from the completion callback.
    void when_complete(mqttc_token token, callback<void(mqttc_status)> cb) {
        mqttc_status status;
        {
            std::lock_guard<std::mutex> lock(mu_);
            // Polled under the lock the completion callback takes, so a completion either finds
            // `cb` in the map or happened before the poll, which then sees it.
            status = alive_ ? mqttc_token_poll(handle, token) : MQTTC_ERR_INVALID_HANDLE;
            if (status == MQTTC_PENDING) {
                waiting_.emplace(token, std::move(cb));
                return;
            }
        }
        guarded([&] { cb(status); });
    }

    template <class Handler> void set(std::shared_ptr<Handler> State::*slot, std::shared_ptr<Handler> h) {
        std::shared_ptr<Handler> old;
        {
            std::lock_guard<std::mutex> lock(mu_);
            old = std::exchange(this->*slot, std::move(h));
        }
        // `old` (it may be running: its call holds its own reference) goes outside the lock.
    }

    /// After mqttc_client_free: drops the handlers and waiting callables (they may hold
    /// ClientRefs, i.e. this object), and reports an exception nobody took.
    void close() noexcept {
        std::unordered_map<mqttc_token, callback<void(mqttc_status)>> waiting;
        std::shared_ptr<callback<void(const ConnectionEvent &)>> connection;
        std::shared_ptr<callback<void(int, std::string_view)>> log;
        std::shared_ptr<callback<bool(const AuthChallenge &, AuthReply &)>> auth;
        std::shared_ptr<callback<void(mqttc_token, const Message &)>> restored;
        std::shared_ptr<store_handle> kept_store = std::move(store); // freed after the client's free
        {
            std::lock_guard<std::mutex> lock(mu_);
            alive_ = false;
            waiting.swap(waiting_);
            connection.swap(on_connection);
            log.swap(on_log);
            auth.swap(on_auth);
            restored.swap(on_restored);
#if MQTTC_CPP_EXCEPTIONS
            if (first_error_)
                print(std::exchange(first_error_, nullptr), "was never taken");
#endif
        }
    }

#if MQTTC_CPP_EXCEPTIONS
    std::exception_ptr take_error() noexcept {
        std::lock_guard<std::mutex> lock(mu_);
        return std::exchange(first_error_, nullptr);
    }
#endif

    // The C callbacks; `userdata` is the State. Each keeps the State alive while it runs.
    static void complete_cb(mqttc_client *, mqttc_token token, mqttc_status status, void *userdata) noexcept {
        auto self = static_cast<State *>(userdata)->weak_from_this().lock();
        if (!self)
            return;
        callback<void(mqttc_status)> cb;
        {
            std::lock_guard<std::mutex> lock(self->mu_);
            auto it = self->waiting_.find(token);
            if (it == self->waiting_.end())
                return;
            cb = std::move(it->second);
            self->waiting_.erase(it);
        }
        self->guarded([&] { cb(status); });
    }
    static void connection_cb(mqttc_client *, const mqttc_connection_event *event, void *userdata) noexcept {
        auto self = static_cast<State *>(userdata)->weak_from_this().lock();
        if (auto h = self ? self->get(&State::on_connection) : nullptr)
            self->guarded([&] { (*h)(ConnectionEvent::from(*event)); });
    }
    static void restored_cb(mqttc_client *, mqttc_token token, const mqttc_message *m, void *userdata) noexcept {
        auto self = static_cast<State *>(userdata)->weak_from_this().lock();
        if (auto h = self ? self->get(&State::on_restored) : nullptr)
            self->guarded([&] { (*h)(token, Message(m)); });
    }
    static void log_cb(mqttc_client *, int level, const char *line, void *userdata) noexcept {
        auto self = static_cast<State *>(userdata)->weak_from_this().lock();
        if (auto h = self ? self->get(&State::on_log) : nullptr)
            self->guarded([&] { (*h)(level, std::string_view(line)); });
    }

    /// A handler that throws ends the exchange, as one returning false does.
    static bool auth_cb(mqttc_client *, const mqttc_auth_challenge *challenge, mqttc_properties *reply,
                        void *userdata) noexcept {
        auto self = static_cast<State *>(userdata)->weak_from_this().lock();
        auto h = self ? self->get(&State::on_auth) : nullptr;
        bool go_on = false;
        if (h)
            self->guarded([&] {
                AuthReply r(reply);
                go_on = (*h)(AuthChallenge::from(*challenge), r);
            });
        return go_on;
    }

    std::shared_ptr<callback<void(const ConnectionEvent &)>> on_connection;
    std::shared_ptr<callback<void(int, std::string_view)>> on_log;
    std::shared_ptr<callback<bool(const AuthChallenge &, AuthReply &)>> on_auth;
    std::shared_ptr<callback<void(mqttc_token, const Message &)>> on_restored;

private:
    template <class Handler> std::shared_ptr<Handler> get(std::shared_ptr<Handler> State::*slot) {
        std::lock_guard<std::mutex> lock(mu_);
        return this->*slot;
    }

#if MQTTC_CPP_EXCEPTIONS
    void report(std::exception_ptr e) noexcept {
        std::lock_guard<std::mutex> lock(mu_);
        if (alive_ && !first_error_)
            first_error_ = std::move(e);
        else
            print(e, alive_ ? "while an earlier one was not yet taken" : "after its client was destroyed");
    }
    static void print(const std::exception_ptr &e, const char *when) noexcept {
        // Printed inside the handlers: what() lives only as long as the exception object.
        try {
            std::rethrow_exception(e);
        } catch (const std::exception &x) {
            std::fprintf(stderr, "mqttclient: a callback threw (%s): %s\n", when, x.what());
        } catch (...) {
            std::fprintf(stderr, "mqttclient: a callback threw (%s) something not a std::exception\n", when);
        }
    }
    std::exception_ptr first_error_;
#endif

    std::mutex mu_;
    bool alive_ = true;
    std::unordered_map<mqttc_token, callback<void(mqttc_status)>> waiting_;
};

/// A subscription's callable, the C userdata of its message callback; deleted by drop_userdata.
template <class F> struct subscription final {
    std::shared_ptr<State> state;
    F fn;

    static void on_message(mqttc_client *, const mqttc_message *m, void *userdata) noexcept {
        auto *self = static_cast<subscription *>(userdata);
        self->state->guarded([&] { self->fn(Message(m)); });
    }
    static void drop(void *userdata) noexcept { delete static_cast<subscription *>(userdata); }
};

} // namespace detail

// ---------------------------------------------------------------------------------------------
// Loop, options

/// A loop that runs clients on the application's own thread (mqttc_loop; docs/threading.md):
/// give it to Options::run_loop, then call run() again and again. Move-only; the destructor
/// releases the caller's handle (clients made with it keep the loop alive).
///
/// From the application's own poll loop (poll, epoll, libuv): wait until fd() is readable, for
/// at most timeout_ms(), then run(0ms), which handles what is ready without waiting:
///
///     pollfd p{loop.fd(), POLLIN, 0};
///     poll(&p, 1, loop.timeout_ms());
///     loop.run(0ms);
class Loop {
public:
#if MQTTC_CPP_EXCEPTIONS
    Loop() : h_(detail::or_throw([](std::error_code &ec) { return create(ec).release(); })) {}
    /// Runs the clients until something reached the application or `timeout` passed.
    void run(std::chrono::milliseconds timeout) const {
        detail::or_throw([&](std::error_code &ec) { run(timeout, ec); });
    }
    int fd() const {
        return detail::or_throw([&](std::error_code &ec) { return fd(ec); });
    }
    int timeout_ms() const {
        return detail::or_throw([&](std::error_code &ec) { return timeout_ms(ec); });
    }
#endif
    /// The descriptor that is readable while the loop has something to handle (mqttc_loop_fd):
    /// the loop's, the same at every call; only wait on it, never read, write or close it.
    int fd(std::error_code &ec) const noexcept {
        int out = -1;
        detail::check(mqttc_loop_fd(h_, &out), ec);
        return out;
    }
    /// How long the application may wait on fd() before it must run the loop for its timers
    /// (mqttc_loop_timeout_ms), as poll() takes it: 0 when there is work now, -1 for no limit.
    /// Ask again after each run.
    int timeout_ms(std::error_code &ec) const noexcept {
        int ms = -1;
        detail::check(mqttc_loop_timeout_ms(h_, &ms), ec);
        return ms;
    }
    static Loop create(std::error_code &ec) noexcept {
        mqttc_loop *l = nullptr;
        detail::check(mqttc_loop_new(&l), ec);
        return Loop(l);
    }
    void run(std::chrono::milliseconds timeout, std::error_code &ec) const noexcept {
        detail::check(mqttc_loop_run(h_, detail::to_ms(timeout)), ec);
    }
    Loop(Loop &&o) noexcept : h_(o.release()) {}
    Loop &operator=(Loop &&o) noexcept {
        if (this != &o) {
            mqttc_loop_free(h_);
            h_ = o.release();
        }
        return *this;
    }
    Loop(const Loop &) = delete;
    Loop &operator=(const Loop &) = delete;
    ~Loop() { mqttc_loop_free(h_); }
    const mqttc_loop *get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    explicit Loop(mqttc_loop *l) noexcept : h_(l) {}
    mqttc_loop *release() noexcept { return std::exchange(h_, nullptr); }
    mqttc_loop *h_;
};

// ---------------------------------------------------------------------------------------------
// Persistence

/// A message store the application supplies (mqttc_store_new; docs/persistence.md): a table of
/// keys and values kept wherever the application keeps data (flash, a database). Subclass it,
/// make it with std::make_shared, and give it to Options::store. Options and each client made
/// with it hold a std::shared_ptr to it, and so does the library from the making of the first
/// such client until `drop`: the object lives as long as anything may call it.
///
/// The library calls the virtuals one at a time, never two at once, but from several threads
/// (the thread making a client, publishing, the network thread or loop, the one destroying a
/// client); see mqttc_store_callbacks. They must not call the library: a Store hands values
/// back by returning them. Keys are short printable ASCII strings the library makes ("m.17");
/// treat them as opaque. Values are bytes, possibly empty.
///
/// A virtual fails by throwing (anything: the exception never reaches the library) or by
/// calling fail(code); either way the library reports it as MQTTC_ERR_STORE (a publish whose
/// put failed fails, and is not sent) and names the call, the key and the code, -1 for an
/// exception. The first exception caught is kept until take_error() takes it; the library
/// reports each failure itself (a status, a log line), so later ones are not kept.
///
/// Every client made with Options given the same Store, while one made earlier lives, shares
/// one library store with it, which one client at a time may use: the others fail with
/// MQTTC_ERR_STORE. A client made later, after those are destroyed, restores what they left.
class Store {
public:
    Store() = default;
    Store(const Store &) = delete;
    Store &operator=(const Store &) = delete;
    virtual ~Store() = default;

    /// Stores `value` under `key`, replacing what the key held. Both are borrowed for the call.
    virtual void put(std::string_view key, bytes_view value) = 0;
    /// The value under `key`, or nullopt when the key has none.
    virtual std::optional<std::vector<std::uint8_t>> get(std::string_view key) = 0;
    /// Removes `key`; removing a key that is not there succeeds.
    virtual void remove(std::string_view key) = 0;
    /// Every key held, in any order (the application's own keys too: the library leaves them).
    virtual std::vector<std::string> list() = 0;
    /// Removes every key (a clean session with Options::store_drop_on_clean).
    virtual void clear() = 0;
    /// Makes what was stored durable against a power loss, when Options::store_sync says. The
    /// default does nothing: what put and remove did is durable once they return.
    virtual void sync() {}

#if MQTTC_CPP_EXCEPTIONS
    /// The first exception a virtual threw and nobody took yet, or null.
    std::exception_ptr take_error() noexcept {
        std::lock_guard<std::mutex> lock(error_mu_);
        return std::exchange(error_, nullptr);
    }
#endif

protected:
    /// Inside a virtual: makes the call fail with `code` (nonzero; 0 counts as -1) once it
    /// returns, without an exception (the way to fail in a build without exceptions).
    void fail(int code = -1) noexcept { failure_ = code ? code : -1; }

private:
    friend class detail::store_handle;

    /// Runs `call()` (which returns a failure code, 0 for none) for the library: what it throws
    /// ends here.
    template <class Call> int run(Call &&call) noexcept {
        failure_ = 0; // the library's calls are one at a time, each after the last returned
#if MQTTC_CPP_EXCEPTIONS
        try {
            int code = call();
            return code ? code : failure_;
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mu_);
            if (!error_)
                error_ = std::current_exception();
            return -1;
        }
#else
        int code = call();
        return code ? code : failure_;
#endif
    }

    // Two locks: handle_mu_ is held across mqttc_store_new, error_mu_ inside the library's calls
    // of the virtuals, and one lock for both could make each wait for the other.
    std::mutex handle_mu_;
    std::weak_ptr<detail::store_handle> handle_; // the library's store while a client holds it
    int failure_ = 0;
#if MQTTC_CPP_EXCEPTIONS
    std::mutex error_mu_;
    std::exception_ptr error_;
#endif
};

namespace detail {

/// The caller's reference to the library's store over a Store (mqttc_store_new, freed by the
/// destructor): made for the first client given the Store, shared by the clients made while one
/// of them lives (State::store). The library's `userdata` is a std::shared_ptr to the Store,
/// deleted by `drop` once the library no longer uses it.
class store_handle {
public:
    /// The store of `s`: the one its clients share now, or a new one.
    static std::shared_ptr<store_handle> of(const std::shared_ptr<Store> &s, std::error_code &ec) noexcept {
        std::lock_guard<std::mutex> lock(s->handle_mu_);
        if (std::shared_ptr<store_handle> h = s->handle_.lock()) {
            ec.clear();
            return h;
        }
        std::unique_ptr<std::shared_ptr<Store>> userdata(new (std::nothrow) std::shared_ptr<Store>(s));
        std::shared_ptr<store_handle> h = userdata ? make_shared_or_null<store_handle>() : nullptr;
        if (!h) {
            check(MQTTC_ERR_RESOURCE, ec);
            return nullptr;
        }
        mqttc_store_callbacks cb = MQTTC_STORE_CALLBACKS_INIT(userdata.get(), put_cb, get_cb, remove_cb, list_cb,
                                                              clear_cb, sync_cb, drop_cb);
        if (!check(mqttc_store_new(&cb, &h->h_), ec))
            return nullptr; // `drop` is not called: `userdata` is still ours
        userdata.release();
        s->handle_ = h;
        return h;
    }
    store_handle() noexcept = default;
    store_handle(const store_handle &) = delete;
    store_handle &operator=(const store_handle &) = delete;
    ~store_handle() { mqttc_store_free(h_); }
    const mqttc_store *get() const noexcept { return h_; }

private:
    template <class Call> static int with(void *userdata, Call &&call) noexcept {
        Store &s = **static_cast<std::shared_ptr<Store> *>(userdata);
        return s.run([&] { return call(s); });
    }
    static int put_cb(void *u, const char *key, const std::uint8_t *value, std::size_t len) noexcept {
        return with(u, [&](Store &s) {
            s.put(key, bytes_view(value, len));
            return 0;
        });
    }
    static int get_cb(void *u, const char *key, mqttc_store_value *out) noexcept {
        return with(u, [&](Store &s) {
            std::optional<std::vector<std::uint8_t>> v = s.get(key);
            return v && mqttc_store_value_set(out, v->data(), v->size()) != MQTTC_OK ? -1 : 0;
        });
    }
    static int remove_cb(void *u, const char *key) noexcept {
        return with(u, [&](Store &s) {
            s.remove(key);
            return 0;
        });
    }
    static int list_cb(void *u, mqttc_store_keys *out) noexcept {
        return with(u, [&](Store &s) {
            for (const std::string &key : s.list())
                if (mqttc_store_keys_add(out, key.c_str()) != MQTTC_OK)
                    return -1;
            return 0;
        });
    }
    static int clear_cb(void *u) noexcept {
        return with(u, [](Store &s) {
            s.clear();
            return 0;
        });
    }
    static int sync_cb(void *u) noexcept {
        return with(u, [](Store &s) {
            s.sync();
            return 0;
        });
    }
    static void drop_cb(void *u) noexcept { delete static_cast<std::shared_ptr<Store> *>(u); }

    mqttc_store *h_ = nullptr;
};

} // namespace detail

/// The options of a new client (mqttc_options), with fluent setters; the defaults are the
/// library's (mqttc_options_init). It keeps copies of its strings and property lists, so it may
/// be made once and used for several clients; the library copies what it keeps when the client
/// is made. Durations are clamped to the C fields' ranges. raw() reaches every other field.
class Options {
public:
    Options() noexcept { mqttc_options_init(&o_); }

    /// A fixed client identifier (default: a random one); "" asks the broker to assign one.
    Options &client_id(std::string id) { return text(client_id_, std::move(id)); }
    Options &keep_alive(std::chrono::seconds interval) noexcept {
        return field(o_.keep_alive, detail::clamp_to<std::uint16_t>(interval.count()));
    }
    Options &clean_session(bool on) noexcept { return field(o_.clean_session, on); }
    /// A user name, and a password (bytes, need not be text) when given.
    Options &credentials(std::string username, std::optional<std::string> password = std::nullopt) {
        username_ = std::move(username);
        password_ = std::move(password);
        return *this;
    }
    /// The will, published by the broker when the connection drops without a DISCONNECT (also on
    /// Client destruction without disconnect()). `properties` are MQTT 5's will properties.
    Options &will(std::string topic, std::string payload, int qos = 0, bool retain = false,
                  Properties properties = Properties()) {
        will_topic_ = std::move(topic);
        will_payload_ = std::move(payload);
        o_.will_qos = qos;
        o_.will_retain = retain;
        will_properties_ = std::make_shared<Properties>(std::move(properties));
        return *this;
    }
    /// MQTT 5 (protocol version 5) instead of 3.1.1 (4).
    Options &mqtt5(bool on = true) noexcept { return field(o_.protocol_version, std::uint8_t(on ? 5 : 4)); }
    Options &session_expiry(std::chrono::seconds expiry) noexcept {
        return field(o_.session_expiry, detail::clamp_to<std::uint32_t>(expiry.count()));
    }
    Options &topic_alias_maximum(std::uint16_t n) noexcept { return field(o_.topic_alias_maximum, n); }
    Options &connect_properties(Properties properties) {
        connect_properties_ = std::make_shared<Properties>(std::move(properties));
        return *this;
    }

    /// TLS for a host-and-port client; the CA file or directory (default: the system's store), a
    /// client certificate and key, the name to verify (and send as SNI), ALPN protocols ("a,b"),
    /// the versions and cipher suites offered (docs/tls.md), and, for throwaway test certificates
    /// only, no verification at all.
    Options &tls(bool on = true) noexcept { return field(o_.tls, on); }
    Options &tls_ca_file(std::string path) { return text(tls_ca_file_, std::move(path)); }
    Options &tls_client_cert(std::string cert_file, std::string key_file) {
        tls_cert_file_ = std::move(cert_file);
        return text(tls_key_file_, std::move(key_file));
    }
    Options &tls_server_name(std::string name) { return text(tls_server_name_, std::move(name)); }
    Options &tls_alpn(std::string protocols) { return text(tls_alpn_, std::move(protocols)); }
    Options &tls_insecure(bool on) noexcept { return field(o_.tls_insecure, on); }
    Options &tls_ca_path(std::string dir) { return text(tls_ca_path_, std::move(dir)); }
    Options &tls_version(std::string versions) { return text(tls_version_, std::move(versions)); }
    Options &tls_ciphers(std::string suites) { return text(tls_ciphers_, std::move(suites)); }
    /// A SOCKS5 proxy for every connection: "socks5h://[user[:password]@]host[:port]".
    Options &proxy(std::string url) { return text(proxy_, std::move(url)); }

    /// Automatic reconnect after a lost connection, with backoff between `min` and `max`.
    Options &auto_reconnect(bool on, std::chrono::milliseconds min = std::chrono::seconds(1),
                            std::chrono::milliseconds max = std::chrono::seconds(30)) noexcept {
        o_.auto_reconnect = on;
        o_.reconnect_min_ms = detail::to_ms(min);
        o_.reconnect_max_ms = detail::to_ms(max);
        return *this;
    }
    /// The offline queue: publishes made while there is no connection wait, within these bounds.
    Options &offline_queue(std::uint32_t max_messages, std::size_t max_bytes,
                           mqttc_overflow overflow = MQTTC_OVERFLOW_REJECT_NEW) noexcept {
        o_.offline_max_messages = max_messages;
        o_.offline_max_bytes = max_bytes;
        o_.offline_overflow = overflow;
        return *this;
    }
    Options &queue_before_connect(bool on) noexcept { return field(o_.queue_before_connect, on); }
    Options &rotate_servers(bool on) noexcept { return field(o_.rotate_servers, on); }
    Options &connect_timeout(std::chrono::milliseconds t) noexcept { return ms(o_.connect_timeout_ms, t); }
    Options &ping_timeout(std::chrono::milliseconds t) noexcept { return ms(o_.ping_timeout_ms, t); }
    Options &disconnect_timeout(std::chrono::milliseconds t) noexcept { return ms(o_.disconnect_timeout_ms, t); }
    Options &max_inflight(std::uint32_t n) noexcept { return field(o_.max_inflight, n); }
    Options &max_packet_size(std::uint32_t bytes) noexcept { return field(o_.max_packet_size, bytes); }
    Options &token_history(std::uint32_t n) noexcept { return field(o_.token_history, n); }
    Options &callback_queue(std::uint32_t n) noexcept { return field(o_.callback_queue, n); }
    /// The outgoing budget: operations and bytes held at once, and how long a call waits for room.
    Options &outgoing_budget(std::uint32_t max_messages, std::size_t max_bytes,
                             std::chrono::milliseconds wait = std::chrono::milliseconds(0)) noexcept {
        o_.outgoing_max_messages = max_messages;
        o_.outgoing_max_bytes = max_bytes;
        o_.outgoing_wait_ms = detail::to_ms(wait);
        return *this;
    }
    Options &ack_after_callback(bool on) noexcept { return field(o_.ack_after_callback, on); }
    /// Where callbacks run (docs/threading.md): events in a queue (ClientRef::next_event), the
    /// network thread, or a Loop the application runs (borrowed: the client keeps its own
    /// reference once made).
    Options &event_mode(bool on) noexcept { return field(o_.event_mode, on); }
    Options &inline_callbacks(bool on) noexcept { return field(o_.inline_callbacks, on); }
    Options &run_loop(const Loop &loop) noexcept { return field(o_.run_loop, loop.get()); }

    /// Persistence (docs/persistence.md): keep each QoS 1 and 2 publish from the return of its
    /// publish call until the broker acknowledges it, so that a client made later with the same
    /// store (a new process, after a crash) sends again what this one left; restored messages
    /// complete new tokens, or come as RESTORED events in event mode. In a directory, one
    /// subdirectory per client_id (required; copied when the client is made), or in a Store the
    /// application supplies. Not both: the client is then refused (MQTTC_ERR_INVALID_ARGUMENT).
    Options &store_dir(std::string dir) { return text(store_dir_, std::move(dir)); }
    /// Shared: these Options, their copies and every client made with them hold it (see Store).
    /// The library's store over it is made when a client is (a failure is that client's
    /// MQTTC_ERR_RESOURCE), so to_c() leaves the C field `store` null.
    Options &store(std::shared_ptr<Store> store) noexcept {
        store_ = std::move(store);
        return *this;
    }
    /// When the store makes its writes durable against a power loss (fdatasync, Store::sync);
    /// with MQTTC_STORE_SYNC_BATCH, after `records` records or `after` the first one not synced.
    Options &store_sync(mqttc_store_sync policy) noexcept { return field(o_.store_sync, static_cast<int>(policy)); }
    Options &store_sync_batch(std::uint32_t records, std::chrono::milliseconds after) noexcept {
        o_.store_sync_count = records;
        return ms(o_.store_sync_ms, after);
    }
    /// With clean_session: delete what an earlier session stored instead of sending it as new.
    Options &store_drop_on_clean(bool on) noexcept { return field(o_.store_drop_on_clean, on); }

    /// The plain fields, for those without a setter; pointer fields are set by to_c().
    mqttc_options &raw() noexcept { return o_; }
    /// The C options, pointing into this object: valid while it lives unchanged.
    mqttc_options to_c() const noexcept {
        mqttc_options o = o_;
        o.client_id = c_str(client_id_);
        o.username = c_str(username_);
        o.password = password_ ? reinterpret_cast<const std::uint8_t *>(password_->data()) : nullptr;
        o.password_len = password_ ? password_->size() : 0;
        o.will_topic = c_str(will_topic_);
        o.will_payload = reinterpret_cast<const std::uint8_t *>(will_payload_.data());
        o.will_payload_len = will_payload_.size();
        o.tls_ca_file = c_str(tls_ca_file_);
        o.tls_cert_file = c_str(tls_cert_file_);
        o.tls_key_file = c_str(tls_key_file_);
        o.tls_server_name = c_str(tls_server_name_);
        o.tls_alpn = c_str(tls_alpn_);
        o.tls_ca_path = c_str(tls_ca_path_);
        o.tls_version = c_str(tls_version_);
        o.tls_ciphers = c_str(tls_ciphers_);
        o.proxy = c_str(proxy_);
        o.store_dir = c_str(store_dir_);
        o.connect_properties = connect_properties_ ? connect_properties_->get() : nullptr;
        o.will_properties = will_properties_ ? will_properties_->get() : nullptr;
        return o;
    }

private:
    friend class Client; // makes the library's store of store_

    template <class T, class V> Options &field(T &f, V v) noexcept {
        f = v;
        return *this;
    }
    Options &ms(std::uint32_t &f, std::chrono::milliseconds t) noexcept { return field(f, detail::to_ms(t)); }
    Options &text(std::optional<std::string> &f, std::string v) {
        f = std::move(v);
        return *this;
    }
    static const char *c_str(const std::optional<std::string> &s) noexcept { return s ? s->c_str() : nullptr; }

    mqttc_options o_;
    std::optional<std::string> client_id_, username_, password_, will_topic_, tls_ca_file_, tls_cert_file_,
        tls_key_file_, tls_server_name_, tls_alpn_, tls_ca_path_, tls_version_, tls_ciphers_, proxy_, store_dir_;
    std::string will_payload_;
    std::shared_ptr<Store> store_;
    // Shared, so that Options stays copyable; never changed once set.
    std::shared_ptr<const Properties> connect_properties_, will_properties_;
};

// ---------------------------------------------------------------------------------------------
// Events (event mode)

/// One event from ClientRef::next_event (a client made with Options::event_mode): owned, freed
/// by the destructor. What it points to (message, properties, strings) lives as long as it does,
/// even after the client is freed. Move-only.
class Event {
public:
    explicit Event(mqttc_event *owned) noexcept : e_(owned) {}
    const mqttc_event *get() const noexcept { return e_.get(); }
    mqttc_event_kind kind() const noexcept { return static_cast<mqttc_event_kind>(e_->kind); }
    /// COMPLETE: the token and its status, the failure's text, and the codes and properties of
    /// the acknowledgement.
    mqttc_token token() const noexcept { return e_->token; }
    mqttc_status status() const noexcept { return e_->status; }
    std::string_view detail() const noexcept { return e_->detail ? e_->detail : ""; }
    bytes_view codes() const noexcept { return {e_->codes, e_->code_count}; }
    PropertiesView properties() const noexcept { return PropertiesView(e_->properties); }
    /// MESSAGE: the message, and the tag of every event-mode subscription it matched
    /// (ClientRef::subscribe_events).
    Message message() const noexcept { return Message(&e_->message); }
    std::size_t subscription_count() const noexcept { return e_->subscription_count; }
    std::uintptr_t subscription_tag(std::size_t i) const noexcept {
        return reinterpret_cast<std::uintptr_t>(e_->subscriptions[i]);
    }
    /// CONNECTION: the change.
    ConnectionEvent connection() const noexcept { return ConnectionEvent::from(e_->connection); }

private:
    struct free_event {
        void operator()(mqttc_event *e) const noexcept { mqttc_event_free(e); }
    };
    std::unique_ptr<mqttc_event, free_event> e_;
};

// ---------------------------------------------------------------------------------------------
// Clients and tokens

class Token;

/// A client, not owned: what callbacks capture to call back into their client, and what a
/// Token holds. Copyable. All operations are here (Client adds ownership); each returns at once,
/// and what happens on the network later completes the Token it returns. Once the Client is
/// destroyed, calls fail with MQTTC_ERR_INVALID_HANDLE; a default ClientRef's with MQTTC_ERR_NULL.
class ClientRef {
public:
    ClientRef() noexcept = default;
    mqttc_client *get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    /// The connection state (an mqttc_state value), or a negative mqttc_status for a bad handle.
    int state() const noexcept { return mqttc_client_state(h_); }

    inline Token connect(std::error_code &ec) const noexcept;
    /// Drops a live connection and makes a new one now (the session carries on).
    inline Token reconnect(std::error_code &ec) const noexcept;
    inline Token disconnect(std::error_code &ec) const noexcept;
    /// MQTT 5: with a reason code (0x04: the broker publishes the will) and properties.
    inline Token disconnect(std::uint8_t reason_code, PropertiesView properties, std::error_code &ec) const noexcept;
    /// Publishes a copy of `payload` (MQTT 5 properties: none when null).
    inline Token publish(zstring topic, bytes_view payload, int qos, bool retain, PropertiesView properties,
                         std::error_code &ec) const noexcept;
    /// MQTT 5: answers `request` on its response topic, with its correlation data.
    inline Token respond(const Message &request, bytes_view payload, int qos, PropertiesView properties,
                         std::error_code &ec) const noexcept;
    /// Calls `on_message(const Message &)` for every message matching `filter`, on the client's
    /// callback thread, from now until the subscription ends; the callable is destroyed then
    /// (see the file comment). `options`: MQTTC_SUB_* flags (MQTT 5), and `properties` the
    /// SUBSCRIBE's (MQTT 5). If this fails, the callable is destroyed before it returns.
    template <class F>
    Token subscribe(zstring filter, int qos, F &&on_message, int options, PropertiesView properties,
                    std::error_code &ec) const noexcept;
    /// Event mode: the messages matching `filter` arrive as MESSAGE events carrying `tag`.
    inline Token subscribe_events(zstring filter, int qos, std::uintptr_t tag, int options,
                                  PropertiesView properties, std::error_code &ec) const noexcept;
    inline Token unsubscribe(zstring filter, PropertiesView properties, std::error_code &ec) const noexcept;
    /// MQTT 5: re-authenticates the live connection (AUTH 0x19 with `data` as its Authentication
    /// Data); the broker's challenges go to on_auth. The Token completes at the broker's success.
    inline Token reauthenticate(bytes_view data, std::error_code &ec) const noexcept;

    /// The user name (nullptr: none) and password (empty: none; bytes, need not be text) of the
    /// connections made from now on: the next reconnect(), or automatic reconnect; the live
    /// connection keeps its own. Callable from inside callbacks (on a LOST connection event, to
    /// renew an expiring token).
    void set_credentials(zstring username, bytes_view password, std::error_code &ec) const noexcept {
        detail::check(mqttc_client_set_credentials(h_, username.c_str(), password.data(), password.size()), ec);
    }
    /// The will of the connections made from now on, as set_credentials does for credentials
    /// (`properties`: MQTT 5's will properties); clear_will() removes it.
    void set_will(zstring topic, bytes_view payload, int qos, bool retain, PropertiesView properties,
                  std::error_code &ec) const noexcept {
        detail::check(mqttc_client_set_will(h_, topic.c_str(), payload.data(), payload.size(), qos, retain,
                                            properties.get()),
                      ec);
    }
    void clear_will(std::error_code &ec) const noexcept { detail::check(mqttc_client_clear_will(h_), ec); }

    /// Calls `handler(const ConnectionEvent &)` when a connection comes up, is lost, or ends;
    /// nullptr removes it.
    template <class F> void on_connection(F &&handler, std::error_code &ec) const noexcept {
        set_handler(&detail::State::on_connection, std::forward<F>(handler), ec, [&](void *state) {
            return mqttc_client_set_on_connection(h_, state ? detail::State::connection_cb : nullptr, state);
        });
    }
    /// Calls `handler(int level, std::string_view line)` for log lines at `level` (an
    /// mqttc_log_level) and more severe; nullptr removes it.
    template <class F> void on_log(int level, F &&handler, std::error_code &ec) const noexcept {
        set_handler(&detail::State::on_log, std::forward<F>(handler), ec, [&](void *state) {
            return mqttc_client_set_log(h_, level, state ? detail::State::log_cb : nullptr, state);
        });
    }

    /// MQTT 5 enhanced authentication (an Authentication Method in Options::connect_properties):
    /// calls `handler(const AuthChallenge &, AuthReply &)` for each AUTH challenge of the broker,
    /// where the client's other callbacks run. It sets the next Authentication Data with
    /// AuthReply::data and returns true to go on, false to end the exchange (the connect or
    /// re-authentication then fails with MQTTC_ERR_AUTH_FAILED), as it does by throwing. Set it
    /// before connect(); nullptr removes it. Not in event mode (MQTTC_ERR_INVALID_ARGUMENT).
    template <class F> void on_auth(F &&handler, std::error_code &ec) const noexcept {
        set_handler(&detail::State::on_auth, std::forward<F>(handler), ec, [&](void *state) {
            return mqttc_client_set_on_auth(h_, state ? detail::State::auth_cb : nullptr, state);
        });
    }

    /// Persistence (Options::store_dir, Options::store): calls `handler(Token, const Message &)`
    /// for each message restored from the store when connect() starts a session, oldest first,
    /// before the CONNECT goes out, where the client's other callbacks run. The Token stands for
    /// the message from now on and completes when the broker acknowledges it; the Message is
    /// borrowed for the call. Set it before connect(); nullptr removes it. In event mode the
    /// messages are RESTORED events.
    template <class F> void on_restored(F &&handler, std::error_code &ec) const noexcept;

    /// Event mode: the oldest waiting event, or nullopt when none waits; the descriptor that is
    /// readable while events wait (the library's: never close it); how many wait.
    std::optional<Event> next_event(std::error_code &ec) const noexcept {
        mqttc_event *e = nullptr;
        return detail::check(mqttc_event_next(h_, &e), ec) && e ? std::optional<Event>(Event(e)) : std::nullopt;
    }
    int event_fd(std::error_code &ec) const noexcept {
        int fd = -1;
        detail::check(mqttc_event_fd(h_, &fd), ec);
        return fd;
    }
    std::size_t pending_events(std::error_code &ec) const noexcept {
        std::size_t n = 0;
        detail::check(mqttc_event_pending(h_, &n), ec);
        return n;
    }

#if MQTTC_CPP_EXCEPTIONS
    inline Token connect() const;
    inline Token reconnect() const;
    inline Token disconnect() const;
    inline Token disconnect(std::uint8_t reason_code, PropertiesView properties = PropertiesView()) const;
    inline Token publish(zstring topic, bytes_view payload, int qos = 0, bool retain = false,
                         PropertiesView properties = PropertiesView()) const;
    inline Token respond(const Message &request, bytes_view payload, int qos = 0,
                         PropertiesView properties = PropertiesView()) const;
    template <class F>
    Token subscribe(zstring filter, int qos, F &&on_message, int options = 0,
                    PropertiesView properties = PropertiesView()) const;
    inline Token subscribe_events(zstring filter, int qos, std::uintptr_t tag, int options = 0,
                                  PropertiesView properties = PropertiesView()) const;
    inline Token unsubscribe(zstring filter, PropertiesView properties = PropertiesView()) const;
    inline Token reauthenticate(bytes_view data = bytes_view()) const;
    void set_credentials(zstring username, bytes_view password = bytes_view()) const {
        detail::or_throw([&](std::error_code &ec) { set_credentials(username, password, ec); });
    }
    void set_will(zstring topic, bytes_view payload, int qos = 0, bool retain = false,
                  PropertiesView properties = PropertiesView()) const {
        detail::or_throw([&](std::error_code &ec) { set_will(topic, payload, qos, retain, properties, ec); });
    }
    void clear_will() const {
        detail::or_throw([&](std::error_code &ec) { clear_will(ec); });
    }
    template <class F> void on_auth(F &&handler) const {
        detail::or_throw([&](std::error_code &ec) { on_auth(std::forward<F>(handler), ec); });
    }
    template <class F> void on_restored(F &&handler) const {
        detail::or_throw([&](std::error_code &ec) { on_restored(std::forward<F>(handler), ec); });
    }
    template <class F> void on_connection(F &&handler) const {
        detail::or_throw([&](std::error_code &ec) { on_connection(std::forward<F>(handler), ec); });
    }
    template <class F> void on_log(int level, F &&handler) const {
        detail::or_throw([&](std::error_code &ec) { on_log(level, std::forward<F>(handler), ec); });
    }
    std::optional<Event> next_event() const {
        return detail::or_throw([&](std::error_code &ec) { return next_event(ec); });
    }
    int event_fd() const {
        return detail::or_throw([&](std::error_code &ec) { return event_fd(ec); });
    }
    std::size_t pending_events() const {
        return detail::or_throw([&](std::error_code &ec) { return pending_events(ec); });
    }
#endif

protected:
    ClientRef(mqttc_client *h, std::shared_ptr<detail::State> state) noexcept : h_(h), st_(std::move(state)) {}

    mqttc_client *h_ = nullptr;
    std::shared_ptr<detail::State> st_;

private:
    friend class Token;

    /// A Token for an operation whose refusals come in packets of `kind`: `call(&id)` is the C
    /// call that issues it.
    template <class Call> Token issue(mqttc_packet_kind kind, std::error_code &ec, Call &&call) const noexcept;

    template <class Handler, class F, class Install>
    void set_handler(std::shared_ptr<Handler> detail::State::*slot, F &&fn, std::error_code &ec,
                     Install &&install) const noexcept {
        if (!st_) {
            detail::check(MQTTC_ERR_NULL, ec);
            return;
        }
        if constexpr (std::is_same_v<std::decay_t<F>, std::nullptr_t>) {
            if (detail::check(install(nullptr), ec))
                st_->set(slot, std::shared_ptr<Handler>());
        } else {
            // Stored before the C callback is set, which finds it from its first call.
            st_->set(slot, std::make_shared<Handler>(std::forward<F>(fn)));
            detail::check(install(st_.get()), ec);
        }
    }
};

/// One asynchronous operation of a client (mqttc_token): poll, wait, or be called back when it
/// completes. Copyable; holds a ClientRef. A Token from a failed call (id 0) reports
/// MQTTC_ERR_TOKEN_UNKNOWN.
class Token {
public:
    Token() noexcept = default;
    /// `kind`: the packet that acknowledges the operation, whose reason code reason() names.
    Token(ClientRef client, mqttc_token id, mqttc_packet_kind kind) noexcept
        : client_(std::move(client)), id_(id), kind_(kind) {}
    mqttc_token id() const noexcept { return id_; }
    const ClientRef &client() const noexcept { return client_; }

    /// MQTTC_PENDING, MQTTC_OK, or why it failed (mqttc_token_poll).
    mqttc_status status() const noexcept { return mqttc_token_poll(client_.get(), id_); }
    /// Whether it has completed, successfully or not.
    bool ready() const noexcept { return status() != MQTTC_PENDING; }

    /// Waits up to `timeout`: true once it completed successfully, false if it is still pending
    /// (MQTTC_ERR_TIMEOUT is not an error here); fails with the operation's status otherwise, and
    /// with MQTTC_ERR_IN_CALLBACK inside one of the client's callbacks. With a Loop, runs it.
    bool wait(std::chrono::milliseconds timeout, std::error_code &ec) const noexcept {
        mqttc_status st = mqttc_token_wait(client_.get(), id_, detail::to_ms(timeout));
        return detail::check(st == MQTTC_ERR_TIMEOUT ? MQTTC_OK : st, ec) && st == MQTTC_OK;
    }
    /// The codes of a completed token: [session_present] for a connect; each filter's granted QoS
    /// (0x80: refused) for a subscribe; MQTT 5 reason codes (mqttc_token_codes).
    std::vector<std::uint8_t> codes(std::error_code &ec) const noexcept {
        std::vector<std::uint8_t> out;
        std::size_t n = 0;
        if (!detail::check(mqttc_token_codes(client_.get(), id_, nullptr, 0, &n), ec))
            return out;
        out.resize(n);
        if (detail::check(mqttc_token_codes(client_.get(), id_, out.data(), n, &n), ec))
            out.resize(n);
        return out;
    }
    /// Why the broker refused the operation, when it said so with a reason code: the CONNACK's
    /// (a refused connect), the PUBACK's or PUBREC's, the SUBACK's (the first filter's), the
    /// UNSUBACK's, or the DISCONNECT's that ended it (MQTTC_ERR_SERVER_DISCONNECTED). nullopt for
    /// a token pending, successful, or failed without one (a timeout, a lost link).
    std::optional<Reason> reason() const noexcept {
        mqttc_status st = status();
        std::uint8_t code = 0;
        std::size_t n = 0;
        if (st == MQTTC_OK || st == MQTTC_PENDING ||
            mqttc_token_codes(client_.get(), id_, &code, 1, &n) != MQTTC_OK || n == 0)
            return std::nullopt;
        return Reason{code, st == MQTTC_ERR_SERVER_DISCONNECTED ? MQTTC_PACKET_DISCONNECT : kind_};
    }
    /// MQTT 5: the properties of the acknowledgement that completed it (CONNACK, PUBACK, ...).
    Properties properties(std::error_code &ec) const noexcept {
        mqttc_properties *p = nullptr;
        return detail::check(mqttc_token_properties(client_.get(), id_, &p), ec) ? Properties(p) : Properties();
    }
    /// Calls `fn(mqttc_status)` once, when the operation completes: where the client's callbacks
    /// run (its callback thread, by default), or right here if it already has. Not called if the Client is destroyed first
    /// (pending operations are then cancelled and no callback runs after the free).
    template <class F> void on_complete(F &&fn) const {
        if (client_.st_)
            client_.st_->when_complete(id_, detail::callback<void(mqttc_status)>(std::forward<F>(fn)));
        else
            fn(mqttc_token_poll(nullptr, id_)); // no client: the status says so
    }

#if MQTTC_CPP_EXCEPTIONS
    /// Throws an mqttc::error that carries the broker's reason() when it gave one.
    bool wait(std::chrono::milliseconds timeout) const {
        std::error_code ec;
        bool done = wait(timeout, ec);
        if (ec) {
            std::string detail = last_error(); // before reason(), whose call sets its own
            throw error(static_cast<mqttc_status>(ec.value()), detail, reason());
        }
        return done;
    }
    std::vector<std::uint8_t> codes() const {
        return detail::or_throw([&](std::error_code &ec) { return codes(ec); });
    }
    Properties properties() const {
        return detail::or_throw([&](std::error_code &ec) { return properties(ec); });
    }
#endif

private:
    ClientRef client_;
    mqttc_token id_ = 0;
    mqttc_packet_kind kind_ = MQTTC_PACKET_CONNACK;
};

template <class Call>
Token ClientRef::issue(mqttc_packet_kind kind, std::error_code &ec, Call &&call) const noexcept {
    mqttc_token id = 0;
    return detail::check(call(&id), ec) ? Token(*this, id, kind) : Token();
}

namespace detail {
/// The packet that acknowledges a publish of QoS `qos`, with its reason code.
inline mqttc_packet_kind publish_ack(int qos) noexcept {
    return qos == 2 ? MQTTC_PACKET_PUBREC : MQTTC_PACKET_PUBACK;
}
} // namespace detail

template <class F> void ClientRef::on_restored(F &&handler, std::error_code &ec) const noexcept {
    auto install = [&](void *state) {
        return mqttc_client_set_on_restored(h_, state ? detail::State::restored_cb : nullptr, state);
    };
    if constexpr (std::is_same_v<std::decay_t<F>, std::nullptr_t>) {
        set_handler(&detail::State::on_restored, nullptr, ec, install);
    } else {
        // The handler holds a ClientRef, as one capturing ref() would: close() lets it go.
        set_handler(&detail::State::on_restored,
                    [client = *this, fn = std::forward<F>(handler)](mqttc_token id, const Message &m) mutable {
                        fn(Token(client, id, detail::publish_ack(m.qos())), m);
                    },
                    ec, install);
    }
}

inline Token ClientRef::connect(std::error_code &ec) const noexcept {
    return issue(MQTTC_PACKET_CONNACK, ec, [&](mqttc_token *t) { return mqttc_connect(h_, t); });
}
inline Token ClientRef::reconnect(std::error_code &ec) const noexcept {
    return issue(MQTTC_PACKET_CONNACK, ec, [&](mqttc_token *t) { return mqttc_reconnect(h_, t); });
}
inline Token ClientRef::disconnect(std::error_code &ec) const noexcept {
    return issue(MQTTC_PACKET_DISCONNECT, ec, [&](mqttc_token *t) { return mqttc_disconnect(h_, t); });
}
inline Token ClientRef::disconnect(std::uint8_t reason_code, PropertiesView properties,
                                   std::error_code &ec) const noexcept {
    return issue(MQTTC_PACKET_DISCONNECT, ec,
                 [&](mqttc_token *t) { return mqttc_disconnect_v5(h_, reason_code, properties.get(), t); });
}
inline Token ClientRef::publish(zstring topic, bytes_view payload, int qos, bool retain, PropertiesView properties,
                                std::error_code &ec) const noexcept {
    return issue(detail::publish_ack(qos), ec, [&](mqttc_token *t) {
        return mqttc_publish_v5(h_, topic.c_str(), payload.data(), payload.size(), qos, retain, properties.get(), t);
    });
}
inline Token ClientRef::respond(const Message &request, bytes_view payload, int qos, PropertiesView properties,
                                std::error_code &ec) const noexcept {
    return issue(detail::publish_ack(qos), ec, [&](mqttc_token *t) {
        return mqttc_respond(h_, request.get(), payload.data(), payload.size(), qos, properties.get(), t);
    });
}

namespace detail {
/// One SUBSCRIBE entry: the 3.1.1 call unless MQTT 5 options or properties are asked for.
inline mqttc_status subscribe_one(mqttc_client *h, const char *filter, int qos, mqttc_message_cb cb,
                                  void *userdata, mqttc_drop_cb drop, int options, PropertiesView properties,
                                  mqttc_token *t) noexcept {
    mqttc_subscription sub = MQTTC_SUBSCRIPTION_INIT(filter, qos, cb, userdata, drop, options);
    return options || properties.get() ? mqttc_subscribe_v5(h, &sub, 1, properties.get(), t)
                                       : mqttc_subscribe_many(h, &sub, 1, t);
}
} // namespace detail

template <class F>
Token ClientRef::subscribe(zstring filter, int qos, F &&on_message, int options, PropertiesView properties,
                           std::error_code &ec) const noexcept {
    using sub = detail::subscription<std::decay_t<F>>;
    auto *s = new (std::nothrow) sub{st_, std::forward<F>(on_message)};
    if (!s)
        return issue(MQTTC_PACKET_SUBACK, ec, [](mqttc_token *) { return MQTTC_ERR_RESOURCE; });
    Token t = issue(MQTTC_PACKET_SUBACK, ec, [&](mqttc_token *id) {
        return detail::subscribe_one(h_, filter.c_str(), qos, sub::on_message, s, sub::drop, options, properties, id);
    });
    if (ec)
        delete s; // the library did not take it (mqttc_subscribe: userdata remains the caller's)
    return t;
}
inline Token ClientRef::subscribe_events(zstring filter, int qos, std::uintptr_t tag, int options,
                                         PropertiesView properties, std::error_code &ec) const noexcept {
    return issue(MQTTC_PACKET_SUBACK, ec, [&](mqttc_token *t) {
        return detail::subscribe_one(h_, filter.c_str(), qos, nullptr, reinterpret_cast<void *>(tag), nullptr,
                                     options, properties, t);
    });
}
inline Token ClientRef::unsubscribe(zstring filter, PropertiesView properties, std::error_code &ec) const noexcept {
    const char *filters[] = {filter.c_str()};
    return issue(MQTTC_PACKET_UNSUBACK, ec,
                 [&](mqttc_token *t) { return mqttc_unsubscribe_v5(h_, filters, 1, properties.get(), t); });
}
inline Token ClientRef::reauthenticate(bytes_view data, std::error_code &ec) const noexcept {
    return issue(MQTTC_PACKET_AUTH, ec,
                 [&](mqttc_token *t) { return mqttc_reauthenticate(h_, data.data(), data.size(), t); });
}

#if MQTTC_CPP_EXCEPTIONS
inline Token ClientRef::connect() const {
    return detail::or_throw([&](std::error_code &ec) { return connect(ec); });
}
inline Token ClientRef::reconnect() const {
    return detail::or_throw([&](std::error_code &ec) { return reconnect(ec); });
}
inline Token ClientRef::disconnect() const {
    return detail::or_throw([&](std::error_code &ec) { return disconnect(ec); });
}
inline Token ClientRef::disconnect(std::uint8_t reason_code, PropertiesView properties) const {
    return detail::or_throw([&](std::error_code &ec) { return disconnect(reason_code, properties, ec); });
}
inline Token ClientRef::publish(zstring topic, bytes_view payload, int qos, bool retain,
                                PropertiesView properties) const {
    return detail::or_throw([&](std::error_code &ec) { return publish(topic, payload, qos, retain, properties, ec); });
}
inline Token ClientRef::respond(const Message &request, bytes_view payload, int qos, PropertiesView properties) const {
    return detail::or_throw([&](std::error_code &ec) { return respond(request, payload, qos, properties, ec); });
}
template <class F>
Token ClientRef::subscribe(zstring filter, int qos, F &&on_message, int options, PropertiesView properties) const {
    return detail::or_throw([&](std::error_code &ec) {
        return subscribe(filter, qos, std::forward<F>(on_message), options, properties, ec);
    });
}
inline Token ClientRef::subscribe_events(zstring filter, int qos, std::uintptr_t tag, int options,
                                         PropertiesView properties) const {
    return detail::or_throw(
        [&](std::error_code &ec) { return subscribe_events(filter, qos, tag, options, properties, ec); });
}
inline Token ClientRef::unsubscribe(zstring filter, PropertiesView properties) const {
    return detail::or_throw([&](std::error_code &ec) { return unsubscribe(filter, properties, ec); });
}
inline Token ClientRef::reauthenticate(bytes_view data) const {
    return detail::or_throw([&](std::error_code &ec) { return reauthenticate(data, ec); });
}
#endif

/// A client that owns its connection: made for a host and port, a list of server URIs, or a
/// Unix socket; freed by the destructor (mqttc_client_free: the connection drops without a
/// DISCONNECT, pending operations are cancelled, subscriptions' callables are destroyed). Move
/// only; empty (false) after a move or a failed create(). Its operations are ClientRef's; ref()
/// gives callbacks a reference to capture.
class Client : public ClientRef {
public:
    Client() noexcept = default;
#if MQTTC_CPP_EXCEPTIONS
    Client(zstring host, std::uint16_t port, const Options &options = Options())
        : Client(detail::or_throw([&](std::error_code &ec) { return create(host, port, options, ec); })) {}
    static Client with_uris(const std::vector<std::string> &uris, const Options &options = Options()) {
        return detail::or_throw([&](std::error_code &ec) { return with_uris(uris, options, ec); });
    }
    static Client with_unix_socket(zstring path, const Options &options = Options()) {
        return detail::or_throw([&](std::error_code &ec) { return with_unix_socket(path, options, ec); });
    }
#endif
    static Client create(zstring host, std::uint16_t port, const Options &options, std::error_code &ec) noexcept {
        return make(options, ec, [&](const mqttc_options *o, mqttc_client **out) {
            return mqttc_client_new(host.c_str(), port, o, out);
        });
    }
    /// Servers tried in order on each connect: mqtt://, mqtts://, ws://, wss://, unix:// ...
    static Client with_uris(const std::vector<std::string> &uris, const Options &options,
                            std::error_code &ec) noexcept {
        std::unique_ptr<const char *[]> list(new (std::nothrow) const char *[uris.size() + 1]);
        if (!list) {
            detail::check(MQTTC_ERR_RESOURCE, ec);
            return Client();
        }
        for (std::size_t i = 0; i < uris.size(); ++i)
            list[i] = uris[i].c_str();
        return make(options, ec, [&](const mqttc_options *o, mqttc_client **out) {
            return mqttc_client_new_uris(list.get(), uris.size(), o, out);
        });
    }
    static Client with_unix_socket(zstring path, const Options &options, std::error_code &ec) noexcept {
        return make(options, ec, [&](const mqttc_options *o, mqttc_client **out) {
            return mqttc_client_new_unix(path.c_str(), o, out);
        });
    }

    Client(Client &&o) noexcept : ClientRef(std::exchange(o.h_, nullptr), std::move(o.st_)) {}
    Client &operator=(Client &&o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
            st_ = std::move(o.st_);
        }
        return *this;
    }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;
    ~Client() { reset(); }

    /// A non-owning reference, for callbacks to capture.
    ClientRef ref() const noexcept { return *this; }
    /// Frees the client now (as the destructor does); it is then empty.
    void reset() noexcept {
        if (!h_)
            return;
        mqttc_client_free(std::exchange(h_, nullptr));
        std::exchange(st_, nullptr)->close();
    }

#if MQTTC_CPP_EXCEPTIONS
    /// The first exception a callback of this client threw and nobody took yet, or null. Later
    /// ones, while one is kept, are written to stderr.
    std::exception_ptr take_callback_error() noexcept { return st_ ? st_->take_error() : nullptr; }
#endif

private:
    template <class New> static Client make(const Options &options, std::error_code &ec, New &&make_new) noexcept {
        std::shared_ptr<detail::State> state = detail::make_shared_or_null<detail::State>();
        if (!state) {
            detail::check(MQTTC_ERR_RESOURCE, ec);
            return Client();
        }
        std::shared_ptr<detail::store_handle> store;
        if (options.store_ && !(store = detail::store_handle::of(options.store_, ec)))
            return Client();
        mqttc_options o = options.to_c();
        if (store)
            o.store = store->get();
        mqttc_client *h = nullptr;
        if (!detail::check(make_new(&o, &h), ec))
            return Client();
        state->handle = h;
        state->store = std::move(store);
        Client c(h, std::move(state));
        // Routes completions to Token::on_complete; set before any token exists, so none is missed.
        detail::check(mqttc_client_set_on_complete(h, detail::State::complete_cb, c.st_.get()), ec);
        return ec ? Client() : std::move(c);
    }
    Client(mqttc_client *h, std::shared_ptr<detail::State> state) noexcept : ClientRef(h, std::move(state)) {}
};

// ---------------------------------------------------------------------------------------------
// Topics, version

/// Whether `topic` matches `filter` (MQTT's rules, as a broker applies them); both are checked.
inline bool topic_matches(zstring filter, zstring topic, std::error_code &ec) noexcept {
    bool result = false;
    detail::check(mqttc_topic_matches(filter.c_str(), topic.c_str(), &result), ec);
    return result;
}
/// MQTTC_ERR_INVALID_TOPIC (or another error) when a publish would refuse `topic`; an empty
/// error_code when it is valid.
inline std::error_code check_topic(zstring topic) noexcept {
    std::error_code ec;
    detail::check(mqttc_topic_check(topic.c_str()), ec);
    return ec;
}
/// MQTTC_ERR_INVALID_FILTER (or another error) when a subscribe would refuse `filter`; an empty
/// error_code when it is valid.
inline std::error_code check_filter(zstring filter) noexcept {
    std::error_code ec;
    detail::check(mqttc_filter_check(filter.c_str()), ec);
    return ec;
}
#if MQTTC_CPP_EXCEPTIONS
inline bool topic_matches(zstring filter, zstring topic) {
    return detail::or_throw([&](std::error_code &ec) { return topic_matches(filter, topic, ec); });
}
#endif
/// The version of the library loaded at run time (compare with MQTTC_VERSION_STRING).
inline std::string_view version() noexcept { return mqttc_version(); }

} // namespace mqttc

#endif /* MQTTCLIENT_HPP */
