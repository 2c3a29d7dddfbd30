"""TFDS builder ``duke_breast_mri``: pre-contrast axial slices of the 100 Duke patients with 3D
breast / FGT / vessel segmentations, as our label map (array_record files).

Getting the data (manual download, about 370 GB of DICOM for the whole collection):

1. From TCIA, collection Duke-Breast-Cancer-MRI (DOI 10.7937/TCIA.e3sv-re93), download the
   supplemental "3D Breast and FGT MRI Segmentation" data (Lew et al. 2024): the folder
   ``Segmentation_Masks_NRRD/`` with ``Breast_MRI_XXX/Segmentation_Breast_MRI_XXX_Breast.seg.nrrd``
   and ``..._Dense_and_Vessels.seg.nrrd`` for 100 patients.
2. Download the images of (at least) those patients with the NBIA Data Retriever from the
   collection's ``.tcia`` manifest, choosing the **"Classic Directory Name"** layout, into
   ``Duke-Breast-Cancer-MRI/Breast_MRI_XXX/<study>/<series>/*.dcm``.
3. Put both folders in one directory and pass it as ``--config.data.manual_dir=DIR``.

Per patient the fat-saturated pre-contrast series is chosen by SeriesDescription and by the
segmentation's grid (`mrixai_jax.data.duke`), intensities are clipped at percentiles of the breast
voxels and scaled to [-1, 1], slices are resized to ``image_size`` and kept when their breast area
reaches ``min_breast_fraction`` (`mrixai_jax.data.preprocess`). A patient that fails to load (bad
DICOM, a mask that fits no pre-contrast series, an empty breast mask) is skipped: one warning line
per patient naming the file and the problem, a summary line with the count at the end, and the list
in the dataset's ``metadata.json`` (``builder.info.metadata["skipped_patients"]``: ``patient_id``,
``file``, ``reason``). The build fails, writing nothing, only when no patient loads.
"""

import dataclasses
import os
import time

import tensorflow_datasets as tfds
from absl import logging

from mrixai_jax.data import dicom, duke, masks, preprocess
from mrixai_jax.data.tfds import features


DOWNLOAD_INSTRUCTIONS = __doc__


@dataclasses.dataclass
class DukeBreastMriConfig(tfds.core.BuilderConfig):
  image_size: int = 256
  clip_percentiles: tuple = (0.5, 99.5)
  min_breast_fraction: float = 0.05


def make_config(data_config) -> DukeBreastMriConfig:
  """Builder config from the ``data`` section; the name encodes every knob that changes the data."""
  low, high = (float(p) for p in data_config.clip_percentiles)
  fraction = float(data_config.min_breast_fraction)
  name = f"s{data_config.image_size}_clip{low:g}-{high:g}_minbreast{fraction:g}"
  return DukeBreastMriConfig(name=name, image_size=int(data_config.image_size),
                             clip_percentiles=(low, high), min_breast_fraction=fraction)


class DukeBreastMri(tfds.core.GeneratorBasedBuilder):
  """Duke breast DCE-MRI pre-contrast slices with breast / FGT / vessel label maps."""

  VERSION = tfds.core.Version("1.0.0")
  # Only for `tfds.builder("duke_breast_mri")`; `make_config` names never collide with it.
  BUILDER_CONFIGS = [DukeBreastMriConfig(name="default")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__.splitlines()[0],
        features=features.slice_features(self.builder_config.image_size),
        homepage="https://doi.org/10.7937/TCIA.e3sv-re93", metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    return {features.SPLIT: self._generate_examples(str(dl_manager.manual_dir))}

  def _generate_examples(self, manual_dir: str):
    cfg = self.builder_config
    patients = duke.find_patients(manual_dir)
    start, skipped = time.time(), []
    for i, patient_id in enumerate(patients):
      try:
        volume, labels, _ = duke.load_patient(manual_dir, patient_id)
        slices = preprocess.prepare_slices(volume, labels, cfg.image_size, cfg.clip_percentiles,
                                           cfg.min_breast_fraction)
      except (dicom.DicomError, masks.MaskError, ValueError) as e:
        file = getattr(e, "path", os.path.join(manual_dir, duke.DICOM_SUBDIR, patient_id))
        skipped.append({"patient_id": patient_id, "file": file, "reason": getattr(e, "reason", str(e))})
        logging.warning("duke_breast_mri: skipping %s: %s: %s", patient_id, file, skipped[-1]["reason"])
        continue
      for row, z in enumerate(slices["slice_index"]):
        yield f"{patient_id}_{z:04d}", {"image": slices["image"][row], "labels": slices["labels"][row],
                                        "patient_id": patient_id, "slice_index": z}
      rate = (i + 1) / (time.time() - start)
      logging.info("duke_breast_mri: %d/%d patients (%s: %d slices), %.2f patients/s, ETA %.0f s",
                   i + 1, len(patients), patient_id, len(slices["slice_index"]), rate,
                   (len(patients) - i - 1) / rate)
    if len(skipped) == len(patients):
      raise ValueError(f"{manual_dir}: none of {len(patients)} patients could be loaded (see warnings)")
    self.info.metadata["skipped_patients"] = skipped  # saved to metadata.json with the dataset
    if skipped:
      logging.warning("duke_breast_mri: built from %d of %d patients; skipped %d: %s", len(patients) - len(skipped),
                      len(patients), len(skipped), "; ".join(f"{s['patient_id']} ({s['file']}: {s['reason']})"
                                                             for s in skipped))
