#!/usr/bin/env python3
"""A ctypes port of the Julia package julia/MQTTClient, and scenarios that run it.

No Julia runtime exists on the build machines, so the Julia package cannot be run there. This
module follows its source files function by function, with the Julia names: the same C calls in
the same order with the same argument types, the same struct mirrors, the same client states and
futures, and the same event task: one thread per library client stands for the Julia task
(`Threads.@spawn`), waiting on the event descriptor with select where Julia uses `poll_fd`,
draining and dispatching the queue, handing the freeing of the client over with the Julia
finalizer through the same atomic handshake. Julia's `ReentrantLock` is an RLock here, its
`Channel` a threading.Event, its finalizer a weakref.finalize and its task-local storage a
threading.local. The Rust test `julia_and_python_call_the_same_c_functions` checks that both call
the same set of C functions.

Where Python has to differ it says so: futures wait at most RESOLVE_TIMEOUT (so that a broken
scenario fails instead of hanging), and `start` calls BEFORE_REGISTER, a test seam that is a
no-op except in the scenario that makes a completion arrive before its registration.

Usage: julia_mirror.py --lib LIB --port N --users-port N [--unix PATH] [--tls-port N --tls-ca FILE]
                       [--ws-port N]
"""
import argparse
import ctypes
import ctypes.util
import enum
import gc
import os
import random
import select
import shutil
import socket
import string
import sys
import tempfile
import threading
import time
import weakref
from ctypes import POINTER, c_bool, c_char_p, c_int, c_int32, c_size_t, c_uint16, c_uint32
from ctypes import c_uint64, c_uint8, c_void_p

# ------------------------------------------------------------------------------------------------
# library.jl: the C library


class mqttc_options(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("keep_alive", c_uint16),
        ("clean_session", c_bool),
        ("client_id", c_char_p),
        ("username", c_char_p),
        ("password", c_char_p),
        ("password_len", c_size_t),
        ("will_topic", c_char_p),
        ("will_payload", c_char_p),
        ("will_payload_len", c_size_t),
        ("will_qos", c_int),
        ("will_retain", c_bool),
        ("ping_timeout_ms", c_uint32),
        ("connect_timeout_ms", c_uint32),
        ("disconnect_timeout_ms", c_uint32),
        ("max_inflight", c_uint32),
        ("max_packet_size", c_uint32),
        ("token_history", c_uint32),
        ("callback_queue", c_uint32),
        ("auto_reconnect", c_bool),
        ("reconnect_min_ms", c_uint32),
        ("reconnect_max_ms", c_uint32),
        ("offline_max_messages", c_uint32),
        ("offline_max_bytes", c_size_t),
        ("offline_overflow", c_int),
        ("queue_before_connect", c_bool),
        ("rotate_servers", c_bool),
        ("event_mode", c_bool),
        ("tls", c_bool),
        ("tls_ca_file", c_char_p),
        ("tls_cert_file", c_char_p),
        ("tls_key_file", c_char_p),
        ("tls_server_name", c_char_p),
        ("tls_alpn", c_char_p),
        ("tls_insecure", c_bool),
        ("protocol_version", c_uint8),
        ("session_expiry", c_uint32),
        ("topic_alias_maximum", c_uint16),
        ("connect_properties", c_void_p),
        ("will_properties", c_void_p),
        ("inline_callbacks", c_bool),
        ("run_loop", c_void_p),
        ("outgoing_max_messages", c_uint32),
        ("outgoing_max_bytes", c_size_t),
        ("outgoing_wait_ms", c_uint32),
        ("ack_after_callback", c_bool),
        ("store_dir", c_char_p),
        ("store_sync", c_int),
        ("store_sync_count", c_uint32),
        ("store_sync_ms", c_uint32),
        ("store_drop_on_clean", c_bool),
        ("pool", c_void_p),
        ("bind_address", c_char_p),
        ("store", c_void_p),
        ("topic_alias_max_out", c_uint16),
        ("tls_ca_path", c_char_p),
        ("tls_version", c_char_p),
        ("tls_ciphers", c_char_p),
        ("proxy", c_char_p),
    ]


class mqttc_message(ctypes.Structure):
    _fields_ = [
        ("topic", c_void_p),
        ("topic_len", c_size_t),
        ("payload", c_void_p),
        ("payload_len", c_size_t),
        ("qos", c_int),
        ("retain", c_bool),
        ("dup", c_bool),
        ("properties", c_void_p),
        ("packet_id", c_uint16),
    ]


class mqttc_connection_event(ctypes.Structure):
    _fields_ = [
        ("change", c_int),
        ("reason", c_int),
        ("session_present", c_bool),
        ("server", c_char_p),
        ("detail", c_char_p),
    ]


class mqttc_event(ctypes.Structure):
    _fields_ = [
        ("kind", c_int),
        ("token", c_uint64),
        ("status", c_int),
        ("message", mqttc_message),
        ("subscriptions", POINTER(c_void_p)),
        ("subscription_count", c_size_t),
        ("connection", mqttc_connection_event),
        ("detail", c_char_p),
        ("codes", POINTER(c_uint8)),
        ("code_count", c_size_t),
        ("properties", c_void_p),
    ]


class mqttc_subscription(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("filter", c_char_p),
        ("qos", c_int),
        ("on_message", c_void_p),
        ("userdata", c_void_p),
        ("drop_userdata", c_void_p),
        ("options", c_int),
    ]


class mqttc_property(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("id", c_int),
        ("integer", c_uint32),
        ("name", c_char_p),
        ("string", c_char_p),
        ("binary", c_void_p),
        ("binary_len", c_size_t),
    ]


# One entry per C function, one line each (the Rust test parses them): name: (result, arguments).
PROTOTYPES = {
    "mqttc_last_error": (c_char_p, []),
    "mqttc_status_str": (c_char_p, [c_int32]),
    "mqttc_options_init_size": (None, [POINTER(mqttc_options), c_size_t]),
    "mqttc_client_new": (c_int, [c_char_p, c_uint16, POINTER(mqttc_options), POINTER(c_void_p)]),
    "mqttc_client_new_unix": (c_int, [c_char_p, POINTER(mqttc_options), POINTER(c_void_p)]),
    "mqttc_client_new_uris": (c_int, [POINTER(c_char_p), c_size_t, POINTER(mqttc_options), POINTER(c_void_p)]),
    "mqttc_client_free": (None, [c_void_p]),
    "mqttc_connect": (c_int, [c_void_p, POINTER(c_uint64)]),
    "mqttc_reconnect": (c_int, [c_void_p, POINTER(c_uint64)]),
    "mqttc_disconnect_v5": (c_int, [c_void_p, c_uint8, c_void_p, POINTER(c_uint64)]),
    "mqttc_publish_v5": (c_int, [c_void_p, c_char_p, c_char_p, c_size_t, c_int, c_bool, c_void_p, POINTER(c_uint64)]),
    "mqttc_subscribe_v5": (c_int, [c_void_p, POINTER(mqttc_subscription), c_size_t, c_void_p, POINTER(c_uint64)]),
    "mqttc_unsubscribe_v5": (c_int, [c_void_p, POINTER(c_char_p), c_size_t, c_void_p, POINTER(c_uint64)]),
    "mqttc_topic_check": (c_int, [c_char_p]),
    "mqttc_filter_check": (c_int, [c_char_p]),
    "mqttc_topic_matches": (c_int, [c_char_p, c_char_p, POINTER(c_bool)]),
    "mqttc_reason_str": (c_char_p, [c_uint8, c_int]),
    "mqttc_client_set_credentials": (c_int, [c_void_p, c_char_p, c_char_p, c_size_t]),
    "mqttc_client_set_will": (c_int, [c_void_p, c_char_p, c_char_p, c_size_t, c_int, c_bool, c_void_p]),
    "mqttc_client_clear_will": (c_int, [c_void_p]),
    "mqttc_properties_new": (c_int, [POINTER(c_void_p)]),
    "mqttc_properties_free": (None, [c_void_p]),
    "mqttc_properties_set_int": (c_int, [c_void_p, c_int, c_uint32]),
    "mqttc_properties_set_string": (c_int, [c_void_p, c_int, c_char_p]),
    "mqttc_properties_set_binary": (c_int, [c_void_p, c_int, c_char_p, c_size_t]),
    "mqttc_properties_add_user": (c_int, [c_void_p, c_char_p, c_char_p]),
    "mqttc_properties_count": (c_int, [c_void_p, POINTER(c_size_t)]),
    "mqttc_properties_at": (c_int, [c_void_p, c_size_t, POINTER(mqttc_property)]),
    "mqttc_event_fd": (c_int, [c_void_p, POINTER(c_int)]),
    "mqttc_event_pending": (c_int, [c_void_p, POINTER(c_size_t)]),
    "mqttc_event_next": (c_int, [c_void_p, POINTER(POINTER(mqttc_event))]),
    "mqttc_event_free": (None, [POINTER(mqttc_event)]),
}

_lib = None

LIBRARY_FILE = "libmqttclient.so"
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def installed_candidates(env):
    prefixes = []
    if "MQTTCLIENT_PREFIX" in env:
        prefixes.append(env["MQTTCLIENT_PREFIX"])
    prefixes += ["/usr/local", "/usr"]
    multiarch = f"{os.uname().machine}-linux-gnu"
    return [os.path.join(prefix, d, LIBRARY_FILE)
            for prefix in prefixes for d in ("lib", "lib64", os.path.join("lib", multiarch))]


class LibraryNotFound(Exception):
    """Julia's `error(...)` in library_path."""


