"""``python -m reliability_lab COMMAND ...``: the ``reliability-lab`` command (see ``cli``)."""

from reliability_lab.cli import main

raise SystemExit(main())
