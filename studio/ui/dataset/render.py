"""How the Dataset tab draws things: a record as a chat, the check summary as cards, the
review progress bar and the Plotly charts. Pure functions from core objects to HTML or
figures; no gradio and no state, so tests can read what a person would see."""

from __future__ import annotations

import html
import re

from core.dataset.reader import BadRow, Example
from core.dataset.tags import mode_tag_pattern, tag_owner, think_pattern
from studio.ui.language import say, translate

_THINK = think_pattern(html.escape)
COLORS = {"good": "#1a7f37", "warn": "#9a6700", "bad": "#cf222e"}
MODE_COLORS = ["#8250df", "#0969da", "#bf3989", "#1a7f37", "#bc4c00", "#57606a"]
ROLE_STYLE = {
    "system": "background:#f6f8fa;border-left:4px solid #8c959f",
    "user": "background:#ddf4ff;border-left:4px solid #0969da",
    "assistant": "background:#fff8c5;border-left:4px solid #bf8700",
    "tool": "background:#fbefff;border-left:4px solid #8250df",
}


def _tags_pattern(mode_table: dict[str, list[str]]) -> tuple[re.Pattern | None, dict[str, str]]:
    owner = tag_owner(mode_table)
    return mode_tag_pattern(owner, html.escape), owner


def render_text(text: str, mode_table: dict[str, list[str]]) -> str:
    """Escaped text with <think> blocks collapsible and mode tags highlighted in their mode's colour."""
    body = html.escape(text)
    pattern, owner = _tags_pattern(mode_table)
    if pattern is not None:
        modes = list(mode_table)

        def paint(match: re.Match) -> str:
            mode = owner[match.group(2)]
            color = MODE_COLORS[modes.index(mode) % len(MODE_COLORS)]
            return (f'<span title="{mode} mode tag" style="background:{color};color:white;border-radius:4px;'
                    f'padding:0 4px;font-family:monospace;font-size:0.85em">{match.group(0)}</span>')

        body = pattern.sub(paint, body)

    def think(match: re.Match) -> str:
        inner = match.group(1).strip()
        return ('<details style="margin:4px 0;padding:4px 8px;background:#f6f8fa;border-radius:6px">'
                '<summary style="cursor:pointer;color:#57606a">'
                + say("Thinking ({n} words), click to open", n=len(inner.split())) + '</summary>'
                f'<div style="white-space:pre-wrap;color:#57606a">{inner}</div></details>')

    return _THINK.sub(think, body)


def _bubble(role: str, text: str, mode_table: dict, label: str | None = None) -> str:
    style = ROLE_STYLE.get(role, ROLE_STYLE["system"])
    return (f'<div style="{style};border-radius:6px;padding:8px 12px;margin:6px 0;color:#1f2328">'
            '<div style="font-size:0.75em;font-weight:600;text-transform:uppercase;color:#57606a">'
            f'{html.escape(translate(label or role))}</div>'
            f'<div style="white-space:pre-wrap">{render_text(text, mode_table)}</div></div>')


