"""Formats: recognise what kind of fine-tuning row a dict is, and turn it into an `Example`.

Recognised without configuration: OpenAI `messages`, ShareGPT `conversations`, Alpaca,
prompt/completion, preference pairs (plain, conversational, ShareGPT-style), replies labelled
good or bad (KTO: LLaMA-Factory's `label` / `kto_tag`, trl's prompt/completion/label), friction
records and mode-tagged samples. `detect` gives a verdict *and* the evidence (which keys), so a person
can see why and override it. `normalize` raises `RowError` with a reason a person can act on.
This module knows nothing about files, line numbers on disk, tokenizers or review state.
"""

from __future__ import annotations

import threading
from collections import Counter

from core.dataset import parts
from core.dataset.example import Example
from core.errors import StudioError

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion", "preference", "labelled", "friction", "modes")
# The keys that mark a reply good (true) or bad (false): trl's and LLaMA-Factory's `label`, and
# the `kto_tag` LLaMA-Factory's dataset_info.json maps it from.
LABEL_KEYS = ("label", "kto_tag")
_CHAT_KEYS = ("messages", "conversations")
DEFAULT_FRICTION_TEMPLATE = "<think>{thought_stream}</think>{final_answer}"

# ShareGPT speaker names seen in the wild, mapped to chat roles.
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "bot": "assistant", "chatgpt": "assistant", "system": "system", "tool": "tool", "function": "tool",
    "function_call": "assistant", "observation": "tool", "function_response": "tool",
}


# Formats whose row shape can carry an edited conversation back (see with_edits).
EDITABLE_IN_PLACE = ("messages", "sharegpt", "preference", "labelled", "modes")
_ROLE_SET = frozenset(("system", "user", "assistant", "tool"))
# Message-level reasoning, as OpenAI-compatible servers (reasoning_content) and templates (thinking) name it.
_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")
# Parts left out of the row being normalized (images, audio), per thread: normalize() hands them to
# the Example. A thread-local attribute costs less per row than a ContextVar set and reset.
_PENDING = threading.local()


class RowError(StudioError, ValueError):
    """A row that can't become an Example; the message names the field and the fix."""


def detect_row(row: dict) -> tuple[str, str] | None:
    """(format, evidence) for one row, or None when no known format fits."""
    keys = row.keys()
    if "chosen_messages" in keys and "rejected_messages" in keys:
        return "preference", "keys chosen_messages/rejected_messages (LLaMA-Factory pairs)"
    if "chosen" in keys and "rejected" in keys:
        base = "conversations" if "conversations" in keys else "messages" if "messages" in keys else "prompt"
        return "preference", f"keys {base}/chosen/rejected"
    labelled = _labelled(row)
    if labelled:
        return "labelled", labelled
    if "mode" in keys and ({"messages", "conversations", "text", "completion", "output", "response"} & keys):
        shapes = {"messages", "conversations", "text", "completion", "output", "response"}
        return "modes", "a `mode` field next to " + ", ".join(sorted(shapes & keys))
    if "question" in keys and "agent_responses" in keys and "final_answer" in keys:
        return "friction", "keys question/agent_responses/final_answer"
    if "messages" in keys:
        return "messages", "key messages (role/content turns)"
    if "conversations" in keys:
        return "sharegpt", "key conversations (from/value turns)"
    if "instruction" in keys and "output" in keys:
        return "alpaca", "keys instruction/input/output"
    if "prompt" in keys and ("completion" in keys or "response" in keys):
        return "prompt_completion", "keys prompt/completion"
    if isinstance(row.get("prompt"), (str, list)):  # a prompt with reference fields, as GRPO reads it
        return "prompt_completion", "key prompt (no completion)"
    return None


def _labelled(row: dict) -> str | None:
    """The evidence that `row` is a reply labelled good or bad, or None: a true/false `label` (or
    any `kto_tag`) next to a chat or a prompt/completion."""
    key = next((k for k in LABEL_KEYS if k in row and (k == "kto_tag" or isinstance(row[k], bool))), None)
    if key is None:
        return None
    chat = next((k for k in _CHAT_KEYS if k in row), None)
    if chat:
        return f"a true/false `{key}` next to {chat} (LLaMA-Factory's KTO data)"
    if "prompt" in row and "completion" in row:
        return f"keys prompt/completion/{key} (trl's unpaired preference data)"
    return None


