"""Handlers: the `@handler` decorator, the registry a worker dispatches on, and loading.

`@handler("name")` only records a `HandlerSpec` on the function and returns the
function unchanged (it stays a plain, testable function). A `HandlerRegistry` is an
explicit object: the worker builds one from the modules and files given with
`--handlers`; there is no global registry.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.exceptions import ConfigurationError

if TYPE_CHECKING:
    from conveyor.worker.context import Context

HandlerFunction = Callable[["Context"], Awaitable[None] | None]
F = TypeVar("F", bound=Callable[..., Any])

#: The attribute `@handler` sets on the function it decorates.
MARKER = "__conveyor_handler__"
_NAME_LIMIT = 200


@dataclass(frozen=True)
class HandlerSpec:
    """A registered handler: its name, its function and how to run it."""

    name: str
    function: HandlerFunction
    #: Ack when the handler returns normally, without `context.runtime.ack_message()`.
    auto_ack: bool = False
    #: Cancel (and retry) after this long; None: the queue's visibility timeout.
    timeout_s: float | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    @property
    def origin(self) -> str:
        module = getattr(self.function, "__module__", "?")
        return f"{module}.{getattr(self.function, '__qualname__', repr(self.function))}"


def handler(
    name: str, *, auto_ack: bool = False, timeout_s: float | None = None
) -> Callable[[F], F]:
    """Register a function as the handler of messages whose `"handler"` field is `name`.

    The function takes one argument, the `Context`, and may be `async` or not (plain
    functions run in a thread pool). A message is done when the handler calls
    `context.runtime.ack_message()` and returns (or, with `auto_ack=True`, simply
    returns); otherwise it is retried with backoff, then dead-lettered.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > _NAME_LIMIT:
        raise ValueError(f"a handler name is a non-empty string of at most {_NAME_LIMIT} chars")
    if timeout_s is not None and not (0 < timeout_s < math.inf):
        raise ValueError("timeout_s must be a positive number of seconds")

    def decorate(function: F) -> F:
        _check_signature(name, function)
        setattr(function, MARKER, HandlerSpec(name, function, auto_ack, timeout_s))
        return function

    return decorate


def _check_signature(name: str, function: Callable[..., Any]) -> None:
    if not callable(function):
        raise TypeError(f"@handler({name!r}) decorates a function, not {function!r}")
    try:
        inspect.signature(function).bind(object())
    except TypeError:
        raise TypeError(
            f"@handler({name!r}): {function.__qualname__} must accept one argument, the context"
        ) from None
    except ValueError:  # builtins without a signature: trust the caller
        pass


def spec_of(function: object) -> HandlerSpec | None:
    spec = getattr(function, MARKER, None)
    return spec if isinstance(spec, HandlerSpec) else None


class HandlerRegistry:
    """Handlers by name; the worker dispatches each message's `"handler"` through it."""

    def __init__(self, handlers: Iterable[HandlerSpec | Callable[..., Any]] = ()) -> None:
        self._handlers: dict[str, HandlerSpec] = {}
        for item in handlers:
            self.add(item)

    def add(self, item: HandlerSpec | Callable[..., Any]) -> HandlerSpec:
        spec = item if isinstance(item, HandlerSpec) else spec_of(item)
        if spec is None:
            raise TypeError(f"{item!r} is not decorated with @handler(...)")
        existing = self._handlers.get(spec.name)
        if existing is not None and existing.function is not spec.function:
            raise ConfigurationError(
                f"two handlers are named {spec.name!r}: {existing.origin} and {spec.origin}"
            )
        self._handlers[spec.name] = spec
        return spec

    def collect(self, module: ModuleType) -> list[HandlerSpec]:
        """Add every `@handler` function defined or imported at the top of `module`."""
        found = [spec for value in vars(module).values() if (spec := spec_of(value))]
        return [self.add(spec) for spec in found]

    def get(self, name: str) -> HandlerSpec | None:
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[HandlerSpec]:
        return iter(self._handlers.values())

    def __len__(self) -> int:
        return len(self._handlers)


def load_handlers(sources: Iterable[str]) -> HandlerRegistry:
    """A registry of the handlers in these modules (`pkg.mod`) or files (`path/x.py`)."""
    registry = HandlerRegistry()
    for source in sources:
        module = import_source(source)
        if not registry.collect(module):
            raise ConfigurationError(f"{source} defines no @handler functions")
    if not registry:
        raise ConfigurationError("no handlers given: use --handlers MODULE_OR_FILE")
    return registry


def import_source(source: str) -> ModuleType:
    """Import a dotted module name, or a Python file by path, with a clear error."""
    path = Path(source)
    try:
        if source.endswith(".py") or path.is_file():
            return _import_file(path)
        # Like `python -m`, let modules next to where the worker starts be found.
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(source)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"could not import handlers from {source}: {type(exc).__name__}: {exc}"
        ) from exc


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise ConfigurationError(f"no such handlers file: {path}")
    # A file's siblings are importable from it, as when it is run as a script.
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    name = f"conveyor_handlers_{path.stem}_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
