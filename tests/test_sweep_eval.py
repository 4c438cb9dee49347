"""A sweep's comparison with each run's evaluation after training: run folders written by the real
writers (queue, run_dir, the guard's status entry, the report and verdict code over hand-made
answers: no model answers anything), read back by `compare`, `studio sweep --compare` (text and
--json) and the Train tab's sweep table with its overlaid loss curves."""

from __future__ import annotations

from studio import train_charts


def test_overlays_beyond_the_palette_are_all_drawn():
    losses = [{"step": 1, "split": "train", "loss": 1.0}, {"step": 2, "split": "train", "loss": 0.5}]
    figure = train_charts.loss_figure(losses, overlays={f"run-{i}": losses for i in range(9)}, name="run-first")
    assert [t.name for t in figure.data if t.name.endswith("(train)")] == [f"run-{i} (train)" for i in range(9)]
    assert figure.data[0].name == "run-first: train loss"
