"""Regenerate the Python code for every proto under ``protos/`` into ``src/fleet_emulator/_gen``.

Runs ``grpc_tools.protoc`` with the mypy-protobuf plugins (messages, gRPC stubs and ``.pyi`` type stubs for
both), then rewrites the absolute imports between generated modules so that they live inside the
``fleet_emulator._gen`` package instead of claiming top-level names like ``moia``. ``--check`` regenerates
into a temporary folder and fails when the committed code differs, which is how ``make test`` catches stale
generated code.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
TARGET = ROOT / "src" / "fleet_emulator" / "_gen"
BIN = Path(sys.executable).parent
LOCAL_ROOTS = sorted({p.relative_to(PROTOS).parts[0] for p in PROTOS.rglob("*.proto")})
IMPORT_RE = re.compile(rf"^(from|import) ({'|'.join(LOCAL_ROOTS)})(\.| )", re.MULTILINE)


def generate(out: Path) -> None:
    """Run protoc for every proto file into ``out`` and make it an importable package tree."""
    import grpc_tools

    protos = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    result = subprocess.run(cmd, cwd=PROTOS, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"protoc failed:\n{result.stderr}")
    for path in out.rglob("*.py*"):
        text = IMPORT_RE.sub(r"\1 fleet_emulator._gen.\2\3", path.read_text())
        path.write_text(text)
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()


def differences(left: Path, right: Path) -> list[str]:
    """Relative paths of files that are missing on one side or differ between the two trees."""
    names = {p.relative_to(left) for p in left.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    names |= {p.relative_to(right) for p in right.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    return sorted(
        str(n)
        for n in names
        if not (left / n).is_file()
        or not (right / n).is_file()
        or not filecmp.cmp(left / n, right / n, shallow=False)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    parser.add_argument("--target", type=Path, default=TARGET, help="folder of the generated package")
    args = parser.parse_args()
    target: Path = args.target
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "_gen"
        fresh.mkdir()
        generate(fresh)
        if args.check:
            stale = differences(fresh, target)
            if stale:
                print("generated code is stale; run `make gen` and commit:", *stale, sep="\n  ")
                return 1
            print("generated code is up to date")
            return 0
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(fresh, target)
    print(f"generated {sum(1 for _ in target.rglob('*.py*'))} files into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
