"""Moved to :mod:`vixml.testing.server`: this alias keeps the tests' imports."""

import sys

from vixml.testing import server

sys.modules[__name__] = server
