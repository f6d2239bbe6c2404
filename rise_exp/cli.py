"""The ``python -m rise_exp`` entry point: compose the Hydra config, check it, run its stage.

Every user error (a bad setting, an unknown config option, malformed data) prints one line starting
with ``error:`` and exits with status 2; a bug keeps its traceback (and ``status.json`` in the run dir).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from rise_exp.errors import RiseError
from rise_exp.hardware import check_hardware
from rise_exp.memory import PeakRss
from rise_exp.paths import CONF_DIR
from rise_exp.results import retire_results, write_json
from rise_exp.run_config import RunConfig, register_schemas
from rise_exp.stages import stage_entry

log = logging.getLogger("rise_exp")

register_schemas()  # Hydra composes every group on top of its settings class


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Check the whole config (before any work), then run its stage in ``run_dir``; returns its metrics.

    An earlier run's results in ``run_dir`` are renamed ``*.stale`` first, so a failed or refused run
    never sits next to them.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "status.json", {"status": "running"})
    stale = retire_results(run_dir)
    if stale:
        log.info("set aside the earlier results in %s as *.stale: %s", run_dir, ", ".join(stale))
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    typed = RunConfig.from_cfg(cfg)
    check_hardware(typed.trainer)
    entry = stage_entry(typed.stage.name)
    from rise_exp.quiet import quiet_libraries

    quiet_libraries()
    with PeakRss():
        return entry(typed, run_dir)


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    """Hydra task function; user errors print one line (exit 2), and the run dir records the outcome."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

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
        write_json(
            run_dir / "status.json",
            {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()},
        )
        if not multirun:
            raise
        log.exception("run %s failed", run_dir)


def describe_config_error(exc: BaseException) -> str:
    """One line for an error Hydra or OmegaConf raised while composing the config."""
    from hydra.errors import MissingConfigException

    cause: BaseException | None = exc
    while cause is not None:  # our own check inside an interpolation (``${safe:model.name}``)
        if isinstance(cause, RiseError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group = exc.missing_cfg_file.rsplit("/", 1)[0] if "/" in exc.missing_cfg_file else "config"
        name = exc.missing_cfg_file.rsplit("/", 1)[-1]
        options = sorted(o for o in exc.options if not o.startswith("schema"))
        return f"unknown {group} {name!r}; allowed values: {', '.join(options)}"
    cause = exc
    while cause is not None and cause.__cause__ is not None and "omegaconf" not in type(cause).__module__:
        cause = cause.__cause__
    target = cause if cause is not None else exc
    key = getattr(target, "full_key", None)
    first = str(target).strip().splitlines()[0] if str(target).strip() else type(target).__name__
    if key and type(target).__name__ == "ConfigKeyError":
        return f"unknown setting {key} ({first})"
    return f"{key}: {first}" if key and key not in first else first


def main() -> None:
    """Console entry: ``--help`` text first, then Hydra; config errors become one line and exit 2."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach us instead of Hydra's printer
    try:
        hydra_main()
    except (HydraException, OmegaConfBaseException) as e:
        if user_full_error:
            raise
        print(f"error: {describe_config_error(e)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
