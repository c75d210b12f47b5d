"""What every command line shares: argparse whose usage errors are one line, and run(), which
turns a UserError into one line on stderr and exit code 2 and a ^C into a one-line message
that says what was kept (exit code 130)."""
import argparse
import os
import signal
import sys

from .errors import UserError
from .io import on_interrupt


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is one --help away), and no
    abbreviations: `-t` must not silently mean `-td` in a stage that has no `-t`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def _get_option_tuples(self, option_string):
        # allow_abbrev does not cover single-dash flags: keep only the attached-value form of a
        # short flag (-g0), never a prefix of a longer one (-t for -td)
        return [t for t in super()._get_option_tuples(option_string) if t[1] == option_string[:2]]

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(main, interrupted="interrupted; nothing was written"):
    """Run a command's main(); `interrupted` is what a ^C leaves behind, said truthfully.

    A ^C stops the process at once with that line (exit code 130) instead of raising
    KeyboardInterrupt into whatever runs: one raised inside an import (torch and numpy load for
    seconds, inside main()) can leave a module half-imported and end in another traceback.
    Stopping anywhere is safe: outputs are renamed into place only when complete, a ^C during
    those renames waits for them (common/io.py), the lock dies with the process, and a
    temporary left behind is removed by the next write of its file."""
    def stop():
        sys.stderr.write(f"\n{interrupted}\n")
        sys.stderr.flush()
        os._exit(130)

    signal.signal(signal.SIGINT, lambda *_: on_interrupt(stop))
    try:
        code = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
