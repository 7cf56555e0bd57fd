"""The wire: Engine.IO and Socket.IO packets, RFC 6455 frames and Engine.IO's HTTP errors.

Pure codecs, no I/O: every layer above imports them, none of them imports anything above.
"""