def record_html(item: Example | BadRow | None, *, findings: list[str], mode_table: dict, status: str = "pending",
                note: str = "", number: int | None = None, edited: bool = False) -> str:
    """One record as a chat, with its findings and review status on top."""
    if item is None:
        return say("<p>No record to show. Open a dataset, or loosen the filters.</p>")
    head = [say("<b>Record {n}</b>", n=number) if number else ""]
    if isinstance(item, BadRow):
        where = say("line {n}", n=item.line) if item.line else say("row {n}", n=item.row)
        raw = ""
        if item.raw is not None:
            shown = item.raw if len(item.raw) <= 4000 else item.raw[:4000] + " …"
            raw = ('<div style="margin-top:8px;font-size:0.85em;color:#57606a">'
                   + say('The line as it is in the file (fix it under "Edit and note", then Save):') + '</div>'
                   f'<pre style="white-space:pre-wrap;word-break:break-all;background:#f6f8fa;padding:6px;border-radius:4px;'
                   f'margin:4px 0 0">{html.escape(shown)}</pre>')
        return (f'<div style="border:2px solid {COLORS["bad"]};border-radius:6px;padding:10px">'
                + say("<b>Record {n}: this row can't be used</b>", n=number)
                + f" ({html.escape(where)})<br>{html.escape(translate(item.reason))}{raw}</div>")
    head.append(f"<code>{html.escape(item.id)}</code>")
    if item.mode:
        head.append(say("mode <b>{mode}</b>", mode=html.escape(item.mode)))
    if item.category:
        head.append(say("category <b>{category}</b>", category=html.escape(item.category)))
    color = {"approved": COLORS["good"], "rejected": COLORS["bad"]}.get(status, "#57606a")
    head.append(f'<span style="color:{color};font-weight:600">{translate(status)}</span>' + (say(" · edited") if edited else ""))
    if item.label is not None:  # the thumbs on the last reply (the reviewer's, else the row's own)
        head.append(f'<span style="color:{COLORS["good" if item.label else "bad"]};font-weight:600" class="ds-label">'
                    + say("good reply" if item.label else "bad reply") + "</span>")
    parts = [f'<div style="margin-bottom:6px">{" · ".join(p for p in head if p)}</div>']
    if findings:
        items = "".join(f"<li>{html.escape(translate(f))}</li>" for f in findings)
        parts.append(f'<div style="border:1px solid {COLORS["bad"]};background:#ffebe9;border-radius:6px;'
                     f'padding:6px 10px;margin-bottom:6px;color:#1f2328"><b>{say("Findings")}</b>'
                     f'<ul style="margin:2px 0">{items}</ul></div>')
    if note:
        parts.append(f'<div style="color:#57606a"><b>{say("Note:")}</b> {html.escape(note)}</div>')
    parts += [_bubble(m["role"], m["content"], mode_table) for m in item.messages]
    if item.is_preference:
        parts.append('<div style="display:flex;gap:8px">'
                     f'<div style="flex:1">{_bubble("assistant", item.chosen, mode_table, "chosen reply")}</div>'
                     f'<div style="flex:1;opacity:0.85">{_bubble("tool", item.rejected, mode_table, "rejected reply")}</div></div>')
    return "".join(parts)


def cards_html(report, tokens: dict | None = None) -> str:
    """The check summary: counts, then every metric with its target, coloured good / warn / bad."""
    if report is None:
        return ""
    c = report.counts
    missed = report.warnings()
    if not report.ok:
        verdict = (f"{report.problems} problem(s) found", COLORS["bad"])
    elif missed:  # never "no problems" above a card marked bad
        verdict = (f"No broken rows; {len(missed)} quality target(s) missed", COLORS["warn"])
    else:
        verdict = ("No problems found", COLORS["good"])
    cards = [("Records", report.rows, None), ("Usable examples", report.examples, None),
             ("Bad rows", c.get("bad_rows", 0), "bad" if c.get("bad_rows") else "good"),
             ("Mode contamination", c.get("contamination", 0), "bad" if c.get("contamination") else "good")]
    private = c.get("personal_data", 0) + c.get("secrets", 0)
    cards.append(("Personal data and secrets", private, "bad" if private else "good"))
    leaks = c.get("eval_leaks", 0)
    cards.append(("Evaluation leaks", leaks, "bad" if leaks else "good"))
    if report.preference:
        p = report.preference
        broken = p["identical"] + p["empty_sides"]
        cards.append(("Broken pairs", broken, "bad" if broken else "good"))
    verdict = (translate(verdict[0]), verdict[1])
    boxes = [_card(label, str(value), status, help_text=CARD_HELP.get(label, "")) for label, value, status in cards]
    boxes += [_card(m["label"], m["display"], m["status"], f"target {m['target']}", m.get("advice") or CARD_HELP.get(key, ""))
              for key, m in report.metrics.items()]
    if tokens and tokens.get("counted"):
        over = tokens["truncated"]
        boxes.append(_card("Tokens (min / mean / max)", f"{tokens['min']} / {tokens['mean']} / {tokens['max']}", None,
                           f"{tokens['counted']} examples counted"))
        boxes.append(_card(f"Longer than {tokens['max_length']} tokens", str(over), "good" if over == 0 else "warn",
                           "examples cut short"))
        boxes.append(_card("Tokens trained", f"{tokens['trained_share']:.0%}", None, "share the model learns to write"))
    graded = report.targets
    why = ('<div style="color:#57606a;font-size:0.9em;margin-bottom:6px">' + say(
        "Reply targets for <b>{kind}</b> ({why}); pick another kind above if this data is different.",
        kind=html.escape(translate(graded["label"])), why=html.escape(translate(graded["why"]))) + "</div>"
           ) if graded and report.metrics else ""
    return (f'<div style="font-size:1.1em;font-weight:600;color:{verdict[1]};margin-bottom:6px">{verdict[0]}</div>{why}'
            f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(boxes)}</div>')


