"""Distribution strategies for training, by name (`tools/train.py --strategy`).

- "default": one device (`tf.distribute.get_strategy()`).
- "mirrored": `tf.distribute.MirroredStrategy` over the GPUs or, without GPUs, over the logical
  CPU devices made by `split_cpu` (`--cpu_devices`).
- "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`, the cluster from the TF_CONFIG
  environment variable (without it, one local worker). Its `reduce` is patched for two Keras 3 /
  TF 2.16 incompatibilities (see `make_strategy`).

`config.train.batch_size` is the global batch, split over the replicas. With several workers,
only the chief writes the workdir (`worker_role`).

Errors name the flag; each function raises the caller's error type (the `error` argument,
`keras_binaural.training.TrainingError` for `training.train`).
"""

from __future__ import annotations

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def split_cpu(num_devices: int, error: type[Exception] = ValueError) -> None:
    """Splits the CPU into `num_devices` logical devices (for MirroredStrategy without GPUs).

    Must run before TensorFlow initialises its runtime (before any tensor is made).

    Raises:
      error: naming --cpu_devices, when the runtime is already initialised with another count.
    """
    if num_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    except RuntimeError as cause:
        if len(tf.config.list_logical_devices("CPU")) != num_devices:
            raise error(
                f"--cpu_devices={num_devices}: TensorFlow is already initialised ({cause})"
            ) from cause


def make_strategy(name: str, error: type[Exception] = ValueError) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy called `name` (see the module docstring).

    Raises:
      error: naming --strategy, for an unknown name.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        # Two Keras 3 / TF 2.16 incompatibilities of this strategy's `reduce`, worked around here:
        # fit reduces a first (dict) batch to build the model, and reduce takes one tensor
        # (keras-team/keras#20329); fit reduces the scalar metrics with axis=0, which fails on
        # scalars (tensorflow/tensorflow#72388). So: leaf by leaf, scalars across replicas only.
        reduce = strategy.reduce

        def reduce_leaf(reduce_op, leaf, axis):
            local = strategy.experimental_local_results(leaf)[0] if isinstance(
                leaf, tf.distribute.DistributedValues) else leaf
            if axis is not None and len(getattr(local, "shape", ())) == 0:
                axis = None
            return reduce(reduce_op, leaf, axis=axis)

        def reduce_each(reduce_op, value, axis=None):
            return tf.nest.map_structure(lambda leaf: reduce_leaf(reduce_op, leaf, axis), value)

        strategy.reduce = reduce_each
        return strategy
    raise error(f"--strategy={name!r}: must be one of {', '.join(STRATEGIES)}")


def worker_role(strategy: tf.distribute.Strategy) -> tuple[bool, str]:
    """(is_chief, a name for this worker) from the strategy's cluster resolver (TF_CONFIG)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or task_type is None:
        return True, "chief"
    task_id = int(resolver.task_id or 0)
    cluster = resolver.cluster_spec().as_dict()
    is_chief = task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return is_chief, f"{task_type}_{task_id}"
