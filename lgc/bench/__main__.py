"""`python -m lgc.bench`: the sim-round benchmark (lgc/bench/sim_round.py)."""
import sys

from lgc.bench.sim_round import main

sys.exit(main())
