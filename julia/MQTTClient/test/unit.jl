# Tests that need no broker. Those marked "upstream" are MQTTClient.jl's, changed only where this
# package differs on purpose (see the README's parity table).

@testset "Client (upstream)" begin
    c = Client()
    @test c.ping_timeout == UInt64(60)
    c2 = Client(UInt64(30))
    @test c2.ping_timeout == UInt64(30)
    @test_throws MQTTException Client(-1)
end

@testset "Message (upstream)" begin
    msg = Message(true, QOS_0, true, "test/mqtt_jl", "testing the MQTTClient.jl package")
    @test msg isa Message

    msg = Message(false, 0x01, false, "test", "payload")
    @test msg.dup == false
    @test msg.qos == 0x01
    @test msg.retain == false
    @test msg.topic == "test"
    @test msg.payload == Vector{UInt8}("payload")

    msg = Message(QOS_2, "test", "payload")
    @test msg.dup == false
    @test msg.qos == 0x02
    @test msg.retain == false
    @test msg.topic == "test"
    @test msg.payload == Vector{UInt8}("payload")

    @test Message(QOS_1, "t", "a", UInt8[0x00, 0x01], "b").payload == UInt8[0x61, 0x00, 0x01, 0x62]
end

@testset "client state (upstream)" begin
    c = Client()
    @test isready(c)
    @test !MQTTClient.isconnected(c)
    @test !MQTTClient.isclosed(c)
    @test !MQTTClient.isdone(c)
    @test !MQTTClient.iserror(c)
end

@testset "MQTTConnection (upstream)" begin
    conn = MQTTConnection(IOConnection(localhost, 1883))
    @test conn.protocol isa MQTTClient.TCP
    @test conn.protocol.ip == localhost
    @test conn.protocol.port == 1883
    @test conn.keep_alive == 32
    @test length(conn.client_id) == 8
    @test conn.user == User("", "")
    @test conn.will == Message(false, 0x00, false, "", UInt8[])
    @test conn.clean_session == true

    # MQTTClient.jl resolves a host name here; the library resolves it at each connect.
    conn = MQTTConnection(IOConnection("localhost", 1883))
    @test conn.protocol isa MQTTClient.TCP
    @test conn.protocol.ip == "localhost"

    path = "/tmp/mqtt.sock"
    conn = MQTTConnection(IOConnection(path))
    @test conn.protocol isa MQTTClient.UDS
    @test conn.protocol.path == path
    @test conn.keep_alive == 32

    @test Connection === MQTTConnection
    full = Connection(MQTTClient.UDS("/var/run/mqtt.sock"), 45, "another_client",
                      User("user", "pass"), Message(true, 0x00, true, "will/topic", UInt8[1, 2, 3]),
                      false)
    @test full.keep_alive == 45 && full.client_id == "another_client" && !full.clean_session
    tcp = MQTTClient.TCP()
    @test MQTTConnection(tcp; client_id = "a") == MQTTConnection(MQTTClient.TCP(); client_id = "a")
    @test MQTTConnection(tcp; client_id = "a") != MQTTConnection(tcp; client_id = "b")
end

@testset "MakeConnection and Configuration (upstream)" begin
    c, conn = MakeConnection("localhost", 1883)
    @test c isa Client
    @test conn isa MQTTConnection
    c, conn = MakeConnection(localhost, 1883)
    @test c isa Client
    @test conn.protocol.ip == localhost
    c, conn = MakeConnection("/tmp/mqtt.sock")
    @test c isa Client
    @test conn.protocol isa MQTTClient.UDS
    c, conn = MakeConnection("localhost", 1883; ping_timeout = 5, keep_alive = 7, client_id = "x")
    @test c.ping_timeout == 5 && conn.keep_alive == 7 && conn.client_id == "x"

    client, connection = Configuration(MQTTClient.TCP(localhost, 1883), UInt64(30))
    @test client.ping_timeout == 30 && connection.protocol == MQTTClient.TCP(localhost, 1883)
    @test length(Configuration(client, connection)) == 2
end

