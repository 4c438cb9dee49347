"""Hugging Face Jobs: a recipe trained on the Hub's hardware, recorded as a local run.

`submit()` checks the token (whoami) and the flavor (the Hub's own list), creates the run folder
as any run has it, then a private dataset repo named after the run holding what the job needs:
recipe.yaml (dataset and model paths rewritten to the repo's layout), the dataset under data/, a
local model folder under model/, job.json, and studio-src.tar.gz: this studio's own source as it
is on disk now (core/, studio/, assets/, configs/, pyproject.toml; the git commit, and whether the
tree had changes, recorded in the run's status.json). The job's command (`job_command`) installs
the studio from that tarball and runs core.train.hf_job_remote, which trains with the same worker
a local run uses and prints each metrics record on a marker line. A follower process on this
machine (core.train.hf_job_follow) streams those logs into the run folder, cancels the job on Stop,
and downloads the adapter when it ends.

The token comes from the caller or HF_TOKEN. It reaches the Hub as the request header, the job
only as a secret (`secrets={"HF_TOKEN": ...}`, never its visible environment), and the follower
only through its environment; it is never written to a file, a log, the recipe or a message.
A Jobs run does not hold this machine's training slot (core.train.runs). This module knows
nothing about the UI.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from core.clients import DEFAULT_HUB, hub_api, hub_endpoint, resolve_token
from core.errors import BadInput, StudioError
from core.hosting import DemoRefusal, demo_mode
from core.models import EMBEDDED_HUB_ID, HUB_ID, is_embedded
from core.recipes import Recipe, RecipeError
from core.train import runs
from core.train.estimate import Flavor, flavor_peak
from core.train.preflight import check_dataset_readable
from core.train.run_dir import now_iso, update_status
from core.workspace import ASSETS, PROJECT_ROOT

DEFAULT_IMAGE = "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"  # torch with CUDA; the studio's other deps install at start
IMAGE_ENV = "STUDIO_JOBS_IMAGE"  # the setting: another image with torch (and python, pip, bash)
DEFAULT_TIMEOUT = "4h"  # the Hub's own default would stop a job after 30 minutes
REPO_TYPE = "dataset"
SOURCE_FILE = "studio-src.tar.gz"
MANIFEST = "job.json"
REPO_ENV = "STUDIO_JOB_REPO"  # the job's visible environment names the repo, nothing secret
SOURCE_PARTS = ("core", "studio", "assets", "configs", "pyproject.toml", "README.md")
FLAVOR = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")

# The job: install the studio from its own source tarball, then run the job side. An image that
# already holds the studio's dependencies may set STUDIO_JOB_PREINSTALLED to skip both installs.
BOOTSTRAP = f"""set -euo pipefail
if [ -z "${{STUDIO_JOB_PREINSTALLED:-}}" ]; then
  python -m pip install --quiet --no-cache-dir --root-user-action=ignore 'huggingface_hub>=1.0'
fi
work="$(mktemp -d)"
python - "$work/src" <<'EOF'
import os, sys, tarfile
from huggingface_hub import hf_hub_download
bundle = hf_hub_download(os.environ["{REPO_ENV}"], "{SOURCE_FILE}", repo_type="{REPO_TYPE}")
with tarfile.open(bundle) as archive:
    archive.extractall(sys.argv[1], **({{"filter": "data"}} if hasattr(tarfile, "data_filter") else {{}}))
EOF
if [ -z "${{STUDIO_JOB_PREINSTALLED:-}}" ]; then
  python -m pip install --quiet --no-cache-dir --root-user-action=ignore "$work/src"
