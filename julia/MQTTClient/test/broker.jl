# Round trips against a real mosquitto that this file starts on a free loopback port and a Unix
# socket, when mosquitto is installed; skipped otherwise. tests/python/julia_mirror.py runs the
# same scenarios through the same C calls in CI, where no Julia runtime is available.
using Random: randstring
using Sockets: listenany

function find_mosquitto()
    found = Sys.which("mosquitto")
    found === nothing || return found
    for dir in ("/usr/sbin", "/usr/local/sbin")
        path = joinpath(dir, "mosquitto")
        isfile(path) && return path
    end
    return nothing
end

function wait_until(done, what; timeout = 20)
    deadline = time() + timeout
    while !done()
        time() > deadline && error("timed out after $timeout s waiting for $what")
        sleep(0.01)
    end
end

# The next value put on `channel` (by an on_msg, on the client's event task).
function take_within(channel::Channel, what; timeout = 20)
    wait_until(() -> isready(channel), what; timeout = timeout)
    return take!(channel)
end

function free_port()
    port, probe = listenany(ip"127.0.0.1", 20000)
    close(probe)
    return Int(port)
end

struct Mosquitto
    process::Base.Process
    port::Int
    socket::String
end

function start_mosquitto(program)
    dir = mktempdir()
    chmod(dir, 0o777)  # mosquitto started as root binds the socket as its own user
    socket = joinpath(dir, "mqtt.sock")
    port = free_port()
    conf = joinpath(dir, "mosquitto.conf")
    write(conf, """
        listener $port 127.0.0.1
        listener 0 $socket
        allow_anonymous true
        persistence false
        """)
    process = run(pipeline(`$program -c $conf`; stdout = devnull, stderr = devnull); wait = false)
    wait_until("mosquitto to listen on port $port and $socket") do
        ispath(socket) && try
            close(connect(ip"127.0.0.1", port))
            true
        catch
            false
        end
    end
    return Mosquitto(process, port, socket)
end

const PREFIX = "jltest/" * randstring(8)

# A client connected to the broker, and its connection.
function connected_client(broker::Mosquitto; keywords...)
    client, connection = MakeConnection("127.0.0.1", broker.port; keywords...)
    connect(client, connection)
    return client, connection
end

# A channel that gets each payload, as a String, that `client` receives on `topic` (QoS 1).
function collect_messages(client::Client, topic::String)
    received = Channel{Any}(100)
    subscribe(client, topic, (t, p) -> put!(received, String(p)); qos = QOS_1)
    return received
end