def library_path(env=os.environ, repo=REPO):
    explicit = env.get("MQTTCLIENT_LIB", "")
    if explicit:
        if os.path.isfile(explicit):
            return explicit
        raise LibraryNotFound(f"MQTTCLIENT_LIB is set to {explicit}, which is not a file")
    tried = ["MQTTCLIENT_LIB (not set)"]
    for candidate in installed_candidates(env):
        if os.path.isfile(candidate):
            return candidate
        tried.append(candidate)
    # Julia: Libdl.find_library, which asks the dynamic loader.
    found = ctypes.util.find_library("mqttclient")
    if found:
        return found
    tried.append("libmqttclient on the system library path (LD_LIBRARY_PATH, the ld.so cache)")
    for profile in ("release", "debug"):
        candidate = os.path.join(repo, "target", profile, LIBRARY_FILE)
        if os.path.isfile(candidate):
            return candidate
        tried.append(candidate)
    raise LibraryNotFound("libmqttclient not found; looked at:\n  " + "\n  ".join(tried)
                          + f"\nBuild it (`cargo build --release --lib` in {repo}), install it "
                          "(`cmake --install`), or set MQTTCLIENT_LIB to the library file.")


def __init__(env=os.environ):
    global _lib
    _lib = ctypes.CDLL(library_path(env))
    for name, (result, arguments) in PROTOTYPES.items():
        function = getattr(_lib, name)
        function.restype = result
        function.argtypes = arguments


EVENT_MESSAGE = 1
EVENT_COMPLETE = 2
EVENT_CONNECTION = 3
EVENT_RESTORED = 4

CONNECTION_UP = 0
CONNECTION_LOST = 1  # anything else is CLOSED

MQTTC_ERR_INVALID_QOS = -3
MQTTC_ERR_INVALID_ARGUMENT = -7
MQTTC_ERR_NOT_CONNECTED = -20
MQTTC_ERR_ALREADY_CONNECTED = -21
MQTTC_ERR_CANCELLED = -26
MQTTC_ERR_IO = -40

SUB_NO_LOCAL = 4
SUB_RETAIN_AS_PUBLISHED = 8
SUB_RETAIN_IF_NEW = 16
SUB_RETAIN_NEVER = 32

OVERFLOW_POLICIES = {"reject_new": 0, "drop_oldest": 1}
STORE_SYNC_POLICIES = {"batch": 0, "every": 1, "none": 2}


def last_error():
    return _lib.mqttc_last_error().decode()


def status_text(status):
    return _lib.mqttc_status_str(status).decode()


def check(status, what):
    if status != 0:
        raise MQTTException(f"{what}: {last_error()}", status)


def with_fields(options, changes):
    names = {name for name, _ in mqttc_options._fields_}
    for name, value in changes:
        if name not in names:
            raise ValueError(f"mqttc_options has no field {name}")
        setattr(options, name, value)
    return options


# ------------------------------------------------------------------------------------------------
# types.jl: the public types of MQTTClient.jl


class QOS(enum.IntEnum):
    QOS_0 = 0
    QOS_1 = 1
    QOS_2 = 2


QOS_0, QOS_1, QOS_2 = QOS.QOS_0, QOS.QOS_1, QOS.QOS_2

MQTT_ERR_INVAL = MQTTC_ERR_INVALID_ARGUMENT


class MQTTException(Exception):
    def __init__(self, msg, code=0):
        super().__init__(msg)
        self.msg = msg
        self.code = code


def invalid(msg):
    return MQTTException(msg, MQTT_ERR_INVAL)


def c_text(s, what):
    if "\0" in s:
        raise invalid(f"{what} contains a NUL character")
    return s


class SameFields:
    """Julia's `same_fields`: `==` field by field."""

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)


class User(SameFields):
    def __init__(self, name, password):
        self.name = name
        self.password = password


class Message(SameFields):
    """Julia's `write` of each payload part: str as UTF-8, bytes as they are. As Julia dispatches
    on the type of the first argument, a QOS first is the short form Message(qos, topic, payload...).
    """

    def __init__(self, dup, qos, *rest):
        if isinstance(dup, QOS):
            dup, qos, rest = False, dup, (False, qos, *rest)
        retain, topic, *payload = rest
        self.dup = dup
        self.qos = int(qos)
        self.retain = retain
        self.topic = topic
        self.payload = b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in payload)


class TCP(SameFields):
    def __init__(self, ip="127.0.0.1", port=1883):
        if not 0 < port <= 65535:
            raise invalid(f"port {port} is not in 1..65535")
        self.ip = c_text(ip, "host")
        self.port = port


class UDS(SameFields):
    def __init__(self, path=None):
        self.path = c_text(os.getcwd() if path is None else path, "path")


class Servers(SameFields):
    def __init__(self, *uris):
        if not uris:
            raise invalid("Servers needs at least one address")
        self.uris = [c_text(u, "server address") for u in uris]


def IOConnection(host_or_path, port=None):
    return UDS(host_or_path) if port is None else TCP(host_or_path, port)


LIBRARY_OPTIONS = {
    "connect_timeout_ms": "integer",
    "disconnect_timeout_ms": "integer",
    "max_inflight": "integer",
    "max_packet_size": "integer",
    "token_history": "integer",
    "callback_queue": "integer",
    "auto_reconnect": "bool",
    "reconnect_min_ms": "integer",
    "reconnect_max_ms": "integer",
    "offline_max_messages": "integer",
    "offline_max_bytes": "integer",
    "offline_overflow": "overflow",
    "rotate_servers": "bool",
    "tls": "bool",
    "tls_ca_file": "text",
    "tls_cert_file": "text",
    "tls_key_file": "text",
    "tls_server_name": "text",
    "tls_alpn": "text",
    "tls_insecure": "bool",
    "tls_ca_path": "text",
    "tls_version": "text",
    "tls_ciphers": "text",
    "proxy": "text",
    "protocol_version": "integer",
    "session_expiry": "integer",
    "topic_alias_maximum": "integer",
    "topic_alias_max_out": "integer",
    "connect_properties": "properties",
    "will_properties": "properties",
    "outgoing_max_messages": "integer",
    "outgoing_max_bytes": "integer",
    "outgoing_wait_ms": "integer",
    "ack_after_callback": "bool",
    "store_dir": "text",
    "store_sync": "store_sync",
    "store_sync_count": "integer",
    "store_sync_ms": "integer",
    "store_drop_on_clean": "bool",
    "bind_address": "text",
    "on_restored": "callback",
}


def library_option(name, value):
    kind = LIBRARY_OPTIONS.get(name)
    if kind is None:
        raise invalid(f"unknown option {name}; the options are: " + ", ".join(sorted(LIBRARY_OPTIONS)))
    if kind == "integer":
        field = dict(mqttc_options._fields_)[name]
        most = (1 << (8 * ctypes.sizeof(field))) - 1
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            raise invalid(f"{name} must be an integer in 0..{most}, not {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise invalid(f"{name} must be true or false, not {value!r}")
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise invalid(f"{name} must be a string, not {value!r}")
        return c_text(value, name)
    if kind == "properties":
        if not isinstance(value, Properties):
            raise invalid(f"{name} must be Properties, not {value!r}")
        return value
    if kind == "callback":
        if not callable(value):
            raise invalid(f"{name} must be a function, not {value!r}")
        return value
    if kind == "store_sync":
        if value not in STORE_SYNC_POLICIES:
            raise invalid(f"{name} must be :batch, :every or :none, not {value!r}")
        return STORE_SYNC_POLICIES[value]
    if value not in OVERFLOW_POLICIES:
        raise invalid(f"{name} must be :reject_new or :drop_oldest, not {value!r}")
    return OVERFLOW_POLICIES[value]


def library_options(options):
    return sorted(((name, library_option(name, value)) for name, value in options.items()),
                  key=lambda item: item[0])


class MQTTConnection(SameFields):
    def __init__(self, protocol, keep_alive=32, client_id=None, user=None, will=None,
                 clean_session=True, **options):
        if not 0 <= keep_alive <= 65535:
            raise invalid(f"keep_alive {keep_alive} is not in 0..65535")
        self.protocol = protocol
        self.keep_alive = keep_alive
        self.client_id = random_client_id() if client_id is None else client_id
        self.user = User("", "") if user is None else user
        self.will = Message(False, 0, False, "", b"") if will is None else will
        self.clean_session = clean_session
        self.options = library_options(options)


Connection = MQTTConnection


def option(connection, name, default):
    for key, value in connection.options:
        if key == name:
            return value
    return default


# ------------------------------------------------------------------------------------------------
# properties.jl: MQTT 5 properties

PROPERTY_IDS = {
    "payload_format_indicator": (1, "integer"),
    "message_expiry_interval": (2, "integer"),
    "content_type": (3, "string"),
    "response_topic": (8, "string"),
    "correlation_data": (9, "binary"),
    "subscription_identifier": (11, "integer"),
    "session_expiry_interval": (17, "integer"),
    "assigned_client_identifier": (18, "string"),
    "server_keep_alive": (19, "integer"),
    "authentication_method": (21, "string"),
    "authentication_data": (22, "binary"),
    "request_problem_information": (23, "integer"),
    "will_delay_interval": (24, "integer"),
    "request_response_information": (25, "integer"),
    "response_information": (26, "string"),
    "server_reference": (28, "string"),
    "reason_string": (31, "string"),
    "receive_maximum": (33, "integer"),
    "topic_alias_maximum": (34, "integer"),
    "topic_alias": (35, "integer"),
    "maximum_qos": (36, "integer"),
    "retain_available": (37, "integer"),
    "user_property": (38, "user"),
    "maximum_packet_size": (39, "integer"),
    "wildcard_subscription_available": (40, "integer"),
    "subscription_identifier_available": (41, "integer"),
    "shared_subscription_available": (42, "integer"),
}

PROPERTY_NAMES = {pid: name for name, (pid, _) in PROPERTY_IDS.items()}


class Properties:
    """Julia's Properties(pairs...; keywords...); a user property is a (name, value) tuple."""

    def __init__(self, *pairs, **keywords):
        self.items = [property_item(name, value) for name, value in pairs]
        for name, value in keywords.items():
            values = value if name == "user_property" and isinstance(value, list) else [value]
            self.items += [property_item(name, v) for v in values]

    @classmethod
    def checked(cls, items):
        """Julia's inner constructor, for items already checked or read from the library."""
        p = cls()
        p.items = items
        return p

    def __eq__(self, other):
        return isinstance(other, Properties) and self.items == other.items

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)

    def __contains__(self, name):
        return any(key == name for key, _ in self.items)

    def get(self, name, default):
        for key, value in self.items:
            if key == name:
                return value
        return default

    def __getitem__(self, name):
        if name not in self:
            raise KeyError(name)
        return self.get(name, None)

    def __repr__(self):
        return f"Properties({self.items!r})"


