"""Moved to :mod:`vixml.testing.image_server`: this alias keeps the tests' imports."""

import sys

from vixml.testing import image_server

sys.modules[__name__] = image_server
