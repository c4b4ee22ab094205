"""`python -m chatbot serve`."""

from chatbot.cli import main

raise SystemExit(main())
