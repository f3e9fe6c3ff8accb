"""The supervisor's rooms beyond any one session: the ledger of every room it created
(``ledger``: deleted without losing one, across sessions and restarts) and the pool of
rooms made ahead of demand (``pool``). A session's own room is ``supervisor.sessions.room``."""
