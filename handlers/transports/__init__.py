"""The transports: one URL routed to long-polling or WebSocket, the entry checks both share,
and the server that answers polls and WebSocket handshakes below Tornado's RequestHandler.
"""
