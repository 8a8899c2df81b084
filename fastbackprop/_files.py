"""Reading ``.npz`` archives with clear errors, and writing files atomically.

Shared by the data loaders (:mod:`fastbackprop.datasets`), ``Model.save`` /
``Model.load`` and the command line.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib

import numpy as np


def open_for_reading(path, what):
    """Open ``path`` in binary mode; a missing file or a directory raises a one-line error.

    ``what`` names the file in messages ("data file", "model file").
    """
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {os.fspath(path)!r} does not exist") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{what} {os.fspath(path)!r} is a directory, not a file") from None


def read_npz(path, what):
    """Every array of the ``.npz`` archive at ``path``, as a dict, read eagerly.

    Pickled (object) data is never loaded (``allow_pickle=False``). A missing
    file raises ``FileNotFoundError``; a file that is not an ``.npz`` archive,
    or whose arrays cannot be read (truncated, corrupt, object arrays),
    raises ``ValueError``; messages start with ``what`` and the path.
    """
    name = f"{what} {os.fspath(path)!r}"
    with open_for_reading(path, what) as f:
        if f.read(4) != b"PK\x03\x04":
            raise ValueError(f"{name} is not an .npz archive")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            raise ValueError(f"{name} is corrupt or unreadable: {e}") from None


def write_atomically(path, write):
    """Create or replace the file ``path`` with what ``write(f)`` writes to a binary file ``f``.

    The data goes to a temporary file in the same directory, is flushed to
    disk, and is then renamed over ``path``; readers see the old file or
    the complete new one, never a partial one, and a failure (or Ctrl-C)
    leaves ``path`` as it was. The new file gets the usual permissions
    (``0o666`` less the umask).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                     suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _umask():
    """The process's current umask (reading it means setting it; it is restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
