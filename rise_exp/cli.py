"""The ``python -m rise_exp`` entry point: compose the Hydra config and run its stage."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from rise_exp.errors import RiseError, allowed
from rise_exp.results import write_json

log = logging.getLogger("rise_exp")

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _stages() -> dict:
    from rise_exp.stages.attribute import run_attribute
    from rise_exp.stages.finetune_only import run_finetune_stage

    stages = {"attribute": run_attribute, "finetune": run_finetune_stage}
    try:
        from rise_exp.stages.valuate import run_valuate

        stages["valuate"] = run_valuate
    except ImportError:
        pass
    try:
        from rise_exp.stages.closed_loop import run_closed_loop

        stages["closed_loop"] = run_closed_loop
    except ImportError:
        pass
    return stages


def quiet_libraries() -> None:
    """Silence progress bars and library chatter (imports them first: they set their own levels)."""
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_SILENT", "true")
    import lightning  # noqa: F401  (import first: it sets its own logger levels on import)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*Couldn't infer the batch indices.*")
    warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", ".*litlogger.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*no `val_dataloader`.*")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.rank_zero", "bm25s", "datasets", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Run the configured stage in ``run_dir``; returns its metrics."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    stages = _stages()
    name = cfg.stage.name
    if name not in stages:
        raise allowed("stage", name, tuple(stages))
    return stages[name](cfg, run_dir)


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; user errors print one line (exit 2), and the run dir records the outcome."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    quiet_libraries()
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        run(cfg, run_dir)
        write_json(run_dir / "status.json", {"status": "ok"})
    except RiseError as e:
        write_json(run_dir / "status.json", {"status": "failed", "error": str(e)})
        print(f"error: {e}", file=sys.stderr)
        if not multirun:
            sys.exit(2)
    except Exception as e:  # a bug: keep the traceback in the run dir, fail loudly
        write_json(run_dir / "status.json", {"status": "failed", "error": f"{type(e).__name__}: {e}",
                                              "traceback": traceback.format_exc()})
        if not multirun:
            raise
        log.exception("run %s failed", run_dir)


if __name__ == "__main__":
    main()
