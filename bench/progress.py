"""``callfleet bench``'s progress on stderr: one status line that rewrites itself on a
terminal, plain lines otherwise."""

from __future__ import annotations

import sys


class Progress:
    """One status line that rewrites itself on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
