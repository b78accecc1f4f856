"""``python -m aipk``: the ``aipk`` command (see `aipk.cli`)."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
