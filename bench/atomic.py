"""Writing result files atomically: a reader (or a Ctrl-C) never sees half a file.

Every file the harness writes goes through :func:`write_atomic`: the content goes to a hidden
temporary file beside the target (``.<name>.<random>.tmp``, :data:`TMP_SUFFIX`), which is then
renamed over it. :func:`check_writable` proves a folder can take such files before any work starts.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

TMP_SUFFIX = ".tmp"


def write_atomic(path: Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path``: a reader (or a Ctrl-C) never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def write_text(text: str, path: Path) -> None:
    def _w(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    write_atomic(path, _w)


def write_json(obj: dict, path: Path) -> None:
    write_text(json.dumps(obj, indent=2, default=str) + "\n", path)


def check_writable(folder: Path) -> Path:
    """Create ``folder`` and prove a file can be written there; ValueError naming it if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out must be a folder that can be written, got {str(folder)!r} "
                         f"({exc.strerror or exc})") from None
    return folder