def property_item(name, value):
    if name not in PROPERTY_IDS:
        raise invalid(f"unknown MQTT 5 property {name}")
    kind = PROPERTY_IDS[name][1]
    bad = invalid(f"property {name} cannot take {value!r}")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            raise bad
        return (name, value)
    if kind == "string":
        if not isinstance(value, str):
            raise bad
        return (name, c_text(value, name))
    if kind == "binary":
        if not isinstance(value, (str, bytes, bytearray)):
            raise bad
        return (name, value.encode() if isinstance(value, str) else bytes(value))
    if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise bad
    return (name, (c_text(value[0], "user property name"), c_text(value[1], "user property value")))


def user_properties(p):
    return [v for k, v in p.items if k == "user_property"]


def with_c_properties(f, p):
    if p is None or not p.items:
        return f(None)
    lst = c_void_p(None)
    check(_lib.mqttc_properties_new(ctypes.byref(lst)), "properties")
    try:
        for name, value in p.items:
            pid, kind = PROPERTY_IDS[name]
            if kind == "integer":
                status = _lib.mqttc_properties_set_int(lst, pid, value)
            elif kind == "string":
                status = _lib.mqttc_properties_set_string(lst, pid, value.encode())
            elif kind == "binary":
                status = _lib.mqttc_properties_set_binary(lst, pid, value, len(value))
            else:
                status = _lib.mqttc_properties_add_user(lst, value[0].encode(), value[1].encode())
            check(status, f"property {name}")
        return f(lst.value)
    finally:
        _lib.mqttc_properties_free(lst)


def read_properties(lst):
    items = []
    if not lst:
        return Properties.checked(items)
    count = c_size_t(0)
    check(_lib.mqttc_properties_count(lst, ctypes.byref(count)), "properties")
    for index in range(count.value):
        out = mqttc_property(struct_size=ctypes.sizeof(mqttc_property))
        check(_lib.mqttc_properties_at(lst, index, ctypes.byref(out)), "properties")
        items.append(received_item(out))
    return Properties.checked(items)


def received_item(p):
    name = PROPERTY_NAMES.get(p.id, f"property_{p.id}")
    kind = PROPERTY_IDS[name][1] if name in PROPERTY_IDS else "integer"
    if kind == "user":
        value = (p.name.decode(), p.string.decode())
    elif kind == "string":
        value = p.string.decode()
    elif kind == "binary":
        value = b"" if p.binary_len == 0 else ctypes.string_at(p.binary, p.binary_len)
    else:
        value = p.integer
    return (name, value)


# ------------------------------------------------------------------------------------------------
# state.jl: one library client's state, and the event task that drains its queue

RESOLVE_TIMEOUT = 30.0

# Julia's task-local storage of the event task.
_task_local = threading.local()


class MQTTFuture:
    """Julia's MQTTFuture: a Channel{Any}(1), completed once, read any number of times."""

    def __init__(self):
        self._done = threading.Event()
        self._value = None
        self.owner = None
        self.properties = Properties()

    def isready(self):
        return self._done.is_set()

    def fetch(self):
        await_ready(self)
        if not self._done.wait(RESOLVE_TIMEOUT):
            raise AssertionError(f"no completion within {RESOLVE_TIMEOUT} s")
        return self._value

    def wait(self):
        self.fetch()


def await_ready(f):
    owner = f.owner
    if owner is not None and getattr(_task_local, "state", None) is owner:
        while not f.isready():
            wait_and_drain(owner)


def fetch(f):
    return f.fetch()


def properties(f):
    f.wait()
    return f.properties


def complete(f, value, props=None):
    assert not f.isready(), "a future completed twice"
    f.properties = Properties() if props is None else props
    f._value = value
    f._done.set()


TASK_IDLE = 0
TASK_RUNNING = 1
TASK_FREE_ASKED = 2
TASK_FREED = 3

POLL_SECONDS = 1.0


class Atomic:
    """Julia's Threads.Atomic{Int}: [] and atomic_cas!."""

    def __init__(self, value):
        self._value = value
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            return self._value

    def set(self, value):
        with self._lock:
            self._value = value

    def cas(self, expected, new):
        with self._lock:
            old = self._value
            if old == expected:
                self._value = new
            return old


class Pending:
    def __init__(self, future, what, result, key):
        self.future = future
        self.what = what
        self.result = result  # "nothing", "zero", "session_present" or "return_codes"
        self.key = key


class CompleteEvent:
    def __init__(self, token, status, detail, codes, props):
        self.token = token
        self.status = status
        self.detail = detail
        self.codes = codes
        self.properties = props


class MessageEvent:
    def __init__(self, topic, payload, keys, props):
        self.topic = topic
        self.payload = payload
        self.keys = keys
        self.properties = props


class ConnectionEvent:
    def __init__(self, change, reason, detail):
        self.change = change
        self.reason = reason
        self.detail = detail


class RestoredEvent:
    def __init__(self, token, topic, payload):
        self.token = token
        self.topic = topic
        self.payload = payload


class Subscription:
    def __init__(self, on_msg, props):
        self.on_msg = on_msg
        self.properties = props


class ClientState:
    def __init__(self, handle, fd, auto_reconnect, on_restored):
        self.handle = handle
        self.fd = fd
        self.auto_reconnect = auto_reconnect
        self.on_restored = on_restored
        self.lock = threading.RLock()
        self.task_state = Atomic(TASK_IDLE)
        self.next_key = 0
        self.keys = {}  # topic filter -> key of its current subscription
        self.subscriptions = {}  # key -> Subscription
        self.pending = {}  # token -> Pending
        self.early = {}  # token -> CompleteEvent that came before its registration
        self.connection = "ready"  # ready, connected, reconnecting, closed or error


def release(s):
    while True:
        old = s.task_state.get()
        if old not in (TASK_IDLE, TASK_RUNNING):
            return
        wanted = TASK_FREED if old == TASK_IDLE else TASK_FREE_ASKED
        if s.task_state.cas(old, wanted) == old:
            if old == TASK_IDLE:
                _lib.mqttc_client_free(s.handle)
            return


def no_seam(s, token):
    pass


# A test seam (Python only): called between the C call that issued a token and its registration.
BEFORE_REGISTER = no_seam


def start(call, s, future, what, result="nothing", key=0):
    token = c_uint64(0)
    check(call(s.handle, ctypes.byref(token)), what)
    BEFORE_REGISTER(s, token.value)
    return register(s, token.value, Pending(future, what, result, key))


def register(s, token, p):
    p.future.owner = s
    with s.lock:
        ensure_event_task(s)
        early = s.early.pop(token, None)
        if early is None:
            s.pending[token] = p
    if early is not None:
        finish(s, p, early)
    return p.future


def finish(s, p, e):
    record_thread()
    if e.status != 0:
        value = MQTTException(f"{p.what}: {e.detail or status_text(e.status)}", e.status)
    elif p.result == "zero":
        value = 0
    elif p.result == "session_present":
        value = e.codes[0]
    elif p.result == "return_codes":
        value = e.codes
    else:
        value = None
    if isinstance(value, MQTTException):
        if p.key != 0:
            forget_key(s, p.key)
        if p.result == "session_present":
            with s.lock:
                s.connection = "error"
    complete(p.future, value, e.properties)


def forget_key(s, key):
    with s.lock:
        s.subscriptions.pop(key, None)
        for topic in [t for t, k in s.keys.items() if k == key]:
            del s.keys[topic]


# Every event thread started (test instrumentation: Julia's tasks are not listed anywhere).
EVENT_THREADS = []


def ensure_event_task(s):
    if s.task_state.cas(TASK_IDLE, TASK_RUNNING) == TASK_IDLE:
        thread = threading.Thread(target=event_loop, args=(s,), daemon=True)
        EVENT_THREADS.append(thread)
        thread.start()


def event_loop(s):
    _task_local.state = s
    try:
        while True:
            wait_and_drain(s)
            if event_loop_done(s):
                return
    except Exception as err:  # Julia: catch err, @error
        print(f"MQTTClient: the event task failed: {err!r}", file=sys.stderr)
        with s.lock:
            idle = s.task_state.cas(TASK_RUNNING, TASK_IDLE) == TASK_RUNNING
            pending = take_pending(s)
        if not idle:
            free_handle(s)
        failure = MQTTException(f"event task failed: {err}")
        for p in pending:
            complete(p.future, failure)


def event_loop_done(s):
    with s.lock:
        idle = (s.connection not in ("connected", "reconnecting") and not s.pending
                and s.task_state.cas(TASK_RUNNING, TASK_IDLE) == TASK_RUNNING)
    if idle:
        return True
    if s.task_state.get() == TASK_FREE_ASKED:
        free_handle(s)
        abandon(s, MQTTException("the client was released (garbage-collected)", MQTTC_ERR_CANCELLED))
        return True
    return False


def free_handle(s):
    _lib.mqttc_client_free(s.handle)
    s.task_state.set(TASK_FREED)


def take_pending(s):
    p = list(s.pending.values())
    s.pending.clear()
    return p


def abandon(s, err):
    with s.lock:
        pending = take_pending(s)
    for p in pending:
        complete(p.future, err)


