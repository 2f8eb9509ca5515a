import sys

from tmplc.cli import main

sys.exit(main())
