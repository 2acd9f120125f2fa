"""pipemedic: Prometheus alerting and automated incident response for data pipelines.

The product lives in three packages that follow the flow of README.md's diagram:
``exporters`` (pipelines -> metrics), ``rules`` (spec -> Prometheus rules) and
``receiver`` (Alertmanager webhook -> incidents -> recovery). This package
holds only what crosses them: the ``pipemedic`` command line, logging set-up,
and the launcher for the real Prometheus stack used by the demo and the tests.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
