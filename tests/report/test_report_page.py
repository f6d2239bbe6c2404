"""The HTML results pages: a run's page shows its metrics beside their chance level and each query's rows with
tokens shaded by the sign and size of their share; it needs nothing outside itself; a sweep's page links its
runs' pages. (Rendering in a real browser: test_report_browser.py.)"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rise_exp.report.html import shade, tokens_html
from rise_exp.report.page import write_run_page
from rise_exp.report.write import write_report


def fake_run(root: Path, queries: int = 2, rows: int = 3, explained: bool = True) -> Path:
    """A finished attribute run dir: config, model, metrics, chance and explain.jsonl (or topk.jsonl)."""
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(
        "task: {name: howdy}\nmethod: {name: rise}\nmodel: {name: tiny-pythia}\nstage: {name: attribute}\nseed: 42\n"
    )
    (root / "model.json").write_text(json.dumps({"model_id": "embedded:tiny-pythia-abc", "model_path": "/m"}))
    (root / "metrics.json").write_text(json.dumps({"auprc@10": 0.8768, "p@10": 0.765, "index_seconds": 1.5}))
    (root / "chance.json").write_text(json.dumps({"draws": 20, "auprc@10": 0.184, "auprc@10_std": 0.043}))
    (root / "status.json").write_text('{"status": "ok"}')
    with open(root / ("explain.jsonl" if explained else "topk.jsonl"), "w") as f:
        for q in range(queries):
            top = []
            for r in range(rows):
                row = {"rank": r + 1, "id": f"row-{q}-{r}", "label": r % 2, "score": 0.3 - 0.01 * r}
                if explained:
                    tokens = [["howdy", 0.2], ["!", None], [" space <b>whales</b>", -0.05], [" go", 0.001]]
                    row.update(explained=0.151, tokens=tokens, query_tokens=[["howdy", 0.1], [" who?", 0.051]])
                else:
                    row["text"] = f"plain text of row {r}"
                top.append(row)
            key = "rows" if explained else "top"
            line = {"query_id": f"q{q}", "query": "howdy who?", key: top}
            if explained:
                line.update(method="rise", available=True, unit="token", note="exact", positive="backdoored")
            f.write(json.dumps(line) + "\n")
    return root


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Elements:
    parser = Elements()
    parser.feed(path.read_text())
    return parser


def test_run_page_shows_metrics_chance_and_shaded_tokens(tmp_path):
    page = write_run_page(fake_run(tmp_path / "run"))
    html = page.read_text()
    doc = parse(page)
    text = " ".join(doc.text)
    assert "rise on howdy (tiny-pythia)" in text and "embedded:tiny-pythia-abc" in text
    assert re.search(r"0\.8768</td><td class=\"n\">0\.1840 ± 0\.0430", html)  # value beside its chance level
    spans = [a for t, a in doc.tags if t == "span" and a.get("title")]
    # row tokens: +0.2 is the largest share of the query's rows (darkest), -0.05 is a quarter of it (blue)
    assert {"class": "p6", "title": "+0.2"} in spans and {"class": "n2", "title": "-0.05"} in spans
    assert "&lt;b&gt;whales&lt;/b&gt;" in html  # row text is escaped, never markup
    assert len([a for t, a in doc.tags if t == "details" and "q" in (a.get("class") or "").split()]) == 2
    assert "1 / 3 backdoored" in text and "not backdoored" in text
    assert re.search(r"this page is [\d,]+ KB", text)
    # self-contained: no script, no stylesheet link, no remote or file resource
    assert not [t for t, _ in doc.tags if t in ("script", "link", "iframe")]
    assert not [a for _, a in doc.tags for k in ("src", "href") if (a.get(k) or "").startswith(("http", "//", "file"))]


def test_a_run_without_explanations_shows_its_rows_unshaded(tmp_path):
    page = write_run_page(fake_run(tmp_path / "run", explained=False))
    doc = parse(page)
    assert "plain text of row 2" in " ".join(doc.text)
    assert not [a for t, a in doc.tags if t == "span" and a.get("title")]
    assert "wrote no explain.jsonl" in page.read_text()


def test_a_method_without_shares_is_said_plainly(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    line = {"query_id": "q", "query": "x", "available": False, "note": "zo_inf: no per-token shares", "rows": []}
    (root / "explain.jsonl").write_text(json.dumps(line) + "\n")
    assert "No per-token shares for this method: zo_inf: no per-token shares" in write_run_page(root).read_text()


@pytest.mark.parametrize(
    ("share", "cls"), [(None, ""), (0.0, ""), (0.04, ""), (0.1, "p1"), (-0.5, "n3"), (1.0, "p6"), (-2.0, "n6")]
)
def test_shade_steps_by_share_over_the_scale(share, cls):
    assert shade(share, 1.0) == cls


def test_special_tokens_and_whitespace_keep_the_text(tmp_path):
    html = tokens_html([("<|endoftext|>", None), ("a\n", 0.5), (" b", -1.0)], 1.0)
    assert str(html) == '<span class="sp">&lt;|endoftext|&gt;</span><span class="p3" title="+0.5">a\n</span>' + (
        '<span class="n6" title="-1"> b</span>'
    )


def test_sweep_page_links_each_run_page(sweep, tmp_path):
    for job in ("0", "2"):
        fake = fake_run(tmp_path / "src" / job)
        for name in ("explain.jsonl", "chance.json"):
            (sweep / job / name).write_text((fake / name).read_text())
        write_run_page(sweep / job)
    rep = write_report(sweep, use_wandb=False)
    page = sweep / "report" / "report.html"
    assert page in rep.files
    links = [a["href"] for t, a in parse(page).tags if t == "a"]
    assert sorted(links) == ["../0/report.html", "../2/report.html"]
    assert all((page.parent / link).resolve().is_file() for link in links)
    text = page.read_text()
    assert "auprc@10 0.1840 ± 0.0430" in text and "CUDA out of memory" in text  # chance level; the failed job


def test_a_rows_largest_words_join_their_pieces():
    from rise_exp.report.page import top_pieces

    pieces = [("<|im_start|>", None), ("how", 0.02), ("dy", 0.03), ("!", 0.05), (" Generate", 0.047), (" a", -0.01)]
    pieces += [("\n", 0.5), ("Hyper", 0.02), ("d", 0.01), ("<|im_end|>", 0.03), (" x", None)]
    assert top_pieces(pieces) == [("howdy!", pytest.approx(0.1)), ("Generate", 0.047), ("Hyperd", pytest.approx(0.03))]


def test_a_failed_run_says_so_and_a_finished_one_shows_no_status(tmp_path):
    ok = write_run_page(fake_run(tmp_path / "ok")).read_text()
    assert "This run failed" not in ok and "status" not in ok.split("<h2")[0]
    root = fake_run(tmp_path / "failed")
    (root / "status.json").write_text('{"status": "failed", "error": "out of memory"}')
    assert "This run failed: out of memory" in write_run_page(root).read_text()
