"""Moved to :mod:`vixml.testing.reference_clustering`: this alias keeps the tests' imports."""

import sys

from vixml.testing import reference_clustering

sys.modules[__name__] = reference_clustering
