import sys

try:
    from .cli import main

    code = main()
except KeyboardInterrupt:  # a Ctrl-C outside main()'s handlers (while importing, or on the way out)
    from .cli import interrupted_exit

    code = interrupted_exit()
sys.exit(code)