# What each card means and what to do about it, in one sentence a reviewer reads under the number.
CARD_HELP = {
    "Records": "Rows in the file.",
    "Usable examples": "Rows the training can use; the others are counted under Bad rows.",
    "Bad rows": "Rows that can't be read or have no reply. Click one in the table below to see its line and fix it.",
    "Mode contamination": "Samples that use another mode's tags, so the model would learn to mix modes. Fix or reject them.",
    "Broken pairs": "Pairs whose two replies are the same or empty: they teach nothing. Fix or reject them.",
    "Evaluation leaks": "Records that hold an evaluation prompt (the bundled prompt sets): the model would be graded on "
                        "memory. Reject them or change their questions.",
    "Personal data and secrets": "E-mails, phone and card numbers, IBANs, IP addresses, tokens and keys: the model would learn and "
                                 "repeat them. Edit them out or reject the record.",
    "avg_words": "How long the replies are. The model learns this length, so far off the target means answers too long or too short.",
    "short_share": "Share of short replies. A style of short answers needs most replies short.",
    "long_share": "Share of very long replies. A few are fine; many teach the model to ramble.",
    "filler_share": "Replies with padding such as 'Great question!'. The model copies it: remove those phrases.",
    "mode_balance": "How the samples split between modes. A mode with few samples is learned weakly: add samples or drop it.",
    "empty_turns": "Messages with no text. Fill them in or reject the record.",
    "role_order": "Conversations whose turns are out of order (two user turns in a row, no reply). Fix or reject them.",
    "exact_duplicates": "The same record more than once: it counts double in training. Reject the copies.",
    "near_duplicates": "Records that say nearly the same thing in a few other words: the sample counts several times. "
                       "Keep one per group (Act on every record shown) and reject the rest.",
}


def _card(label: str, value: str, status: str | None, sub: str = "", help_text: str = "") -> str:
    border = COLORS.get(status or "", "#d0d7de")
    mark = translate({"good": "✓ good", "warn": "! check", "bad": "✗ bad"}.get(status or "", ""))
    label, value, sub, help_text = translate(label), translate(value), translate(sub), translate(help_text)  # the visitor's language
    explain = f'<div style="font-size:0.75em;color:#57606a;margin-top:3px">{html.escape(help_text)}</div>' if help_text else ""
    return (f'<div style="border:1px solid #d0d7de;border-top:4px solid {border};border-radius:6px;padding:6px 10px;'
            f'min-width:150px;max-width:240px;background:white;color:#1f2328">'
            f'<div style="font-size:0.8em;color:#57606a">{html.escape(label)}</div>'
            f'<div style="font-size:1.2em;font-weight:600">{html.escape(value)}</div>'
            f'<div style="font-size:0.75em;color:{border}">{mark} {html.escape(sub)}</div>{explain}</div>')