fi
cd "$work/src"
exec python -m core.train.hf_job_remote "$work"
"""


class JobsError(StudioError, RuntimeError):
    """A Jobs run that could not be submitted or followed; the message says why and what to do."""


def job_command() -> list[str]:
    return ["bash", "-c", BOOTSTRAP]


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def hub_call(what: str, call, secret: str | None, endpoint: str):
    """Run one Hub call; its failure becomes a JobsError that says what, where and why, without the token."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if constants.is_offline_mode():
        raise JobsError(f"{what}: Hub access is switched off here (HF_HUB_OFFLINE=1); Hugging Face Jobs need the Hub.")
    try:
        return call()
    except OfflineModeIsEnabled:
        raise JobsError(f"{what}: Hub access is switched off here (HF_HUB_OFFLINE=1); Hugging Face Jobs need the Hub.") from None
    except HfHubHTTPError as error:
        code = getattr(getattr(error, "response", None), "status_code", None)
        first = scrub((str(error).strip().splitlines() or [""])[0], secret)
        hint = " Check the token (a token with write access: huggingface.co/settings/tokens)." if code in (401, 403) else ""
        raise JobsError(f"{what}: the Hub at {endpoint} answered {code}: {first}.{hint}") from None
    except Exception as error:
        if not _network_error(error):
            raise
        reason = scrub(f"{type(error).__name__}: {error}", secret)
        raise JobsError(f"{what}: could not reach the Hugging Face Hub at {endpoint} ({reason}). Jobs run on the "
                        "Hub: check the network or proxy, or HF_ENDPOINT.") from None


def _network_error(error: Exception) -> bool:
    """A transport failure of huggingface_hub's HTTP client (httpx in 1.x, httpx2 in 2.x): no answer came."""
    package = type(error).__module__.split(".")[0]
    return package in ("httpx", "httpx2", "httpcore", "httpcore2") or isinstance(error, (ConnectionError, TimeoutError))


# ---------------------------------------------------------------- flavors


def flavors(token: str | None = None, endpoint: str | None = None) -> list[dict]:
    """The hardware the Hub offers for Jobs now: name, label, price per hour."""
    secret, where = resolve_token(token), hub_endpoint(endpoint)
    listed = hub_call("Listing the Jobs hardware", lambda: hub_api(secret, where).list_jobs_hardware(), secret, where)
    return [{"name": item.name, "label": _flavor_label(item), "gpu": item.accelerator is not None} for item in listed]


HARDWARE_SNAPSHOT = ASSETS / "jobs_hardware.json"


def hardware(token: str | None = None, endpoint: str | None = None) -> tuple[list, str]:
    """(the Jobs flavors with their memory and price per hour as core.train.estimate.Flavor, where
    they come from): the Hub's list now, else the bundled dated snapshot, said so."""
    from huggingface_hub._jobs_api import JobHardwareInfo

    try:
        secret, where = resolve_token(token), hub_endpoint(endpoint)
        listed = hub_call("Listing the Jobs hardware", lambda: hub_api(secret, where).list_jobs_hardware(), secret, where)
        source = f"prices from the Hub ({where}) now"
    except JobsError as error:
        snapshot = json.loads(HARDWARE_SNAPSHOT.read_text(encoding="utf-8"))
        listed = [JobHardwareInfo(**item) for item in snapshot["hardware"]]
        why = str(error).split(". ")[0][:200]  # its first sentence
        source = f"the Hub could not be asked ({why}): prices from the bundled snapshot of {snapshot['as_of']}"
    found = []
    for item in listed:
        kit = item.accelerator
        memory = _gigabytes(kit.vram if kit else item.ram)
        per_hour = item.unit_cost_usd * {"minute": 60, "second": 3600}.get(item.unit_label, 1)
        vcpus = int(re.match(r"\s*(\d*)", str(item.cpu or "")).group(1) or 1)
        found.append(Flavor(item.name, memory, kit is not None, round(per_hour, 4), _flavor_label(item),
                            flavor_peak(kit.model if kit else None, vcpus)))
    return found, source


def _gigabytes(text: str) -> int:
    number = re.match(r"\s*([\d.]+)\s*(GB|GiB|TB)?", str(text or ""))
    if not number:
        return 0
    scale = 1024 if (number.group(2) or "GB") == "TB" else 1
    return int(float(number.group(1)) * scale * 1024**3)


def _flavor_label(item) -> str:
    kit = item.accelerator
    what = f"{kit.quantity}x {kit.model} {kit.vram}" if kit else f"{item.cpu}, {item.ram}"
    per_hour = item.unit_cost_usd * (60 if item.unit_label == "minute" else 1)
    unit = "hour" if item.unit_label in ("minute", "hour") else item.unit_label
    return f"{item.name}: {what}, ${per_hour:.2f}/{unit}"


# ---------------------------------------------------------------- what travels


