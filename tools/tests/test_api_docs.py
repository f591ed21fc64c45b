"""The API reference check (tools/check_api_docs.py) and what it guards.

The whole site is built and checked by `make docs` (CI runs it); here the check itself is
tested on a real, small mkdocstrings build of one package, and the source-side rules (every
public name has a docstring; every public module has a reference page) on every package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tideflow.core.autoscaler"


def _load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_api_docs", ROOT / "tools" / "check_api_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


check_api_docs = _load_check()


@pytest.fixture(scope="module")
def small_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real strict mkdocs build of one reference page: `::: tideflow.core.autoscaler`."""
    folder = tmp_path_factory.mktemp("docs-site")
    (folder / "docs" / "reference").mkdir(parents=True)
    (folder / "docs" / "index.md").write_text("# Small\n")
    (folder / "docs" / "reference" / "autoscaler.md").write_text(f"# Autoscaler\n\n::: {MODULE}\n")
    paths = "\n".join(f"            - {ROOT / p}" for p in check_api_docs.SEARCH_PATHS)
    (folder / "mkdocs.yml").write_text(
        "site_name: small\n"
        "theme: {name: material}\n"
        "plugins:\n"
        "  - mkdocstrings:\n"
        "      handlers:\n"
        "        python:\n"
        "          paths:\n"
        f"{paths}\n"
        f"          options: {{extensions: [{ROOT / check_api_docs.GRIFFE_EXTENSION}],"
        " filters: public, show_root_heading: true, merge_init_into_class: true,"
        " show_if_no_docstring: true, heading_level: 2}\n"
    )
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"],
        cwd=folder,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    return folder / "site"


def _copy_site(site: Path, into: Path) -> Path:
    """The built reference pages (all the check reads), to change in a test."""
    target = into / "site"
    shutil.copytree(site / "reference", target / "reference")
    return target


def _page(site: Path) -> Path:
    return site / "reference" / "autoscaler" / "index.html"


def test_a_complete_reference_passes(small_site: Path) -> None:
    problems, checked = check_api_docs.check(ROOT, small_site, modules=(MODULE,))
    assert problems == []
    assert checked == len(importlib.import_module(MODULE).__all__)


def test_a_name_missing_from_the_reference_is_listed(small_site: Path, tmp_path: Path) -> None:
    site = _copy_site(small_site, tmp_path)
    page = _page(site)
    page.write_text(page.read_text().replace(f'id="{MODULE}.PoolScaler"', 'id="gone"'))
    problems, _ = check_api_docs.check(ROOT, site, modules=(MODULE,))
    assert [(p.name, p.reason.split(" (")[0]) for p in problems] == [
        ("PoolScaler", "not in the API reference")
    ]


def test_a_name_shown_without_its_docstring_is_listed(small_site: Path, tmp_path: Path) -> None:
    site = _copy_site(small_site, tmp_path)
    page = _page(site)
    text = page.read_text()
    heading = text.index(f'id="{MODULE}.ScalingConfig"')
    start = text.index("<p>", text.index('<div class="doc doc-contents', heading))
    end = text.index("</p>", start)
    page.write_text(text[:start] + "<p>Something else entirely." + text[end:])
    problems, _ = check_api_docs.check(ROOT, site, modules=(MODULE,))
    assert [(p.name, p.reason) for p in problems] == [
        ("ScalingConfig", "shown without its docstring")
    ]


def test_a_name_without_a_docstring_is_listed() -> None:
    names = [
        check_api_docs.PublicName("pkg", "documented", ("pkg.documented",), "Says what it is."),
        check_api_docs.PublicName("pkg", "bare", ("pkg.bare", "pkg._impl.bare"), ""),
        check_api_docs.PublicName("pkg", "ghost", ("pkg.ghost",), None),
    ]
    problems = check_api_docs.docstring_problems(names)
    assert [str(p) for p in problems] == [
        "pkg.bare: no docstring (pkg._impl.bare)",
        "pkg.ghost: cannot be found in the sources",
    ]


def test_every_public_name_has_a_docstring() -> None:
    names = check_api_docs.public_names(ROOT)
    assert len(names) > 300
    assert [str(p) for p in check_api_docs.docstring_problems(names)] == []


def test_every_public_module_has_a_reference_page() -> None:
    pages = "\n".join(p.read_text() for p in (ROOT / "docs" / "reference").glob("*.md"))
    directives = set(re.findall(r"^::: ([\w.]+)$", pages, flags=re.MULTILINE))
    assert set(check_api_docs.PUBLIC_MODULES) - directives == set()
