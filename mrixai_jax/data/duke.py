"""Duke-Breast-Cancer-MRI (TCIA) patients: find them, pick the pre-contrast series, label it.

Expected layout of the manual dir (see `mrixai_jax/data/tfds/duke_breast_mri.py` for downloading):
``DICOM_SUBDIR/Breast_MRI_XXX/<study>/<series>/*.dcm`` (NBIA "classic" names) and
``MASKS_SUBDIR/Breast_MRI_XXX/Segmentation_Breast_MRI_XXX_{Breast,Dense_and_Vessels}.seg.nrrd``.
"""

import os
import re

from mrixai_jax.data import dicom, masks

DICOM_SUBDIR = "Duke-Breast-Cancer-MRI"
MASKS_SUBDIR = "Segmentation_Masks_NRRD"
ANISOTROPY_TOLERANCE = 0.01  # relative difference of row and column spacing
_PATIENT = re.compile(r"^Breast_MRI_\d{3}$")
_POST = re.compile(r"(1st|2nd|3rd|4th|pass\b|pas\b|ph\d|\+c)")
_T1_NON_FAT_SAT = re.compile(r"(\bt1\b|non fs|ideal)")
_PRE = re.compile(r"(pre\b|dyn|vibrant)")


def classify_series(description: str) -> str:
  """``"pre"`` (fat-saturated pre-contrast), ``"post"``, ``"t1"`` (non-fat-saturated) or ``"other"``,
  from a Duke SeriesDescription (e.g. "ax dyn pre", "Ph2/ax 3d dyn", "ax t1 tse")."""
  d = description.lower().strip()
  if _POST.search(d):
    return "post"
  if "dyn" not in d and _T1_NON_FAT_SAT.search(d):
    return "t1"
  return "pre" if _PRE.search(d) else "other"


def find_patients(manual_dir: str) -> list:
  """Patient ids that have both a DICOM folder and a segmentation folder, sorted."""
  def listing(sub):
    path = os.path.join(manual_dir, sub)
    return {n for n in os.listdir(path) if _PATIENT.match(n)} if os.path.isdir(path) else set()
  images, labelled = listing(DICOM_SUBDIR), listing(MASKS_SUBDIR)
  if not images or not labelled:
    raise FileNotFoundError(
        f"{manual_dir}: expected {DICOM_SUBDIR}/Breast_MRI_XXX/... ({len(images)} found) and "
        f"{MASKS_SUBDIR}/Breast_MRI_XXX/... ({len(labelled)} found); see the duke_breast_mri builder "
        "docstring for the download")
  return sorted(images & labelled)


def load_patient(manual_dir: str, patient_id: str) -> tuple:
  """Pre-contrast volume `[Z, Y, X]` float32, label map `[Z, Y, X]` uint8 and the series meta.

  Candidates are the series classified "pre", by SeriesNumber then temporal position; the first
  whose grid the segmentation fits is taken (the masks were drawn on the pre-contrast volume).
  """
  folder = os.path.join(manual_dir, DICOM_SUBDIR, patient_id)
  breast, dense_vessels = masks.duke_mask_paths(os.path.join(manual_dir, MASKS_SUBDIR), patient_id)
  series = dicom.list_series(folder)
  candidates = [s for s in series if classify_series(s["series_description"]) == "pre"]
  candidates.sort(key=lambda s: (float(s["series_number"] or 0), str(s["temporal_position"])))
  if not candidates:
    found = sorted({s["series_description"] for s in series})
    raise dicom.DicomError(folder, f"no pre-contrast series among descriptions {found}")
  problems = []
  for candidate in candidates:
    volume, meta = dicom.load_series(folder, series=candidate["id"])
    dy, dx = meta["spacing"][1:]
    if abs(dy / dx - 1.0) > ANISOTROPY_TOLERANCE:
      raise dicom.DicomError(meta["files"][0], f"in-plane pixel spacing {dy:g} x {dx:g} mm is not "
                                               "square; slices would be distorted")
    try:
      labels = masks.duke_label_map(breast, dense_vessels, volume.shape, meta["affine"])
    except masks.MaskError as e:
      problems.append((candidate["series_description"], e))
      continue
    return volume, labels, meta
  path = problems[0][1].path  # the mask file that failed (first candidate); other files are named inline
  detail = "; ".join(f"{d!r}: {e.reason if e.path == path else e}" for d, e in problems)
  raise masks.MaskError(path, "fits no pre-contrast series: " + detail)
