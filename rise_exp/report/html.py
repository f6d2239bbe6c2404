"""What the HTML results pages share: the jinja2 environment, shaded tokens, embedded images, a metric chart.

Pages are self-contained (``report.html`` opens from disk with no server or network): CSS is inlined from
``templates/page.css``, plots are embedded as ``data:`` URIs, charts are inline SVG, and there is no script.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

#: Shading steps per sign (CSS classes p1..p6 and n1..n6 in page.css).
LEVELS = 6


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The jinja2 environment over the package's templates (found in an installed package too)."""
    env = Environment(
        loader=PackageLoader("rise_exp.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_value
    return env


def render(template: str, **context: Any) -> str:
    """A page rendered from ``template``, the stylesheet inlined."""
    env = environment()
    css = env.loader.get_source(env, "page.css")[0]  # type: ignore[union-attr]
    return env.get_template(template).render(css=Markup(css), **context)


def write_page(path: Path, template: str, **context: Any) -> Path:
    """Render ``template`` into ``path``; the page states its own size (``page_kb``)."""
    html = render(template, page_kb="{page_kb}", **context)
    size = len(html.encode("utf-8"))
    html = html.replace("{page_kb}", f"{size / 1024:,.0f}", 1)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def fmt_value(x: Any) -> str:
    """A number as the tables show it: 4 decimals below 10, fewer above, ``n/a`` for None or NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.4f}" if abs(x) < 10 else f"{x:,.1f}" if abs(x) < 1e6 else f"{x:.3g}"


def shade(share: float | None, scale: float) -> str:
    """The CSS class of a share: ``p1``..``p6`` (raises the score) or ``n1``..``n6`` (lowers it), by
    ``|share| / scale``; empty for an unscored piece or a share below half a step."""
    if share is None or scale <= 0:
        return ""
    level = min(LEVELS, round(abs(share) / scale * LEVELS))
    if level == 0:
        return ""
    return f"{'p' if share > 0 else 'n'}{level}"


def scale_of(shares: Sequence[float | None]) -> float:
    """The largest ``|share|`` (the darkest shade); 0 when nothing is scored."""
    return max((abs(s) for s in shares if s is not None), default=0.0)


#: A special token's text (``<|endoftext|>``, ``</s>``, ``<eos>``): shown small, so it does not read as words.
SPECIAL = re.compile(r"<\|?/?[A-Za-z_][\w.-]*\|?>")


def tokens_html(pieces: Sequence[tuple[str, float | None]], scale: float) -> Markup:
    """Pieces as HTML: each shaded piece a ``<span>`` with its class and its share as a tooltip."""
    out = []
    for text, share in pieces:
        cls = shade(share, scale)
        if SPECIAL.fullmatch(text):
            cls = f"{cls} sp".strip()
        attrs = (f' class="{cls}"' if cls else "") + ("" if share is None else f' title="{share:+.3g}"')
        if attrs and text:
            out.append(f"<span{attrs}>{escape(text)}</span>")
        else:
            out.append(str(escape(text)))
    return Markup("".join(out))


def data_uri(path: Path) -> str:
    """A PNG (or SVG) file as a ``data:`` URI, so the page needs no file beside it."""
    kind = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def metric_chart(values: Mapping[str, float], chance: Mapping[str, float], width: int = 440) -> Markup:
    """An inline SVG bar chart of metrics in [0, 1] with their chance level as a tick over each bar."""
    names = [k for k, v in values.items() if isinstance(v, (int, float)) and 0 <= v <= 1]
    if not names:
        return Markup("")
    bar, gap, left, top = 22, 8, 90, 8
    height = top + len(names) * (bar + gap) + 20
    span = width - left - 50
    parts = [
        f'<svg class=chart width={width} height={height} viewBox="0 0 {width} {height}" role=img '
        f'aria-label="metrics against their chance level">'
    ]
    for i, name in enumerate(names):
        y = top + i * (bar + gap)
        v = float(values[name])
        parts.append(f"<text x={left - 8} y={y + bar * 0.7} text-anchor=end>{escape(name)}</text>")
        parts.append(f"<rect class=bar x={left} y={y} width={v * span:.1f} height={bar}><title>{v:.4f}</title></rect>")
        parts.append(f"<text x={left + v * span + 5:.1f} y={y + bar * 0.7}>{v:.3f}</text>")
        c = chance.get(name)
        if isinstance(c, (int, float)) and not math.isnan(c):
            x = left + float(c) * span
            parts.append(
                f"<line class=chance x1={x:.1f} x2={x:.1f} y1={y - 3} y2={y + bar + 3}>"
                f"<title>chance {float(c):.4f}</title></line>"
            )
    axis = top + len(names) * (bar + gap)
    parts.append(f"<line class=axis x1={left} x2={left + span} y1={axis} y2={axis} />")
    for t in (0, 0.5, 1):
        parts.append(f"<text x={left + t * span:.1f} y={axis + 14} text-anchor=middle>{t:g}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))
