"""Where TensorFlow runs: a visible GPU (with memory growth) or the CPU with sensible threads."""
from __future__ import annotations

import os

import tensorflow as tf

_configured: str | None = None


def configure() -> str:
    """Set up TensorFlow once per process; returns "CPU" or the GPU's name."""
    global _configured
    if _configured is not None:
        return _configured
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialized; growth cannot change any more
            pass
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        _configured = str(details.get("device_name", gpus[0].name))
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        try:
            tf.config.threading.set_intra_op_parallelism_threads(cores)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, cores))
        except RuntimeError:
            pass
        _configured = "CPU"
    return _configured
