"""Check the wheels and the sdist of a dist/ folder before they are published.

- `auditwheel show` finds every glibc Linux wheel consistent with manylinux_2_17 for its
  architecture (every musl one with musllinux_1_2), and the file name carries that tag;
- `twine check --strict` accepts every file (metadata, README rendering);
- every wheel and sdist holds LICENSE, cachebolt/py.typed, cachebolt/_core.pyi, cachebolt/cli.py
  and every cachebolt/_bench/*.py and cachebolt/lua/*.lua of the source tree (a wheel also its
  compiled `cachebolt/_core`).

Run: `python scripts/check_dist.py [DIST]` (default dist/); exits 1 after listing every problem.
`make wheel` runs it; auditwheel and twine are pinned in requirements/wheel.txt.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "cachebolt"
# Linux policies of the published wheels: glibc >= 2.17 (manylinux2014) and musl >= 1.2.
POLICIES = {"manylinux": "manylinux_2_17", "musllinux": "musllinux_1_2"}
LINUX_TAG = re.compile(r"(?:(?:many|musl)linux(?:_\d+_\d+|\d+)?|linux)_(?P<arch>\w+)")


def package_files() -> list[str]:
    """The files under `cachebolt/` that every distribution must carry."""
    lua = sorted(f"cachebolt/lua/{path.name}" for path in (PACKAGE / "lua").glob("*.lua"))
    if not lua:
        raise SystemExit(f"no Lua scripts under {PACKAGE / 'lua'}")
    # The harness of `cachebolt bench` ships too: the installed command runs it.
    bench = sorted(f"cachebolt/_bench/{path.name}" for path in (PACKAGE / "_bench").glob("*.py"))
    return ["cachebolt/py.typed", "cachebolt/_core.pyi", "cachebolt/cli.py", *bench, *lua]


def linux_problems(wheel: Path) -> list[str]:
    """A Linux wheel must carry the tag of its policy, and `auditwheel show` must agree."""
    tags = wheel.name.removesuffix(".whl").split("-")[-1].split(".")
    linux = [match for match in map(LINUX_TAG.fullmatch, tags) if match]
    if not linux:
        return []  # macOS or Windows
    family = "musllinux" if linux[0][0].startswith("musllinux") else "manylinux"
    expected = f"{POLICIES[family]}_{linux[0]['arch']}"
    problems = [] if expected in tags else [f"{wheel.name}: no {expected} tag in the file name"]
    auditwheel = [sys.executable, "-m", "auditwheel", "show"]
    # The human report for the log; the decision on the JSON one.
    subprocess.run([*auditwheel, str(wheel)], check=False)
    shown = subprocess.run(
        [*auditwheel, "--json", str(wheel)], capture_output=True, text=True, check=False
    )
    try:
        overall = json.loads(shown.stdout)["overall_tag"]
    except (ValueError, KeyError):
        last = (shown.stderr.strip().splitlines() or ["no output"])[-1]
        overall = f"nothing readable ({last})"
    if overall != expected:
        problems.append(f"{wheel.name}: auditwheel show says {overall}, not {expected}")
    return problems


def wheel_problems(wheel: Path, wanted: list[str]) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    problems = [f"{wheel.name}: no {name}" for name in wanted if name not in names]
    if not any(re.fullmatch(r"[^/]+\.dist-info/licenses/LICENSE", name) for name in names):
        problems.append(f"{wheel.name}: no LICENSE in its .dist-info/licenses/")
    if not any(re.fullmatch(r"cachebolt/_core\.[^/]*(so|pyd)", name) for name in names):
        problems.append(f"{wheel.name}: no compiled cachebolt/_core extension")
    return problems + linux_problems(wheel)


def sdist_problems(sdist: Path, wanted: list[str]) -> list[str]:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = ["LICENSE", "pyproject.toml", "Cargo.toml", *(f"python/{name}" for name in wanted)]
    return [f"{sdist.name}: no {name}" for name in needed if name not in names]


def main(argv: list[str]) -> int:
    dist = Path(argv[0]) if argv else ROOT / "dist"
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    problems = [] if wheels else [f"no wheel in {dist}"]
    problems += [] if sdists else [f"no sdist in {dist}"]
    wanted = package_files()
    for wheel in wheels:
        problems += wheel_problems(wheel, wanted)
    for sdist in sdists:
        problems += sdist_problems(sdist, wanted)
    files = [str(path) for path in (*wheels, *sdists)]
    if files:
        twine = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files])
        if twine.returncode != 0:
            problems.append("twine check --strict failed (see above)")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"OK {len(wheels)} wheel(s), {len(sdists)} sdist(s): {', '.join(wanted)} and LICENSE")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
