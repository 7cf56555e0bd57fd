"""Operations: abuse limits, connections per address, session logs, metrics, health and readiness, drain.

What the hub is run with, below the transports that apply its limits at the door; it sees the engine's
sessions and counters, and names what it needs of the layers above as Protocols.
"""