def progress_html(counts: dict[str, int], total: int, labels: dict[str, int] | None = None) -> str:
    done = counts.get("approved", 0) + counts.get("rejected", 0)
    share = done / total if total else 0
    thumbs = (" · " + say("{good} good and {bad} bad replies", good=labels["good"], bad=labels["bad"])
              ) if labels and (labels["good"] or labels["bad"]) else ""
    return ('<div style="color:#1f2328">'
            + say("Reviewed <b>{done}</b> of {total} ({share})", done=done, total=total, share=f"{share:.0%}")
            + f' · <span style="color:{COLORS["good"]}">' + say("{n} approved", n=counts.get("approved", 0)) + '</span> · '
            f'<span style="color:{COLORS["bad"]}">' + say("{n} rejected", n=counts.get("rejected", 0)) + '</span>' + thumbs +
            f'<div style="background:#eaeef2;border-radius:4px;height:8px;margin-top:4px">'
            f'<div style="background:{COLORS["good"]};width:{share * 100:.1f}%;height:8px;border-radius:4px"></div></div></div>')


def length_figure(report):
    """Histogram of reply lengths (numpy-binned, so a million rows plot instantly)."""
    import numpy as np
    import plotly.graph_objects as go

    words = np.frombuffer(report.words, dtype=np.uint32)
    words = words[words > 0]  # bad rows and empty replies have no length to show
    figure = go.Figure()
    if words.size:
        top = max(int(np.percentile(words, 99.5)), 10)
        counts, edges = np.histogram(np.minimum(words, top), bins=min(40, top))
        figure.add_bar(x=((edges[:-1] + edges[1:]) / 2).tolist(), y=counts.tolist(), marker_color="#0969da", name="replies")
        figure.add_vrect(x0=25, x1=40, fillcolor="#1a7f37", opacity=0.12, line_width=0, annotation_text="target 25-40")
    figure.update_layout(title="Reply length (words, longest reply per record)", xaxis_title="words", yaxis_title="records",
                         height=300, margin=dict(l=40, r=10, t=40, b=40), bargap=0.05)
    return figure


def modes_figure(report):
    import plotly.graph_objects as go

    figure = go.Figure()
    shares = (report.metrics.get("mode_balance") or {}).get("shares", {})
    categories = (report.preference or {}).get("categories", {})
    if not shares and categories:
        figure.add_bar(x=list(categories), y=list(categories.values()), marker_color="#8250df")
        figure.update_layout(title="Preference pairs per category", yaxis_title="pairs", height=300,
                             margin=dict(l=40, r=10, t=40, b=40))
        return figure
    if shares:
        colors = ["#cf222e" if s < 0.05 else "#9a6700" if s <= 0.10 else "#1a7f37" for s in shares.values()]
        figure.add_bar(x=list(shares), y=[round(s * 100, 1) for s in shares.values()], marker_color=colors)
        figure.add_hline(y=10, line_dash="dot", annotation_text="10%")
    figure.update_layout(title="Mode distribution (% of examples)" if shares else "Mode distribution (no mode field)",
                         height=300, margin=dict(l=40, r=10, t=40, b=40))
    return figure


def tokens_figure(tokens: dict | None):
    import numpy as np
    import plotly.graph_objects as go

    figure = go.Figure()
    if tokens and tokens.get("lengths"):
        lengths = np.asarray(tokens["lengths"])
        # One scale from 0 to past the limit, so the bars sit where they fall against max length.
        counts, edges = np.histogram(lengths, bins=40, range=(0, max(tokens["max_length"], int(lengths.max())) * 1.05))
        figure.add_bar(x=((edges[:-1] + edges[1:]) / 2).tolist(), y=counts.tolist(), marker_color="#8250df")
        figure.add_vline(x=tokens["max_length"], line_color="#cf222e", annotation_text=f"max length {tokens['max_length']}")
    figure.update_layout(title="Tokens per example" if tokens else "Tokens per example (press Count tokens)",
                         xaxis_title="tokens", yaxis_title="examples", height=300, margin=dict(l=40, r=10, t=40, b=40))
    return figure
