"""PostgreSQL frontend/backend protocol 3.0, as a sans-IO codec.

Rooms: ``messages`` (the vocabulary), ``framing`` (bytes -> whole frames, with limits), ``decode`` and
``encode`` (frames <-> messages), ``auth`` (the client side of upstream authentication).
"""
