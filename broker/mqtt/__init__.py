"""The MQTT front: the link, the topic tree, and MQTT messages turned into core calls."""
