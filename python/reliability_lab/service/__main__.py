"""``python -m reliability_lab.service [options]``: run the order service (see ``cli``)."""

from reliability_lab.service.cli import main

raise SystemExit(main())