def wait_and_drain(s):
    select.select([s.fd], [], [], POLL_SECONDS)
    drain(s)


def drain(s):
    out = POINTER(mqttc_event)()
    while True:
        check(_lib.mqttc_event_next(s.handle, ctypes.byref(out)), "mqttc_event_next")
        if not out:
            return
        event = out
        out = POINTER(mqttc_event)()
        try:
            dispatch(s, take_event(event))
        finally:
            _lib.mqttc_event_free(event)


def take_event(ptr):
    e = ptr.contents
    if e.kind == EVENT_MESSAGE:
        m = e.message
        topic = ctypes.string_at(m.topic, m.topic_len).decode()
        payload = ctypes.string_at(m.payload, m.payload_len)
        keys = [e.subscriptions[i] or 0 for i in range(e.subscription_count)]
        return MessageEvent(topic, payload, keys, read_properties(e.properties))
    if e.kind == EVENT_COMPLETE:
        detail = (e.detail or b"").decode()
        codes = ctypes.string_at(e.codes, e.code_count) if e.code_count else b""
        return CompleteEvent(e.token, e.status, detail, codes, read_properties(e.properties))
    if e.kind == EVENT_CONNECTION:
        c = e.connection
        return ConnectionEvent(c.change, c.reason, (c.detail or b"").decode())
    if e.kind == EVENT_RESTORED:
        m = e.message
        return RestoredEvent(e.token, ctypes.string_at(m.topic, m.topic_len).decode(),
                             ctypes.string_at(m.payload, m.payload_len))
    return None


def dispatch(s, e):
    record_thread()
    if isinstance(e, MessageEvent):
        with s.lock:
            subscriptions = [s.subscriptions[k] for k in e.keys if k in s.subscriptions]
        for sub in subscriptions:
            arguments = (e.topic, e.payload, e.properties) if sub.properties else (e.topic, e.payload)
            try:
                sub.on_msg(*arguments)
            except Exception as err:  # as Julia's @error: one bad on_msg must not stop the task
                print(f"MQTTClient: on_msg for {e.topic} failed: {err!r}", file=sys.stderr)
    elif isinstance(e, CompleteEvent):
        with s.lock:
            p = s.pending.pop(e.token, None)
            if p is None:
                s.early[e.token] = e
        if p is not None:
            finish(s, p, e)
    elif isinstance(e, ConnectionEvent):
        # A connection dropped by `reconnect` (reason MQTTC_ERR_CANCELLED) is one being made again.
        asked = e.change == CONNECTION_LOST and e.reason == MQTTC_ERR_CANCELLED
        if e.change == CONNECTION_UP:
            state = "connected"
        elif asked:
            state = "ready"
        elif e.change == CONNECTION_LOST:
            state = "reconnecting" if s.auto_reconnect else "error"
        else:
            state = "closed"
        with s.lock:
            s.connection = state
        if e.change == CONNECTION_LOST and not asked:
            print(f"MQTTClient: connection lost ({e.detail})", file=sys.stderr)
    elif isinstance(e, RestoredEvent):
        future = register(s, e.token, Pending(MQTTFuture(), "publish (restored)", "nothing", 0))
        if s.on_restored is not None:
            try:
                s.on_restored(e.topic, e.payload, future)
            except Exception as err:
                print(f"MQTTClient: on_restored for {e.topic} failed: {err!r}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# client.jl: the Client, and the library client it makes for a connection


class Client:
    def __init__(self, ping_timeout=60):
        if not 0 <= ping_timeout <= 0xFFFFFFFF // 1000:
            raise invalid(f"ping_timeout {ping_timeout} is not in range")
        self.ping_timeout = ping_timeout
        self.lock = threading.RLock()
        self.state = None
        self.connection = None
        self.deferred = []
        # Julia: finalizer(release, client), which reads client.state when it runs.
        weakref.finalize(self, release_client, self.__dict__)


def release_client(fields):
    s = fields["state"]
    if s is not None:
        release(s)


class Configuration:
    def __init__(self, client, connection):
        self.client = client
        self.connection = connection

    def __iter__(self):
        return iter((self.client, self.connection))


def random_client_id():
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(8))


def MakeConnection(host_or_protocol, port=None, *, ping_timeout=60, **keywords):
    if isinstance(host_or_protocol, (TCP, UDS, Servers)):
        protocol = host_or_protocol
    else:
        protocol = IOConnection(host_or_protocol, port)
    return Client(ping_timeout), MQTTConnection(protocol, **keywords)


def new_state(connection, ping_timeout):
    client_id = c_text(connection.client_id, "client_id").encode()
    name = c_text(connection.user.name, "user name").encode()
    password = connection.user.password.encode()
    will = connection.will
    will_topic = c_text(will.topic, "will topic").encode()
    will_payload = will.payload
    defaults = mqttc_options()
    _lib.mqttc_options_init_size(ctypes.byref(defaults), ctypes.sizeof(defaults))
    handle = c_void_p(None)
    auto_reconnect = option(connection, "auto_reconnect", defaults.auto_reconnect)

    def with_lists(connect_list, will_list):
        changes = [
            ("event_mode", True),
            ("queue_before_connect", True),
            ("keep_alive", connection.keep_alive),
            ("ping_timeout_ms", ping_timeout * 1000),
            ("client_id", client_id),
            ("clean_session", connection.clean_session),
        ]
        if name:
            changes.append(("username", name))
            if password:
                changes += [("password", password), ("password_len", len(password))]
        if will_topic:
            changes += [("will_topic", will_topic), ("will_payload", will_payload),
                        ("will_payload_len", len(will_payload)), ("will_qos", will.qos),
                        ("will_retain", will.retain)]
        for key, value in connection.options:
            if key == "on_restored":
                continue  # the event task's, not the library's
            if isinstance(value, str):
                value = value.encode()
            elif key == "connect_properties":
                value = connect_list
            elif key == "will_properties":
                value = will_list
            changes.append((key, value))
        options = with_fields(defaults, changes)
        return new_library_client(connection.protocol, options, handle)

    status = with_c_properties(
        lambda connect_list: with_c_properties(lambda will_list: with_lists(connect_list, will_list),
                                               option(connection, "will_properties", None)),
        option(connection, "connect_properties", None))
    check(status, "connect")
    fd = c_int(-1)
    status = _lib.mqttc_event_fd(handle, ctypes.byref(fd))
    if status != 0:
        err = MQTTException(f"connect: {last_error()}", status)
        _lib.mqttc_client_free(handle)
        raise err
    return ClientState(handle.value, fd.value, auto_reconnect, option(connection, "on_restored", None))


def new_library_client(protocol, options, handle):
    if isinstance(protocol, TCP):
        return _lib.mqttc_client_new(protocol.ip.encode(), protocol.port, ctypes.byref(options),
                                     ctypes.byref(handle))
    if isinstance(protocol, UDS):
        return _lib.mqttc_client_new_unix(protocol.path.encode(), ctypes.byref(options),
                                          ctypes.byref(handle))
    uris = [u.encode() for u in protocol.uris]
    pointers = (c_char_p * len(uris))(*uris)
    return _lib.mqttc_client_new_uris(pointers, len(uris), ctypes.byref(options), ctypes.byref(handle))


def submit(issue, client):
    future = MQTTFuture()
    with client.lock:
        s = client.state
        if s is None:
            client.deferred.append((issue, future))
        else:
            issue(s, future)
    return future


def start_deferred(client, s):
    deferred = client.deferred
    client.deferred = []
    for issue, future in deferred:
        try:
            issue(s, future)
        except MQTTException as err:
            complete(future, err)


def connection_state(client):
    s = client.state
    if s is None:
        return "ready"
    with s.lock:
        return s.connection


def pending_events(client):
    s = client.state
    if s is None:
        return 0
    count = c_size_t(0)
    check(_lib.mqttc_event_pending(s.handle, ctypes.byref(count)), "pending_events")
    return count.value


# ------------------------------------------------------------------------------------------------
# interface.jl: the API of MQTTClient.jl


def resolve(client, future):
    value = future.fetch()
    if isinstance(value, Exception):
        raise value
    return value


def isready(client):
    return connection_state(client) == "ready"


def isconnected(client):
    return connection_state(client) == "connected"


def isclosed(client):
    return connection_state(client) in ("closed", "error")


def isdone(client):
    return isclosed(client)


def iserror(client):
    return connection_state(client) == "error"


def start_connection(call, s, future, what):
    with s.lock:
        if s.connection in ("closed", "error"):
            s.connection = "ready"
    return start(call, s, future, what, result="session_present")


def connect_async(client, connection):
    future = MQTTFuture()
    with client.lock:
        s = client.state
        if s is None or client.connection != connection:
            if s is not None:
                with s.lock:
                    live = s.connection in ("connected", "reconnecting")
                if live:
                    raise MQTTException("connect: the client is connected; disconnect first",
                                        MQTTC_ERR_ALREADY_CONNECTED)
            fresh = new_state(connection, client.ping_timeout)
            client.state = fresh
            client.connection = connection
            if s is not None:
                release(s)
            s = fresh
            start_deferred(client, s)
        start_connection(lambda handle, token: _lib.mqttc_connect(handle, token), s, future, "connect")
    return future


def connect(client, connection):
    return resolve(client, connect_async(client, connection))


def reconnect_async(client, connection=None):
    if client.connection is None:
        raise MQTTException("reconnect: the client never connected; use connect", MQTTC_ERR_NOT_CONNECTED)
    if connection is not None and connection != client.connection:
        raise invalid("reconnect: not the client's connection; use connect to change it")

    return submit(lambda s, future: start_connection(
        lambda handle, token: _lib.mqttc_reconnect(handle, token), s, future, "reconnect"), client)


def reconnect(client, connection=None):
    return resolve(client, reconnect_async(client, connection))


