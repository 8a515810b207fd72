#!/usr/bin/env python3
"""A ctypes port of julia/MQTTClient/src/MQTTClient.jl, and a scenario that runs it.

No Julia runtime exists on the build machines, so the Julia wrapper cannot be run there. This
module makes the same C calls in the same order with the same argument types (the same structs,
the same event-mode client, the descriptor waited on with select where Julia uses poll_fd, the
queue drained and dispatched the same way), so running it against mosquitto exercises what the
Julia code relies on. Functions keep the Julia names; the Rust test
`julia_and_python_call_the_same_c_functions` checks that both call the same set of C functions.

Python has no task scheduler, so there is no event task: the blocking forms drain the queue
themselves until their future is done, which is what the Julia blocking forms do when they are
called from the event task (an on_msg that publishes).

Usage: julia_mirror.py <libmqttclient.so> <broker port> <unix socket path, or ->
"""
import ctypes
import enum
import gc
import random
import select
import socket
import string
import sys
import threading
import time
import weakref
from ctypes import POINTER, c_bool, c_char_p, c_int, c_int32, c_size_t, c_uint16, c_uint32
from ctypes import c_uint64, c_uint8, c_void_p

# ------------------------------------------------------------------------------------------------
# The C library


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


# One entry per C function, one line each (the Rust test parses them): name: (result, arguments).
PROTOTYPES = {
    "mqttc_last_error": (c_char_p, []),
    "mqttc_status_str": (c_char_p, [c_int32]),
    "mqttc_options_init_size": (None, [POINTER(mqttc_options), c_size_t]),
    "mqttc_client_new": (c_int, [c_char_p, c_uint16, POINTER(mqttc_options), POINTER(c_void_p)]),
    "mqttc_client_new_unix": (c_int, [c_char_p, POINTER(mqttc_options), POINTER(c_void_p)]),
    "mqttc_client_free": (None, [c_void_p]),
    "mqttc_connect": (c_int, [c_void_p, POINTER(c_uint64)]),
    "mqttc_reconnect": (c_int, [c_void_p, POINTER(c_uint64)]),
    "mqttc_disconnect": (c_int, [c_void_p, POINTER(c_uint64)]),
    "mqttc_publish": (c_int, [c_void_p, c_char_p, c_char_p, c_size_t, c_int, c_bool, POINTER(c_uint64)]),
    "mqttc_subscribe": (c_int, [c_void_p, c_char_p, c_int, c_void_p, c_void_p, POINTER(c_uint64)]),
    "mqttc_unsubscribe_many": (c_int, [c_void_p, POINTER(c_char_p), c_size_t, POINTER(c_uint64)]),
    "mqttc_event_fd": (c_int, [c_void_p, POINTER(c_int)]),
    "mqttc_event_pending": (c_int, [c_void_p, POINTER(c_size_t)]),
    "mqttc_event_next": (c_int, [c_void_p, POINTER(POINTER(mqttc_event))]),
    "mqttc_event_free": (None, [POINTER(mqttc_event)]),
}

_lib = None


def load_library(path):
    global _lib
    _lib = ctypes.CDLL(path)
    for name, (result, arguments) in PROTOTYPES.items():
        function = getattr(_lib, name)
        function.restype = result
        function.argtypes = arguments


EVENT_MESSAGE = 1
EVENT_COMPLETE = 2
EVENT_CONNECTION = 3

CONNECTION_UP = 0
CONNECTION_LOST = 1  # anything else is CLOSED

# ------------------------------------------------------------------------------------------------
# The public types of MQTTClient.jl


class QOS(enum.IntEnum):
    QOS_0 = 0
    QOS_1 = 1
    QOS_2 = 2


QOS_0, QOS_1, QOS_2 = QOS.QOS_0, QOS.QOS_1, QOS.QOS_2


class MQTTException(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg


class User:
    def __init__(self, name, password):
        self.name = name
        self.password = password


class Message:
    """Julia's `write` of each payload part: str as UTF-8, bytes as they are."""

    def __init__(self, dup, qos, retain, topic, *payload):
        self.dup = dup
        self.qos = int(qos)
        self.retain = retain
        self.topic = topic
        self.payload = b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in payload)


class TCP:
    def __init__(self, host, port):
        self.host = host
        self.port = port


class UDS:
    def __init__(self, path):
        self.path = path


