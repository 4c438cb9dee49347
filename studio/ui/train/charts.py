"""Train tab charts: Plotly figures drawn from a run's metrics.jsonl records.

Loss (train raw and smoothed, eval on the same axes, earlier runs overlaid), learning rate,
grad norm, and for DPO, ORPO, SimPO and KTO the preference rewards (accuracies, margins, ORPO's
log_odds_ratio, KTO's good and bad rewards and KL). Smoothing is TensorBoard's
debiased exponential moving average. This module knows nothing about gradio or run folders:
it takes lists of dicts and returns figures.
"""

from __future__ import annotations

import itertools
import math

import plotly.graph_objects as go

OVERLAY_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def smooth(values: list[float], weight: float) -> list[float]:
    """Debiased EMA: early points are not dragged towards zero the way a plain EMA drags them."""
    if weight <= 0 or not values:
        return list(values)
    out, last, count = [], 0.0, 0
    for value in values:
        count += 1
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight**count))
    return out


def series(metrics: list[dict], key: str, split: str = "train") -> tuple[list, list]:
    steps, values = [], []
    for record in metrics:
        value = record.get(key)
        if record.get("split") == split and isinstance(value, (int, float)) and math.isfinite(value):
            steps.append(record.get("step"))
            values.append(value)
    return steps, values


