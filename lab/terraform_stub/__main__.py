"""`python -m lab.terraform_stub`: the lab's terraform."""

import sys

from lab.terraform_stub.cli import main

sys.exit(main())