class MQTTConnection:
    def __init__(self, protocol, keep_alive, client_id, user, will, clean_session):
        self.protocol = protocol
        self.keep_alive = keep_alive
        self.client_id = client_id
        self.user = user
        self.will = will
        self.clean_session = clean_session


class MQTTFuture:
    """Julia's Channel{Any}(1): completed once, read any number of times."""

    def __init__(self):
        self._done = False
        self._value = None

    def isready(self):
        return self._done

    def fetch(self):
        assert self._done, "fetch of a pending future: drive it with resolve()"
        return self._value


def complete(future, value):
    assert not future._done, "a future completed twice"
    future._done = True
    future._value = value


# ------------------------------------------------------------------------------------------------
# Client state

POLL_SECONDS = 1.0
RESOLVE_TIMEOUT = 30.0

# Every thread that ran code the library's events lead to; the scenario asserts it is only main.
CALLBACK_THREADS = set()


def record_thread():
    CALLBACK_THREADS.add(threading.get_ident())


class Pending:
    def __init__(self, future, what, result, key):
        self.future = future
        self.what = what  # the operation, to name it in an MQTTException
        self.result = result  # "nothing", "session_present" or "return_codes"
        self.key = key


class ClientState:
    def __init__(self, handle, fd):
        self.handle = handle
        self.fd = fd
        self.lock = threading.RLock()
        self.next_key = 0
        self.keys = {}  # topic filter -> key of its current subscription
        self.on_msg = {}  # key -> on_msg
        self.pending = {}  # token -> Pending
        self.early = {}  # token -> CompleteEvent, completed before it was registered
        self.connection = "disconnected"


class Client:
    def __init__(self, state):
        self.state = state


def isconnected(client):
    with client.state.lock:
        return client.state.connection == "connected"


def pending_events(client):
    count = c_size_t(0)
    check(_lib.mqttc_event_pending(client.state.handle, ctypes.byref(count)), "pending_events")
    return count.value


def last_error():
    return _lib.mqttc_last_error().decode()


def status_text(status):
    return _lib.mqttc_status_str(status).decode()


def check(status, what):
    if status != 0:
        raise MQTTException(f"{what}: {last_error()}")


def c_text(s, what):
    if "\0" in s:
        raise MQTTException(f"{what} contains a NUL character")
    return s.encode()


def with_fields(options, changes):
    names = {name for name, _ in mqttc_options._fields_}
    for name, value in changes:
        if name not in names:
            raise ValueError(f"mqttc_options has no field {name}")
        setattr(options, name, value)
    return options


# ------------------------------------------------------------------------------------------------
# MakeConnection


def random_client_id():
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(8))


def MakeConnection(host_or_path, port=None, *, ping_timeout=60, keep_alive=32, client_id=None,
                   user=None, will=None, clean_session=True, callback_queue=None):
    client_id = random_client_id() if client_id is None else client_id
    user = User("", "") if user is None else user
    will = Message(False, 0, False, "", b"") if will is None else will
    if port is None:
        protocol = UDS(host_or_path)
    else:
        if not 0 < port <= 65535:
            raise MQTTException(f"port {port} is not in 1..65535")
        protocol = TCP(str(host_or_path), port)
    connection = MQTTConnection(protocol, keep_alive, client_id, user, will, clean_session)
    return new_client(connection, ping_timeout, callback_queue), connection


