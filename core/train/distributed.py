"""Distributed: several training processes under `accelerate launch`, configured by accelerate's
own config file, kept in the run folder.

A recipe with `training.num_processes` above 1 (or a user's accelerate config file) runs as
`python -m accelerate.commands.launch --config_file RUN/accelerate_config.yaml --log_dir RUN/launcher -m core.train.worker RUN`.
The file is written once, when the run folder is created, from `training.distributed` (DDP, FSDP or
DeepSpeed ZeRO-2), or copied from the user's own file; resume reuses it, and the UI shows it. On a
machine without CUDA the same DDP file runs data-parallel CPU processes over torch's gloo backend
(TrainingArguments' use_cpu makes accelerate pick MULTI_CPU), which is how the tests prove the path.
This module also holds the one collective the run callback needs (every rank agrees to stop at
the same step). It knows nothing about trainers, queues or the UI.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from core.recipes import Recipe, RecipeError
from core.workspace import write_atomic

CONFIG_FILE = "accelerate_config.yaml"
LAUNCHER_LOGS = "launcher"  # torchrun's per-rank folders, inside the run folder

# accelerate's distributed_type -> the recipe's training.distributed
_KINDS = {"MULTI_GPU": "ddp", "MULTI_CPU": "ddp", "FSDP": "fsdp", "DEEPSPEED": "deepspeed"}


def uses_accelerate(recipe: Recipe) -> bool:
    """Several processes: `training.num_processes` above 1 (distributed 'none' means DDP then)."""
    return recipe.training.num_processes > 1


def config_for(recipe: Recipe) -> dict:
    """accelerate's config for the recipe's strategy, as `accelerate config` would write it."""
    t = recipe.training
    config = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "num_processes": t.num_processes,
        "num_machines": 1,
        "machine_rank": 0,
        "main_process_port": 0,  # 0: a free port, so two runs (or two test sessions) never collide
        "gpu_ids": "all",
        # Precision is the trainer's (core.models.device_policy), not the launcher's.
        "mixed_precision": "no",
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if t.distributed == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 1, "fsdp_sharding_strategy": "FULL_SHARD", "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE", "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_offload_params": False, "fsdp_sync_module_states": True, "fsdp_cpu_ram_efficient_loading": True,
            # LoRA trains a few parameters among frozen ones: FSDP must keep the original parameters.
            "fsdp_use_orig_params": True,
        }
    elif t.distributed == "deepspeed":
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {
            "zero_stage": 2, "offload_optimizer_device": "none", "offload_param_device": "none",
            "gradient_accumulation_steps": t.grad_accum, "gradient_clipping": t.max_grad_norm, "zero3_init_flag": False,
        }
    return config


def read_user_config(path: str | Path) -> dict:
    """A user's accelerate config file (YAML or JSON), checked enough to launch from."""
    path = Path(path).expanduser()
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: accelerate config file not found") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not a valid accelerate config (YAML): {error}") from None
    if not isinstance(config, dict) or "distributed_type" not in config:
        raise RecipeError(f"{path}: not an accelerate config file (no distributed_type); write one with `accelerate config`")
    kind = str(config["distributed_type"]).upper()
    if kind not in _KINDS and kind != "NO":
        raise RecipeError(f"{path}: distributed_type {kind} is not supported here; use MULTI_GPU, FSDP or DEEPSPEED")
    processes = config.get("num_processes", 1)
    if not isinstance(processes, int) or processes < 1:
        raise RecipeError(f"{path}: num_processes must be a whole number of at least 1, got {processes!r}")
    return config


def adopt_user_config(recipe: Recipe, config: dict) -> Recipe:
    """The recipe as the user's accelerate file will run it: its process count and strategy, so
    the recipe saved in the run folder (and the step count) says what really ran."""
    import copy

    adopted = copy.deepcopy(recipe)
    adopted.training.num_processes = int(config.get("num_processes", 1))
    adopted.training.distributed = _KINDS.get(str(config["distributed_type"]).upper(), "none")
    return adopted


def write_config(run_dir: Path, config: dict) -> Path:
    path = Path(run_dir) / CONFIG_FILE
    write_atomic(path, yaml.safe_dump(config, sort_keys=False))
    return path


def config_path(run_dir: str | Path) -> Path | None:
    """The run's accelerate config, when it runs under accelerate."""
    path = Path(run_dir) / CONFIG_FILE
    return path if path.is_file() else None


def launch_argv(run_dir: str | Path, config_file: str | Path) -> list[str]:
    """`accelerate launch` through this Python, so the launcher is the one installed beside torch.
    torchrun's per-rank folders go to RUN/launcher/ (without --log_dir it makes one in the system's
    temporary folder for every run and never removes it)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "--log_dir", str(Path(run_dir) / LAUNCHER_LOGS), "-m", "core.train.worker", str(run_dir)]


def shown(command: list[str]) -> str:
    """The command as a person would type it."""
    if command[1:3] == ["-m", "accelerate.commands.launch"]:
        command = ["accelerate", "launch", *command[3:]]
    return " ".join(command)


_LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_NAME",
                  "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "CUDA_VISIBLE_DEVICES_BY_LAUNCHER")


def clean_env(env: dict) -> dict:
    """A child's environment without what `accelerate launch` / torchrun gave this process: a rank-0
    worker that starts the next queued run must not make it think it is rank 0 of 2."""
    if "TORCHELASTIC_RUN_ID" not in env and "LOCAL_RANK" not in env:
        return env  # not inside a launched process: the environment is the user's own
    env.pop("OMP_NUM_THREADS", None)  # torchrun's 1 thread per process, not the user's choice
    for key in list(env):
        if key in _LAUNCHER_VARS or key.startswith(("TORCHELASTIC_", "ACCELERATE_", "FSDP_")):
            env.pop(key)
    return env


# ---------------------------------------------------------------- inside the processes


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def agree(flag: bool) -> bool:
    """True on every rank when it is True on any rank: a stop request seen by one process at
    step N stops them all at step N (otherwise one waits forever in the next all-reduce)."""
    if world_size() <= 1:
        return flag
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
