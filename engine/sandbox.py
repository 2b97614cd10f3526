"""Confine the TensorFlow worker with Landlock (Linux ≥ 5.13), as TensorFlow's SECURITY.md asks for
untrusted models: defence in depth behind engine.safety's static refusal, kept with --trust-model.

Once confined (the rules hold for the worker and everything it starts: converters, Node.js, npm):
- writes only to the temporary output (tmp, the worker's TMPDIR too), tfwizard's cache
  (~/.cache/tfwizard: TF.js verification installs npm packages there and runs Node), /dev/null;
- reads only to the model's folder, the checkpoint's, the folders of --custom-objects files, the
  --load-op-library files, ~/.keras and ~/.npmrc (settings), the Python installation (prefixes,
  sys.path, this package), Node.js, and the system: /usr, /lib*, /bin, /sbin, /etc, /proc, /sys,
  /dev, /run;
- no TCP bind or connect (Landlock ABI ≥ 4), except connect to port 443 while TF.js verification
  must first install @tensorflow/tfjs into an empty cache (npm fetches it from the registry).
Without Landlock (another OS, an old kernel, a seccomp filter that hides it) the worker says so
in one warning line and runs unconfined, as before.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
from pathlib import Path

CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446  # the same number on every architecture
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM, REFER, TRUNCATE = 1 << 9, 1 << 10, 1 << 11, 1 << 12, 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE  # the rights a rule on a single file may grant
READ = EXECUTE | READ_FILE | READ_DIR
WRITE = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_CHAR | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO \
    | MAKE_BLOCK | MAKE_SYM | REFER | TRUNCATE
SYSTEM_READ = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/run")
HTTPS_PORT = 443
CACHE = Path("~/.cache/tfwizard").expanduser()


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def abi_version() -> int:
    """The kernel's Landlock ABI (0: none here)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(version, 0)


def confine(options, tmp) -> list[str]:
    """Confine this process (the worker) for converting `options` into `tmp`; return warning lines for
    the user ([] when confined)."""
    abi = abi_version()
    if abi == 0:
        return ["warning: Landlock is not available on this system, so the conversion runs without a sandbox "
                "(Linux 5.13+ has it); only convert models you trust"]
    reads, writes, https = plan_access(options, tmp)
    try:
        apply(abi, reads, writes, allow_https=https)
    except OSError as e:
        return [f"warning: could not set up the Landlock sandbox ({e.strerror or e}), so the conversion runs "
                "without one; only convert models you trust"]
    return []


def plan_access(options, tmp) -> tuple[list[Path], list[Path], bool]:
    """(readable paths, writable paths, allow HTTPS for npm) for converting `options` into `tmp`; makes the
    cache if needed."""
    reads = [Path(p) for p in SYSTEM_READ]
    reads += [Path(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path} if p and os.path.isabs(p)]
    reads.append(Path(__file__).resolve().parent)  # this package, wherever an editable install keeps it
    model = Path(options.model).resolve()
    reads.append(model if model.is_dir() else model.parent)
    if options.checkpoint:
        reads.append(Path(options.checkpoint).resolve().parent)
    reads += [Path(path).resolve() for _, path in options.sample_inputs]  # the files only
    from .user_code import sandbox_reads

    reads += sandbox_reads(options)  # --custom-objects files' folders, --load-op-library files
    node = shutil.which("node")
    if node:
        reads.append(Path(node).resolve().parent.parent)  # its prefix: bin/node and lib/node_modules
    reads += [Path("~/.npmrc").expanduser(), Path("~/.keras").expanduser()]  # user settings Keras and npm read
    writes = [Path(tmp), Path("/dev/null")]
    https = False
    if "tfjs" in options.targets:
        from .backends.tfjs import NODE_CACHE

        cache = NODE_CACHE.parent
        cache.mkdir(parents=True, exist_ok=True)
        writes.append(cache)
        os.environ["npm_config_cache"] = str(cache / "npm")  # npm's own cache, else ~/.npm, out of bounds
        https = options.verify and not (NODE_CACHE / "node_modules").is_dir()
    elif CACHE.is_dir():
        writes.append(CACHE)
    return reads, writes, https


def apply(abi: int, reads, writes, *, allow_https: bool = False) -> None:
    """Landlock this process: `reads` readable, `writes` read-write, no TCP unless allow_https (ABI ≥ 4)."""
    libc = ctypes.CDLL(None, use_errno=True)
    handled = (READ | WRITE) & ~(REFER if abi < 2 else 0) & ~(TRUNCATE if abi < 3 else 0)
    attr = _RulesetAttr(handled, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 4 else ctypes.sizeof(ctypes.c_uint64)
    ruleset = libc.syscall(CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        for paths, rights in ((reads, READ), (writes, READ | WRITE)):
            for path in paths:
                _add_path(libc, ruleset, path, rights & handled)
        if allow_https and abi >= 4:
            port = _NetPortAttr(NET_CONNECT_TCP, HTTPS_PORT)
            if libc.syscall(ADD_RULE, ruleset, RULE_NET_PORT, ctypes.byref(port), ctypes.c_uint32(0)) < 0:
                raise OSError(ctypes.get_errno(), "landlock_add_rule (net)")
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)


def blocked(e: BaseException) -> str | None:
    """The one-line error for an exception the sandbox caused (a denied open or write), else None."""
    if not (isinstance(e, PermissionError) or type(e).__name__ == "PermissionDeniedError"):
        return None
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    detail = next((line for line in reversed(lines) if "denied" in line.lower()), lines[-1] if lines else "")
    return (f"the model tried to use a file outside the model and the output, which the sandbox forbids "
            f"({detail[:200]}); it is not converted: a model that needs that is not one to trust")


def _add_path(libc, ruleset: int, path: Path, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # absent here (no /lib32, no ~/.npmrc): nothing to allow
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            rights &= FILE_RIGHTS
        rule = _PathBeneathAttr(rights, fd)
        if libc.syscall(ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
