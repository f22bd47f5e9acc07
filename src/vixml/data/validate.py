"""``validate_dataset``: check every file of a dataset folder and list every problem, never stopping early.

The rules are :mod:`vixml.data.rules`, the same the loader applies (plus its content checks), so a
folder that validates is a folder that loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vixml.data.encoding import Encoding
from vixml.data.rules import check_folder
from vixml.errors import Problem

__all__ = ["validate_dataset", "validation_report", "ValidationReport"]


@dataclass
class ValidationReport:
    """The outcome of validating a folder.

    Attributes:
        problems: every problem found; empty when the folder is valid.
        encodings: text file name -> how it is read and why (``"utf-8"``, ``"latin-1 (known public XC file)"``).
    """

    problems: list[Problem] = field(default_factory=list)
    encodings: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def validation_report(directory: str | os.PathLike, *, encoding: Encoding = "auto") -> ValidationReport:
    """Check every file of a dataset folder (the loader's rules and the content checks of
    :mod:`vixml.data.rules`) and say how each text file is decoded."""
    found = check_folder(Path(directory), encoding=encoding, deep=True)
    encodings = {store.path.name: store.encoding_reason for store in found.texts.values() if store is not None}
    return ValidationReport(found.problems, encodings)


def validate_dataset(directory: str | os.PathLike, *, encoding: Encoding = "auto") -> list[Problem]:
    """Check every file of a dataset folder.

    Args:
        directory: the folder.
        encoding: of its text files: ``auto`` (UTF-8; latin-1 only for the known public files, see
            :mod:`vixml.data.encoding`), ``utf-8`` or ``latin-1``.

    Returns:
        Every problem found (see :mod:`vixml.data.rules` for the rules); empty when the folder is valid.
    """
    return validation_report(directory, encoding=encoding).problems
