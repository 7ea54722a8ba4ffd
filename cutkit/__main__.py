import sys

from cutkit.cli import main

sys.exit(main())