def row_label(row: dict) -> bool | None:
    """A row's own good (True) / bad (False) label, or None; RowError when it is not true or false."""
    key = next((k for k in LABEL_KEYS if k in row), None)
    if key is None or (key == "label" and not isinstance(row[key], bool)):
        return None  # a `label` that isn't true/false (a class number, a name) is some other dataset's field
    value = row[key]
    if not isinstance(value, bool):
        raise RowError(f"{key}: expected true (a good reply) or false (a bad one), got {value!r}")
    return value


def detect(rows: list[dict]) -> tuple[str, str]:
    """The format most sampled rows agree on, with the evidence; RowError when none fits."""
    votes: Counter = Counter()
    evidence: dict[str, str] = {}
    for row in rows:
        found = detect_row(row)
        if found:
            votes[found[0]] += 1
            evidence.setdefault(found[0], found[1])
    if not votes:
        keys = sorted({k for row in rows[:20] for k in row})[:12]
        raise RowError(
            f"no known format: the rows have keys {', '.join(keys) or '(none)'}. Expected one of: messages, "
            "conversations (ShareGPT), instruction/output (Alpaca), prompt/completion, prompt/chosen/rejected, "
            "messages or prompt/completion with a true/false label (KTO), "
            "question/agent_responses/final_answer (friction), or a mode field. Pick the format by hand if the keys differ."
        )
    best, count = votes.most_common(1)[0]
    others = ", ".join(f"{n} {f}" for f, n in votes.most_common()[1:])
    tail = f"; other rows look like: {others}" if others else ""
    return best, f"{count} of {len(rows)} sampled rows have {evidence[best]}{tail}"


# ---------------------------------------------------------------- turns


def _text(value, where: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        content = _content(value, where)
        if content.tool_calls:
            raise RowError(f"{where}: tool calls belong in a chat turn, not here")
        return content.as_text()
    raise RowError(f"{where}: expected text, got {type(value).__name__} ({str(value)[:40]!r})")


def _content(value: list, where: str) -> parts.Content:
    """A list of content parts; the parts left out are noted for the row, and a turn left with
    nothing to train on is an error, not an empty turn."""
    try:
        content = parts.read(value, where)
    except parts.PartError as error:
        raise RowError(str(error)) from None
    if content.left_out:
        if getattr(_PENDING, "left_out", None) is None:
            _PENDING.left_out = []
        _PENDING.left_out.extend(content.left_out)
    if not (content.text.strip() or content.reasoning.strip() or content.tool_calls):
        kinds = f" (left out: {', '.join(content.left_out)})" if content.left_out else ""
        raise RowError(f"{where}: the content parts hold no text{kinds}; the studio trains on text only")
    return content


def _turn_content(turn: dict, key: str, where: str) -> dict:
    """A turn's content (a string or parts) and tool calls, with message-level reasoning in a <think> block."""
    value = turn.get(key)
    message = {}
    if isinstance(value, list):
        content = _content(value, where)
        message["content"] = content.as_text()
        if content.tool_calls:
            message["tool_calls"] = content.tool_calls
    else:
        message["content"] = _text(value, where)
    reasoning = next((turn[k] for k in _REASONING_KEYS if isinstance(turn.get(k), str) and turn[k].strip()), None)
    if reasoning and "<think>" not in message["content"]:
        message["content"] = parts.THINK.format(reasoning=reasoning, text=message["content"])
    return message


def _messages(turns, where: str) -> list[dict]:
    if not isinstance(turns, list):
        raise RowError(f"{where}: expected a list of turns, got {type(turns).__name__}")
    out = []
    for i, turn in enumerate(turns):
        # Fast path for the common shape; everything else goes through the checks below.
        if type(turn) is dict and len(turn) == 2 and turn.get("role") in _ROLE_SET and type(turn.get("content")) is str:
            out.append({"role": turn["role"], "content": turn["content"]})
            continue
        if not isinstance(turn, dict):
            raise RowError(f"{where}[{i}]: expected an object with role and content, got {type(turn).__name__}")
        if "from" in turn or "value" in turn:
            speaker = str(turn.get("from", "")).lower()
            role = SHAREGPT_ROLES.get(speaker)
            if role is None:
                raise RowError(f"{where}[{i}].from: unknown speaker {turn.get('from')!r}; use human, gpt, system or tool")
            out.append({"role": role, **_turn_content(turn, "value", f"{where}[{i}].value")})
            continue
        role = turn.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise RowError(f"{where}[{i}].role: expected system, user, assistant or tool, got {role!r}")
        message = {"role": role, **_turn_content(turn, "content", f"{where}[{i}].content")}
        for extra in ("tool_calls", "name", "tool_call_id"):
            if turn.get(extra) is not None:
                message[extra] = turn[extra]
        out.append(message)
    return out


def _with_system(messages: list[dict], system_prompt: str | None) -> list[dict]:
    if system_prompt and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system_prompt}] + messages
    return messages


