"""Hardware drivers: one module or sub-package per hardware family.

A driver turns pin edges, serial bytes or frames into events handed to an ``EventSink``;
it never imports MQTT.
"""