def source_tarball() -> bytes:
    """This studio's source as it is on disk (uncommitted changes too): the exact code that runs here."""
    buffer = io.BytesIO()
    skip = ("__pycache__", ".egg-info", ".pyc", ".partial")
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for part in SOURCE_PARTS:
            path = PROJECT_ROOT / part
            if path.exists():
                archive.add(path, arcname=part, filter=lambda info: None if info.name.endswith(skip) or "/__pycache__" in info.name
                            else info)
    return buffer.getvalue()


def source_version() -> dict:
    """The git commit of the source sent, and whether the tree differed from it; empty outside a checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=20,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", *SOURCE_PARTS))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": dirty}


def job_files(recipe: Recipe) -> tuple[dict, list[tuple[str, Path]], str]:
    """What the job's repo holds besides the source: (recipe as the job reads it, local files by
    their path in the repo, how the model travels: 'folder', 'hub' or 'embedded')."""
    import copy

    job = copy.deepcopy(recipe)
    files: list[tuple[str, Path]] = []
    data = Path(recipe.dataset_path())  # checked readable first (core.train.preflight), as for a local run
    job.data.path = f"data/{data.name}"
    files += _files_under(data, job.data.path)
    model = Path(recipe.model.name).expanduser()
    if is_embedded(recipe.model.name):
        job.model.name, sent = EMBEDDED_HUB_ID, "embedded"  # the job downloads the real model, not the bundled GGUF
    elif model.is_dir():
        job.model.name, sent = "model", "folder"
        files += _files_under(model, "model")
    elif HUB_ID.match(recipe.model.name):
        sent = "hub"
    else:
        raise RecipeError(f"model.name: {recipe.model.name} is neither 'embedded', a model folder here nor a Hub id")
    return job.to_dict(), files, sent


def _files_under(path: Path, in_repo: str) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(in_repo, path)]
    return [(f"{in_repo}/{item.relative_to(path).as_posix()}", item) for item in sorted(path.rglob("*"))
            if item.is_file() and ".cache" not in item.relative_to(path).parts]


# ---------------------------------------------------------------- submitting


def submit(recipe: Recipe, flavor: str, token: str | None = None, *, endpoint: str | None = None, image: str | None = None,
           timeout: str = DEFAULT_TIMEOUT) -> Path:
    """Send the recipe to Hugging Face Jobs on `flavor`; returns the run folder, whose follower
    is already running. Raises JobsError (no token, Hub unreachable, unknown flavor, refused)
    before any run folder exists when the Hub can't take the job."""
    if demo_mode():
        raise DemoRefusal("Hugging Face Jobs are off in this demo studio; run the studio yourself to train on the Hub")
    secret, where = resolve_token(token), hub_endpoint(endpoint)
    if not secret:
        raise JobsError("No Hugging Face token: paste one in the token field or set HF_TOKEN (a token with write access).")
    flavor, timeout = _checked_flavor(flavor), _checked_timeout(timeout)

    check_dataset_readable(recipe)
    job_recipe, files, model_sent = job_files(recipe)
    api = hub_api(secret, where)
    namespace = hub_call("Checking the token", lambda: api.whoami(), secret, where)["name"]
    offered = {item.name: item for item in hub_call("Listing the Jobs hardware", lambda: api.list_jobs_hardware(), secret, where)}
    if flavor not in offered:
        raise JobsError(f"'{flavor}' is not a Jobs flavor the Hub offers; choose one of: {', '.join(offered)}")
    if recipe.training.tuning == "qlora" and offered[flavor].accelerator is None:
        raise RecipeError(f"training.tuning: QLoRA needs a GPU, and {flavor} has none; pick a GPU flavor (e.g. a10g-small)")
    run = runs.create_run(recipe)
    record = {"flavor": flavor, "image": image or os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE, "endpoint": where,
              "namespace": namespace, "repo_id": f"{namespace}/{_repo_name(run.name)}", "repo_type": REPO_TYPE,
              "timeout": timeout, "model_sent": model_sent, "source": source_version(), "job_id": None, "url": None}
    update_status(run, hf_job=record, started_at=now_iso())
    try:
        _upload(api, record, job_recipe, files, run.name, secret)
        job = hub_call("Starting the job", lambda: _run_job(api, record, secret), secret, where)
        record.update(job_id=job.id, url=job.url)
        update_status(run, hf_job=record)
        _spawn_follower(run, secret)
    except BaseException as error:  # whatever stopped it, the run folder says so rather than waiting forever
        told = str(error) if isinstance(error, StudioError) else f"Could not submit the job: {type(error).__name__}: {error}"
        update_status(run, state="failed", ended_at=now_iso(), error=scrub(told, secret))
        raise
    return run


