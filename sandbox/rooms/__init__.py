"""The room server: who is in which room, and what they hear and are told.

``RoomServer`` (``sandbox.rooms.server``) puts the parts together: the socket participants
connect to, membership, admission (Daily's join rules), audio routing, app messages,
recording, transcription, telephony (phones, dial-in, dial-out, DTMF) and expiry.
"""
