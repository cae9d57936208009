"""One exception type for input a user can fix.

The UI turns it into a visible message (gr.Error) and the CLI into a one-line error;
anything else is a bug and keeps its traceback.
"""

import errno
import math


class UserError(ValueError):
    """Bad input with a message that tells the user what to change."""


def quote(value, limit: int = 40) -> str:
    """A user's value for a message: its repr when short, else only its type and size (a 100 KB
    id or a 5,000-character path is never echoed back whole)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
            and float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"  # a number box sends 10000000.0 for 10,000,000: say it as typed
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" of {len(value):,} characters" if isinstance(value, str) else ""
    return f"a {type(value).__name__}{size}"


# errno values that mean "the disk said no", and what a user can do about each.
_DISK = {
    errno.ENOSPC: "the runs folder is full: free space or set MLM_RUNS_DIR to a folder with room",
    errno.EDQUOT: "the runs folder is over its disk quota: free space or set MLM_RUNS_DIR to a folder with room",
    errno.EROFS: "the runs folder is read-only: set MLM_RUNS_DIR to a writable folder",
    errno.EACCES: "the runs folder cannot be written (permission denied): set MLM_RUNS_DIR to a writable folder",
    errno.EPERM: "the runs folder cannot be written (permission denied): set MLM_RUNS_DIR to a writable folder",
    errno.ENAMETOOLONG: "a file name is too long",
    errno.EMFILE: "the server has too many files open: try again shortly",
}


def disk_message(exc: BaseException) -> str:
    """A plain reason for an OSError of the disk ('' for anything else); never the server's path."""
    return _DISK.get(getattr(exc, "errno", None), "") if isinstance(exc, OSError) else ""


def plain(exc: BaseException) -> str:
    """What a user may read about any exception: a UserError's message, a disk error's reason,
    or only the exception's kind (raw text can carry server paths and library internals)."""
    if isinstance(exc, UserError):
        return str(exc)
    reason = disk_message(exc)
    if reason:
        return reason[0].upper() + reason[1:] + "."
    if isinstance(exc, OSError):
        return f"The server could not complete this ({errno.errorcode.get(exc.errno or 0, 'OS error')})."
    if isinstance(exc, RecursionError):
        return "The input is nested too deeply."
    return f"Something went wrong on the server ({type(exc).__name__}); the details are in the server's log."
