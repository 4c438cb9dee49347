"""The judge reward: a model grades each answer against a rubric with a score from 1 to 10.

The judge is a local model (loaded once through core.models, answering greedily) or a model
served by Ollama (`ollama:NAME`, through the official client). Its reply's first whole number
from 1 to 10 becomes (n - 1) / 9; a reply without one scores None (left out of the total).
This module knows nothing about trainers; it is slow by nature (one judge call per completion).
"""

from __future__ import annotations

import re

from core.chat_template import render
from core.clients import ollama_client, ollama_host
from core.models import load_model, load_tokenizer
from core.recipes import RecipeError

JUDGE_PROMPT = ("You grade answers. Rubric: {rubric}\n\nQuestion:\n{prompt}\n\nAnswer:\n{answer}\n\n"
                "Reply with one whole number from 1 (worst) to 10 (best) and nothing else.")
_SCORE = re.compile(r"\b(10|[1-9])\b")


def parse_grade(reply: str) -> float | None:
    """The first 1..10 in the judge's reply, mapped to 0..1."""
    found = _SCORE.search(reply or "")
    return (int(found.group(1)) - 1) / 9 if found else None


class Judge:
    def __init__(self, model: str, *, rubric: str, host: str | None = None):
        self.model, self.rubric = model, rubric
        self.host = ollama_host(host)
        self._local = None

    def score(self, prompt: str, answer: str) -> float | None:
        return parse_grade(self.ask(JUDGE_PROMPT.format(rubric=self.rubric, prompt=prompt, answer=answer)))

    def ask(self, text: str) -> str:
        if self.model.startswith("ollama:"):
            return self._ask_ollama(text)
        return self._ask_local(text)

    def _ask_ollama(self, text: str) -> str:
        import ollama

        name = self.model.split(":", 1)[1]
        try:
            reply = ollama_client(self.host, use="reward").chat(model=name, messages=[{"role": "user", "content": text}],
                                                       options={"temperature": 0, "num_predict": 8})
        except (ollama.ResponseError, ConnectionError, OSError) as error:
            raise RecipeError(f"grpo.rewards.judge: Ollama at {self.host} could not answer with {name!r} ({error}); "
                              "start Ollama and pull the model, or use a local judge model") from None
        return reply.message.content or ""

    def _ask_local(self, text: str) -> str:
        import torch

        if self._local is None:
            self._local = (load_tokenizer(self.model), load_model(self.model))
        tokenizer, model = self._local
        inputs = render(tokenizer, [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True,
                        return_tensors="pt", return_dict=True).to(model.device)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
