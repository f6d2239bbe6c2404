"""The ``python -m rise_exp`` entry point: compose the Hydra config, check it, run its stage.

Every user error (a bad setting, an unknown config option, malformed data) and every environment error (a
full disk, an unwritable or misplaced run or cache directory) prints one line starting with ``error:`` and
exits with status 2; a bug keeps its traceback (and ``status.json`` in the run dir).
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

from rise_exp.core.errors import RiseError, describe_os_error, environment_cause
from rise_exp.core.files import check_dir_usable
from rise_exp.core.paths import CONF_DIR
from rise_exp.core.results import retire_results, write_json
from rise_exp.core.rss import PeakRss
from rise_exp.run.admission import admit
from rise_exp.run.config import RunConfig, recorded_config, register_schemas
from rise_exp.run.hardware import check_hardware
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
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(recorded_config(cfg)))
    typed = RunConfig.from_cfg(cfg)
    check_hardware(typed.trainer)
    check_dir_usable(Path(typed.paths.cache_dir), "paths.cache_dir")
    admit(typed)  # before any download or load: does the model x method x trainer fit the devices?
    if typed.trainer.threads is not None:
        import torch

        torch.set_num_threads(typed.trainer.threads)
    entry = stage_entry(typed.stage.name)
    from rise_exp.core.quiet import quiet_libraries

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
        if multirun:  # say how to turn the sweep into tables, plots and the notebook's input
            print(f"sweep job {hc.job.num} done; when all are: python -m rise_exp.report {hc.sweep.dir}")
    except RiseError as e:
        write_json(run_dir / "status.json", {"status": "failed", "error": str(e)})
        print(f"error: {e}", file=sys.stderr)
        if not multirun:
            sys.exit(2)
    except Exception as e:
        cause = environment_cause(e)
        if cause is not None:  # the environment: a full disk, an unwritable or misplaced path
            environment_failure(run_dir, cause, multirun)
            return
        # a bug: keep the traceback in the run dir, fail loudly
        write_json(
            run_dir / "status.json",
            {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()},
        )
        if not multirun:
            raise
        log.exception("run %s failed", run_dir)


def environment_failure(run_dir: Path, exc: OSError, multirun: bool) -> None:
    """Report an environment error in one line (exit 2 unless in a sweep); the traceback goes to status.json."""
    message = describe_os_error(exc, where=f"a file under {run_dir} or paths.cache_dir")
    try:
        write_json(run_dir / "status.json", {"status": "failed", "error": message, "traceback": traceback.format_exc()})
    except OSError:
        pass  # the disk that failed may hold the run directory too
    print(f"error: {message}", file=sys.stderr)
    if not multirun:
        sys.exit(2)


HELP = """\
rise-exp: training-data attribution and valuation for language models. RISE (CountSketch signatures
of the LM-head gradient, forward passes only) and its baselines RapidIn, ZO-Inf, STRIDE and BM25 under
one protocol, on any Hugging Face causal LM or an embedded tiny model that needs no network.

Stages (stage=<name>):
{stages}

Examples:
  python -m rise_exp                                    # RISE on synthetic Howdy, embedded tiny model
  python -m rise_exp method=bm25 task=brain_rot          # another method / task
  python -m rise_exp task=custom task.train_path=pool.jsonl task.queries_path=queries.jsonl
  python -m rise_exp model=smollm2-135m                  # a real pretrained model (LoRA finetune)
  python -m rise_exp -m method=rise,bm25 seed=0,1,2,3,4   # a sweep, then: python -m rise_exp.report <sweep dir>
  python -m rise_exp method.kr=64 --cfg job              # print the composed config and stop
  python -m rise_exp serve <index dir> --port 8765        # keep an index loaded, answer over local HTTP JSON

Config groups (group=option):
{groups}

Every setting, its default, range and meaning: the dataclasses in rise_exp/config/ and
rise_exp/methods/<name>/config.py. Override any setting with key=value; -m runs a sweep (Hydra);
--hydra-help lists Hydra's own options. The design: docs/design.md.
"""


def help_text() -> str:
    """``--help``: what the tool does, its stages and examples, then the config groups and their options."""
    from rise_exp.config.stages import STAGE_CONFIGS

    stages = "\n".join(
        f"  {name:<12} {(cls.__doc__ or '').strip().splitlines()[0]}" for name, cls in STAGE_CONFIGS.items()
    )
    groups = []
    for group in sorted(p for p in Path(CONF_DIR).iterdir() if p.is_dir()):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        groups.append(f"  {group.name:<11} {', '.join(options)}")
    return HELP.format(stages=stages, groups="\n".join(groups))


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

    if sys.argv[1:2] == ["serve"]:  # an index kept loaded, answering over local HTTP (run/server.py)
        from rise_exp.run.server import serve

        try:
            serve(sys.argv[2:])
        except RiseError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        return
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        print(help_text())
        return
    user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach us instead of Hydra's printer
    try:
        hydra_main()
    except (HydraException, OmegaConfBaseException) as e:
        if user_full_error:
            raise
        print(f"error: {describe_config_error(e)}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # Hydra could not create or write the run directory (hydra.run.dir)
        if user_full_error:
            raise
        print(f"error: {describe_os_error(e, where='the run directory (hydra.run.dir)')}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
