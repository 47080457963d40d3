"""``python -m automation_sdk.emulator``: serve the emulator until Ctrl-C."""

from ._serve import main

raise SystemExit(main())
