"""Engine.IO: sessions, their outbound queues, the heartbeat and the write loop, the counters.

Imports only the wire; the transports below it are plugged in by the layers above.
"""