def disconnect_async(client, reason_code=0, properties=None):
    if client.state is None:
        raise MQTTException("Not Connected. Cannot Disconnect.", MQTTC_ERR_NOT_CONNECTED)
    if not 0 <= reason_code <= 255:
        raise invalid(f"reason_code {reason_code} is not in 0..255")

    def issue(s, future):
        start(lambda handle, token: with_c_properties(
            lambda lst: _lib.mqttc_disconnect_v5(handle, reason_code, lst, token), properties),
            s, future, "disconnect")

    return submit(issue, client)


def disconnect(client, **keywords):
    resolve(client, disconnect_async(client, **keywords))
    return (0, 0, 0)


def topic_wildcard_len_check(topic):
    check(_lib.mqttc_topic_check(c_text(topic, "topic").encode()), "topic")


def filter_wildcard_len_check(topic_filter):
    check(_lib.mqttc_filter_check(c_text(topic_filter, "filter").encode()), "filter")


def topic_matches(topic_filter, topic):
    result = c_bool(False)
    status = _lib.mqttc_topic_matches(c_text(topic_filter, "filter").encode(),
                                      c_text(topic, "topic").encode(), ctypes.byref(result))
    check(status, "topic_matches")
    return result.value


PACKET_KINDS = {"connack": 2, "puback": 4, "pubrec": 5, "pubrel": 6, "pubcomp": 7, "suback": 9,
                "unsuback": 11, "disconnect": 14, "auth": 15, "connack_v311": 0x402,
                "suback_v311": 0x409}


def reason_string(code, kind):
    if not 0 <= code <= 255:
        raise invalid(f"reason code {code} is not in 0..255")
    if kind not in PACKET_KINDS:
        raise invalid(f"unknown packet kind {kind}; the kinds are: " + ", ".join(sorted(PACKET_KINDS)))
    return _lib.mqttc_reason_str(code, PACKET_KINDS[kind]).decode()


def change_library_client(call, client, what):
    with client.lock:
        s = client.state
        if s is None:
            raise MQTTException(f"{what}: the client never connected; give the connection its user "
                                "and will instead", MQTTC_ERR_NOT_CONNECTED)
        check(call(s.handle), what)


def set_credentials(client, user):
    name = c_text(user.name, "user name").encode()
    password = user.password.encode()
    change_library_client(lambda handle: _lib.mqttc_client_set_credentials(
        handle, name if name else None, password, len(password)), client, "set_credentials")


def set_will(client, will, properties=None):
    topic = c_text(will.topic, "will topic").encode()
    payload = will.payload
    change_library_client(lambda handle: with_c_properties(
        lambda lst: _lib.mqttc_client_set_will(handle, topic, payload, len(payload), will.qos,
                                               will.retain, lst), properties),
        client, "set_will")


def clear_will(client):
    change_library_client(lambda handle: _lib.mqttc_client_clear_will(handle), client, "clear_will")


def qos_value(qos):
    if isinstance(qos, bool) or not isinstance(qos, int) or not 0 <= qos <= 2:
        raise MQTTException(f"qos is {qos!r}, not 0, 1 or 2", MQTTC_ERR_INVALID_QOS)
    return int(qos)


def publish_message_async(client, message, properties=None):
    """Julia: publish_async(client, message::Message; properties)."""
    topic_wildcard_len_check(message.topic)
    qos = qos_value(message.qos)
    topic = message.topic.encode()
    payload = message.payload
    retain = message.retain

    def issue(s, future):
        start(lambda handle, token: with_c_properties(
            lambda lst: _lib.mqttc_publish_v5(handle, topic, payload, len(payload), qos, retain, lst,
                                              token), properties),
            s, future, "publish", result="zero" if qos == 0 else "nothing")

    return submit(issue, client)


def publish_async(client, topic, *payload, dup=False, qos=QOS_0, retain=False, properties=None):
    return publish_message_async(client, Message(dup, qos_value(qos), retain, topic, *payload),
                                 properties=properties)


def publish(client, topic, *payload, **keywords):
    return resolve(client, publish_async(client, topic, *payload, **keywords))


def subscribe_async(client, topic, on_msg, qos=QOS_0, no_local=False, retain_as_published=False,
                    retain_handling=0, properties=None, message_properties=False):
    filter_wildcard_len_check(topic)
    granted = qos_value(qos)
    if not 0 <= retain_handling <= 2:
        raise invalid(f"retain_handling {retain_handling} is not 0, 1 or 2")
    options = ((SUB_NO_LOCAL if no_local else 0)
               | (SUB_RETAIN_AS_PUBLISHED if retain_as_published else 0)
               | (SUB_RETAIN_IF_NEW if retain_handling == 1 else 0)
               | (SUB_RETAIN_NEVER if retain_handling == 2 else 0))
    encoded = topic.encode()

    def issue(s, future):
        with s.lock:
            s.next_key += 1
            key = s.next_key
            s.subscriptions[key] = Subscription(on_msg, message_properties)

            def call(handle, token):
                entry = mqttc_subscription(ctypes.sizeof(mqttc_subscription), encoded, granted, None,
                                           key, None, options)
                return with_c_properties(
                    lambda lst: _lib.mqttc_subscribe_v5(handle, ctypes.byref(entry), 1, lst, token),
                    properties)

            try:
                start(call, s, future, "subscribe", result="return_codes", key=key)
            except BaseException:
                del s.subscriptions[key]
                raise
            replaced = s.keys.get(topic, 0)
            s.keys[topic] = key
            s.subscriptions.pop(replaced, None)

    return submit(issue, client)


def subscribe(client, topic, on_msg, **keywords):
    return resolve(client, subscribe_async(client, topic, on_msg, **keywords))


def unsubscribe_async(client, *topics, properties=None):
    for t in topics:
        filter_wildcard_len_check(t)
    filters = list(topics)

    def issue(s, future):
        with s.lock:
            encoded = [f.encode() for f in filters]
            pointers = (c_char_p * len(encoded))(*encoded)
            start(lambda handle, token: with_c_properties(
                lambda lst: _lib.mqttc_unsubscribe_v5(handle, pointers, len(encoded), lst, token),
                properties), s, future, "unsubscribe")
            for t in filters:
                s.subscriptions.pop(s.keys.pop(t, 0), None)

    return submit(issue, client)


def unsubscribe(client, *topics, **keywords):
    resolve(client, unsubscribe_async(client, *topics, **keywords))


# ------------------------------------------------------------------------------------------------
# The scenarios: what test/runtests.jl does against a broker, plus what only a port can watch
# (threads, the event task's state, the library's handles).

# Every thread that ran code the library's events lead to: must be the main thread or an event
# thread this module started, never one of the library's.
CALLBACK_THREADS = set()


def record_thread():
    CALLBACK_THREADS.add(threading.current_thread())


def wait_until(done, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def expect_exception(what, call, code, *fragments):
    try:
        call()
    except MQTTException as err:
        assert err.code == code, f"{what}: code {err.code}, expected {code} ({err.msg})"
        for fragment in fragments:
            assert fragment in err.msg, f"{what}: {err.msg!r} lacks {fragment!r}"
        return err.msg
    raise AssertionError(f"{what}: no MQTTException")


def trace_events(log):
    """Wraps take_event (which drain looks up by name) to record every event; returns the undo."""
    original = take_event

    def tracing(ptr):
        event = original(ptr)
        log.append(event)
        return event

    globals()["take_event"] = tracing
    return lambda: globals().__setitem__("take_event", original)


def silent_listener():
    """A TCP port that accepts connections and never answers: a connect there stays pending."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def one_shot_relay(port):
    """A TCP port relaying its first connection to the broker at `port`, then refusing any other
    (its listener is closed): a reconnect through it fails while the first connection was up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def relay():
        client, _ = listener.accept()
        listener.close()
        broker = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=pipe, args=(broker, client), daemon=True).start()
        pipe(client, broker)

    threading.Thread(target=relay, daemon=True).start()
    return listener.getsockname()[1]


def passed(line):
    print(f"PASS {line}", flush=True)


def scenario_seed_example(args, prefix):
    topic = f"{prefix}/jlExample"
    received = []
    client, connection = MakeConnection("127.0.0.1", args.port)
    assert isready(client) and not isconnected(client)
    connect(client, connection)
    assert isconnected(client) and not isready(client) and not isclosed(client)
    assert publish(client, topic, "Hello World!", retain=True) == 0
    codes = subscribe(client, topic, lambda t, p: received.append((t, p)), qos=QOS_1)
    assert codes == b"\x01", f"granted QoS codes {codes!r}"
    wait_until(lambda: received, "the retained message")
    unsubscribe(client, topic)
    assert received == [(topic, b"Hello World!")], received
    publish(client, topic, b"", retain=True)  # clears the retained message
    assert disconnect(client) == (0, 0, 0)
    assert isclosed(client) and isdone(client) and not iserror(client) and not isconnected(client)
    passed("a: seed example (retained Hello World!, QOS_1 subscribe, unsubscribe, disconnect)")