def _layout(fig: go.Figure, title: str, y_title: str, *, log_scale: bool = False, empty: str = "") -> go.Figure:
    fig.update_layout(title=title, xaxis_title="step", yaxis_title=y_title, height=300, margin=dict(l=50, r=20, t=40, b=40),
                      legend=dict(orientation="h", y=-0.25), template="plotly_white")
    if log_scale:
        fig.update_yaxes(type="log")
    if empty and not fig.data:
        fig.add_annotation(text=empty, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def loss_figure(metrics: list[dict], *, smoothing: float = 0.6, log_scale: bool = False,
                overlays: dict[str, list[dict]] | None = None, name: str | None = None,
                forgetting: list[dict] | None = None) -> go.Figure:
    """`metrics`' losses (labelled with `name` when given, e.g. a sweep's first run), and each
    overlaid run's smoothed train loss and eval points, a colour per run (the palette repeats).
    `forgetting` (core.eval.report.forgetting_curve): each benchmark task's score at base (step 0)
    and each kept checkpoint, on a right-hand axis in points: the forgetting curve beside the loss."""
    fig = go.Figure()
    prefix = f"{name}: " if name else ""
    steps, losses = series(metrics, "loss")
    if steps:
        fig.add_scatter(x=steps, y=losses, mode="lines", name=f"{prefix}train loss", line=dict(color="#1f77b4", width=1),
                        opacity=0.35)
        fig.add_scatter(x=steps, y=smooth(losses, smoothing), mode="lines", name=f"{prefix}train loss (smoothed)",
                        line=dict(color="#1f77b4", width=2.5))
    eval_steps, eval_losses = series(metrics, "loss", "eval")
    if eval_steps:
        fig.add_scatter(x=eval_steps, y=eval_losses, mode="lines+markers", name=f"{prefix}eval loss",
                        line=dict(color="#ff7f0e", width=2.5))
    for (run, other), colour in zip((overlays or {}).items(), itertools.cycle(OVERLAY_COLOURS)):
        o_steps, o_losses = series(other, "loss")
        if o_steps:
            fig.add_scatter(x=o_steps, y=smooth(o_losses, smoothing), mode="lines", name=f"{run} (train)",
                            line=dict(color=colour, width=1.5, dash="dot"))
        e_steps, e_losses = series(other, "loss", "eval")
        if e_steps:
            fig.add_scatter(x=e_steps, y=e_losses, mode="markers", name=f"{run} (eval)", marker=dict(color=colour))
    tasks = [key for key in (forgetting or [{}])[0] if key not in ("step", "weights")]
    for task, colour in zip(tasks, itertools.cycle(REWARD_COLOURS)):
        fig.add_scatter(x=[p["step"] for p in forgetting], y=[p[task] for p in forgetting], mode="lines+markers", yaxis="y2",
                        name=f"{task.removeprefix('studio_probe_')} (score)", line=dict(color=colour, width=1.5, dash="dash"),
                        text=[p["weights"] for p in forgetting], hovertemplate="%{text}: %{y:.1f}<extra>%{fullData.name}</extra>")
    if tasks:
        fig.update_layout(yaxis2=dict(title="score (points)", overlaying="y", side="right", range=[0, 100]))
    return _layout(fig, "Loss" + (" and general skills per checkpoint" if tasks else ""), "loss", log_scale=log_scale,
                   empty="No loss logged yet")


def line_figure(metrics: list[dict], key: str, title: str, *, log_scale: bool = False, colour: str = "#2ca02c") -> go.Figure:
    fig = go.Figure()
    steps, values = series(metrics, key)
    if steps:
        fig.add_scatter(x=steps, y=values, mode="lines", name=key, line=dict(color=colour, width=2))
    return _layout(fig, title, key, log_scale=log_scale, empty=f"No {key} logged yet")


def rewards_figure(metrics: list[dict], *, smoothing: float = 0.6) -> go.Figure:
    """DPO, ORPO, SimPO, KTO: preference accuracy on the left axis; the reward margin, ORPO's log
    odds ratio and KTO's rewards of good and bad replies and its KL estimate on the right (another scale)."""
    fig = go.Figure()
    kto = not any("rewards/accuracies" in m for m in metrics)  # KTO has no pairs to be right about
    shown = (("rewards/accuracies", "#2ca02c", "y", "solid"), ("rewards/margins", "#d62728", "y2", "solid"),
             ("log_odds_ratio", "#1f77b4", "y2", "solid"), ("kl", "#ff7f0e", "y2", "dash"))
    if kto:
        shown += (("rewards/chosen", "#2ca02c", "y2", "dot"), ("rewards/rejected", "#8c564b", "y2", "dot"))
    for key, colour, axis, dash in shown:
        steps, values = series(metrics, key)
        if steps:
            fig.add_scatter(x=steps, y=smooth(values, smoothing), mode="lines", name=key, yaxis=axis,
                            line=dict(color=colour, width=2, dash=dash))
        e_steps, e_values = series(metrics, key, "eval")
        if e_steps:
            fig.add_scatter(x=e_steps, y=e_values, mode="markers", name=f"eval {key}", marker=dict(color=colour), yaxis=axis)
    fig.update_layout(yaxis2=dict(title="reward", overlaying="y", side="right"))
    return _layout(fig, "Preference rewards", "accuracy",
                   empty="DPO, ORPO, SimPO and KTO runs log their rewards and margins here")


REWARD_COLOURS = ("#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def reward_names(metrics: list[dict]) -> list[str]:
    """GRPO's reward names, from its rewards/<name>/mean keys, in first-seen order."""
    names: list[str] = []
    for record in metrics:
        for key in record:
            if key.startswith("rewards/") and key.endswith("/mean") and key.count("/") == 2:
                name = key.split("/")[1]
                if name not in names:
                    names.append(name)
    return names


def _band(fig: go.Figure, steps: list, means: list, stds: list, colour: str, name: str) -> None:
    """A mean line with a shaded mean +- std band (the spread across the step's completions)."""
    upper = [m + s for m, s in zip(means, stds)]
    lower = [m - s for m, s in zip(means, stds)]
    fig.add_scatter(x=steps + steps[::-1], y=upper + lower[::-1], fill="toself", fillcolor=colour, opacity=0.15,
                    line=dict(width=0), hoverinfo="skip", showlegend=False, name=f"{name} spread")
    fig.add_scatter(x=steps, y=means, mode="lines+markers", name=name, line=dict(color=colour, width=2), marker=dict(size=4))


def _paired(metrics: list[dict], mean_key: str, std_key: str) -> tuple[list, list, list]:
    steps, means, stds = [], [], []
    for record in metrics:
        mean, std = record.get(mean_key), record.get(std_key)
        if record.get("split") == "train" and isinstance(mean, (int, float)) and math.isfinite(mean):
            steps.append(record.get("step"))
            means.append(mean)
            stds.append(std if isinstance(std, (int, float)) and math.isfinite(std) else 0.0)
    return steps, means, stds


def grpo_rewards_figure(metrics: list[dict]) -> go.Figure:
    """GRPO: the mean and spread of each reward and of the weighted total, per logging step."""
    fig = go.Figure()
    for name, colour in zip(reward_names(metrics), REWARD_COLOURS):
        steps, means, stds = _paired(metrics, f"rewards/{name}/mean", f"rewards/{name}/std")
        if steps:
            _band(fig, steps, means, stds, colour, name)
    steps, means, stds = _paired(metrics, "reward", "reward_std")
    if steps:
        _band(fig, steps, means, stds, "#1f77b4", "total (weighted)")
    return _layout(fig, "Rewards (mean and spread)", "reward", empty="GRPO runs log each reward here")


def grpo_side_figure(metrics: list[dict], key: str, title: str, colour: str) -> go.Figure:
    """One GRPO diagnostic (KL, completion length, clip ratio), or a note saying why it is empty."""
    fig = line_figure(metrics, key, title, colour=colour)
    if not fig.data and key == "kl":
        fig.layout.annotations = ()
        fig.add_annotation(text="KL is logged when grpo.kl_beta > 0", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig
