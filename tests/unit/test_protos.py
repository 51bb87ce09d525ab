"""The protos' guards: buf lint passes, buf breaking catches a breaking change, stale generated code fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
V1 = Path("moia/fleet/state/v1/fleet_state.proto")


def buf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "buf"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_buf_lint_passes() -> None:
    result = buf("lint", cwd=ROOT / "protos")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_passes_for_the_protos_as_they_are() -> None:
    result = buf("breaking", "protos", "--against", "protos/published.binpb", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_fails_on_a_breaking_change(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", protos)
    proto = protos / V1
    changed = proto.read_text().replace("  int32 seats = 5;", "  string seats = 5;")
    assert changed != proto.read_text()
    proto.write_text(changed)
    result = buf("breaking", "protos", "--against", str(ROOT / "protos" / "published.binpb"), cwd=tmp_path)
    assert result.returncode != 0
    assert "seats" in result.stdout + result.stderr


def test_buf_breaking_accepts_an_added_field(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", protos)
    proto = protos / V1
    proto.write_text(
        proto.read_text().replace("  string etag = 12;", "  string etag = 12;\n  string note = 13;")
    )
    result = buf("breaking", "protos", "--against", str(ROOT / "protos" / "published.binpb"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def gen_check(target: Path) -> subprocess.CompletedProcess[str]:
    script = ROOT / "scripts" / "gen_protos.py"
    return subprocess.run(
        [sys.executable, str(script), "--check", "--target", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_generated_code_check_passes_on_the_committed_code() -> None:
    result = gen_check(ROOT / "src" / "fleet_emulator" / "_gen")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_code_check_fails_when_stale(tmp_path: Path) -> None:
    stale = tmp_path / "_gen"
    shutil.copytree(
        ROOT / "src" / "fleet_emulator" / "_gen", stale, ignore=shutil.ignore_patterns("__pycache__")
    )
    stub = stale / "moia/fleet/state/v2/fleet_state_pb2.pyi"
    stub.write_text(stub.read_text() + "\n# edited by hand\n")
    result = gen_check(stale)
    assert result.returncode == 1
    assert "moia/fleet/state/v2/fleet_state_pb2.pyi" in result.stdout
