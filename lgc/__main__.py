import sys

from lgc.cli import main

sys.exit(main())
