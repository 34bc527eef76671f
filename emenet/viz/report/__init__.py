"""Interactive per-video HTML reports of predictions (Plotly), and an index page for a folder run."""
