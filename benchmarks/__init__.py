"""Benchmarks and the local service they run on, one module per command:

``serving`` (``contrastgeo serving-bench``: PyTorch vs ONNX fp32/int8), ``stream``
(``stream-bench``: end-to-end throughput through the broker), ``soak`` (``soak``),
``refit`` (``refit-bench``), ``footprint`` (``footprint-bench``: a worker's memory, start
time and installed size); ``local`` starts worker subprocesses and throwaway local services
(also for the demo and the tests). The model benchmark (``contrastgeo benchmark``) is
``trainer.benchmark``: it compares training methods, not the service.
"""