def _reply(value, where: str) -> str:
    """A preference side: a string, one assistant message, or a list ending in one."""
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list):
        turns = _messages(value, where)
        if not turns or turns[-1]["role"] != "assistant":
            raise RowError(f"{where}: expected an assistant reply")
        return turns[-1]["content"]
    return _text(value, where)


# ---------------------------------------------------------------- normalizers


def _from_messages(row, key):
    return _messages(row[key], key)


def _from_alpaca(row):
    prompt = _text(row.get("instruction"), "instruction")
    extra = _text(row.get("input"), "input")
    if extra.strip():
        prompt = f"{prompt}\n\n{extra}"
    messages = [{"role": "system", "content": _text(row["system"], "system")}] if row.get("system") else []
    for i, pair in enumerate(row.get("history") or []):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise RowError(f"history[{i}]: expected [user, assistant] pairs")
        messages += [{"role": "user", "content": _text(pair[0], f"history[{i}][0]")},
                     {"role": "assistant", "content": _text(pair[1], f"history[{i}][1]")}]
    return messages + [{"role": "user", "content": prompt},
                       {"role": "assistant", "content": _text(row.get("output"), "output")}]


def _from_prompt_completion(row):
    completion = row.get("completion", row.get("response"))
    prompt = row.get("prompt")
    head = _messages(prompt, "prompt") if isinstance(prompt, list) else [{"role": "user", "content": _text(prompt, "prompt")}]
    if "completion" not in row and "response" not in row:
        return head  # prompt only: GRPO samples the reply; SFT skips it (nothing to train on)
    if isinstance(completion, list):
        return head + _messages(completion, "completion")
    return head + [{"role": "assistant", "content": _text(completion, "completion")}]


def _from_friction(row, template):
    responses = row.get("agent_responses")
    if not isinstance(responses, list) or not responses:
        raise RowError("agent_responses: expected a non-empty list of agent replies")
    parts = []
    for i, item in enumerate(responses):
        if isinstance(item, dict):
            who = item.get("agent") or item.get("name") or item.get("role")
            said = _text(item.get("response", item.get("content", item.get("text"))), f"agent_responses[{i}]")
            parts.append(f"{who}: {said}" if who else said)
        else:
            parts.append(_text(item, f"agent_responses[{i}]"))
    values = {"thought_stream": "\n\n".join(p.strip() for p in parts), "question": _text(row.get("question"), "question"),
              "final_answer": _text(row.get("final_answer"), "final_answer").strip()}
    return [{"role": "user", "content": values["question"]},
            {"role": "assistant", "content": template.format_map(values)}]


def _from_message_pairs(row):
    """LLaMA-Factory's pairs: two whole conversations that share every turn but the last reply."""
    chosen = _messages(row["chosen_messages"], "chosen_messages")
    rejected = _messages(row["rejected_messages"], "rejected_messages")
    for name, side in (("chosen_messages", chosen), ("rejected_messages", rejected)):
        if not side or side[-1]["role"] != "assistant":
            raise RowError(f"{name}: expected a conversation ending in an assistant reply")
    if chosen[:-1] != rejected[:-1]:
        turn = next((i for i, (a, b) in enumerate(zip(chosen, rejected)) if a != b), min(len(chosen), len(rejected)) - 1)
        raise RowError(f"chosen_messages and rejected_messages differ at turn {turn + 1}, before their last reply; "
                       "a pair shares its prompt and differs only in the final assistant turn")
    prompt = chosen[:-1]
    if prompt and prompt[-1]["role"] == "assistant":
        raise RowError("chosen_messages: the turn before the reply is an assistant turn; the replies must follow a user turn")
    return prompt, chosen[-1]["content"], rejected[-1]["content"]


def _from_preference(row):
    if "chosen_messages" in row and "rejected_messages" in row:
        return _from_message_pairs(row)
    if "conversations" in row:
        prompt = _messages(row["conversations"], "conversations")
    elif "messages" in row:
        prompt = _messages(row["messages"], "messages")
    elif isinstance(row.get("prompt"), list):
        prompt = _messages(row["prompt"], "prompt")
    else:
        prompt = [{"role": "user", "content": _text(row.get("prompt"), "prompt")}]
    if prompt and prompt[-1]["role"] == "assistant":
        raise RowError("prompt: ends with an assistant turn; the chosen/rejected replies must follow a user turn")
    return prompt, _reply(row["chosen"], "chosen"), _reply(row["rejected"], "rejected")


