"""PyFlink adapter: ``FaroFlink`` wraps window, process, map, filter and flat_map functions,
and functions of two connected streams."""

from faro.flink.tracer import FaroFlink

__all__ = ["FaroFlink"]
