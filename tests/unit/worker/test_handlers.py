from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conveyor import Context, HandlerRegistry, handler
from conveyor.exceptions import ConfigurationError
from conveyor.worker.handlers import load_handlers, spec_of


def test_the_decorator_records_a_spec_and_returns_the_function_unchanged() -> None:
    @handler("greet", auto_ack=True, timeout_s=5)
    async def greet(context: Context) -> None:
        pass

    spec = spec_of(greet)
    assert spec is not None
    assert (spec.name, spec.auto_ack, spec.timeout_s, spec.is_async) == ("greet", True, 5, True)
    assert spec.function is greet
    assert spec.origin.endswith("greet")


def test_the_decorator_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        handler("")
    with pytest.raises(ValueError, match="timeout_s"):
        handler("x", timeout_s=0)
    with pytest.raises(TypeError, match="one argument"):

        @handler("x")
        def two(a: object, b: object) -> None:
            pass


def test_a_registry_is_explicit_and_refuses_two_handlers_with_one_name() -> None:
    @handler("a")
    def first(context: Context) -> None:
        pass

    @handler("a")
    def second(context: Context) -> None:
        pass

    registry = HandlerRegistry([first])
    registry.add(first)  # the same function again is fine
    assert registry.names() == ["a"] and "a" in registry and len(registry) == 1
    with pytest.raises(ConfigurationError, match="two handlers are named 'a'"):
        registry.add(second)
    with pytest.raises(TypeError, match="not decorated"):
        registry.add(print)
    assert HandlerRegistry().get("a") is None


def test_handlers_load_from_files_and_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "helper.py").write_text("PREFIX = 'hi'\n")
    (tmp_path / "jobs.py").write_text(
        "from conveyor import handler\nfrom helper import PREFIX\n\n"
        "@handler('one', auto_ack=True)\ndef one(context):\n    return PREFIX\n"
    )
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "more.py").write_text(
        "from conveyor import handler\n\n@handler('two')\nasync def two(context):\n    pass\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    registry = load_handlers([str(tmp_path / "jobs.py"), "pkg.more"])
    assert registry.names() == ["one", "two"]
    spec = registry.get("one")
    assert spec is not None and spec.function(None) == "hi"  # type: ignore[arg-type]


def test_loading_errors_say_what_went_wrong(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("x = 1\n")
    (tmp_path / "bad.py").write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(ConfigurationError, match="defines no @handler"):
        load_handlers([str(tmp_path / "empty.py")])
    with pytest.raises(ConfigurationError, match="RuntimeError: boom at import"):
        load_handlers([str(tmp_path / "bad.py")])
    with pytest.raises(ConfigurationError, match="no such handlers file"):
        load_handlers([str(tmp_path / "missing.py")])
    with pytest.raises(ConfigurationError, match="No module named"):
        load_handlers(["surely.not.a.module"])
    with pytest.raises(ConfigurationError, match="no handlers given"):
        load_handlers([])
