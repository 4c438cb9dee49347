"""`studio rewards preview RECIPE`: sample a few completions per prompt from the current model and
show each reward's score and the weighted total, before a GRPO run spends compute.

Registered by studio.cli (`add_parser`, `COMMAND`); imports core only when it runs.
"""

from __future__ import annotations

import json
import sys

from core import recipes
from core.train import reward_preview

COMMAND = "rewards"


def add_parser(sub) -> None:
    rewards = sub.add_parser("rewards", help="GRPO rewards: preview what they score before training")
    actions = rewards.add_subparsers(dest="action", required=True, metavar="ACTION")
    preview = actions.add_parser("preview", help="sample K completions for a few prompts and score each with every reward")
    preview.add_argument("recipe", help="a grpo recipe YAML (see configs/grpo-format-cpu.yaml)")
    preview.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field, e.g. grpo.preview_samples=8")
    preview.add_argument("--prompts", type=int, default=None, help="prompts to sample (default: grpo.preview_prompts)")
    preview.add_argument("--samples", type=int, default=None, help="completions per prompt, K (default: grpo.preview_samples)")
    preview.add_argument("--adapter", default=None, help="preview a trained adapter folder instead of the base model")
    preview.add_argument("--seed", type=int, default=0, help="sampling seed")
    preview.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    recipe = recipes.load(args.recipe, args.set)
    for name, value in (("--prompts", args.prompts), ("--samples", args.samples)):
        if value is not None and value < 1:
            print(f"error: {name} must be at least 1", file=sys.stderr)
            return 2
    result = reward_preview.preview(recipe, prompts=args.prompts, samples=args.samples, adapter=args.adapter, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    else:
        print(format_preview(result))
    return 0


def _cell(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_preview(result: dict) -> str:
    names = list(result["weights"])
    lines = [f"Reward preview of {result['recipe']} on {result['model']}"
             + (f" + {result['adapter']}" if result.get("adapter") else "")
             + f": {result['prompts']} prompts x {result['samples_per_prompt']} samples "
             + f"({result['generated_tokens']} tokens in {result['seconds']} s)",
             "weights: " + ", ".join(f"{n} {w:g}" for n, w in result["weights"].items())]
    current = None
    for row in result["rows"]:
        if row["prompt_index"] != current:
            current = row["prompt_index"]
            lines += ["", f"[{current + 1}] {row['prompt'][:200]}"]
        scores = "  ".join(f"{n} {_cell(row['rewards'][n])}" for n in names)
        lines.append(f"  total {_cell(row['total'])}  |  {scores}  |  {' '.join(row['completion'].split())[:160]!r}")
    lines.append("")
    for name in names + ["total"]:
        s = result["summary"][name]
        lines.append(f"{name:>10}: mean {_cell(s['mean'])}  spread {_cell(s['std'])}  ({s['scored']} scored)")
    total = result["summary"]["total"]
    if total.get("flat_groups"):
        lines.append(f"note: in {total['flat_groups']} of {total['groups']} prompts every sample got the same total; "
                     "GRPO learns nothing from such a group (raise the temperature or make the reward finer)")
    for item in result["skipped"][:20]:
        lines.append(f"skipped {item['row']}: {item['reason']}")
    return "\n".join(lines)
