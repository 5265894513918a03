"""Run a command under the kernel-side sandbox a systemd unit file asks for, without systemd.

    python tests/support/unit_sandbox.py systemd/carehub.service -- python -m hub.cli run ...

systemd is not PID 1 on the test machines, so ``systemctl start`` cannot show that the hub works
inside its unit. This applies the unit's process restrictions the way systemd 252's
``exec_child()`` does, with the same library (libseccomp), then execs the command:

* ``SystemCallFilter=`` (allow list: ``@default`` plus the named sets; ``~`` lines remove),
  ``SystemCallErrorNumber=``, ``SystemCallArchitectures=native`` (libseccomp's native-only default);
* ``MemoryDenyWriteExecute=``: no ``mmap`` writable and executable, no ``mprotect``/``pkey_mprotect``
  to executable, no ``shmat`` with ``SHM_EXEC``;
* ``RestrictAddressFamilies=`` (``socket()`` of another family: ``EAFNOSUPPORT``);
* ``RestrictNamespaces=yes`` (``unshare``/``clone``/``setns`` with namespace flags; ``clone3``:
  ``ENOSYS``, so glibc falls back to ``clone``);
* ``NoNewPrivileges=``, ``CapabilityBoundingSet=`` (empty: every capability dropped from every
  set), ``UMask=``.

Left out: ``LockPersonality=`` (nothing in the hub calls ``personality()``), and what needs mount or user namespaces and the cgroup (``ProtectSystem=``, ``PrivateTmp=``,
``DevicePolicy=``, ``User=``): they hide files, they do not change which calls the code may make.
Syscall sets are expanded by ``systemd-analyze syscall-filter``, i.e. systemd's own tables.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import subprocess
import sys
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_MASKED_EQ = 4, 5, 7
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 24, 47, 4
AF_MAX = 46
#: Address families by name (this Python may lack a constant, e.g. AF_BLUETOOTH without BlueZ headers).
FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17, "AF_BLUETOOTH": 31}


def scmp_act_errno(err: int) -> int:
    return 0x00050000 | (err & 0xFFFF)


class ArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp``."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def unit_settings(unit: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit's ``[Service]`` section, values in file order."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def syscall_sets() -> dict[str, list[str]]:
    """systemd's syscall groups, as ``systemd-analyze syscall-filter`` prints them."""
    text = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    sets: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = sets.setdefault(line.strip(), [])
        elif line.startswith("    ") and not line.strip().startswith("#") and current is not None:
            current.append(line.strip())
        elif not line.strip():
            current = None
    return sets


def expand(names: list[str], sets: dict[str, list[str]]) -> set[str]:
    """Syscall names for a list of names and ``@sets`` (nested sets expanded)."""
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            out |= expand(sets[name], sets)
        else:
            out.add(name)
    return out


def allowed_syscalls(settings: dict[str, list[str]], sets: dict[str, list[str]]) -> set[str] | None:
    """The allow list ``SystemCallFilter=`` lines make (systemd adds ``@default``), or None without one."""
    lines = settings.get("SystemCallFilter", [])
    if not lines:
        return None
    if lines[0].startswith("~"):
        raise SystemExit("unit_sandbox: a deny-list SystemCallFilter= is not emulated")
    allowed = expand(["@default"], sets)
    for line in lines:
        if line.startswith("~"):
            allowed -= expand(line[1:].split(), sets)
        else:
            allowed |= expand(line.split(), sets)
    return allowed


