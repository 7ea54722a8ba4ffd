"""Views of token scores and training, for notebooks and reports.

- :mod:`~cutkit.viz.tokenview`: ``TokenView``, HTML of which tokens a judgment flagged;
- :mod:`~cutkit.viz.widgets`: ``TokenInspector``, the ipywidgets app over it;
- :mod:`~cutkit.viz.plots`: plotly figures of detection reports and log ratios;
- :mod:`~cutkit.viz.report`: a self-contained HTML token report;
- :mod:`~cutkit.viz.callbacks`: ``LiveLossPlot``, a live loss curve while training.
"""
