"""The rules the folders stand for, checked on the imports themselves."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gptrelay"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, and every ``module.name`` it imports by name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(folder: str = "") -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_wire_imports_nothing_of_gptrelay_but_errors_and_itself() -> None:
    for path in modules("wire"):
        ours = {name for name in imports(path) if name.startswith("gptrelay")}
        assert all(name == "gptrelay.errors" or name.startswith(("gptrelay.errors.", "gptrelay.wire."))
                   for name in ours), (path.name, ours)
        assert not any(name.startswith(("aiohttp", "asyncio")) for name in imports(path)), path.name


def test_only_the_transport_knows_the_http_client() -> None:
    client_names = ("aiohttp.ClientSession", "aiohttp.ClientResponse", "aiohttp.TCPConnector", "aiohttp.client",
                    "aiohttp_socks")
    for path in modules():
        if path.parent.name == "fake" or path == PACKAGE / "upstream" / "transport.py":
            continue
        text = path.read_text("utf-8")
        used = [name for name in client_names if name in text or name in imports(path)]
        assert not used, (str(path.relative_to(PACKAGE)), used)
