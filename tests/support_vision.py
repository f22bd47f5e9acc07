"""Moved to :mod:`vixml.testing.vision`: this alias keeps the tests' imports."""

import sys

from vixml.testing import vision

sys.modules[__name__] = vision
