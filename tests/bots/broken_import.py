"""A bot module that does not import: its import fails at module level, as a typo would."""

from pipecat.transports.daily.transport import NoSuchTransport  # noqa: F401


async def bot(runner_args: object) -> None:
    """Never reached."""
