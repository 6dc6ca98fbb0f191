import sys

from jmrn.cli import main

sys.exit(main())
