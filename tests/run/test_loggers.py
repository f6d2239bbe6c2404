"""run/loggers.py: no loggers for logger=none; CSV in the run directory for csv, with the final metrics (numbers
only) and the hyper-parameters."""

from __future__ import annotations

import csv

import yaml
from omegaconf import OmegaConf

from rise_exp.config.logger import LoggerConfig
from rise_exp.run.loggers import close_loggers, log_summary, make_loggers


def test_logger_none_makes_no_loggers(tmp_path):
    assert make_loggers(LoggerConfig(kind="none"), tmp_path, name="attribute") == []
    assert not list(tmp_path.iterdir())


def test_csv_logger_writes_the_numeric_metrics_and_the_config(tmp_path):
    loggers = make_loggers(LoggerConfig(kind="csv"), tmp_path, name="attribute")
    assert len(loggers) == 1
    config = OmegaConf.create({"method": {"name": "rise", "kr": "${k}"}, "k": 32})
    log_summary(loggers, {"auprc@10": 0.5, "num_train": 48, "index": "/some/dir"}, config=config)
    close_loggers(loggers)
    out = tmp_path / "csv" / "attribute"
    with open(out / "metrics.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["auprc@10"]) == 0.5 and float(row["num_train"]) == 48 and "index" not in row
    assert yaml.safe_load((out / "hparams.yaml").read_text())["method"] == {"name": "rise", "kr": 32}  # resolved
