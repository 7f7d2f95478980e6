"""A seccomp filter for the sandbox: deny the system calls a training snippet never needs.

bubblewrap loads it (``--seccomp FD``) just before it starts the worker, so it
holds for the worker and every job it forks. The program is classic BPF,
assembled here with :mod:`struct`: no libseccomp, nothing to install.

What it denies (``EPERM``): debugging other processes (``ptrace``,
``process_vm_*``, ``kcmp``, ``pidfd_getfd``), namespaces (``unshare``,
``setns``, ``clone`` with any ``CLONE_NEW*`` flag), mounting, kernel keyrings,
``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring`` (its requests
bypass seccomp), kernel modules, ``kexec``, reboot, swap, clocks, host names,
quotas, ``syslog``, ``acct`` and file handles (``open_by_handle_at``).
``clone3`` gets ``ENOSYS``: its flags sit in memory a filter cannot read, and
glibc falls back to ``clone`` (whose flags it can) on ``ENOSYS``. System calls
of any other ABI (i386 or x32 on x86-64) get ``ENOSYS`` too, so the numbers
below cannot be dodged.

Only x86-64 and aarch64 are known; elsewhere :func:`build` returns None and
the sandbox says it runs without a filter.
"""

from __future__ import annotations

import errno
import platform
import struct

__all__ = ["DENIED", "NAMESPACE_FLAGS", "SYSCALLS", "build", "supported"]

# <linux/audit.h>
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# What the snippet gets EPERM for. The numbers are checked against the
# kernel headers by tests/test_sandbox.py where the headers are installed.
DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd", "fanotify_init",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "vhangup",
)  # fmt: skip

SYSCALLS = {
    "x86_64": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "pidfd_getfd": 438,
        "unshare": 272, "setns": 308,
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "keyctl": 250, "add_key": 248, "request_key": 249,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "fanotify_init": 300,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "kexec_load": 246,
        "kexec_file_load": 320, "reboot": 169,
        "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179, "quotactl_fd": 443, "syslog": 103,
        "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
        "sethostname": 170, "setdomainname": 171,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "lookup_dcookie": 212, "vhangup": 153,
        "clone": 56, "clone3": 435,
    },
    "aarch64": {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "pidfd_getfd": 438,
        "unshare": 97, "setns": 268,
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "keyctl": 219, "add_key": 217, "request_key": 218,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "fanotify_init": 262,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "kexec_load": 104,
        "kexec_file_load": 294, "reboot": 142,
        "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60, "quotactl_fd": 443, "syslog": 116,
        "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
        "sethostname": 161, "setdomainname": 162,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "lookup_dcookie": 18, "vhangup": 58,
        "clone": 220, "clone3": 435,
    },
}  # fmt: skip

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_X32_BIT = 0x40000000

# <linux/filter.h>, <linux/seccomp.h>
_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
_OFF_NR, _OFF_ARCH, _OFF_ARG0_LOW = 0, 4, 16


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in SYSCALLS


def build(machine: str | None = None) -> bytes | None:
    """The filter as ``struct sock_filter`` bytes for this machine (None: architecture not known)."""
    machine = machine or platform.machine()
    numbers = SYSCALLS.get(machine)
    if numbers is None:
        return None
    # (code, jump-if-true label, jump-if-false label, k); labels resolve to offsets.
    program: list[tuple[int, str | None, str | None, int]] = [
        (_LD_W_ABS, None, None, _OFF_ARCH),
        (_JEQ, None, "enosys", AUDIT_ARCH[machine]),
        (_LD_W_ABS, None, None, _OFF_NR),
    ]
    if machine == "x86_64":
        program.append((_JGE, "enosys", None, _X32_BIT))
    program.append((_JEQ, "clone", None, numbers["clone"]))
    program.append((_JEQ, "enosys", None, numbers["clone3"]))
    for name in DENIED:
        program.append((_JEQ, "eperm", None, numbers[name]))
    program.append((_RET, None, None, _RET_ALLOW))
    labels = {"clone": len(program)}
    program += [
        (_LD_W_ABS, None, None, _OFF_ARG0_LOW),  # clone's flags (little-endian low word)
        (_JSET, "eperm", None, NAMESPACE_FLAGS),
        (_RET, None, None, _RET_ALLOW),
    ]
    labels["eperm"] = len(program)
    program.append((_RET, None, None, _RET_ERRNO | errno.EPERM))
    labels["enosys"] = len(program)
    program.append((_RET, None, None, _RET_ERRNO | errno.ENOSYS))

    out = bytearray()
    for at, (code, true, false, k) in enumerate(program):
        jt = labels[true] - at - 1 if true else 0
        jf = labels[false] - at - 1 if false else 0
        if not (0 <= jt < 256 and 0 <= jf < 256):
            raise AssertionError("seccomp jump out of range")  # a program this size never gets there
        out += struct.pack("=HBBI", code, jt, jf, k)
    return bytes(out)
