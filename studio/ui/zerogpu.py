"""ZeroGPU support: `gpu` wraps a GPU-bound function with `spaces.GPU` when the `spaces`
package is present (a Hugging Face ZeroGPU Space), and is a no-op everywhere else."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def gpu(fn: F) -> F:
    if importlib.util.find_spec("spaces") is None:
        return fn
    import spaces

    return spaces.GPU(fn)
