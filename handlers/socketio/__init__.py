"""Socket.IO: the hub, namespaces, sockets, broadcasts, the in-process adapter, connection state
recovery, and the Admin UI's server side (a namespace of its own).
"""
