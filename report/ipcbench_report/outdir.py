"""Atomic output directories: write everything into a hidden sibling, rename at the end,
so a failed command leaves no partial directory behind."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from pathlib import Path

from ipcbench_report import ReportError


@contextlib.contextmanager
def atomic_dir(dest: Path, names: set[str], patterns: tuple[str, ...] = ()):
    """Yield a temporary directory beside ``dest``; on success it replaces ``dest``.

    ``names`` are the files this command writes, ``patterns`` (``fnmatch``) the names it
    writes that depend on the input (one plot per message size): an existing ``dest`` is
    replaced only when it holds nothing else (a previous output), otherwise
    ``ReportError``. On any
    exception the temporary directory is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    if dest.exists():
        if not dest.is_dir():
            raise ReportError(f"{dest} exists and is not a directory")
        others = sorted(p.name for p in dest.iterdir() if p.name not in names
                        and not any(fnmatch.fnmatchcase(p.name, x) for x in patterns))
        if others:
            raise ReportError(f"refusing to replace {dest}: it holds other files "
                              f"({', '.join(others[:3])})")
    parent = dest.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent))
    except OSError as e:
        raise ReportError(f"cannot create {dest}: {e.strerror or e}") from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    except OSError as e:
        raise ReportError(f"cannot write {dest}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_file(dest: Path, text: str) -> None:
    """Write ``text`` to ``dest`` through a temporary file and a rename."""
    dest = Path(dest)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.resolve().parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        tmp = None
    except OSError as e:
        raise ReportError(f"cannot write {dest}: {e.strerror or e}") from None
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_file(dest: Path):
    """Yield a temporary path beside ``dest`` to write; on success it replaces ``dest``,
    on any exception it is removed and ``dest`` is left as it was."""
    dest = Path(dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.resolve().parent)
        os.close(fd)
    except OSError as e:
        raise ReportError(f"cannot write {dest}: {e.strerror or e}") from None
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except OSError as e:
        raise ReportError(f"cannot write {dest}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
