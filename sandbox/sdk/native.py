"""What daily-python's native classes share: some can only be made by the SDK itself."""

from __future__ import annotations


def not_constructible(self: object, *args: object, **kwargs: object) -> None:
    """``__init__`` of a class whose instances only the SDK makes (``AudioData``, the virtual
    devices...): raises TypeError, with daily's text, as daily does when Python calls one."""
    raise TypeError(f"cannot create '{type(self).__name__}' instances")
