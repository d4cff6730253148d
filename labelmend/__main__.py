from labelmend.cli import main

raise SystemExit(main())
