"""faro for Faust (faust-streaming): a sensor that reports agents and tables."""

from faro.faust.sensor import FaroSensor, TableWrite

__all__ = ["FaroSensor", "TableWrite"]