function round_trips(broker::Mosquitto)
    @testset "seed example" begin
        topic = "$PREFIX/jlExample"
        received = Channel{Any}(10)
        client, connection = MakeConnection("127.0.0.1", broker.port)
        @test isready(client)
        @test connect(client, connection) == 0x00
        @test MQTTClient.isconnected(client) && !isready(client)
        @test publish(client, topic, "Hello World!"; retain = true) == 0
        @test subscribe(client, topic, (t, p) -> put!(received, (t, String(p))); qos = QOS_1) ==
              UInt8[0x01]
        @test take_within(received, "the retained message") == (topic, "Hello World!")
        unsubscribe(client, topic)
        publish(client, topic, UInt8[]; retain = true)  # clears the retained message
        @test disconnect(client) == (0x00, 0x00, 0x00)
        @test MQTTClient.isclosed(client) && MQTTClient.isdone(client)
        @test !MQTTClient.iserror(client)
    end

    @testset "Client() then connect(client, connection)" begin
        topic = "$PREFIX/two-step"
        received = Channel{Any}(10)
        client = Client()
        sub = subscribe_async(client, topic, (t, p) -> put!(received, String(p)); qos = QOS_1)
        pub = publish_async(client, topic, "queued before connect"; qos = QOS_1)
        @test !isready(sub) && !isready(pub)
        tcp = MQTTConnection(MQTTClient.TCP(ip"127.0.0.1", broker.port);
                             client_id = "$(randstring(8))-two")
        @test connect(client, tcp) == 0x00
        @test fetch(sub) == UInt8[0x01]
        @test fetch(pub) === nothing
        @test take_within(received, "the message published before connect") ==
              "queued before connect"
        first = client.state
        disconnect(client)
        # Another connection: the client starts anew with a library client made for it.
        connect(client, MQTTConnection(MQTTClient.UDS(broker.socket)))
        @test client.state !== first
        wait_until(() -> first.task_state[] == MQTTClient.TASK_FREED, "the old client's free")
        received = collect_messages(client, topic)
        publish(client, topic, "over the Unix socket"; qos = QOS_1)
        @test take_within(received, "the message over the Unix socket") == "over the Unix socket"
        @test_throws MQTTException reconnect(client, tcp)
        disconnect(client)
    end

    @testset "connect again after disconnect, reconnect" begin
        topic = "$PREFIX/again"
        client, connection = connected_client(broker)
        state = client.state
        received = collect_messages(client, topic)
        disconnect(client)
        @test connect(client, connection) == 0x00
        @test client.state === state
        publish(client, topic, "kept across disconnect"; qos = QOS_1)
        @test take_within(received, "the subscription made before") == "kept across disconnect"
        @test reconnect(client) == 0x00
        publish(client, topic, "after reconnect"; qos = QOS_1)
        @test take_within(received, "the message after reconnect") == "after reconnect"
        disconnect(client)
    end

    @testset "overlapping filters; an on_msg that publishes" begin
        client, _ = connected_client(broker)
        calls = Channel{Any}(10)
        subscribe(client, "$PREFIX/a/#", (t, p) -> put!(calls, ("#", String(p))); qos = QOS_1)
        subscribe(client, "$PREFIX/a/+", (t, p) -> put!(calls, ("+", String(p))); qos = QOS_1)
        publish(client, "$PREFIX/a/x", "m"; qos = QOS_1)
        got = Set([take_within(calls, "a call"), take_within(calls, "a call")])
        @test got == Set([("#", "m"), ("+", "m")])
        sleep(0.3)
        @test !isready(calls)
        pongs = collect_messages(client, "$PREFIX/pong")
        # Blocks the event task until the PUBACK, which that same task drains meanwhile.
        echo(t, p) = publish(client, "$PREFIX/pong", p; qos = QOS_1)
        subscribe(client, "$PREFIX/ping", echo; qos = QOS_1)
        publish(client, "$PREFIX/ping", "echo me"; qos = QOS_1)
        @test take_within(pongs, "the echo") == "echo me"
        disconnect(client)
    end

    @testset "QoS 1 and 2 with binary payloads" begin
        client, _ = connected_client(broker)
        payloads = [UInt8[0x00], UInt8[], UInt8[0x61, 0x00, 0x62], collect(0x00:0xff)]
        for qos in (QOS_1, QOS_2)
            topic = "$PREFIX/bin/$(Int(qos))"
            received = Channel{Any}(10)
            subscribe(client, topic, (t, p) -> put!(received, p); qos = qos)
            futures = [publish_async(client, topic, p; qos = qos) for p in payloads]
            @test all(f -> fetch(f) === nothing, futures)
            @test [take_within(received, "message $i") for i in eachindex(payloads)] == payloads
        end
        @test fetch(publish_async(client, "$PREFIX/bin/0", "qos 0")) == 0
        disconnect(client)
    end

    @testset "errors" begin
        client, _ = connected_client(broker)
        @test code_of(() -> publish(client, "$PREFIX/+/x", "x")) == -4
        @test code_of(() -> subscribe(client, "$PREFIX/q", (t, p) -> nothing; qos = 3)) ==
              MQTTClient.MQTTC_ERR_INVALID_QOS
        properties = Properties(content_type = "text/plain")
        @test code_of(() -> publish(client, "$PREFIX/p", "x"; properties = properties)) == -12
        disconnect(client)
        lonely, lonely_connection = MakeConnection("127.0.0.1", free_port())
        @test code_of(() -> connect(lonely, lonely_connection)) == -40
        @test MQTTClient.iserror(lonely) && MQTTClient.isclosed(lonely)
    end

    @testset "MQTT 5 properties, No Local, a disconnect reason" begin
        topic = "$PREFIX/v5"
        will_topic = "$PREFIX/v5-will"
        watcher, _ = connected_client(broker)
        wills = collect_messages(watcher, will_topic)
        client, connection = MakeConnection(
            "127.0.0.1", broker.port; protocol_version = 5,
            will = Message(QOS_1, will_topic, "v5 will"),
            connect_properties = Properties(receive_maximum = 50, user_property = ["hi" => "there"]))
        connack = connect_async(client, connection)
        @test fetch(connack) == 0x00
        @test MQTTClient.properties(connack) isa Properties
        seen = Channel{Any}(10)
        subscribe(client, topic, (t, p, props) -> put!(seen, (p, props)); qos = QOS_1,
                  message_properties = true)
        sent = Properties(content_type = "application/octet-stream",
                          response_topic = "$PREFIX/reply", correlation_data = UInt8[0, 1],
                          user_property = ["a" => "1", "a" => "2"])
        publish(client, topic, UInt8[1, 2]; qos = QOS_1, properties = sent)
        payload, got = take_within(seen, "the MQTT 5 message")
        @test payload == UInt8[1, 2]
        for name in (:content_type, :response_topic, :correlation_data)
            @test got[name] == sent[name]
        end
        @test MQTTClient.user_properties(got) == ["a" => "1", "a" => "2"]
        @test haskey(got, :subscription_identifier)
        own = Channel{Any}(10)
        subscribe(client, "$PREFIX/v5-local", (t, p) -> put!(own, p); qos = QOS_1, no_local = true)
        publish(client, "$PREFIX/v5-local", "mine"; qos = QOS_1)
        sleep(0.3)
        @test !isready(own)
        disconnect(client; reason_code = 0x04)  # the broker publishes the will
        @test take_within(wills, "the will") == "v5 will"
        disconnect(watcher)
    end

    @testset "ack_after_callback: the broker sends again what on_msg had not finished" begin
        topic = "$PREFIX/held"
        deliveries = Channel{Any}(10)
        client, _ = connected_client(broker; client_id = "$(randstring(8))-held",
                                     clean_session = false, ack_after_callback = true)
        first_call = Threads.Atomic{Bool}(true)
        on_msg = function (t, p)
            put!(deliveries, String(p))
            if Threads.atomic_xchg!(first_call, false)
                # Drops the connection while this message is handled and waits for the next one
                # (the event task drains meanwhile): the PUBACK was never sent, so the broker
                # sends the message again.
                put!(deliveries, fetch(reconnect_async(client)))
            end
        end
        subscribe(client, topic, on_msg; qos = QOS_1)
        publisher, _ = connected_client(broker)
        publish(publisher, topic, "handled twice"; qos = QOS_1)
        got = [take_within(deliveries, "two deliveries and the reconnect") for _ in 1:3]
        @test count(==("handled twice"), got) == 2
        @test 0x01 in got  # the reconnect found the session kept
        disconnect(publisher)
        unsubscribe(client, topic)
        disconnect(client)
    end

    @testset "back-pressure: a slow on_msg holds the queue at callback_queue" begin
        bound, count = 8, 200
        topic = "$PREFIX/flood"
        gate = Channel{Nothing}(1)
        received = Channel{Int}(count)
        subscriber, _ = connected_client(broker; callback_queue = bound)
        subscribe(subscriber, topic, (t, p) -> (fetch(gate); put!(received, parse(Int, String(p))));
                  qos = QOS_1)
        publisher, _ = connected_client(broker)
        foreach(fetch, [publish_async(publisher, topic, string(i); qos = QOS_1) for i in 0:(count - 1)])
        wait_until(() -> MQTTClient.pending_events(subscriber) == bound, "the queue to fill")
        put!(gate, nothing)
        @test [take_within(received, "message $i") for i in 1:count] == collect(0:(count - 1))
        disconnect(publisher)
        disconnect(subscriber)
    end

    @testset "message store: what one client could not send, the next restores and sends" begin
        topic = "$PREFIX/stored"
        store = mktempdir()
        client_id = "$(randstring(8))-store"
        texts = ["kept 1", "kept 2", "kept 3"]
        # Accepted while the broker never answers, then cancelled: the store keeps them.
        port, silent = listenany(ip"127.0.0.1", 20000)
        state = let
            client, connection = MakeConnection("127.0.0.1", Int(port); client_id = client_id,
                                                store_dir = store, store_sync = :every)
            connect_async(client, connection)
            accepted = [publish_async(client, topic, text; qos = QOS_1) for text in texts]
            disconnect(client)
            @test all(f -> fetch(f) isa MQTTException, accepted)
            client.state
        end
        wait_until("the first client to be freed") do
            GC.gc()
            state.task_state[] == MQTTClient.TASK_FREED
        end
        close(silent)
        watcher, _ = connected_client(broker)
        received = collect_messages(watcher, topic)
        restored = Channel{Any}(10)
        client, _ = connected_client(broker; client_id = client_id, store_dir = store,
                                     on_restored = (t, p, future) -> put!(restored, (t, String(p), future)))
        got = [take_within(restored, "restored message $i") for i in 1:length(texts)]
        @test [(t, p) for (t, p, _) in got] == [(topic, text) for text in texts]
        @test all(fetch(future) === nothing for (_, _, future) in got)
        @test sort([take_within(received, "delivery $i") for i in 1:length(texts)]) == texts
        disconnect(client)
        disconnect(watcher)
    end

    @testset "set_will, clear_will and set_credentials on a live client" begin
        will_topic = "$PREFIX/later-will"
        watcher, _ = connected_client(broker)
        wills = collect_messages(watcher, will_topic)
        client, _ = connected_client(broker; protocol_version = 5,
                                     will = Message(QOS_1, will_topic, "from the connection"))
        MQTTClient.set_will(client, Message(QOS_1, will_topic, "set later");
                            properties = Properties(content_type = "text/plain"))
        MQTTClient.set_credentials(client, User("someone", "secret"))
        # The connection the reconnect drops dies with the will it was made with.
        @test reconnect(client) == 0x00
        @test take_within(wills, "the first connection's will") == "from the connection"
        MQTTClient.clear_will(client)
        @test reconnect(client) == 0x00
        @test take_within(wills, "the second connection's will") == "set later"
        @test_throws MQTTException MQTTClient.set_will(client, Message(QOS_1, "a/+", "x"))
        disconnect(client)
        disconnect(watcher)
    end

    @testset "finalizer: a collected client is freed, the broker publishes its will" begin
        will_topic = "$PREFIX/gone"
        watcher, _ = connected_client(broker)
        wills = collect_messages(watcher, will_topic)
        state = let
            client, _ = connected_client(broker; will = Message(QOS_1, will_topic, "collected"))
            client.state
        end
        wait_until("the collected client to be freed") do
            GC.gc()
            state.task_state[] == MQTTClient.TASK_FREED
        end
        @test take_within(wills, "the will") == "collected"
        disconnect(watcher)
    end
end

program = find_mosquitto()
if program === nothing
    @info "mosquitto is not installed: the round trips against it are skipped"
    @test_skip "round trips against mosquitto"
else
    broker = start_mosquitto(program)
    try
        round_trips(broker)
    finally
        kill(broker.process)
    end
end
