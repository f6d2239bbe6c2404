"""``python -m rise_exp.report <sweep dir>``: see :mod:`rise_exp.report.cli`."""

from rise_exp.report.cli import main

raise SystemExit(main())
