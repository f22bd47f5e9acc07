"""Collecting every problem of a file, with a cap so a wholly wrong file cannot exhaust memory."""

from __future__ import annotations

import os

from vixml.errors import DataError, Problem

__all__ = ["ProblemCollector", "MAX_LISTED"]

MAX_LISTED = 1000


class ProblemCollector:
    """Gathers the problems of one file; lists the first ``limit`` and counts the rest.

    Readers never stop at the first defect: they note each one here and raise once at the end, so a
    user fixes a file in one round. Past ``limit`` problems the collector only counts, and
    :attr:`problems` ends with one summary entry saying how many more there were.
    """

    def __init__(self, file: str | os.PathLike, limit: int = MAX_LISTED):
        self.file = str(file)
        self.limit = limit
        self._listed: list[Problem] = []
        self._unlisted = 0

    def add(self, message: str, line: int | None = None, field: str | None = None) -> None:
        """Note one problem (``line`` is 1-based)."""
        if len(self._listed) < self.limit:
            self._listed.append(Problem(self.file, message, line, field))
        else:
            self._unlisted += 1

    def extend(self, problems: list[Problem]) -> None:
        """Take over problems found elsewhere (already bound to their files)."""
        for problem in problems:
            if len(self._listed) < self.limit:
                self._listed.append(problem)
            else:
                self._unlisted += 1

    def __bool__(self) -> bool:
        return bool(self._listed)

    def __len__(self) -> int:
        return len(self._listed) + self._unlisted

    @property
    def problems(self) -> list[Problem]:
        """The listed problems, plus a summary entry when some were only counted."""
        if not self._unlisted:
            return list(self._listed)
        return [*self._listed, Problem(self.file, f"... and {self._unlisted} more problem(s) not listed")]

    def raise_if_any(self) -> None:
        """Raise a :class:`DataError` carrying every problem, if there is one."""
        if self._listed:
            raise DataError(self.problems)
