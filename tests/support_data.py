"""Moved to :mod:`vixml.testing.datasets`: this alias keeps the tests' imports."""

import sys

from vixml.testing import datasets

sys.modules[__name__] = datasets
