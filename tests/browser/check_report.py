"""Asserts on `pipeline report` as rendered by headless Chromium (run by scripts/browser-test).

Reads what the script left in OUT: the DOM after the page's scripts ran (dom.html), Chromium's
log (console.log), the screenshot (report.png), and the figures the CLI printed for the same
store (run.txt, anomalies.jsonl, evaluate.json). Each check compares the page with a figure
obtained another way, so a report that drew the wrong thing fails here.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path

TOP = 6  # `pipeline report`'s default number of entities drawn


class Page(HTMLParser):
    """Collects the elements the checks look at."""

    def __init__(self) -> None:
        super().__init__()
        self.root: dict[str, str | None] = {}
        self.entity: str | None = None
        self.series: list[str] = []
        self.marks: dict[str, list[str]] = defaultdict(list)
        self.flags: dict[str, list[str]] = defaultdict(list)
        self.windows: Counter[str] = Counter()
        self.cards: dict[str, str] = {}
        self.total_row = False
        self.total_cells: list[str] = []
        self._card: str | None = None
        self._cell: bool = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "html":
            self.root = a
        elif tag == "article" and "entity" in classes:
            self.entity = a.get("data-entity")
        elif tag == "svg" and "series" in classes and self.entity:
            self.series.append(self.entity)
        elif tag == "circle" and "mark" in classes and self.entity:
            self.marks[self.entity].append(a.get("data-event") or "")
        elif tag == "rect" and "flag" in classes and self.entity:
            self.flags[self.entity].append(a.get("data-event") or "")
        elif tag == "rect" and "label-window" in classes and self.entity:
            self.windows[self.entity] += 1
        elif tag == "span" and "n" in classes:
            self._card = a.get("data-k")
        elif tag == "tr" and a.get("data-k") == "total":
            self.total_row = True
        elif tag == "td" and self.total_row:
            self._cell = True
            self.total_cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self.entity = None
        elif tag == "span":
            self._card = None
        elif tag == "tr":
            self.total_row = False
        elif tag == "td":
            self._cell = False

    def handle_data(self, data: str) -> None:
        if self._card:
            self.cards[self._card] = self.cards.get(self._card, "") + data
        if self._cell and self.total_cells:
            self.total_cells[-1] += data


def main(out: Path) -> int:
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    console = (out / "console.log").read_text(errors="replace")
    messages = [line for line in console.splitlines() if ":CONSOLE" in line]
    check(not messages, f"no console messages or errors ({len(messages)}: {messages[:3]})")

    page = Page()
    page.feed((out / "dom.html").read_text())
    check(page.root.get("data-ready") == "1", "the page's script ran to its end")
    check("data-errors" not in page.root, "no script error was caught on the page")

    run = (out / "run.txt").read_text()

    def figure(name: str) -> int:
        m = re.search(rf"^\s+{name}\s+(\d+)", run, re.M)
        return int(m.group(1)) if m else -1

    anomalies = [json.loads(line) for line in (out / "anomalies.jsonl").read_text().splitlines()]
    by_entity = Counter(a["entity_id"] for a in anomalies)
    check(
        page.cards.get("records") == str(figure("persisted")),
        f"records card {page.cards.get('records')} = run's persisted {figure('persisted')}",
    )
    check(
        page.cards.get("anomalies") == str(len(anomalies)),
        f"anomalies card {page.cards.get('anomalies')} = {len(anomalies)} stored anomalies",
    )
    check(
        page.cards.get("quarantine") == str(figure("quarantined")),
        f"quarantine card {page.cards.get('quarantine')} = run's quarantined {figure('quarantined')}",
    )

    expected_series = min(TOP, len(by_entity) or TOP)
    check(len(page.series) == expected_series, f"{len(page.series)} series drawn (expected {expected_series})")
    most = sorted(by_entity.values(), reverse=True)[:TOP]
    drawn = sorted((by_entity[e] for e in page.series), reverse=True)
    check(drawn == most, f"the most anomalous entities are drawn: {drawn} = {most}")
    for entity in page.series:
        marks = page.marks.get(entity, [])
        stored = sorted(a["event_id"] for a in anomalies if a["entity_id"] == entity)
        check(sorted(marks) == stored, f"{entity}: {len(marks)} marks = its {len(stored)} stored anomalies, same events")
        flagged = {
            a["event_id"]
            for a in anomalies
            if a["entity_id"] == entity and any(r.get("code") != "value_outlier" for r in a.get("reasons", []))
        }
        check(flagged <= set(page.flags.get(entity, [])), f"{entity}: each anomaly with a non-value reason is on the flag track")
    check(sum(page.windows.values()) > 0, f"labelled windows drawn ({sum(page.windows.values())})")

    evaluation = json.loads((out / "evaluate.json").read_text())
    standard = evaluation["is_anomaly"]["total"]["score_standard"]
    cells = page.total_cells
    shown = cells[8] if len(cells) > 8 else None
    check(shown == f"{standard:.1f}", f"evaluation total standard score {shown} = pipeline evaluate's {standard:.1f}")

    png = out / "report.png"
    check(png.exists() and png.stat().st_size > 20_000, f"screenshot written ({png.stat().st_size if png.exists() else 0} bytes)")

    print(f"\n{len(failures)} failed" if failures else "\nall report checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
