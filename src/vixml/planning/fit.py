"""A command's memory plan: what each of its phases holds at the peak, added up and refused once.

Why one type: train, predict and the data commands each hold several things at once (the data loaded, a
model, a bank of embeddings, a search); each states its bytes and why as a :class:`Need`, and the command
refuses once, with one :class:`~vixml.errors.ResourceError` that lists them, before anything is loaded or
written. What the machine has is :mod:`vixml.memory_fit`'s (a base module: the data loader, below this
package, refuses through it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from vixml import memory_fit

__all__ = ["Need", "Plan"]


class Need(NamedTuple):
    """One item of a plan: ``bytes`` held at the peak by ``name``; ``why`` is what the refusal says of it
    (empty: counted but not worth naming, such as what the process holds already)."""

    name: str
    bytes: int
    why: str = ""


@dataclass(frozen=True)
class Plan:
    """The needs of one command (``command`` starts the refusal; ``hint`` says what the user can do)."""

    command: str
    needs: tuple[Need, ...]
    hint: str

    @property
    def total(self) -> int:
        """Bytes of the whole process at its peak."""
        return sum(n.bytes for n in self.needs)

    def describe(self) -> str:
        """The items, as the refusal lists them."""
        return ", ".join(n.why for n in self.needs if n.why)

    def require(self) -> None:
        """Refuse (:class:`~vixml.errors.ResourceError`) when the total would not fit this machine."""
        memory_fit.require(self.total, self.describe(), self.hint, command=self.command)
