"""The README's Python example runs as written; its Quickstart has exactly two commands."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_example_runs(tmp_path) -> None:
    code = _blocks("python")[0].replace('"runs/api-example"', repr(str(tmp_path / "run")))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["video"].shape[0] == 32 and scope["look"].shape[0] == 8
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_quickstart_is_two_commands() -> None:
    quick = README.read_text().split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", quick, flags=re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]


def test_every_config_key_is_documented() -> None:
    import dataclasses

    from skd.config import Config

    doc = (README.parent / "docs" / "CONFIG.md").read_text()
    for section in dataclasses.fields(Config):
        part = doc.split(f"## [{section.name}]", 1)[1].split("\n## ", 1)[0]
        for f in dataclasses.fields(getattr(Config(), section.name)):
            assert f"| `{f.name}` |" in part, f"{section.name}.{f.name} missing from docs/CONFIG.md"