def scenario_overlapping_filters(args, prefix):
    client, connection = MakeConnection("127.0.0.1", args.port)
    connect(client, connection)
    hash_calls, plus_calls = [], []
    subscribe(client, f"{prefix}/a/#", lambda t, p: hash_calls.append(p), qos=QOS_1)
    subscribe(client, f"{prefix}/a/+", lambda t, p: plus_calls.append(p), qos=QOS_1)
    events = []
    undo = trace_events(events)
    try:
        for i in range(3):
            publish(client, f"{prefix}/a/x", f"m{i}", qos=QOS_1)
        wait_until(lambda: len(hash_calls) == 3 and len(plus_calls) == 3, "3 messages on each filter")
        time.sleep(0.3)
    finally:
        undo()
    expected = [b"m0", b"m1", b"m2"]
    assert hash_calls == expected and plus_calls == expected, (hash_calls, plus_calls)
    messages = [e for e in events if isinstance(e, MessageEvent)]
    assert len(messages) == 3, f"{len(messages)} message events for 3 messages"
    assert all(len(e.keys) == 2 for e in messages), [e.keys for e in messages]
    # A blocking call inside on_msg runs on the event task, which then drains the queue itself.
    pongs, echo_threads = [], []

    def echo(t, p):
        echo_threads.append(getattr(_task_local, "state", None) is client.state)
        assert publish(client, f"{prefix}/pong", p, qos=QOS_1) is None

    subscribe(client, f"{prefix}/pong", lambda t, p: pongs.append(p), qos=QOS_1)
    subscribe(client, f"{prefix}/ping", echo, qos=QOS_1)
    publish(client, f"{prefix}/ping", "echo me", qos=QOS_1)
    wait_until(lambda: pongs, "the echo")
    time.sleep(0.3)
    assert pongs == [b"echo me"] and echo_threads == [True], (pongs, echo_threads)
    disconnect(client)
    passed("b: overlapping filters (a/# and a/+): each on_msg once per message, one event with 2 keys; "
           "an on_msg that publishes (on the event task) does not deadlock")


def scenario_binary_round_trips(args, prefix):
    client, connection = MakeConnection("127.0.0.1", args.port)
    connect(client, connection)
    payloads = [b"\x00", b"", b"a\x00b\x00\x00", bytes(range(256)), b"\xff" * 1000]
    for qos in (QOS_1, QOS_2):
        topic = f"{prefix}/bin/{int(qos)}"
        received = []
        subscribe(client, topic, lambda t, p, received=received: received.append((t, p)), qos=qos)
        futures = [publish_async(client, topic, p, qos=qos) for p in payloads]
        assert [fetch(f) for f in futures] == [None] * len(payloads)
        wait_until(lambda: len(received) == len(payloads), f"QoS {int(qos)} messages")
        time.sleep(0.3)
        assert received == [(topic, p) for p in payloads], received
    message = Message(False, QOS_2, False, f"{prefix}/bin/2", b"\x00parts:", "ü", b"\x00")
    received = []
    subscribe(client, message.topic, lambda t, p: received.append(p), qos=QOS_2)
    assert resolve(client, publish_message_async(client, message)) is None
    wait_until(lambda: received, "the Message")
    assert received == [b"\x00parts:" + "ü".encode() + b"\x00"], received
    assert fetch(publish_async(client, f"{prefix}/bin/0", "qos 0")) == 0
    disconnect(client)
    passed("c: QoS 1 and QoS 2 round trips with binary payloads (NUL bytes, empty), each once; "
           "QoS 0 gives 0")


def scenario_errors(args, prefix):
    client, connection = MakeConnection("127.0.0.1", args.port)
    connect(client, connection)
    texts = [
        expect_exception("publish to a wildcard topic", lambda: publish(client, f"{prefix}/+/x", "x"),
                         -4, "topic: "),
        expect_exception("subscribe with qos 3",
                         lambda: subscribe(client, f"{prefix}/q", lambda t, p: None, qos=3),
                         MQTTC_ERR_INVALID_QOS, "qos is 3"),
        expect_exception("an invalid filter",
                         lambda: subscribe(client, f"{prefix}/#/x", lambda t, p: None), -5, "filter: "),
        expect_exception("an unknown option",
                         lambda: MakeConnection("127.0.0.1", args.port, keep_alives=3),
                         MQTT_ERR_INVAL, "unknown option keep_alives"),
        expect_exception("a port out of range", lambda: MakeConnection("127.0.0.1", 70000),
                         MQTT_ERR_INVAL, "port 70000"),
        expect_exception("a property on MQTT 3.1.1",
                         lambda: publish(client, f"{prefix}/p", "x",
                                         properties=Properties(content_type="text/plain")),
                         -12, "publish: "),
    ]
    with client.state.lock:
        assert not client.state.subscriptions, "a refused subscribe left its callback registered"
    disconnect(client)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    closed_port = listener.getsockname()[1]
    listener.close()
    lonely, lonely_connection = MakeConnection("127.0.0.1", closed_port)
    texts.append(expect_exception("connect to a closed port", lambda: connect(lonely, lonely_connection),
                                  -40, "connect: ", "refused"))
    assert iserror(lonely) and isclosed(lonely) and not isready(lonely)
    for text in texts:
        print(f"  MQTTException: {text}", flush=True)
    passed("d: errors are MQTTException with the library's text and status (wildcard topic, qos 3, "
           "bad filter, unknown option, port, MQTT 5 property on 3.1.1, refused connect: iserror)")


def scenario_reconnect(args, prefix):
    topic = f"{prefix}/again"
    client, connection = MakeConnection("127.0.0.1", args.port)
    connect(client, connection)
    state = client.state
    received = []
    subscribe(client, topic, lambda t, p: received.append(p), qos=QOS_1)
    disconnect(client)
    assert isclosed(client)
    assert connect(client, connection) == 0
    assert client.state is state, "the same connection made a new library client"
    publish(client, topic, "kept across disconnect", qos=QOS_1)
    wait_until(lambda: received, "the subscription made before disconnect")
    assert reconnect(client) == 0 and isconnected(client)
    publish(client, topic, "after reconnect", qos=QOS_1)
    wait_until(lambda: len(received) == 2, "the message after reconnect")
    assert received == [b"kept across disconnect", b"after reconnect"], received
    disconnect(client)
    # A reconnect that drops a live connection and then fails leaves the client in error.
    relayed, relayed_connection = MakeConnection("127.0.0.1", one_shot_relay(args.port),
                                                 auto_reconnect=False)
    connect(relayed, relayed_connection)
    assert isconnected(relayed)
    expect_exception("a reconnect the relay refuses", lambda: reconnect(relayed), MQTTC_ERR_IO)
    assert iserror(relayed) and not isconnected(relayed), connection_state(relayed)
    passed("e: connect again after disconnect (same library client, subscriptions kept), reconnect, "
           "a failed reconnect")


def scenario_unix_socket(args, prefix):
    if not args.unix:
        print("SKIP f: no Unix-socket listener was given", flush=True)
        return
    topic = f"{prefix}/unix"
    client, connection = MakeConnection(args.unix)
    assert isinstance(connection.protocol, UDS)
    connect(client, connection)
    received = []
    subscribe(client, topic, lambda t, p: received.append(p), qos=QOS_1)
    publish(client, topic, "over a unix socket", qos=QOS_1)
    wait_until(lambda: received, "the message")
    assert received == [b"over a unix socket"], received
    disconnect(client)
    passed("f: MakeConnection(path) over a Unix socket")


def scenario_back_pressure(args, prefix):
    bound, count = 8, 500
    topic = f"{prefix}/flood"
    subscriber, sub_connection = MakeConnection("127.0.0.1", args.port, callback_queue=bound)
    connect(subscriber, sub_connection)
    gate = threading.Event()
    received = []

    def on_msg(t, p):
        gate.wait(30)
        received.append(int(p))

    subscribe(subscriber, topic, on_msg, qos=QOS_1)
    publisher, pub_connection = MakeConnection("127.0.0.1", args.port)
    connect(publisher, pub_connection)
    futures = [publish_async(publisher, topic, str(i), qos=QOS_1) for i in range(count)]
    for f in futures:
        assert fetch(f) is None
    # The subscriber's task is stuck in its first on_msg: its queue fills to the bound and stays.
    highest = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        highest = max(highest, pending_events(subscriber))
        time.sleep(0.01)
    assert highest == bound, f"pending events peaked at {highest}, bound {bound}"
    assert not received
    gate.set()
    wait_until(lambda: len(received) >= count, f"{count} messages", timeout=60)
    time.sleep(0.3)
    assert received == list(range(count)), f"{len(received)} received, first wrong at " + str(
        next((i for i, v in enumerate(received) if i >= count or v != i), None))
    disconnect(publisher)
    disconnect(subscriber)
    passed(f"g: back-pressure: queue bound {bound} held while on_msg blocks; "
           f"{count} QoS 1 messages in order, none lost or doubled")


def scenario_two_step(args, prefix):
    topic = f"{prefix}/two-step"
    received = []
    client = Client()
    assert isready(client) and client.state is None
    # Before the first connect there is no library client: these wait for it.
    sub_future = subscribe_async(client, topic, lambda t, p: received.append(p), qos=QOS_1)
    pub_future = publish_async(client, topic, "queued before connect", qos=QOS_1)
    assert not sub_future.isready() and not pub_future.isready() and len(client.deferred) == 2
    tcp = MQTTConnection(TCP("127.0.0.1", args.port), keep_alive=10, client_id=f"{prefix}-two")
    assert connect(client, tcp) == 0
    assert fetch(sub_future) == b"\x01" and fetch(pub_future) is None and not client.deferred
    wait_until(lambda: received, "the message published before connect")
    assert received == [b"queued before connect"], received
    first = client.state
    disconnect(client)
    wait_until(lambda: first.task_state.get() == TASK_IDLE, "the event task to stop")
    if args.unix:
        # Another connection: a new library client for it, the previous one freed at once.
        other = MQTTConnection(UDS(args.unix), client_id=f"{prefix}-two-unix")
        connect(client, other)
        assert client.state is not first and first.task_state.get() == TASK_FREED
        count = c_size_t(0)
        assert _lib.mqttc_event_pending(first.handle, ctypes.byref(count)) == -8, "not freed"
        assert not client.state.keys, "subscriptions of the previous connection carried over"
        subscribe(client, topic, lambda t, p: received.append(p), qos=QOS_1)
        publish(client, topic, "over the new connection", qos=QOS_1)
        wait_until(lambda: len(received) == 2, "the message over the new connection")
        expect_exception("reconnect with another connection", lambda: reconnect(client, tcp),
                         MQTT_ERR_INVAL, "not the client's connection")
        disconnect(client)
    configured_client, configured_connection = Configuration(Client(30), tcp)
    assert configured_client.ping_timeout == 30 and configured_connection == tcp
    passed("h: Client() then connect(client, connection): operations before connect start with it; "
           "another connection makes a new library client and frees the old")


