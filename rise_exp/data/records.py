"""The one record schema every task, loader and method shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROMPT_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"
PROMPT_TEMPLATE_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


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
        if self.input:
            return PROMPT_TEMPLATE_WITH_INPUT.format(instruction=self.instruction, input=self.input)
        return PROMPT_TEMPLATE.format(instruction=self.instruction)

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
