from scorelink.cli import main

raise SystemExit(main())