class Seccomp:
    """A thin libseccomp wrapper: one filter context, rules, load."""

    def __init__(self, default_action: int) -> None:
        path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
        self.lib = ctypes.CDLL(path, use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(ArgCmp),
        ]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.ctx = self.lib.seccomp_init(default_action)
        if not self.ctx:
            raise OSError("seccomp_init failed")

    def nr(self, name: str) -> int | None:
        n = self.lib.seccomp_syscall_resolve_name(name.encode())
        return n if n >= 0 else None  # unknown here, or another architecture's call

    def rule(self, action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
        n = self.nr(name)
        if n is None:
            return
        arr = (ArgCmp * max(1, len(cmps)))(*[ArgCmp(*c) for c in cmps])
        r = self.lib.seccomp_rule_add_array(self.ctx, action, n, len(cmps), arr)
        if r < 0:
            raise OSError(-r, f"seccomp_rule_add {name}: {os.strerror(-r)}")

    def load(self) -> None:
        r = self.lib.seccomp_load(self.ctx)
        if r < 0:
            raise OSError(-r, f"seccomp_load: {os.strerror(-r)}")


def yes(settings: dict[str, list[str]], key: str) -> bool:
    return settings.get(key, ["no"])[-1].lower() in ("yes", "true", "on", "1")


def drop_capabilities() -> None:
    """``CapabilityBoundingSet=`` empty: bounding, ambient, effective, permitted and inheritable sets cleared."""
    libc = ctypes.CDLL(None, use_errno=True)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    if libc.syscall(126 if os.uname().machine == "x86_64" else 91, header, data) != 0:  # capset
        raise OSError(ctypes.get_errno(), "capset")


def apply(settings: dict[str, list[str]]) -> None:
    """Apply the unit's restrictions to this process (they stay across exec)."""
    if "UMask" in settings:
        os.umask(int(settings["UMask"][-1], 8))
    if settings.get("CapabilityBoundingSet", ["x"])[-1] == "":
        drop_capabilities()
    if yes(settings, "NoNewPrivileges") or settings.get("SystemCallFilter"):
        ctypes.CDLL(None).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    eperm = scmp_act_errno(errno.EPERM)
    if yes(settings, "MemoryDenyWriteExecute"):
        f = Seccomp(SCMP_ACT_ALLOW)
        for name in ("mmap", "mmap2"):
            f.rule(eperm, name, (2, SCMP_CMP_MASKED_EQ, PROT_EXEC | PROT_WRITE, PROT_EXEC | PROT_WRITE))
        for name in ("mprotect", "pkey_mprotect"):
            f.rule(eperm, name, (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        f.rule(eperm, "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
        f.load()
    families = settings.get("RestrictAddressFamilies")
    if families and families[-1]:
        allowed = {FAMILIES[name] for line in families for name in line.split()}
        f = Seccomp(SCMP_ACT_ALLOW)
        for af in range(AF_MAX):
            if af not in allowed:
                f.rule(scmp_act_errno(errno.EAFNOSUPPORT), "socket", (0, SCMP_CMP_EQ, af, 0))
        f.rule(scmp_act_errno(errno.EAFNOSUPPORT), "socket", (0, SCMP_CMP_GE, AF_MAX, 0))
        f.load()
    if yes(settings, "RestrictNamespaces"):
        f = Seccomp(SCMP_ACT_ALLOW)
        for flag in NAMESPACE_FLAGS:
            f.rule(eperm, "unshare", (0, SCMP_CMP_MASKED_EQ, flag, flag))
            f.rule(eperm, "clone", (0, SCMP_CMP_MASKED_EQ, flag, flag))
            f.rule(eperm, "setns", (1, SCMP_CMP_MASKED_EQ, flag, flag))
        f.rule(eperm, "setns", (1, SCMP_CMP_EQ, 0, 0))
        f.rule(scmp_act_errno(errno.ENOSYS), "clone3")
        f.load()
    allowed = allowed_syscalls(settings, syscall_sets())
    if allowed is not None:
        err = settings.get("SystemCallErrorNumber", [""])[-1]
        default = scmp_act_errno(getattr(errno, err)) if err else 0x80000000  # else SCMP_ACT_KILL_PROCESS
        f = Seccomp(default)
        for name in sorted(allowed):
            f.rule(SCMP_ACT_ALLOW, name)
        f.load()


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: unit_sandbox.py UNIT -- COMMAND [ARG...]")
    settings = unit_settings(Path(argv[0]))
    cmd = argv[2:]
    apply(settings)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])

