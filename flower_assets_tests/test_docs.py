"""The documentation stays true: generated pages current, every named path, module and symbol real.

What is checked in README.md, README.ko.md and docs/*.md:
- links `[text](target)` to files of the repository (relative to the page);
- backticked repository paths (`flower_assets/…`, `benchmarks/…`, `deploy/…`, `docs/…`, …), paths
  relative to the package (`source/client.py`), bare file names (`test_faults_http.py`), with a
  pytest node id (`…::test_x`) cut off; in code blocks, paths rooted at the repository;
- dotted modules (`flower_assets.market.history`, `python -m flower_assets.docs`), and what follows
  the module in the same name (`flower_assets.sample.fake_at_server.FakeAtServer`);
- `module.symbol` (`client.AtFlowerClient.fetch_day`, `transform/names.canonical_name`) where the
  module is named like one of ours, and `Class.member` where the class is one of ours;
- `path.py` (`symbol`, …): names listed in parentheses right after a backticked Python file.
Symbols are looked up by parsing the modules with `ast`, never by importing them. A name with an
ellipsis (`…`) or a placeholder (`<asset>`) is an abbreviation and is not checked.
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flower_assets import docs

REPO = Path(__file__).resolve().parent.parent
README_MAX_LINES = 220

# Top-level folders and files whose paths the pages name from the repository root.
ROOTED = re.compile(
    r"^(flower_assets|flower_assets_tests|benchmarks|deploy|docs|\.ci)(/|$)|"
    r"^(README(\.ko)?\.md|CHANGELOG\.md|dagster\.yaml|workspace\.yaml|pyproject\.toml|uv\.lock)$"
)
PATH_LIKE = re.compile(r"^[\w.\-]+(/[\w.\-*]+)*/?$")
FILE_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".sql", ".ini", ".toml", ".mako", ".lock")
# Files the code writes (reports, warehouses), not files of the repository, unless rooted.
OUTPUT_SUFFIXES = (".html", ".sqlite", ".log", ".json", ".js", ".css", ".j2")
IDENT = r"[A-Za-z_]\w*"
DOTTED = re.compile(rf"^(?:[\w/]+/)?{IDENT}(?:\.{IDENT})+$")
# Namespaces and objects of other projects that pages name as `name.member`.
EXTERNAL = {
    "dg",
    "dagster",
    "pl",
    "polars",
    "pa",
    "pandera",
    "op",
    "os",
    "sa",
    "httpx",
    "msgspec",
    "alembic_version",  # Dagster's and Alembic's own table
    "event_log_storage",  # a Dagster instance's attribute
}


@functools.cache
def _tracked() -> tuple[Path, ...]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return tuple(Path(line) for line in out.splitlines() if (REPO / line).exists())


@functools.cache
def _by_name() -> dict[str, list[Path]]:
    names: dict[str, list[Path]] = {}
    for path in _tracked():
        names.setdefault(path.name, []).append(path)
    return names


@functools.cache
def _python_modules() -> dict[str, list[Path]]:
    """Module base name (`client`, `fake_at_server`) -> our files that define it."""
    modules: dict[str, list[Path]] = {}
    for path in _tracked():
        if path.suffix == ".py" and path.parts[0] in ("flower_assets", "benchmarks"):
            name = path.parent.name if path.stem == "__init__" else path.stem
            modules.setdefault(name, []).append(path)
    return modules


@functools.cache
def _tables() -> dict[str, set[str]]:
    """Warehouse table -> its columns, read from the pandera models in warehouse/schemas.py."""
    tables: dict[str, set[str]] = {}
    for node in ast.walk(_tree(Path("flower_assets/warehouse/schemas.py"))):
        if not isinstance(node, ast.ClassDef):
            continue
        columns = {
            item.target.id
            for item in node.body
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
        }
        for item in ast.walk(node):
            if isinstance(item, ast.Dict):
                for key, value in zip(item.keys, item.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "table"
                        and isinstance(value, ast.Constant)
                    ):
                        tables.setdefault(value.value, columns)
    return tables


@functools.cache
def _tree(path: Path) -> ast.Module:
    """The module's syntax tree; a file that does not parse (being edited) defines everything."""
    try:
        return ast.parse((REPO / path).read_text(encoding="utf-8"))
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def _parses(path: Path) -> bool:
    return bool(_tree(path).body) or not (REPO / path).read_text(encoding="utf-8").strip()


