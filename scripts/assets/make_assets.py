"""Write the bundled sample datasets in assets/ from the authored text in scripts/assets/assets_*.py.

Run: python scripts/assets/make_assets.py   (deterministic; rewrites the five .jsonl files)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assets_dpo import PAIRS  # noqa: E402
from assets_friction import FRICTION  # noqa: E402
from assets_modes import SAMPLES, TAGS  # noqa: E402
from assets_rag import PASSAGES, REFUSALS, SYSTEM  # noqa: E402

ASSETS = Path(__file__).resolve().parents[2] / "assets"
MODE_SYSTEM = {
    "dual": "Dual mode: reason privately inside <thought>, then state what is true of the world inside <world>.",
    "emulation": "Emulation mode: write the exchange as <user> and <assistant> turns.",
    "agent": "Agent mode: restate the task inside <instruction>, then give the exact command inside <action>.",
}


def write(name: str, rows: list[dict]) -> None:
    with open(ASSETS / name, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} rows")


def friction() -> list[dict]:
    rows = []
    for i, (question, responses, answer) in enumerate(FRICTION, start=1):
        words = len(answer.split())
        assert 25 <= words <= 60, (question, words)
        assert 2 <= len(responses) <= 4
        rows.append({"id": f"friction-{i:03d}", "question": question, "agent_responses": responses, "final_answer": answer})
    return rows


def rag() -> list[dict]:
    rows = []
    for i, (title, passage, q_in, answer, q_out, covers) in enumerate(PASSAGES):
        for j, (question, reply) in enumerate(((q_in, answer), (q_out, REFUSALS[i % len(REFUSALS)].format(covers=covers)))):
            user = f"Context ({title}):\n{passage}\n\nQuestion: {question}"
            rows.append({"id": f"rag-{2 * i + j + 1:03d}", "grounded": j == 0, "messages": [
                {"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                {"role": "assistant", "content": reply}]})
    # Interleave so the first page shows answers and refusals from different passages.
    return rows[0::2][:15] + rows[1::2][:15] + rows[0::2][15:] + rows[1::2][15:]


def dpo() -> list[dict]:
    return [{"id": f"dpo-{i:02d}", "category": category, "prompt": prompt, "chosen": chosen, "rejected": rejected}
            for i, (category, prompt, chosen, rejected) in enumerate(PAIRS, start=1)]


def modes() -> list[dict]:
    rows = []
    for k in range(30):
        for mode, samples in SAMPLES.items():
            prompt, first, second = samples[k]
            a, b = TAGS[mode]
            reply = f"<{a}>{first}</{a}>\n<{b}>{second}</{b}>"
            rows.append({"id": f"modes-{len(rows) + 1:03d}", "mode": mode, "messages": [
                {"role": "system", "content": MODE_SYSTEM[mode]}, {"role": "user", "content": prompt},
                {"role": "assistant", "content": reply}]})
    return rows


def contaminate(rows: list[dict]) -> list[dict]:
    """A few realistic mistakes: tags leaking between modes, a missing tag, an unclosed tag, a mislabel."""
    rows = json.loads(json.dumps(rows))

    def reply(index: int) -> dict:
        return rows[index]["messages"][-1]

    reply(3)["content"] += "\n<action>weather.lookup(topic=\"pressure\")</action>"  # dual row 2 gains an agent tag
    text = reply(7)["content"]  # emulation: <assistant> written as <world>
    reply(7)["content"] = text.replace("<assistant>", "<world>").replace("</assistant>", "</world>")
    reply(11)["content"] = reply(11)["content"].replace("</action>", "")  # agent: unclosed <action>
    reply(24)["content"] = reply(24)["content"].replace("<thought>", "<thought><user>Is that right?</user> ")  # dual gains <user>
    rows[31]["mode"] = "agent"  # an emulation sample labelled agent
    return rows


if __name__ == "__main__":
    write("friction_sample.jsonl", friction())
    write("rag_grounding.jsonl", rag())
    write("epistemic_dpo.jsonl", dpo())
    clean = modes()
    write("cognitive_modes.jsonl", clean)
    write("cognitive_modes_contaminated.jsonl", contaminate(clean))
