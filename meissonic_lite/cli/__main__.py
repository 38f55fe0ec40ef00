"""`python -m meissonic_lite.cli ...` = `meissonic-lite ...` (every chapter;
chapter 6 runs it under torchrun)."""

from .main import main

main()
