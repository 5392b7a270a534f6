"""PyFlink adapter: ``FaroFlink`` wraps window, process, map, filter and flat_map functions."""

from faro.flink.tracer import FaroFlink

__all__ = ["FaroFlink"]
