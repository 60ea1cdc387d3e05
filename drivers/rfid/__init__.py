"""Patrol RFID readers: pure frame parsers per reader family and the thin transports that feed them.

``rdm6300``, ``id12``, ``pn532``, ``wiegand``, ``hid`` parse; ``reader`` owns the threads and
reconnects; ``tags`` defines the canonical ids. The patrol logic lives in ``agent.patrol``.
"""
