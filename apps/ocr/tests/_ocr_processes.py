"""Finding the OCR actors' processes of the local Ray (the only workers that load
onnxruntime), to kill one for real."""

from __future__ import annotations

import psutil


def ocr_pids() -> set[int]:
    """Pids of live Ray worker processes that have onnxruntime loaded."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "ray::" not in cmdline:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if any("onnxruntime" in m.path for m in proc.memory_maps()):
                found.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
