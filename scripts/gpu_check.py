"""Prove the CUDA paths on a GPU machine: QLoRA (4-bit), LoRA in bf16, full fine-tuning, DPO on a
4-bit base, GRPO without vLLM, chat with the adapter, and merging a QLoRA adapter, each through
the studio's own CLI (`python -m studio.cli ...`), as a user would run them.

The bundled recipes name 0.5B-7B Hub models; a machine without internet can't fetch them, so the
check builds the embedded model's architecture (SmolLM2-135M: 30 layers, hidden 576) with random
weights and the real tokenizer, and points every recipe at it with `--set model.name=...`. Steps are
cut to a few dozen so the whole check fits a short lease; the point is that each path runs on CUDA
end to end (4-bit layers, bf16 compute, checkpoints, adapter, evaluation, chat, merge), not quality.

    python scripts/gpu_check.py --tokenizer-from DIR --out OUT_DIR [--only qlora,chat]

DIR holds the embedded model's config.json, tokenizer files and chat template. Writes
OUT_DIR/gpu_check.json (one record per step: command, exit code, seconds, result) and prints a line
per step. `--cpu-trial` swaps qlora for lora so the script's own mechanics can be tried without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["training.logging_steps=1", "eval.max_new_tokens=24"]


def cases(model: str, work: Path) -> list[tuple[str, list[str]]]:
    """(name, CLI arguments) in the order they run; later steps use earlier runs' folders."""
    def train(recipe: str, name: str, *sets: str) -> list[str]:
        args = ["train", str(ROOT / "configs" / recipe), "--json", "--run-dir", str(work / "home" / "runs" / name),
                "--set", f"model.name={model}"]
        for item in (*SHORT, *sets):
            args += ["--set", item]
        return args

    qlora_run = work / "home" / "runs" / "friction-qlora"
    return [
        ("qlora", train("friction-qlora.yaml", "friction-qlora", "training.max_steps=30", "training.eval_steps=10",
                        "training.save_steps=10", "data.max_length=1024", "training.learning_rate=1e-3")),
        ("chat", ["chat", "--model", model, "--adapter", str(qlora_run), "--prompt", "Is the earth flat?",
                  "--max-new-tokens", "16", "--json"]),
        ("merge", ["export", str(qlora_run), "--merge", str(work / "merged"), "--json"]),
        ("dpo-qlora", train("epistemic-dpo.yaml", "dpo-qlora", "training.tuning=qlora", "training.epochs=20",
                            "training.learning_rate=1e-4")),
        ("lora-bf16", train("rag-grounding-lora.yaml", "rag-lora", "training.max_steps=20", "training.eval_steps=10",
                            "training.save_steps=10", "data.max_length=1024")),
        ("full", train("cognitive-modes-full.yaml", "modes-full", "training.max_steps=10", "training.eval_steps=5",
                       "training.save_steps=5", "data.max_length=1024")),
        ("grpo", train("grpo-math-gpu.yaml", "grpo", "grpo.use_vllm=false", "training.max_steps=4", "training.batch_size=4",
                       "training.grad_accum=1", "grpo.num_generations=4", "grpo.max_completion_length=32",
                       "training.save_steps=2", "training.logging_steps=1")),
    ]


def build_model(source: Path, target: Path) -> str:
    """The embedded architecture with random weights (bf16) and the real tokenizer and template."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (target / "model.safetensors").is_file():
        return str(target)
    config = AutoConfig.from_pretrained(source)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(target)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    return str(target)


def run_step(name: str, args: list[str], env: dict, log) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "studio.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    seconds = round(time.perf_counter() - started, 1)
    log.write(f"=== {name}: {' '.join(args)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr[-6000:]}\n")
    log.flush()
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        result = {"stdout_tail": done.stdout[-800:], "stderr_tail": done.stderr[-1500:]}
    return {"step": name, "rc": done.returncode, "seconds": seconds, "result": result}


def run_facts(run_dir: Path) -> dict:
    """What the run folder says about precision, quantization and the loss curve."""
    facts: dict = {}
    for name in ("status.json", "run_info.json", "device.json"):
        path = run_dir / name
        if path.is_file():
            facts[name] = json.loads(path.read_text())
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        losses = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        train = [r["loss"] for r in losses if r.get("split") == "train" and isinstance(r.get("loss"), (int, float))]
        evals = [r["loss"] for r in losses if r.get("split") == "eval" and isinstance(r.get("loss"), (int, float))]
        facts["train_loss_first_last"] = [train[0], train[-1]] if train else None
        facts["eval_losses"] = evals
    log = run_dir / "train.log"
    if log.is_file():
        facts["studio_lines"] = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("[studio]")][:12]
    facts["files"] = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())[:80]
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer-from", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-check"))
    parser.add_argument("--only", default=None, help="comma-separated step names")
    parser.add_argument("--cpu-trial", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    model = build_model(args.tokenizer_from, args.work / "model")
    env = {**os.environ, "STUDIO_HOME": str(args.work / "home"), "STUDIO_MODEL_DIRS": model, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    import torch

    report = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "steps": []}
    wanted = set(args.only.split(",")) if args.only else None
    with open(args.out / "gpu_check.log", "w") as log:
        for name, step_args in cases(model, args.work):
            if wanted and name not in wanted:
                continue
            if args.cpu_trial:
                step_args = [a.replace("training.tuning=qlora", "training.tuning=lora") for a in step_args]
                if name == "qlora":
                    step_args += ["--set", "training.tuning=lora", "--set", "training.max_steps=2"]
            try:
                record = run_step(name, step_args, env, log)
            except subprocess.TimeoutExpired:
                record = {"step": name, "rc": "timeout"}
            run_dir = record.get("result", {}).get("run_dir") if isinstance(record.get("result"), dict) else None
            if run_dir:
                record["facts"] = run_facts(Path(run_dir))
            report["steps"].append(record)
            print(json.dumps({k: record[k] for k in ("step", "rc", "seconds") if k in record}), flush=True)
            (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    return 0 if all(s.get("rc") == 0 for s in report["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
