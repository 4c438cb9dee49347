"""The Train tab's forecast: what the run will need (core.train.forecast, the numbers `studio plan`
and the dry run print), shown with the plan, and the warning Start gives when the run would not
fit this machine. Handlers answer in words and never raise into the page."""

from __future__ import annotations

from core.recipes import Recipe
from core.train import forecast as forecasts


def forecast_markdown(recipe: Recipe, plan: dict) -> str:
    """The forecast as Markdown lines, speed measured on this machine once (then cached)."""
    try:
        result = forecasts.forecast(recipe, plan, calibrate=True)
    except Exception as error:  # noqa: BLE001 - a forecast that can't be made must not hide the plan
        return f"**Forecast:** not available ({str(error).splitlines()[0][:200]})"
    lines = forecasts.lines(result)
    return "**Forecast**  \n" + "  \n".join(("⚠️ " + line[len("Warning: "):]) if line.startswith("Warning: ") else line
                                           for line in lines)
