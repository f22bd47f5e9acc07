"""Builders, oracles and harnesses shared by vixml's tests and benchmarks (and usable in a user's own tests).

Why in the package: the benchmarks need the same tiny models, datasets and reference transcriptions as the
tests, and a benchmark must not import from ``tests/``. Nothing here is imported by vixml itself; each
module is imported on its own and loads its heavy dependencies inside its functions.

- :mod:`~vixml.testing.models`: tiny random-weight Hugging Face encoders and decoders, saved offline.
- :mod:`~vixml.testing.datasets`: dataset folders with a planted, learnable structure; raw XC sources.
- :mod:`~vixml.testing.vision`: tiny vision models and image banks.
- :mod:`~vixml.testing.reference_metrics`, :mod:`~vixml.testing.reference_clustering`: transcriptions of
  pyxclib's metrics and of the reference balanced k-means, the oracles and the benchmarks' peers.
- :mod:`~vixml.testing.search`: exact top-k oracle and search data.
- :mod:`~vixml.testing.image_server`, :mod:`~vixml.testing.server`, :mod:`~vixml.testing.distributed`: a
  local image HTTP server, a ``vixml serve`` process, gloo ranks on one CPU.
"""
