"""Speed of making datasets, measured side by side in one run.

  qa overhead   `run_qa` (plan, prompts, the official ollama client, JSON parsing, validation, the
                append-only file and the manifest after every pair) against a stand-in Ollama server
                that answers at once, next to a bare loop of the same client calls with nothing else.
                The ratio is the studio's own cost per pair; a real model answers in ~2 s per pair
                (33 pairs/min in the reference run), so the overhead is what's left over.
  modes build   `build_modes` over N generated raw records (default 100,000): curate, format, the
                embedded model's chat template (verified fast path), final file and the full check,
                next to a bare pass that only reads and writes the records as JSON.
Target: the mode build on 100,000 records under 30 s on 2 cores.

Run: python bench/make_speed.py [--pairs 300] [--records 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = ("model data river table light signal answer window garden number reason market station letter engine theory "
         "pattern system context memory value weather paper bridge doctor").split()


def bench_qa(pairs: int, work: Path) -> dict:
    import ollama

    from core.dataset.make_backends import PAIR_SCHEMA, OllamaBackend
    from core.dataset.make_qa import QASettings
    from core.dataset.make_run import run_qa
    from tests.helpers.ollama_standin import StandIn

    docs = ROOT / "assets" / "make" / "docs"
    with StandIn() as server:
        client = ollama.Client(host=server.host)
        messages = [{"role": "user", "content": "Context:\n[1] T\nOne two three four five.\n\nWrite one"}]
        started = time.perf_counter()
        for _ in range(pairs):
            json.loads(client.chat("m", messages=messages, format=PAIR_SCHEMA).message.content)
        bare = time.perf_counter() - started
        started = time.perf_counter()
        manifest = run_qa(docs, work / "qa.jsonl", QASettings(count=pairs), OllamaBackend("m", host=server.host),
                          restart=True)
        studio = time.perf_counter() - started
    assert manifest["kept"] == pairs, manifest
    return {"pairs": pairs, "bare_client_pairs_per_min": round(pairs / bare * 60, 1),
            "studio_pairs_per_min": round(pairs / studio * 60, 1), "studio_over_bare": round(studio / bare, 2),
            "studio_ms_per_pair": round(studio / pairs * 1000, 2),
            "overhead_ms_per_pair": round((studio - bare) / pairs * 1000, 2),
            "share_of_a_2s_model_reply": round((studio - bare) / pairs / 2.0, 4)}


def generate_records(path: Path, count: int, seed: int = 0) -> None:
    """Records in every documented shape, each type, some filler phrases."""
    rng = random.Random(seed)

    def words(n: int) -> str:
        return " ".join(rng.choices(WORDS, k=n))

    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            kind = i % 4
            if kind == 0:
                record = {"type": "reflection", "text": f"Basically {words(12)}. {words(10)}. {words(8)}."}
            elif kind == 1:
                record = {"type": "inner_dialogue", "input": words(14), "output": f"To be honest, {words(12)}"}
            elif kind == 2:
                record = {"type": "conversation", "user": words(10), "assistant": words(18)}
            else:
                record = {"type": "action", "messages": [{"role": "user", "content": words(9)},
                                                         {"role": "assistant", "content": "run " + words(4)}]}
            handle.write(json.dumps({"id": f"r{i}", **record}) + "\n")


def bench_modes(records: int, work: Path) -> dict:
    from core.dataset import tokens
    from core.dataset.make_modes import build_modes
    from core.dataset.make_schema import ChatTemplateSchema

    source = work / "records.jsonl"
    generate_records(source, records)
    started = time.perf_counter()
    with source.open(encoding="utf-8") as reader, (work / "copy.jsonl").open("w", encoding="utf-8") as writer:
        for line in reader:
            writer.write(json.dumps(json.loads(line)) + "\n")
    bare = time.perf_counter() - started
    tokenizer = tokens.tokenizer_for("embedded")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, cpu = time.perf_counter(), time.process_time()
    summary = build_modes(source, work / "modes", schema=ChatTemplateSchema(tokenizer, "embedded"))
    build, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the check's worker processes, once reaped
    workers_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    assert summary["ok"] and summary["stages"]["final"]["rows_out"] == records, summary["check"]["counts"]
    return {"records": records, "build_s": round(build, 2), "build_cpu_s_this_process": round(cpu, 2),
            "check_workers_cpu_s": round(workers_cpu, 2), "bare_read_write_s": round(bare, 2),
            "build_over_bare": round(build / bare, 2), "target_s": 30, "under_target": build < 30,
            "stage_seconds": summary["seconds"], "schema": summary["schema"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("STUDIO_HOME", str(ROOT / ".studio" / "home"))
        result = {"load_avg": os.getloadavg(), "cpus": os.cpu_count(),
                  "qa": bench_qa(args.pairs, Path(folder)), "modes": bench_modes(args.records, Path(folder))}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    qa, modes = result["qa"], result["modes"]
    print(f"load average {result['load_avg']}, {result['cpus']} CPUs")
    print(f"qa: {qa['studio_pairs_per_min']} pairs/min through the studio vs {qa['bare_client_pairs_per_min']} with the "
          f"bare client ({qa['studio_over_bare']}x; {qa['overhead_ms_per_pair']} ms of studio work a pair, "
          f"{qa['share_of_a_2s_model_reply']:.2%} of a 2 s model reply)")
    print(f"modes: {modes['records']:,} records built in {modes['build_s']} s (target 30 s: "
          f"{'met' if modes['under_target'] else 'MISSED'}); a bare JSON read+write takes {modes['bare_read_write_s']} s "
          f"({modes['build_over_bare']}x); CPU: {modes['build_cpu_s_this_process']} s here + "
          f"{modes['check_workers_cpu_s']} s in the check's workers; stages {modes['stage_seconds']}")


if __name__ == "__main__":
    main()
