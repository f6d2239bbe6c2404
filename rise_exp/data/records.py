"""The one record schema every task, loader and method shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rise_exp.core.hashing import config_hash

# The RISE code's default sample format ("auto"): fields joined by newlines, no template. A fixed
# template would put the same tokens, in the same context, at the start of every row: identical
# per-token sketches that add a constant to every score and bias the cosine towards short rows.
PROMPT_FORMATS = {
    "plain": ("{instruction}\n", "{instruction}\n{input}\n"),
    "alpaca": (
        "### Instruction:\n{instruction}\n\n### Response:\n",
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
    ),
}
PROMPT_FORMAT = "plain"


@dataclass(frozen=True)
class Record:
    """One training row, query or candidate.

    Either ``text`` (plain text, every token is a target) or ``instruction``/``input``/``output``
    (Alpaca-style; only the response tokens are targets when the prompt is masked).

    Attributes:
        id: Unique identifier within its split.
        text: Plain text body (pretraining-style rows).
        instruction: Instruction of an instruction-tuning row.
        input: Optional input / context of an instruction row.
        output: Response of an instruction row.
        label: Binary relevance label (1 = positive: backdoored, in-domain, high quality).
        domain: Optional domain name (Finance-Medical).
        meta: Free-form extra fields kept from the source.
    """

    id: str
    text: str | None = None
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    label: int | None = None
    domain: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_instruction(self) -> bool:
        return self.instruction is not None

    @property
    def prompt(self) -> str:
        """The prompt part (empty for plain text)."""
        if not self.is_instruction:
            return ""
        plain, with_input = PROMPT_FORMATS[PROMPT_FORMAT]
        if self.input:
            return with_input.format(instruction=self.instruction, input=self.input)
        return plain.format(instruction=self.instruction)

    @property
    def response(self) -> str:
        """The target part: the output of an instruction row, or the whole text."""
        return (self.output or "") if self.is_instruction else (self.text or "")

    @property
    def full_text(self) -> str:
        """Prompt followed by response: what BM25 and tokenizer training see."""
        return self.prompt + self.response

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id}
        for k in ("text", "instruction", "input", "output", "label", "domain"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        d.update(self.meta)
        return d


def records_hash(records: Sequence[Record]) -> str:
    """Hash of rows as training sees them (prompt and response, in order)."""
    return config_hash([[r.prompt, r.response, r.full_text] for r in records], n=16)
