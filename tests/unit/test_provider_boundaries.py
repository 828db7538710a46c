"""The provider boundary holds: only a provider's own package (and the registry) names it.

Adding a provider must stay one package and one registry line, so no module
outside ``providers/<kind>/`` may import a provider package, and no module may
keep its own list of provider kinds.
"""

from __future__ import annotations

import ast
from pathlib import Path

from wabroadcast.providers.registry import PLUGINS

SRC = Path(__file__).resolve().parents[2] / "src" / "wabroadcast"
# Kinds that exist only as names elsewhere (in docs, plans): a list of them is a
# hand-kept list all the same.
ALL_KIND_NAMES = set(PLUGINS) | {"baileys", "waha", "evolution"}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in SRC.rglob("*.py")]


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _owner(path: Path) -> str | None:
    """The provider kind whose package ``path`` is in, if any."""
    parts = path.relative_to(SRC).parts
    if len(parts) >= 3 and parts[0] == "providers":
        return parts[1]
    return None


def test_no_module_outside_a_provider_package_imports_it() -> None:
    offenders = []
    for path, tree in _modules():
        relative = path.relative_to(SRC).as_posix()
        for name in _imported(tree):
            for kind in PLUGINS:
                package = f"wabroadcast.providers.{kind}"
                if name != package and not name.startswith(package + "."):
                    continue
                if _owner(path) == kind:
                    continue
                # The registry imports each plug-in package itself, nothing inside it.
                if relative == "providers/registry.py" and name == package:
                    continue
                offenders.append(f"{relative} imports {name}")
    assert offenders == []


def test_the_registry_is_the_only_list_of_provider_kinds() -> None:
    lists = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            items: list[ast.expr | None] = []
            if isinstance(node, ast.Set | ast.List | ast.Tuple):
                items = list(node.elts)
            elif isinstance(node, ast.Dict):
                items = list(node.keys)
            kinds = {
                item.value
                for item in items
                if isinstance(item, ast.Constant) and item.value in ALL_KIND_NAMES
            }
            if len(kinds) >= 2:
                line = getattr(node, "lineno", 0)
                lists.append(f"{path.relative_to(SRC).as_posix()}:{line} {sorted(kinds)}")
    assert lists == []


def test_every_plugin_is_complete() -> None:
    for kind, plugin in PLUGINS.items():
        assert plugin.kind == kind
        assert plugin.title
        assert plugin.default_max_concurrency >= 1
        assert set(plugin.secret_fields) <= set(plugin.config_model.model_fields)
        assert set(plugin.form_fields) <= set(plugin.config_model.model_fields)
