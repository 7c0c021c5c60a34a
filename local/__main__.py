"""``python -m local up|down|status|env``: manage the local emulator stack."""

from local.stack import main

raise SystemExit(main())