@functools.cache
def _classes() -> dict[str, list[tuple[Path, ast.ClassDef]]]:
    found: dict[str, list[tuple[Path, ast.ClassDef]]] = {}
    for paths in _python_modules().values():
        for path in paths:
            for node in ast.walk(_tree(path)):
                if isinstance(node, ast.ClassDef):
                    found.setdefault(node.name, []).append((path, node))
    return found


def _defined(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names a module or class body defines: functions, classes, assignments, imports."""
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                names.update(_defined(getattr(node, block, [])))
            for handler in getattr(node, "handlers", []):
                names.update(_defined(handler.body))
    return names


def _instance_attributes(cls: ast.ClassDef) -> set[str]:
    return {
        node.attr
        for node in ast.walk(cls)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and isinstance(node.ctx, ast.Store)
    }


def _member_missing(path: Path, chain: list[str]) -> str | None:
    """The first name of `chain` that module `path` (then each class on the way) lacks."""
    if not _parses(path):
        return None
    scope = _defined(_tree(path).body)
    for name in chain:
        node = scope.get(name)
        if node is None:
            return name
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            return None  # re-exported from elsewhere: its own page is checked there
        if not isinstance(node, ast.ClassDef):
            return None  # a function's or a value's attributes are not followed
        scope = _defined(node.body) | dict.fromkeys(_instance_attributes(node), node)
    return None


def _module_file(dotted: str) -> Path | None:
    base = Path(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (REPO / candidate).is_file():
            return candidate
    return None


def _resolve_path(text: str, page: Path) -> bool:
    """Whether a path a page names exists: from the root, the package, the tests or by name."""
    if text.endswith("/") and "/" not in text[:-1]:
        # A folder named by itself (`migrations/`): one of the repository's folders.
        return any(text[:-1] in path.parts[:-1] for path in _tracked())
    text = text.rstrip("/")
    if "*" in text:
        return any(REPO.glob(text)) or any((REPO / "flower_assets").glob(text))
    if ROOTED.match(text):
        return (REPO / text).exists()
    if "/" not in text:
        return text in _by_name() or (REPO / text).exists()
    return any(
        (base / text).exists()
        for base in (REPO, REPO / "flower_assets", REPO / "flower_assets_tests", page.parent)
    )


@dataclass(frozen=True)
class Reference:
    page: str
    line: int
    text: str
    kind: str


def _is_abbreviated(text: str) -> bool:
    return "…" in text or "<" in text or "..." in text


def _references(rel: str, text: str) -> Iterator[Reference]:
    """What page `rel` (a path from the repository root) with `text` names."""
    in_code = False
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            for word in re.findall(r"[\w./\-]+", line):
                word = word.rstrip(".")
                if ROOTED.match(word) and "/" in word and not _is_abbreviated(word):
                    yield Reference(rel, number, word, "path")
            for module in re.findall(r"-m (flower_assets(?:\.\w+)*)", line):
                yield Reference(rel, number, module, "dotted")
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if not re.match(r"^[a-z]+:", target) and not target.startswith("#"):
                yield Reference(rel, number, target.split("#")[0], "link")
        spans = list(re.finditer(r"`([^`]+)`", line))
        for span in spans:
            yield from _span_references(rel, number, span.group(1))
        # `path.py` (`symbol`, `symbol`): names in parentheses right after a Python file.
        for match in re.finditer(r"`([\w/]+\.py)` \(((?:`\w+`(?:, )?)+)\)", line):
            for symbol in re.findall(r"`(\w+)`", match.group(2)):
                yield Reference(rel, number, f"{match.group(1)}::{symbol}", "file-symbol")


def _span_references(rel: str, number: int, span: str) -> Iterator[Reference]:
    for word in span.split():
        word = word.strip(",;:()'\"").removesuffix("()")
        if not word or _is_abbreviated(word) or "=" in word or "://" in word:
            continue
        if word.startswith(("/", ".", "$", "~")) and not ROOTED.match(word):
            continue  # a path on the machine that runs it, not in the repository
        path = word.split("::")[0]
        if path.endswith(OUTPUT_SUFFIXES) and not ROOTED.match(path):
            continue
        if path.endswith(FILE_SUFFIXES) or (
            "/" in path and (ROOTED.match(path) or path.endswith("/"))
        ):
            if PATH_LIKE.match(path) or "*" in path:
                yield Reference(rel, number, path, "path")
            continue
        if re.match(r"^flower_assets(\.\w+)+$", word):
            yield Reference(rel, number, word, "dotted")
        elif DOTTED.match(word):
            yield Reference(rel, number, word, "symbol")


def _problem(ref: Reference) -> str | None:
    """Why a reference does not hold, or None when it does."""
    page = REPO / ref.page
    if ref.kind == "link":
        target = (page.parent / ref.text).resolve()
        return None if target.exists() else "no such file"
    if ref.kind == "path":
        return None if _resolve_path(ref.text, page) else "no such file"
    if ref.kind == "file-symbol":
        path_text, symbol = ref.text.split("::")
        files = [p for p in _tracked() if p.as_posix().endswith(path_text) and p.suffix == ".py"]
        if not files:
            return None  # the path itself is reported on its own
        if any(
            symbol
            in {n.id for n in ast.walk(_tree(p)) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(_tree(p)) if isinstance(n, ast.Attribute)}
            | {n.arg for n in ast.walk(_tree(p)) if isinstance(n, ast.arg)}
            | set(_defined(_tree(p).body))
            | {
                n.name
                for n in ast.walk(_tree(p))
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            }
            | {
                n.value
                for n in ast.walk(_tree(p))
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
            for p in files
        ):
            return None
        return f"{symbol} is not in {path_text}"
    if ref.kind == "dotted":
        parts = ref.text.split(".")
        for cut in range(len(parts), 0, -1):
            path = _module_file(".".join(parts[:cut]))
            if path is not None:
                missing = _member_missing(path, parts[cut:]) if parts[cut:] else None
                return None if missing is None else f"{path} defines no {missing}"
        return "no such module"
    # symbol: `module.name…`, `pkg/module.name…` or `Class.member…`
    head, *chain = ref.text.split(".")
    folder = ""
    if "/" in head:
        folder, head = head.rsplit("/", 1)
    if head in EXTERNAL:
        return None
    if head in _tables() and not folder:
        if len(chain) == 1 and chain[0] in _tables()[head]:
            return None
        return f"table {head} has no column {'.'.join(chain)}"
    modules = [
        p
        for p in _python_modules().get(head, [])
        if not folder
        or (p.parent if p.stem != "__init__" else p.parent.parent).as_posix().endswith(folder)
    ]
    if modules:
        if any(_member_missing(p, chain) is None for p in modules):
            return None
        return f"{' or '.join(map(str, modules))} defines no {'.'.join(chain)}"
    if head[:1].isupper():
        classes = _classes().get(head)
        if not classes:
            return None  # another project's class (Dagster's, pandera's)
        for path, cls in classes:
            scope = _defined(cls.body) | dict.fromkeys(_instance_attributes(cls))
            if chain[0] in scope or cls.bases:
                return None if chain[0] in scope else _inherited(path, cls, chain[0])
        return f"class {head} has no {chain[0]}"
    if head.islower() and head.isidentifier() and not folder:
        # Named like a module of ours (`parsing.ITEM_FIELDS`), but there is none by that name.
        return f"no module {head}.py in flower_assets/ or benchmarks/"
    return "no such module" if folder else None


def _inherited(path: Path, cls: ast.ClassDef, member: str) -> str | None:
    """A member not in the class body: fine when a base is another project's class."""
    for base in cls.bases:
        name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
        ours = _classes().get(name)
        if not ours:
            return None
        for _, parent in ours:
            if member in _defined(parent.body) or member in _instance_attributes(parent):
                return None
    return f"class {cls.name} ({path}) has no {member}"


def _pages() -> list[Path]:
    return [REPO / "README.md", REPO / "README.ko.md", *sorted((REPO / "docs").glob("*.md"))]


def stale_references() -> list[str]:
    found = []
    for page in _pages():
        if not page.exists():
            continue
        for ref in _references(page.relative_to(REPO).as_posix(), page.read_text("utf-8")):
            problem = _problem(ref)
            if problem:
                found.append(f"{ref.page}:{ref.line}: `{ref.text}`: {problem}")
    return found


def test_the_generated_pages_are_current() -> None:
    assert docs.stale_pages() == [], "run `uv run python -m flower_assets.docs` and commit"


def test_the_pages_name_only_paths_modules_and_symbols_that_exist() -> None:
    stale = stale_references()
    assert not stale, "stale references:\n" + "\n".join(stale)


def test_the_readme_is_short_and_links_the_korean_one() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    assert "README.ko.md" in lines[0], "the first line of README.md links README.ko.md"
    assert (REPO / "README.ko.md").is_file()


@pytest.mark.parametrize(
    "text, problem",
    [
        ("`flower_assets/schemas.py`", "no such file"),
        ("`flower_assets/corrections.py`", "no such file"),
        ("the split cache (`split_cache.py`)", "no such file"),
        ("update `parsing.ITEM_FIELDS`", "no module parsing.py"),
        ("`flower_assets.sample.fake_at_server.NoSuchServer`", "defines no NoSuchServer"),
        ("`client.AtFlowerClient.no_such_method`", "defines no AtFlowerClient.no_such_method"),
        ("`source/client.py` (`no_such_function`)", "no_such_function is not in"),
        ("[gone](docs/no-such-page.md)", "no such file"),
    ],
)
def test_the_reference_check_catches_stale_names(text: str, problem: str) -> None:
    problems = [_problem(ref) for ref in _references("docs/probe.md", text)]
    assert any(p and problem in p for p in problems), problems


@pytest.mark.parametrize(
    "text",
    [
        "`flower_assets/source/client.py`, `source/cache.py`, `test_faults_http.py::test_x`",
        "`flower_assets.sample.fake_at_server.FakeAtServer`, `client.AtFlowerClient.fetch_day`",
        "`dg.load_from_defs_folder`, `BackfillPolicy.multi_run(100)`, `dagster.yaml`",
        "`source/client.py` (`redact`, `RetryPolicy`)",
        "`…[read-timeout]`, `<asset>_checks`",
    ],
)
def test_the_reference_check_accepts_real_names(text: str) -> None:
    problems = [_problem(ref) for ref in _references("docs/probe.md", text)]
    assert not any(problems), problems


# Built from parts, so that this file does not cite them itself.
_OUTSIDE = re.compile("|".join(("\\.\\./" + "shared/", "the API " + "notes", "/work/" + "shared")))


def test_nothing_cites_notes_outside_the_repository() -> None:
    """Code and docs cite docs/ (docs/at-api.md for the API's facts), never notes beside the repo."""
    found = [
        f"{path}:{number}: {line.strip()}"
        for path in _tracked()
        if path.suffix in (".py", ".md", ".yaml", ".toml") and path.name != "CHANGELOG.md"
        for number, line in enumerate(
            (REPO / path).read_text(encoding="utf-8", errors="replace").splitlines(), start=1
        )
        if _OUTSIDE.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_docs_pages_the_code_cites_exist() -> None:
    # docs.py writes the generated pages; this file names pages that must not exist.
    skip = {Path("flower_assets/docs.py"), Path(__file__).relative_to(REPO)}
    cited = {
        (path, page)
        for path in _tracked()
        if path.suffix == ".py" and path not in skip
        for page in re.findall(r"docs/[\w.-]+\.md", (REPO / path).read_text(encoding="utf-8"))
    }
    missing = sorted(f"{path} cites {page}" for path, page in cited if not (REPO / page).is_file())
    assert not missing, "\n".join(missing)
