"""Durable-stream message ids: Redis stream entry ids ``<ms>-<seq>``, in both backends (API.md section 5).

``MessageId`` orders like Redis orders entry ids; ``parse`` accepts only the full ``<ms>-<seq>`` form with
64-bit parts, and ``next_after`` gives the id an append at a given time receives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FORM = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX = 2**64 - 1


@dataclass(frozen=True, order=True)
class MessageId:
    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    @classmethod
    def parse(cls, text: str) -> MessageId:
        """The id written as ``text``; ``ValueError`` explains what is wrong with a malformed one."""
        match = _FORM.fullmatch(text)
        if not match:
            raise ValueError("must look like 1700000000000-0 (milliseconds, a hyphen, a sequence number)")
        ms, seq = int(match.group(1)), int(match.group(2))
        if ms > _MAX or seq > _MAX:
            raise ValueError("both parts must fit in 64 bits")
        return cls(ms, seq)

    def just_before(self) -> MessageId:
        """The greatest id below this one (reading after it starts at this one)."""
        return MessageId(self.ms, self.seq - 1) if self.seq else MessageId(self.ms - 1, _MAX)

    def next_after(self, now_ms: int) -> MessageId:
        """The id of an entry appended at ``now_ms`` after this one (like Redis's ``XADD *``)."""
        if now_ms > self.ms:
            return MessageId(now_ms, 0)
        return MessageId(self.ms, self.seq + 1)


ZERO = MessageId(0, 0)
