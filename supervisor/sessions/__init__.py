"""Bot sessions: one actor per session, and the parts it is made of.

Each module does one job:

- ``actor``: the mailbox plumbing (tell, ask, a stage the actor can cancel; whatever is
  still queued when the actor dies is answered with ``SessionGone``);
- ``session``: the session itself, its life and its steps (prepare the room, join,
  fail over, leave);
- ``requests``: what a start asks for, one type per origin, the secrets kept beside it;
- ``room``: the session's room and meeting tokens;
- ``participants`` (who is in the call), ``call_events`` (the call as the bot hears it),
  ``timers``, ``bot_link`` (what the bot acts through), ``dialin`` (a phone call put
  through, once);
- ``record`` (the record written and published), ``view`` (what the API shows of a
  record), ``state`` (states and end reasons);
- ``services``: what every session shares; ``registry``: the live sessions;
  ``recovery``: the records a crashed daemon left unfinished.

The rooms a session does not own alone live in ``supervisor.rooms``: the ledger of every
room the supervisor created (it outlives sessions and restarts) and the pool of rooms made
ahead of demand (filled before any session asks, closed by the daemon). A session takes a
room from that pool and deletes its own through the ledger. The registry stays here: it
creates the session actors and routes to them, and holds no state of its own.

This module imports nothing: ``supervisor.store`` reads ``state``, and the session reads
the store, so importing the package must not import the session.
"""
