"""The `meissonic-lite` command (every chapter): one face over the package.

`main` is the console script's entry point; `build_parser` and `COMMANDS`
describe the subcommands, each registered from its own file here.
"""

from .main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
