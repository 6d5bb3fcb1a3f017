"""`python -m appserver.client_cli`."""

from appserver.client_cli import main

raise SystemExit(main())
