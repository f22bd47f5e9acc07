"""Moved to :mod:`vixml.testing.search`: this alias keeps the tests' imports."""

import sys

from vixml.testing import search

sys.modules[__name__] = search
