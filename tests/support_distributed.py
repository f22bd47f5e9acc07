"""Moved to :mod:`vixml.testing.distributed`: this alias keeps the tests' imports."""

import sys

from vixml.testing import distributed

sys.modules[__name__] = distributed
