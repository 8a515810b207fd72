using MQTTClient
broker = get(ENV, "MQTT_BROKER", "localhost")
port = parse(Int, get(ENV, "MQTT_PORT", "1883"))

#Define the callback for receiving messages.
function on_msg(topic, payload)
    @info("Received message topic: [", topic, "] payload: [", String(payload), "]")
end

#Instantiate a client and connection.
client, connection = MakeConnection(broker, port)
connect(client, connection)
#Set retain to true so we can receive a message from the broker once we subscribe
#to this topic.
publish(client, "jlExample", "Hello World!", retain=true)
#Subscribe to the topic we sent a retained message to.
subscribe(client, "jlExample", on_msg, qos=QOS_1)
#Unsubscribe from the topic
unsubscribe(client, "jlExample")
#Disconnect from the broker. Not strictly needed as the broker will also
#disconnect us if the socket is closed. But this is considered good form
#and needed if you want to resume this session later.
disconnect(client)
