"""``model`` group: where the weights come from and the architecture facts."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting

SOURCES = ("embedded", "hub", "local")
EMBEDDED_ARCHES = ("gpt_neox", "olmo2")
DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True)
class ModelConfig(Settings):
    """A model: an embedded tiny model built from these facts, or a Hugging Face checkpoint."""

    GROUP = "model"
    name: str = setting("tiny-pythia", "name used in run directories and reports")
    source: str = setting("embedded", "embedded (built from config, no network), hub or local", choices=SOURCES)
    arch: str | None = setting(
        "gpt_neox", "architecture of an embedded model (gpt_neox, olmo2); informational otherwise"
    )
    hub_id: str | None = setting(None, "Hugging Face hub id or local directory (source hub / local)")
    revision: str | None = setting(None, "hub revision (branch, tag or commit); pin it for reproducibility")
    dtype: str = setting("float32", "weights dtype", choices=DTYPES)
    layers: int = setting(2, "transformer blocks", gt=0)
    hidden_size: int = setting(128, "hidden size d", gt=0)
    heads: int = setting(4, "attention heads", gt=0)
    vocab_size: int = setting(1024, "vocabulary V (embedded: size of the BPE trained on the pool)", gt=0)
    max_position: int = setting(512, "maximum positions", gt=0)
    intermediate_size: int | None = setting(None, "MLP width (default 4 d)", gt=0)
    kv_heads: int | None = setting(None, "key/value heads (grouped-query attention)", gt=0)
    init_seed: int = setting(0, "initialisation seed of an embedded model")
    trust_remote_code: bool = setting(False, "allow custom model code from the hub")

    def validate(self) -> None:
        if self.source == "embedded" and self.arch not in EMBEDDED_ARCHES:
            raise self.fail(
                "arch",
                f"{self.arch!r} cannot be built as an embedded model; allowed values: {', '.join(EMBEDDED_ARCHES)}",
            )
        if self.source in ("hub", "local") and not self.hub_id:
            raise self.fail("hub_id", f"is required for source={self.source} (a hub id or a local path)")
