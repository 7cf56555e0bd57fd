"""Operations: abuse limits, session logs, metrics, health and readiness, graceful drain.

What the hub is run with; it sees the engine's sessions and counters, never the Socket.IO layer above
(other than by type).
"""