def new_client(connection, ping_timeout, callback_queue):
    if not 0 <= connection.keep_alive <= 65535:
        raise MQTTException(f"keep_alive {connection.keep_alive} is not in 0..65535")
    client_id = c_text(connection.client_id, "client_id")
    name = c_text(connection.user.name, "user name")
    password = connection.user.password.encode()
    will = connection.will
    will_topic = c_text(will.topic, "will topic")
    will_payload = will.payload
    options = mqttc_options()
    _lib.mqttc_options_init_size(ctypes.byref(options), ctypes.sizeof(options))
    handle = c_void_p(None)
    changes = [
        ("event_mode", True),
        ("keep_alive", connection.keep_alive),
        ("ping_timeout_ms", round(float(ping_timeout) * 1000)),
        ("client_id", client_id),
        ("clean_session", connection.clean_session),
    ]
    if callback_queue is not None:
        changes.append(("callback_queue", callback_queue))
    if name:
        changes.append(("username", name))
        if password:
            changes += [("password", password), ("password_len", len(password))]
    if will_topic:
        changes += [("will_topic", will_topic), ("will_payload", will_payload),
                    ("will_payload_len", len(will_payload)), ("will_qos", will.qos),
                    ("will_retain", will.retain)]
    options = with_fields(options, changes)
    protocol = connection.protocol
    if isinstance(protocol, UDS):
        status = _lib.mqttc_client_new_unix(c_text(protocol.path, "path"), ctypes.byref(options),
                                            ctypes.byref(handle))
    else:
        status = _lib.mqttc_client_new(c_text(protocol.host, "host"), protocol.port,
                                       ctypes.byref(options), ctypes.byref(handle))
    check(status, "MakeConnection")
    fd = c_int(-1)
    status = _lib.mqttc_event_fd(handle, ctypes.byref(fd))
    if status != 0:
        err = MQTTException(f"MakeConnection: {last_error()}")
        _lib.mqttc_client_free(handle)
        raise err
    state = ClientState(handle.value, fd.value)
    client = Client(state)
    # Julia's finalizer; without an event task there is nobody to hand the freeing to.
    weakref.finalize(client, release, state)
    return client


def release(state):
    _lib.mqttc_client_free(state.handle)


# ------------------------------------------------------------------------------------------------
# Operations and their futures


def start(call, client, what, result="nothing", key=0):
    token = c_uint64(0)
    s = client.state
    check(call(s.handle, ctypes.byref(token)), what)
    return register(s, token.value, Pending(MQTTFuture(), what, result, key))


def register(s, token, p):
    with s.lock:
        early = s.early.pop(token, None)
        if early is None:
            s.pending[token] = p
    if early is not None:
        finish(s, p, early)
    return p.future


# The event carries what MQTTClient.jl's futures give: "session present" for a connect, the SUBACK
# return codes for a subscribe; and for a failure, the library's own description.
def finish(s, p, e):
    record_thread()
    if e.status != 0:
        value = MQTTException(f"{p.what}: {e.detail or status_text(e.status)}")
    elif p.result == "nothing":
        value = None
    elif p.result == "session_present":
        value = e.codes[0]
    else:
        value = e.codes
    if isinstance(value, MQTTException) and p.key != 0:
        forget_key(s, p.key)
    complete(p.future, value)


def forget_key(s, key):
    with s.lock:
        s.on_msg.pop(key, None)
        for topic in [t for t, k in s.keys.items() if k == key]:
            del s.keys[topic]


def resolve(client, future):
    s = client.state
    deadline = time.monotonic() + RESOLVE_TIMEOUT
    while not future.isready():
        if time.monotonic() > deadline:
            raise AssertionError(f"no completion within {RESOLVE_TIMEOUT} s")
        wait_and_drain(s)
    value = future.fetch()
    if isinstance(value, Exception):
        raise value
    return value


# ------------------------------------------------------------------------------------------------
# The event loop (Julia: one task per client; here driven by resolve and by the scenario's pump)


def wait_and_drain(s):
    select.select([s.fd], [], [], POLL_SECONDS)
    drain(s)


def drain(s):
    out = POINTER(mqttc_event)()
    while True:
        check(_lib.mqttc_event_next(s.handle, ctypes.byref(out)), "mqttc_event_next")
        if not out:
            return
        dispatch(s, take_event(out))


class MessageEvent:
    def __init__(self, topic, payload, keys):
        self.topic = topic
        self.payload = payload
        self.keys = keys


class CompleteEvent:
    def __init__(self, token, status, detail, codes):
        self.token = token
        self.status = status
        self.detail = detail
        self.codes = codes


class ConnectionEvent:
    def __init__(self, change, detail):
        self.change = change
        self.detail = detail


def take_event(ptr):
    try:
        e = ptr.contents
        if e.kind == EVENT_MESSAGE:
            m = e.message
            topic = ctypes.string_at(m.topic, m.topic_len).decode()
            payload = ctypes.string_at(m.payload, m.payload_len)
            keys = [e.subscriptions[i] or 0 for i in range(e.subscription_count)]
            return MessageEvent(topic, payload, keys)
        if e.kind == EVENT_COMPLETE:
            detail = (e.detail or b"").decode()
            return CompleteEvent(e.token, e.status, detail, ctypes.string_at(e.codes, e.code_count))
        if e.kind == EVENT_CONNECTION:
            c = e.connection
            return ConnectionEvent(c.change, (c.detail or b"").decode())
        return None
    finally:
        _lib.mqttc_event_free(ptr)


