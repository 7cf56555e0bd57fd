"""The cluster: a Redis adapter for group emits and recovery across processes, the relay of
long-polling requests, the handoff of an upgrade, and what one process asks of the others.
"""
