"""Print the requirements of pyproject.toml (runtime plus the named extras), one per line.

`make` installs test and bench dependencies from this list, so pyproject.toml stays the one place
that names them and no editable build is triggered just to install dependencies.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def main(extras: list[str]) -> None:
    project = tomllib.loads(Path(__file__).parent.parent.joinpath("pyproject.toml").read_text())[
        "project"
    ]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    print("\n".join(dict.fromkeys(requirements)))


if __name__ == "__main__":
    main(sys.argv[1:])
