"""Splits and batches: `load_split` reads a patient-level split of a TFDS dataset (building it on
first use); `BatchIterator` serves epoch-shuffled, fixed-size, resumable batches placed on devices
with the batch sharded.

A split is an in-memory dict of numpy arrays (``image [N,S,S,1] float32``, ``labels [N,S,S]
uint8``, ``patient_id [N]`` str, ``slice_index [N]`` int32) as read from the TFDS builders.
"""

import contextlib
import io
import os
import queue
import threading
from typing import Iterator

from absl import logging
import jax
import numpy as np

from mrixai_jax.data import preprocess

READ_CHUNK = 512  # records decoded per read call


def tfds_dir(data_config, workdir: str) -> str:
  """Where TFDS datasets are built: `data.tfds_dir`, else `WORKDIR/tfds`."""
  return data_config.tfds_dir or os.path.join(workdir, "tfds")


def load_split(data_config, split: str, workdir: str) -> dict:
  """Slices of the patients in `split` ("train" | "validation" | "test"), sorted by patient, slice.

  Builds the TFDS dataset `data_config.name` (array_record) under `tfds_dir(...)` on first use, then
  reads it through `as_data_source` (no TensorFlow); with several processes, process 0 builds and
  the others wait (the data dir must be shared). Patients are assigned to splits by
  `preprocess.split_patients(ids, data.split_fractions, data.split_seed)`.
  Returns numpy arrays ``image [N,S,S,1]`` float32 in [-1, 1], ``labels [N,S,S]`` uint8,
  ``patient_id [N]`` str, ``slice_index [N]`` int32.
  """
  if split not in preprocess.SPLITS:
    raise ValueError(f"split must be one of {preprocess.SPLITS}, got {split!r}")
  source = _data_source(data_config, tfds_dir(data_config, workdir))
  ids = _read(source, np.arange(len(source)), keys=("patient_id",))["patient_id"]
  patients = preprocess.split_patients(ids, data_config.split_fractions, data_config.split_seed)
  rows = np.nonzero(np.isin(ids, patients[split]))[0]
  if not len(rows):
    raise ValueError(f"split {split!r} is empty: data.split_fractions = {data_config.split_fractions}")
  arrays = _read(source, rows, keys=("image", "labels", "patient_id", "slice_index"))
  order = np.lexsort((arrays["slice_index"], arrays["patient_id"]))
  return {key: value[order] for key, value in arrays.items()}


def _data_source(data_config, data_dir: str):
  """The built dataset's random-access source (building it first when missing)."""
  import tensorflow_datasets as tfds
  from mrixai_jax.data.tfds import features, make_builder

  builder = make_builder(data_config, data_dir)
  manual_dir = data_config.get("manual_dir") or None
  if builder.MANUAL_DOWNLOAD_INSTRUCTIONS and not manual_dir and not builder.is_prepared():
    raise ValueError(f"data.manual_dir is empty and {builder.name} is not built in {data_dir}. "
                     f"{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
  if jax.process_index() == 0:  # one writer; on a shared disk the other hosts wait, then read
    if not builder.is_prepared():
      logging.info("data: building %s in %s (once per workdir)", builder.name, builder.data_dir)
    with contextlib.redirect_stdout(io.StringIO()) as tfds_says:  # TFDS prints its own two lines
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir, try_download_gcs=False))
    logging.debug("%s", tfds_says.getvalue().strip())
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(f"build {builder.name}/{builder.builder_config.name}")
    builder = make_builder(data_config, data_dir)  # re-read the now finished dataset info
  return builder.as_data_source(split=features.SPLIT)


def _read(source, rows: np.ndarray, keys: tuple) -> dict:
  """Stacks `keys` of records `rows` of `source` into numpy arrays (strings decoded to str)."""
  columns = {key: [] for key in keys}
  for start in range(0, len(rows), READ_CHUNK):
    for record in source.__getitems__(rows[start:start + READ_CHUNK].tolist()):
      for key in keys:
        columns[key].append(record[key])
  out = {}
  for key, values in columns.items():
    if key == "patient_id":
      out[key] = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=str)
    elif key == "slice_index":
      out[key] = np.asarray(values, np.int32)
    else:
      out[key] = np.stack(values)
  return out