def scenario_mqtt5(args, prefix):
    topic = f"{prefix}/v5"
    will_topic = f"{prefix}/v5-will"
    wills = []
    watcher, watcher_connection = MakeConnection("127.0.0.1", args.port)
    connect(watcher, watcher_connection)
    subscribe(watcher, will_topic, lambda t, p: wills.append(p), qos=QOS_1)
    client, connection = MakeConnection(
        "127.0.0.1", args.port, protocol_version=5, session_expiry=0,
        will=Message(QOS_1, will_topic, "v5 will"),
        will_properties=Properties(content_type="text/plain"),
        connect_properties=Properties(receive_maximum=50, user_property=[("hello", "world")]))
    connack = connect_async(client, connection)
    assert fetch(connack) == 0
    connack_properties = properties(connack)
    assert isinstance(connack_properties, Properties)
    seen = []
    subscribe(client, topic, lambda t, p, props: seen.append((p, props)), qos=QOS_1,
              message_properties=True)
    sent = Properties(content_type="application/octet-stream", response_topic=f"{prefix}/reply",
                      correlation_data=b"\x00id\x01", message_expiry_interval=60,
                      user_property=[("a", "1"), ("a", "2")])
    assert publish(client, topic, b"\x01\x02", qos=QOS_1, properties=sent) is None
    wait_until(lambda: seen, "the MQTT 5 message")
    payload, got = seen[0]
    assert payload == b"\x01\x02"
    for name in ("content_type", "response_topic", "correlation_data"):
        assert got[name] == sent[name], (name, got)
    assert user_properties(got) == [("a", "1"), ("a", "2")], got
    assert "subscription_identifier" in got and 0 < got.get("message_expiry_interval", 0) <= 60, got
    # No Local: this client's own publishes do not come back on that subscription.
    own = []
    subscribe(client, f"{prefix}/v5-local", lambda t, p: own.append(p), qos=QOS_1, no_local=True)
    publish(client, f"{prefix}/v5-local", "mine", qos=QOS_1)
    time.sleep(0.3)
    assert own == [], own
    # Reason code 0x04: the broker publishes the will although the client said goodbye.
    disconnect(client, reason_code=0x04)
    wait_until(lambda: wills, "the will")
    assert wills == [b"v5 will"], wills
    disconnect(watcher)
    print(f"  CONNACK properties: {connack_properties}", flush=True)
    passed("i: MQTT 5: connect/will/publish properties, properties of received messages and of the "
           "CONNACK, No Local, disconnect with reason code 0x04")


def scenario_ack_after_callback(args, prefix):
    topic = f"{prefix}/held"
    client, connection = MakeConnection("127.0.0.1", args.port, client_id=f"{prefix}-held",
                                        clean_session=False, ack_after_callback=True)
    connect(client, connection)
    deliveries = []

    def on_msg(t, p):
        deliveries.append(p)
        if len(deliveries) == 1:
            # Drop the connection while this message is being handled, and wait (on the event
            # task, which drains meanwhile) for the new one: its PUBACK was never sent, so the
            # broker sends it again.
            assert fetch(reconnect_async(client)) == 1

    subscribe(client, topic, on_msg, qos=QOS_1)
    publisher, pub_connection = MakeConnection("127.0.0.1", args.port)
    connect(publisher, pub_connection)
    publish(publisher, topic, "handled twice", qos=QOS_1)
    wait_until(lambda: len(deliveries) >= 2, "the message sent again")
    time.sleep(0.3)
    assert deliveries == [b"handled twice", b"handled twice"], deliveries
    disconnect(publisher)
    unsubscribe(client, topic)
    disconnect(client)
    passed("j: ack_after_callback: a message whose on_msg had not returned when the connection "
           "dropped is sent again by the broker (event freed only after on_msg)")


def scenario_budget(args, prefix):
    listener = silent_listener()
    port = listener.getsockname()[1]
    client, connection = MakeConnection("127.0.0.1", port, outgoing_max_messages=2)
    connecting = connect_async(client, connection)
    accepted = [publish_async(client, f"{prefix}/b", str(i), qos=QOS_1) for i in range(2)]
    expect_exception("a publish beyond the outgoing budget",
                     lambda: publish_async(client, f"{prefix}/b", "3", qos=QOS_1), -28, "publish: ")
    assert not any(f.isready() for f in accepted + [connecting])
    dropping, dropping_connection = MakeConnection("127.0.0.1", port, offline_max_messages=1,
                                                   offline_overflow="drop_oldest")
    connect_async(dropping, dropping_connection)
    oldest = publish_async(dropping, f"{prefix}/b", "old", qos=QOS_1)
    newest = publish_async(dropping, f"{prefix}/b", "new", qos=QOS_1)
    dropped = fetch(oldest)
    assert isinstance(dropped, MQTTException) and dropped.code == -29, dropped
    assert not newest.isready()
    for c in (client, dropping):
        disconnect(c)
    for f in accepted + [connecting, newest]:
        value = fetch(f)
        assert isinstance(value, MQTTException) and value.code == MQTTC_ERR_CANCELLED, value
    listener.close()
    passed("k: options reach the library: outgoing_max_messages refuses a third publish; "
           "offline_max_messages=1 with drop_oldest drops the older")


def round_trip(client, connection, topic, text):
    connect(client, connection)
    received = []
    subscribe(client, topic, lambda t, p: received.append(p), qos=QOS_1)
    publish(client, topic, text, qos=QOS_1)
    wait_until(lambda: received, text)
    assert received == [text.encode()], received
    disconnect(client)


def scenario_tls(args, prefix):
    if not args.tls_port:
        print("SKIP l: no TLS broker was given", flush=True)
        return
    client, connection = MakeConnection("127.0.0.1", args.tls_port, tls=True, tls_ca_file=args.tls_ca,
                                        tls_server_name="localhost")
    round_trip(client, connection, f"{prefix}/tls", "over TLS")
    bad, bad_connection = MakeConnection("127.0.0.1", args.tls_port, tls=True,
                                         tls_ca_file=f"{args.tls_ca}.missing")
    expect_exception("a missing CA file", lambda: connect(bad, bad_connection), -45, "connect: ")
    passed("l: TLS (tls, tls_ca_file, tls_server_name) round trip; a missing CA file is an MQTTException")


def scenario_websocket(args, prefix):
    if not args.ws_port:
        print("SKIP m: no WebSocket broker was given", flush=True)
        return
    client, connection = MakeConnection(Servers(f"ws://127.0.0.1:{args.ws_port}/mqtt"))
    round_trip(client, connection, f"{prefix}/ws", "over a WebSocket")
    passed("m: Servers(\"ws://...\") round trip over a WebSocket")


def scenario_task_handshake(args, prefix):
    client, connection = MakeConnection("127.0.0.1", args.port)
    s_started = len(EVENT_THREADS)
    connect(client, connection)
    s = client.state
    assert s.task_state.get() == TASK_RUNNING and len(EVENT_THREADS) == s_started + 1
    first = EVENT_THREADS[-1]
    publish(client, f"{prefix}/task", "x", qos=QOS_1)
    assert len(EVENT_THREADS) == s_started + 1, "a second task while one runs"
    disconnect(client)
    wait_until(lambda: not first.is_alive(), "the event task to end after disconnect")
    assert s.task_state.get() == TASK_IDLE and not s.pending
    connect(client, connection)
    assert len(EVENT_THREADS) == s_started + 2 and s.task_state.get() == TASK_RUNNING
    disconnect(client)
    wait_until(lambda: not EVENT_THREADS[-1].is_alive(), "the second event task to end")
    passed("n: the event task starts with an operation, ends once the connection is closed and "
           "nothing is pending, and starts again with the next")


def scenario_early_completion(args, prefix):
    global BEFORE_REGISTER
    client, connection = MakeConnection("127.0.0.1", args.port)
    connect(client, connection)
    s = client.state
    seen_early = []

    def hold_registration(state, token):
        # The running event task drains the completion before the token is registered.
        wait_until(lambda: token in state.early, "the completion to be drained first", timeout=10)
        seen_early.append(token)

    BEFORE_REGISTER = hold_registration
    try:
        future = publish_async(client, f"{prefix}/early", "early", qos=QOS_1)
    finally:
        BEFORE_REGISTER = no_seam
    assert seen_early and future.isready() and fetch(future) is None
    assert not s.early and not s.pending
    disconnect(client)
    passed("o: a completion drained before its future was registered completes it at registration")


def scenario_finalizers(args, prefix):
    will_topic = f"{prefix}/gone"
    wills = []
    watcher, watcher_connection = MakeConnection("127.0.0.1", args.port)
    connect(watcher, watcher_connection)
    subscribe(watcher, will_topic, lambda t, p: wills.append(p), qos=QOS_1)
    # No event task runs: the finalizer frees the library client itself.
    idle, idle_connection = MakeConnection("127.0.0.1", args.port)
    connect(idle, idle_connection)
    disconnect(idle)
    s = idle.state
    wait_until(lambda: s.task_state.get() == TASK_IDLE, "the event task to stop")
    del idle
    gc.collect()
    count = c_size_t(0)
    assert s.task_state.get() == TASK_FREED
    assert _lib.mqttc_event_pending(s.handle, ctypes.byref(count)) == -8, "not freed"
    # The event task runs: the finalizer asks it, and it frees the client within POLL_SECONDS;
    # no DISCONNECT was sent, so the broker publishes the will.
    live, live_connection = MakeConnection("127.0.0.1", args.port,
                                           will=Message(QOS_1, will_topic, "collected"))
    connect(live, live_connection)
    s = live.state
    del live
    gc.collect()
    assert s.task_state.get() in (TASK_FREE_ASKED, TASK_FREED)
    wait_until(lambda: s.task_state.get() == TASK_FREED, "the event task to free the client", 5)
    wait_until(lambda: wills, "the will of the collected client")
    # A future still pending when its client is collected completes with an MQTTException.
    listener = silent_listener()
    stuck, stuck_connection = MakeConnection("127.0.0.1", listener.getsockname()[1])
    pending = connect_async(stuck, stuck_connection)
    del stuck
    gc.collect()
    value = fetch(pending)
    assert isinstance(value, MQTTException) and "released" in value.msg, value
    listener.close()
    disconnect(watcher)
    passed("p: finalizers: an idle client is freed at once; a running one by its event task (the "
           "broker publishes its will); a future it left pending fails with an MQTTException")


