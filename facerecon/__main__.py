import sys

from facerecon.cli.main import main

sys.exit(main())
