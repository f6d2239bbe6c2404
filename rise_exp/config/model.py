"""``model`` group: where the weights come from, and the architecture facts of the catalogue."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting

SOURCES = ("embedded", "hub", "local", "package")
EMBEDDED_ARCHES = ("gpt_neox", "olmo2")
DTYPES = ("float32", "float16", "bfloat16", "float64")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
FACTS = ("layers", "hidden_size", "heads", "vocab_size", "max_position")


#: Settings that say where the weights are placed, not what they are (left out of cache keys).
PLACEMENT_SETTINGS = ("device_map", "max_memory", "offload_folder")


@dataclass(frozen=True)
class ModelConfig(Settings):
    """A model: an embedded tiny model built from these facts, or any Hugging Face causal LM.

    Hub ids (with a revision), local directories, GGUF files (in a hub repo, a directory or an installed
    Python package) and LoRA adapters all load through one path (:func:`rise_exp.models.weights.load_base_model`);
    the architecture itself always comes from the checkpoint's own config.
    """

    GROUP = "model"
    name: str = setting("tiny-pythia", "name used in run directories and reports")
    source: str = setting(
        "embedded",
        "embedded (built from config, no network), hub (a Hugging Face id), local (a directory) or package "
        "(an installed Python package that ships a GGUF file)",
        choices=SOURCES,
    )
    hub_id: str | None = setting(None, "hub id (source hub) or directory (source local)")
    revision: str | None = setting(None, "hub revision (branch, tag or commit); pin it for reproducibility")
    package: str | None = setting(None, "source package: the Python package whose directory holds gguf_file")
    gguf_file: str | None = setting(None, "a GGUF file in the repo / directory / package, converted once to float")
    adapter: str | None = setting(
        None, "a PEFT (LoRA) adapter directory merged into the weights (saved once as a cached full checkpoint)"
    )
    dtype: str = setting("float32", "weights dtype", choices=DTYPES)
    trust_remote_code: bool = setting(False, "allow custom model code from the hub")
    arch: str | None = setting(None, "architecture of an embedded model (gpt_neox, olmo2); informational otherwise")
    layers: int | None = setting(
        None, "transformer blocks (catalogue fact; read from the checkpoint when loaded)", gt=0
    )
    hidden_size: int | None = setting(None, "hidden size d (catalogue fact)", gt=0)
    heads: int | None = setting(None, "attention heads (catalogue fact)", gt=0)
    vocab_size: int | None = setting(None, "vocabulary V (embedded: size of the BPE trained on the pool)", gt=0)
    max_position: int | None = setting(None, "maximum positions (catalogue fact)", gt=0)
    intermediate_size: int | None = setting(None, "MLP width (default 4 d)", gt=0)
    kv_heads: int | None = setting(None, "key/value heads (grouped-query attention)", gt=0)
    init_seed: int = setting(0, "initialisation seed of an embedded model")
    device_map: str | None = setting(
        None,
        "split the weights layer-wise over the visible GPUs, then CPU RAM, then disk (accelerate big-model "
        "inference; forward-only work: RISE, ZO-Inf losses, probes); null = the whole model on the trainer's device",
        choices=DEVICE_MAPS,
    )
    max_memory: str | None = setting(
        None, "with device_map: memory per device, e.g. '0=20GiB,1=20GiB,cpu=60GiB' (what does not fit goes to disk)"
    )
    offload_folder: str | None = setting(
        None, "with device_map: where weights that fit nowhere else are offloaded (default <cache>/offload/<name>)"
    )

    def validate(self) -> None:
        if self.source == "embedded":
            if self.arch not in EMBEDDED_ARCHES:
                raise self.fail(
                    "arch",
                    f"{self.arch!r} cannot be built as an embedded model; allowed values: {', '.join(EMBEDDED_ARCHES)}",
                )
            missing = [f for f in FACTS if getattr(self, f) is None]
            if missing:
                raise self.fail(missing[0], f"is required to build an embedded model (missing: {', '.join(missing)})")
        elif self.source in ("hub", "local") and not self.hub_id:
            raise self.fail("hub_id", f"is required for source={self.source} (a hub id or a local path)")
        elif self.source == "package" and not (self.package and self.gguf_file):
            raise self.fail("package", "and model.gguf_file are required for source=package")
        if self.max_memory is not None:
            if self.device_map is None:
                raise self.fail("max_memory", "needs model.device_map (e.g. model.device_map=auto)")
            self.memory_limits()

    def memory_limits(self) -> dict[int | str, str] | None:
        """``model.max_memory`` as accelerate's ``{device: size}`` (GPU indices as ints), or None."""
        if self.max_memory is None:
            return None
        out: dict[int | str, str] = {}
        for part in self.max_memory.split(","):
            key, sep, size = part.strip().partition("=")
            if not sep or not size.strip() or not (key.strip().isdigit() or key.strip() in ("cpu", "disk", "mps")):
                raise self.fail("max_memory", f"expects 'device=size' pairs like '0=20GiB,cpu=60GiB', got {part!r}")
            out[int(key) if key.strip().isdigit() else key.strip()] = size.strip()
        return out

    def weights_settings(self) -> dict[str, object]:
        """The settings that decide the weights (an embedded model's cache key): all but where they are placed."""
        return {k: v for k, v in self.to_dict().items() if k not in PLACEMENT_SETTINGS}

    @property
    def has_facts(self) -> bool:
        """Whether the catalogue states the architecture facts (for estimates without loading)."""
        return all(getattr(self, f) is not None for f in FACTS)
