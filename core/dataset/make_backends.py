"""Generation backends for making Q&A: a model that answers a chat with one JSON object.

`OllamaBackend` calls a server through the official `ollama` client with the JSON schema as
`format` (Ollama constrains decoding to it). A thinking model may spend its whole `num_predict`
budget reasoning and answer nothing, or write the JSON inside its `thinking` field; `parse_reply`
takes the JSON from the thinking text when the answer holds none, and names the budget when the
reply was cut off. `TransformersBackend` runs a local model (the embedded one by default) with
the reply started as `{"question": "` so even a small model begins a JSON object.
This module knows nothing about documents, the mix or validation rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from core import models
from core.chat_template import render
from core.clients import ollama_client, ollama_host
from core.errors import BadInput, StudioError

# The one JSON shape every generated pair has, grounded, synthesis or refusal alike.
PAIR_SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string"},
        "answer": {"type": "string"},
        "cited_titles": {"type": "array", "items": {"type": "string"}},
        "evidence_quotes": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["question", "answer", "cited_titles", "evidence_quotes"],
}


class BackendUnavailable(StudioError, RuntimeError):
    """The model can't be reached or loaded at all: retrying a row won't help; stop the run."""


class BadReply(BadInput):
    """One reply that holds no usable JSON object; the row is retried alone."""


@dataclass
class Reply:
    content: str
    thinking: str = ""
    done_reason: str | None = None
    tokens: int | None = None  # generated tokens when the backend reports them


def parse_reply(reply: Reply, num_predict: int | None = None) -> tuple[dict, str]:
    """(the JSON object, where it was found: 'content' or 'thinking'); BadReply otherwise."""
    found = first_json_object(reply.content)
    if found is not None:
        return found, "content"
    found = first_json_object(reply.thinking)
    if found is not None:
        return found, "thinking"
    if reply.done_reason == "length":
        spent = "in its thinking" if reply.thinking and not reply.content.strip() else "before closing the JSON"
        budget = f" ({num_predict} tokens)" if num_predict else ""
        raise BadReply(f"the model used its whole num_predict budget{budget} {spent}; raise num_predict or turn thinking off")
    if not reply.content.strip():
        raise BadReply("empty reply" + (" (the model only thought)" if reply.thinking.strip() else ""))
    raise BadReply(f"malformed JSON: {reply.content.strip()[:120]!r}")


def first_json_object(text: str) -> dict | None:
    """The last complete JSON object in `text` that parses (a thinking model drafts first and
    writes its final object last), or None.

    >>> first_json_object('thinking... {"a": 1} then {"a": 2}')
    {'a': 2}
    """
    if not text or "{" not in text:
        return None
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
            return value if isinstance(value, dict) else None
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    found, position = None, text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            found = value
        position = text.find("{", end)
    return found


class OllamaBackend:
    """An Ollama server through the official client, `/api/chat` (default) or `/api/generate`."""

    def __init__(self, model: str, *, host: str | None = None, temperature: float = 0.7, num_predict: int = 1024,
                 think: bool | None = None, timeout_s: float = 300.0, api: str = "chat"):

        if api not in ("chat", "generate"):
            raise ValueError(f"ollama api: 'chat' or 'generate', got {api!r}")
        self.model, self.host, self.api, self.think = model, host, api, think
        self.options = {"temperature": temperature, "num_predict": num_predict}
        self.num_predict = num_predict
        self.timeout_s = timeout_s
        self.thinking_turned_off = False
        self.client = ollama_client(host, use="make", timeout_s=timeout_s)

    def describe(self) -> dict:
        return {"backend": "ollama", "model": self.model, "host": ollama_host(self.host),
                "api": self.api, "think": self.think, "thinking_turned_off": self.thinking_turned_off, **self.options}

    def generate(self, messages: list[dict], schema: dict) -> Reply:
        import httpx
        import ollama

        try:
            if self.api == "chat":
                response = self.client.chat(self.model, messages=messages, format=schema, think=self.think,
                                            options=self.options)
                message = response.message
                reply = Reply(message.content or "", message.thinking or "", response.done_reason, response.eval_count)
            else:
                system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
                prompt = "\n\n".join(m["content"] for m in messages if m["role"] != "system")
                response = self.client.generate(self.model, prompt=prompt, system=system or None, format=schema,
                                                think=self.think, options=self.options)
                reply = Reply(response.response or "", response.thinking or "", response.done_reason, response.eval_count)
        except ConnectionError:
            raise BackendUnavailable(f"no Ollama server answers at {self._where()}; start it (`ollama serve`) "
                                     "or pass the right --host") from None
        except httpx.TimeoutException:
            raise BadReply(f"no reply within {self.timeout_s:g} s (timeout)") from None
        except ollama.ResponseError as error:
            if error.status_code == 404:
                raise BackendUnavailable(f"Ollama at {self._where()} has no model '{self.model}': "
                                         f"run `ollama pull {self.model}` ({error.error})") from None
            if error.status_code and error.status_code >= 500 or error.status_code == -1:
                raise BadReply(f"the server failed this request ({error.status_code}: {str(error.error)[:120]})") from None
            raise BackendUnavailable(f"Ollama refused the request ({error.status_code}: {error.error})") from None
        except (ValueError, json.JSONDecodeError) as error:  # a reply body that isn't JSON at all
            raise BadReply(f"the server sent an unreadable reply ({str(error)[:120]})") from None
        if self.think is None and reply.done_reason == "length" and reply.thinking and not reply.content.strip():
            # The reference run's pitfall: a thinking model spent the whole budget reasoning. Left to
            # the model's default, thinking is turned off for the rest of the run (the manifest says so).
            self.think, self.thinking_turned_off = False, True
        return reply

    def _where(self) -> str:
        return str(self.client._client.base_url)


class TransformersBackend:
    """A local causal LM through transformers; loaded once, on first use.

    Small models rarely finish a JSON object on their own, so the reply is written field by field:
    the JSON around the fields is fixed, and the model writes each string value until it closes
    the quote (a poor man's version of Ollama's schema-constrained decoding). One cited title and
    one evidence quote are asked for; the answer starts with "According to", which invites a citation.
    """

    FIELDS = (("question", '{"question": "', ""), ("answer", '", "answer": "', "According to "),
              ("cited_titles", '", "cited_titles": ["', ""), ("evidence_quotes", '"], "evidence_quotes": ["', ""))

    def __init__(self, model: str = "embedded", *, temperature: float = 0.7, num_predict: int = 256, seed: int = 0):
        self.model_name, self.temperature, self.num_predict, self.seed = model, temperature, num_predict, seed
        self._model = self._tokenizer = None

    def describe(self) -> dict:
        return {"backend": "transformers", "model": self.model_name, "temperature": self.temperature,
                "num_predict": self.num_predict}

    def _load(self):
        if self._model is None:
            try:
                self._tokenizer = models.load_tokenizer(self.model_name)
                self._model = models.load_model(self.model_name).eval()
            except models.ModelNotFound as error:
                raise BackendUnavailable(str(error)) from None
        return self._model, self._tokenizer

    def generate(self, messages: list[dict], schema: dict) -> Reply:
        import torch

        model, tokenizer = self._load()
        prompt = render(tokenizer, messages, add_generation_prompt=True)
        torch.manual_seed(self.seed)
        self.seed += 1  # a retry of the same row must not repeat the same sample
        written, spent, cut = "", 0, False
        budgets = {"question": 0.2, "answer": 0.45, "cited_titles": 0.1, "evidence_quotes": 0.25}
        for name, glue, start in self.FIELDS:
            written += glue + start
            budget = max(8, int(self.num_predict * budgets[name]))
            value, used, closed = self._string(model, tokenizer, prompt + written, budget)
            written += value
            spent += used
            cut = cut or not closed
        written += '"]}'
        return Reply(written, "", "length" if cut else "stop", spent)

    def _string(self, model, tokenizer, text: str, budget: int) -> tuple[str, int, bool]:
        """One JSON string value written by the model, up to its closing quote: (value, tokens, closed)."""
        import torch

        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
        sampling = {"do_sample": True, "temperature": self.temperature, "top_p": 0.95} if self.temperature > 0 else {"do_sample": False}
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=budget, pad_token_id=tokenizer.pad_token_id,
                                    stop_strings=['"'], tokenizer=tokenizer, **sampling)
        new = output[0, inputs["input_ids"].shape[1]:]
        raw = tokenizer.decode(new, skip_special_tokens=True)
        closed = '"' in raw
        value = raw.split('"', 1)[0].replace("\\", "").replace("\n", " ").strip()
        return json.dumps(value)[1:-1], len(new), closed


def backend_from_spec(spec: dict):
    """A backend from a plain dict (the CLI's options, the UI's form, a saved job), e.g.
    {"backend": "ollama", "model": "qwen3:4b", "host": None, "temperature": 0.7, "num_predict": 2048,
    "think": None, "timeout_s": 300, "api": "chat"}."""
    kind = spec.get("backend", "ollama")
    common = {"temperature": float(spec.get("temperature", 0.7))}
    if kind == "transformers":
        return TransformersBackend(spec.get("model") or "embedded", num_predict=int(spec.get("num_predict") or 256),
                                   seed=int(spec.get("seed", 0)), **common)
    if kind != "ollama":
        raise ValueError(f"backend: 'ollama' or 'transformers', got {kind!r}")
    return OllamaBackend(spec.get("model") or "qwen3:4b", host=spec.get("host") or None,
                         num_predict=int(spec.get("num_predict") or 2048), think=spec.get("think"),
                         timeout_s=float(spec.get("timeout_s") or 300), api=spec.get("api") or "chat", **common)
