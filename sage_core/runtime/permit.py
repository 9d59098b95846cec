"""Cancellation that reaches into a batch: a task's runners go on record by record while its permit holds.

Runners feed a batch to the user's function through ``itertools.compress(batch, permit.cover(n))``.
The permit's tokens are a list of ``True``; revoking it empties the list, and the C-level loop
stops at the next record: a cancelled job ends after the record in hand, not after the batch
(256 slow records can be many seconds), at no per-record cost while it runs.
"""

from __future__ import annotations

INITIAL_TOKENS = 1024


class Permit:
    """Shared by the runners of one task; :meth:`revoke` (from any thread) stops them at the next record."""

    __slots__ = ("revoked", "tokens")

    def __init__(self) -> None:
        self.tokens: list[bool] = [True] * INITIAL_TOKENS
        self.revoked = False

    def cover(self, n: int) -> list[bool]:
        """Tokens for a batch of ``n`` records (empty once revoked)."""
        tokens = self.tokens
        if len(tokens) < n and not self.revoked:
            tokens.extend([True] * (n - len(tokens)))
            if self.revoked:  # revoked while growing: stay empty
                tokens.clear()
        return tokens

    def revoke(self) -> None:
        """Stop every runner of the task at its next record."""
        self.revoked = True
        self.tokens.clear()
