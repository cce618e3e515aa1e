"""Is this process in a read-only sandbox? Decided by probing, never assumed.

The hostile-key bodies (``test_*_bodies.py`` here) may feed ``/etc/passwd`` and
``../..`` to stores that write files, as root. They run only where a store that
escapes its root cannot hurt anything: every place outside one *work directory*
must refuse a new file. That is the case inside ``tools/sandbox.sh`` (a private
mount namespace, everything but a fresh tmpfs read-only), and equally in a
read-only container whose only writable mount holds the temp directory: the
container is then a sandbox of its own.

The work directory is ``$AIOSTORE_SANDBOX_WORK`` (``tools/sandbox.sh`` sets it),
else the mount point that holds the temp directory. The probe creates (and at
once removes) a file in each place that matters -- ``/``, ``/etc``, ``/usr``,
``/root``, ``/tmp``, ``/dev``, ``/dev/shm``, ``$HOME``, every ancestor of the work
directory, every mount point outside it not mounted read-only (``/proc`` and
``/sys`` aside) -- until one succeeds: that place is writable. This is the
answer for root, whom permission bits do not stop, as for anyone else.

Run as a script it prints its verdict and exits 0 (sandboxed) or 1 (not)::

    python tests/sandboxed/sandbox_probe.py
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile

__all__ = ["Verdict", "probe", "work_dir"]

#: Places that must be read-only, besides the ancestors of the work directory and
#: every mount point outside it.
PLACES = (
    "/",
    "/etc",
    "/usr",
    "/bin",
    "/lib",
    "/root",
    "/home",
    "/var",
    "/var/tmp",
    "/tmp",
    "/opt",
    "/srv",
    "/mnt",
    "/boot",
    "/dev",
    "/dev/shm",
    "/run",
)
#: A work directory holding one of these is no sandbox ("/" itself, say).
SYSTEM = ("/etc", "/usr", "/bin", "/lib", "/root", "/home", "/var", "/dev", "/boot")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The probe's answer: ``sandboxed`` iff nothing outside ``work`` is writable."""

    work: str | None
    writable: tuple[str, ...]
    problem: str = ""

    @property
    def sandboxed(self) -> bool:
        return self.work is not None and not self.writable and not self.problem

    def __str__(self) -> str:
        if self.sandboxed:
            return f"sandboxed: everything outside {self.work} is read-only"
        if self.problem:
            return f"not sandboxed: {self.problem}"
        return f"not sandboxed: writable outside {self.work}: {', '.join(self.writable)}"


def _mounts(writable_only: bool = False) -> list[str]:
    """Mount points (field 5 of /proc/self/mountinfo, octal escapes decoded); with
    ``writable_only``, those not mounted read-only (field 6)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 5 and not (writable_only and fields[5].split(",")[0] == "ro"):
            points.append(fields[4].encode().decode("unicode_escape"))
    return points


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def work_dir() -> str:
    """``$AIOSTORE_SANDBOX_WORK``, else the mount point holding the temp directory."""
    given = os.environ.get("AIOSTORE_SANDBOX_WORK")
    if given:
        return os.path.realpath(given)
    temp = os.path.realpath(tempfile.gettempdir())
    holders = [m for m in _mounts() if _within(temp, m)]
    return max(holders, key=len) if holders else temp


def _writable(place: str) -> bool:
    name = os.path.join(place, f".aiostore-readonly-probe.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
    return True


def probe(work: str | None = None) -> Verdict:
    """Probe every place outside ``work`` (default :func:`work_dir`) for writability."""
    work = os.path.realpath(work or work_dir())
    if any(_within(system, work) for system in SYSTEM):
        return Verdict(work, (), f"the work directory {work} holds system directories")
    if not os.path.isdir(work) or not _writable(work):
        return Verdict(work, (), f"the work directory {work} is not writable")
    places = list(PLACES)
    if os.environ.get("HOME"):
        places.append(os.environ["HOME"])
    parent = os.path.dirname(work)
    while True:
        places.append(parent)
        if parent == os.path.dirname(parent):
            break
        parent = os.path.dirname(parent)
    places += [m for m in _mounts(writable_only=True) if not (_within(m, "/proc") or _within(m, "/sys"))]
    for place in dict.fromkeys(os.path.realpath(p) for p in places):
        if not _within(place, work) and os.path.isdir(place) and _writable(place):
            return Verdict(work, (place,))  # one is enough: probe no further
    return Verdict(work, ())


if __name__ == "__main__":
    verdict = probe()
    print(verdict)
    sys.exit(0 if verdict.sandboxed else 1)
