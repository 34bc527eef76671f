"""Figures of evaluation results (matplotlib Figure objects, no pyplot state)."""
from emenet.plots.reliability import plot_reliability

__all__ = ["plot_reliability"]