def _checked_flavor(flavor: str) -> str:
    flavor = str(flavor or "").strip()
    if not FLAVOR.fullmatch(flavor):
        raise BadInput(f"flavor {flavor!r}: pick a Jobs hardware flavor such as cpu-basic or a10g-small "
                       "(`studio train --on hf-jobs --list-flavors` lists them)")
    return flavor


def _checked_timeout(timeout: str) -> str:
    timeout = str(timeout or "").strip()
    if not re.fullmatch(r"\d+(\.\d+)?[smhd]?", timeout):
        raise BadInput(f"timeout {timeout!r}: a duration such as 90m, 4h or 3600 (seconds)")
    return timeout


def timeout_seconds(timeout: str) -> float:
    """A job's time limit in seconds ("90m", "4h", "3600"); BadInput when it isn't a duration."""
    text = _checked_timeout(timeout)
    unit = text[-1] if text[-1] in "smhd" else "s"
    return float(text.rstrip("smhd")) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def _upload(api, record: dict, job_recipe: dict, files: list[tuple[str, Path]], run_id: str, secret: str) -> None:
    import yaml
    from huggingface_hub import CommitOperationAdd

    where, repo = record["endpoint"], record["repo_id"]
    hub_call(f"Creating the private repo {repo}", lambda: api.create_repo(repo, repo_type=REPO_TYPE, private=True, exist_ok=True),
             secret, where)
    manifest = {"run_id": run_id, "studio": record["source"], "model_folder": "model" if record["model_sent"] == "folder" else None}
    operations = [
        CommitOperationAdd("recipe.yaml", yaml.safe_dump(job_recipe, sort_keys=False, allow_unicode=True).encode()),
        CommitOperationAdd(MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode()),
        CommitOperationAdd(SOURCE_FILE, source_tarball()),
        *[CommitOperationAdd(in_repo, str(path)) for in_repo, path in files],
    ]
    hub_call(f"Uploading the dataset, recipe and studio source to {repo}",
             lambda: api.create_commit(repo, operations, commit_message=f"Tuning Studio job inputs for {run_id}",
                                       repo_type=REPO_TYPE), secret, where)


def _run_job(api, record: dict, secret: str):
    env = {REPO_ENV: record["repo_id"], "PYTHONUNBUFFERED": "1"}
    if record["endpoint"] != DEFAULT_HUB:
        env["HF_ENDPOINT"] = record["endpoint"]  # a private Hub: the job talks to the same one
    return api.run_job(image=record["image"], command=job_command(), env=env, secrets={"HF_TOKEN": secret},
                       flavor=record["flavor"], timeout=record["timeout"], namespace=record["namespace"],
                       labels={"tuning-studio-run": _label(record["repo_id"].split("/")[-1])})


def _repo_name(run_id: str) -> str:
    """The job's repo, named after the run within the Hub's rules (96 characters, no `--` or `..`, no `-` or `.` at the ends)."""
    return re.sub(r"[-.]{2,}", "-", f"studio-job-{run_id}")[:96].rstrip("-.")


def _label(text: str) -> str:
    """A label value the Hub takes (Kubernetes' rule: 63 characters, letters, digits, `-_.`, alphanumeric ends)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.") or "run"


def _spawn_follower(run: Path, secret: str) -> int:
    """The follower runs in its own session (a closed browser or a restarted UI leaves it going);
    the token reaches it only through its environment."""
    return runs.spawn([sys.executable, "-m", "core.train.hf_job_follow", str(run)], run,
                      extra_env={"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_TOKEN": secret})


def job_record(run: Path) -> dict | None:
    """The Hugging Face job behind a run (flavor, repo, job id, endpoint), or None for a local run."""
    return runs.read_status(run).get("hf_job") or None
