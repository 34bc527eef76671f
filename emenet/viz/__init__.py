"""Pictures: figures of evaluation results and label statistics, frames drawn with predictions, HTML reports.

Figures are matplotlib Figure objects (no pyplot state).
"""
from emenet.viz.reliability import plot_reliability

__all__ = ["plot_reliability"]