def _from_modes(row):
    for key in ("messages", "conversations"):
        if key in row:
            return _messages(row[key], key)
    if "prompt" in row or "instruction" in row:
        inner = {k: v for k, v in row.items() if k != "mode"}
        found = detect_row(inner)
        if found and found[0] in ("alpaca", "prompt_completion"):
            return _from_alpaca(inner) if found[0] == "alpaca" else _from_prompt_completion(inner)
    text = row.get("text", row.get("completion", row.get("output", row.get("response"))))
    return [{"role": "assistant", "content": _text(text, "text")}]


def with_edits(row: dict, edited: Example, fmt: str) -> dict | None:
    """`row` in its own shape holding `edited`'s conversation (or chosen/rejected replies), or None
    when this format's rows can't carry an edit (alpaca, prompt/completion, friction)."""
    if fmt not in EDITABLE_IN_PLACE:
        return None
    if edited.is_preference:
        as_turns = isinstance(row.get("chosen"), (list, dict))  # trl's conversational pairs keep their shape
        return {**row, **{side: [{"role": "assistant", "content": text}] if as_turns else text
                          for side, text in (("chosen", edited.chosen), ("rejected", edited.rejected))}}
    row = dict(row)
    if edited.label is not None:
        row[next((k for k in LABEL_KEYS if k in row), "label")] = edited.label
    if "conversations" in row:
        speaker = {"user": "human", "assistant": "gpt", "system": "system", "tool": "tool"}
        row["conversations"] = [{"from": speaker[m["role"]], "value": m["content"]} for m in edited.messages]
    elif "messages" in row:
        row["messages"] = edited.messages
    else:
        return None
    return row


def check_template(template: str) -> str:
    """Fail early, naming the placeholders, when a friction template can't be filled."""
    try:
        template.format_map({"thought_stream": "", "final_answer": "", "question": ""})
    except (KeyError, IndexError, ValueError) as error:
        raise RowError(
            f"format_template {template!r} can't be filled ({error}); use the placeholders "
            "{thought_stream}, {final_answer} and {question}, and double braces {{ }} for literal braces"
        ) from None
    return template


def normalize(row: dict, fmt: str, *, example_id: str, line: int | None = None, row_number: int | None = None,
              format_template: str | None = None, system_prompt: str | None = None) -> Example:
    """One row as an Example; RowError (with the field) when the row does not fit `fmt`."""
    if not isinstance(row, dict):
        raise RowError(f"expected a JSON object, got {type(row).__name__}")
    own = detect_row(row)
    if own is None or (own[0] != fmt and not _compatible(own[0], fmt)):
        seen = f"looks like {own[0]} ({own[1]})" if own else f"has keys {', '.join(sorted(map(str, row))[:8]) or '(none)'}"
        raise RowError(f"row {seen}, not {fmt}; fix the row or split mixed files")
    _PENDING.left_out = None
    chosen = rejected = None
    if fmt == "preference":
        messages, chosen, rejected = _from_preference(row)
    elif fmt == "friction":
        messages = _from_friction(row, format_template or DEFAULT_FRICTION_TEMPLATE)
    elif fmt == "alpaca":
        messages = _from_alpaca(row)
    elif fmt == "prompt_completion" or (fmt == "labelled" and not any(k in row for k in _CHAT_KEYS)):
        messages = _from_prompt_completion(row)
    elif fmt == "modes":
        messages = _from_modes(row)
    else:
        key = "messages" if "messages" in row else "conversations" if "conversations" in row else None
        if key is None:
            raise RowError(f"row has no messages or conversations list, so it can't be read as {fmt}")
        messages = _from_messages(row, key)
    label = row_label(row)
    if fmt == "labelled" and (not messages or messages[-1]["role"] != "assistant"):
        raise RowError("the labelled row's conversation must end in the assistant reply its label judges")
    mode = row.get("mode")
    category = row.get("category")
    return Example(
        id=str(row["id"]) if row.get("id") not in (None, "") else example_id,
        messages=_with_system(messages, system_prompt), mode=str(mode) if mode is not None else None,
        chosen=chosen, rejected=rejected, category=str(category) if category is not None else None,
        source=row, line=line, row=row_number, left_out=_PENDING.left_out or [], label=label,
    )


def _compatible(own: str, wanted: str) -> bool:
    """Rows a wanted format can still read: a mode-tagged chat read as plain messages, and so on."""
    if wanted in ("messages", "sharegpt"):
        return own in ("messages", "sharegpt", "modes", "labelled")
    if wanted == "modes":
        return own in ("messages", "sharegpt", "alpaca", "prompt_completion", "labelled")
    if wanted == "prompt_completion":
        return own == "labelled"
    return False
