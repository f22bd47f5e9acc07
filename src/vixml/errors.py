"""Exceptions shared by every layer. Only the CLI turns them into exit codes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "VixmlError",
    "Problem",
    "DataError",
    "MissingExtraError",
    "ConfigError",
    "TrainingInterrupted",
    "TrainingDiverged",
    "StorageError",
    "ResourceError",
]


class VixmlError(Exception):
    """Base class of every error vixml raises on purpose (bad input, bad config, missing extra)."""


@dataclass(frozen=True)
class Problem:
    """One defect found in an input file.

    Attributes:
        file: the file's path (as given).
        message: what is wrong and what was expected.
        line: 1-based line number, when the defect sits on a line.
        field: the column / key / array the defect concerns, when it has one.
    """

    file: str
    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.field is not None:
            where += f" [{self.field}]"
        return f"{where}: {self.message}"


class DataError(VixmlError, ValueError):
    """Bad input data. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(file="<input>", message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the input:\n{shown}{more}")


class ConfigError(VixmlError, ValueError):
    """An invalid configuration value or key; the message says which and what is allowed."""


class TrainingInterrupted(VixmlError):
    """Training stopped on request (Ctrl-C, SIGTERM) after writing a checkpoint; ``--resume`` continues it."""

    exit_code = 130

    def __init__(self, epoch: int, step: int, run_dir: object):
        self.epoch, self.step, self.run_dir = epoch, step, run_dir
        super().__init__(
            f"interrupted at epoch {epoch} step {step}; run the same command with --resume to continue ({run_dir})"
        )


class TrainingDiverged(VixmlError):
    """The loss or the weights became non-finite; nothing after the last good checkpoint was saved."""

    def __init__(self, step: int, loss: float, last_checkpoint: object | None):
        where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written"
        super().__init__(
            f"training diverged at step {step} (loss {loss}); {where}. Lower train.lr, use train.precision=fp32, "
            "or enable train.grad_clip, then start again (or --resume from that checkpoint)"
        )


class MissingExtraError(VixmlError, ImportError):
    """An optional dependency is missing; the message names the pip extra that provides it."""


class StorageError(VixmlError, OSError):
    """A write that the storage refused (disk full, quota exceeded); the message names the path and the space."""


class ResourceError(VixmlError, MemoryError):
    """Work refused before it starts: it would need more memory than this machine (or its cgroup) has.

    The message names the input, the memory needed and available, and what to do; setting
    ``VIXML_SKIP_MEMORY_CHECK=1`` runs it anyway.
    """
