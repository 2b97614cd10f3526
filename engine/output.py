"""The output directory (-o): what tfwizard may replace there, and how the new output gets into place.

tfwizard owns only what it wrote: an earlier output is recognised by its report.json (schema
tfwizard.report/1), and of it only report.json and the <target>/ directories that report lists
are ever replaced; any other file in -o stays. A non-empty -o that is not an earlier output is
refused, --force or not, and so is an -o that is, contains or lies inside the model.

A run works in a temporary sibling `.<name>.tmp-*` (marked with its pid, so a later run can
remove it if the run was killed), holds a lock `.<name>.lock` beside -o, and at the end moves
its output in only if -o is still what it was at the start; otherwise the new output stays
beside -o under a name of its own, and the run says where.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .report import REPORT_SCHEMA  # an earlier output is recognised by its report
OWNER_MARKER = ".tfwizard-owner"  # in a temporary sibling: the pid of the run that made it
from .backends import TARGETS as TARGET_NAMES  # the only subdirectories an earlier report can claim


@dataclass(frozen=True)
class EarlierOutput:
    """An earlier tfwizard output in -o: what it owns there, and how to tell it is still the same one."""
    targets: tuple[str, ...]
    stamp: tuple  # report.json's (device, inode, size, mtime), and the directory's inode

    @property
    def owned(self) -> tuple[str, ...]:
        return ("report.json", *self.targets)


def earlier_output(out: Path) -> EarlierOutput | None:
    """The earlier tfwizard output in `out`, or None if its report.json is missing or not ours."""
    report = out / "report.json"
    try:
        st, dir_st = report.stat(), out.stat()
        if st.st_size > 64 << 20:
            return None
        data = json.loads(report.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        return None
    named = [t.get("target") for t in data.get("targets", []) if isinstance(t, dict)] \
        if isinstance(data.get("targets"), list) else []
    # Only names tfwizard writes: a report edited to list "photos" must not make photos ours.
    targets = tuple(t for t in TARGET_NAMES if t in named)
    return EarlierOutput(targets, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, dir_st.st_ino))


def problem(out: Path, model: str | None) -> str | None:
    """Why `out` cannot be the output directory whatever the answer to --force, or None."""
    if model:
        here, model_path = out.resolve(), Path(model).resolve()
        if here == model_path or here in model_path.parents:
            return "is or contains the model; choose a directory outside it"
        if model_path in here.parents:
            return "is inside the model's directory; choose a directory outside it"
    if out.exists() and not out.is_dir():
        return "is a file, not a directory; choose another output directory"
    parent = out.resolve().parent
    if not parent.is_dir():
        return f"the parent directory {parent} does not exist; create it first"
    if out.is_dir() and _non_empty(out) and earlier_output(out) is None:
        return ("holds files tfwizard did not write (it has no report.json of an earlier tfwizard run), "
                "which --force does not replace; choose a new or empty directory")
    return None


def needs_consent(out: Path) -> EarlierOutput | None:
    """The earlier output that only --force may replace (None: -o is new or empty)."""
    return earlier_output(out) if out.is_dir() and _non_empty(out) else None


def replace_note(earlier: EarlierOutput) -> str:
    """What --force replaces there, in words (for the CLI's refusal and the wizard's question)."""
    mine = ", ".join(f"{t}/" for t in earlier.targets)
    return f"report.json{' and ' + mine if mine else ''} (other files there are kept)"


def check_output_dir(options, *, probe: bool = True) -> Path:
    """Raise UserError unless -o may be written by this run (a probe directory is made and removed unless probe=False)."""
    from .errors import UserError

    out = Path(options.output_dir)
    why = problem(out, options.model)
    if why:
        raise UserError(f"-o {out}: {why}")
    earlier = needs_consent(out)
    if earlier and not options.force:
        raise UserError(f"-o {out}: holds an earlier tfwizard output; pass --force to replace its "
                        f"{replace_note(earlier)}, or choose another directory")
    if probe:
        parent = out.resolve().parent
        try:
            (parent / f".{out.name}.write-test").mkdir()
            (parent / f".{out.name}.write-test").rmdir()
        except OSError as e:
            raise UserError(f"-o {out}: cannot write in {parent} ({e.strerror}); choose a writable directory") from None
    return out


# --- one run at a time ----------------------------------------------------------------------------


@contextlib.contextmanager
def locked(out: Path):
    """Hold `.<name>.lock` beside -o for the whole run; a second run on the same -o is refused.

    flock dies with its process (kill -9 included), so a lock is never stale; the file is
    removed on the way out, and a run checks it locked the file that is still there.
    """
    from .errors import UserError

    path = out.resolve().parent / f".{out.name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UserError(f"-o {out}: cannot lock {path} ({e.strerror}); choose a writable directory") from None
            raise UserError(f"-o {out}: another tfwizard run is writing there; wait for it to finish, "
                            "or choose another directory") from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the run before us removed the file we locked: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


# --- the temporary sibling ------------------------------------------------------------------------


def make_temporary(out: Path) -> Path:
    """A fresh `.<name>.tmp-*` beside -o, marked with our pid, as readable as a mkdir's would be."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.resolve().parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private
    (tmp / OWNER_MARKER).write_text(f"{os.getpid()}\n")
    return tmp


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporary siblings of -o whose run died (kill -9, power cut). Call under locked()."""
    removed = []
    parent = out.resolve().parent
    for tmp in parent.iterdir():
        if not (tmp.name.startswith(f".{out.name}.tmp-") or tmp.name.startswith(f".{out.name}.old-")):
            continue
        try:
            pid = int((tmp / OWNER_MARKER).read_text().strip())
        except (OSError, ValueError):
            continue  # no marker: not provably ours
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the final step -------------------------------------------------------------------------------


def move_into_place(tmp: Path, out: Path, earlier: EarlierOutput | None) -> tuple[Path, str | None]:
    """Put the finished output `tmp` at -o, if -o is still what it was when the run began.

    `earlier` is needs_consent(out) at the start. Returns where the output is and, when that is
    not -o, why. Hold signals around this call: it is a few renames.
    """
    (tmp / OWNER_MARKER).unlink(missing_ok=True)
    now = needs_consent(out) if out.is_dir() else None
    if earlier is None:
        try:
            os.rename(tmp, out)  # atomic: succeeds onto nothing or onto an empty directory only
            return out, None
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise
            return _beside(tmp, out, f"{out} was created or filled during the run")
    if now is None or now.stamp != earlier.stamp:
        return _beside(tmp, out, f"{out} changed during the run")
    new = [p.name for p in tmp.iterdir()]
    clash = [n for n in new if n not in earlier.owned and os.path.lexists(out / n)]
    if clash:
        return _beside(tmp, out, f"{out / clash[0]} is not from the earlier output")
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.resolve().parent))
    (trash / OWNER_MARKER).write_text(f"{os.getpid()}\n")
    for name in earlier.owned:
        if os.path.lexists(out / name):
            os.rename(out / name, trash / name)
    for name in new:
        os.rename(tmp / name, out / name)
    tmp.rmdir()
    shutil.rmtree(trash, ignore_errors=True)
    return out, None


def _beside(tmp: Path, out: Path, why: str) -> tuple[Path, str]:
    """Keep the new output next to -o under the first free `<name>.new`, `<name>.new-2`, ..."""
    for n in range(1, 1000):
        place = out.with_name(f"{out.name}.new" + (f"-{n}" if n > 1 else ""))
        if os.path.lexists(place):
            continue
        try:
            os.rename(tmp, place)
        except OSError:
            continue
        return place, f"{why}, so nothing there was replaced; the new output is in {place}"
    return tmp, f"{why}, so nothing there was replaced; the new output is in {tmp}"


def disk_full(error: BaseException, where: Path):
    """A UserError for ENOSPC (or EDQUOT) while writing the output, else None."""
    from .errors import UserError

    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"{where}: the disk filled up during the conversion ({error.strerror}); nothing was "
                         "written; free some space there or choose another output directory")
    return None


def _non_empty(path: Path) -> bool:
    try:
        return any(path.iterdir())
    except OSError:
        return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
