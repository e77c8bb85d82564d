"""Optional dependencies: which extra of ``pyproject.toml`` brings which package.

A module that needs an extra imports its packages inside :func:`require_extra`, so a user
without them meets one line naming what to install, not a traceback ending in
``ModuleNotFoundError`` (a test keeps :data:`EXTRAS` in step with ``pyproject.toml``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ltr.errors import MissingExtraError

# import names (not distribution names) of the packages each extra installs
EXTRAS: dict[str, tuple[str, ...]] = {
    "tracking": ("mlflow", "matplotlib", "tensorboard"),
    "tune": ("optuna", "sqlalchemy"),
    "export": ("onnx", "onnxruntime", "onnxscript"),
}


@contextlib.contextmanager
def require_extra(extra: str) -> Iterator[None]:
    """Turn a missing package of ``extra`` imported in the block into :class:`MissingExtraError`.

    Any other missing module is left alone: Python's own message names it better.
    """
    try:
        yield
    except MissingExtraError:
        raise  # raised by a module this block imported: it named its extra already
    except ModuleNotFoundError as error:
        package = (error.name or "").partition(".")[0]
        if package not in EXTRAS[extra]:
            raise
        raise MissingExtraError(package, extra) from None
