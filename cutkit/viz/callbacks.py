"""Trainer callbacks for notebooks: a live loss plot that redraws in place as training logs.

>>> # trainer.add_callback(LiveLossPlot(["loss", "loss/mle", "loss/ul"]))
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import TrainerCallback


class LiveLossPlot(TrainerCallback):
    """Plot logged training figures against the optimizer step, redrawn at every log.

    In Jupyter the figure is one output that updates in place; elsewhere nothing is drawn and the
    history is only collected. ``history`` maps each key to its ``[(step, value), ...]``.

    Args:
        keys: logged names to plot (e.g. ``"loss"``, ``"loss/ul"``, ``"ul/flagged_frac"``); those
            never logged are left out.
        title: figure title.
    """

    def __init__(self, keys: Sequence[str] = ("loss", "loss/mle", "loss/ul"), title: str = ""):
        self.keys = list(keys)
        self.title = title
        self.history: dict[str, list[tuple[int, float]]] = {key: [] for key in self.keys}
        self._handle = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        for key in self.keys:
            if key in logs:
                self.history[key].append((state.global_step, float(logs[key])))
        if any(self.history.values()) and state.is_world_process_zero:
            self._draw()

    def figure(self):
        """The current plot as a matplotlib figure (one line per key with values)."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3))
        for key, points in self.history.items():
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker=".", label=key)
        ax.set_xlabel("optimizer step")
        ax.set_title(self.title)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
        fig.tight_layout()
        plt.close(fig)
        return fig

    def _draw(self) -> None:
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython ships with the notebooks extra
            return
        if get_ipython() is None:
            return
        fig = self.figure()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