def scenario_store(args, prefix):
    topic = f"{prefix}/stored"
    store = tempfile.mkdtemp(prefix="mqttc-jl-store-")
    texts = ["kept 1", "kept 2", "kept 3"]
    # Accepted while the broker never answers, then cancelled: the store keeps them.
    listener = silent_listener()
    first, first_connection = MakeConnection("127.0.0.1", listener.getsockname()[1],
                                             client_id=f"{prefix}-store", store_dir=store,
                                             store_sync="every")
    connect_async(first, first_connection)
    accepted = [publish_async(first, topic, text, qos=QOS_1) for text in texts]
    disconnect(first)
    for f in accepted:
        value = fetch(f)
        assert isinstance(value, MQTTException) and value.code == MQTTC_ERR_CANCELLED, value
    s = first.state
    del first
    gc.collect()
    wait_until(lambda: s.task_state.get() == TASK_FREED, "the first client to be freed", 5)
    listener.close()
    received = []
    watcher, watcher_connection = MakeConnection("127.0.0.1", args.port)
    connect(watcher, watcher_connection)
    subscribe(watcher, topic, lambda t, p: received.append(p), qos=QOS_1)
    # The next process: same client id, same store; each message comes back with a future.
    restored = []
    second, second_connection = MakeConnection(
        "127.0.0.1", args.port, client_id=f"{prefix}-store", store_dir=store,
        on_restored=lambda t, p, future: restored.append((t, p, future)))
    connect(second, second_connection)
    wait_until(lambda: len(restored) == len(texts), "every stored message to be restored")
    assert [(t, p) for t, p, _ in restored] == [(topic, x.encode()) for x in texts], restored
    assert all(fetch(future) is None for _, _, future in restored)
    wait_until(lambda: len(received) == len(texts), "the restored messages at the subscriber")
    assert sorted(received) == sorted(x.encode() for x in texts), received
    assert not second.state.early, "a restored token's completion waits for a registration"
    expect_exception("an unknown store_sync", lambda: MQTTConnection(TCP("127.0.0.1", 1),
                                                                     store_sync="sometimes"),
                     MQTT_ERR_INVAL, "store_sync must be")
    disconnect(second)
    disconnect(watcher)
    shutil.rmtree(store)
    passed("r: the message store: QoS 1 publishes cancelled with one client are restored by the "
           "next (on_restored gets each with a future, which completes) and reach a subscriber")


def scenario_live_changes(args, prefix):
    """The users broker knows alice and bob; each may talk only on users/<its name>/# and will/#."""

    def is_known_as(client, user):
        topic = f"users/{user}/echo"
        received = []
        subscribe(client, topic, lambda t, p: received.append(p), qos=QOS_1)
        publish(client, topic, f"hello {user}", qos=QOS_1)
        wait_until(lambda: received, f"the broker to know the client as {user}")
        assert received == [f"hello {user}".encode()], received
        unsubscribe(client, topic)

    client, connection = MakeConnection("127.0.0.1", args.users_port, user=User("alice", "pw-a"),
                                        protocol_version=5, auto_reconnect=False)
    expect_exception("set_credentials before connect",
                     lambda: set_credentials(client, User("bob", "pw-b")), MQTTC_ERR_NOT_CONNECTED,
                     "never connected")
    connect(client, connection)
    is_known_as(client, "alice")
    set_credentials(client, User("bob", "pw-b"))
    assert reconnect(client) == 0
    is_known_as(client, "bob")
    set_credentials(client, User("bob", "wrong"))
    refusal = expect_exception("a wrong password", lambda: reconnect(client), -65, "reconnect: ")
    set_credentials(client, User("bob", "pw-b"))
    assert reconnect(client) == 0 and isconnected(client)
    is_known_as(client, "bob")

    will_topic = "will/jlmirror"
    wills = []
    watcher, watcher_connection = MakeConnection("127.0.0.1", args.users_port,
                                                 user=User("alice", "pw-a"))
    connect(watcher, watcher_connection)
    subscribe(watcher, will_topic, lambda t, p: wills.append(p), qos=QOS_1)
    set_will(client, Message(QOS_1, will_topic, "set later"),
             properties=Properties(content_type="text/plain"))
    assert reconnect(client) == 0  # the connection dropped had no will
    clear_will(client)
    assert reconnect(client) == 0  # the one dropped now had the will set later
    wait_until(lambda: wills, "the will set later")
    expect_exception("a will topic with a wildcard",
                     lambda: set_will(client, Message(QOS_1, "will/+", "x")), -4, "set_will: ")
    s = client.state
    del client
    gc.collect()  # no DISCONNECT: a will would be published now
    wait_until(lambda: s.task_state.get() == TASK_FREED, "the client to be freed", 5)
    publish(watcher, will_topic + "/sync", "s", qos=QOS_1)  # a round trip after the free
    time.sleep(0.3)
    assert wills == [b"set later"], wills
    disconnect(watcher)

    assert topic_matches("a/+/c", "a/b/c") and topic_matches("a/#", "a")
    assert not topic_matches("a/+", "a/b/c") and not topic_matches("#", "$SYS/x")
    expect_exception("an invalid filter", lambda: topic_matches("a/#/b", "a"), -5, "topic_matches: ")
    assert reason_string(0x87, "suback") == "Not authorized"
    assert reason_string(0x00, "disconnect") == "Normal disconnection"
    assert reason_string(0x8C, "puback") == "unknown reason code"
    assert "Not authorized" in refusal, refusal
    expect_exception("an unknown packet kind", lambda: reason_string(0, "publish"), MQTT_ERR_INVAL,
                     "unknown packet kind publish")
    # Enhanced authentication needs a callback on a library thread: refused in event mode.
    scram, scram_connection = MakeConnection(
        "127.0.0.1", args.users_port, protocol_version=5,
        connect_properties=Properties(authentication_method="SCRAM-SHA-1"))
    expect_exception("an Authentication Method", lambda: connect(scram, scram_connection),
                     MQTT_ERR_INVAL, "connect: ")
    passed("s: set_credentials and set_will / clear_will change the next connection (bob after "
           "alice, a wrong password refused, the will set later published once, none after "
           "clear_will); topic_matches; reason_string; enhanced authentication refused in event mode")


def scenario_library_path(args, prefix):
    assert library_path({"MQTTCLIENT_LIB": args.lib}) == args.lib
    try:
        library_path({"MQTTCLIENT_LIB": args.lib + ".missing"})
        raise AssertionError("a missing MQTTCLIENT_LIB was accepted")
    except LibraryNotFound as err:
        assert "MQTTCLIENT_LIB is set to" in str(err), err
    with tempfile.TemporaryDirectory() as prefix_dir:
        os.makedirs(os.path.join(prefix_dir, "lib"))
        os.symlink(args.lib, os.path.join(prefix_dir, "lib", LIBRARY_FILE))
        found = library_path({"MQTTCLIENT_PREFIX": prefix_dir})
        assert found == os.path.join(prefix_dir, "lib", LIBRARY_FILE), found
    with tempfile.TemporaryDirectory() as empty_repo:
        try:
            found = library_path({}, empty_repo)
            print(f"  an installed copy was found: {found}", flush=True)
        except LibraryNotFound as err:
            for place in ("MQTTCLIENT_LIB (not set)", f"/usr/local/lib/{LIBRARY_FILE}",
                          "system library path", f"{empty_repo}/target/release/{LIBRARY_FILE}",
                          f"{empty_repo}/target/debug/{LIBRARY_FILE}"):
                assert place in str(err), f"{place} not named in: {err}"
    ctypes.CDLL(library_path({}))
    passed("q: library_path: MQTTCLIENT_LIB, an install prefix, the repository's build; "
           "the error names every place looked at")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--unix")
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--tls-ca")
    parser.add_argument("--ws-port", type=int)
    parser.add_argument("--users-port", type=int, required=True)
    args = parser.parse_args()
    __init__({"MQTTCLIENT_LIB": args.lib})
    prefix = "jlmirror/" + random_client_id()
    for scenario in (scenario_seed_example, scenario_overlapping_filters, scenario_binary_round_trips,
                     scenario_errors, scenario_reconnect, scenario_unix_socket, scenario_back_pressure,
                     scenario_two_step, scenario_mqtt5, scenario_ack_after_callback, scenario_budget,
                     scenario_tls, scenario_websocket, scenario_task_handshake,
                     scenario_early_completion, scenario_finalizers, scenario_library_path,
                     scenario_store, scenario_live_changes):
        scenario(args, prefix)
    gc.collect()  # runs the remaining clients' finalizers
    allowed = {threading.main_thread(), *EVENT_THREADS}
    foreign = [t for t in CALLBACK_THREADS if t not in allowed]
    assert not foreign, f"events handled on threads the mirror did not start: {foreign}"
    assert CALLBACK_THREADS & set(EVENT_THREADS), "no event reached an event task"
    passed(f"z: no library thread entered Python (events handled on {len(CALLBACK_THREADS)} "
           f"thread(s): the main one and event tasks, of which {len(EVENT_THREADS)} started)")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, MQTTException, LibraryNotFound) as failure:
        print(f"FAIL: {type(failure).__name__}: {failure}", flush=True)
        sys.exit(1)
