"""Moved to :mod:`vixml.testing.reference_metrics`: this alias keeps the tests' imports."""

import sys

from vixml.testing import reference_metrics

sys.modules[__name__] = reference_metrics
