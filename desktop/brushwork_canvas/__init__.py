"""Brushwork's desktop canvas (PySide6).

The model (``document``, ``layers``, ``pose``, ``commands``, ``docfile``, ``recipes``) holds no
widgets, so it is tested without a window; ``jobs`` runs every worker call off the UI thread; the
widgets live in ``canvas_view``, ``panels`` and ``main_window``. The worker is reached only through
``brushwork.client`` (wrapped by ``backend.ClientBackend``); torch never loads in this process.
"""

# Before any other Qt use: guards against PySide6 6.12.0's refcount bug (see qtcompat).
from . import qtcompat  # noqa: F401 (imported for its side effect, the guard)

__all__ = ["__version__"]
__version__ = "0.1.0"