def dispatch(s, e):
    record_thread()
    if isinstance(e, MessageEvent):
        with s.lock:
            callbacks = [s.on_msg[k] for k in e.keys if k in s.on_msg]
        for on_msg in callbacks:
            try:
                on_msg(e.topic, e.payload)
            except Exception as err:  # as Julia's @error: one bad on_msg must not stop the loop
                print(f"MQTTClient: on_msg for {e.topic} failed: {err!r}", file=sys.stderr)
    elif isinstance(e, CompleteEvent):
        with s.lock:
            p = s.pending.pop(e.token, None)
            if p is None:
                s.early[e.token] = e
        if p is not None:
            finish(s, p, e)
    elif isinstance(e, ConnectionEvent):
        if e.change == CONNECTION_UP:
            state = "connected"
        elif e.change == CONNECTION_LOST:
            state = "reconnecting"
        else:
            state = "disconnected"
        with s.lock:
            s.connection = state
        if e.change == CONNECTION_LOST:
            print(f"MQTTClient: connection lost ({e.detail}); reconnecting", file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# The API of MQTTClient.jl


def connect_async(client, connection):
    return start(lambda handle, token: _lib.mqttc_connect(handle, token), client, "connect",
                 result="session_present")


def connect(client, connection):
    return resolve(client, connect_async(client, connection))


def reconnect_async(client, connection):
    return start(lambda handle, token: _lib.mqttc_reconnect(handle, token), client, "reconnect",
                 result="session_present")


def reconnect(client, connection):
    return resolve(client, reconnect_async(client, connection))


def disconnect(client):
    resolve(client, start(lambda handle, token: _lib.mqttc_disconnect(handle, token), client,
                          "disconnect"))


def publish_message_async(client, message):
    topic = c_text(message.topic, "topic")
    payload = message.payload
    return start(lambda handle, token: _lib.mqttc_publish(handle, topic, payload, len(payload),
                                                          message.qos, message.retain, token),
                 client, "publish")


def publish_async(client, topic, *payload, dup=False, qos=QOS_0, retain=False):
    return publish_message_async(client, Message(dup, qos, retain, topic, *payload))


def publish(client, topic, *payload, dup=False, qos=QOS_0, retain=False):
    return resolve(client, publish_async(client, topic, *payload, dup=dup, qos=qos, retain=retain))


def subscribe_async(client, topic, on_msg, qos=QOS_0):
    topic_filter = c_text(topic, "topic")
    s = client.state
    with s.lock:
        s.next_key += 1
        key = s.next_key
        s.on_msg[key] = on_msg
        try:
            future = start(lambda handle, token: _lib.mqttc_subscribe(
                handle, topic_filter, int(qos), None, key, token),
                client, "subscribe", result="return_codes", key=key)
        except BaseException:
            del s.on_msg[key]
            raise
        replaced = s.keys.get(topic, 0)
        s.keys[topic] = key
        s.on_msg.pop(replaced, None)
        return future


def subscribe(client, topic, on_msg, qos=QOS_0):
    return resolve(client, subscribe_async(client, topic, on_msg, qos=qos))


def unsubscribe_async(client, *topics):
    filters = [c_text(t, "topic") for t in topics]
    pointers = (c_char_p * len(filters))(*filters)
    s = client.state
    with s.lock:
        future = start(lambda handle, token: _lib.mqttc_unsubscribe_many(handle, pointers,
                                                                         len(filters), token),
                       client, "unsubscribe")
        for t in topics:
            s.on_msg.pop(s.keys.pop(t, 0), None)
        return future


def unsubscribe(client, *topics):
    resolve(client, unsubscribe_async(client, *topics))


# ------------------------------------------------------------------------------------------------
# The scenario: what a Julia user's script would do, with the event task's work done by `pump`.


def pump(client, seconds):
    """Julia's `sleep(seconds)` while the event task runs."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([client.state.fd], [], [], left)
        drain(client.state)


def pump_until(client, done, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        wait_and_drain(client.state)


def expect_exception(what, call, *fragments):
    try:
        call()
    except MQTTException as err:
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


def passed(line):
    print(f"PASS {line}", flush=True)


def scenario_seed_example(port, prefix):
    topic = f"{prefix}/jlExample"
    received = []

    def on_msg(topic, payload):
        record_thread()
        received.append((topic, payload))

    client, connection = MakeConnection("127.0.0.1", port)
    connect(client, connection)
    assert isconnected(client)
    publish(client, topic, "Hello World!", retain=True)
    codes = subscribe(client, topic, on_msg, qos=QOS_1)
    assert codes == b"\x01", f"granted QoS codes {codes!r}"
    pump_until(client, lambda: received)
    unsubscribe(client, topic)
    pump(client, 0.2)
    assert received == [(topic, b"Hello World!")], received
    disconnect(client)
    assert not isconnected(client)
    passed("a: seed example (retained Hello World!, QOS_1 subscribe, unsubscribe, disconnect)")


def scenario_overlapping_filters(port, prefix):
    client, connection = MakeConnection("127.0.0.1", port)
    connect(client, connection)
    hash_calls, plus_calls = [], []
    subscribe(client, f"{prefix}/a/#", lambda t, p: hash_calls.append(p), qos=QOS_1)
    subscribe(client, f"{prefix}/a/+", lambda t, p: plus_calls.append(p), qos=QOS_1)
    events = []
    undo = trace_events(events)
    try:
        for i in range(3):
            publish(client, f"{prefix}/a/x", f"m{i}", qos=QOS_1)
        pump_until(client, lambda: len(hash_calls) == 3 and len(plus_calls) == 3)
        pump(client, 0.3)
    finally:
        undo()
    expected = [b"m0", b"m1", b"m2"]
    assert hash_calls == expected and plus_calls == expected, (hash_calls, plus_calls)
    messages = [e for e in events if isinstance(e, MessageEvent)]
    assert len(messages) == 3, f"{len(messages)} message events for 3 messages"
    assert all(len(e.keys) == 2 for e in messages), [e.keys for e in messages]
    # A blocking call inside on_msg drains the queue itself (Julia: on the event task).
    pongs = []
    subscribe(client, f"{prefix}/pong", lambda t, p: pongs.append(p), qos=QOS_1)
    subscribe(client, f"{prefix}/ping", lambda t, p: publish(client, f"{prefix}/pong", p, qos=QOS_1),
              qos=QOS_1)
    publish(client, f"{prefix}/ping", "echo me", qos=QOS_1)
    pump_until(client, lambda: pongs)
    pump(client, 0.3)
    assert pongs == [b"echo me"], pongs
    disconnect(client)
    passed("b: overlapping filters (a/# and a/+): each on_msg once per message, one event with 2 keys; "
           "an on_msg that publishes does not deadlock")


def scenario_binary_round_trips(port, prefix):
    client, connection = MakeConnection("127.0.0.1", port)
    connect(client, connection)
    payloads = [b"\x00", b"", b"a\x00b\x00\x00", bytes(range(256)), b"\xff" * 1000]
    for qos in (QOS_1, QOS_2):
        topic = f"{prefix}/bin/{int(qos)}"
        received = []
        subscribe(client, topic, lambda t, p, received=received: received.append((t, p)), qos=qos)
        futures = [publish_async(client, topic, p, qos=qos) for p in payloads]
        for f in futures:
            assert resolve(client, f) is None
        pump_until(client, lambda: len(received) == len(payloads))
        pump(client, 0.3)
        assert received == [(topic, p) for p in payloads], received
    message = Message(False, QOS_2, False, f"{prefix}/bin/2", b"\x00parts:", "ü", b"\x00")
    received = []
    subscribe(client, message.topic, lambda t, p: received.append(p), qos=QOS_2)
    resolve(client, publish_message_async(client, message))
    pump_until(client, lambda: received)
    assert received == [b"\x00parts:" + "ü".encode() + b"\x00"], received
    disconnect(client)
    passed("c: QoS 1 and QoS 2 round trips with binary payloads (NUL bytes, empty), each once")


def scenario_errors(port, prefix):
    client, connection = MakeConnection("127.0.0.1", port)
    connect(client, connection)
    publish_error = expect_exception("publish to a wildcard topic",
                                     lambda: publish(client, f"{prefix}/+/x", "x"),
                                     "publish: ", "must not contain the wildcards")
    subscribe_error = expect_exception("subscribe with qos 3",
                                       lambda: subscribe(client, f"{prefix}/q", lambda t, p: None, qos=3),
                                       "subscribe: qos is 3")
    with client.state.lock:
        assert not client.state.on_msg, "a refused subscribe left its callback registered"
    disconnect(client)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    lonely, lonely_connection = MakeConnection("127.0.0.1", closed_port)
    connect_error = expect_exception("connect to a closed port",
                                     lambda: connect(lonely, lonely_connection),
                                     "connect: ", "refused")
    for text in (publish_error, subscribe_error, connect_error):
        print(f"  MQTTException: {text}", flush=True)
    passed("d: errors are MQTTException with the library's text (wildcard topic, qos 3, refused connect)")


def scenario_reconnect(port, prefix):
    topic = f"{prefix}/again"
    client, connection = MakeConnection("127.0.0.1", port)
    connect(client, connection)
    first = []
    subscribe(client, topic, lambda t, p: first.append(p), qos=QOS_1)
    disconnect(client)
    assert not isconnected(client)
    session_present = reconnect(client, connection)
    assert session_present == 0, session_present
    assert isconnected(client)
    second = []
    subscribe(client, topic, lambda t, p: second.append(p), qos=QOS_1)
    publish(client, topic, "after reconnect", qos=QOS_1)
    pump_until(client, lambda: second)
    pump(client, 0.3)
    assert second == [b"after reconnect"] and first == [], (first, second)
    disconnect(client)
    passed("e: reconnect after disconnect; the subscription made again receives")


def scenario_unix_socket(path, prefix):
    if path == "-":
        print("SKIP f: no Unix-socket listener was given", flush=True)
        return
    topic = f"{prefix}/unix"
    client, connection = MakeConnection(path)
    connect(client, connection)
    received = []
    subscribe(client, topic, lambda t, p: received.append(p), qos=QOS_1)
    publish(client, topic, "over a unix socket", qos=QOS_1)
    pump_until(client, lambda: received)
    assert received == [b"over a unix socket"], received
    disconnect(client)
    passed("f: MakeConnection(path) over a Unix socket")


def scenario_back_pressure(port, prefix):
    bound, count = 8, 500
    topic = f"{prefix}/flood"
    subscriber, sub_connection = MakeConnection("127.0.0.1", port, callback_queue=bound)
    connect(subscriber, sub_connection)
    received = []
    subscribe(subscriber, topic, lambda t, p: received.append(int(p)), qos=QOS_1)
    publisher, pub_connection = MakeConnection("127.0.0.1", port)
    connect(publisher, pub_connection)
    highest = 0
    futures = [publish_async(publisher, topic, str(i), qos=QOS_1) for i in range(count)]
    for f in futures:
        resolve(publisher, f)
        highest = max(highest, pending_events(subscriber))
    # The subscriber is not drained for a second: its queue must fill to the bound and stay there.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        highest = max(highest, pending_events(subscriber))
        time.sleep(0.01)
    assert highest == bound, f"pending events peaked at {highest}, bound {bound}"
    assert not received
    pump_until(subscriber, lambda: len(received) >= count, timeout=60)
    pump(subscriber, 0.3)
    assert received == list(range(count)), f"{len(received)} received, first wrong at " + str(
        next((i for i, v in enumerate(received) if i >= count or v != i), None))
    disconnect(publisher)
    disconnect(subscriber)
    passed(f"g: back-pressure: queue bound {bound} held while not draining; "
           f"{count} QoS 1 messages in order, none lost or doubled")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    library, port, unix_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    load_library(library)
    prefix = "jlmirror/" + random_client_id()
    scenario_seed_example(port, prefix)
    scenario_overlapping_filters(port, prefix)
    scenario_binary_round_trips(port, prefix)
    scenario_errors(port, prefix)
    scenario_reconnect(port, prefix)
    scenario_unix_socket(unix_path, prefix)
    scenario_back_pressure(port, prefix)
    gc.collect()  # runs the clients' finalizers: mqttc_client_free on the main thread
    main_thread = threading.get_ident()
    assert CALLBACK_THREADS == {main_thread}, f"events handled on threads {CALLBACK_THREADS}"
    assert threading.active_count() == 1, f"{threading.active_count()} Python threads"
    passed("h: no library thread entered Python (all handling on the main thread, 1 Python thread)")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, MQTTException) as failure:
        print(f"FAIL: {type(failure).__name__}: {failure}", flush=True)
        sys.exit(1)
