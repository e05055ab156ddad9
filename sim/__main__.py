import sys

from sim.process import prepare

prepare()  # numba's cache folder and Arrow's allocator, before either is imported (sim/process.py)
try:
    from sim.cli import main

    code = main()
except KeyboardInterrupt:  # a Ctrl-C outside main()'s handlers (while importing, or on the way out)
    from sim.cli import interrupted_exit

    code = interrupted_exit()
sys.exit(code)
