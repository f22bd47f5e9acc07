"""Moved to :mod:`vixml.testing.models`: this alias keeps the tests' imports."""

import sys

from vixml.testing import models

sys.modules[__name__] = models
