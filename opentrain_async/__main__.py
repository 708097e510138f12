"""``python -m opentrain_async`` and the ``opentrain-async`` script: the command line.

The command line needs the ``cli`` extra (rich); without it this says how to install
it, in one line, instead of failing with an ImportError traceback.
"""

import sys

CLI_MISSING = (
    "opentrain-async: error: the command line needs the 'cli' extra: "
    "pip install 'opentrain-async[cli]'\n"
)


def main() -> int:
    """Run the command line, or explain how to install it."""
    try:
        import rich  # noqa: F401 - only checking that the cli extra is installed
    except ImportError:
        sys.stderr.write(CLI_MISSING)
        return 3
    from ._cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