@testset "show (upstream)" begin
    client, conn = MakeConnection("localhost", 1883; client_id = "foo")
    @test sprint(show, client) == "MQTTClient[state: ready, subscriptions: String[]]"
    str = sprint(show, conn)
    @test contains(str, "Connection(Protocol: MQTTClient.TCP")
    @test contains(str, "Client ID: foo")
end

@testset "operations before connect wait for it (upstream)" begin
    c = Client()
    fut = subscribe_async(c, "test-topic/#", (t, p) -> nothing; qos = QOS_2)
    @test fut isa MQTTFuture
    @test !isready(fut)
    fut = publish_async(c, "test-topic/mqtt_jl", "test message")
    @test fut isa MQTTFuture
    @test !isready(fut)
    fut = unsubscribe_async(c, "topic1", "topic2")
    @test !isready(fut)
    @test length(c.deferred) == 3
    @test_throws MQTTException disconnect(c)
end

@testset "topic and filter checks (upstream)" begin
    @test_throws MQTTException MQTTClient.topic_wildcard_len_check("+")
    @test MQTTClient.topic_wildcard_len_check("foo") === nothing
    @test_throws MQTTException MQTTClient.topic_wildcard_len_check("#")
    @test_throws MQTTException MQTTClient.topic_wildcard_len_check("")

    @test_throws MQTTException MQTTClient.filter_wildcard_len_check("")
    @test_throws MQTTException MQTTClient.filter_wildcard_len_check("#/")
    @test_throws MQTTException MQTTClient.filter_wildcard_len_check("f+oo/bar/more")
    @test_throws MQTTException MQTTClient.filter_wildcard_len_check("f#oo/bar/more")
    @test MQTTClient.filter_wildcard_len_check("foo/bar/more") === nothing
    @test MQTTClient.filter_wildcard_len_check("foo/bar/more/#") === nothing
    @test MQTTClient.filter_wildcard_len_check("foo/+/bar/more") === nothing

    # Refused when called, also before connect.
    c = Client()
    @test_throws MQTTException publish_async(c, "a/+", "x")
    @test_throws MQTTException subscribe_async(c, "a/#/b", (t, p) -> nothing)
    @test isempty(c.deferred)
end

# The code an MQTTException carries.
function code_of(f)
    try
        f()
    catch err
        err isa MQTTException && return err.code
        rethrow()
    end
    return nothing
end

@testset "MQTT_ERR_INVAL and the library's options" begin
    tcp = MQTTClient.TCP()
    @test MQTT_ERR_INVAL == MQTTClient.MQTTC_ERR_INVALID_ARGUMENT
    @test code_of(() -> MQTTClient.TCP("localhost", 0)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTClient.TCP("localhost", 65536)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTConnection(tcp; keep_alive = 70000)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTConnection(tcp; keep_alives = 3)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTConnection(tcp; tls = 1)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTConnection(tcp; max_inflight = -1)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTConnection(tcp; topic_alias_maximum = 70000)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTConnection(tcp; offline_overflow = :drop_newest)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTConnection(tcp; tls_ca_file = "a\0b")) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTConnection(tcp; store_sync = :sometimes)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTConnection(tcp; on_restored = "not a function")) == MQTT_ERR_INVAL
    @test code_of(() -> publish_async(Client(), "t", "x"; qos = 3)) == MQTTClient.MQTTC_ERR_INVALID_QOS
    @test code_of(() -> Servers()) == MQTT_ERR_INVAL

    conn = MQTTConnection(tcp; protocol_version = 5, tls = true, tls_ca_file = "ca.pem",
                          offline_overflow = :drop_oldest, outgoing_max_messages = 10,
                          ack_after_callback = true)
    @test MQTTClient.option(conn, :protocol_version, nothing) === UInt8(5)
    @test MQTTClient.option(conn, :offline_overflow, nothing) == 1
    @test MQTTClient.option(conn, :outgoing_max_messages, nothing) === UInt32(10)
    @test MQTTClient.option(conn, :tls_ca_file, nothing) == "ca.pem"
    @test MQTTClient.option(conn, :auto_reconnect, :unset) === :unset
    stored = MQTTConnection(tcp; store_dir = "/var/lib/app", store_sync = :every,
                            on_restored = println)
    @test MQTTClient.option(stored, :store_sync, nothing) == 1
    @test MQTTClient.option(stored, :store_dir, nothing) == "/var/lib/app"
    @test MQTTClient.option(stored, :on_restored, nothing) === println
    # Keyword order does not matter.
    @test MQTTConnection(tcp; client_id = "a", tls = true, protocol_version = 5) ==
          MQTTConnection(tcp; client_id = "a", protocol_version = 5, tls = true)