def batches_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches per epoch (the last partial batch is dropped), as `BatchIterator` draws them."""
  return num_examples // batch_size


class BatchIterator(Iterator[dict]):
  """Fixed-size batches over `arrays`, reshuffled every epoch from `(seed, epoch)`.

  The position is `{"epoch", "batch"}` (batches consumed in the epoch), so a run restored with
  `set_state` continues with exactly the batches an uninterrupted run would see. The last partial
  batch of an epoch is dropped. With `sharding` (a `NamedSharding` whose first axis is the batch),
  numeric arrays become global `jax.Array`s built from this process's rows
  (`jax.make_array_from_process_local_data`); string arrays stay numpy. `prefetch` batches are
  prepared in a background thread.
  """

  def __init__(self, arrays: dict, batch_size: int, seed: int, sharding=None, prefetch: int = 2):
    sizes = {k: len(v) for k, v in arrays.items()}
    num = min(sizes.values()) if sizes else 0
    if len(set(sizes.values())) > 1:
      raise ValueError(f"arrays have different lengths: {sizes}")
    if batch_size <= 0 or num < batch_size:
      raise ValueError(f"batch_size {batch_size} needs 1..{num} examples per batch (split has {num})")
    procs = jax.process_count()
    if batch_size % procs:
      raise ValueError(f"batch_size {batch_size} is not divisible by the process count {procs}")
    self._arrays = arrays
    self._num = num
    self._batch_size = batch_size
    self._seed = seed
    self._sharding = sharding
    self._prefetch = max(0, prefetch)
    self.batches_per_epoch = batches_per_epoch(num, batch_size)
    self._state = {"epoch": 0, "batch": 0}
    self._queue = None
    self._stop = None
    self._thread = None

  def get_state(self) -> dict:
    """Position after the last batch returned: `{"epoch": int, "batch": int}`."""
    return dict(self._state)

  def set_state(self, state: dict) -> None:
    self._shutdown()
    self._state = {"epoch": int(state["epoch"]), "batch": int(state["batch"])}

  def _batch_at(self, epoch: int, batch: int) -> dict:
    order = np.random.default_rng([self._seed, epoch]).permutation(self._num)
    rows = order[batch * self._batch_size:(batch + 1) * self._batch_size]
    local = self._batch_size // jax.process_count()
    rows = rows[jax.process_index() * local:(jax.process_index() + 1) * local]
    out = {}
    for key, value in self._arrays.items():
      part = np.asarray(value[rows])
      if self._sharding is not None and part.dtype.kind in "biuf":
        part = jax.make_array_from_process_local_data(self._sharding, part)
      out[key] = part
    return out

  @staticmethod
  def _advance(state: dict, batches_per_epoch: int) -> dict:
    epoch, batch = state["epoch"], state["batch"] + 1
    if batch == batches_per_epoch:
      epoch, batch = epoch + 1, 0
    return {"epoch": epoch, "batch": batch}

  def _produce(self, start: dict, out: queue.Queue, stop: threading.Event) -> None:
    state = start
    while not stop.is_set():
      item = (self._batch_at(state["epoch"], state["batch"]), self._advance(state, self.batches_per_epoch))
      while not stop.is_set():
        try:
          out.put(item, timeout=0.1)
          break
        except queue.Full:
          continue
      state = item[1]

  def __next__(self) -> dict:
    if self._prefetch == 0:
      batch = self._batch_at(self._state["epoch"], self._state["batch"])
      self._state = self._advance(self._state, self.batches_per_epoch)
      return batch
    if self._queue is None:
      self._queue, self._stop = queue.Queue(self._prefetch), threading.Event()
      self._thread = threading.Thread(target=self._produce, args=(dict(self._state), self._queue, self._stop),
                                      daemon=True)
      self._thread.start()
    batch, self._state = self._queue.get()
    return batch

  def _shutdown(self) -> None:
    """Stops and joins the prefetch thread: a daemon thread still inside XLA when the interpreter exits
    can abort the process ("terminate called after throwing ...")."""
    if self._stop is not None:
      self._stop.set()
      self._thread.join()
    self._queue = self._stop = self._thread = None

  def close(self) -> None:
    """Stops the prefetch thread."""
    self._shutdown()
