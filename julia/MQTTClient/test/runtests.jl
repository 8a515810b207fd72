# Pkg.test("MQTTClient"): the unit tests of MQTTClient.jl that apply to this package (its
# packet codec, topic trie and mock sockets are the C library's business here), tests of what
# this package adds, and round trips against a local mosquitto when one is installed (skipped
# otherwise). The library is found as `using MQTTClient` finds it (see MQTTClient.library_path).
using Test
using MQTTClient
using Sockets: localhost, @ip_str

# TCP and UDS stay qualified: `show` prints them as MQTTClient.TCP only when Main lacks the names.
import MQTTClient: Message, QOS

@testset verbose = true "MQTTClient" begin
    @testset verbose = true "unit" begin
        include("unit.jl")
    end
    @testset verbose = true "against mosquitto" begin
        include("broker.jl")
    end
end