end

@testset "topic_matches, reason_string, live changes before connect" begin
    @test MQTTClient.topic_matches("a/+/c", "a/b/c")
    @test MQTTClient.topic_matches("a/#", "a")
    @test !MQTTClient.topic_matches("a/+", "a/b/c")
    @test !MQTTClient.topic_matches("#", "\$SYS/x")
    @test code_of(() -> MQTTClient.topic_matches("a/#/b", "a")) == -5
    @test MQTTClient.reason_string(0x87, :suback) == "Not authorized"
    @test MQTTClient.reason_string(0x00, :disconnect) == "Normal disconnection"
    @test MQTTClient.reason_string(0x00, :suback) == "Granted QoS 0"
    @test MQTTClient.reason_string(0x8C, :puback) == "unknown reason code"
    @test code_of(() -> MQTTClient.reason_string(0x00, :publish)) == MQTT_ERR_INVAL
    @test code_of(() -> MQTTClient.reason_string(256, :connack)) == MQTT_ERR_INVAL
    # No library client before the first connect: the connection says what it will be made with.
    c = Client()
    @test code_of(() -> MQTTClient.set_credentials(c, User("u", "p"))) ==
          MQTTClient.MQTTC_ERR_NOT_CONNECTED
    @test code_of(() -> MQTTClient.clear_will(c)) == MQTTClient.MQTTC_ERR_NOT_CONNECTED
end

@testset "Properties" begin
    p = Properties(:content_type => "text/plain"; correlation_data = UInt8[0, 1],
                   user_property = ["a" => "1", "a" => "2"], message_expiry_interval = 60)
    @test p[:content_type] == "text/plain"
    @test p[:correlation_data] == UInt8[0, 1]
    @test p[:message_expiry_interval] == 60
    @test MQTTClient.user_properties(p) == ["a" => "1", "a" => "2"]
    @test haskey(p, :user_property) && !haskey(p, :response_topic)
    @test get(p, :response_topic, "none") == "none"
    @test_throws KeyError p[:response_topic]
    @test length(p) == 5
    @test collect(p)[1] == (:content_type => "text/plain")
    @test Properties(correlation_data = "id")[:correlation_data] == Vector{UInt8}("id")
    @test isempty(Properties())
    @test code_of(() -> Properties(colour = "red")) == MQTT_ERR_INVAL
    @test code_of(() -> Properties(content_type = 3)) == MQTT_ERR_INVAL
    @test code_of(() -> Properties(message_expiry_interval = -1)) == MQTT_ERR_INVAL
    @test code_of(() -> Properties(user_property = "a")) == MQTT_ERR_INVAL
end

@testset "library_path" begin
    found = MQTTClient.Libdl.dlpath(MQTTClient.LIBRARY[])  # the file `using` loaded
    @test MQTTClient.library_path(Dict("MQTTCLIENT_LIB" => found)) == found
    @test_throws ErrorException MQTTClient.library_path(Dict("MQTTCLIENT_LIB" => found * ".missing"))
    empty_repo = mktempdir()
    try
        MQTTClient.library_path(Dict{String,String}(), empty_repo)
        @info "an installed libmqttclient was found; the not-found message is not checked"
    catch err
        message = sprint(showerror, err)
        for place in ("MQTTCLIENT_LIB (not set)", "/usr/local/lib/libmqttclient",
                      "system library path", joinpath(empty_repo, "target", "release"),
                      joinpath(empty_repo, "target", "debug"))
            @test contains(message, place)
        end
    end
end
