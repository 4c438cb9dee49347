"""Export: from a run (or an adapter folder) to a merged model, the Hub, GGUF and Ollama, verified.

Each step is a plain function usable alone (`merge`, `convert_gguf`, `prepare_hub`,
`verify`; Ollama and Hub pushes live in core.export.modelfile and core.export.hub). `run_export` chains
them for one ExportPlan and yields Events a UI or the CLI can stream. Everything lands in
`STUDIO_HOME/exports/<run>/` beside a manifest.json that records each step's state; a
step is written into a `.partial` folder or file and renamed only when complete, and is
marked done only after that, so a crash, a full disk or a refused push never leaves an
export that looks finished. This module knows nothing about widgets or argument parsing.
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from core import models
from core.clients import ollama_host
from core.export import gguf as gguf_files
from core.export import hub, modelfile
from core.export.source import ExportError, Source, resolve_source
from core.train.run_dir import RECIPE_FILE, latest_ab_rows, read_metrics
from core.workspace import atomic_path, read_json, workspace, write_json_atomic

STEPS = ("merge", "hub", "gguf", "ollama", "verify")
DEFAULT_GGUF = "q8_0"  # what Ollama gets when no GGUF type is named: near-lossless, half the size of f16
HUB_WHAT = ("auto", "adapter", "merged", "gguf")
DEFAULT_PROMPTS = ("What is the capital of France?", "Write one sentence about the sea.",
                   "Give me three tips for learning to cook.")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "added_tokens.json")


@dataclass
class Event:
    step: str  # merge | hub | gguf | ollama | verify | export
    kind: str  # start | progress | done | failed | skipped | summary
    message: str
    data: dict = field(default_factory=dict)


@dataclass
class ExportPlan:
    source: str
    checkpoint: str = "best"
    merge: bool = True
    gguf_type: str | None = None
    ollama_name: str | None = None
    ollama_host: str | None = None
    ollama_quantize: str | None = None
    hub_repo: str | None = None
    hub_private: bool = True
    hub_what: str = "auto"  # auto | adapter | merged | gguf
    hub_token: str | None = field(default=None, repr=False)  # never stored anywhere
    hub_endpoint: str | None = None
    verify: bool = True
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    max_new_tokens: int = 24
    system: str | None = None
    merge_dir: Path | None = None


def make_plan(source: str, *, checkpoint: str | None = "best", merge: bool | None = None, merge_dir: str | Path | None = None,
              gguf: str | None = None, ollama: str | None = None, ollama_host: str | None = None,
              ollama_quantize: str | None = None, hub: str | None = None, hub_private: bool = True,
              hub_what: str | None = "auto", hub_token: str | None = None, verify: bool = True,
              system: str | None = None) -> ExportPlan:
    """The one place an export's choices become an ExportPlan, for the Export tab and `studio
    export` alike. Asking for nothing is a merge; Ollama without a GGUF type gets DEFAULT_GGUF;
    names are stripped, and a step asked for without what it needs is refused here, in words."""
    ollama = (ollama or "").strip() or None
    hub = (hub or "").strip() or None
    hub_what = hub_what or "auto"
    if hub_what not in HUB_WHAT:
        raise ExportError(f"What to push must be one of {', '.join(HUB_WHAT)}, not {hub_what!r}.")
    gguf_type = (gguf or "").strip().lower() or (DEFAULT_GGUF if ollama else None)
    wants_merge = bool(merge) or merge_dir is not None
    if not (wants_merge or gguf_type or ollama or hub):
        wants_merge = True
    return ExportPlan(source=str(source), checkpoint=checkpoint or "best", merge=wants_merge, gguf_type=gguf_type,
                      ollama_name=ollama, ollama_host=ollama_host, ollama_quantize=ollama_quantize, hub_repo=hub,
                      hub_private=bool(hub_private), hub_what=hub_what, hub_token=hub_token or None, verify=bool(verify),
                      system=system, merge_dir=Path(merge_dir) if merge_dir is not None else None)


# ---------------------------------------------------------------- manifest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """exports/<run>/manifest.json: the source and each step's state (running|done|failed|skipped)."""

    def __init__(self, folder: Path, source: Source):
        self.path = folder / "manifest.json"
        old = read_json(self.path)
        self.data = {"name": source.name, "source": str(source.artifact), "checkpoint": source.label,
                     "kind": source.kind, "base_model": source.base_hub_id or source.base_name,
                     "run_dir": str(source.run_dir) if source.run_dir else None,
                     "created_at": old.get("created_at", _now()), "updated_at": _now(), "steps": {}}
        if old.get("source") == str(source.artifact):  # finished steps of this same artifact stay reusable
            self.data["steps"] = {k: v for k, v in old.get("steps", {}).items() if v.get("state") == "done"}

    def set(self, step: str, state: str, **info) -> None:
        entry = {"state": state, "at": _now(), **{k: v for k, v in info.items() if v is not None}}
        self.data["steps"][step] = entry
        self.data["updated_at"] = _now()
        write_json_atomic(self.path, self.data)

    def done_path(self, step: str) -> Path | None:
        entry = self.data["steps"].get(step, {})
        path = Path(entry["path"]) if entry.get("state") == "done" and entry.get("path") else None
        return path if path and path.exists() else None


def export_dir(source: Source) -> Path:
    return workspace().exports / source.name


def folder_size(path: Path) -> int:
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"  # pragma: no cover


# ---------------------------------------------------------------- steps


def merge(source: Source, out_dir: Path, say: Callable[[str], None] = print) -> Path:
    """Base (16/32-bit, never 4-bit) + adapter -> a full safetensors folder with every tokenizer
    file, the chat template, generation config, recipe.yaml and the base's Hub id."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    if source.kind != "adapter":
        raise ExportError(f"{source.artifact} is already a full model (a full fine-tune): there is no adapter to merge.")
    say(f"loading base {source.base_name} (full precision: a QLoRA adapter is merged onto the 16-bit base, not the 4-bit one)")
    base = models.load_model(source.base_name, quantize_4bit=False)
    say(f"applying adapter {source.artifact} and merging")
    merged = PeftModel.from_pretrained(base, source.artifact).merge_and_unload()
    tokenizer_from = source.artifact if (source.artifact / "tokenizer_config.json").is_file() else models.resolve(source.base_name).path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    with atomic_path(out_dir) as partial:
        merged.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        _copy_missing(Path(tokenizer_from), partial, TOKENIZER_FILES)
        _copy_missing(Path(models.resolve(source.base_name).path), partial, ("generation_config.json",))
        for place in (source.artifact, source.run_dir):
            if place and (place / RECIPE_FILE).is_file() and not (partial / RECIPE_FILE).exists():
                shutil.copy2(place / RECIPE_FILE, partial / RECIPE_FILE)
        (partial / "studio_source.json").write_text(json.dumps(
            {"hub_id": source.base_hub_id, "merged_from": str(source.artifact), "checkpoint": source.label}, indent=2))
    say(f"merged model: {out_dir} ({human_size(folder_size(out_dir))})")
    return out_dir


def _copy_missing(origin: Path, target: Path, names: tuple[str, ...]) -> None:
    if not origin.is_dir():
        return
    for name in names:
        if (origin / name).is_file() and not (target / name).exists():
            shutil.copy2(origin / name, target / name)


def convert_gguf(model_dir: Path, out_file: Path, gguf_type: str, say: Callable[[str], None] = print) -> dict:
    """GGUF through llama.cpp's converter, then read back with gguf.GGUFReader."""
    path = gguf_files.convert(model_dir, out_file, gguf_type, progress=say)
    info = gguf_files.read_back(path)
    say(f"{path.name}: {info['architecture']}, {info['tensor_count']} tensors, "
        f"chat template {'present' if info['chat_template_present'] else 'MISSING'}, {human_size(info['size_bytes'])}")
    info.pop("chat_template", None)
    return info


def prepare_hub(source: Source, what: str, folder: Path, merged_dir: Path | None, gguf_file: Path | None) -> Path:
    """The folder to push (adapter, merged model or GGUF) with a generated model card."""
    what = ("adapter" if source.kind == "adapter" else "merged") if what == "auto" else what
    metrics = read_metrics(source.run_dir) if source.run_dir else []
    facts = hub.CardFacts(base_model=source.base_hub_id, name=source.name, recipe=source.recipe,
                          kind={"adapter": "adapter", "merged": "model", "gguf": "gguf"}[what],
                          datasets=hub.hub_datasets(source.recipe), losses=hub.losses(metrics),
                          ab_results=_ab_results(source.run_dir), eval_report=_eval_report(source.run_dir))
    if what == "adapter":
        return hub.prepare_folder(source.artifact, folder, facts)
    if what == "merged":
        return hub.prepare_folder(merged_dir or source.artifact, folder, facts)
    facts.gguf_files = [gguf_file.name, "Modelfile"] if (gguf_file.parent / "Modelfile").is_file() else [gguf_file.name]
    return hub.prepare_folder(gguf_file.parent, folder, facts, files=[gguf_file.parent / n for n in facts.gguf_files])


_ab_results = latest_ab_rows  # the run folder's newest A/B rows (core.train.run_dir reads them)


def _eval_report(run_dir: Path | None) -> dict | None:
    from core.eval.guard import run_report

    return run_report(run_dir) if run_dir else None


# ---------------------------------------------------------------- the chain

_FINISHED = object()


def _streamed(step: str, work: Callable[[Callable[[str], None]], object]):
    """Run one step in a thread and yield its progress lines as Events while it works; the
    step's return value becomes the value of `yield from`."""
    lines: queue.Queue = queue.Queue()
    result: dict = {}

    def target():
        try:
            result["value"] = work(lines.put)
        except BaseException as error:  # re-raised in the caller's thread below
            result["error"] = error
        finally:
            lines.put(_FINISHED)

    thread = threading.Thread(target=target, name=f"export-{step}", daemon=True)
    thread.start()
    while (line := lines.get()) is not _FINISHED:
        yield Event(step, "progress", str(line))
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def run_export(plan: ExportPlan) -> Iterator[Event]:
    """Run the ticked steps in order, merge -> hub -> gguf -> ollama -> verify, yielding Events.
    A failed step stops the chain (later steps need its output) except the Hub push, whose
    failure leaves the prepared folder for later and lets GGUF/Ollama go on."""
    try:
        source = resolve_source(plan.source, plan.checkpoint)
    except ExportError as error:
        yield Event("export", "failed", str(error))
        return
    folder = export_dir(source)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(folder, source)
    state = {"merged": manifest.done_path("merge"), "gguf": manifest.done_path("gguf"), "verify": None, "ollama": None}
    yield Event("export", "start", f"exporting {source.artifact} ({source.kind}, {source.label}) into {folder}",
                {"export_dir": str(folder), "base_model": source.base_hub_id})
    steps = _steps_to_run(plan, source, state)
    if "merge" not in steps and state["merged"] is not None and (plan.gguf_type or plan.ollama_name):
        yield Event("merge", "skipped", f"reusing the merged model of the last export: {state['merged']}")
    for step in steps:
        runner = {"merge": _merge_step, "hub": _hub_step, "gguf": _gguf_step, "ollama": _ollama_step, "verify": _verify_step}[step]
        ok = yield from _guarded(step, manifest, runner(plan, source, folder, manifest, state))
        if not ok and step not in ("hub", "ollama"):  # a refused push or a missing server spoils nothing after it
            yield Event("export", "failed", f"stopped after {step} failed; nothing later was marked done",
                        _summary(manifest, state, plan))
            return
    yield Event("export", "summary", f"export finished: {folder}", _summary(manifest, state, plan))


def _steps_to_run(plan: ExportPlan, source: Source, state: dict) -> list[str]:
    """The ticked steps plus what they need: GGUF needs a merged model (an earlier merge of
    the same artifact is reused when merge is not ticked); a GGUF push goes after the GGUF."""
    wants_gguf = bool(plan.gguf_type) or bool(plan.ollama_name)
    needs_merged = wants_gguf or (plan.hub_repo and plan.hub_what == "merged")
    steps = []
    if plan.merge or (needs_merged and state["merged"] is None) or (needs_merged and source.kind == "model"):
        steps.append("merge")
    if plan.hub_repo and plan.hub_what != "gguf":
        steps.append("hub")
    steps += ["gguf"] if wants_gguf else []
    steps += ["ollama"] if plan.ollama_name else []
    steps += ["verify"] if plan.verify and wants_gguf else []
    if plan.hub_repo and plan.hub_what == "gguf":
        steps.append("hub")
    return steps


def _guarded(step: str, manifest: Manifest, body: Iterator[Event]):
    """Mark the step running, stream it, and record done/failed/skipped in the manifest."""
    manifest.set(step, "running")
    yield Event(step, "start", f"{step}: started")
    try:
        outcome = yield from body
    except Exception as error:
        message = str(error) if isinstance(error, (ExportError, gguf_files.GGUFError, hub.HubError, modelfile.ModelfileError,
                                                   modelfile.OllamaUnavailable)) else f"{type(error).__name__}: {error}"
        manifest.set(step, "failed", error=message)
        yield Event(step, "failed", message)
        return False
    info = outcome or {}
    if info.pop("skipped", False):
        manifest.set(step, "skipped", **info)
        yield Event(step, "skipped", f"{step}: {info.get('reason', 'skipped')}", info)
        return True
    manifest.set(step, "done", **info)
    yield Event(step, "done", f"{step}: done" + (f" — {info['path']}" if info.get("path") else ""), info)
    return True


def _merge_step(plan, source, folder, manifest, state):
    if source.kind == "model":
        state["merged"] = source.artifact
        return {"skipped": True, "reason": "a full fine-tune is already a whole model; using it as is", "path": str(source.artifact)}
    out = Path(plan.merge_dir) if plan.merge_dir else folder / "merged"
    if not plan.merge:
        yield Event("merge", "progress", "GGUF needs a merged model: merging first")
    path = yield from _streamed("merge", lambda say: merge(source, out, say))
    state["merged"] = path
    return {"path": str(path), "size_bytes": folder_size(path), "files": sorted(p.name for p in path.iterdir())}


def _hub_step(plan, source, folder, manifest, state):
    what = plan.hub_what
    if what == "gguf" and not state.get("gguf"):
        raise ExportError("Pushing the GGUF needs a GGUF: tick the GGUF step (or push the adapter or the merged model).")
    prepared = prepare_hub(source, what, folder / "hub", state.get("merged"), state.get("gguf"))
    yield Event("hub", "progress", f"prepared {prepared} ({human_size(folder_size(prepared))}) with README.md model card")
    url = yield from _streamed("hub", lambda say: hub.push(prepared, plan.hub_repo, token=plan.hub_token,
                                                           private=plan.hub_private, endpoint=plan.hub_endpoint))
    return {"path": str(prepared), "repo": plan.hub_repo, "private": plan.hub_private, "commit_url": url}


def _gguf_step(plan, source, folder, manifest, state):
    kind = (plan.gguf_type or DEFAULT_GGUF).lower()
    out = folder / "gguf" / f"{source.name}-{kind}.gguf"
    info = yield from _streamed("gguf", lambda say: convert_gguf(state["merged"], out, kind, say))
    state["gguf"] = out
    return {**info, "gguf_type": kind}


def _ollama_step(plan, source, folder, manifest, state):
    spec = modelfile.spec_from_folder(state["merged"], system=plan.system)
    path = modelfile.write_modelfile(state["gguf"], spec)
    yield Event("ollama", "progress", f"Modelfile ({spec.family} template, stops {', '.join(spec.stops)}): {path}")
    command = modelfile.create_command(plan.ollama_name, path)
    state["ollama"] = {"modelfile": str(path), "create_command": command}
    for line in modelfile.create_in_ollama(plan.ollama_name, state["gguf"], spec, host=plan.ollama_host,
                                           quantize=plan.ollama_quantize, modelfile=path):
        yield Event("ollama", "progress", line)
    state["ollama"]["run_command"] = f"ollama run {plan.ollama_name}"
    return {"path": str(path), "model": plan.ollama_name, "host": ollama_host(plan.ollama_host),
            "family": spec.family, "run_command": f"ollama run {plan.ollama_name}"}


def _verify_step(plan, source, folder, manifest, state):
    report = yield from _streamed("verify", lambda say: gguf_files.verify(state["gguf"], state["merged"], plan.prompts,
                                                                          plan.max_new_tokens, progress=say))
    write_json_atomic(folder / "verify.json", report)
    state["verify"] = report
    return {"path": str(folder / "verify.json"), "agreed": report["agreed"], "total": report["total"], "runtime": report["runtime"],
            "token_agreement": report["token_agreement"]}


def _summary(manifest: Manifest, state: dict, plan: ExportPlan) -> dict:
    return {"export_dir": str(manifest.path.parent), "manifest": str(manifest.path), "steps": manifest.data["steps"],
            "verify": state.get("verify"), "ollama": state.get("ollama")}
